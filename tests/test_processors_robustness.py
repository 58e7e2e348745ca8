"""Regressions found by the robustness sweep of bm3d_deblur, lb_clahe, bm4d_denoise and
deep_image_prior: the data people bring (12-bit data in uint16, floats in physical units)."""

from __future__ import annotations

import numpy as np
import pytest

#: Deep Image Prior at its smallest: each call well under a second on a CPU.
TINY_DIP = dict(iterations=5, depth=1, channels=4, skip_channels=0, early_stopping=False,
                device="cpu", seed=0)


def _psnr(x: np.ndarray, ref: np.ndarray, peak: float) -> float:
    return float(20 * np.log10(peak / np.sqrt(np.mean((x.astype(float) - ref) ** 2))))


def test_dip_fits_12_bit_data_in_uint16_as_the_same_counts_in_float64():
    """The net ends in a sigmoid: 12-bit data in uint16 sit in 1/16 of the working range
    (0.002-0.06), which it fitted far more slowly than the same counts as float64 (mapped
    to [0, 1]): after 5 iterations the uint16 output sat near half the uint16 range
    (~32000 counts for data of 100-4100), and after 300 iterations on a 64² camera crop it
    was 3 dB worse than its input while float64 gained 6.6 dB. Each plane is now fitted in
    its own range."""
    from napari_restore import deep_image_prior

    counts = np.random.default_rng(0).random((32, 32)) * 4000 + 100
    u16 = np.round(counts).astype(np.uint16)
    a = deep_image_prior(u16, **TINY_DIP)
    b = deep_image_prior(u16.astype(np.float64), **TINY_DIP)
    assert a.dtype == np.uint16 and b.dtype == np.float64
    assert u16.min() <= a.min() and a.max() <= u16.max()
    np.testing.assert_allclose(a, b, atol=2.0)  # counts: only uint16 rounding apart


def test_dip_result_scales_with_float_data_in_physical_units():
    """Floats inside [0, 1] keep their values as the working array: data of ~1e-3 (physical
    units) were fitted in the bottom 1/1000 of the sigmoid. The result now scales with the
    data."""
    from napari_restore import deep_image_prior

    x = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    small = deep_image_prior(x * np.float32(1e-3), **TINY_DIP)
    ref = deep_image_prior(x, **TINY_DIP)
    np.testing.assert_allclose(small, ref * 1e-3, rtol=0, atol=1e-5)  # 1 % of the span


def test_dip_returns_a_constant_plane_unchanged():
    """A constant plane is its own clean image: it came back from a short fit as the net's
    untrained output (a plane of zeros as values of 0.24-0.58, 7 grey levels as 60-150)."""
    from napari_restore import deep_image_prior

    for plane in (np.zeros((32, 32)), np.full((32, 32), 7, np.uint8), np.full((32, 32), 5.0)):
        out = deep_image_prior(plane, **TINY_DIP)
        np.testing.assert_allclose(out, plane, atol=1e-5)


def test_deblur_treats_12_bit_data_in_uint16_as_the_same_counts_in_float64():
    """bm3d_deblur's regularisation (the library's α and the σ floor of 1e-3 of the span)
    is in working units: 12-bit data in uint16 were mapped by 0-65535, so σ = 8 counts was
    floored to 65.5 counts and the inverse over-regularised: 1.3 dB below the same counts
    given as float64 on this 64² crop (2.1 dB on a 96² one at σ = 12). They are now mapped by the bit depth they use (0-4095)."""
    from scipy.ndimage import convolve
    from skimage import data

    from napari_restore import bm3d_deblur
    from napari_restore.processors.bm3d import gaussian_psf

    sharp = data.camera()[100:164, 100:164].astype(float) / 255
    blurred = convolve(sharp, gaussian_psf((9, 9), 2.0), mode="reflect")
    noisy = blurred + np.random.default_rng(1).normal(0, 0.002, blurred.shape)
    truth = sharp * 4000 + 100
    u16 = np.round(noisy * 4000 + 100).astype(np.uint16)
    a = bm3d_deblur(u16, sigma=8.0)
    b = bm3d_deblur(u16.astype(np.float64), sigma=8.0)
    assert a.dtype == np.uint16
    gap = _psnr(b, truth, 4095) - _psnr(a, truth, 4095)
    assert abs(gap) < 0.5, gap
    assert _psnr(a, truth, 4095) > _psnr(u16, truth, 4095) + 4.0


@pytest.mark.parametrize("n", [4, 6])
def test_deblur_centres_even_psfs_as_scipy_does(n):
    """bm3d centres a PSF at np.round((n - 1) / 2), which rounds halves to even: index 2 of
    a 4-wide PSF (scipy's n // 2) but 2 of a 6-wide one (scipy: 3). An image blurred by
    scipy.ndimage.convolve with a 6×6 box came back shifted by one pixel (3× the error)."""
    from scipy.ndimage import convolve
    from skimage import data

    from napari_restore import bm3d_deblur

    sharp = data.camera()[100:164, 100:164].astype(float) / 255
    psf = np.ones((n, n)) / n**2
    blurred = convolve(sharp, psf, mode="reflect")
    blurred += np.random.default_rng(0).normal(0, 0.005, blurred.shape)
    out = bm3d_deblur(blurred, psf, sigma=0.005)
    inner = (slice(8, -8), slice(8, -8))

    def err(dy: int, dx: int) -> float:
        moved = np.roll(out, (dy, dx), axis=(0, 1))
        return float(np.sqrt(np.mean((moved[inner] - sharp[inner]) ** 2)))

    errors = {(dy, dx): err(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert min(errors, key=errors.get) == (0, 0), errors


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32])
def test_deblur_clips_wide_integers_to_the_dtype_range_not_the_blurred_extremes(dtype):
    """With clip on, integer images are clipped to their dtype's range (the documented
    rule): the sharp image reaches beyond the blurred one's extremes. Since 32/64-bit
    integers are scaled by their values' range, _deblur_prepare took that range as the
    dtype's, and int32 counts came back clipped to the blurred image's own min and max."""
    from scipy.ndimage import convolve
    from skimage import data

    from napari_restore import bm3d_deblur
    from napari_restore.processors.bm3d import gaussian_psf

    sharp = data.camera()[100:164, 100:164].astype(float) * 16 + 1000
    blurred = np.round(convolve(sharp, gaussian_psf((9, 9), 2.0), mode="reflect"))
    ref = bm3d_deblur(blurred, sigma=8.0)  # float64 counts: clipped at 0 only
    out = bm3d_deblur(blurred.astype(dtype), sigma=8.0)
    assert out.dtype == dtype
    assert out.max() > blurred.max() and out.min() < blurred.min()
    if dtype != np.uint32:  # (uint32 of 14-bit data are mapped by that bit depth instead)
        np.testing.assert_allclose(out, np.round(ref), atol=1.0)  # the same counts agree


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
