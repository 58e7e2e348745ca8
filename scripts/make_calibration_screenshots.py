"""Screenshots of "Suggest" (loss curve) and Compare's no-reference columns, for
docs/tuning-without-reference.md (run under xvfb-run, like scripts/make_screenshots.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import napari
from make_screenshots import WINDOW, _bm3d_crop, shot, wait_idle
from qtpy.QtWidgets import QApplication


def wait(pred, timeout=900.0):
    t0 = time.perf_counter()
    while not pred() and time.perf_counter() - t0 < timeout:
        QApplication.processEvents()
        time.sleep(0.02)
    for _ in range(10):
        QApplication.processEvents()
        time.sleep(0.02)


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*WINDOW)
    src = _bm3d_crop(viewer)
    viewer.layers["camera (clean)"].visible = False
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "BM3D denoise")
    panel.layer_widget.value = src
    panel.set_params({"profile": "np"})
    extra = panel.extras["calibrate_extras"]
    extra.add_layer.value = True
    t0 = time.perf_counter()
    extra.suggest()
    wait(lambda: extra.state.job is None)
    res = extra.state.result
    print(f"Suggest on {src.data.shape}: best {res.best_params['sigma']:.4g}, "
          f"{res.evaluations} candidates, {res.seconds:.1f} s (wall {time.perf_counter() - t0:.1f} s)")
    best = res.best_params["sigma"]
    # the plot in view: scroll the dock to the Suggest section
    scroll = panel.native.parent()
    while scroll is not None and not hasattr(scroll, "ensureWidgetVisible"):
        scroll = scroll.parent()
    if scroll is not None:
        scroll.ensureWidgetVisible(extra.canvas)
    shot(viewer, "calibration_suggest")
    for factor in (0.5, 2.0):
        panel.set_params({"sigma": float(f"{best * factor:.4g}")})
        panel.start()
        wait_idle(panel)
    results = [lay for lay in viewer.layers if "napari_restore" in lay.metadata]
    for lay in results:  # short names: the table's columns stay in view
        sigma = lay.metadata["napari_restore"]["params"]["sigma"]
        lay.name = f"σ={sigma:.3g}" + (" Suggest" if "napari_restore_calibration" in lay.metadata else "")
    _, compare = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    compare.reference.value = None
    compare.layers_widget.value = results
    compare.update_table()  # runs in a worker (with progress and Stop): wait for its rows
    wait(lambda: compare.table_job is None)
    rows = compare.rows
    for r in rows:
        print({k: r[k] for k in ("layer", "SS loss", "noise σ", "residual σ", "structure",
                                 "lag-1 ρ")})
    for lay in viewer.layers:
        lay.visible = "napari_restore_calibration" in lay.metadata
    from qtpy.QtCore import Qt

    win = viewer.window._qt_window
    docks = [d for d in viewer.window._dock_widgets.values()]
    for d in docks:
        if "BM3D" in d.name:
            d.hide()
    cdock = next(d for d in docks if "Compare" in d.name)
    compare.native.setMaximumWidth(820)
    compare.native.setMinimumWidth(720)
    win.resizeDocks([cdock], [740], Qt.Horizontal)
    compare._fit_cells()
    shot(viewer, "calibration_compare")
    viewer.close()


if __name__ == "__main__":
    main()
