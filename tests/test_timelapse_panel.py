"""The time-lapse panel in a real viewer: the time axis from the layer's axis labels, and a
run on a (c, t, y, x) layer that adds the denoised layer."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")

from napari_restore import _isolate


@pytest.fixture
def viewer(make_napari_viewer):
    yield make_napari_viewer()
    _isolate.shutdown()


def _panel(viewer):
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Time-lapse denoise")
    return panel


def test_time_axis_follows_the_axis_labels(viewer):
    from napari_restore.widgets.timelapse_extras import find_time_axis

    data = np.zeros((2, 4, 16, 16), np.uint8)
    labelled = viewer.add_image(data, name="ctyx", axis_labels=("c", "t", "y", "x"))
    plain = viewer.add_image(data[0], name="tyx")
    assert find_time_axis(labelled) == -3 and find_time_axis(plain) is None
    panel = _panel(viewer)
    panel.layer_widget.value = labelled
    assert panel.params["time_axis"] == -3
    line = panel.extras["timelapse_denoise"].label.value
    assert "axis 1 't', 4 frames" in line
    panel.param_widgets["time_axis"].value = 0
    panel.layer_widget.value = plain
    assert panel.params["time_axis"] == 0  # no label: the user's choice stays
    assert "no axis labelled 't'" in panel.extras["timelapse_denoise"].label.value


def test_run_on_a_labelled_layer(qtbot, viewer):
    rng = np.random.default_rng(0)
    base = np.tile(np.linspace(40, 200, 32), (32, 1))
    frames = np.stack([np.roll(base, t, axis=0) for t in range(3)])
    noisy = np.clip(frames + rng.normal(0, 15, (2,) + frames.shape), 0, 255).astype(np.uint8)
    src = viewer.add_image(noisy, name="cells", axis_labels=("c", "t", "y", "x"))
    panel = _panel(viewer)
    panel.layer_widget.value = src
    panel.set_params({"sigma": 15, "radius": 1, "profile": "lc"})
    n = len(viewer.layers)
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=120_000)
    assert len(viewer.layers) == n + 1
    out = viewer.layers[-1]
    assert out.data.shape == noisy.shape and out.data.dtype == np.uint8
    meta = out.metadata["napari_restore"]
    assert meta["processor"] == "timelapse_denoise" and meta["params"]["time_axis"] == -3
    err_in = np.abs(noisy.astype(float) - frames).mean()
    assert np.abs(out.data.astype(float) - frames).mean() < 0.7 * err_in
