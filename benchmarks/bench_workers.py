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

A and B of each ratio are timed alternately (A, B, A, B, …), best of ``--repeat``, so that a
change in the machine's load hits both. Run: ``python benchmarks/bench_workers.py [--repeat N]
[--only plane-speedup,stack-speedup,stack-raw,plane-raw]``. Exits 1 when a floor is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

SIGMA = 25.0
FLOOR_SPEEDUP = 1.75
FLOOR_RAW = 1.0
MEASURES = ("plane-speedup", "stack-speedup", "stack-raw", "plane-raw")


def best_pair(fa, fb, repeat: int) -> tuple[float, float]:
    """Best wall times of ``fa`` and ``fb``, timed alternately ``repeat`` times each."""
    ta, tb = [], []
    for _ in range(repeat):
        for f, times in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
    return min(ta), min(tb)


def _data(side: int = 1024, crop: int = 256, planes: int = 16):
    from skimage import data, transform

    cam = data.camera().astype(np.float64)
    big = transform.resize(cam, (side, side), order=3, preserve_range=True)
    rng = np.random.default_rng(0)
    plane = (big + rng.normal(0, SIGMA, big.shape)).clip(0, 255).round().astype(np.uint8)
    step = crop // 2
    crops = [cam[r:r + crop, c:c + crop] for r in range(0, 512 - crop + 1, step)
             for c in range(0, 512 - crop + 1, step)]
    stack = np.stack([(crops[i % len(crops)] + rng.normal(0, SIGMA, (crop, crop)))
                      .clip(0, 255).round() for i in range(planes)]).astype(np.uint8)
    return plane, stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="best of N timings (default 1)")
    parser.add_argument("--small", action="store_true",
                        help="a 512² plane and an 8 × 128² stack (a quick look; not the floors)")
    parser.add_argument("--check-all", action="store_true",
                        help="compare every plane with the raw single-threaded call (default: "
                             "planes 0, 5, 10, 15)")
    parser.add_argument("--only", default=",".join(MEASURES),
                        help=f"comma-separated subset of {','.join(MEASURES)}")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    if only - set(MEASURES):
        parser.error(f"--only takes {', '.join(MEASURES)}; got {args.only!r}")

    from napari_restore import _compat, _workers, bm3d_denoise

    bm3d = _compat.bm3d_module()
    plane, stack = _data(512, 128, 8) if args.small else _data()
    tile = (290, 290) if args.small else "auto"  # 2 x 2 windows small, 2 strips on 1024²
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
    if "plane-speedup" in only:
        t1, t2 = best_pair(lambda: _with(1, lambda: bm3d_denoise(plane, SIGMA, tile=tile)),
                           lambda: _with(2, lambda: bm3d_denoise(plane, SIGMA, tile=tile)), rep)
        rows.append((f"{plane.shape[0]}² tile={tile}: 2 workers vs 1 (speed-up)", t1, t2,
                     t1 / t2, t1 / t2 >= FLOOR_SPEEDUP, f">= {FLOOR_SPEEDUP}"))
    if "stack-speedup" in only:
        s1, s2 = best_pair(lambda: _with(1, lambda: bm3d_denoise(stack, SIGMA)),
                           lambda: _with(2, lambda: bm3d_denoise(stack, SIGMA)), rep)
        rows.append((f"{len(stack)}x{stack.shape[1]}² stack: 2 workers vs 1 (speed-up)", s1, s2,
                     s1 / s2, s1 / s2 >= FLOOR_SPEEDUP, f">= {FLOOR_SPEEDUP}"))

    default_profile = _compat.bm3d_profile("np", 0)  # the library's default threads
    if "stack-raw" in only:
        f64 = stack.astype(np.float64) / 255.0

        def raw_loop():
            return [bm3d.bm3d(p, SIGMA / 255.0, default_profile) for p in f64]

        out = None

        def default_stack():
            nonlocal out
            out = bm3d_denoise(stack, SIGMA)

        raw_s, ours_s = best_pair(raw_loop, default_stack, rep)
        one = _compat.bm3d_profile("np", 1)
        check = range(len(stack)) if args.check_all else range(0, len(stack), 5)  # 4 of 16
        equal = all(np.array_equal(out[i], _to_uint8(bm3d.bm3d(f64[i], SIGMA / 255.0, one)))
                    for i in check)
        rows.append((f"{len(stack)}x{stack.shape[1]}² stack default vs raw loop", raw_s, ours_s,
                     ours_s / raw_s, ours_s / raw_s <= FLOOR_RAW and equal,
                     f"<= {FLOOR_RAW}, bits equal: {equal}"))
    if "plane-raw" in only:
        raw_p, ours_p = best_pair(
            lambda: bm3d.bm3d(plane.astype(np.float64) / 255.0, SIGMA / 255.0, default_profile),
            lambda: bm3d_denoise(plane, SIGMA, tile=tile), rep)
        rows.append((f"{plane.shape[0]}² tile={tile} vs raw call, default threads", raw_p,
                     ours_p, ours_p / raw_p, ours_p / raw_p <= FLOOR_RAW, f"<= {FLOOR_RAW}"))

    print(f"{'measure (A = baseline, B = ours)':52s} {'A s':>7s} {'B s':>7s} {'ratio':>6s}  floor")
    for name, a, b, ratio, ok, floor in rows:
        print(f"{name:52s} {a:7.2f} {b:7.2f} {ratio:6.2f}  {floor} {'ok' if ok else 'MISSED'}")
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(f"load average after: {os.getloadavg()}")
    return 0 if all(r[4] for r in rows) else 1


def _to_uint8(work: np.ndarray) -> np.ndarray:
    from napari_restore._arrays import from_working, value_scale

    return from_working(np.asarray(work), value_scale(np.zeros(1, np.uint8), offset=False))


if __name__ == "__main__":
    sys.exit(main())
