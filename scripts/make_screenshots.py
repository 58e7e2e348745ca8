"""Regenerate the docs screenshots by driving a real viewer (run under xvfb-run: `make screenshots`)."""

from __future__ import annotations

import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_restore._compat import viewer_grid
from napari_restore._sample_data import sample_astronaut, sample_camera

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def wait_idle(panel, timeout=600.0):
    t0 = time.perf_counter()
    while panel.state != "idle" and time.perf_counter() - t0 < timeout:
        QApplication.processEvents()
        time.sleep(0.02)
    QApplication.processEvents()


def grid(viewer):
    viewer_grid(viewer).enabled = True
    viewer.reset_view()


def shot(viewer, name):
    OUT.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)
    path = OUT / f"{name}.png"
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print(f"wrote {path}")


def classic_denoise(viewer):
    for data, kwargs, _ in sample_camera():
        viewer.add_image(data, **kwargs)
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    panel.layer_widget.value = viewer.layers["camera (noisy)"]
    panel.set_params({"method": "nl_means"})
    panel.start()
    wait_idle(panel)
    grid(viewer)
    viewer.layers["camera (clean)"].visible = False
    shot(viewer, "classic_denoise_panel")


def classic_denoise_rgb(viewer):
    for data, kwargs, _ in sample_astronaut():
        viewer.add_image(data, **kwargs)
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    panel.layer_widget.value = viewer.layers["astronaut (noisy)"]
    panel.set_params({"method": "opencv_nlm"})
    panel.start()
    wait_idle(panel)
    grid(viewer)
    shot(viewer, "classic_denoise_rgb")


SCENES = [classic_denoise, classic_denoise_rgb]


def main() -> None:
    for scene in SCENES:
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1500, 900)
        scene(viewer)
        viewer.close()


if __name__ == "__main__":
    main()
