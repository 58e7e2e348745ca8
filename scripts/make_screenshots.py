"""Regenerate the docs screenshots by driving a real viewer (run under xvfb-run: `make screenshots`)."""

from __future__ import annotations

import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_restore._compat import viewer_camera, viewer_grid
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


def tuning(viewer):
    """Preview, sweep and the compare table on the camera sample (the tuning tutorial)."""
    for data, kwargs, _ in sample_camera():
        viewer.add_image(data, **kwargs)
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    panel.layer_widget.value = viewer.layers["camera (noisy)"]
    panel.set_params({"method": "tv_chambolle", "sigma": 0.06})
    viewer_camera(viewer).zoom = 2.5
    panel.preview.toggle.value = True
    panel.preview.run()
    t0 = time.perf_counter()
    while panel.preview.shown < 1 and time.perf_counter() - t0 < 60:
        QApplication.processEvents()
        time.sleep(0.02)
    shot(viewer, "tuning_preview")
    panel.preview.toggle.value = False
    panel.sweep.start("sigma", "0.02:0.14:7")
    t0 = time.perf_counter()
    while panel.sweep.worker is not None and time.perf_counter() - t0 < 120:
        QApplication.processEvents()
        time.sleep(0.02)
    viewer.dims.set_current_step(0, 3)
    shot(viewer, "tuning_sweep")
    viewer.layers.remove(viewer.layers[-1])
    for method in ("nl_means", "tv_chambolle", "wavelet"):
        panel.set_params({"method": method, "sigma": None})
        panel.start()
        wait_idle(panel)
    viewer.window.remove_dock_widget(panel.native.parent() or panel.native)
    _, compare = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    compare.reference.value = viewer.layers["camera (clean)"]
    compare.layers_widget.value = [viewer.layers["camera (noisy)"]] + list(viewer.layers[2:])
    compare.update_table()
    compare.grid_view()
    shot(viewer, "tuning_compare")


SCENES = [classic_denoise, classic_denoise_rgb, tuning]


def main(names: list[str] | None = None) -> None:
    for scene in SCENES:
        if names and scene.__name__ not in names:
            continue
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1500, 900)
        scene(viewer)
        viewer.close()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
