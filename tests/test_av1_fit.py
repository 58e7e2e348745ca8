"""The luma AR coefficients fitted on the decoder's templates (grain_av1_fit)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import analyze_grain, apply_av1_grain
from napari_restore.processors import grain_av1 as A
from napari_restore.processors import grain_av1_fit as F


@pytest.mark.parametrize("shift, gss, scale", [(7, 0, 40), (6, 2, 10), (8, 3, 60)])
def test_batched_templates_are_the_specs_bit_for_bit(shift, gss, scale):
    rng = np.random.default_rng(shift)
    cy = tuple(int(v) for v in rng.integers(-scale // 2, scale, 24))
    seeds = (1, 77, 7391, 65535)
    got = F.luma_templates(seeds, shift, gss, cy)
    for t, s in zip(got, seeds):
        assert np.array_equal(t, A._luma_template(s, 3, shift, gss, cy, 8)), s
    if gss == 0:
        assert F.clipped_fraction(got) > 0.01  # the clipping branch is exercised


def _measured(sigma_c, n=256):
    from scipy import ndimage

    base = np.tile(np.linspace(0.2, 0.8, n), (n, 1))
    g = ndimage.gaussian_filter(np.random.default_rng(3).standard_normal((n, n)), sigma_c)
    g /= g.std()
    scan = np.clip(np.rint((base + (0.012 + 0.02 * base) * g) * 255), 0, 255).astype(np.uint8)
    return base, analyze_grain(scan)


def test_coarse_grain_keeps_its_statistics_through_the_av1_synthesis():
    """2 px grain (beyond the codec test's 1.6): the table's grain, as the spec synthesises
    it over 8 frames (bit-exact with aomdec, see test_av1_codec), analysed, gives the
    profile's size, spectrum and NLF. The profile's own AR, quantised, gave +31 % size,
    32 % NLF error and spectrum correlation 0.95."""
    base, prof = _measured(2.0)
    report = []
    params = A.profile_to_params(prof, report=report)
    assert any("on the decoder's templates" in text for _, text in report), report
    y = np.rint(base * 255).astype(np.uint8)
    u = np.full((128, 128), 128, np.uint8)
    frames = [apply_av1_grain(y, u, u, params, frame=k)[0] for k in range(8)]
    got = analyze_grain(np.block([frames[:4], frames[4:]]), denoised=np.block([[y] * 4] * 2))
    assert abs(got.grain_size_px / prof.grain_size_px - 1) <= 0.15
    assert np.corrcoef(prof.spectrum_power, got.spectrum_power)[0, 1] >= 0.98
    errs = [float(got.sigma_at(i)) / s - 1 for i, s, c in
            zip(prof.nlf_intensity, prof.nlf_sigma[0], prof.nlf_count) if c >= 4]
    assert len(errs) >= 5 and max(map(abs, errs)) <= 0.10, errs


def test_the_model_spectrum_is_the_analysiss_on_a_stationary_process():
    """_spectrum_map predicts the analysis's radial spectrum of detrended, windowed blocks."""
    from scipy import ndimage

    from napari_restore.processors import grain_analysis as G

    rng = np.random.default_rng(0)
    f = ndimage.gaussian_filter(rng.standard_normal((1024, 1024)), 1.2, mode="wrap")
    blocks = G._detrend(G._block_view(f, 32, 32), G._plane_basis(32))
    norm = (blocks / blocks.std(axis=1, keepdims=True)).reshape(-1, 32, 32)
    _, measured = G._radial_spectrum(norm, 32)
    full = np.fft.fftshift(np.fft.irfft2(np.abs(np.fft.rfft2(f)) ** 2, s=f.shape))
    rho = full[512 - 31:512 + 32, 512 - 31:512 + 32] / full[512, 512]
    pred = F._model_spectrum(rho)
    assert np.max(np.abs(pred - measured)) <= 0.01
    assert np.corrcoef(pred, measured)[0, 1] >= 0.999
    assert abs(F._model_size(rho) - 1.2) <= 0.05
