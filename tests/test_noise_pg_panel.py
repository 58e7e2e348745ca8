"""The Poisson–Gaussian extra in real panels: "Estimate noise model", its plot and status,
a run with noise model "poisson-gaussian" (name and recipe show the model)."""

from __future__ import annotations

import pytest

napari = pytest.importorskip("napari")

from napari_restore import (
    NoiseModel,
    Recipe,
    _isolate,
)
from napari_restore._sample_data import fluorescence


@pytest.fixture
def viewer(make_napari_viewer):
    yield make_napari_viewer()
    _isolate.shutdown()


def _panel(viewer, title):
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", title)
    return panel


@pytest.mark.parametrize("title", ["BM3D denoise", "Classic denoise"])
def test_estimate_noise_model_plots_and_suggests(qtbot, viewer, title):
    _, noisy = fluorescence()
    src = viewer.add_image(noisy, name="fluo")
    panel = _panel(viewer, title)
    extra = panel.extras["noise_pg_extras"]
    assert "poisson-gaussian" in list(panel.param_widgets["noise_model"].choices)
    panel.layer_widget.value = src
    assert extra.canvas.isHidden() and not extra.label.visible  # nothing to show yet
    extra.estimate()
    qtbot.waitUntil(lambda: extra.state.model is not None, timeout=30_000)
    assert not extra.canvas.isHidden()
    model = extra.state.model
    assert model.kind == "poisson-gaussian" and abs(model.gain / 4 - 1) < 0.15
    assert "a=" in panel.status.value and "try noise model 'poisson-gaussian'" in \
        panel.status.value
    assert len(extra.axes.collections) == 1 and len(extra.axes.lines) == 1  # points + fit
    assert "fluo" in extra.label.value


def test_an_uncertain_gain_is_said_in_the_status_and_the_plot(qtbot, viewer):
    """Moon at 256², 200 photons: the gain's standard error is above 15 % (a narrow
    intensity range); the panel says so rather than showing a bare number."""
    import numpy as np
    from skimage import data, transform

    from napari_restore._sample_data import poisson_gaussian

    img = transform.resize(data.moon().astype(float), (256, 256), anti_aliasing=True)
    img = (img - img.min()) / (img.max() - img.min())
    _, noisy = poisson_gaussian(img, peak=200, gain=1, read=1, offset=0, seed=2)
    src = viewer.add_image(noisy.astype(np.float32), name="moon")
    panel = _panel(viewer, "BM3D denoise")
    extra = panel.extras["noise_pg_extras"]
    panel.layer_widget.value = src
    extra.estimate()
    qtbot.waitUntil(lambda: extra.state.model is not None, timeout=30_000)
    assert extra.state.model.gain_rse > 0.15
    assert "a uncertain" in panel.status.value and "±" in panel.status.value
    assert "a uncertain" in extra.axes.get_title()


def test_run_with_poisson_gaussian_names_and_records_the_model(qtbot, viewer):
    _, noisy = fluorescence()
    src = viewer.add_image(noisy[64:128, 64:128], name="fluo")
    panel = _panel(viewer, "BM3D denoise")
    panel.layer_widget.value = src
    panel.set_params({"noise_model": "poisson-gaussian", "profile": "lc"})
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=120_000)
    out = viewer.layers[-1]
    assert " pg a=" in out.name and out.name.endswith("]")
    meta = out.metadata["napari_restore"]
    model = NoiseModel.from_param(meta["resolved"]["noise_model"])
    assert model.gain > 0 and f"a={model.gain:.3g}" in out.name
    assert "noise: poisson-gaussian" in panel.status.value
    recipe = Recipe.from_layer(out)
    assert recipe.params["noise_model"] == "poisson-gaussian"
