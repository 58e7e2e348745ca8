"""One image through one boundary: functions that return profiles, predictions, metrics."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_restore import (analyze_grain, classic_denoise, extract_grain, predict_clahe_params,
                            preserve_grain, synthesize_grain)
from napari_restore import metrics
from napari_restore._arrays import single_image


def _grainy(seed=0, shape=(96, 96)):
    from skimage import data

    clean = data.camera()[200:200 + shape[0], 100:100 + shape[1]].astype(np.float64) / 255
    rng = np.random.default_rng(seed)
    return clean, np.clip(clean + rng.normal(0, 0.04, shape), 0, 1)


def test_alpha_passes_through_and_residual_alpha_is_zero():
    _, grey = _grainy()
    rgba = np.dstack([grey, grey, grey, np.linspace(0, 1, grey.size).reshape(grey.shape)])
    rgba = (rgba * 255).astype(np.uint8)
    img = single_image(rgba, channel_axis=-1)
    assert img.work.shape == grey.shape + (3,)
    back = img.back(img.work)
    np.testing.assert_array_equal(back, rgba)
    res = img.back(np.zeros_like(img.work), residual=True)
    assert res.dtype == np.float32 and not res[..., 3].any()
    grain = extract_grain(rgba, classic_denoise(rgba, method="wavelet", channel_axis=-1),
                          channel_axis=-1)
    assert grain.shape == rgba.shape and not grain[..., 3].any()


def test_channel_first_colour_goes_through_the_same_boundary():
    _, grey = _grainy(1)
    rgb = np.stack([grey, grey * 0.9, grey * 0.8])  # (3, H, W)
    img = single_image(rgb, channel_axis=0)
    assert img.work.shape == grey.shape + (3,)
    np.testing.assert_allclose(img.back(img.work), rgb, atol=1e-6)
    assert img.back(img.work).shape == rgb.shape


@pytest.mark.parametrize("kind", ["zarr", "dask"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_lazy_arrays_of_every_dtype_reach_every_single_image_function(kind, dtype, tmp_path):
    clean, noisy = _grainy(2)
    scale = 1000.0 if dtype != np.uint16 else 4000.0
    arr = (noisy * scale).astype(dtype)
    ref = (clean * scale).astype(dtype)
    if kind == "zarr":
        lazy = zarr.open(str(tmp_path / "a.zarr"), mode="w", shape=arr.shape, dtype=arr.dtype,
                         chunks=(32, 32))
        lazy[:] = arr
    else:
        lazy = da.from_array(arr, chunks=(32, 32))
    assert analyze_grain(lazy).grain_type == analyze_grain(arr).grain_type
    assert predict_clahe_params(lazy) == predict_clahe_params(arr)
    assert metrics.psnr(lazy, ref) == pytest.approx(metrics.psnr(arr, ref))
    assert metrics.noise_sigma(lazy) == pytest.approx(metrics.noise_sigma(arr))
    assert synthesize_grain((32, 32), analyze_grain(arr), seed=1).shape == (32, 32)


@pytest.mark.parametrize("bad,err", [([[0.5] * 16] * 16, None), (None, TypeError),
                                     ("image", TypeError), (3.0, ValueError)])
def test_non_arrays_get_a_clear_error_before_any_work(bad, err):
    if err is None:  # a nested list of numbers is an array: it works
        assert classic_denoise(bad, method="tv_chambolle", sigma=0.1).shape == (16, 16)
        return
    with pytest.raises(err, match="image"):
        classic_denoise(bad, method="tv_chambolle")
    with pytest.raises(err, match="image"):
        analyze_grain(bad)


def test_metrics_are_finite_on_finite_extremes_and_small_or_colour_inputs():
    rng = np.random.default_rng(0)
    a = rng.uniform(-3e38, 3e38, (16, 16)).astype(np.float32)
    b = rng.uniform(-3e38, 3e38, (16, 16)).astype(np.float32)
    assert np.isfinite(metrics.psnr(a, b)) and np.isfinite(metrics.ssim(a, b))
    small = rng.random((5, 5))
    assert np.isfinite(metrics.ssim(small, small * 0.9))
    rgb = rng.random((5, 6, 3))
    assert np.isfinite(metrics.ssim(rgb, rgb * 0.5, channel_axis=-1))
    with pytest.raises(ValueError, match="at least 3×3"):
        metrics.ssim(rng.random((2, 9)), rng.random((2, 9)))


def test_psnr_matches_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio

    clean, noisy = _grainy(3)
    u = (noisy * 255).astype(np.uint8)
    c = (clean * 255).astype(np.uint8)
    assert metrics.psnr(u, c) == pytest.approx(peak_signal_noise_ratio(c, u, data_range=255), abs=1e-9)


def test_grain_profile_records_its_scale_and_converts_between_dtypes():
    clean, noisy = _grainy(4, shape=(128, 128))
    u8 = np.rint(noisy * 255).astype(np.uint8)
    prof = analyze_grain(u8)
    assert prof.dtype == "uint8" and prof.value_range == (0.0, 255.0)
    c16 = (clean * 65535).astype(np.uint16)
    # an 8-bit profile regrains 16-bit data at the same fraction of the range
    regrained = preserve_grain(c16, c16, profile=prof, mode="resynthesize", seed=1)
    std16 = float(np.std(regrained.astype(np.float64) - c16))
    std8 = float(np.std(synthesize_grain((128, 128), prof, luminance=clean, seed=1)))
    assert std16 / 65535 == pytest.approx(std8, rel=0.2)
    # float data in counts: the grain keeps its size in counts
    counts = noisy * 2000.0 + 500.0
    pc = analyze_grain(counts)
    assert pc.dtype == "float64"
    other = (clean * 5000.0 + 100.0)
    g = synthesize_grain(other.shape, pc, luminance=other, seed=2)
    assert float(np.std(g)) == pytest.approx(0.04 * 2000.0, rel=0.3)
