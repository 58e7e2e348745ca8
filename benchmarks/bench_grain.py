"""Film-grain benchmark on a 3840×2160 RGB frame (one run; printed ratios, nothing asserted).

- ``analyze_grain`` vs ``skimage.restoration.estimate_sigma`` (target ≤ 5×);
- ``synthesize_grain`` vs drawing the same number of normal samples with numpy (target ≤ 3×).

Run: ``.venv/bin/python benchmarks/bench_grain.py``
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage


def frame(seed: int = 0) -> np.ndarray:
    """A 4K uint8 RGB frame: an upscaled coffee photo with mono film grain (σ_c = 1.2 px)."""
    from skimage import data, transform

    clean = transform.resize(data.coffee(), (2160, 3840), order=1, anti_aliasing=False)
    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.standard_normal((2160, 3840)).astype(np.float32), 1.2)
    g /= g.std()
    lum = clean.mean(axis=-1)
    noisy = clean + (0.03 * (0.5 + lum) * g)[..., None]
    return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    from skimage.restoration import estimate_sigma

    from napari_restore import analyze_grain, synthesize_grain

    img = frame()
    print(f"frame {img.shape} {img.dtype}")
    analyze_grain(img[:256, :256], channel_axis=-1)  # warm-up (calibration table, imports)
    t_an = best_of(lambda: analyze_grain(img, channel_axis=-1))
    t_es = best_of(lambda: estimate_sigma(img, channel_axis=-1, average_sigmas=True))
    prof = analyze_grain(img, channel_axis=-1)
    print(f"analyze_grain        {t_an:7.3f} s  ({prof.grain_type}, σ {prof.sigma:.4f}, "
          f"size {prof.grain_size_px:.2f} px)")
    print(f"estimate_sigma       {t_es:7.3f} s")
    print(f"ratio analyse/estimate_sigma = {t_an / t_es:.2f}x (target <= 5x)")

    shape = img.shape
    t_sy = best_of(lambda: synthesize_grain(shape, prof, seed=1))
    rng = np.random.default_rng(0)
    t_np = best_of(lambda: rng.standard_normal(shape))
    print(f"synthesize_grain     {t_sy:7.3f} s")
    print(f"numpy normal draws   {t_np:7.3f} s  ({np.prod(shape)} float64 samples)")
    print(f"ratio synthesise/numpy = {t_sy / t_np:.2f}x (target <= 3x)")
    lum = img
    t_syl = best_of(lambda: synthesize_grain(shape, prof, luminance=lum, seed=1, channel_axis=-1), 2)
    print(f"synthesize_grain with luminance (NLF scaling) {t_syl:7.3f} s "
          f"= {t_syl / t_np:.2f}x numpy")


if __name__ == "__main__":
    main()
