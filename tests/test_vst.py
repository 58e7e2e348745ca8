"""Generalised Anscombe transform, its inverses, and the one wrapper around the denoisers.

Reduced versions of the floors (96² crops, fixed seeds); the full sweep is
``benchmarks/bench_poisson_gaussian.py``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from napari_restore import (
    NoiseModel,
    Recipe,
    apply_recipe,
    bm3d_denoise,
    bm4d_denoise,
    classic_denoise,
)
from napari_restore._sample_data import fluorescence_clean, poisson_gaussian
from napari_restore.processors import vst
from napari_restore.processors.registry import get_processor
from napari_restore.processors.vst import algebraic_inverse, exact_unbiased_inverse, gat

GAIN, READ, OFFSET = 4.0, 3.0, 100.0
TRUE = NoiseModel(GAIN, READ**2 - GAIN * OFFSET)


def _psnr(x, ref) -> float:
    ref = np.asarray(ref, np.float64)
    span = ref.max() - ref.min()
    return 10 * math.log10(span**2 / np.mean((np.asarray(x, np.float64) - ref) ** 2))


def _fluo(peak: float, seed: int = 0, size: int = 96):
    """A crop of the 256² fluorescence-like image (objects keep their size in crops)."""
    clean = fluorescence_clean(256, seed)[64:64 + size, 64:64 + size]
    return poisson_gaussian(clean, peak=peak, gain=GAIN, read=READ, offset=OFFSET, seed=seed)


@pytest.mark.parametrize("model", [NoiseModel(1.0, 1.0), NoiseModel(5.0, 9 - 500.0),
                                   NoiseModel(20.0, 1 - 20 * 500.0)])
def test_gat_makes_the_noise_unit_variance(model):
    rng = np.random.default_rng(0)
    gain = model.gain
    offset = 0.0 if model.bias > 0 else 500.0
    read = math.sqrt(model.bias + gain * offset)
    for lam in (3.0, 10.0, 50.0):
        z = gain * rng.poisson(lam, 200_000) + offset + rng.normal(0, read, 200_000)
        assert abs(gat(z, model).var() - 1) < 0.1, lam


@pytest.mark.parametrize("gain,read,offset", [(1, 1, 0), (5, 3, 100), (20, 1, 500), (2, 10, 0)])
def test_exact_inverse_keeps_flat_means_the_algebraic_does_not(gain, read, offset):
    """An ideal denoiser of a flat region returns E[f(z)]: the exact unbiased inverse maps it
    back to the region's mean within 1 % of the signal at peak 5; the algebraic one does not."""
    rng = np.random.default_rng(1)
    model = NoiseModel(gain, read**2 - gain * offset)
    peak = 5.0
    exact_errs, alg_errs = [], []
    for lam in (1.0, 2.5, 5.0):
        z = gain * rng.poisson(lam, 400_000) + offset + rng.normal(0, read, 400_000)
        d = gat(z, model).mean()
        truth = gain * lam + offset
        exact_errs.append(abs(exact_unbiased_inverse(d, model) - truth) / (gain * peak))
        alg_errs.append(abs(algebraic_inverse(d, model) - truth) / (gain * peak))
    assert max(exact_errs) <= 0.01, exact_errs
    assert max(alg_errs) > 0.01, alg_errs


def test_bm3d_flat_regions_keep_their_mean_at_peak_5():
    """End to end: two flat halves at 2.5 and 5 photons (peak 5), BM3D through the wrapper."""
    clean = np.ones((96, 192))
    clean[:, :96] = 0.5
    expected, z = poisson_gaussian(clean, peak=5, gain=GAIN, read=READ, offset=OFFSET, seed=2)
    out = bm3d_denoise(z, noise_model=TRUE)
    # the wrapper is GAT → BM3D at σ = 1 → exact inverse; the algebraic inverse of the same
    # denoised transform is the comparison
    den = bm3d_denoise(gat(z, TRUE), 1.0, noise_model="white")
    np.testing.assert_allclose(out, exact_unbiased_inverse(den, TRUE), atol=1e-9)
    alg = algebraic_inverse(den, TRUE)
    inner = (slice(8, -8), slice(8, 88)), (slice(8, -8), slice(104, -8))
    for region in inner:
        truth = expected[region].mean()
        assert abs(out[region].mean() - truth) <= 0.01 * GAIN * 5, region
        assert abs(alg[region].mean() - truth) > 0.01 * GAIN * 5, region


@pytest.mark.parametrize("peak", [5, 20])
def test_automatic_path_beats_plain_bm3d_and_meets_the_oracle(peak):
    expected, z = _fluo(peak, size=72)
    auto = _psnr(bm3d_denoise(z, noise_model="poisson-gaussian"), expected)
    plain = _psnr(bm3d_denoise(z), expected)
    assert auto >= plain + 3.0, (auto, plain)
    std = np.sqrt(TRUE.variance(expected))
    grid = np.geomspace(std.min() * 0.5, std.max() * 1.5, 12)
    oracle = max(_psnr(bm3d_denoise(z, float(s)), expected) for s in grid)
    assert auto >= oracle - 0.3, (auto, oracle)


def test_gaussian_data_loses_at_most_0_2_db():
    from skimage import data

    rng = np.random.default_rng(3)
    clean = data.camera()[100:196, 200:296].astype(np.float64)
    noisy = clean + rng.normal(0, 10, clean.shape)
    plain = _psnr(bm3d_denoise(noisy), clean)
    auto = _psnr(bm3d_denoise(noisy, noise_model="poisson-gaussian"), clean)
    assert auto >= plain - 0.2, (auto, plain)
    # a forced transform with a small gain stays as good
    forced = NoiseModel(0.05, 100.0 - 0.05 * clean.mean())
    assert _psnr(bm3d_denoise(noisy, noise_model=forced), clean) >= plain - 0.2


def test_float_data_equals_integer_data_within_one_count():
    _, z = _fluo(10, seed=1, size=64)
    counts = np.rint(z).astype(np.uint16)
    as_float = counts.astype(np.float32)
    a = bm3d_denoise(counts, noise_model="poisson-gaussian")
    b = bm3d_denoise(as_float, noise_model="poisson-gaussian")
    assert a.dtype == np.uint16 and b.dtype == np.float32
    assert np.max(np.abs(a.astype(np.float64) - b)) <= 1.0


def test_recipe_stores_the_model_and_replays_bit_identically():
    _, z = _fluo(10, size=64)
    spec = get_processor("bm3d_denoise")
    resolved: dict = {}
    first = spec.apply(z, noise_model="poisson-gaussian", resolved=resolved)
    model = NoiseModel.from_param(resolved["noise_model"])
    assert model.kind == "poisson-gaussian"
    for params in ({"noise_model": "poisson-gaussian"}, {"noise_model": model}):
        recipe = Recipe("bm3d_denoise", params=params, source_dtype=z.dtype,
                        resolved=resolved)
        back = Recipe.from_json(recipe.to_json())
        assert back.params == recipe.params
        assert np.array_equal(apply_recipe(back, z), first)


def test_a_stack_is_estimated_once(monkeypatch):
    calls = []
    real = vst.estimate_noise_model

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(vst, "estimate_noise_model", spy)
    stack = np.stack([_fluo(10, seed=s, size=64)[1] for s in range(3)])
    out = classic_denoise(stack, method="wavelet", noise_model="poisson-gaussian")
    assert calls == [stack.shape] and out.shape == stack.shape


def test_classic_and_bm4d_use_the_same_wrapper():
    expected, z = _fluo(10)
    plain = _psnr(classic_denoise(z, method="wavelet"), expected)
    pg = _psnr(classic_denoise(z, method="wavelet", noise_model="poisson-gaussian"), expected)
    assert pg > plain + 1.0, (pg, plain)
    clean = fluorescence_clean(256, 0)[64:96, 64:96]
    vol_e, vol = poisson_gaussian(np.repeat(clean[None], 8, 0), peak=10, gain=GAIN,
                                  read=READ, offset=OFFSET)
    den = bm4d_denoise(vol, noise_model=TRUE)
    assert _psnr(den, vol_e) > _psnr(vol, vol_e) + 3


def test_rgba_alpha_passes_through():
    _, z = _fluo(10, size=64)
    rgba = np.stack([z, z[::-1], z[:, ::-1], np.full_like(z, 7.0)], axis=-1)
    out = bm3d_denoise(rgba, noise_model=TRUE, channel_axis=-1)
    assert np.array_equal(out[..., 3], rgba[..., 3])


def test_bad_input():
    _, z = _fluo(10, size=64)
    with pytest.raises(ValueError, match="sigma"):
        bm3d_denoise(z, 3.0, noise_model="poisson-gaussian")
    with pytest.raises(ValueError, match="psd"):
        bm3d_denoise(z, noise_model="poisson-gaussian", psd=np.ones((3, 3)))
    with pytest.raises(ValueError, match="noise_model.*not positive"):
        bm3d_denoise(z, noise_model=NoiseModel(4.0, -5000.0))
    with pytest.raises(ValueError, match="gain"):
        bm3d_denoise(z, noise_model="poisson-gaussian(gain=-1.0, bias=3.0)")
    with pytest.raises(ValueError, match="noise_model"):
        bm3d_denoise(z, noise_model="poisson")


def test_constant_image_falls_back_to_white_with_a_warning():
    flat = np.full((64, 64), 120, np.uint16)
    with pytest.warns(UserWarning, match="falling back to white"):
        out = bm3d_denoise(flat, noise_model="poisson-gaussian")
    assert np.array_equal(out, flat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res: dict = {}
        get_processor("classic_denoise").apply(flat.astype(np.float32),
                                               noise_model="poisson-gaussian", resolved=res)
    assert res["noise_model"] == "white"
