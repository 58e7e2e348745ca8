"""No-reference measures (issue 16): definitions, units, ordering, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from napari_restore import bm3d_denoise, classic_denoise
from napari_restore.calibration import self_supervised_loss
from napari_restore.noref import (lag1_autocorrelation, method_noise, noise_left, noref_metrics,
                                  spectral_flatness, structure_score)


def _noisy(sigma=25.0, seed=0):
    clean = data.camera()[100:196, 100:196].astype(np.float64)
    rng = np.random.default_rng(seed)
    return clean, np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255).astype(np.uint8)


def test_structure_score_sees_fine_texture_wiped_out():
    """The structure map is the source's, the same for every result: chelsea's fur (128²
    centre crop, σ 25), wiped out by BM3D at 2× the best σ, raises the score (−0.28 →
    −0.24). Scored against each result's own gradient it fell (−0.22 → −0.26): the
    over-smoothed result no longer shows the texture it removed."""
    img = data.chelsea()
    h, w = img.shape[:2]
    clean = img[(h - 128) // 2:(h + 128) // 2, (w - 128) // 2:(w + 128) // 2].astype(float)
    rng = np.random.default_rng(105)
    noisy = np.clip(clean + rng.normal(0.0, 25.0, clean.shape), 0, 255).astype(np.uint8)
    best, over = (bm3d_denoise(noisy, s, channel_axis=-1) for s in (25.0, 50.0))
    assert structure_score(noisy, over, channel_axis=-1) > \
        structure_score(noisy, best, channel_axis=-1)


def test_structure_score_does_not_follow_the_noise_it_removed():
    """Energy and structure come from the two halves of the checkerboard: removing exactly
    the noise of a smooth image scores ≈ 0, whatever the noise level (on one set of pixels
    the residual's energy would follow the source's own noise gradients: 0.45)."""
    rng = np.random.default_rng(3)
    smooth = ndimage.gaussian_filter(rng.random((128, 128)), 4) * 200
    for sigma in (2.0, 10.0, 40.0):
        noisy = smooth + rng.normal(0, sigma, smooth.shape)
        assert abs(structure_score(noisy, smooth)) < 0.1, sigma


def test_whiteness_of_white_and_coloured_residuals():
    rng = np.random.default_rng(0)
    white = rng.normal(0.0, 1.0, (128, 128))
    coloured = ndimage.gaussian_filter(white, 1.5)
    assert abs(lag1_autocorrelation(white)) < 0.03
    assert lag1_autocorrelation(coloured) > 0.5
    assert spectral_flatness(white) > 0.9
    assert spectral_flatness(coloured) < 0.3
    # colour: channels averaged; the same numbers for three copies
    rgb = np.stack([white] * 3, axis=-1)
    assert lag1_autocorrelation(rgb, channel_axis=-1) == pytest.approx(lag1_autocorrelation(white))
    assert spectral_flatness(np.zeros((32, 32))) == 1.0


def test_method_noise_is_in_image_units():
    _, noisy = _noisy()
    out = classic_denoise(noisy, method="wavelet", sigma=25.0)
    resid = method_noise(noisy, out)
    np.testing.assert_allclose(resid, noisy.astype(float) - out.astype(float), atol=1e-4)
    # float data in counts: the same residual
    counts = noisy.astype(np.float32) * 10.0
    np.testing.assert_allclose(method_noise(counts, out.astype(np.float32) * 10.0), resid * 10,
                               atol=1e-3)


def test_structure_score_is_higher_when_over_smoothed():
    """The floor's fast version: 2x the oracle σ removes structure the oracle keeps."""
    clean, noisy = _noisy(25.0)
    sigmas = [15.0, 20.0, 25.0, 30.0, 40.0]
    results = {s: bm3d_denoise(noisy, s) for s in sigmas}
    oracle = min(sigmas, key=lambda s: np.mean((results[s].astype(float) - clean) ** 2))
    over = bm3d_denoise(noisy, 2 * oracle)
    assert structure_score(noisy, over) > structure_score(noisy, results[oracle]) + 0.1
    # removing exactly the noise leaves no structure in the residual
    rng = np.random.default_rng(1)
    smooth = ndimage.gaussian_filter(rng.random((96, 96)), 4) * 200
    noise_only = smooth + rng.normal(0, 10, smooth.shape)
    assert abs(structure_score(noise_only, smooth)) < 0.15
    assert structure_score(smooth, smooth) == 0.0  # no residual at all


def test_noise_left_falls_with_smoothing():
    _, noisy = _noisy(25.0)
    light = classic_denoise(noisy, method="wavelet", sigma=5.0)
    strong = classic_denoise(noisy, method="wavelet", sigma=40.0)
    assert noise_left(strong) < noise_left(light) < noise_left(noisy)
    assert 18 < noise_left(noisy) < 30  # grey levels


def test_noref_metrics_bundle_and_loss_of_a_recipe():
    from napari_restore import Recipe

    _, noisy = _noisy(25.0)
    out = classic_denoise(noisy, method="wavelet", sigma=25.0)
    recipe = Recipe("classic_denoise", {"method": "wavelet", "sigma": 25.0}, source_dtype="uint8")
    m = noref_metrics(noisy, out, recipe=recipe)
    assert m.loss == pytest.approx(self_supervised_loss(noisy, "classic_denoise",
                                                        {"method": "wavelet", "sigma": 25.0}))
    assert m.loss == pytest.approx(noref_metrics(noisy, out, recipe=recipe.to_dict()).loss)
    assert m.noise_left == pytest.approx(noise_left(out))
    assert m.structure == pytest.approx(structure_score(noisy, out))
    assert m.residual_std == pytest.approx(np.std(noisy.astype(float) - out), rel=1e-4)
    assert noref_metrics(noisy, out).loss is None
    assert set(m.as_dict()) == {"loss", "noise_left", "structure", "lag1", "flatness",
                                "residual_std"}


def test_bad_input():
    _, noisy = _noisy()
    with pytest.raises(ValueError, match="result has shape"):
        structure_score(noisy, noisy[:50])
    with pytest.raises(ValueError, match="sigma must be"):
        structure_score(noisy, noisy, sigma=0)
    with pytest.raises(ValueError, match="segment must be"):
        spectral_flatness(noisy, segment=2)
    with pytest.raises(ValueError, match="not on the image's scale"):
        method_noise(noisy, noisy.astype(np.float64) * 1000)
    with pytest.raises(ValueError, match="give params= or a Recipe"):
        from napari_restore import Recipe

        self_supervised_loss(noisy, Recipe("classic_denoise", {}), {"sigma": 1.0})
