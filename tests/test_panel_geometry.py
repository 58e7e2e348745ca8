"""Panels fit the window: with any one panel docked, a 1280×800 window keeps at least 45 %
of its width for the canvas, even with a long layer name and a long status line."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

PANELS = ["Classic denoise", "BM3D denoise", "BM3D deblur", "BM4D denoise",
          "Time-lapse denoise", "Learning-based CLAHE", "Deep Image Prior", "Film grain",
          "Compare results", "Compare grain"]


@pytest.mark.parametrize("name", PANELS)
def test_canvas_keeps_45_percent_of_a_1280_window(make_napari_viewer, qtbot, name):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    long_name = "a layer with a very long name from a microscope export " * 3
    viewer.add_image(np.zeros((32, 32), np.float32), name=long_name)
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", name)
    window = viewer.window._qt_window
    panel.status.value = "failed: " + "a long error message without a break" * 8
    window.resize(1280, 800)
    for _ in range(5):
        QApplication.processEvents()
    canvas = viewer.window._qt_viewer.canvas.native.width()
    assert (window.width(), window.height()) == (1280, 800)  # long panels scroll
    assert canvas / window.width() >= 0.45, (canvas, window.width())
    assert panel.status.native.toolTip() == panel.status.value  # the full text is a tooltip
