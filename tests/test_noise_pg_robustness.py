"""Poisson–Gaussian path on the data users bring: units far from 1, odd models, bad input.

Each test failed before its fix (see the commit that added it); all run in well under 2 s.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from napari_restore import (
    NoiseModel,
    bm3d_denoise,
    classic_denoise,
    estimate_noise_model,
    restore_film_grain,
)
from napari_restore._sample_data import fluorescence_clean, poisson_gaussian


def _counts(size: int = 64, seed: int = 21) -> np.ndarray:
    """12-bit camera counts (gain 4, read noise 3, dark level 100), not the other tests'."""
    clean = fluorescence_clean(256, 7)[40:40 + size, 100:100 + size]
    return poisson_gaussian(clean, peak=15, gain=4, read=3, offset=100, seed=seed,
                            dtype=np.uint16)[1]


@pytest.mark.parametrize("power", [-40, 20, 40])
def test_estimate_does_not_depend_on_the_data_units(power):
    """Float data in physical units: counts × 2**power give the model × 2**power (gain) and
    × 4**power (bias), exactly. Values ~1e9 (or ~1e-9) made the fit's normal equations
    numerically rank 1: a Gaussian model (and a NaN warning) instead of a = 4."""
    z = _counts(128, seed=5)
    base = estimate_noise_model(z)
    c = 2.0**power
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = estimate_noise_model(z * c)
    assert model.kind == base.kind == "poisson-gaussian"
    assert model.gain / c == pytest.approx(base.gain, rel=1e-12)
    assert model.bias / c**2 == pytest.approx(base.bias, rel=1e-12)
    # the same counts in units of 1e6 (not a power of two): the same camera, within 0.1 %
    assert estimate_noise_model(z * 1e6).gain / 1e6 == pytest.approx(base.gain, rel=1e-3)


def test_estimate_does_not_depend_on_a_large_offset():
    """Counts + 1e9 (float64) or + 10**12 (int64): the block means' variance cancelled in
    float64 (s2 − s1²/k2 of values near 1e9) and the fit's normal equations were rank 1 (x
    near 1e12 ± 100): a Gaussian model, and a wavelet result 19522 counts off."""
    z = _counts(128, seed=5)
    base = estimate_noise_model(z)
    for data, off in ((z + 1e9, 1e9), (z.astype(np.int64) + 10**12, 1e12)):
        model = estimate_noise_model(data)
        assert model.kind == "poisson-gaussian"
        assert model.gain == pytest.approx(base.gain, rel=1e-5)
        assert model.bias + model.gain * off == pytest.approx(base.bias, rel=1e-4)
    small = _counts()
    plain = classic_denoise(small, method="wavelet", noise_model="poisson-gaussian")
    shifted = classic_denoise(small + 1e9, method="wavelet", noise_model="poisson-gaussian")
    assert np.max(np.abs(shifted - 1e9 - plain)) <= 1.0


def test_tiny_gain_against_the_bias_keeps_the_noise():
    """NoiseModel(1e-9, 9) is Gaussian noise of σ = 3 for all purposes: the transform is
    2√(b/a²) + z/√b ≈ 6e9 + z/3, whose unit noise float32 lost (BM3D returned values up to
    21340 for 90–204). The result must be that of NoiseModel(0, 9)."""
    z = _counts().astype(np.float32)
    for fn in (lambda m: classic_denoise(z, method="wavelet", noise_model=m),
               lambda m: bm3d_denoise(z[:40, :40], noise_model=m)):
        tiny = fn(NoiseModel(1e-9, 9.0))
        gauss = fn(NoiseModel(0.0, 9.0))
        assert np.all(np.isfinite(tiny))
        assert np.max(np.abs(tiny - gauss)) < 1.0


@pytest.mark.parametrize("run", [
    lambda x, m: bm3d_denoise(x, noise_model=m),
    lambda x, m: classic_denoise(x, method="wavelet", noise_model=m),
    lambda x, m: restore_film_grain(x, denoiser="wavelet", noise_model=m),
], ids=["bm3d", "wavelet", "film_grain"])
def test_model_with_noise_beyond_the_image_range_is_refused_naming_noise_model(run):
    """NoiseModel(1e6, 1) on data spanning 114 counts (std 10000 counts): BM3D and the
    classic methods failed with 'sigma=1 is out of range … allowed [0, 0.000186]' (a σ the
    user never gave, in transformed units), film grain returned values above the input's
    maximum. Now a ValueError naming noise_model, in the image's units."""
    z = _counts()
    with pytest.raises(ValueError,
                       match=r"^noise_model: .*std of 10198 .*whole range \(90 to 204\)"):
        run(z, NoiseModel(1e6, 1.0))


def test_constant_image_with_a_given_model_still_runs():
    """(The range check above must not refuse a constant image: it has no range.)"""
    flat = np.full((64, 64), 100, np.uint16)
    out = classic_denoise(flat, method="wavelet", noise_model=NoiseModel(4.0, -391.0))
    assert out.shape == flat.shape and out.dtype == flat.dtype


def test_gaussian_model_too_large_names_noise_model_not_sigma():
    z = _counts().astype(np.float32)
    with pytest.raises(ValueError, match=r"^noise_model: .*√bias = 100000; sigma=100000 is out"):
        bm3d_denoise(z, noise_model=NoiseModel(0.0, 1e10))


def test_refused_input_gets_its_error_without_a_fallback_warning():
    """NaN, or planes too small for the processor: the run's own error, not first a warning
    'falling back to white Gaussian noise' and then that error."""
    nan = _counts().astype(np.float64)
    nan[3, 4] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="NaN"):
            classic_denoise(nan, method="wavelet", noise_model="poisson-gaussian")
        with pytest.raises(ValueError, match="too small"):
            restore_film_grain(_counts()[:16, :16], noise_model="poisson-gaussian")


def test_colour_bm3d_raises_no_numpy_warning():
    """Every colour BM3D call warned 'invalid value encountered in divide' and 'divide by
    zero' (the colour matrix taken from a transform of a zero image)."""
    z = _counts(40)
    rgb = np.stack([z, z[::-1], z[:, ::-1]], axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = bm3d_denoise(rgb, noise_model=NoiseModel(4.0, -391.0), channel_axis=-1)
    assert out.shape == rgb.shape and out.dtype == rgb.dtype


def test_noise_model_fields_are_validated_with_clear_errors():
    with pytest.raises(ValueError, match="points must be"):
        NoiseModel(4.0, -391.0, points=((1.0, 2.0),))
    with pytest.raises(ValueError, match="points must be finite"):
        NoiseModel(4.0, -391.0, points=((1.0, float("nan"), 30),))
    with pytest.raises(ValueError, match="residual must be finite"):
        NoiseModel(4.0, -391.0, residual=float("nan"))
    with pytest.raises(TypeError, match="residual must be a number"):
        NoiseModel.from_json(json.dumps({"gain": 4.0, "bias": -391.0, "residual": None}))
    with pytest.raises(TypeError, match="dtype must be None or a dtype name"):
        NoiseModel.from_json(json.dumps({"gain": 4.0, "bias": -391.0, "dtype": 5}))
    model = NoiseModel(4.0, -391.0, dtype=np.uint16)
    assert model.dtype == "uint16"
    assert NoiseModel.from_json(model.to_json()).dtype == "uint16"


def test_per_plane_error_names_the_plane():
    z = _counts()
    stack = np.stack([z, z[::-1], np.full_like(z, 100)])
    with pytest.raises(ValueError, match="^plane 2 of 3 .*constant"):
        estimate_noise_model(stack, per_plane=True)


def test_counts_with_many_zeros_say_they_are_left_out_as_clipped():
    """Photon counts at 0.5 photons/pixel: every window touches a 0 (the data's minimum,
    taken for clipping); the error said only 'texture and edges only, or too small'."""
    counts = np.random.default_rng(8).poisson(0.5, (128, 128)).astype(np.uint16)
    with pytest.raises(ValueError, match=r"100 % of the windows touch pixels at the data's "
                                         r"minimum \(0\).*clipped"):
        estimate_noise_model(counts)


def test_pure_poisson_counts_with_median_zero_take_noise_model_1_0():
    """Photon counts at ~0.3 photons/pixel (median 0): the textbook model NoiseModel(1, 0)
    (variance = mean, exactly 0 at the median) was refused as 'not positive at the image's
    median'. A negative variance there is still refused."""
    from skimage import data

    lam = data.camera()[100:164, 200:264].astype(np.float64) / 255.0
    counts = np.random.default_rng(3).poisson(lam).astype(np.float32)
    assert np.median(counts) == 0
    out = classic_denoise(counts, method="wavelet", noise_model=NoiseModel(1.0, 0.0))
    assert np.mean((out - lam) ** 2) < 0.2 * np.mean((counts - lam) ** 2)
    with pytest.raises(ValueError, match="noise_model.*not positive at the image's median"):
        classic_denoise(counts, method="wavelet", noise_model=NoiseModel(1.0, -0.5))


def test_window_statistics_equal_a_direct_computation():
    """The sliding-window sums of ``_block_stats`` (uniform filters and correlations) against
    a direct per-window least-squares computation: the block means' residual variance about
    their plane, one half's mean and its noise variance (diagonal details' mean square,
    horizontal/vertical details about their plane), on a curved, shaded plane."""
    from scipy import ndimage

    from napari_restore.processors import noise_pg

    rng = np.random.default_rng(0)
    z = rng.normal(100, 5, (40, 36)) + np.add.outer(np.arange(40) ** 2 * 0.1,
                                                    np.arange(36) * 0.7)
    st = noise_pg._block_stats(z)
    a, b, c, d = z[0::2, 0::2], z[0::2, 1::2], z[1::2, 0::2], z[1::2, 1::2]
    mean, diag = (a + b + c + d) / 4, (a - b - c + d) / 2
    hor, ver = (a + b - c - d) / 2, (a - b + c - d) / 2
    w, r = noise_pg.WINDOW, noise_pg.WINDOW // 2
    clip = ((z == z.min()) | (z == z.max())).reshape(20, 2, 18, 2).any(axis=(1, 3))
    bad = ndimage.maximum_filter(clip, w, mode="constant", cval=True)
    yy, xx = np.mgrid[0:w, 0:w] - (w - 1) / 2
    basis = np.stack([np.ones(w * w), xx.ravel(), yy.ravel()], axis=1)

    def residual(values, rows):
        coef = np.linalg.lstsq(basis[rows], values, rcond=None)[0]
        return float(np.sum((values - basis[rows] @ coef) ** 2))

    k = 0
    for i in range(r, mean.shape[0] - r):
        for j in range(r, mean.shape[1] - r):
            if bad[i, j]:
                continue
            win = (slice(i - r, i - r + w), slice(j - r, j - r + w))
            ii, jj = np.mgrid[i - r:i - r + w, j - r:j - r + w]
            half = ((ii + jj) % 2 == 0).ravel()
            everything = np.ones(w * w, bool)
            assert st["Vp"][k] == pytest.approx(
                residual(mean[win].ravel(), everything) / (w * w - 3), rel=1e-9, abs=1e-9)
            assert st["Vm"][k] == pytest.approx(np.var(mean[win], ddof=1), rel=1e-9, abs=1e-9)
            energy = (np.sum(diag[win].ravel()[half] ** 2) + residual(hor[win].ravel()[half], half)
                      + residual(ver[win].ravel()[half], half))
            assert st["vA"][k] == pytest.approx(energy / (3 * half.sum() - 6), rel=1e-9)
            assert st["MA"][k] == pytest.approx(mean[win].ravel()[half].mean() - z.min(),
                                                rel=1e-12)
            k += 1
    assert k == st["Vm"].size > 150
