"""BM3D deblur boundaries: "extend" on linearly blurred crops (a fast subset of the floors in
``benchmarks/bench_deblur_boundary.py``), "periodic" = the raw library, the extension itself,
and constant planes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import _compat, bm3d_deblur
from napari_restore.processors import deblur_boundary
from napari_restore.processors.bm3d import BM3D_DEBLUR, _deblur_stages, gaussian_psf

CROP = 96
BAND = 8


def _psnr(a, ref):
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, float) - ref) ** 2)))


def _bands(a, ref):
    n = BAND
    return {"top": _psnr(a[:n], ref[:n]), "bottom": _psnr(a[-n:], ref[-n:]),
            "left": _psnr(a[:, :n], ref[:, :n]), "right": _psnr(a[:, -n:], ref[:, -n:])}


def _picture(name):
    from skimage import data

    return getattr(data, name)() / 255.0


def _linear_case(scene, psf, noise, seed=0):
    """Linear ('valid') blur of the whole picture, then a centre crop: no boundary effect of its
    own. Returns (sharp crop, blurred noisy crop)."""
    from scipy.signal import fftconvolve

    blurred = fftconvolve(scene, psf, mode="valid")
    kh, kw = psf.shape
    r0, c0 = (blurred.shape[0] - CROP) // 2, (blurred.shape[1] - CROP) // 2
    crop = blurred[r0:r0 + CROP, c0:c0 + CROP]
    clean = scene[r0 + kh // 2:r0 + kh // 2 + CROP, c0 + kw // 2:c0 + kw // 2 + CROP]
    return clean, crop + np.random.default_rng(seed).normal(0.0, noise, crop.shape)


@pytest.mark.parametrize("name,size,noise", [
    ("camera", (15, 7), 0.01), ("coins", (5, 21), 0.005),
    # smooth, low contrast, little noise: the library's fixed first-stage regularisation gained
    # +1.54 dB here (37.94 dB from 36.40); scaled to the image's signal power, +2.27 dB
    ("moon", (9, 9), 0.005),
])
def test_extend_floors_on_a_linearly_blurred_crop(name, size, noise):
    psf = gaussian_psf(size, 2.5)
    clean, blurred = _linear_case(_picture(name), psf, noise)
    out = bm3d_deblur(blurred, psf, sigma=noise)
    periodic = bm3d_deblur(blurred, psf, sigma=noise, boundary="periodic")
    whole_in = _psnr(blurred, clean)
    # the problem being solved: the raw library makes the image worse than its input
    assert _psnr(periodic, clean) < whole_in
    assert _psnr(out, clean) >= whole_in + 2.0, (_psnr(out, clean), whole_in)
    before, after = _bands(blurred, clean), _bands(out, clean)
    for band in before:  # no border band worse than the blurred input ...
        assert after[band] >= before[band], (band, before[band], after[band])
    # ... and the borders are really deblurred, not faded back to the input
    assert np.mean([after[b] - before[b] for b in before]) >= 1.0, (before, after)


def test_12_bit_data_in_uint16_deblurs_as_well_as_full_range_data():
    """12-bit data stored in uint16 sit in the bottom 1/16 of the working range: the library's
    fixed regularisation (α·σ², σ in working units) was then 256 times weaker against the
    signal, and the camera crop gained +1.24 dB (as floats at 1/16: 23.38 dB from 22.14).
    Scaled to the signal power it gains as much as at full range, within 1.5 dB."""
    psf = gaussian_psf((9, 9), 2.5)
    clean, z = _linear_case(_picture("camera"), psf, 0.01)
    z12 = np.round(np.clip(z, 0, 1) * 4095).astype(np.uint16)
    out = bm3d_deblur(z12, psf, sigma=0.01 * 4095)
    assert out.dtype == np.uint16
    gain = _psnr(out / 4095, clean) - _psnr(z12 / 4095, clean)
    full = bm3d_deblur(z12 / 4095, psf, sigma=0.01)
    assert gain >= 2.0, gain
    assert gain >= _psnr(full, clean) - _psnr(z12 / 4095, clean) - 1.5


def test_periodic_is_the_raw_library_call_bit_for_bit():
    from scipy.ndimage import convolve

    clean = _picture("camera")[160:224, 200:264]
    psf = gaussian_psf((9, 9), 2.0)
    z = convolve(clean, psf, mode="wrap") + np.random.default_rng(3).normal(0, 0.01, clean.shape)
    z = np.clip(z, 0, 1)
    out = bm3d_deblur(z, psf_size=(9, 9), psf_sigma=2.0, sigma=0.01, boundary="periodic",
                      clip=False)
    bm3d = _compat.bm3d_module()
    raw = bm3d.bm3d_deblurring(z, _compat.deblur_sigma(0.01, z.shape), psf,
                               _compat.bm3d_profile("np", 1))
    assert np.array_equal(np.squeeze(raw), out)
    # by default clipped to the input's range ([0, 1] here): inside it, nothing changes
    clipped = bm3d_deblur(z, psf_size=(9, 9), psf_sigma=2.0, sigma=0.01, boundary="periodic")
    assert np.array_equal(np.clip(np.squeeze(raw), 0.0, 1.0), clipped)


def test_the_two_stages_are_the_library_call_bit_for_bit():
    """_deblur_stages (the library's bm3d_deblurring, with a first-stage regularisation
    factor) at factor 1 is the library's own call, on a non-square plane."""
    rng = np.random.default_rng(4)
    z = _picture("coins")[50:110, 60:132] + rng.normal(0, 0.02, (60, 72))
    psf = gaussian_psf((7, 5), 1.5)
    bm3d = _compat.bm3d_module()
    psd = _compat.deblur_sigma(0.02, z.shape)
    pro = _compat.bm3d_profile("np", 1)
    raw = bm3d.bm3d_deblurring(z, psd, psf, pro)
    assert np.array_equal(np.squeeze(_deblur_stages(bm3d, z, psd, psf, pro)), np.squeeze(raw))
    other = np.squeeze(_deblur_stages(bm3d, z, psd, psf, pro, ri_scale=16.0))
    assert not np.allclose(other, np.squeeze(raw), atol=1e-4)


def test_extend_is_the_library_on_the_extended_plane_with_the_psf_as_given():
    """"extend" = the library's two stages (bm3d_deblurring, with the first-stage regularisation
    scaled by ri_scale) on deblur_boundary.extend(plane), cropped; the PSF (here an asymmetric
    user PSF) reaches the library unchanged."""
    rng = np.random.default_rng(1)
    plane = np.clip(_picture("camera")[100:164, 300:364] + rng.normal(0, 0.01, (64, 64)), 0, 1)
    psf = np.zeros((5, 7))
    psf[1:4, 2:7] = [[1, 2, 3, 2, 1], [2, 4, 6, 3, 1], [1, 2, 2, 1, 0]]
    psf /= psf.sum()
    out = bm3d_deblur(plane, psf, sigma=0.01, clip=False)
    ext, inner, m = deblur_boundary.extend_for_deblurring(plane, psf, 0.01)
    # a smooth 64² crop (sky and grass): weaker than a whole photograph, α scaled up, and
    # the margin completed again with its regularisation scaled as much
    first, _ = deblur_boundary.extend(plane, psf, 0.01)
    assert m == deblur_boundary.ri_scale(first, psf, 0.01) > 2.0
    assert np.array_equal(ext, deblur_boundary.extend(plane, psf, 0.01, m)[0])
    assert not np.allclose(ext, first)
    assert deblur_boundary.completion_alpha(0.01, m) == pytest.approx(
        m * deblur_boundary.completion_alpha(0.01))
    bm3d = _compat.bm3d_module()
    raw = _deblur_stages(bm3d, ext, _compat.deblur_sigma(0.01, ext.shape), psf,
                         _compat.bm3d_profile("np", 1), ri_scale=m)
    assert np.array_equal(np.squeeze(raw)[inner], out)


def test_extend_scales_the_first_stage_regularisation_with_the_signal_power():
    """ri_scale = REFERENCE_POWER / measured signal power, in [1, MAX_RI_SCALE]: 1 on
    photographs, above 1 on a smooth low-contrast picture, and for the same picture at a lower
    contrast (and noise) higher by the square of the factor, so that the regularisation (α·σ²
    over the signal power) no longer depends on where the data sit in the working range."""
    psf = gaussian_psf((9, 9), 2.5)
    for name in ("camera", "coins"):
        _, z = _linear_case(_picture(name), psf, 0.01)
        ext, _ = deblur_boundary.extend(z, psf, 0.01)
        assert deblur_boundary.ri_scale(ext, psf, 0.01) == 1.0, name
    _, z = _linear_case(_picture("moon"), psf, 0.005)
    ext, _ = deblur_boundary.extend(z, psf, 0.005)
    m = deblur_boundary.ri_scale(ext, psf, 0.005)
    power = deblur_boundary.signal_power(ext, deblur_boundary.psf_otf(psf, ext.shape), 0.005)
    assert 4.0 < m < 64.0 and m == pytest.approx(deblur_boundary.REFERENCE_POWER / power)
    assert deblur_boundary.ri_scale(0.5 * ext, psf, 0.0025) == pytest.approx(4 * m, rel=1e-9)
    assert deblur_boundary.ri_scale(1e-3 * ext, psf, 5e-6) == deblur_boundary.MAX_RI_SCALE
    # a PSF that passes no frequency in the band (a delta): the library's α
    delta = np.ones((1, 1))
    assert deblur_boundary.ri_scale(ext, delta, 0.005) == 1.0


def test_extension_keeps_the_plane_and_makes_the_wrap_continuous():
    scene = _picture("camera")
    psf = gaussian_psf((9, 9), 2.5)
    _, z = _linear_case(scene, psf, 0.005)
    ext, inner = deblur_boundary.extend(z, psf, 0.005)
    (top, bottom), (left, right) = deblur_boundary.pad_widths(z.shape, psf.shape)
    assert ext.shape == (z.shape[0] + top + bottom, z.shape[1] + left + right)
    assert min(top, bottom) >= max(9, deblur_boundary.MIN_PAD)
    assert np.array_equal(ext[inner], z)
    # the crop itself wraps with a jump; across the extension's wrap the step is no larger
    # than the steps next to it (no seam), and a small fraction of the crop's jump
    med = lambda a: float(np.median(np.abs(a)))  # noqa: E731
    assert med(z[0] - z[-1]) > 5 * med(np.diff(z, axis=0))
    for e, raw in ((ext, z), (ext.T, z.T)):
        beside = max(med(e[1] - e[0]), med(e[-1] - e[-2]))
        assert med(e[0] - e[-1]) <= 1.5 * beside
        assert med(e[0] - e[-1]) <= 0.2 * med(raw[0] - raw[-1])
    # and it is blur-like: much less energy than the mirror start where the blur passes little
    start = np.pad(z, deblur_boundary.pad_widths(z.shape, psf.shape), mode="symmetric")
    otf = deblur_boundary.psf_otf(psf, ext.shape)
    hf = np.abs(otf) ** 2 < 1e-3
    energy = lambda a: float(np.sum(np.abs(np.fft.rfft2(a))[hf] ** 2))  # noqa: E731
    assert energy(ext) < 0.5 * energy(start)


def test_pad_widths_cover_the_psf_and_use_fast_fft_sizes():
    from scipy.fft import next_fast_len

    for shape, psf in [((64, 64), (9, 9)), ((100, 37), (15, 7)), ((8, 9), (3, 3)),
                       ((256, 200), (5, 21))]:
        widths = deblur_boundary.pad_widths(shape, psf)
        for n, k, (a, b) in zip(shape, psf, widths, strict=True):
            assert min(a, b) >= max(k, deblur_boundary.MIN_PAD)
            assert next_fast_len(n + a + b, real=True) == n + a + b
            assert n + a + b <= next_fast_len(n + 2 * max(k, deblur_boundary.MIN_PAD), real=True)


def test_psf_otf_centres_like_bm3d():
    """A delta image blurred by the OTF gives the PSF around the delta, with bm3d's centre."""
    psf = np.arange(1.0, 13.0).reshape(3, 4)
    otf = deblur_boundary.psf_otf(psf, (16, 16))
    delta = np.zeros((16, 16))
    delta[8, 8] = 1
    blurred = np.fft.irfft2(np.fft.rfft2(delta) * otf, s=(16, 16))
    cy, cx = int(np.round((3 - 1) / 2)), int(np.round((4 - 1) / 2))
    np.testing.assert_allclose(blurred[8 - cy:8 - cy + 3, 8 - cx:8 - cx + 4], psf, atol=1e-12)


@pytest.mark.parametrize("dtype,value", [
    (np.uint8, 0), (np.uint8, 7), (np.uint8, 255), (np.uint16, 0), (np.uint16, 40000),
    (np.int16, -300), (np.float32, 0.0), (np.float32, 300.0), (np.float64, 0.5),
    (np.float64, 1.0), (np.float64, -2.0),
])
@pytest.mark.parametrize("boundary", ["extend", "periodic"])
def test_constant_plane_is_returned_unchanged(dtype, value, boundary):
    """A blurred constant is that constant: returned as it is (bm3d raised "array must not
    contain infs or NaNs" on an all-zero plane and returned 0.49999 for 0.5)."""
    image = np.full((24, 20), value, dtype=dtype)
    out = bm3d_deblur(image, psf_size=(5, 5), boundary=boundary)
    assert out.dtype == image.dtype and out.shape == image.shape
    assert np.array_equal(out, image)
    assert np.array_equal(image, np.full((24, 20), value, dtype=dtype))  # not mutated


def test_constant_channel_and_stack_plane_pass_through():
    rng = np.random.default_rng(0)
    rgb = np.zeros((32, 32, 3))
    rgb[..., 0] = rng.random((32, 32))
    rgb[..., 2] = 0.25
    out = bm3d_deblur(rgb, psf_size=(3, 3), sigma=0.02, channel_axis=-1)
    assert np.array_equal(out[..., 1], rgb[..., 1]) and np.array_equal(out[..., 2], rgb[..., 2])
    stack = np.stack([np.zeros((32, 32)), rng.random((32, 32))])
    out = bm3d_deblur(stack, psf_size=(3, 3), sigma=0.02)
    assert np.array_equal(out[0], stack[0]) and not np.array_equal(out[1], stack[1])


def test_boundary_parameter_is_a_spec_choice_and_validated():
    param = {p.name: p for p in BM3D_DEBLUR.params}["boundary"]
    assert param.default == "extend" and tuple(param.choices) == ("extend", "periodic")
    with pytest.raises(ValueError, match="boundary='wrap'"):
        bm3d_deblur(np.zeros((32, 32)), boundary="wrap")


def test_input_is_not_mutated():
    rng = np.random.default_rng(2)
    image = (rng.random((40, 40)) * 255).astype(np.uint8)
    copy = image.copy()
    out = bm3d_deblur(image, psf_size=(5, 5), sigma=2.0)
    assert np.array_equal(image, copy) and out.dtype == np.uint8 and out.shape == image.shape
