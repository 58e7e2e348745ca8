"""BM3D / BM4D panels in a real viewer: a run, the "Estimate σ" button, and Stop in the
middle of a library call (the worker process is terminated, no layer is added)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")

from napari_restore import _isolate  # noqa: E402
from napari_restore.processors.noise import estimate_noise_sigma  # noqa: E402


@pytest.fixture
def viewer(make_napari_viewer):
    yield make_napari_viewer()
    _isolate.shutdown()


def _panel(viewer, title):
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", title)
    return panel


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_bm3d_panel_run_adds_a_layer(qtbot, viewer):
    from skimage import data

    clean = data.camera()[200:264, 200:264] / 255.0
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)
    src = viewer.add_image(noisy.astype(np.float32), name="cam")
    panel = _panel(viewer, "BM3D denoise")
    panel.layer_widget.value = src
    panel.set_params({"sigma": 0.1, "profile": "lc"})
    n = len(viewer.layers)
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
    assert len(viewer.layers) == n + 1
    out = viewer.layers[-1]
    assert out.name == "cam [bm3d_denoise σ=0.1 lc]"
    meta = out.metadata["napari_restore"]
    assert meta["processor"] == "bm3d_denoise" and meta["params"]["profile"] == "lc"
    mse = lambda a: float(np.mean((np.asarray(a, np.float64) - clean) ** 2))  # noqa: E731
    assert mse(out.data) < mse(noisy) / 4


def test_estimate_button_fills_sigma_for_the_current_plane(qtbot, viewer):
    from skimage import data

    clean = data.camera()[:96, :96] / 255.0
    rng = np.random.default_rng(1)
    stack = np.stack([np.clip(clean + rng.normal(0, s, clean.shape), 0, 1) for s in (0.02, 0.12)])
    layer = viewer.add_image((stack * 65535).astype(np.uint16), name="stack")
    panel = _panel(viewer, "BM3D denoise")
    panel.layer_widget.value = layer
    assert panel.param_widgets["sigma"].value is None  # auto
    viewer.dims.set_current_step(0, 1)
    panel.extras[panel.spec.name].estimate_button.changed.emit(True)
    got = panel.param_widgets["sigma"].value
    expected = estimate_noise_sigma(np.round(stack[1] * 65535) / 65535) * 65535  # grey levels
    assert got == pytest.approx(expected, abs=1.0)  # the spin box shows grey levels
    assert 0.1 * 65535 < got < 0.14 * 65535
    assert "σ ≈" in panel.extras[panel.spec.name].estimate_label.value and "grey levels" in panel.extras[panel.spec.name].estimate_label.value
    viewer.dims.set_current_step(0, 0)
    panel.extras[panel.spec.name].estimate_button.changed.emit(True)
    assert panel.param_widgets["sigma"].value < 0.04 * 65535


def test_stop_mid_call_ends_the_worker_and_adds_no_layer(qtbot, viewer):
    from skimage import data

    noisy = np.clip(data.camera() / 255.0 + np.random.default_rng(2).normal(0, 0.1, (512, 512)), 0, 1)
    src = viewer.add_image(noisy, name="big")
    panel = _panel(viewer, "BM3D denoise")
    panel.layer_widget.value = src
    panel.set_params({"sigma": 0.1, "profile": "np"})  # ~5-10 s on 512²
    n = len(viewer.layers)
    assert panel.start() is not None
    qtbot.waitUntil(lambda: bool(_isolate._busy), timeout=30_000)  # the library call is running
    qtbot.wait(800)
    pids = _isolate.worker_pids()
    assert pids and all(_alive(p) for p in pids)
    t0 = time.perf_counter()
    panel.run_button.changed.emit(True)  # the Run button reads "Stop" now
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=2_000)
    assert time.perf_counter() - t0 < 2.0
    qtbot.wait(200)
    assert len(viewer.layers) == n
    assert not any(_alive(p) for p in pids)
    assert "stopped" in panel.status.value


def test_deblur_and_bm4d_panels(qtbot, viewer):
    deblur = _panel(viewer, "BM3D deblur")
    assert deblur.param_widgets["psf_size"].value == (9, 9)
    deblur.set_params({"psf_size": (15, 7)})
    assert deblur.params["psf_size"] == (15, 7)
    from napari_restore._sample_data import blobs_volume

    clean, noisy = blobs_volume(16, 0.1)
    layer = viewer.add_image(noisy, name="vol")
    bm4d = _panel(viewer, "BM4D denoise")
    bm4d.layer_widget.value = layer
    bm4d.set_params({"sigma": 0.1, "profile": "lc"})
    assert bm4d.start() is not None
    qtbot.waitUntil(lambda: bm4d.state == "idle", timeout=60_000)
    out = viewer.layers[-1]
    assert out.data.shape == noisy.shape and out.name.startswith("vol [bm4d_denoise")
    bm4d.extras[bm4d.spec.name].estimate_button.changed.emit(True)
    span = float(noisy.max() - noisy.min())
    assert bm4d.param_widgets["sigma"].value == pytest.approx(estimate_noise_sigma(
        (noisy - noisy.min()) / span) * span, abs=1e-3)  # data units of the float layer


def test_noise_model_from_a_kernel_layer(qtbot, viewer):
    from scipy.ndimage import convolve
    from skimage import data

    from napari_restore import bm3d_denoise
    from napari_restore.metrics import psnr

    clean = data.camera()[160:256, 200:296] / 255.0
    kernel = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0])
    kernel *= 0.07 / np.sqrt((kernel**2).sum())
    noise = convolve(np.random.default_rng(5).normal(0, 1, clean.shape), kernel, mode="wrap")
    noisy = np.clip(clean + noise, 0, 1)
    src = viewer.add_image(noisy, name="corr")
    viewer.add_image(kernel, name="kernel")
    panel = _panel(viewer, "BM3D denoise")
    panel.layer_widget.value = src
    panel.set_params({"sigma": None, "profile": "np", "noise_model": "psd"})
    panel.extras[panel.spec.name].psd_layer_widget.value = viewer.layers["kernel"]
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
    out = viewer.layers[-1]
    assert out.name == "corr [bm3d_denoise σ=auto np] psd=kernel"
    assert out.metadata["napari_restore_arrays"] == {"psd": "kernel"}
    expected = bm3d_denoise(noisy, psd=kernel)
    assert np.abs(out.data - expected).max() < 1e-3  # library threads: not bit-exact
    assert psnr(out.data, clean) > psnr(bm3d_denoise(noisy, 0.07, noise_model="white"),
                                        clean) + 1.0
    # the panel's spec is never swapped: a run hook binds the array for each run
    from napari_restore.processors.bm3d import BM3D_DENOISE
    from napari_restore.widgets.bm3d_extras import NO_LAYER

    assert panel.spec is BM3D_DENOISE and panel.run_spec() is not BM3D_DENOISE
    panel.extras[panel.spec.name].psd_layer_widget.value = NO_LAYER
    with pytest.raises(ValueError, match="needs a PSD layer"):
        panel.run_spec()
    assert panel.start() is None  # "psd" without a layer: refused with a clear error
    panel.set_params({"noise_model": "auto"})
    assert panel.extras[panel.spec.name].psd_layer_widget.native.isHidden()


def test_psf_layer_and_bad_psf_layer(qtbot, viewer):
    from napari.utils.notifications import notification_manager

    src = viewer.add_image(np.random.default_rng(0).random((48, 48)), name="img")
    viewer.add_image(np.ones((5, 3)), name="box psf")
    viewer.add_image(np.zeros((5, 5)), name="zero psf")
    panel = _panel(viewer, "BM3D deblur")
    panel.layer_widget.value = src
    panel.set_params({"sigma": 0.02, "profile": "lc"})
    panel.extras[panel.spec.name].psf_layer_widget.value = viewer.layers["box psf"]
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
    assert viewer.layers[-1].name.endswith("psf=box psf")
    n = len(viewer.layers)
    before = len(notification_manager.records)
    panel.extras[panel.spec.name].psf_layer_widget.value = viewer.layers["zero psf"]
    assert panel.start() is None  # refused with a notification, nothing runs
    assert len(viewer.layers) == n
    assert any("psf must have a positive sum" in str(r.message)
               for r in notification_manager.records[before:])
