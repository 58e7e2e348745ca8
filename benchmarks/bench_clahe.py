"""lb_clahe on a 4096² RGB image against a plain OpenCV pipeline (RGB→LAB, CLAHE on L, LAB→RGB).

Prints timings and ratios; nothing is asserted. The issue's targets: ≤ 2× with refine, ≤ 1.3×
without. Each round times every variant once, in turn, so that load on the shared machine hits
them alike; a variant's figure is its best round. Also times a 2048² RGB image (the live
preview size), the parameter prediction alone, the float path (a uint16 copy of the image), and
prints how far the uint8 fast path is from the float path on the same image.

Usage: python benchmarks/bench_clahe.py [--size 4096] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def rounds_of(funcs: dict, rounds: int) -> dict[str, float]:
    best = {k: float("inf") for k in funcs}
    for _ in range(rounds):
        for k, f in funcs.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main() -> None:
    import cv2
    from skimage import data

    from napari_restore import lb_clahe, predict_clahe_params

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    print(f"OpenCV threads: {cv2.getNumThreads()}, CPUs: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f} (timings on a busy machine are noisy)")
    print("size   plain_opencv  lb_clahe(no refine)  lb_clahe(refine)  lb_clahe(auto)  predict"
          "  uint16 (float path, refine)")
    kw = dict(channel_axis=-1, clip_limit=2.0, tile_grid=(8, 8))
    for size in (args.size, 2048):
        img = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_CUBIC)
        img16 = img.astype(np.uint16) * 257
        clahe = cv2.createCLAHE(2.0, (8, 8))

        def plain(img=img, clahe=clahe):
            lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
            lab[..., 0] = clahe.apply(lab[..., 0].copy())
            return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)

        t = rounds_of({
            "plain": plain,
            "norefine": lambda img=img: lb_clahe(img, refine=False, **kw),
            "refine": lambda img=img: lb_clahe(img, refine=True, **kw),
            "auto": lambda img=img: lb_clahe(img, channel_axis=-1),
            "predict": lambda img=img: predict_clahe_params(img, channel_axis=-1),
            "u16": lambda img16=img16: lb_clahe(img16, refine=True, **kw),
        }, args.rounds)
        tp = t["plain"]
        print(f"{size:5d}  {tp:10.3f} s  {t['norefine']:8.3f} s ({t['norefine'] / tp:4.2f}×)"
              f"  {t['refine']:8.3f} s ({t['refine'] / tp:4.2f}×)  {t['auto']:8.3f} s"
              f"  {t['predict'] * 1000:6.1f} ms  {t['u16']:8.3f} s ({t['u16'] / tp:4.2f}×)")

    img = data.astronaut()
    print("\nuint8 fast path vs the float path on the same 512² image (levels of 255):")
    for cs in ("lab", "hsv", "rgb"):
        fast = lb_clahe(img, colorspace=cs, **kw).astype(np.float64)
        exact = lb_clahe(img / 255.0, colorspace=cs, **kw) * 255
        d = np.abs(fast - exact)
        print(f"  {cs}: mean {d.mean():.2f}, 99th percentile {np.percentile(d, 99):.2f}, "
              f"max {d.max():.2f}")


if __name__ == "__main__":
    main()
