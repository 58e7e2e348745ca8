"""Train the learning-based CLAHE model and write src/napari_restore/data/lb_clahe_model.json.

Deterministic (fixed seeds, single process): running it again gives the same file. About two
minutes on two cores. Prints a held-out report (images never seen in training):

* R² of each target (log2 clip limit, log2 tiles) on the held-out samples (the regression's
  output before it is clipped to the grid range and the tiles are rounded);
* the objective (SSIM + 0.1 × entropy/8, see processors/clahe_training.py) with the predicted
  parameters, with fixed CLAHE(2.0, 8×8), and with the best grid point (the oracle);
* the fraction of held-out samples where the predicted parameters beat the fixed ones.

Usage: ``python scripts/train_lb_clahe.py [--out PATH] [--per-image N] [--check]``
(``--check`` retrains and exits 1 if the shipped file differs from the result).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_restore.processors import clahe_training as T
from napari_restore.processors.clahe import (
    FIXED_CLIP, FIXED_GRID, expand, grid_for, parse_model, predict_from_features,
)
from napari_restore.processors.clahe_core import clahe_channel
from napari_restore.processors.clahe_features import FEATURES, plane_features

OUT = Path(__file__).resolve().parents[1] / "src" / "napari_restore" / "data" / "lb_clahe_model.json"
TRAIN_SEED = 2019
HELD_OUT_SEED = 59
ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def build(names, per_image, seed):
    feats, targets, groups, rows = [], [], [], []  # rows: (sample, grid of objective values)
    for s in T.samples(names, per_image, seed):
        g = T.grid_scores(s.degraded, s.clean)
        i, j = np.unravel_index(int(np.argmax(g)), g.shape)
        feats.append(plane_features(s.degraded))
        targets.append((np.log2(T.CLIP_GRID[i]), np.log2(T.TILE_GRID[j])))
        groups.append(s.image)
        rows.append((s, g))
    return np.array(feats), np.array(targets), np.array(groups), rows


def fit_ridge(phi, y, alpha):
    """Ridge regression (intercept not penalised): returns (coef (2, P), intercept (2,))."""
    mu_p, mu_y = phi.mean(0), y.mean(0)
    a = phi - mu_p
    coef = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (y - mu_y)).T
    return coef, mu_y - coef @ mu_p


def r2(y, pred):
    return 1.0 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--per-image", type=int, default=24)
    ap.add_argument("--held-out-per-image", type=int, default=16)
    ap.add_argument("--check", action="store_true",
                    help="retrain and compare with the shipped model instead of writing it")
    args = ap.parse_args()
    t0 = time.perf_counter()
    x, y, groups, rows = build(T.TRAIN_IMAGES, args.per_image, TRAIN_SEED)
    scores = np.array([g for _, g in rows])
    xh, yh, _, rows_h = build(T.HELD_OUT_IMAGES, args.held_out_per_image, HELD_OUT_SEED)
    t_data = time.perf_counter() - t0

    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = np.clip((x - mean) / scale, -6, 6)
    # expansion and alpha by leave-one-image-out cross-validation of what matters: the mean
    # objective reached with the predicted parameters (nearest grid point) on unseen images
    lc, lt = np.log2(T.CLIP_GRID), np.log2(T.TILE_GRID)
    cv = {}
    for expansion in ("linear", "quadratic"):
        phi = expand(z, expansion)
        for alpha in ALPHAS:
            total = 0.0
            for g in np.unique(groups):
                m = groups == g
                coef, icpt = fit_ridge(phi[~m], y[~m], alpha)
                p = phi[m] @ coef.T + icpt
                ci = np.abs(p[:, :1] - lc[None]).argmin(1)
                ti = np.abs(p[:, 1:] - lt[None]).argmin(1)
                total += scores[m][np.arange(m.sum()), ci, ti].sum()
            cv[(expansion, alpha)] = total / len(y)
    expansion, alpha = max(cv, key=cv.get)
    phi = expand(z, expansion)
    coef, icpt = fit_ridge(phi, y, alpha)

    model = {
        "format": "napari-restore/lb_clahe/ridge/1",
        "features": list(FEATURES),
        "expansion": expansion,
        "targets": ["log2_clip_limit", "log2_tiles"],
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": coef.tolist(),
        "intercept": icpt.tolist(),
        "alpha": alpha,
        "clip_range": [min(T.CLIP_GRID), max(T.CLIP_GRID)],
        "tile_range": [min(T.TILE_GRID), max(T.TILE_GRID)],
    }
    parsed = parse_model(json.loads(json.dumps(model)))

    # held-out report
    pred_y, obj_pred, obj_fixed, obj_best, wins = [], [], [], [], 0
    for (s, g), f in zip(rows_h, xh, strict=True):
        clip, tiles = predict_from_features(f, parsed)
        grid = grid_for(s.degraded.shape, tiles)
        z_h = np.clip((f - mean) / scale, -6, 6)
        pred_y.append(expand(z_h, expansion) @ coef.T + icpt)  # the regression itself

        op = T.objective(clahe_channel(s.degraded, clip, grid), s.clean)
        of = T.objective(clahe_channel(s.degraded, FIXED_CLIP, FIXED_GRID), s.clean)
        obj_pred.append(op)
        obj_fixed.append(of)
        obj_best.append(float(g.max()))
        wins += op > of
    r2h = r2(yh, np.array(pred_y))
    r2t = r2(y, phi @ coef.T + icpt)
    report = {
        "train_samples": int(len(y)),
        "held_out_samples": int(len(yh)),
        "train_images": list(T.TRAIN_IMAGES),
        "held_out_images": list(T.HELD_OUT_IMAGES),
        "expansion": expansion,
        "alpha": alpha,
        "cv_objective": {f"{e} alpha={a:g}": round(v, 4) for (e, a), v in cv.items()},
        "r2_train": {"log2_clip_limit": round(float(r2t[0]), 3), "log2_tiles": round(float(r2t[1]), 3)},
        "r2_held_out": {"log2_clip_limit": round(float(r2h[0]), 3), "log2_tiles": round(float(r2h[1]), 3)},
        "objective_held_out": {
            "predicted": round(float(np.mean(obj_pred)), 4),
            "fixed_2.0_8x8": round(float(np.mean(obj_fixed)), 4),
            "oracle_grid": round(float(np.mean(obj_best)), 4),
        },
        "predicted_beats_fixed": round(wins / len(rows_h), 3),
    }
    model["report"] = report  # no timings in the file: a rerun writes the same bytes
    text = json.dumps(model, indent=1) + "\n"
    print(json.dumps(report, indent=2))
    print(f"{time.perf_counter() - t0:.1f} s in all, {t_data:.1f} s building the data")
    if args.check:
        same = args.out.read_text(encoding="utf-8") == text
        print(f"{args.out} {'matches' if same else 'DIFFERS FROM'} the retrained model")
        raise SystemExit(0 if same else 1)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
