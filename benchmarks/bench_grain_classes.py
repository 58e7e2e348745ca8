"""Grain classes of white noise on detailed photos: how often it is ``digital_noise``.

Twelve scikit-image photos and textures (greyscale, 256² centre crops) with white Gaussian
noise of σ = 0.01 … 0.15 of the value range, ten seeds each; printed: the number of runs
(of 10) classified ``digital_noise`` per photo and level, and, for the film-grain side, the
class of Gaussian-filtered grain (σ_c = 0.5 … 3) on the same photos. Nothing is asserted;
``tests/test_grain_classify.py`` checks a subset.

Run: ``.venv/bin/python benchmarks/bench_grain_classes.py``

Figures (10 seeds; runs classified digital_noise of 120 per level, σ = 0.01 / 0.02 / 0.03 /
0.05 / 0.1 / 0.15):

- before the whiteness test: 1 / 10 / 10 / 10 / 10 / 9 (only the rocket's sky; every other
  photo read as fine or medium film grain, the brick wall as simulated_regular);
- with it: 56 / 80 / 92 / 100 / 120 / 120. All twelve at σ ≥ 0.1; all but gravel and grass
  at σ ≥ 0.05; at σ ≤ 0.03 the fine texture of chelsea (fur), coins, text, page and the
  camera's coat (σ = 0.01) outweighs the noise at the finest scales.
- film grain σ_c = 0.5 … 3 on the same photos: 0 of 72 classified digital_noise, before and
  after (the grain sizes themselves are still inflated by content on these photos).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from scipy import ndimage

LEVELS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.15)
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "gravel", "grass",
          "text", "moon", "page", "coins")
SIZES = (0.5, 0.7, 1.0, 1.5, 2.0, 3.0)


def grey(name: str, crop: int = 256) -> np.ndarray:
    from skimage import color, data

    img = getattr(data, name)()
    img = color.rgb2gray(img) if img.ndim == 3 else img / 255.0
    h, w = img.shape
    y0, x0 = (h - crop) // 2, (w - crop) // 2
    return img[y0:y0 + crop, x0:x0 + crop]


def grain(clean: np.ndarray, sigma_c: float, seed: int, amp: float = 0.04) -> np.ndarray:
    g = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(clean.shape), sigma_c)
    return np.clip(clean + amp * (0.5 + clean) * g / g.std(), 0.0, 1.0)


def main(seeds: int = 10) -> None:
    from napari_restore import analyze_grain

    t0 = time.perf_counter()
    runs = 0
    total = {s: 0 for s in LEVELS}
    print(f"white noise -> digital_noise (of {seeds} seeds)")
    print(f"{'photo':10s} " + " ".join(f"{s:>5g}" for s in LEVELS))
    for name in PHOTOS:
        clean = grey(name)
        row = []
        for s in LEVELS:
            ok = 0
            for seed in range(seeds):
                noisy = np.clip(clean + s * np.random.default_rng(seed).standard_normal(clean.shape),
                                0.0, 1.0)
                ok += analyze_grain(noisy).grain_type == "digital_noise"
                runs += 1
            total[s] += ok
            row.append(f"{ok:5d}")
        print(f"{name:10s} " + " ".join(row))
    print(f"{'all':10s} " + " ".join(f"{total[s]:5d}" for s in LEVELS)
          + f"  (of {seeds * len(PHOTOS)})")

    print("\nfilm grain (amplitude 0.04·(0.5 + intensity)) -> class, seed 0")
    print(f"{'photo':10s} " + " ".join(f"{s:>8g}" for s in SIZES))
    wrong_white = 0
    for name in PHOTOS:
        clean = grey(name)
        types = [analyze_grain(grain(clean, s, 0)).grain_type for s in SIZES]
        runs += len(SIZES)
        wrong_white += sum(t == "digital_noise" for t in types)
        print(f"{name:10s} " + " ".join(f"{t.split('_')[0]:>8s}" for t in types))
    print(f"grain classified digital_noise: {wrong_white} of {len(PHOTOS) * len(SIZES)}")
    print(f"\n{runs} analyses in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
