"""A parameter sweep can show each slice's self-supervised loss under the slider value."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari_restore._compat import viewer_text_overlay
from napari_restore.calibration import self_supervised_loss


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_sweep_shows_each_slice_self_supervised_loss(qtbot, viewer, camera_pair):
    _, noisy = camera_pair
    noisy = noisy[:64, :64]
    viewer.add_image(noisy, name="cam")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    panel.set_params({"method": "tv_chambolle"})
    panel.sweep.with_loss.value = True
    values = [5.0, 20.0, 80.0]
    assert panel.sweep.start("sigma", values) is not None
    qtbot.waitUntil(lambda: panel.sweep.worker is None, timeout=60_000)
    layer = viewer.layers[-1]
    sweep = layer.metadata["napari_restore"]["sweep"]
    params = panel.params
    expected = [self_supervised_loss(noisy, "classic_denoise", {**params, "sigma": v})
                for v in values]
    assert sweep["losses"] == pytest.approx(expected, rel=1e-6)
    assert len(set(np.round(expected, 6))) == 3  # the values differ: the test can tell them apart
    for k in range(3):
        viewer.dims.set_current_step(0, k)
        text = viewer_text_overlay(viewer).text
        assert f"sigma = {values[k]:.6g}" in text
        assert f"self-supervised loss {expected[k]:.4g}" in text


def test_sweep_without_loss_records_none(qtbot, viewer, camera_pair):
    _, noisy = camera_pair
    viewer.add_image(noisy[:48, :48], name="cam")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    panel.set_params({"method": "tv_chambolle"})
    assert panel.sweep.start("sigma", [5.0, 20.0]) is not None
    qtbot.waitUntil(lambda: panel.sweep.worker is None, timeout=60_000)
    assert "losses" not in viewer.layers[-1].metadata["napari_restore"]["sweep"]
    assert "self-supervised loss" not in viewer_text_overlay(viewer).text
