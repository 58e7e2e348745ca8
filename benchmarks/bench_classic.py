"""Overhead of the napari-restore boundary vs the raw library call, on the same data, same run.

Prints ratios (ours / raw); speed is never asserted in tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of  # noqa: E402




def main() -> list[tuple[str, float, float]]:
    import cv2
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    from napari_restore import classic_denoise
    from napari_restore.processors.classic import TV_ITERATIONS
    from napari_restore._sample_data import camera

    _, noisy = camera()
    f = noisy.astype(np.float32) / 255
    sigma = 25 / 255
    rows = [
        ("tv_chambolle 512² uint8",
         best_of(lambda: classic_denoise(noisy, method="tv_chambolle", sigma=sigma)),
         best_of(lambda: denoise_tv_chambolle(f, weight=sigma, eps=0.0,
                                              max_num_iter=TV_ITERATIONS))),
        ("nl_means 512² uint8",
         best_of(lambda: classic_denoise(noisy, method="nl_means", sigma=sigma), 3),
         best_of(lambda: denoise_nl_means(f, h=0.8 * sigma, sigma=sigma, patch_size=5,
                                          patch_distance=6, fast_mode=True), 3)),
        ("opencv_nlm 512² uint8",
         best_of(lambda: classic_denoise(noisy, method="opencv_nlm", sigma=sigma)),
         best_of(lambda: cv2.fastNlMeansDenoising(noisy, None, h=25.0, templateWindowSize=5,
                                                  searchWindowSize=13))),
    ]
    print(f"{'case':<28}{'ours (s)':>10}{'raw (s)':>10}{'ratio':>8}")
    for name, ours, raw in rows:
        print(f"{name:<28}{ours:>10.4f}{raw:>10.4f}{ours / raw:>8.2f}")
    return rows


if __name__ == "__main__":
    main()
