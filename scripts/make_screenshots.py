"""Regenerate the docs screenshots by driving a real viewer (run under xvfb-run: `make screenshots`)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

# Screenshots never touch (or depend on) the user's remembered panel parameters.
os.environ["NAPARI_RESTORE_CONFIG_DIR"] = tempfile.mkdtemp(prefix="napari-restore-shots-")

import napari
from qtpy.QtWidgets import QApplication

from napari_restore._compat import viewer_camera, viewer_grid
from napari_restore._sample_data import sample_astronaut, sample_camera

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
#: The window size of every screenshot (a laptop screen; the panels must fit it).
WINDOW = (1280, 800)


def wait_idle(panel, timeout=600.0):
    t0 = time.perf_counter()
    while panel.state != "idle" and time.perf_counter() - t0 < timeout:
        QApplication.processEvents()
        time.sleep(0.02)
    QApplication.processEvents()


def grid(viewer):
    viewer_grid(viewer).enabled = True
    viewer.reset_view()


def shot(viewer, name, size=WINDOW):
    OUT.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.resize(*size)
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


def lb_clahe(viewer):
    """A hazy, unevenly lit photo and learning-based CLAHE in each colour space."""
    import numpy as np
    from skimage import data

    rgb = data.coffee().astype(np.float64) / 255.0
    ramp = np.linspace(0.35, 1.0, rgb.shape[1])[None, :, None]
    hazy = np.clip(0.5 * rgb * ramp + 0.4, 0.0, 1.0)
    viewer.add_image(np.rint(hazy * 255).astype(np.uint8), name="coffee (hazy)", rgb=True)
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Learning-based CLAHE")
    panel.layer_widget.value = viewer.layers["coffee (hazy)"]
    for space in ("lab", "hsv", "rgb"):
        panel.set_params({"colorspace": space, "clip_limit": None, "tile_grid": None})
        panel.start()
        wait_idle(panel)
    grid(viewer)
    shot(viewer, "lb_clahe_panel")


def _bm3d_crop(viewer, size=256):
    """A 256² crop of the noisy camera sample (BM3D on the full 512² takes ~7 s)."""
    for data, kwargs, _ in sample_camera():
        kwargs = dict(kwargs)
        viewer.add_image(data[128:128 + size, 128:128 + size], **kwargs)
    return viewer.layers["camera (noisy)"]


def bm3d_denoise(viewer):
    src = _bm3d_crop(viewer)
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "BM3D denoise")
    panel.layer_widget.value = src
    panel.extras[panel.spec.name].estimate_button.changed.emit(True)  # fills σ
    panel.set_params({"profile": "np"})
    panel.start()
    wait_idle(panel)
    grid(viewer)
    viewer.layers["camera (clean)"].visible = False
    shot(viewer, "bm3d_denoise_panel")


def bm3d_deblur(viewer):
    import numpy as np
    from scipy.ndimage import convolve

    from napari_restore.processors.bm3d import gaussian_psf

    for data, kwargs, _ in sample_camera():
        if kwargs.get("name") == "camera (clean)":
            clean = data[128:384, 128:384].astype(np.float64) / 255
    blurred = convolve(clean, gaussian_psf((15, 7), 2.0), mode="wrap")
    blurred += np.random.default_rng(0).normal(0, 0.01, blurred.shape)
    src = viewer.add_image(np.clip(blurred, 0, 1).astype(np.float32), name="camera (blurred 15x7)")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "BM3D deblur")
    panel.layer_widget.value = src
    panel.set_params({"psf_size": (15, 7), "psf_sigma": 2.0, "sigma": 0.01})
    panel.start()
    wait_idle(panel)
    grid(viewer)
    shot(viewer, "bm3d_deblur_panel")


def bm4d_denoise(viewer):
    from napari_restore._sample_data import sample_volume

    for data, kwargs, _ in sample_volume():
        viewer.add_image(data, **kwargs)
    noisy = [lay for lay in viewer.layers if "noisy" in lay.name][0]
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "BM4D denoise")
    panel.layer_widget.value = noisy
    panel.extras[panel.spec.name].estimate_button.changed.emit(True)
    panel.start()
    wait_idle(panel)
    grid(viewer)
    shot(viewer, "bm4d_denoise_panel")


def deep_image_prior(viewer):
    """A run in progress: live result layer (updated in place) and the loss / variance plot."""
    import torch

    torch.set_num_threads(1)  # the docs VM has 2 shared cores: two torch threads fight the GUI
    for data, kwargs, _ in sample_camera():
        viewer.add_image(data[80:208, 180:308], **dict(kwargs))
    viewer.layers["camera (clean)"].visible = False
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Deep Image Prior")
    panel.layer_widget.value = viewer.layers["camera (noisy)"]
    panel.set_params({**panel.spec.defaults(), "every": 10})  # not remembered values
    panel.start()
    t0 = time.perf_counter()
    extras = panel.extras["deep_image_prior"]
    while (not extras.iterations or extras.iterations[-1] < 250) and time.perf_counter() - t0 < 150:
        QApplication.processEvents()
        time.sleep(0.02)
    extras.redraw()
    grid(viewer)
    shot(viewer, "deep_image_prior_running")
    panel.stop()
    wait_idle(panel)


def restore_film_grain(viewer):
    """Grainy coffee crop: Analyse plots in the dock, then the three results in grid mode."""
    from napari_restore._sample_data import film_grain

    clean, grainy = film_grain(grain_sigma_px=1.5)
    viewer.add_image(grainy[40:296, 60:316], name="coffee (grainy)", rgb=True)
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Film grain")
    panel.layer_widget.value = viewer.layers["coffee (grainy)"]
    extras = panel.extras["restore_film_grain"]
    extras.analyse()
    extras.wait()
    panel.target_widget.value = "layer"
    panel.start()
    wait_idle(panel)
    viewer.layers.selection.active = viewer.layers["coffee (grainy)"]  # plots: the input
    extras.wait()
    extras.grid.value = True
    for _ in range(10):  # let the dock settle to its width before fitting the grid
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.reset_view()
    shot(viewer, "restore_film_grain_panel")


def noise_model_uncertain(viewer):
    """"Estimate noise model" on the 256² moon at 200 photons (gain 1, read 1; seed 2): a
    narrow intensity range, so the panel says that the gain is uncertain."""
    import numpy as np
    from skimage import data, transform

    from napari_restore._sample_data import poisson_gaussian

    img = transform.resize(data.moon().astype(float), (256, 256), anti_aliasing=True)
    img = (img - img.min()) / (img.max() - img.min())
    _, noisy = poisson_gaussian(img, peak=200, gain=1, read=1, offset=0, seed=2)
    src = viewer.add_image(noisy.astype(np.float32), name="moon (200 photons)")
    _noise_model_shot(viewer, src, "noise_model_uncertain")


def _noise_model_shot(viewer, layer, name):
    """The BM3D panel after "Estimate noise model" on ``layer``, tall enough for the plot."""
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "BM3D denoise")
    panel.layer_widget.value = layer
    extra = panel.extras["noise_pg_extras"]
    extra.estimate()
    t0 = time.perf_counter()
    while extra.state.model is None and time.perf_counter() - t0 < 60:
        QApplication.processEvents()
        time.sleep(0.02)
    viewer.reset_view()
    shot(viewer, name, size=(1500, 950))  # the plot below the panel


def noise_model_beads(viewer):
    """"Estimate noise model" on 25 beads (128², 20 photons, gain 4, read 3, offset 100,
    uint16): the level sets on the beads themselves (step 6 of the estimate) give the gain."""
    import numpy as np

    from napari_restore._sample_data import beads_clean, poisson_gaussian

    _, noisy = poisson_gaussian(beads_clean(), peak=20, gain=4, read=3, offset=100, seed=20,
                                dtype=np.uint16)
    src = viewer.add_image(noisy, name="beads (20 photons)")
    _noise_model_shot(viewer, src, "noise_model_beads")


SCENES = [classic_denoise, classic_denoise_rgb, tuning, lb_clahe, bm3d_denoise, bm3d_deblur,
          bm4d_denoise, deep_image_prior, restore_film_grain, noise_model_uncertain,
          noise_model_beads]


def main(names: list[str] | None = None) -> None:
    for scene in SCENES:
        if names and scene.__name__ not in names:
            continue
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(*WINDOW)
        scene(viewer)
        viewer.close()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
