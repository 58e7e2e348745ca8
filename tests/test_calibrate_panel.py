"""The "Suggest" extra in real panels: calibration in a worker sets the panel's parameters to
the best point, plots the loss, optionally adds the best result with its recipe; Stop during
calibration leaves the parameters unchanged and adds no layer."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari_restore import Recipe, _isolate, apply_recipe, calibrate
from napari_restore.calibration import CalibrationStep
from napari_restore.widgets._layers import META_KEY
from napari_restore.widgets.calibrate_extras import supported


@pytest.fixture
def viewer(make_napari_viewer):
    yield make_napari_viewer()
    _isolate.shutdown()


def _panel(viewer, title):
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", title)
    return panel


def _noisy(seed=0, n=64, sigma=20.0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    clean = 128 + 60 * np.sin(xx / 6.0) * np.cos(yy / 9.0)
    return np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255).astype(np.uint8)


def test_supported_follows_calibration():
    assert supported("bm3d_denoise") and supported("classic_denoise")
    assert not supported("lb_clahe") and not supported("bm3d_deblur")
    assert not supported("deep_image_prior")


@pytest.mark.parametrize("title", ["Classic denoise", "BM3D denoise"])
def test_suggest_sets_params_to_best_and_plots(qtbot, viewer, title):
    img = _noisy()
    src = viewer.add_image(img, name="noisy")
    panel = _panel(viewer, title)
    extra = panel.extras["calibrate_extras"]
    assert extra is not None and extra.button.text == "Suggest"
    panel.layer_widget.value = src
    grid = [5.0, 20.0, 60.0]
    extra.state.grid = {"sigma": grid}
    extra.state.search = "full"
    extra.add_layer.value = True
    before = len(viewer.layers)
    assert extra.plot.native.isHidden()  # no empty plot before the first suggestion
    assert extra.suggest() is not None
    assert extra.button.text == "Stop"
    qtbot.waitUntil(lambda: extra.state.job is None, timeout=120_000)
    assert extra.state.outcome == "done"
    assert not extra.plot.native.isHidden()
    result = extra.state.result
    # the same calibration through the API (same data, grid, fixed parameters) picks the same
    fixed = {k: v for k, v in panel.params.items() if k not in ("sigma", "noise_model")}
    api = calibrate(img, panel.spec.name, grid={"sigma": grid}, fixed=fixed, search="full",
                    noise_model=panel.params.get("noise_model"))
    assert result.best_params["sigma"] == api.best_params["sigma"]
    assert np.allclose(result.losses, api.losses)
    assert panel.params["sigma"] == pytest.approx(api.best_params["sigma"])
    assert np.isfinite(result.losses).all() and result.losses.shape == (3,)
    # the plot shows the curve and marks the best point
    lines = extra.axes.get_lines()
    assert len(lines) == 2
    assert lines[1].get_xdata()[0] == pytest.approx(api.best_params["sigma"])
    assert lines[1].get_ydata()[0] == pytest.approx(api.best_loss)
    assert "suggested sigma=" in panel.status.value
    # the best result as a layer, its recipe in metadata
    assert len(viewer.layers) == before + 1
    layer = viewer.layers[-1]
    meta = layer.metadata[META_KEY]
    assert meta["processor"] == panel.spec.name
    assert meta["params"]["sigma"] == pytest.approx(api.best_params["sigma"])
    assert layer.metadata["napari_restore_calibration"]["best_loss"] == pytest.approx(api.best_loss)
    assert layer.data.shape == img.shape
    recipe = Recipe.from_dict(meta)  # the recipe replays the layer
    np.testing.assert_array_equal(apply_recipe(recipe, img), layer.data)


def test_suggest_without_add_layer_adds_nothing(qtbot, viewer):
    src = viewer.add_image(_noisy(1), name="noisy")
    panel = _panel(viewer, "Classic denoise")
    extra = panel.extras["calibrate_extras"]
    panel.layer_widget.value = src
    extra.state.grid = {"sigma": [8.0, 30.0]}
    before = len(viewer.layers)
    extra.suggest()
    qtbot.waitUntil(lambda: extra.state.job is None, timeout=120_000)
    assert extra.state.outcome == "done"
    assert len(viewer.layers) == before
    assert panel.params["sigma"] == extra.state.result.best_params["sigma"]


def test_stop_during_calibration_leaves_params_and_adds_no_layer(qtbot, viewer):
    src = viewer.add_image(_noisy(2, n=96), name="noisy")
    panel = _panel(viewer, "BM3D denoise")
    extra = panel.extras["calibrate_extras"]
    panel.layer_widget.value = src
    panel.set_params({"sigma": 7.0})
    before_params = dict(panel.params)
    before_layers = len(viewer.layers)
    extra.state.grid = {"sigma": [float(s) for s in np.geomspace(4, 80, 12)]}
    extra.state.search = "full"
    extra.add_layer.value = True
    steps = []

    def on_progress(item):
        if isinstance(item.info, CalibrationStep):
            steps.append(item.info)
            if extra.state.job is not None and extra.button.text == "Stop":
                extra.button.native.click()  # the user presses Stop mid-calibration

    panel.events.progressed.connect(on_progress)
    extra.suggest()
    qtbot.waitUntil(lambda: extra.state.job is None, timeout=120_000)
    assert steps, "the calibration reported no candidate before ending"
    assert extra.state.outcome == "stopped"
    assert extra.state.result is None
    assert panel.params == before_params
    assert len(viewer.layers) == before_layers
    assert "stopped" in panel.status.value
