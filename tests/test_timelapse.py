"""Time-lapse denoising (issue 19, item 4): temporal beats per-frame, axes, units, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import bm3d_denoise
from napari_restore.processors.timelapse import (
    TIMELAPSE_DENOISE,
    register_pair,
    timelapse_denoise,
)

SIZE, FRAMES = 48, 7


def scene(frames: int = FRAMES, size: int = SIZE, *, sigma: float = 20.0, seed: int = 0,
          name: str = "camera") -> tuple[np.ndarray, np.ndarray]:
    """(clean grey levels, noisy uint8): sub-pixel drift, 0.3°/frame rotation, brightening."""
    from skimage import color, data, transform

    src = getattr(data, name)()
    if src.ndim == 3:
        src = color.rgb2gray(src) * 255.0
    src = src[120:120 + 3 * size, 180:180 + 3 * size].astype(np.float64)
    c = np.array(src.shape) / 2
    rng = np.random.default_rng(seed)
    clean = []
    for t in range(frames):
        tf = (transform.AffineTransform(translation=-c[::-1])
              + transform.AffineTransform(rotation=np.deg2rad(0.3 * t))
              + transform.AffineTransform(translation=c[::-1] + (-0.27 * t, 0.35 * t)))
        w = transform.warp(src, tf, order=3, preserve_range=True)
        clean.append(w[size:2 * size, size:2 * size] * (1 + 0.01 * t))
    clean = np.clip(np.stack(clean), 0, 255)
    noisy = np.clip(np.round(clean + rng.normal(0, sigma, clean.shape)), 0, 255)
    return clean, noisy.astype(np.uint8)


def psnr(ref, x, peak=255.0):
    return 10 * np.log10(peak**2 / np.mean((np.asarray(x, np.float64) - ref) ** 2))


@pytest.fixture(scope="module")
def pair():
    return scene()


@pytest.fixture(scope="module")
def aligned(pair):
    res: dict = {}
    out = TIMELAPSE_DENOISE.apply(pair[1], sigma=20, resolved=res)
    return out, res


def test_temporal_beats_per_frame_bm3d(pair, aligned):
    clean, noisy = pair
    per_frame = bm3d_denoise(noisy, 20)
    out, res = aligned
    gain = psnr(clean, out) - psnr(clean, per_frame)
    assert gain >= 1.0, (psnr(clean, out), psnr(clean, per_frame))
    assert res["frames_used"] == [5] * FRAMES  # every neighbour aligned and kept


def test_motion_compensation_matters(pair, aligned):
    """Without registration the same average loses detail: the aligned mode is better."""
    clean, noisy = pair
    static = timelapse_denoise(noisy, 20, motion="none")
    assert psnr(clean, aligned[0]) >= psnr(clean, static) + 0.5


def test_result_shape_dtype_and_input_untouched(pair, aligned):
    noisy = pair[1]
    assert aligned[0].shape == noisy.shape and aligned[0].dtype == np.uint8
    ro = noisy[:3].copy()
    ro.flags.writeable = False
    before = ro.copy()
    timelapse_denoise(ro, 20, radius=1)
    np.testing.assert_array_equal(ro, before)


def test_registration_recovers_subpixel_drift_and_rotation():
    from skimage import data, transform

    src = data.camera()[100:260, 150:310].astype(np.float32)
    c = np.array(src.shape) / 2
    angle, shift = 0.6, (0.37, -0.81)  # degrees; (x, y) px
    tf = (transform.AffineTransform(translation=-c[::-1])
          + transform.AffineTransform(rotation=np.deg2rad(angle))
          + transform.AffineTransform(translation=c[::-1] + shift))
    moved = transform.warp(src, tf.inverse, order=3, preserve_range=True).astype(np.float32)
    # moved(p) = src(tf⁻¹ p): the map ref -> mov is tf
    warp = register_pair(src[16:-16, 16:-16], moved[16:-16, 16:-16])
    assert warp is not None
    got_angle = np.rad2deg(np.arctan2(warp[1, 0], warp[0, 0]))
    assert abs(got_angle - angle) < 0.05
    # the map's translation in the cropped frame: tf applied to the crop's origin
    want = tf(np.array([[16.0, 16.0]]))[0] - 16.0
    np.testing.assert_allclose(warp[:, 2], want, atol=0.05)


def test_units_consistent_across_dtypes(pair):
    """uint8, 12-bit data in uint16 and float counts with an offset give the same result
    in the data's own units (σ given in each one's units). The offset moves bm3d's result a
    little (bm3d is not offset-invariant: zero stays at zero, as in the raw library)."""
    clean, noisy = pair[0][:3], pair[1][:3]
    ref = timelapse_denoise(noisy, 20, radius=1).astype(np.float64)
    out12 = timelapse_denoise(noisy.astype(np.uint16) * 16, 20 * 16,
                              radius=1).astype(np.float64) / 16
    assert np.mean(np.abs(out12 - ref)) < 0.3  # grey levels: the rounding to uint8
    assert abs(psnr(clean, out12) - psnr(clean, ref)) < 0.05
    counts = noisy.astype(np.float32) * 3.0 + 1000.0
    outf = (timelapse_denoise(counts, 60.0, radius=1).astype(np.float64) - 1000.0) / 3.0
    assert np.mean(np.abs(outf - ref)) < 1.5
    assert abs(psnr(clean, outf) - psnr(clean, ref)) < 0.3


def test_auto_sigma_once_per_stack(pair):
    res: dict = {}
    TIMELAPSE_DENOISE.apply(pair[1][:3], radius=1, resolved=res)
    assert isinstance(res["sigma"], float)  # one value for the stack, in grey levels
    assert 14 < res["sigma"] < 24


def test_time_axis_moves_and_leading_axes_run_per_timelapse(pair):
    noisy = pair[1][:3, :40, :40]
    other = np.ascontiguousarray(noisy[:, ::-1])
    ctyx = np.stack([noisy, other])  # (C, T, Y, X), time on axis 1
    out = timelapse_denoise(ctyx, 20, radius=1, time_axis=1)
    np.testing.assert_array_equal(out[0], timelapse_denoise(noisy, 20, radius=1))
    tcyx = np.ascontiguousarray(np.moveaxis(ctyx, 0, 1))  # (T, C, Y, X), time on axis 0
    moved = timelapse_denoise(tcyx, 20, radius=1, time_axis=0)
    assert moved.shape == tcyx.shape
    np.testing.assert_array_equal(moved, np.moveaxis(out, 0, 1))


def test_time_axis_normalised():
    from napari_restore.processors.timelapse import time_axis_of

    assert time_axis_of((4, 2, 8, 8), -4, None) == 0
    assert time_axis_of((2, 4, 8, 8, 3), 1, -1) == 1
    assert time_axis_of((4, 3, 8, 8), 0, 1) == 0  # channel axis between t and (y, x)


def test_colour_timelapse(pair):
    clean, _ = scene(3, 40, seed=1)
    rgb_clean = np.stack([clean, clean * 0.8, clean * 0.6], axis=-1)
    rng = np.random.default_rng(2)
    rgb = np.clip(np.round(rgb_clean + rng.normal(0, 20, rgb_clean.shape)), 0, 255).astype(np.uint8)
    out = timelapse_denoise(rgb, 20, radius=1, channel_axis=-1)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert psnr(rgb_clean, out) > psnr(rgb_clean, rgb) + 6


def test_bm4d_mode_denoises(pair):
    clean, noisy = pair
    out = timelapse_denoise(noisy[:6, :32, :32], 20, mode="bm4d")
    assert psnr(clean[:6, :32, :32], out) > psnr(clean[:6, :32, :32], noisy[:6, :32, :32]) + 4


def test_a_frame_of_another_scene_is_left_out(pair):
    noisy = pair[1]
    other = scene(1, SIZE, name="astronaut", seed=3)[1][0]
    mixed = noisy[:5].copy()
    mixed[3] = other
    res: dict = {}
    TIMELAPSE_DENOISE.apply(mixed, sigma=20, radius=2, resolved=res)
    used = res["frames_used"]
    assert used[3] == 1  # the odd frame is denoised alone
    assert all(n == 4 for i, n in enumerate(used) if i != 3)  # and left out of the others


@pytest.mark.parametrize(("kwargs", "shape", "match"), [
    ({"radius": 3}, (5, 32, 32), r"radius=3 .*window of 7 frames.*has 5.*radius <= 2"),
    ({"radius": 1}, (1, 32, 32), r"time_axis=0 has 1 frame"),
    ({"radius": 1, "time_axis": 1}, (5, 32, 32), r"time_axis=1 is one of the two spatial"),
    ({"radius": 1, "time_axis": 3}, (5, 32, 32), r"time_axis=3 is out of range"),
    ({"radius": 1}, (32, 32), r"image must be a time-lapse with a time axis and two spatial axes"),
    ({"mode": "vbm4d"}, (5, 32, 32), r"mode='vbm4d' is not allowed"),
    ({"radius": 0}, (5, 32, 32), r"radius=0 is out of range"),
])
def test_bad_input_names_the_parameter(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        timelapse_denoise(np.zeros(shape, np.uint8), 10, **kwargs)


def test_time_axis_cannot_be_the_channel_axis():
    with pytest.raises(ValueError, match=r"time_axis=-1 is the channel axis"):
        timelapse_denoise(np.zeros((5, 32, 32, 3), np.uint8), 10, radius=1, time_axis=-1,
                          channel_axis=-1)


def test_recipe_round_trip(pair, aligned, tmp_path):
    from napari_restore import Recipe, apply_recipe

    recipe = Recipe("timelapse_denoise", {"sigma": 20})
    path = tmp_path / "r.json"
    recipe.save(path)
    np.testing.assert_array_equal(apply_recipe(Recipe.load(path), pair[1]), aligned[0])


def test_a_constant_stack_comes_back_unchanged():
    """Flat frames: nothing to register (identity), σ on auto is 0, nothing to remove."""
    flat = np.full((3, 24, 24), 1234, np.uint16)
    res: dict = {}
    out = TIMELAPSE_DENOISE.apply(flat, radius=1, resolved=res)
    np.testing.assert_array_equal(out, flat)
    assert res["sigma"] < 1e-9  # grey levels (0 up to rounding)
