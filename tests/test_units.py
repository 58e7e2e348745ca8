"""Intensity parameters are in the image's own units (grey levels / data values).

Every denoiser is checked against the raw library call with the same σ on the same array,
for float data in any range and offset (unclipped noise, counts, negative values) and for
integer data (grey levels), on several images and seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

from napari_restore import bm3d_denoise, bm4d_denoise, classic_denoise
from napari_restore._arrays import ValueScale, value_scale, working_params
from napari_restore.processors.registry import get_processor
from napari_restore.processors.classic import TV_ITERATIONS


def _psnr(a, ref):
    a = np.asarray(a, np.float64)
    ref = np.asarray(ref, np.float64)
    peak = float(ref.max() - ref.min()) or 1.0
    return 10 * np.log10(peak**2 / np.mean((a - ref) ** 2))


def _crop(name, size=64, at=(60, 90)):
    img = getattr(skdata, name)()
    if img.ndim == 3:
        img = img[..., :3].mean(-1)
    r, c = at
    return img[r:r + size, c:c + size].astype(np.float64) / 255.0


# (image, crop origin, noise seed, scale, offset): unclipped noise, counts, negative values
FLOAT_CASES = [
    ("camera", (60, 90), 0, 1.0, 0.0),
    ("camera", (60, 90), 1, 1000.0, 100.0),
    ("astronaut", (100, 200), 2, 1.0, -0.5),
    ("coins", (40, 40), 3, 3137.0, -80.0),
    ("moon", (200, 200), 4, 0.01, 0.0),
]


def _float_case(name, at, seed, scale, offset, sigma=0.08):
    clean = _crop(name, at=at)
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)  # not clipped
    return clean * scale + offset, noisy * scale + offset, sigma * scale


@pytest.mark.parametrize("name,at,seed,scale,offset", FLOAT_CASES)
def test_bm3d_float_any_range_equals_raw_library(name, at, seed, scale, offset):
    import bm3d

    clean, z, s = _float_case(name, at, seed, scale, offset)
    ours = bm3d_denoise(z, s)
    raw = bm3d.bm3d(z, s)
    assert abs(_psnr(ours, clean) - _psnr(raw, clean)) < 0.01


@pytest.mark.parametrize("dtype,levels,seed", [(np.uint8, 25, 0), (np.uint8, 10, 5),
                                               (np.uint16, 160, 1), (np.uint16, 3000, 2)])
def test_bm3d_integer_sigma_in_grey_levels_equals_raw_library(dtype, levels, seed):
    import bm3d

    top = 255 if dtype == np.uint8 else 4095 * (16 if levels > 1000 else 1)  # 12-bit and 16-bit
    clean = _crop("camera" if seed % 2 else "astronaut", at=(80, 150)) * top
    rng = np.random.default_rng(seed)
    u = np.clip(np.rint(clean + rng.normal(0, levels, clean.shape)), 0, np.iinfo(dtype).max)
    u = u.astype(dtype)
    ours = bm3d_denoise(u, levels)
    raw = np.clip(np.rint(bm3d.bm3d(u.astype(np.float64), levels)), 0, np.iinfo(dtype).max)
    assert ours.dtype == dtype
    assert abs(_psnr(ours, clean) - _psnr(raw.astype(dtype), clean)) < 0.01


def test_bm4d_float_counts_equals_raw_library():
    import bm4d

    rng = np.random.default_rng(7)
    clean = np.zeros((6, 24, 24))
    clean[:, 6:18, 6:18] = 1.0
    clean = clean * 2500.0 + 300.0
    z = clean + rng.normal(0, 400.0, clean.shape)
    ours = bm4d_denoise(z, 400.0)
    raw = np.moveaxis(bm4d.bm4d(np.ascontiguousarray(np.moveaxis(z, 0, -1)), 400.0), -1, 0)
    assert abs(_psnr(ours, clean) - _psnr(raw, clean)) < 0.01


@pytest.mark.parametrize("name,at,seed,scale,offset", FLOAT_CASES[1:4])
@pytest.mark.parametrize("method", ["nl_means", "tv_chambolle", "wavelet"])
def test_classic_float_any_range_equals_scikit_image(method, name, at, seed, scale, offset):
    clean, z, s = _float_case(name, at, seed, scale, offset)
    ours = classic_denoise(z, method=method, sigma=s)
    if method == "nl_means":
        raw = denoise_nl_means(z, h=0.8 * s, sigma=s, patch_size=5, patch_distance=6,
                               fast_mode=True)
    elif method == "tv_chambolle":
        raw = denoise_tv_chambolle(z, weight=s, eps=0.0, max_num_iter=TV_ITERATIONS)
    else:
        raw = denoise_wavelet(z, sigma=s, method="BayesShrink", mode="soft", rescale_sigma=True)
    assert abs(_psnr(ours, clean) - _psnr(raw, clean)) < 0.01


@pytest.mark.parametrize("dtype,levels", [(np.uint8, 20), (np.uint16, 900)])
def test_opencv_nlm_on_integers_equals_cv2(dtype, levels):
    import cv2

    top = 255 if dtype == np.uint8 else 65535
    clean = _crop("coins", at=(50, 60)) * top
    rng = np.random.default_rng(3)
    u = np.clip(np.rint(clean + rng.normal(0, levels, clean.shape)), 0, top).astype(dtype)
    ours = classic_denoise(u, method="opencv_nlm", sigma=levels)
    if dtype == np.uint8:
        raw = cv2.fastNlMeansDenoising(u, None, h=float(levels), templateWindowSize=5,
                                       searchWindowSize=13)
    else:
        raw = cv2.fastNlMeansDenoising(u, h=[float(levels)], templateWindowSize=5,
                                       searchWindowSize=13, normType=cv2.NORM_L1)
    assert abs(_psnr(ours, clean) - _psnr(raw, clean)) < 0.01


def test_sigma_in_counts_is_accepted_and_range_is_checked_in_the_images_units():
    rng = np.random.default_rng(0)
    counts = (1000 + 300 * rng.random((32, 32))).astype(np.float32)  # spans about 300 counts
    out = classic_denoise(counts, method="tv_chambolle", sigma=31.37)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match=r"sigma=5000 is out of range.*data units.*span"):
        classic_denoise(counts, method="tv_chambolle", sigma=5000)
    u8 = (rng.random((32, 32)) * 255).astype(np.uint8)
    with pytest.raises(ValueError, match=r"allowed \[0, 255\] \(grey levels of this uint8"):
        classic_denoise(u8, method="tv_chambolle", sigma=300)
    with pytest.raises(ValueError, match=r"sigma=-1 is out of range"):
        classic_denoise(u8, method="tv_chambolle", sigma=-1)
    assert classic_denoise(u8.astype(np.uint16), method="tv_chambolle", sigma=300).dtype == np.uint16


def test_a_hot_pixel_does_not_change_what_sigma_means():
    clean, z, s = _float_case("camera", (60, 90), 11, 1000.0, 100.0)
    hot = z.copy()
    hot[0, 0] = z.max() * 50  # one hot pixel widens the range 50 times
    a = classic_denoise(z, method="nl_means", sigma=s)  # a local method: far pixels unchanged
    b = classic_denoise(hot, method="nl_means", sigma=s)
    far = (slice(16, None), slice(16, None))
    assert abs(_psnr(a[far], clean[far]) - _psnr(b[far], clean[far])) < 0.05
    raw = denoise_nl_means(hot, h=0.8 * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True)
    assert abs(_psnr(b[far], clean[far]) - _psnr(raw[far], clean[far])) < 0.01


def test_float_data_in_unit_range_is_not_rescaled():
    scale = value_scale(np.array([[0.2, 0.7]], np.float32))
    assert scale.identity
    assert working_params({"sigma": 0.1}, {"sigma": 1}, scale) == {"sigma": 0.1}


def test_working_params_converts_with_the_data_affine():
    scale = ValueScale(np.dtype(np.uint16), 0.0, 65535.0)
    out = working_params({"sigma": 655.35, "psd": np.full((2, 2), 65535.0**2), "n": 3},
                         {"sigma": 1, "psd": 2}, scale)
    assert out["sigma"] == pytest.approx(0.01)
    assert np.allclose(out["psd"], 1.0)
    assert out["n"] == 3


@pytest.mark.parametrize("dtype,levels", [(np.uint8, 25), (np.uint16, 25 * 257)])
def test_auto_sigma_is_reported_in_grey_levels(dtype, levels, camera_pair):
    clean, _ = camera_pair
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(2)
    u = np.clip(clean.astype(np.float64) / 255 * top + rng.normal(0, levels, clean.shape), 0, top)
    resolved: dict = {}
    spec = get_processor("classic_denoise")
    spec.apply(u.astype(dtype), resolved=resolved, method="tv_chambolle")
    assert resolved["sigma"] == pytest.approx(levels, rel=0.25)


def test_auto_sigma_per_plane_is_a_list_when_planes_differ():
    rng = np.random.default_rng(4)
    base = _crop("camera") * 200
    stack = np.stack([base + rng.normal(0, s, base.shape) for s in (5.0, 20.0)]).astype(np.float32)
    resolved: dict = {}
    get_processor("classic_denoise").apply(stack, resolved=resolved, method="tv_chambolle")
    lo, hi = resolved["sigma"]
    assert lo == pytest.approx(5.0, rel=0.3) and hi == pytest.approx(20.0, rel=0.3)


def test_extreme_finite_values_map_without_overflow():
    img = np.zeros((32, 32), np.float32)
    img[::2] = 3e38
    img[1::2] = -3e38
    out = classic_denoise(img, method="tv_chambolle", sigma=1e37)
    assert np.isfinite(out).all() and out.dtype == np.float32
    huge = np.zeros((16, 16))
    huge[0, 0], huge[1, 1] = 1.7e308, -1.7e308
    with pytest.raises(ValueError, match="span exceeds the float64 range"):
        classic_denoise(huge, method="tv_chambolle")
