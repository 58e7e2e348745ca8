"""Result layers are displayed for what they hold, and volume processors offer volume targets.

- An output that keeps the source's intensity scale (a denoiser's) opens with the source's
  contrast limits; one that changes the value range (LB-CLAHE, a grain residual) opens with
  limits from its own data. LB-CLAHE on dim 12-bit data stored in uint16 used to inherit the
  source's limits and show a white square.
- BM4D's panel offers the whole layer and the current volume, never a 2-D slice or field of
  view (its "current slice" used to process the whole volume).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")

from napari_restore import _isolate, bm4d_denoise  # noqa: E402
from napari_restore.processors.registry import Output, get_processor  # noqa: E402
from napari_restore.widgets._layers import add_results, snapshot  # noqa: E402


@pytest.fixture
def viewer(make_napari_viewer):
    yield make_napari_viewer()
    _isolate.shutdown()


def _panel(viewer, title):
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", title)
    return panel


def _run(qtbot, panel, layer):
    panel.layer_widget.value = layer
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
    assert panel.last_layers, panel.status.value
    return panel.last_layers


def _dim_uint16():
    """Camera at 12 bits, dim: values ~200–1700 of 0–4095, stored in uint16."""
    from skimage import data

    cam = data.camera()[96:224, 160:288].astype(np.float64)
    return (200 + cam / 255 * 1500).astype(np.uint16)


def _saturated(layer) -> float:
    """Fraction of pixels displayed at the top of the colormap (white)."""
    lo, hi = layer.contrast_limits
    return float(np.mean(np.asarray(layer.data) >= hi))


def test_output_keeps_scale_defaults():
    assert Output().keeps_scale is True
    assert Output(kind="residual").keeps_scale is False
    assert Output(keeps_scale=False).keeps_scale is False
    assert [o.keeps_scale for o in get_processor("lb_clahe").outputs] == [False]
    grain = {o.name: o.keeps_scale for o in get_processor("restore_film_grain").outputs}
    assert grain == {"denoised": True, "grain": False, "regrained": True}
    for name in ("classic_denoise", "bm3d_denoise", "bm3d_deblur", "bm4d_denoise",
                 "deep_image_prior"):
        assert all(o.keeps_scale for o in get_processor(name).outputs), name


def test_clahe_result_gets_its_own_limits_and_a_denoiser_keeps_the_source(
        qtbot, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer(show=True)  # a shown canvas, for the screenshot
    img = _dim_uint16()
    src = viewer.add_image(img, name="dim")
    src_limits = tuple(src.contrast_limits)
    assert src_limits == (float(img.min()), float(img.max()))  # napari's own auto contrast

    (clahe,) = _run(qtbot, _panel(viewer, "Learning-based CLAHE"), src)
    out = np.asarray(clahe.data)
    assert out.dtype == np.uint16
    # the premise: equalisation moved the values out of the source's range
    assert out.max() > src_limits[1] * 1.5
    lo, hi = clahe.contrast_limits
    assert (lo, hi) == pytest.approx((float(out.min()), float(out.max())))
    assert (lo, hi) != pytest.approx(src_limits)
    assert _saturated(clahe) < 0.01
    # with the source's limits (the old behaviour) a large part of it would be white
    assert float(np.mean(out >= src_limits[1])) > 0.2

    src.visible = False
    viewer.reset_view()
    qtbot.wait(100)
    shot = viewer.screenshot(path=str(tmp_path / "lb_clahe_dim_uint16.png"), canvas_only=True,
                             flash=False)
    grey = np.asarray(shot)[..., :3].mean(axis=-1)
    assert float(np.mean(grey >= 250)) < 0.02  # no white patch (the old limits: 14 %)
    assert float(np.std(grey)) > 30  # shows structure

    src.visible = True
    clahe.visible = False
    (den,) = _run(qtbot, _panel(viewer, "Classic denoise"), src)
    assert tuple(den.contrast_limits) == pytest.approx(src_limits)


def test_grain_outputs_display(viewer):
    """The film-grain panel's layers: denoised and regrained keep the source's limits; the
    grain residual gets limits from its own (signed) values and a grey colormap."""
    rng = np.random.default_rng(0)
    img = (1000 + 400 * rng.random((40, 40))).astype(np.uint16)
    src = viewer.add_image(img, name="film")
    spec = get_processor("restore_film_grain")
    den = img.copy()
    grain = rng.normal(0, 30, img.shape).astype(np.float32)
    regr = img.copy()
    layers = add_results(viewer, snapshot(src), spec, spec.defaults(), None,
                         (den, grain, regr), 0.1)
    by_name = {lay.metadata["napari_restore"]["output"]: lay for lay in layers}
    assert tuple(by_name["denoised"].contrast_limits) == pytest.approx(src.contrast_limits)
    assert tuple(by_name["regrained"].contrast_limits) == pytest.approx(src.contrast_limits)
    g = by_name["grain"]
    assert tuple(g.contrast_limits) == pytest.approx((float(grain.min()), float(grain.max())))
    assert g.colormap.name == "gray"


def test_clahe_preview_gets_its_own_limits(qtbot, viewer):
    src = viewer.add_image(_dim_uint16(), name="dim")
    panel = _panel(viewer, "Learning-based CLAHE")
    panel.layer_widget.value = src
    panel.preview.toggle.value = True
    qtbot.waitUntil(lambda: panel.preview.shown >= 1 and not panel.preview.busy, timeout=30_000)
    prev = panel.preview.layer
    data = np.asarray(prev.data)
    assert tuple(prev.contrast_limits) == pytest.approx((float(data.min()), float(data.max())))
    assert _saturated(prev) < 0.01
    panel.set_params({"clip_limit": 6.0})  # a new run updates the layer: limits follow it
    qtbot.waitUntil(lambda: panel.preview.shown >= 2 and not panel.preview.busy, timeout=30_000)
    data = np.asarray(panel.preview.layer.data)
    assert tuple(panel.preview.layer.contrast_limits) == pytest.approx(
        (float(data.min()), float(data.max())))


# -- targets of a volume processor -------------------------------------------------------------

def _volumes(t=3):
    from skimage.data import binary_blobs

    rng = np.random.default_rng(1)
    vols = [binary_blobs(16, blob_size_fraction=0.3, n_dim=3, rng=k)[:6] for k in range(t)]
    clean = np.stack(vols).astype(np.float64) * 120 + 60
    return np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)


def test_volume_panel_offers_volume_targets_only(viewer):
    bm4d = _panel(viewer, "BM4D denoise")
    assert set(bm4d.target_widget.choices) == {"layer", "volume"}
    assert bm4d.target_widget.value == "layer"
    plane = _panel(viewer, "BM3D denoise")
    assert set(plane.target_widget.choices) == {"layer", "slice", "view"}

    vol = viewer.add_image(_volumes()[0], name="vol3d")
    with pytest.raises(ValueError, match="target='slice' is not allowed for a volume processor"):
        bm4d.target(vol, "slice")
    whole = bm4d.target(vol, "volume")  # a 3-D layer is one volume
    assert whole.data is vol.data and whole.index == ()
    with pytest.raises(ValueError, match="'slice', 'view'"):
        plane.target(vol, "volume")


def test_current_volume_processes_only_that_volume(qtbot, viewer):
    stack = _volumes(3)
    layer = viewer.add_image(stack, name="tvol", scale=(1.0, 2.0, 0.5, 0.5))
    viewer.dims.set_current_step(0, 1)
    bm4d = _panel(viewer, "BM4D denoise")
    bm4d.set_params({"profile": "lc"})
    bm4d.target_widget.value = "volume"
    (out,) = _run(qtbot, bm4d, layer)
    assert out.data.shape == stack.shape[1:]
    expected = bm4d_denoise(stack[1], profile="lc")
    np.testing.assert_array_equal(np.asarray(out.data), expected)
    assert not np.array_equal(expected, bm4d_denoise(stack[0], profile="lc"))
    assert out.metadata["napari_restore"]["target"]["index"] == [1]
    assert tuple(out.scale) == (2.0, 0.5, 0.5)
    assert out.metadata["napari_restore"]["target"]["description"] == "volume axis 0=1"
