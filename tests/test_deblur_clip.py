"""BM3D deblur output range (``clip=``) and σ = 0.

``clip=True`` (default) clips the result to the input's value range: the dtype's for integers,
[0, 1] for floats inside it (the whole stack's), ≥ 0 for other non-negative floats; floats
with negative values are not clipped. ``clip=False`` is the unclipped inverse. σ = 0 (or any σ below ``DEBLUR_MIN_SIGMA`` × the
span) is taken as ``DEBLUR_MIN_SIGMA`` × the span: a tiny regularisation, not an error.
Small planes and a 3×3/5×5 PSF keep this fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import bm3d_deblur
from napari_restore.processors.bm3d import BM3D_DEBLUR, DEBLUR_MIN_SIGMA
from napari_restore.recipes import FORMAT, FORMAT_1, Recipe

PSF = (5, 5)


def _noise(shape=(32, 32), seed=0):
    """Not a blurred image: the inverse of a blur amplifies it far beyond its range."""
    return np.random.default_rng(seed).random(shape)


@pytest.mark.parametrize("boundary", ["extend", "periodic"])
def test_sigma_0_on_a_unit_float_image_stays_in_its_range(boundary):
    """The issue's case: a [0, 1] float input with σ=0 came back in about [-5000, 4000]."""
    x = _noise()
    out = bm3d_deblur(x, psf_size=PSF, sigma=0, boundary=boundary)
    assert out.dtype == x.dtype and 0.0 <= out.min() and out.max() <= 1.0
    raw = bm3d_deblur(x, psf_size=PSF, sigma=0, boundary=boundary, clip=False)
    assert raw.min() < -10 and raw.max() > 10  # what clip=False says it keeps
    np.testing.assert_array_equal(out, np.clip(raw, 0.0, 1.0))


@pytest.mark.parametrize("offset,span,dtype,lo,hi", [
    (0.2, 0.5, np.float64, 0.0, 1.0),  # inside [0, 1]: [0, 1]
    (100.0, 1000.0, np.float32, 0.0, None),  # non-negative (counts): >= 0, no upper bound
    (-3.0, 5.0, np.float64, None, None),  # with negative values: not clipped
])
def test_float_images_clip_to_their_nominal_range(offset, span, dtype, lo, hi):
    x = (_noise(seed=1) * span + offset).astype(dtype)
    out = bm3d_deblur(x, psf_size=PSF, sigma=0)
    raw = bm3d_deblur(x, psf_size=PSF, sigma=0, clip=False)
    assert out.dtype == x.dtype
    # the inverse of white noise leaves the input's range on both sides
    assert raw.min() < x.min() - span and raw.max() > x.max() + span
    if lo is None and hi is None:
        assert np.array_equal(out, raw)
    else:
        # exactly the unclipped result clipped (the benchmark relies on this)
        np.testing.assert_allclose(out, np.clip(raw, lo, hi), rtol=1e-6, atol=0)
        assert out.min() == lo
    if hi is None:  # never at the input's own maximum: the sharp image rises above it
        assert out.max() == raw.max() > x.max()
    else:
        assert out.max() == hi


def test_clip_to_0_1_never_increases_an_error_on_a_unit_image():
    """Clipping to a range the truth lies in only moves pixels towards it: on a deblurred
    [0, 1] image of black and white blocks (sharp edges, whose inverse overshoots both
    ways) every pixel's error is at most the unclipped one, and the whole-image error
    smaller."""
    from scipy.ndimage import convolve

    clean = np.kron(np.random.default_rng(5).integers(0, 2, (8, 8)), np.ones((8, 8))) * 1.0
    psf = np.full((3, 3), 1 / 9)
    z = np.clip(convolve(clean, psf, mode="wrap"), 0, 1)
    raw = bm3d_deblur(z, psf, sigma=0.002, boundary="periodic", clip=False)
    out = bm3d_deblur(z, psf, sigma=0.002, boundary="periodic")
    assert raw.max() > 1.0 or raw.min() < 0.0
    assert np.all(np.abs(out - clean) <= np.abs(raw - clean))
    assert np.mean((out - clean) ** 2) < np.mean((raw - clean) ** 2)


def test_a_stack_clips_to_the_whole_stack_range_not_each_plane():
    rng = np.random.default_rng(2)
    stack = np.stack([rng.random((32, 32)) * 0.1 + 0.1, rng.random((32, 32))])  # in [0, 1]
    out = bm3d_deblur(stack, psf_size=PSF, sigma=0)
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0].max() == 1.0  # not plane 0's own maximum of 0.2


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_integers_always_stay_in_the_dtype(dtype):
    info = np.iinfo(dtype)
    x = (_noise(seed=3) * (float(info.max) - info.min) + info.min).astype(dtype)
    for clip in (True, False):
        out = bm3d_deblur(x, psf_size=PSF, sigma=0, clip=clip)
        assert out.dtype == x.dtype and out.min() == info.min and out.max() == info.max


def test_clip_is_a_recorded_spec_parameter_and_reports_the_range():
    param = BM3D_DEBLUR.param("clip")
    assert param.type is bool and param.default is True
    run = {**BM3D_DEBLUR.defaults(), "psf_size": PSF}
    x = (_noise(seed=4) * 255).astype(np.uint8)
    resolved: dict = {}
    BM3D_DEBLUR.apply(x, resolved=resolved, **run)
    assert resolved["clip_low"] == 0.0 and resolved["clip_high"] == 255.0  # the image's units
    f = _noise(seed=4) * 1000 + 100
    resolved = {}
    BM3D_DEBLUR.apply(f, resolved=resolved, **run)
    assert resolved["clip_low"] == 0.0 and "clip_high" not in resolved
    resolved = {}
    BM3D_DEBLUR.apply(f - 600, resolved=resolved, **run)
    assert "clip_low" not in resolved and "clip_high" not in resolved
    resolved = {}
    BM3D_DEBLUR.apply(f, resolved=resolved, **{**run, "clip": False})
    assert "clip_low" not in resolved
    with pytest.raises(TypeError, match="clip must be True or False"):
        bm3d_deblur(f, psf_size=PSF, clip="yes")


def test_recipes_record_clip_and_old_recipes_replay_unclipped():
    new = Recipe.from_dict({"format": FORMAT, "processor": "bm3d_deblur", "params": {}})
    assert new.params["clip"] is True
    off = Recipe.from_dict({"format": FORMAT, "processor": "bm3d_deblur",
                            "params": {"clip": False}})
    assert off.params["clip"] is False
    old = Recipe.from_dict({"format": FORMAT_1, "processor": "bm3d_deblur", "params": {}})
    assert old.params["clip"] is False  # format 1 did not clip


def test_sigma_0_is_the_smallest_regularisation_not_an_error():
    """σ=0 and any σ below DEBLUR_MIN_SIGMA × the span run as DEBLUR_MIN_SIGMA × the span
    (0.255 grey levels of uint8); a larger σ does not."""
    from scipy.ndimage import convolve
    from skimage import data

    clean = data.camera()[200:248, 200:248].astype(float)
    z = np.clip(convolve(clean, np.full((3, 3), 1 / 9), mode="reflect"), 0, 255).astype(np.uint8)
    zero = bm3d_deblur(z, psf_size=(3, 3), psf_sigma=1.0, sigma=0)
    floor = DEBLUR_MIN_SIGMA * 255
    assert np.array_equal(zero, bm3d_deblur(z, psf_size=(3, 3), psf_sigma=1.0, sigma=floor))
    assert np.array_equal(zero, bm3d_deblur(z, psf_size=(3, 3), psf_sigma=1.0, sigma=floor / 3))
    assert not np.array_equal(zero, bm3d_deblur(z, psf_size=(3, 3), psf_sigma=1.0, sigma=3.0))


def test_the_panel_shows_clip(make_napari_viewer):
    from napari_restore.widgets.panel import ProcessorPanel

    panel = ProcessorPanel(make_napari_viewer(), BM3D_DEBLUR)
    box = panel.param_widgets["clip"]
    assert box.value is True and type(box).__name__ == "CheckBox"
    box.value = False
    assert panel.params["clip"] is False
