"""Issue 20, items 4 and 5: arguments of the wrong kind get a clear error naming them.

Each case was an internal error (numpy's "inhomogeneous shape", "'int' object is not
callable", a float32 bound refused by rounding, NaN from bm3d on a grey RGB plane, ±inf
from a float16 result past 65504); see ``tests/test_properties.py`` for the random matrix.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import napari_restore as nr


def _u8(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(128 + 25 * rng.standard_normal((n, n)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("psf, exc, words", [
    ([[1, 2], [3]], ValueError, "psf must be a rectangular array"),
    ("abc", TypeError, "psf must be a real numeric array"),
    ({"a": 1}, TypeError, "psf must be a numeric array"),
    (np.ones((3, 3, 3)), ValueError, "psf must be a 2-D array"),
])
def test_bm3d_deblur_psf_of_the_wrong_kind(psf, exc, words):
    with pytest.raises(exc, match=words):
        nr.bm3d_deblur(_u8(), psf=psf, sigma=5)


def test_ragged_lists_are_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="image must be a rectangular array"):
        nr.lb_clahe([[1, 2], [3]])
    with pytest.raises(ValueError, match="psd must be a rectangular array"):
        nr.bm3d_denoise(_u8(), 5, psd=[[1, 2], [3]])
    with pytest.raises(ValueError, match="denoised must be a rectangular array"):
        nr.analyze_grain(_u8(), denoised=[[1, 2], [3]])


@pytest.mark.parametrize("cancel", [5, "stop", 1.5, object()])
def test_cancel_of_the_wrong_kind(cancel):
    img = _u8(32)
    msg = "cancel must be a threading.Event, a callable"
    with pytest.raises(TypeError, match=msg):
        next(nr.iter_deep_image_prior(img, iterations=2, cancel=cancel))
    with pytest.raises(TypeError, match=msg):
        nr.get_processor("classic_denoise").apply(img, cancel=cancel)
    with pytest.raises(TypeError, match=msg):
        nr.apply_recipe(nr.Recipe("classic_denoise", {"method": "tv_chambolle"}), img,
                        cancel=cancel)


def test_cancel_of_every_allowed_kind_still_works():
    img = _u8(32)
    spec = nr.get_processor("classic_denoise")
    for cancel in (None, threading.Event(), lambda: False):
        assert spec.apply(img, cancel=cancel, method="tv_chambolle").shape == img.shape
    with pytest.raises(nr.Cancelled):
        spec.apply(img, cancel=lambda: True, method="tv_chambolle")


def test_analyze_grain_denoised_not_on_the_image_scale():
    img = _u8(96)
    with pytest.raises(ValueError, match="denoised is not on the image's scale.*grey levels"):
        nr.analyze_grain(img, denoised=img * 1000.0)
    with pytest.raises(ValueError, match="denoised is not on the image's scale"):
        nr.extract_grain(img, img * -5.0)
    with pytest.raises(ValueError, match="denoised is not on the image's scale"):
        nr.preserve_grain(img, img * 1000.0)
    # the same image in the image's units, as fractions, or as uint16: no grain
    for same in (img.astype(float), img / 255.0, img.astype(np.uint16) * 257):
        assert nr.analyze_grain(img, denoised=same).sigma == 0.0
        assert np.abs(nr.extract_grain(img, same)).max() < 1e-9


@pytest.mark.parametrize("value", [np.float32(0.01), np.float32(40.0), np.float16(0.01)])
def test_float32_values_at_a_bound_are_accepted(value):
    """float32(0.01) is 0.0099999998 as a float64: it is the bound, within float32 rounding."""
    out = nr.lb_clahe(_u8(), clip_limit=value, tile_grid=(2, 2), refine=False)
    assert out.shape == (48, 48)
    with pytest.raises(ValueError, match="clip_limit=0.0099 is out of range"):
        nr.lb_clahe(_u8(), clip_limit=0.0099)


def test_float32_intensity_at_the_span_is_accepted():
    rng = np.random.default_rng(0)
    x = (rng.random((40, 40)) * 300.4 + 7).astype(np.float32)
    span = float(x.max()) - float(x.min())
    assert nr.classic_denoise(x, method="tv_chambolle", sigma=np.float32(span)).shape == x.shape
    with pytest.raises(ValueError, match="sigma=.* is out of range for this image"):
        nr.classic_denoise(x, method="tv_chambolle", sigma=span * 1.001)


@pytest.mark.parametrize("colorspace", ["opp", "YCbCr"])
def test_bm3d_grey_and_constant_colour_planes(colorspace):
    """bm3d_rgb returns NaN for them (see _compat.bm3d_rgb): a result, grey stays grey."""
    g = _u8(40).astype(np.float32) / 255
    grey = np.repeat(g[..., None], 3, axis=-1)
    out = nr.bm3d_denoise(grey, 0.1, channel_axis=-1, colorspace=colorspace)
    assert np.isfinite(out).all() and np.abs(out[..., 0] - out[..., 1]).max() < 1e-5
    const = np.full((40, 40, 3), 0.25, np.float16)
    np.testing.assert_allclose(nr.bm3d_denoise(const, 0.1, channel_axis=-1,
                                               colorspace=colorspace), const, atol=1e-3)


def test_results_near_the_float_limit_saturate_instead_of_overflowing():
    """A result just past float16's 65504 (or float32's 3.4e38) is the largest finite value."""
    from napari_restore._arrays import from_working, value_scale

    for dtype, top in [(np.float16, 65000.0), (np.float32, 3e38), (np.float64, 1.7e308)]:
        x = np.array([[0.0, top]], dtype)
        out = from_working(np.array([[-0.5, 1.2]]), value_scale(x))
        assert out.dtype == dtype and np.isfinite(out).all()
        assert out[0, 1] == np.finfo(dtype).max and out[0, 0] < 0
        res = from_working(np.array([[-1.5, 1.5]]), value_scale(x), residual=True)
        assert np.isfinite(res).all() and res[0, 1] == np.finfo(dtype).max


def test_bm3d_deblur_float_extremes_are_finite():
    rng = np.random.default_rng(0)
    r = rng.random((40, 40))
    x = np.where(r < 0.1, 3e38, r).astype(np.float32)
    out = nr.bm3d_deblur(x)
    assert out.dtype == np.float32 and np.isfinite(out).all()
