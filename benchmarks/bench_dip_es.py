"""Deep Image Prior with early stopping: is the returned estimate the run's best?

1. The floor, over 10 crops (smooth and textured, grey and colour, one float image), Gaussian
   noise of σ = 15–50 grey levels (σ/255 on the float image), fixed seeds, default settings
   (early stopping on, an estimate reported every 25 iterations):
   - the returned PSNR is within 1 dB of the best estimate reported during the run;
   - it is at least 4 dB above the noisy input.
2. How soon the first estimate arrives on a 256² image (CPU preset), in a fresh process:
   from the call, and from the process start (imports included).

Run: ``.venv/bin/python benchmarks/bench_dip_es.py`` (``--size`` for the crop side, 128 by
default; ``--only camera,moon`` for some images; ``--ema 0.99`` to compare the
bias-corrected exponential average; ``--no-latency`` / ``--no-floor``). ``DIP_BENCH_THREADS``
sets torch's intra-op threads for the floor (1 by default: stable figures on a shared
machine). Prints a table; the floor's verdict is the last line of its section.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

#: (name, skimage image, crop origin, σ in grey levels, float image?)
IMAGES = (
    ("camera", "camera", (80, 180), 25, False),
    ("moon", "moon", (200, 200), 15, False),  # smooth, low texture
    ("brick", "brick", (100, 100), 30, False),
    ("smooth", None, None, 50, False),  # synthetic, very smooth: fitted within ~100 iterations
    ("coins (float)", "coins", (100, 100), 40, True),
    ("astronaut", "astronaut", (60, 180), 25, False),
    ("coffee", "coffee", (150, 250), 35, False),
    ("chelsea", "chelsea", (100, 120), 20, False),  # fur: textured colour
    ("retina", "retina", (600, 600), 30, False),  # smooth colour
    ("gravel", "gravel", (200, 200), 20, False),  # textured grey
)
FLOOR_GAP_DB = 1.0
FLOOR_GAIN_DB = 4.0


def _smooth(size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    f = 0.5 + 0.3 * np.sin(2 * np.pi * (0.7 * x + 0.3 * y)) * np.cos(2 * np.pi * 0.5 * y)
    blob = np.exp(-((x - 0.6) ** 2 + (y - 0.4) ** 2) / 0.02)
    return np.clip(255 * (0.15 + 0.6 * f + 0.25 * blob), 0, 255).round().astype(np.uint8)


def image_pairs(size: int) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(name, clean, noisy, σ) for every image; noise seeds 100, 101, …"""
    from skimage import data

    pairs = []
    for k, (name, key, origin, sigma, is_float) in enumerate(IMAGES):
        if key is None:
            clean = _smooth(size)
        else:
            r, c = origin
            clean = np.ascontiguousarray(getattr(data, key)()[r:r + size, c:c + size])
        rng = np.random.default_rng(100 + k)
        if is_float:
            clean = (clean / 255).astype(np.float32)
            noisy = np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1)
            noisy = noisy.astype(np.float32)
        else:
            noisy = clean.astype(np.float64) + rng.normal(0, sigma, clean.shape)
            noisy = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        pairs.append((name, clean, noisy, sigma))
    return pairs


def run_one(clean: np.ndarray, noisy: np.ndarray, ema: float | None) -> dict:
    from napari_restore import DIPStep, DIPSummary, iter_deep_image_prior
    from napari_restore.metrics import psnr

    cax = -1 if noisy.ndim == 3 else None
    t0 = time.perf_counter()
    gen = iter_deep_image_prior(noisy, channel_axis=cax, every=25, ema=ema, device="cpu")
    yielded: list[tuple[int, float]] = []
    summary = None
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            out = stop.value
            break
        if isinstance(item, DIPStep) and item.estimate is not None:
            yielded.append((item.iteration, psnr(item.estimate, clean, channel_axis=cax)))
        elif isinstance(item, DIPSummary):
            summary = item
    assert summary is not None
    best_it, best = max(yielded, key=lambda p: p[1])
    ret = psnr(out, clean, channel_axis=cax)
    noisy_db = psnr(noisy, clean, channel_axis=cax)
    return {"noisy": noisy_db, "returned": ret, "best": best, "best_it": best_it,
            "gap": best - ret, "gain": ret - noisy_db, "stopped": summary.stopped_iteration,
            "returned_it": summary.returned_iteration, "reason": summary.reason,
            "seconds": time.perf_counter() - t0, "n_yielded": len(yielded),
            "ok": best - ret <= FLOOR_GAP_DB and ret - noisy_db >= FLOOR_GAIN_DB}


_LATENCY = """
import time
t_start = time.perf_counter()
import numpy as np
import torch
threads = {threads}
if threads:
    torch.set_num_threads(threads)
from napari_restore import DIPStep, iter_deep_image_prior
rng = np.random.default_rng(0)
img = np.clip(np.rint(128 + 40 * rng.standard_normal((256, 256))), 0, 255).astype(np.uint8)
t_call = time.perf_counter()
firsts = []
for step in iter_deep_image_prior(img, device="cpu", iterations=60, early_stopping=False):
    if isinstance(step, DIPStep) and step.estimate is not None:
        firsts.append((step.iteration, time.perf_counter()))
        if len(firsts) == 2:
            break
(i1, t1), (i2, t2) = firsts
print(torch.get_num_threads(), i1, t1 - t_call, t1 - t_start, i2, t2 - t_call)
"""


def first_estimate_latency(threads: int) -> tuple[int, int, float, float, int, float]:
    """In a fresh process: (threads, first iteration, s from the call, s from the process
    start, second iteration, s from the call)."""
    code = _LATENCY.format(threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=600).stdout.split()
    th, i1, a, b, i2, c = out
    return int(th), int(i1), float(a), float(b), int(i2), float(c)


def main(argv: list[str] | None = None) -> dict:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="crop side of the floor images")
    parser.add_argument("--only", default="", help="comma-separated image names")
    parser.add_argument("--ema", type=float, default=None,
                        help="an EMA weight instead of the window mean (default)")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    threads = int(os.environ.get("DIP_BENCH_THREADS", "1"))
    out: dict = {"floor": {}, "latency": []}
    if not args.no_latency:
        print(f"first estimate on a 256² uint8 image, CPU preset, {os.cpu_count()} CPUs, "
              "fresh process")
        print(f"{'threads':>8}{'1st it':>8}{'s (call)':>10}{'s (start)':>11}{'2nd it':>8}"
              f"{'s (call)':>10}")
        for th in (0, 1):  # 0: torch's default
            r = first_estimate_latency(th)
            out["latency"].append(r)
            print(f"{r[0]:>8}{r[1]:>8}{r[2]:>10.1f}{r[3]:>11.1f}{r[4]:>8}{r[5]:>10.1f}",
                  flush=True)
    if not args.no_floor:
        torch.set_num_threads(threads)
        only = {n.strip() for n in args.only.split(",") if n.strip()}
        est = "window mean" if args.ema is None else f"bias-corrected EMA {args.ema}"
        print(f"\nfloor: {args.size}² crops, default settings, estimate = {est}, torch "
              f"{torch.__version__}, {threads} thread(s)")
        print(f"{'image':<15}{'σ':>4}{'noisy':>7}{'return':>8}{'best':>7}{'@it':>6}{'gap':>6}"
              f"{'gain':>6}{'ret it':>7}{'stop':>6}{'s':>6}  floor")
        for name, clean, noisy, sigma in image_pairs(args.size):
            if only and name.split()[0] not in only:
                continue
            r = run_one(clean, noisy, args.ema)
            out["floor"][name] = r
            print(f"{name:<15}{sigma:>4}{r['noisy']:>7.2f}{r['returned']:>8.2f}{r['best']:>7.2f}"
                  f"{r['best_it']:>6}{r['gap']:>6.2f}{r['gain']:>6.2f}{r['returned_it']:>7}"
                  f"{r['stopped']:>6}{r['seconds']:>6.0f}  {'ok' if r['ok'] else 'MISSED'}",
                  flush=True)
        rows = list(out["floor"].values())
        if rows:
            print(f"worst gap {max(r['gap'] for r in rows):.2f} dB (floor {FLOOR_GAP_DB}), "
                  f"least gain {min(r['gain'] for r in rows):.2f} dB (floor {FLOOR_GAIN_DB}); "
                  f"floor met on {sum(r['ok'] for r in rows)}/{len(rows)} images")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
