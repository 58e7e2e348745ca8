"""lb_clahe on a 4096² RGB image against a plain OpenCV pipeline (RGB→LAB, CLAHE on L, LAB→RGB).

Prints timings (best of 5) and ratios; nothing is asserted. The issue's targets: ≤ 2× with
refine, ≤ 1.3× without. Also times a 2048² RGB image (the live-preview size) and the
parameter prediction alone.

Usage: python benchmarks/bench_clahe.py [--size 4096]
"""

from __future__ import annotations

import argparse
import time



def best(f, n=5):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    import cv2
    from skimage import data

    from napari_restore import lb_clahe, predict_clahe_params

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    rows = []
    for size in (args.size, 2048):
        img = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_CUBIC)
        clahe = cv2.createCLAHE(2.0, (8, 8))

        def plain():
            lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
            lab[..., 0] = clahe.apply(lab[..., 0].copy())
            return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)

        t_plain = best(plain)
        kw = dict(channel_axis=-1, clip_limit=2.0, tile_grid=(8, 8))
        t_norefine = best(lambda: lb_clahe(img, refine=False, **kw))
        t_refine = best(lambda: lb_clahe(img, refine=True, **kw))
        t_auto = best(lambda: lb_clahe(img, channel_axis=-1))
        t_pred = best(lambda: predict_clahe_params(img, channel_axis=-1))
        rows.append((size, t_plain, t_norefine, t_refine, t_auto, t_pred))
    import os

    print(f"OpenCV threads: {cv2.getNumThreads()}, CPUs: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f} (timings on a busy machine are noisy)")
    print("size   plain_opencv  lb_clahe(no refine)  lb_clahe(refine)  lb_clahe(auto)  predict")
    for size, tp, tn, tr, ta, tq in rows:
        print(f"{size:5d}  {tp:10.3f} s  {tn:8.3f} s ({tn / tp:4.2f}×)  {tr:8.3f} s ({tr / tp:4.2f}×)"
              f"  {ta:8.3f} s  {tq * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
