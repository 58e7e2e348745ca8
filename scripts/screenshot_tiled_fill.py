"""Docs screenshot of a tiled result filling in (docs/images/tiled_fill.png).

Run under xvfb: ``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_tiled_fill.py``.
A noisy 4096² uint16 plane (a dask layer), Classic denoise (TV, tiles auto): the screenshot is
taken when about half of the rows of tiles are in, with napari's activity dock open.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ["NAPARI_RESTORE_CONFIG_DIR"] = tempfile.mkdtemp(prefix="napari-restore-shots-")

import dask.array as da
import napari
import numpy as np
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "tiled_fill.png"


def plane(side: int = 4096) -> np.ndarray:
    from skimage import data, transform

    base = transform.resize(data.camera().astype(np.float32) / 255.0, (side, side), order=1)
    rng = np.random.default_rng(0)
    noisy = base * 50000 + 5000 + rng.normal(0, 4000, base.shape)
    return np.clip(noisy, 0, 65535).astype(np.uint16)


def main() -> None:
    viewer = napari.Viewer()
    img = plane()
    viewer.add_image(da.from_array(img, chunks=(512, 512)), name="mosaic (noisy)")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    panel.layer_widget.value = viewer.layers["mosaic (noisy)"]
    panel.set_params({"method": "tv_chambolle", "sigma": 6000.0, "tile": "auto"})
    viewer.window._qt_window.resize(1280, 800)
    viewer.reset_view()
    viewer.window._status_bar._toggle_activity_dock(True)
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)
    panel.start()
    result = viewer.layers[-1]
    viewer.layers.selection.active = result
    rows = img.shape[0]
    t0 = time.perf_counter()
    filled = 0
    while time.perf_counter() - t0 < 900:  # the screen lags the computation: shoot at once
        QApplication.processEvents()
        filled = int(np.asarray(result.data[:, ::64]).any(axis=1).sum())
        if 0.3 * rows <= filled <= 0.7 * rows:
            break
        time.sleep(0.05)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(OUT), canvas_only=False, flash=False)
    print(f"wrote {OUT} with {filled}/{rows} rows filled")
    panel.stop()
    t0 = time.perf_counter()
    while panel.state != "idle" and time.perf_counter() - t0 < 60:
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.close()


if __name__ == "__main__":
    main()
