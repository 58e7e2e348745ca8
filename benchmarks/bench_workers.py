"""Speed of deterministic parallel runs (issue 19 floors), all figures from one run.

1. BM3D on a 1024² plane with tile="auto": 2 workers against 1 worker (floor ≥ 1.75×).
2. BM3D on a 16 × 256² stack (planes in parallel): 2 workers against 1 (floor ≥ 1.75×).
3. The stack on the default path (planes on all cores, library threads = 1) against the raw
   ``bm3d.bm3d`` loop with its default threads (floor ≤ 1.0×), with bits equal to the raw
   single-threaded call plane by plane (checked).
4. The 1024² plane with tile="auto" (default workers) against one raw ``bm3d.bm3d`` call with
   default threads (floor ≤ 1.0×).

The worker processes are started (and bm3d imported there) before the timings; the cold
start is printed separately. σ is given (25 grey levels), so the timings are the denoising.
On a shared machine the ratios are noisy: the load average is printed with them.

Run: ``python benchmarks/bench_workers.py [--repeat N]``. Exits 1 when a floor is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of

SIGMA = 25.0
FLOOR_SPEEDUP = 1.75
FLOOR_RAW = 1.0


def _data():
    from skimage import data, transform

    cam = data.camera().astype(np.float64)
    big = transform.resize(cam, (1024, 1024), order=3, preserve_range=True)
    rng = np.random.default_rng(0)
    plane = (big + rng.normal(0, SIGMA, big.shape)).clip(0, 255).round().astype(np.uint8)
    crops = [cam[r:r + 256, c:c + 256] for r in (0, 128, 256) for c in (0, 128, 256)]
    crops += [cam[::2, ::2], cam[1::2, 1::2], cam[::2, 1::2], cam[1::2, ::2]] + crops[:3]
    stack = np.stack([(c + rng.normal(0, SIGMA, c.shape)).clip(0, 255).round()
                      for c in crops[:16]]).astype(np.uint8)
    return plane, stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="best of N timings (default 1)")
    args = parser.parse_args(argv)

    from napari_restore import _compat, _workers, bm3d_denoise

    bm3d = _compat.bm3d_module()
    plane, stack = _data()
    rep = args.repeat
    print(f"cores: {len(os.sched_getaffinity(0))}, pool size: {_workers.pool_size()}, "
          f"load average before: {os.getloadavg()}")

    t0 = time.perf_counter()
    _workers.prewarm(preload=("numpy", "scipy.fft", "bm3d"))
    bm3d_denoise(stack[:2], SIGMA)  # workers up and bm3d imported in them
    print(f"cold start of the workers + 2 planes: {time.perf_counter() - t0:.1f} s")

    def _with(n, f):
        with _workers.using_workers(n):
            return f()

    rows = []
    t1 = best_of(lambda: _with(1, lambda: bm3d_denoise(plane, SIGMA, tile="auto")), rep)
    t2 = best_of(lambda: _with(2, lambda: bm3d_denoise(plane, SIGMA, tile="auto")), rep)
    rows.append(("1024² tile=auto: 2 workers vs 1 (speed-up)", t1, t2, t1 / t2,
                 t1 / t2 >= FLOOR_SPEEDUP, f">= {FLOOR_SPEEDUP}"))
    s1 = best_of(lambda: _with(1, lambda: bm3d_denoise(stack, SIGMA)), rep)
    s2 = best_of(lambda: _with(2, lambda: bm3d_denoise(stack, SIGMA)), rep)
    rows.append(("16x256² stack: 2 workers vs 1 (speed-up)", s1, s2, s1 / s2,
                 s1 / s2 >= FLOOR_SPEEDUP, f">= {FLOOR_SPEEDUP}"))

    f64 = stack.astype(np.float64) / 255.0
    default_profile = _compat.bm3d_profile("np", 0)  # the library's default threads

    def raw_loop():
        return [bm3d.bm3d(p, SIGMA / 255.0, default_profile) for p in f64]

    raw_s = best_of(raw_loop, rep)
    out = None

    def default_stack():
        nonlocal out
        out = bm3d_denoise(stack, SIGMA)

    ours_s = best_of(default_stack, rep)
    one = _compat.bm3d_profile("np", 1)
    equal = all(np.array_equal(out[i], _to_uint8(bm3d.bm3d(f64[i], SIGMA / 255.0, one)))
                for i in range(len(stack)))
    rows.append(("16x256² stack default path vs raw loop (ratio)", raw_s, ours_s, ours_s / raw_s,
                 ours_s / raw_s <= FLOOR_RAW and equal, f"<= {FLOOR_RAW}, bits equal: {equal}"))

    raw_p = best_of(lambda: bm3d.bm3d(plane.astype(np.float64) / 255.0, SIGMA / 255.0,
                                      default_profile), rep)
    ours_p = best_of(lambda: bm3d_denoise(plane, SIGMA, tile="auto"), rep)
    rows.append(("1024² tile=auto vs raw call, default threads", raw_p, ours_p, ours_p / raw_p,
                 ours_p / raw_p <= FLOOR_RAW, f"<= {FLOOR_RAW}"))

    print(f"{'measure (A = baseline, B = ours)':52s} {'A s':>7s} {'B s':>7s} {'ratio':>6s}  floor")
    for name, a, b, ratio, ok, floor in rows:
        print(f"{name:52s} {a:7.2f} {b:7.2f} {ratio:6.2f}  {floor} {'ok' if ok else 'MISSED'}")
    print(f"load average after: {os.getloadavg()}")
    return 0 if all(r[4] for r in rows) else 1


def _to_uint8(work: np.ndarray) -> np.ndarray:
    from napari_restore._arrays import from_working, value_scale

    return from_working(np.asarray(work), value_scale(np.zeros(1, np.uint8), offset=False))


if __name__ == "__main__":
    sys.exit(main())
