"""Grain classes on detailed photos: white noise is ``digital_noise`` whatever the content.

Image content leaking into the "flat" blocks used to make white Gaussian noise on a detailed
photo look correlated (fine or medium film grain): 90 of 96 cases in the issue's probe
(12 photos × 4 levels × 2 seeds). The whiteness test (``_hf_statistic``) looks at the highest
frequencies of the blocks with the least content, where content leaks in least.

Levels are in fractions of the value range (0.02 ≈ 5 grey levels of uint8). Dense textures
(cat fur, coins' relief, gravel, grass) carry as much fine-scale variation as weak noise,
so they are tested at the levels where the noise dominates the finest scales:
``benchmarks/bench_grain_classes.py`` measures the whole grid.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import ndimage
from skimage import color, data

from napari_restore import analyze_grain, detect_grain_type
from napari_restore.processors import grain_analysis as ga


@functools.lru_cache(maxsize=None)
def _grey(name: str) -> np.ndarray:
    img = getattr(data, name)()
    img = color.rgb2gray(img) if img.ndim == 3 else img / 255.0
    h, w = img.shape
    y0, x0 = (h - 256) // 2, (w - 256) // 2  # a 256² centre crop: the detailed middle
    return img[y0:y0 + 256, x0:x0 + 256]


PHOTOS = ("astronaut", "camera", "coffee", "rocket", "brick", "text", "moon", "page")
DENSE = {"chelsea": (0.05, 0.1), "coins": (0.05, 0.1), "gravel": (0.1, 0.15),
         "grass": (0.1, 0.15)}
CASES = [(p, s) for p in PHOTOS for s in (0.02, 0.05, 0.1)] + [
    (p, s) for p, levels in DENSE.items() for s in levels]
CASES = [(p, s, k % 3) for k, (p, s) in enumerate(CASES)]  # seeds 0, 1, 2 in turn


@pytest.mark.parametrize("photo,sigma,seed", CASES)
def test_white_noise_on_a_detailed_photo_is_digital_noise(photo, sigma, seed):
    clean = _grey(photo)
    noise = sigma * np.random.default_rng(seed).standard_normal(clean.shape)
    prof = analyze_grain(np.clip(clean + noise, 0.0, 1.0))
    assert prof.grain_type == "digital_noise", prof.grain_size_px
    assert prof.grain_size_px < ga.SIZE_DIGITAL
    assert not any(prof.ar_coeffs)  # a white noise model, not the content's correlation


def test_uint8_photo_with_white_noise():
    clean = data.camera()[128:384, 128:384].astype(np.float64)
    rng = np.random.default_rng(3)
    noisy = np.clip(np.rint(clean + 12.0 * rng.standard_normal(clean.shape)), 0, 255).astype(np.uint8)
    assert detect_grain_type(noisy) == "digital_noise"


def _grain(clean, sigma_c, amp, seed):
    g = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(clean.shape), sigma_c)
    return np.clip(clean + amp * (0.5 + clean) * g / g.std(), 0.0, 1.0)


@pytest.mark.parametrize("sigma_c,expected", [(0.6, "fine_film_grain"), (0.8, "fine_film_grain"),
                                              (1.5, "medium_film_grain")])
def test_film_grain_on_a_detailed_photo_is_not_taken_for_white_noise(sigma_c, expected):
    """The whiteness test never calls correlated grain white: content, if anything, makes
    the spectrum fall faster. (The photo's own faint white noise under coarse grain is
    outweighed: the test asks white noise to carry a share of the variance.)"""
    clean = _grey("astronaut")
    prof = analyze_grain(_grain(clean, sigma_c, 0.04, seed=4))
    assert prof.grain_type != "digital_noise"
    assert prof.grain_size_px >= ga.SIZE_DIGITAL
    hf = ga._hf_statistic(_grain(clean, sigma_c, 0.04, seed=4))
    assert ga.size_from_hf(hf[0]) >= ga.SIZE_DIGITAL or hf[1] < ga.HF_LEVEL * ga._hf_calibration()[2]


def test_whiteness_calibration_is_ordered_and_separates_the_boundary():
    sig, ratio, white_level = ga._hf_calibration()
    assert np.all(np.diff(ratio) <= 0) and ratio[0] > ratio[-1] * 100
    assert white_level > 0
    # a bare white field is read as σ_c below the digital boundary, a σ_c = 0.5 one above it
    rng = np.random.default_rng(7)
    white = rng.standard_normal((256, 256))
    assert ga.size_from_hf(ga._hf_statistic(white)[0]) < ga.SIZE_DIGITAL
    grain = ndimage.gaussian_filter(rng.standard_normal((256, 256)), 0.5)
    assert ga.size_from_hf(ga._hf_statistic(grain)[0]) > ga.SIZE_DIGITAL


def test_brick_texture_with_white_noise_is_not_periodic_grain():
    """Bricks repeat, but the white noise on them does not: the periodicity test of white
    grain looks at the finest scales only."""
    clean = _grey("brick")
    noisy = np.clip(clean + 0.05 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1)
    prof = analyze_grain(noisy)
    assert prof.periodic_peak <= ga.PERIODIC_PEAK and prof.grain_type == "digital_noise"


def test_tiled_white_noise_is_still_simulated_regular():
    rng = np.random.default_rng(5)
    tile = rng.standard_normal((40, 40))
    plate = np.tile(tile, (5, 5))[:200, :200]
    img = np.clip(0.5 + 0.05 * plate, 0, 1)
    assert detect_grain_type(img) == "simulated_regular"
