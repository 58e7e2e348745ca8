"""The VST wrapper on a multi-output processor (film grain: denoised, grain, regrained).

64² crops; BM3D with white noise inside (the quickest grain denoiser that is still BM3D).
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import NoiseModel
from napari_restore._sample_data import fluorescence_clean, poisson_gaussian
from napari_restore.processors.grain_restore import RESTORE_FILM_GRAIN, restore_film_grain
from napari_restore.processors.vst import exact_unbiased_inverse, gat

GAIN, READ, OFFSET = 4.0, 3.0, 100.0
TRUE = NoiseModel(GAIN, READ**2 - GAIN * OFFSET)


def _crop(dtype=np.uint16, size=64):
    clean = fluorescence_clean(256, 0)[64:64 + size, 64:64 + size]
    return poisson_gaussian(clean, peak=10, gain=GAIN, read=READ, offset=OFFSET, seed=0,
                            dtype=dtype)


def test_film_grain_outputs_come_back_by_their_kind():
    expected, z = _crop()
    before = z.copy()
    den, grain, regr = restore_film_grain(z, noise_model=TRUE, denoiser="bm3d_white")
    assert np.array_equal(z, before)
    assert (den.dtype, grain.dtype, regr.dtype) == (z.dtype, np.float32, z.dtype)
    # the denoised image: the inner run on the transformed image, through the exact inverse
    inner = RESTORE_FILM_GRAIN.apply(gat(z, TRUE), denoiser="bm3d_white")
    want = np.clip(np.rint(exact_unbiased_inverse(inner[0], TRUE)), 0, 65535)
    assert np.array_equal(den, want.astype(np.uint16))
    # the grain layer is input − denoised in counts (the unrounded estimate: within ½ count)
    diff = grain - (z.astype(np.float64) - den)
    assert np.abs(diff).max() <= 0.5 + 1e-4
    assert abs(float(np.mean(grain))) < 0.5  # unbiased inverse: no mean offset in the grain
    # regrained: the grain put back makes it closer to the noisy image than the denoised one
    assert np.mean(np.abs(regr.astype(float) - z)) < 0.5 * np.mean(np.abs(den.astype(float) - z))
    # and the transform helps: the denoised image is closer to the truth than without it
    plain = restore_film_grain(z, denoiser="bm3d_white")[0]
    assert np.mean((den - expected) ** 2) < np.mean((plain - expected) ** 2)


def test_film_grain_estimated_model_strength_zero_and_alpha():
    _, z = _crop(np.float64, 48)
    rgba = np.stack([z, z * 0.9 + 5, z * 1.1 - 5, np.full_like(z, 0.75)], axis=-1)
    resolved: dict = {}
    den, grain, regr = RESTORE_FILM_GRAIN.apply(
        rgba, channel_axis=-1, noise_model="poisson-gaussian", denoiser="wavelet",
        strength=0.0, resolved=resolved)
    model = NoiseModel.from_param(resolved["noise_model"])  # estimated once, reported
    assert model.gain > 0
    assert (den.dtype, grain.dtype, regr.dtype) == (np.float64,) * 3
    assert np.array_equal(regr, den)  # nothing put back: the estimate itself
    assert np.all(den[..., 3] == 0.75) and np.all(grain[..., 3] == 0)
    assert np.allclose(grain[..., :3], rgba[..., :3] - den[..., :3])


def test_film_grain_refuses_what_it_cannot_take():
    _, z = _crop(size=48)
    with pytest.raises(ValueError, match="noise_model"):
        restore_film_grain(z, noise_model="white")
    with pytest.raises(ValueError, match="noise_model"):
        restore_film_grain(z, noise_model="poisson-gaussian(gain=x, bias=1)")


def test_a_recipe_model_is_refused_on_another_dtype():
    """The model is in the recording dtype's units: another integer dtype (or float data)
    is refused, naming the parameter; the same dtype replays."""
    from napari_restore import Recipe, apply_recipe

    _, z = _crop()
    recipe = Recipe("classic_denoise", {"method": "wavelet", "noise_model": TRUE.to_param()},
                    source_dtype="uint16")
    out = apply_recipe(recipe, z)
    assert out.dtype == np.uint16
    for other in (np.clip(z // 2, 0, 255).astype(np.uint8), z.astype(np.int32),
                  z.astype(np.float64)):
        with pytest.raises(ValueError, match=r"noise_model='poisson-gaussian\(gain=4\.0"):
            apply_recipe(recipe, other)
    # a named choice is re-estimated on the image: no refusal
    named = Recipe("classic_denoise", {"method": "wavelet", "noise_model": "poisson-gaussian"},
                   source_dtype="uint16")
    assert apply_recipe(named, z.astype(np.float64)).dtype == np.float64
