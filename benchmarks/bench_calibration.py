"""Self-supervised calibration (issue 16): the floors, measured.

Sections (all by default; name some to run only those)::

    accuracy  8 images (4 grey, 4 colour; 128² crops) × Gaussian σ 15/25/40 grey levels:
              calibrated BM3D σ vs the oracle-best σ on the same (default) grid, PSNR gap
              (floor 0.3 dB); NLM / TV / wavelet σ likewise (floor 0.5 dB)
    anchor    the same cases: NLM / TV / wavelet calibrated by us and by scikit-image's
              calibrate_denoiser on the same grid (same σ, or within 0.1 dB)
    spearman  σ-sweeps (0.5×–2× the true σ, 7 values; σ = 25) on the 8 images, BM3D and
              NLM: Spearman of the self-supervised loss against the true MSE (floor 0.9);
              the structure score at 2× the oracle σ against the oracle's (must be higher)
    speed     NLM on a 256² crop, a 16-value grid: calibrate() vs calibrate_denoiser, full
              offsets (approximate_loss=False) and one mask (default), same loss
              (masking="interpolate"); BM3D calibration time on 512² and on 2048² (default
              region)
    pg        Poisson–Gaussian noise (the 8 images scaled to [0, 1] × peak 10 / 30 / 100
              photons, gain 4, read noise 3, offset 100; float counts): with
              noise_model="poisson-gaussian" the stabilising transform fixes σ, so classic
              NLM / TV / wavelet tune ``strength`` and BM3D its profile; gap to the best
              value of the same grid (floors 0.5 dB, BM3D 0.3 dB)
    figure    (only when named) docs/images/calibration_loss_curve.png

``python benchmarks/bench_calibration.py [sections] [--json PATH] [--crop N]
[--images a,b] [--sigmas 15,25] [--procs bm3d,wavelet] [--bm3d-grid default|N]
[--speed-bm3d 0|1] [--masking auto|interpolate|interpolate+noise] [--loss one|all|auto]
[--pg-data float|uint12|physical|blur]`` (the
options make a reduced run on a busy machine; the defaults are the floors' settings). The oracle on a grid is
found by the same coarse-to-fine search on the true PSNR (it is unimodal in σ), so that
the 25-value grids need about 10 runs per case, not 25.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

GREY = ("camera", "coins", "moon", "brick")
COLOUR = ("astronaut", "chelsea", "coffee", "rocket")
IMAGES = GREY + COLOUR
ALL_IMAGES = IMAGES
SIGMAS = (15.0, 25.0, 40.0)
CROP = 128
#: Processors of the accuracy section (``--procs``), and the BM3D grid (``--bm3d-grid``:
#: "default" = calibrate's 25-value grid; N = σ̂ × 2^(k/4), k = -(N//2)..N//2).
PROCS = ("bm3d", "nl_means", "tv_chambolle", "wavelet")
BM3D_GRID = "default"
#: ``--speed-bm3d 0`` leaves out the BM3D timings of the speed section (minutes on 2 cores).
SPEED_BM3D = True
#: ``--masking M`` / ``--loss one|all|auto``: the accuracy and spearman sections' loss
#: (default: calibrate's).
LOSS_OPTS: dict = {}
SWEEP = (0.5, 0.63, 0.8, 1.0, 1.25, 1.6, 2.0)
METHODS = ("nl_means", "tv_chambolle", "wavelet")


def _image(name: str) -> tuple[np.ndarray, int | None]:
    from skimage import data

    img = getattr(data, name)()
    h, w = img.shape[:2]
    r, c = (h - CROP) // 2, (w - CROP) // 2
    crop = img[r:r + CROP, c:c + CROP].astype(np.float64)
    return crop, (-1 if crop.ndim == 3 else None)


def _noisy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0.0, sigma, clean.shape), 0, 255).astype(np.uint8)


def _psnr(out: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((out.astype(np.float64) - clean) ** 2)))


def _oracle(grid: tuple, score) -> tuple[float, float]:
    """Best (value, PSNR) on the grid by the calibration's own coarse-to-fine search."""
    from napari_restore.calibration import _Search

    search = _Search({"v": grid}, full=False)
    batch = search.first()
    while batch:
        for idx in batch:
            search.losses[idx] = -score(grid[idx[0]])
        batch = search.next()
    i = int(np.nanargmin(search.losses))
    return grid[i], -float(search.losses[i])


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _cases():
    for name in IMAGES:
        k = ALL_IMAGES.index(name) if name in ALL_IMAGES else len(ALL_IMAGES)  # seed as in the full run
        clean, cax = _image(name)
        for j, sigma in enumerate(SIGMAS):
            yield name, clean, cax, sigma, _noisy(clean, sigma, 10 * k + j)


def _bm3d_grid(noisy: np.ndarray, cax: int | None) -> dict | None:
    """None (calibrate's default grid), or the reduced grid of ``--bm3d-grid N``."""
    from napari_restore.processors.noise import estimate_noise_sigma

    if BM3D_GRID == "default":
        return None
    n = int(BM3D_GRID)
    s_hat = estimate_noise_sigma(noisy.astype(float), channel_axis=cax)
    return {"sigma": sorted({round(s_hat * 2 ** (k / 4), 3) for k in range(-(n // 2), n // 2 + 1)})}


def _accuracy_case(proc: str, name: str, clean, cax, sigma, noisy) -> dict:
    from napari_restore import bm3d_denoise, calibrate, classic_denoise

    t0 = time.perf_counter()
    if proc == "bm3d":
        cal = calibrate(noisy, "bm3d_denoise", channel_axis=cax, workers=1,
                        grid=_bm3d_grid(noisy, cax), **LOSS_OPTS)

        def run(s):
            return bm3d_denoise(noisy, s, channel_axis=cax)
    else:
        cal = calibrate(noisy, "classic_denoise", channel_axis=cax, fixed={"method": proc},
                        workers=1, **LOSS_OPTS)

        def run(s):
            return classic_denoise(noisy, method=proc, sigma=s, channel_axis=cax)
    cache: dict = {}

    def score(s):
        if s not in cache:
            cache[s] = _psnr(run(s), clean)
        return cache[s]

    best_s, best = _oracle(cal.grid["sigma"], score)
    got = score(cal.best_params["sigma"])
    row = {"image": name, "sigma": sigma, "processor": proc, "chosen": cal.best_params["sigma"],
           "oracle": best_s, "gap_db": best - got, "grid": len(cal.grid["sigma"]),
           "seconds": time.perf_counter() - t0}
    print(f"{proc:12s} {name:10s} σ={sigma:4.0f} chosen {row['chosen']:8.3f} oracle "
          f"{best_s:8.3f} gap {row['gap_db']:5.2f} dB", flush=True)
    return row


def accuracy(out: dict) -> None:
    rows = out.setdefault("accuracy", [])
    for name, clean, cax, sigma, noisy in _cases():
        for proc in PROCS:
            rows.append(_accuracy_case(proc, name, clean, cax, sigma, noisy))
    for proc, floor in (("bm3d", 0.3), *((m, 0.5) for m in METHODS)):
        gaps = [r["gap_db"] for r in rows if r["processor"] == proc]
        if gaps:
            print(f"accuracy {proc:12s}: worst gap {max(gaps):.3f} dB, mean {np.mean(gaps):.3f}, "
                  f"{sum(g <= floor for g in gaps)}/{len(gaps)} within {floor} dB")


def anchor(out: dict) -> None:
    from skimage.restoration import (calibrate_denoiser, denoise_nl_means, denoise_tv_chambolle,
                                     denoise_wavelet)

    from napari_restore import calibrate, classic_denoise
    from napari_restore.processors.classic import TV_ITERATIONS

    def theirs(method):
        # channel_axis travels in the parameters: calibrate_denoiser reads it there to mask
        # and interpolate the spatial axes only (without it a colour axis is masked as space)
        def f(image, s, channel_axis=None):
            s, colour = s / 255.0, channel_axis
            if method == "tv_chambolle":
                return denoise_tv_chambolle(image, weight=s, eps=0.0,
                                            max_num_iter=TV_ITERATIONS, channel_axis=colour)
            if method == "wavelet":
                return denoise_wavelet(image, sigma=s, method="BayesShrink", mode="soft",
                                       rescale_sigma=True, channel_axis=colour)
            return denoise_nl_means(image, h=0.8 * s, sigma=s, patch_size=5, patch_distance=6,
                                    fast_mode=True, channel_axis=colour)
        return f

    rows = []
    from napari_restore.calibration import default_grid, get_processor
    from napari_restore.processors.noise import estimate_noise_sigma

    spec = get_processor("classic_denoise")
    for name, clean, cax, sigma, noisy in _cases():
        # the same grid for both: calibrate's default 25 values around σ̂, given explicitly
        grid = default_grid(spec, "sigma", estimate_noise_sigma(noisy.astype(np.float32),
                                                                channel_axis=cax), 255.0)
        for method in [m for m in METHODS if m in PROCS]:
            # scikit-image's default loss: one mask, neighbour mean
            cal = calibrate(noisy, "classic_denoise", channel_axis=cax, fixed={"method": method},
                            grid={"sigma": grid}, approximate_loss=True,
                            masking="interpolate", workers=1)
            params = {"s": grid, **({"channel_axis": [cax]} if cax is not None else {})}
            _, (tested, losses) = calibrate_denoiser(noisy, theirs(method), params,
                                                     extra_output=True)
            sk = tested[int(np.argmin(losses))]["s"]
            ours = cal.best_params["sigma"]

            def score(s, noisy=noisy, cax=cax, clean=clean, method=method):
                return _psnr(classic_denoise(noisy, method=method, sigma=s, channel_axis=cax),
                             clean)

            diff = 0.0 if ours == sk else abs(score(ours) - score(sk))
            rows.append({"image": name, "sigma": sigma, "method": method, "ours": ours,
                         "skimage": sk, "same": ours == sk, "diff_db": diff})
    out["anchor"] = rows
    for method in METHODS:
        r = [x for x in rows if x["method"] == method]
        if not r:
            continue
        print(f"anchor {method:12s}: same choice {sum(x['same'] for x in r)}/{len(r)}, "
              f"worst PSNR difference {max(x['diff_db'] for x in r):.3f} dB, "
              f"within 0.1 dB {sum(x['diff_db'] <= 0.1 for x in r)}/{len(r)}")


def spearman(out: dict) -> None:
    from napari_restore import bm3d_denoise, calibrate, classic_denoise
    from napari_restore.noref import structure_score

    sigma = 25.0
    rows = []
    for name in IMAGES:
        k = ALL_IMAGES.index(name) if name in ALL_IMAGES else len(ALL_IMAGES)
        clean, cax = _image(name)
        noisy = _noisy(clean, sigma, 100 + k)
        sweep = tuple(round(sigma * f, 3) for f in SWEEP)
        for proc in [p for p in ("bm3d", "nl_means") if p in PROCS]:
            if proc == "bm3d":
                cal = calibrate(noisy, "bm3d_denoise", channel_axis=cax, grid={"sigma": sweep},
                                search="full", workers=1, **LOSS_OPTS)

                def run(s, noisy=noisy, cax=cax):
                    return bm3d_denoise(noisy, s, channel_axis=cax)
            else:
                cal = calibrate(noisy, "classic_denoise", channel_axis=cax,
                                fixed={"method": "nl_means"}, grid={"sigma": sweep},
                                search="full", workers=1, **LOSS_OPTS)

                def run(s, noisy=noisy, cax=cax):
                    return classic_denoise(noisy, method="nl_means", sigma=s, channel_axis=cax)
            results = {s: run(s) for s in sweep}
            mse = [float(np.mean((results[s].astype(float) - clean) ** 2)) for s in sweep]
            rho = _spearman(list(cal.losses), mse)
            oracle = sweep[int(np.argmin(mse))]
            over = run(2 * oracle)
            s_or = structure_score(noisy, results[oracle], channel_axis=cax)
            s_ov = structure_score(noisy, over, channel_axis=cax)
            rows.append({"image": name, "processor": proc, "spearman": rho, "oracle": oracle,
                         "structure_oracle": s_or, "structure_2x": s_ov})
            print(f"{proc:8s} {name:10s} spearman {rho:5.3f} oracle σ {oracle:6.2f} "
                  f"structure {s_or:6.3f} → 2× {s_ov:6.3f}", flush=True)
    out["spearman"] = rows
    for proc in ("bm3d", "nl_means"):
        r = [x for x in rows if x["processor"] == proc]
        if not r:
            continue
        print(f"spearman {proc}: min {min(x['spearman'] for x in r):.3f}, "
              f"{sum(x['spearman'] >= 0.9 for x in r)}/{len(r)} >= 0.9; structure higher at 2×: "
              f"{sum(x['structure_2x'] > x['structure_oracle'] for x in r)}/{len(r)}")


def speed(out: dict) -> None:
    from skimage import data
    from skimage.restoration import calibrate_denoiser, denoise_nl_means

    from napari_restore import calibrate

    clean = data.camera()[128:384, 128:384].astype(np.float64)
    noisy = _noisy(clean, 25.0, 7)
    grid = tuple(float(v) for v in np.round(np.geomspace(6.0, 90.0, 16), 2))

    def nlm(image, s):
        s = s / 255.0
        return denoise_nl_means(image, h=0.8 * s, sigma=s, patch_size=5, patch_distance=6,
                                fast_mode=True)

    fig = {}
    # warm the worker processes once (as after a first run in a session); cold time reported
    t0 = time.perf_counter()
    calibrate(noisy[:64, :64], "classic_denoise", fixed={"method": "nl_means"},
              grid={"sigma": [10.0, 20.0]})
    fig["worker_start_s"] = time.perf_counter() - t0
    for approx in (True, False):
        t0 = time.perf_counter()
        _, (tested, losses) = calibrate_denoiser(noisy, nlm, {"s": grid}, approximate_loss=approx,
                                                 extra_output=True)
        t_sk = time.perf_counter() - t0
        sk = tested[int(np.argmin(losses))]["s"]
        t0 = time.perf_counter()
        cal = calibrate(noisy, "classic_denoise", fixed={"method": "nl_means"},
                        grid={"sigma": grid}, approximate_loss=approx, masking="interpolate")
        t_us = time.perf_counter() - t0
        key = "one_mask" if approx else "full_offsets"
        fig[key] = {"skimage_s": t_sk, "ours_s": t_us, "ratio": t_us / t_sk,
                    "evaluations": cal.evaluations, "grid": len(grid),
                    "same_choice": cal.best_params["sigma"] == sk}
        print(f"NLM 256², {len(grid)} values, {key}: calibrate_denoiser {t_sk:.2f} s, ours "
              f"{t_us:.2f} s ({t_us / t_sk:.2f}×, {cal.evaluations} evaluated), same choice "
              f"{cal.best_params['sigma'] == sk}", flush=True)
    out["speed"] = fig
    if not SPEED_BM3D:
        return
    big = data.camera().astype(np.float64)
    noisy512 = _noisy(big, 25.0, 8)
    for label, roi in (("512² default region", None), ("512² whole (roi='all')", "all")):
        t0 = time.perf_counter()
        cal = calibrate(noisy512, "bm3d_denoise", roi=roi)
        t = time.perf_counter() - t0
        fig[label] = {"seconds": t, "sigma": cal.best_params["sigma"], "evaluations": cal.evaluations}
        print(f"BM3D {label}: {t:.1f} s, σ = {cal.best_params['sigma']}, "
              f"{cal.evaluations} evaluated", flush=True)
    from scipy import ndimage

    huge = ndimage.zoom(big, 4, order=1)
    noisy2k = _noisy(huge, 25.0, 9)
    t0 = time.perf_counter()
    cal = calibrate(noisy2k, "bm3d_denoise")
    t = time.perf_counter() - t0
    fig["2048² default region"] = {"seconds": t, "sigma": cal.best_params["sigma"],
                                   "evaluations": cal.evaluations, "tiles": len(cal.region)}
    print(f"BM3D 2048² default region ({len(cal.region)} tiles of {cal_tile(cal)}): {t:.1f} s, "
          f"σ = {cal.best_params['sigma']}, {cal.evaluations} evaluated", flush=True)
    out["speed"] = fig


def figure(out: dict, path: str = "docs/images/calibration_loss_curve.png") -> None:
    """The loss curve of a BM3D calibration (camera 256², σ = 25, every grid value
    evaluated) beside the true PSNR of each σ: the picture of docs/tuning-without-reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage import data

    from napari_restore import bm3d_denoise, calibrate

    clean = data.camera()[128:384, 128:384].astype(np.float64)
    noisy = _noisy(clean, 25.0, 11)
    full = calibrate(noisy, "bm3d_denoise", search="full")
    refined = calibrate(noisy, "bm3d_denoise")
    grid = np.asarray(full.grid["sigma"])
    truth = [_psnr(bm3d_denoise(noisy, float(s)), clean) for s in grid]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    ax.semilogx(grid, full.losses, "o-", color="tab:blue", ms=3, label="self-supervised loss")
    ev = np.isfinite(refined.losses)
    ax.semilogx(grid[ev], refined.losses[ev], "s", mfc="none", color="tab:blue", ms=8,
                label=f"evaluated by the search ({int(ev.sum())} of {len(grid)})")
    ax.axvline(refined.best_params["sigma"], color="tab:blue", ls=":", lw=1)
    ax.set_xlabel("BM3D σ (grey levels)")
    ax.set_ylabel("loss (grey levels²)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.semilogx(grid, truth, "-", color="tab:red", label="true PSNR (needs the clean image)")
    ax2.axvline(grid[int(np.argmax(truth))], color="tab:red", ls=":", lw=1)
    ax2.set_ylabel("PSNR (dB)", color="tab:red")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper center")
    ax.set_title("camera 256², Gaussian σ = 25: calibrated σ (blue) and best σ (red)",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    out["figure"] = {"chosen": refined.best_params["sigma"],
                     "oracle": float(grid[int(np.argmax(truth))]),
                     "gap_db": float(max(truth) - truth[int(np.argmin(np.abs(
                         grid - refined.best_params["sigma"])))]),
                     "full_best": full.best_params["sigma"]}
    print(f"figure: {path}; {out['figure']}", flush=True)


PG_PEAKS = (10.0, 30.0, 100.0)
#: ``--pg-data``: how the pg section's images are stored. "float": float counts (offset 100,
#: unclipped); "uint12": counts rounded and clipped to 0..4095 in uint16 (a 12-bit camera);
#: "physical": float in arbitrary units, 0.037·counts − 2.5 (a calibrated intensity with an
#: offset); "blur": the clean image blurred (Gaussian PSF, σ 1.5 px, ordinary convolution
#: with reflected borders) before the noise, float counts.
PG_DATA = "float"


def _pg_store(expected: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pg case in the storage of ``--pg-data`` (the expected value in the same units)."""
    if PG_DATA == "uint12":
        return expected, np.clip(np.round(noisy), 0, 4095).astype(np.uint16)
    if PG_DATA == "physical":
        return 0.037 * expected - 2.5, (0.037 * noisy - 2.5).astype(np.float32)
    return expected, noisy


def pg(out: dict) -> None:
    from napari_restore import bm3d_denoise, calibrate, classic_denoise
    from napari_restore._sample_data import poisson_gaussian

    rows = []
    for name in IMAGES:
        k = ALL_IMAGES.index(name) if name in ALL_IMAGES else len(ALL_IMAGES)
        clean, cax = _image(name)
        if PG_DATA == "blur":
            from scipy import ndimage

            sig = (1.5, 1.5) + ((0.0,) if clean.ndim == 3 else ())
            clean = ndimage.gaussian_filter(clean, sig, mode="reflect")
        unit = (clean - clean.min()) / (clean.max() - clean.min())
        for j, peak in enumerate(PG_PEAKS):
            expected, noisy = _pg_store(*poisson_gaussian(unit, peak=peak, gain=4.0, read=3.0,
                                                          offset=100.0, seed=1000 + 10 * k + j))
            span = float(expected.max() - expected.min())

            def score(x, expected=expected, span=span):
                return 10 * np.log10(span**2 / np.mean((np.asarray(x, float) - expected) ** 2))

            for proc in [p for p in PROCS if p in ("bm3d",) + METHODS]:
                t0 = time.perf_counter()
                if proc == "bm3d":
                    cal = calibrate(noisy, "bm3d_denoise", channel_axis=cax, workers=1,
                                    noise_model="poisson-gaussian", params=["profile"])
                    key = "profile"

                    def run(v, noisy=noisy, cax=cax):
                        return bm3d_denoise(noisy, noise_model="poisson-gaussian", profile=v,
                                            channel_axis=cax)
                else:
                    cal = calibrate(noisy, "classic_denoise", channel_axis=cax, workers=1,
                                    fixed={"method": proc}, noise_model="poisson-gaussian")
                    key = "strength"

                    def run(v, noisy=noisy, cax=cax, proc=proc):
                        return classic_denoise(noisy, method=proc, strength=v, channel_axis=cax,
                                               noise_model="poisson-gaussian")
                scores = {v: score(run(v)) for v in cal.grid[key]}
                best = max(scores, key=scores.get)
                chosen = cal.best_params[key]
                row = {"image": name, "peak": peak, "processor": proc, "chosen": chosen,
                       "oracle": best, "gap_db": scores[best] - scores[chosen],
                       "masking": cal.masking, "seconds": time.perf_counter() - t0}
                rows.append(row)
                print(f"{proc:12s} {name:10s} peak {peak:5.0f} {key} chosen {chosen} best {best} "
                      f"gap {row['gap_db']:5.2f} dB ({cal.masking})", flush=True)
    out["pg"] = rows
    for proc in ("bm3d",) + METHODS:
        r = [x for x in rows if x["processor"] == proc]
        if r:
            floor = 0.3 if proc == "bm3d" else 0.5
            gaps = [x["gap_db"] for x in r]
            print(f"pg {proc:12s}: {sum(g <= floor for g in gaps)}/{len(r)} within {floor} dB, "
                  f"mean {np.mean(gaps):.3f}, worst {max(gaps):.2f} dB")


def cal_tile(cal) -> str:
    (a, b), (c, d) = cal.region[0]
    return f"{b - a}×{d - c}"


SECTIONS = {"accuracy": accuracy, "anchor": anchor, "spearman": spearman, "speed": speed,
            "pg": pg,
            "figure": figure}


def main(argv: list[str] | None = None) -> dict:
    global CROP, IMAGES, SIGMAS, PROCS, BM3D_GRID, SPEED_BM3D, PG_DATA
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = {}
    for key in ("--json", "--crop", "--images", "--sigmas", "--procs", "--bm3d-grid",
                "--speed-bm3d", "--masking", "--loss", "--pg-data"):
        if key in argv:
            i = argv.index(key)
            opts[key] = argv[i + 1]
            del argv[i:i + 2]
    path = opts.get("--json")
    CROP = int(opts.get("--crop", CROP))
    IMAGES = tuple(opts["--images"].split(",")) if "--images" in opts else IMAGES
    SIGMAS = tuple(float(v) for v in opts["--sigmas"].split(",")) if "--sigmas" in opts \
        else SIGMAS
    PROCS = tuple(opts["--procs"].split(",")) if "--procs" in opts else PROCS
    BM3D_GRID = opts.get("--bm3d-grid", BM3D_GRID)
    PG_DATA = opts.get("--pg-data", PG_DATA)
    SPEED_BM3D = opts.get("--speed-bm3d", "1") != "0"
    if "--masking" in opts:
        LOSS_OPTS["masking"] = opts["--masking"]
    if "--loss" in opts:
        LOSS_OPTS["approximate_loss"] = {"one": True, "all": False, "auto": "auto"}[opts["--loss"]]
    chosen = argv or [k for k in SECTIONS if k != "figure"]
    out: dict = {}
    for name in chosen:
        t0 = time.perf_counter()
        print(f"-- {name}", flush=True)
        SECTIONS[name](out)
        print(f"-- {name}: {time.perf_counter() - t0:.0f} s", flush=True)
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(out, fh, indent=1, default=float)
    return out


if __name__ == "__main__":  # guarded: the worker processes (spawn) import this script
    main()
