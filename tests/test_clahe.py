"""Learning-based CLAHE: the shipped model, held-out floors, colour, precision, refinement,
errors, and the panel extras."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from conftest import digest

from napari_restore import lb_clahe, predict_clahe_params
from napari_restore.processors import clahe_training as T
from napari_restore.processors.clahe import (
    FIXED_CLIP, FIXED_GRID, load_model, predict_from_features, predict_plane,
)
from napari_restore.processors.clahe_core import clahe_channel
from napari_restore.processors.clahe_features import FEATURES
from napari_restore.processors.guided_filter import guided_filter

HELD_OUT_SEED = 59  # as in scripts/train_lb_clahe.py


def test_shipped_model_is_plain_json_with_documented_features():
    text = resources.files("napari_restore").joinpath("data/lb_clahe_model.json").read_text()
    raw = json.loads(text)  # plain data: no pickle anywhere
    assert raw["features"] == list(FEATURES)
    assert raw["targets"] == ["log2_clip_limit", "log2_tiles"]
    model = load_model()
    n = len(FEATURES)
    n_terms = {"linear": n, "quadratic": n + n * (n + 1) // 2}[model["expansion"]]
    assert model["coef"].shape == (2, n_terms)
    assert model["mean"].shape == model["scale"].shape == (n,)
    assert np.all(model["scale"] > 0) and np.isfinite(model["coef"]).all()
    assert set(raw["report"]["held_out_images"]).isdisjoint(raw["report"]["train_images"])
    # every documented feature is described in the module docstring
    from napari_restore.processors import clahe_features

    for name in FEATURES:
        assert f"``{name}``" in clahe_features.__doc__
    clip, tiles = predict_from_features(model["mean"], model)
    assert 1.0 <= clip <= 8.0 and 2 <= tiles <= 16


def test_predicted_beats_fixed_on_held_out_images():
    """Regenerated here (not read from the report): held-out images, deterministic crops."""
    wins, total, gains = 0, 0, []
    for s in T.samples(T.HELD_OUT_IMAGES, 4, HELD_OUT_SEED):
        clip, grid = predict_plane(s.degraded)
        ours = T.objective(clahe_channel(s.degraded, clip, grid), s.clean)
        fixed = T.objective(clahe_channel(s.degraded, FIXED_CLIP, FIXED_GRID), s.clean)
        wins += ours > fixed
        total += 1
        gains.append(ours - fixed)
    assert total == 4 * len(T.HELD_OUT_IMAGES)
    assert wins / total >= 0.7, (wins, total)
    assert np.mean(gains) > 0


def test_different_contrast_problems_get_different_predictions():
    x = T.source("camera")[96:352, 96:352]
    rng = np.random.default_rng(1)
    preds = {kind: predict_plane(T.degrade(x, kind, rng)) for kind in T.DEGRADATIONS}
    preds["original"] = predict_plane(x)
    assert len(set(preds.values())) >= 4, preds
    clips = [c for c, _ in preds.values()]
    assert max(clips) / min(clips) >= 1.5, preds


def test_core_matches_opencv_8bit_semantics_and_is_continuous():
    import cv2

    cam = T.source("camera")
    low = (0.3 + 0.4 * cam).astype(np.float32)
    ref = cv2.createCLAHE(2.0, (8, 8)).apply(np.rint(low * 255).astype(np.uint8)) / 255.0
    ours = clahe_channel(low, 2.0, (8, 8))
    assert np.abs(ours - ref).mean() < 0.015
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.995
    # the same image as continuous (noisy float) data gets the same equalisation strength
    noisy = np.clip(low + np.random.default_rng(0).normal(0, 0.002, low.shape), 0, 1)
    assert abs(clahe_channel(noisy.astype(np.float32), 2.0, (8, 8)).std() - ours.std()) < 0.01


@pytest.mark.parametrize("colorspace", ["lab", "hsv", "rgb"])
@pytest.mark.parametrize("channels", [3, 4])
def test_colour_spaces_rgb_and_rgba_alpha_untouched(colorspace, channels):
    from skimage import data

    rgb = data.astronaut()[100:260, 150:310]
    low = (60 + rgb.astype(np.float64) * 0.35).astype(np.uint8)  # low-contrast colour image
    if channels == 4:
        alpha = np.random.default_rng(0).integers(0, 256, low.shape[:2], dtype=np.uint8)
        low = np.concatenate([low, alpha[..., None]], axis=-1)
    before = digest(low)
    out = lb_clahe(low, colorspace=colorspace, channel_axis=-1)
    assert digest(low) == before
    assert out.shape == low.shape and out.dtype == np.uint8
    if channels == 4:
        np.testing.assert_array_equal(out[..., 3], low[..., 3])
    lum_in = low[..., :3].astype(np.float64).mean(-1)
    lum_out = out[..., :3].astype(np.float64).mean(-1)
    assert lum_out.std() > 1.3 * lum_in.std()
    if colorspace == "lab":  # hue kept: chroma direction barely moves
        a_in = np.arctan2(*(low[..., :3].astype(float) @ [[0, 1], [-1, 0.5], [1, -1.5]]).T)
        a_out = np.arctan2(*(out[..., :3].astype(float) @ [[0, 1], [-1, 0.5], [1, -1.5]]).T)
        d = np.angle(np.exp(1j * (a_out - a_in)))
        assert np.median(np.abs(d)) < 0.25


def test_greyscale_stack_float_and_channel_axis_first():
    cam = T.source("camera")[:96, :96]
    stack = np.stack([cam, 0.5 * cam]).astype(np.float32)
    out = lb_clahe(stack)
    assert out.shape == stack.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[0], lb_clahe(stack[0]), atol=1e-6)
    from skimage import data

    rgb = np.moveaxis(data.astronaut()[:96, :96], -1, 0)
    np.testing.assert_array_equal(
        lb_clahe(rgb, channel_axis=0), np.moveaxis(lb_clahe(np.moveaxis(rgb, 0, -1), channel_axis=-1), -1, 0)
    )


def test_uint16_in_uint16_out_with_more_than_256_levels():
    cam = T.source("camera")[100:300, 100:300]
    img = np.rint((0.35 + 0.3 * cam) * 65535).astype(np.uint16)
    img += np.arange(img.shape[1], dtype=np.uint16)[None, :]  # sub-8-bit detail
    out = lb_clahe(img, clip_limit=2.0, tile_grid=(4, 4), refine=False)
    assert out.dtype == np.uint16 and out.shape == img.shape
    assert len(np.unique(out)) > 256 * 8
    assert out.astype(float).std() > 1.5 * img.astype(float).std()


def test_same_image_as_uint8_and_uint16_gets_the_same_equalisation():
    from skimage import data

    u8 = data.camera()[:200, :200]
    a = lb_clahe(u8, clip_limit=2.5, tile_grid=(3, 3)).astype(float)
    b = lb_clahe(u8.astype(np.uint16) * 257, clip_limit=2.5, tile_grid=(3, 3)) / 257.0
    assert np.abs(a - b).max() <= 1.0


def test_very_wide_and_narrow_planes():
    """cv2.remap refuses images wider than 32767 pixels: the mapping goes in column blocks."""
    rng = np.random.default_rng(0)
    wide = (rng.random((16, 40_000)) * 0.3 + 0.3).astype(np.float32)
    out = lb_clahe(wide, refine=False)
    assert out.shape == wide.shape and out.std() > wide.std()
    thin = (rng.random((300, 9)) * 255).astype(np.uint8)
    assert lb_clahe(thin, tile_grid=(3, 1)).shape == thin.shape


def _step_image(noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((128, 128), 0.35)
    img[:, 64:] = 0.65
    return np.clip(img + rng.normal(0.0, noise, img.shape), 0, 1).astype(np.float32)


def test_refine_smooths_flat_noise_and_keeps_the_edge():
    import cv2

    img = _step_image()
    kw = dict(clip_limit=3.0, tile_grid=(2, 2))
    raw = lb_clahe(img, refine=False, **kw)
    ref = lb_clahe(img, refine=True, **kw)
    flat = (slice(10, 118), slice(8, 56))
    assert ref[flat].std() < 0.6 * raw[flat].std()

    def edge_strength(x):
        g = np.hypot(cv2.Sobel(x, cv2.CV_64F, 1, 0), cv2.Sobel(x, cv2.CV_64F, 0, 1)) / 8.0
        return g[10:118, 60:68].max(axis=1).mean()

    assert abs(edge_strength(ref) / edge_strength(raw) - 1.0) <= 0.10


def test_guided_filter_basics():
    rng = np.random.default_rng(0)
    const = np.full((40, 50), 0.4, np.float32)
    np.testing.assert_allclose(guided_filter(const, radius=3, eps=1e-3), const, atol=1e-5)
    x = rng.random((40, 50)).astype(np.float32)
    # guided by itself with a tiny eps it is almost the identity; huge eps is the box mean
    np.testing.assert_allclose(guided_filter(x, radius=2, eps=1e-8), x, atol=1e-3)
    y = guided_filter(x, x.copy(), radius=2, eps=1e-3)
    np.testing.assert_allclose(y, guided_filter(x, radius=2, eps=1e-3), atol=1e-5)
    with pytest.raises(ValueError, match="radius"):
        guided_filter(x, radius=0)


def _naive_guided(g, p, radius, eps):
    """Textbook guided filter on whole arrays with scipy (reflect border = OpenCV's)."""
    from scipy.ndimage import uniform_filter

    def box(x):
        return uniform_filter(x.astype(np.float64), 2 * radius + 1, mode="reflect")

    mg, mp = box(g), box(p)
    a = (box(g * p) - mg * mp) / (box(g * g) - mg * mg + eps)
    b = mp - a * mg
    return box(a) * g + box(b)


@pytest.mark.parametrize("shape", [(7, 9), (300, 41), (1100, 130)])
@pytest.mark.parametrize("radius", [1, 3, 20])
def test_guided_filter_in_strips_equals_whole_image_filter(shape, radius):
    """The strip-parallel filter is the textbook filter, at strip seams and image borders."""
    rng = np.random.default_rng(sum(shape) + radius)
    g = rng.random(shape, dtype=np.float32)
    p = np.clip(g + rng.normal(0, 0.1, shape), 0, 1).astype(np.float32)
    np.testing.assert_allclose(guided_filter(g, radius=radius, eps=1e-2),
                               _naive_guided(g, g, radius, 1e-2), atol=2e-4)
    np.testing.assert_allclose(guided_filter(g, p, radius=radius, eps=1e-2),
                               _naive_guided(g, p, radius, 1e-2), atol=2e-4)


@pytest.mark.parametrize("grid", [(1, 1), (3, 2), (8, 8), (5, 17)])
@pytest.mark.parametrize("clip", [0.7, 2.0, 30.0])
def test_uint8_fast_path_equals_continuous_path(grid, clip):
    """uint8 levels b and float values b/255 are equalised identically (to 1/50 of a level)."""
    rng = np.random.default_rng(grid[0] * 31 + grid[1])
    img = T.source("camera")[: 200 + grid[0], : 190 + grid[1]]
    u8 = np.clip(img * 200 + rng.normal(20, 10, img.shape), 0, 255).astype(np.uint8)
    fast = clahe_channel(u8, clip, grid)
    slow = clahe_channel(u8.astype(np.float32) / np.float32(255), clip, grid)
    assert fast.dtype == slow.dtype == np.float32
    assert np.abs(fast - slow).max() * 255 < 0.02


@pytest.mark.parametrize("colorspace", ["hsv", "rgb", "grey"])
@pytest.mark.parametrize("refine", [False, True])
def test_uint8_input_matches_float_input_exactly_but_for_rounding(colorspace, refine):
    from skimage import data

    img = data.coffee()[100:260, 200:420] if colorspace != "grey" else data.camera()[::3, ::2]
    kw = dict(clip_limit=2.5, tile_grid=(4, 6), refine=refine)
    if colorspace != "grey":
        kw.update(colorspace=colorspace, channel_axis=-1)
    u8 = lb_clahe(img, **kw)
    f = lb_clahe(img.astype(np.float64) / 255, **kw)
    assert u8.dtype == np.uint8 and f.dtype == np.float64
    assert np.abs(u8 - f * 255).max() <= 0.51  # rounding, plus float32 arithmetic


def test_uint8_lab_uses_8bit_lab_within_a_few_levels_of_float():
    """uint8 in lab goes through OpenCV's 8-bit L*a*b* (as the reference pipeline does)."""
    from skimage import data

    img = data.astronaut()[::2, ::2]
    u8 = lb_clahe(img, channel_axis=-1, clip_limit=2.0, tile_grid=(8, 8)).astype(np.float64)
    f = lb_clahe(img / 255.0, channel_axis=-1, clip_limit=2.0, tile_grid=(8, 8)) * 255
    d = np.abs(u8 - f)
    assert d.mean() < 1.5 and np.percentile(d, 99) < 6 and d.max() < 16


def test_hsv_keeps_hue_and_saturation_exactly():
    import cv2
    from skimage import data

    img = (data.coffee()[:128, :128] / 255.0).astype(np.float32)
    out = lb_clahe(img, colorspace="hsv", channel_axis=-1, clip_limit=3.0, tile_grid=(4, 4))
    h0, s0, v0 = np.moveaxis(cv2.cvtColor(img, cv2.COLOR_RGB2HSV), -1, 0)
    h1, s1, v1 = np.moveaxis(cv2.cvtColor(out, cv2.COLOR_RGB2HSV), -1, 0)
    keep = (s0 > 0.05) & (v0 > 0.05) & (v1 > 0.05)
    assert np.abs(np.angle(np.exp(1j * np.deg2rad(h1 - h0))))[keep].max() < 1e-3
    assert np.abs(s1 - s0)[keep].max() < 1e-4
    assert not np.allclose(v1, v0, atol=0.02)


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"tile_grid": (40, 40)}, r"tile_grid=\(40, 40\) is too large for an image of 64×64 pixels"),
        ({"tile_grid": (2, 40)}, "tile_grid"),
        ({"clip_limit": 0.0}, r"clip_limit=0 is out of range"),
        ({"clip_limit": -1}, "clip_limit=-1 is out of range"),
        ({"colorspace": "xyz"}, "colorspace='xyz' is not allowed; choose one of 'lab', 'hsv', 'rgb'"),
    ],
)
def test_bad_input_errors(kwargs, words):
    img = np.zeros((64, 64), np.uint8)
    with pytest.raises(ValueError, match=words):
        lb_clahe(img, **kwargs)


def test_predict_clahe_params_api():
    from skimage import data

    clip, grid = predict_clahe_params(data.camera())
    assert isinstance(clip, float) and isinstance(grid, tuple) and len(grid) == 2
    assert predict_clahe_params(data.camera().astype(np.float64) / 255.0) == (clip, grid)
    c2, g2 = predict_clahe_params(data.astronaut(), channel_axis=-1)
    assert 1.0 <= c2 <= 8.0 and g2[0] >= 2
    with pytest.raises(ValueError, match="a single 2-D image"):
        predict_clahe_params(np.zeros((3, 32, 32)))


# -- panel --------------------------------------------------------------------------------
@pytest.mark.gui
def test_optional_int_pair_widget():
    pytest.importorskip("napari")
    from napari_restore.processors.registry import Param
    from napari_restore.widgets._params import widget_for

    w = widget_for(Param("tile_grid", tuple, None, "d", min=1, max=64, optional=True))
    assert w.value is None
    w.value = (3, 5)
    assert w.value == (3, 5)
    w.value = None
    assert w.value is None
    fixed = widget_for(Param("size", tuple, (9, 9), "d", min=1))
    assert fixed.value == (9, 9)


@pytest.mark.gui
def test_panel_shows_prediction_toggle_and_runs(qtbot, make_napari_viewer):
    pytest.importorskip("napari")
    from skimage import data

    from napari_restore.processors.registry import get_processor
    from napari_restore.widgets import ProcessorPanel

    viewer = make_napari_viewer()
    rgb = data.astronaut()[:128, :128]
    cam = data.camera()[:128, :160]
    viewer.add_image(rgb, name="astro", rgb=True)
    lay_cam = viewer.add_image(cam, name="cam")
    panel = ProcessorPanel(viewer, get_processor("lb_clahe"))
    viewer.window.add_dock_widget(panel)
    extras = panel.extras["lb_clahe"]
    panel.layer_widget.value = viewer.layers["astro"]
    assert extras.prediction == predict_clahe_params(rgb, channel_axis=-1)
    panel.layer_widget.value = lay_cam
    pred = predict_clahe_params(cam)
    assert extras.prediction == pred
    assert f"{pred[0]:.2f}" in extras.label.value
    assert f"{pred[1][0]} × {pred[1][1]}" in extras.label.value
    clip, tiles = panel.param_widgets["clip_limit"], panel.param_widgets["tile_grid"]
    # one choice, no contradicting "auto" boxes; the number fields only when set by hand
    assert extras.choice.value == "predicted" and panel.params["clip_limit"] is None
    assert clip.native.isHidden() and tiles.native.isHidden()
    assert clip._auto.native.isHidden() and tiles._auto.native.isHidden()
    extras.choice.value = "manual"  # start from the predicted numbers
    assert panel.params["clip_limit"] == pred[0] and panel.params["tile_grid"] == pred[1]
    assert not clip.native.isHidden() and not tiles.native.isHidden()
    panel.set_params({"clip_limit": 3.0})
    assert extras.choice.value == "manual"
    extras.choice.value = "predicted"
    assert panel.params["clip_limit"] is None and panel.params["tile_grid"] is None
    assert clip.native.isHidden()
    panel.set_params({"clip_limit": None, "tile_grid": (4, 4)})  # a recipe with one set
    assert extras.choice.value == "manual" and panel.params["tile_grid"] == (4, 4)
    assert panel.params["clip_limit"] is None and not clip._auto.native.isHidden()
    panel.set_params({"clip_limit": None, "tile_grid": None})
    assert extras.choice.value == "predicted"
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=30_000)
    out = viewer.layers[-1]
    assert out.name.startswith("cam [lb_clahe lab clip=auto tiles=auto")
    np.testing.assert_array_equal(out.data, lb_clahe(cam))
    from napari_restore import Recipe, apply_recipe

    np.testing.assert_array_equal(apply_recipe(Recipe.from_layer(out), cam), out.data)


@pytest.mark.gui
def test_live_preview_follows_clip_changes(qtbot, make_napari_viewer):
    pytest.importorskip("napari")
    from skimage import data

    from napari_restore.processors.registry import get_processor
    from napari_restore.widgets import ProcessorPanel

    viewer = make_napari_viewer()
    rgb = data.astronaut()[:200, :240]
    lay = viewer.add_image(rgb, name="astro", rgb=True)
    panel = ProcessorPanel(viewer, get_processor("lb_clahe"))
    viewer.window.add_dock_widget(panel)
    panel.layer_widget.value = lay
    panel.preview.toggle.value = True
    qtbot.waitUntil(lambda: panel.preview.shown >= 1 and not panel.preview.busy, timeout=30_000)
    for clip in (1.5, 2.5, 3.5):
        panel.set_params({"clip_limit": clip, "tile_grid": (4, 4)})
        qtbot.wait(20)
    qtbot.waitUntil(lambda: panel.preview.shown >= 2 and not panel.preview.busy, timeout=30_000)
    preview = viewer.layers["astro [preview]"]
    target = panel.target(lay, "view")
    expected = lb_clahe(np.asarray(target.data), clip_limit=3.5, tile_grid=(4, 4), channel_axis=-1)
    np.testing.assert_array_equal(preview.data, expected)
    panel.preview.toggle.value = False


def test_training_data_and_fit_are_deterministic():
    """A tiny run of the training script's own functions, twice: identical numbers."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_lb_clahe.py"
    spec = importlib.util.spec_from_file_location("train_lb_clahe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    runs = [mod.build(("camera", "coins"), 2, 7) for _ in range(2)]
    (x1, y1, g1, _), (x2, y2, g2, _) = runs
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert list(g1) == ["camera", "camera", "coins", "coins"]
    assert set(np.exp2(y1[:, 0]).round(3)) <= set(T.CLIP_GRID)
    assert set(np.exp2(y1[:, 1]).round(3)) <= set(T.TILE_GRID)
    c1, i1 = mod.fit_ridge(x1, y1, 10.0)
    c2, i2 = mod.fit_ridge(x2, y2, 10.0)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(i1, i2)
