"""Live preview, parameter sweeps, recipe buttons and remembered parameters (any panel)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")

from napari_restore import Recipe, apply_recipe, classic_denoise  # noqa: E402
from napari_restore.processors.registry import Param  # noqa: E402
from napari_restore.widgets import ProcessorPanel  # noqa: E402
from napari_restore.widgets.sweep import parse_values  # noqa: E402


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def classic_panel(viewer):
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    return panel


def wait_preview(qtbot, panel, shown):
    qtbot.waitUntil(lambda: panel.preview.shown >= shown and not panel.preview.busy, timeout=30_000)


def test_ten_changes_leave_one_preview_layer_matching_the_last_parameters(qtbot, viewer, camera_pair):
    _, noisy = camera_pair
    viewer.add_image(noisy, name="cam")
    panel = classic_panel(viewer)
    panel.set_params({"method": "tv_chambolle"})
    panel.preview.toggle.value = True
    wait_preview(qtbot, panel, 1)
    for k in range(10):
        panel.set_params({"sigma": 5.0 + 2.0 * k})  # grey levels of the uint8 layer
        qtbot.wait(20)
    wait_preview(qtbot, panel, 2)
    previews = [lay for lay in viewer.layers if lay.name.endswith("[preview]")]
    assert [lay.name for lay in previews] == ["cam [preview]"]
    target = panel.target(viewer.layers["cam"], "view")
    expected = classic_denoise(np.asarray(target.data), method="tv_chambolle", sigma=23.0)
    np.testing.assert_array_equal(previews[0].data, expected)
    assert previews[0].metadata["napari_restore"]["params"]["sigma"] == pytest.approx(23.0)
    # debounced: far fewer runs than changes
    assert panel.preview.shown + panel.preview.dropped <= 5
    panel.preview.toggle.value = False
    assert "cam [preview]" not in [lay.name for lay in viewer.layers]


def delayed_plane(plane, *, delay, level):
    time.sleep(delay)
    return plane * 0 + level


DELAY_PARAMS = (Param("delay", float, 0.0, "s", min=0, max=5),
                Param("level", float, 0.5, "value", min=0, max=1))


def test_stale_preview_is_never_shown(qtbot, viewer, temp_processor):
    spec = temp_processor("delayed_test", delayed_plane, DELAY_PARAMS)
    viewer.add_image(np.zeros((16, 16), np.float32), name="img")
    panel = ProcessorPanel(viewer, spec)
    viewer.window.add_dock_widget(panel)
    shown = []
    panel.preview.timer.setInterval(0)
    panel.preview.toggle.value = False
    panel.set_params({"delay": 1.0, "level": 0.25})  # slow, older
    panel.preview.toggle.value = True
    panel.preview.run()
    qtbot.wait(100)
    panel.set_params({"delay": 0.0, "level": 0.75})  # fast, newer
    panel.preview.run()
    qtbot.waitUntil(lambda: panel.preview.shown >= 1, timeout=5000)
    shown.append(float(panel.preview.layer.data.max()))
    qtbot.waitUntil(lambda: not panel.preview._workers, timeout=5000)  # the slow one arrived
    qtbot.wait(50)
    assert float(panel.preview.layer.data.max()) == 0.75
    assert panel.preview.dropped >= 1 and shown == [0.75]


def test_sweep_stacks_five_values_each_equal_to_a_direct_call(qtbot, viewer, camera_pair):
    _, noisy = camera_pair
    viewer.add_image(noisy, name="cam")
    panel = classic_panel(viewer)
    panel.set_params({"method": "tv_chambolle"})
    worker = panel.sweep.start("sigma", "0.02:0.10:5")
    assert worker is not None
    qtbot.waitUntil(lambda: panel.sweep.worker is None, timeout=60_000)
    layer = viewer.layers[-1]
    assert layer.data.shape == (5, *noisy.shape)
    meta = layer.metadata["napari_restore"]
    assert meta["sweep"] == {"param": "sigma", "values": pytest.approx([0.02, 0.04, 0.06, 0.08, 0.10])}
    for k, v in enumerate(meta["sweep"]["values"]):
        np.testing.assert_array_equal(layer.data[k], classic_denoise(noisy, method="tv_chambolle", sigma=v))
    assert viewer.dims.axis_labels[0] == "sigma"
    viewer.dims.set_current_step(0, 3)
    from napari_restore._compat import viewer_text_overlay

    assert "sigma = 0.08" in viewer_text_overlay(viewer).text
    assert "sweep σ=0.02…0.1" in layer.name


def test_sweep_stop_keeps_finished_runs(qtbot, viewer, temp_processor):
    spec = temp_processor("delayed_test", delayed_plane, DELAY_PARAMS)
    viewer.add_image(np.zeros((16, 16), np.float32), name="img")
    panel = ProcessorPanel(viewer, spec)
    viewer.window.add_dock_widget(panel)
    panel.set_params({"delay": 0.3})
    panel.sweep.start("level", "0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8")
    qtbot.waitUntil(lambda: panel.progress.value >= 250, timeout=10_000)
    panel.sweep.button.native.click()  # Stop sweep
    qtbot.waitUntil(lambda: panel.sweep.worker is None, timeout=5000)
    layer = viewer.layers[-1]
    n = layer.data.shape[0]
    assert 2 <= n < 8
    assert layer.metadata["napari_restore"]["sweep"]["values"] == pytest.approx([0.1 * (k + 1) for k in range(n)])


def test_parse_values():
    sigma = Param("sigma", float, 0.1, "d", min=0, max=1)
    assert parse_values(sigma, "0:1:3") == [0.0, 0.5, 1.0]
    assert parse_values(sigma, "0.1, 0.2") == [0.1, 0.2]
    n = Param("n", int, 3, "d", min=1, max=9)
    assert parse_values(n, "1:3:5") == [1, 2, 3]
    m = Param("m", str, "a", "d", choices=("a", "b"))
    assert parse_values(m, "") == ["a", "b"]
    with pytest.raises(ValueError, match="sigma=2 is out of range"):
        parse_values(sigma, "0.5, 2")
    with pytest.raises(ValueError, match="start:stop:count"):
        parse_values(sigma, "0:1")
    with pytest.raises(ValueError, match="m='c'"):
        parse_values(m, "a, c")


def test_recipe_saved_from_result_layer_replays_bit_for_bit_and_loads_into_panel(
        qtbot, viewer, camera_pair, tmp_path):
    _, noisy = camera_pair
    viewer.add_image(noisy, name="cam")
    panel = classic_panel(viewer)
    panel.set_params({"method": "nl_means", "sigma": 18.0, "patch_size": 7})
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
    result = viewer.layers[-1]
    viewer.layers.selection.active = result
    path = panel.recipes.save(tmp_path / "r.json")
    np.testing.assert_array_equal(apply_recipe(path, noisy), result.data)
    # a loaded recipe sets the panel's widgets
    Recipe("classic_denoise", {"method": "wavelet", "sigma": 12.5, "strength": 2.0},
           source_dtype="uint8").save(tmp_path / "w.json")
    panel.recipes.load(tmp_path / "w.json")
    assert panel.params["method"] == "wavelet" and panel.params["strength"] == 2.0
    assert panel.param_widgets["sigma"].value == pytest.approx(12.5)
    # copy as Python
    text = panel.recipes.copy_python()
    from qtpy.QtWidgets import QApplication

    assert QApplication.clipboard().text() == text
    namespace = {"image": noisy}
    viewer.layers.selection.active = result
    exec(panel.recipes.copy_python(), namespace)  # the snippet really runs
    np.testing.assert_array_equal(namespace["result"], result.data)


def test_loading_a_recipe_for_another_processor_is_refused(viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    panel = classic_panel(viewer)
    (tmp_path / "bad.json").write_text(json.dumps({"processor": "classic_denoise", "params": {"sigma": -7}}))
    notification_manager.records.clear()
    assert panel.recipes.load(tmp_path / "bad.json") is None
    assert any("sigma" in str(n.message) for n in notification_manager.records)


def test_parameters_persist_across_panel_rebuilds(make_napari_viewer):
    v1 = make_napari_viewer()
    p1 = classic_panel(v1)
    p1.set_params({"method": "opencv_nlm", "strength": 1.7, "sigma": 0.04})
    v1.window.remove_dock_widget("all")
    v2 = make_napari_viewer()
    p2 = classic_panel(v2)
    assert p2.params["method"] == "opencv_nlm"
    assert p2.params["strength"] == pytest.approx(1.7)
    assert p2.params["sigma"] == pytest.approx(0.04)


def test_current_slice_and_field_of_view_targets(qtbot, viewer):
    stack = np.random.default_rng(0).integers(0, 255, (3, 40, 50)).astype(np.uint8)
    viewer.add_image(stack, name="stack", scale=(1, 2, 2))
    panel = classic_panel(viewer)
    panel.set_params({"method": "wavelet"})
    viewer.dims.set_current_step(0, 2)
    panel.target_widget.value = "slice"
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=30_000)
    out = viewer.layers[-1]
    assert out.data.shape == (40, 50)
    np.testing.assert_array_equal(out.data, classic_denoise(stack[2], method="wavelet"))
    assert out.metadata["napari_restore"]["target"]["index"] == [2]


def test_preview_of_float_data_matches_the_full_run(qtbot, viewer):
    """A field-of-view run of float data is scaled by the whole layer's range."""
    rng = np.random.default_rng(1)
    data = (rng.random((64, 64)) * 1000 - 200).astype(np.float32)
    data[:8, :8] = 5000.0  # the layer's maximum lies outside the crop below
    layer = viewer.add_image(data, name="f")
    panel = classic_panel(viewer)
    panel.set_params({"method": "tv_chambolle", "sigma": 0.05})
    full = classic_denoise(data, method="tv_chambolle", sigma=0.05)
    layer.corner_pixels = np.array([[20, 20], [59, 59]])
    target = panel.target(layer, "view")
    assert target.data.shape == (40, 40) and target.value_range == (float(data.min()), 5000.0)
    part = panel.spec.apply(target.data, value_range=target.value_range, method="tv_chambolle", sigma=0.05)
    # TV is not local, so compare against the same crop processed in the whole range
    whole_scaled = panel.spec.apply(data[20:60, 20:60], value_range=target.value_range,
                                    method="tv_chambolle", sigma=0.05)
    np.testing.assert_array_equal(part, whole_scaled)
    assert full.dtype == part.dtype
