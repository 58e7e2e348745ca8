"""Robustness of the self-supervised calibration and the no-reference metrics on the data
scientists bring (integer and float images in physical units, views, colour, volumes) and
on bad input: each case here was a crash, a silent wrong result or an unclear error."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import calibrate, classic_denoise, noref
from napari_restore.calibration import self_supervised_loss


def _plane(dtype=np.uint8, scale=200.0, offset=20.0, sigma=15.0, shape=(48, 48), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    clean = offset + scale * ((xx // 12 + yy // 12) % 2)
    noisy = clean + rng.normal(0.0, sigma, shape)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        noisy = np.clip(np.rint(noisy), info.min, info.max)
    return noisy.astype(dtype)


# -- calibration ------------------------------------------------------------------------------

def test_out_of_range_grid_value_is_reported_in_the_images_own_units():
    """A σ beyond the span of a uint8 image: the message spoke of 'data units of this float64
    image', not the grey levels of the uint8 image the user gave."""
    noisy = _plane(np.uint8)
    with pytest.raises(ValueError, match=r"grid\['sigma'\].*grey levels of this uint8 image"):
        calibrate(noisy, "classic_denoise", grid={"sigma": [10.0, 1e6]},
                  fixed={"method": "tv_chambolle"}, workers=1)
    big = _plane(np.float32, scale=1000.0, offset=1e4, sigma=30.0)
    with pytest.raises(ValueError, match=r"data units of this float32 image"):
        calibrate(big, "classic_denoise", grid={"sigma": [30.0, 1e7]},
                  fixed={"method": "tv_chambolle"}, workers=1)


@pytest.mark.parametrize("method", ["nl_means", "tv_chambolle"])
def test_fixed_intensity_outside_the_images_range_is_refused_before_any_work(method):
    """fixed={"sigma": 1e6} on a uint8 image: the batched non-local means returned losses
    for it, and the registry's error (TV) spoke of a float32 image's data units."""
    noisy = _plane(np.uint8)
    with pytest.raises(ValueError, match=r"fixed: sigma=1e\+06 is out of range for this "
                                         r"image.*grey levels of this uint8 image"):
        calibrate(noisy, "classic_denoise", grid={"strength": [0.5, 1.0]},
                  fixed={"method": method, "sigma": 1e6}, workers=1)


def test_opencv_nlm_on_uint8_is_calibrated_at_the_bit_depth_its_replay_uses():
    """bit_depth="auto" is 8 bits for uint8 input, but the masked tiles are float, so the
    calibration scored the 16-bit OpenCV filter: a loss curve of another algorithm than
    the one the recipe replays."""
    noisy = _plane(np.uint8, sigma=20.0)
    kw = dict(grid={"sigma": [10.0, 20.0, 40.0]}, workers=1)
    auto = calibrate(noisy, "classic_denoise", fixed={"method": "opencv_nlm"}, **kw)
    eight = calibrate(noisy, "classic_denoise",
                      fixed={"method": "opencv_nlm", "bit_depth": "8"}, **kw)
    sixteen = calibrate(noisy, "classic_denoise",
                        fixed={"method": "opencv_nlm", "bit_depth": "16"}, **kw)
    np.testing.assert_array_equal(auto.losses, eight.losses)
    assert not np.array_equal(eight.losses, sixteen.losses)
    assert auto.recipe.params["bit_depth"] == "auto"  # the user's choice is what is recorded
    # uint16: "auto" is 16 bits, as before
    deep = _plane(np.uint16, scale=2000.0, offset=300.0, sigma=80.0)
    kw16 = dict(grid={"sigma": [40.0, 80.0]}, workers=1)
    np.testing.assert_array_equal(
        calibrate(deep, "classic_denoise", fixed={"method": "opencv_nlm"}, **kw16).losses,
        calibrate(deep, "classic_denoise", fixed={"method": "opencv_nlm", "bit_depth": "16"},
                  **kw16).losses)


def test_self_supervised_loss_refuses_an_intensity_outside_the_images_range():
    """calibrate and classic_denoise refuse σ = 1e6 on a uint8 image; the loss returned a
    number for it (the batched non-local means path never checked the range)."""
    noisy = _plane(np.uint8)
    with pytest.raises(ValueError, match=r"sigma=1e\+06 is out of range for this image.*"
                                         r"grey levels of this uint8 image"):
        self_supervised_loss(noisy, "classic_denoise", {"method": "nl_means", "sigma": 1e6})


def test_self_supervised_loss_of_a_recipe_refuses_an_image_of_other_units():
    """A recipe calibrated on uint8 (σ in grey levels) scored on a float image in physical
    units: apply_recipe refuses the replay; the loss (and noref_metrics' loss column)
    silently used σ = 20 data units."""
    noisy = _plane(np.uint8)
    cal = calibrate(noisy, "classic_denoise", grid={"sigma": [10.0, 20.0]},
                    fixed={"method": "tv_chambolle"}, workers=1)
    other = _plane(np.float32, scale=1000.0, offset=1e4, sigma=30.0)
    with pytest.raises(ValueError, match="would change what the values mean"):
        self_supervised_loss(other, cal.recipe)
    with pytest.raises(ValueError, match="would change what the values mean"):
        noref.noref_metrics(other, other, recipe=cal.recipe.to_dict())
    # the same dtype still works, and equals the calibration's own loss
    assert self_supervised_loss(noisy, cal.recipe) == pytest.approx(cal.best_loss, rel=1e-12)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"workers": 0}, ValueError, "workers must be a positive integer"),
    ({"params": ["sigma"]}, TypeError, "params must be a mapping of classic_denoise's "
                                       "parameter names to values"),
])
def test_self_supervised_loss_bad_arguments_are_clear(kwargs, exc, match):
    noisy = _plane(np.uint8)
    kw = {"params": {"method": "tv_chambolle", "sigma": 10.0}, **kwargs}
    with pytest.raises(exc, match=match):
        self_supervised_loss(noisy, "classic_denoise", **kw)


def test_roi_as_an_array_is_a_clear_error():
    """A NumPy array of bounds (napari's corner_pixels is one, laid out (2, ndim)) was
    refused with 'must give one (start, stop) pair per axis' although it holds two pairs."""
    noisy = _plane(np.uint8, shape=(64, 64))
    with pytest.raises(TypeError, match=r"roi as a NumPy array.*tuple"):
        calibrate(noisy, "classic_denoise", grid={"sigma": [10.0, 20.0]},
                  roi=np.array([[0, 32], [0, 32]]), workers=1)


def test_roi_axis_given_as_a_pair_array_is_that_pair():
    """One (start, stop) array per axis was refused as 'must be a (start, stop) pair'."""
    noisy = _plane(np.uint8, shape=(64, 64))
    kw = dict(grid={"sigma": [10.0, 20.0]}, fixed={"method": "tv_chambolle"}, workers=1)
    cal = calibrate(noisy, "classic_denoise", roi=(np.array([16, 48]), np.array([0, 32])), **kw)
    ref = calibrate(noisy, "classic_denoise", roi=((16, 48), (0, 32)), **kw)
    assert cal.region == (((16, 48), (0, 32)),)
    np.testing.assert_array_equal(cal.losses, ref.losses)
    with pytest.raises(TypeError, match="bounds must be integers"):
        calibrate(noisy, "classic_denoise", roi=(np.array([16.0, 48.0]), (0, 32)), **kw)


@pytest.mark.parametrize("layout, axis", [((48, 48, 3), -1), ((4, 48, 48), 0)])
def test_colour_image_without_channel_axis_gets_the_hint(layout, axis):
    """An RGB(A) image without channel_axis was told to 'pass one plane of the stack'."""
    img = np.zeros(layout, np.uint8)
    with pytest.raises(ValueError, match=rf"one plane.*give channel_axis={axis}"):
        calibrate(img, "classic_denoise", grid={"sigma": [10.0, 20.0]}, workers=1)


def test_noise_free_message_names_the_grid_to_give():
    """The message read "give grid={'sigma': [...]}} in the image's units" (one brace too
    many)."""
    with pytest.raises(ValueError, match=r"give grid=\{'sigma': \[\.\.\.\]\} in the image's "
                                         r"units"):
        calibrate(np.full((32, 32), 7, np.uint8), "classic_denoise", workers=1)


# -- no-reference metrics ---------------------------------------------------------------------

def test_noref_metrics_on_volumes():
    """The image may be a volume (the metrics are over the spatial axes), but its result was
    refused as 'not a single 2-D image'."""
    rng = np.random.default_rng(1)
    vol = rng.normal(100.0, 10.0, (6, 24, 24)).astype(np.float32)
    res = np.full_like(vol, 100.0)
    resid = noref.method_noise(vol, res)
    assert resid.shape == vol.shape
    np.testing.assert_allclose(resid, vol - 100.0, atol=1e-3)
    m = noref.noref_metrics(vol, res)
    assert all(np.isfinite(v) for v in m.as_dict().values() if v is not None)
    assert m.residual_std == pytest.approx(float(np.std(vol - 100.0)), rel=1e-4)
    assert abs(m.lag1) < 0.1  # white residual
    assert noref.structure_score(vol, res) == pytest.approx(m.structure)


@pytest.mark.parametrize("shape", [(1, 16), (16, 1), (1, 1), (3, 16)])
def test_structure_score_of_a_line_is_a_clear_error(shape):
    """A one-pixel-wide image crashed inside np.gradient ('Shape of array too small to
    calculate a numerical gradient'); the score works at half resolution, so 4 are needed."""
    img = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    with pytest.raises(ValueError, match="at least 4 pixels along every spatial axis"):
        noref.structure_score(img, img * 0.5)
    with pytest.raises(ValueError, match="at least 4 pixels along every spatial axis"):
        noref.noref_metrics(img, img * 0.5)


@pytest.mark.parametrize("shape, channel_axis", [((1, 1), None), ((3, 1, 1), 0)])
def test_spectral_flatness_of_one_pixel_is_a_clear_error(shape, channel_axis):
    """A one-pixel residual has no frequency but zero: the flatness was NaN (with a
    'Mean of empty slice' warning)."""
    resid = np.ones(shape)
    with pytest.raises(ValueError, match="at least 2 pixels along a spatial axis"):
        noref.spectral_flatness(resid, channel_axis=channel_axis)
    assert noref.spectral_flatness(np.ones((1, 4))) == 1.0  # a line still has a spectrum


def test_numpy_scalars_are_accepted_for_sigma_and_segment():
    """np.float32(2) for sigma and np.int64(16) for segment were refused as 'not a positive
    number' / 'not an integer of at least 4'; True was taken as sigma = 1."""
    img = _plane(np.uint8)
    den = classic_denoise(img, method="tv_chambolle", sigma=15.0)
    assert noref.structure_score(img, den, sigma=np.float32(2)) == pytest.approx(
        noref.structure_score(img, den, sigma=2.0), rel=1e-6)
    resid = noref.method_noise(img, den)
    assert noref.spectral_flatness(resid, segment=np.int64(16)) == pytest.approx(
        noref.spectral_flatness(resid, segment=16))
    with pytest.raises(TypeError, match="sigma must be a positive number of pixels"):
        noref.structure_score(img, den, sigma=True)
    with pytest.raises(TypeError, match="segment must be an integer"):
        noref.spectral_flatness(resid, segment=16.0)


def test_bit_depth_mapped_processors_are_calibrated_on_their_runs_scale():
    """restore_film_grain maps 12-bit data in uint16 by 0-4095 (detect_bits): the masked
    tiles must be scaled the same way, not by 0-65535."""
    from napari_restore.calibration import _prepare, _spec

    rng = np.random.default_rng(4)
    counts = np.rint(rng.uniform(300, 3800, (64, 64))).astype(np.uint16)
    setup = _prepare(counts, _spec("restore_film_grain"), roi=None, channel_axis=None,
                     stride=4, approximate_loss=True)
    assert setup.value_range == (0.0, 4095.0)
    assert setup.scale.high == 4095.0
    plain = _prepare(counts, _spec("classic_denoise"), roi=None, channel_axis=None,
                     stride=4, approximate_loss=True)
    assert plain.value_range == (0.0, 65535.0)
