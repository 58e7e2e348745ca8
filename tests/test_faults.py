"""Fault injection in the viewer: failures at any moment end with a working viewer,
no half-written layer, no orphan worker, and a notification that says what happened."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")
from napari.utils.notifications import notification_manager  # noqa: E402

from napari_restore.processors.registry import Param  # noqa: E402
from napari_restore.widgets import ProcessorPanel  # noqa: E402


def stepping_plane(plane, *, delay, fail_at):
    """Sleeps per plane; raises on the plane whose mean encodes ``fail_at``."""
    time.sleep(delay)
    if fail_at >= 0 and round(float(plane.mean()) * 100) == fail_at:
        raise RuntimeError(f"injected failure at plane {fail_at}")
    return 1.0 - plane


PARAMS = (Param("delay", float, 0.05, "s", min=0, max=5),
          Param("fail_at", int, -1, "plane index to fail at (-1 = never)", min=-1, max=100))


def stack(n=8):
    return np.stack([np.full((16, 16), k / 100, np.float32) for k in range(n)])


@pytest.fixture
def setup(make_napari_viewer, temp_processor):
    viewer = make_napari_viewer()
    spec = temp_processor("fault_test", stepping_plane, PARAMS)
    viewer.add_image(stack(), name="src")
    panel = ProcessorPanel(viewer, spec)
    viewer.window.add_dock_widget(panel)
    notification_manager.records.clear()
    return viewer, panel


def messages():
    return [str(n.message) for n in notification_manager.records]


@pytest.mark.parametrize("fail_at", [0, 4, 7])
def test_failure_at_start_middle_end(qtbot, setup, fail_at):
    viewer, panel = setup
    panel.set_params({"delay": 0.01, "fail_at": fail_at})
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=10_000)
    assert [lay.name for lay in viewer.layers] == ["src"]
    assert any(f"injected failure at plane {fail_at}" in m for m in messages())
    # the panel works again afterwards
    panel.set_params({"fail_at": -1})
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=10_000)
    assert len(viewer.layers) == 2


def test_stop_at_random_moments(qtbot, setup):
    viewer, panel = setup
    panel.set_params({"delay": 0.02})
    rng = random.Random(0)
    for _ in range(5):
        panel.start()
        qtbot.wait(rng.randint(0, 120))
        panel.stop()
        qtbot.waitUntil(lambda: panel.state == "idle", timeout=5000)
        names = [lay.name for lay in viewer.layers]
        # either stopped (no layer) or finished just before Stop (one complete layer)
        for lay in viewer.layers[1:]:
            assert lay.data.shape == (8, 16, 16)
        assert len(names) <= 6
    assert panel.worker is None


def test_source_layer_deleted_while_running(qtbot, setup):
    viewer, panel = setup
    panel.set_params({"delay": 0.05})
    src = viewer.layers["src"]
    expected = 1.0 - src.data
    panel.start()
    qtbot.wait(60)
    viewer.layers.remove(src)
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=10_000)
    assert [lay.name for lay in viewer.layers] == ["src [fault_test]"]
    np.testing.assert_allclose(viewer.layers[0].data, expected, atol=1e-6)
    assert viewer.layers[0].metadata["napari_restore"]["source"] == "src"


def test_viewer_closed_while_a_worker_runs(qtbot, make_napari_viewer, temp_processor):
    viewer = make_napari_viewer()
    spec = temp_processor("fault_test", stepping_plane, PARAMS)
    viewer.add_image(stack(40), name="src")
    panel = ProcessorPanel(viewer, spec)
    viewer.window.add_dock_widget(panel)
    panel.set_params({"delay": 0.05})
    worker = panel.start()
    done = threading.Event()
    worker.finished.connect(done.set)
    cancel = panel._cancel
    qtbot.wait(100)
    viewer.close()
    qtbot.waitUntil(done.is_set, timeout=5000)  # the worker ended promptly: no orphan thread
    assert cancel.is_set()


# -- Stop at random moments on every real processor -------------------------------------------
REAL = {  # small inputs and cheap parameters: each run takes well under a few seconds
    "classic_denoise": ((64, 64), {}),
    "bm3d_denoise": ((64, 64), {}),
    "bm3d_deblur": ((64, 64), {}),
    "bm4d_denoise": ((12, 32, 32), {}),
    "deep_image_prior": ((48, 48), {"iterations": 60, "channels": 8, "depth": 2,
                                    "device": "cpu", "early_stopping": False}),
    "lb_clahe": ((96, 96), {}),
    "restore_film_grain": ((64, 64), {}),
}


def _our_threads_busy() -> int:
    from qtpy.QtCore import QThreadPool

    return QThreadPool.globalInstance().activeThreadCount()


@pytest.mark.parametrize("name", sorted(REAL))
def test_stop_at_random_moments_on_real_processors(qtbot, make_napari_viewer, name):
    """Stop anywhere in a real run: no partial layer, no worker thread or process left over."""
    from napari_restore import _isolate
    from napari_restore.processors.registry import get_processor

    spec = get_processor(name)
    shape, params = REAL[name]
    viewer = make_napari_viewer()
    rng = np.random.default_rng(7)
    viewer.add_image((rng.random(shape) * 255).astype(np.uint8), name="src")
    panel = ProcessorPanel(viewer, spec)
    viewer.window.add_dock_widget(panel)
    panel.set_params(params)
    panel.target_widget.value = "layer"
    pick = random.Random(name)
    for _ in range(3):
        notification_manager.records.clear()
        before = len(viewer.layers)
        panel.start()
        qtbot.wait(pick.randint(0, 400))
        panel.stop()
        qtbot.waitUntil(lambda: panel.state == "idle", timeout=20_000)
        added = list(viewer.layers)[before:]
        assert len(added) <= 1
        for lay in added:  # finished before Stop, or kept the best (DIP): always complete
            assert lay.data.shape == shape
            assert np.isfinite(np.asarray(lay.data, dtype=np.float64)).all()
        if not added:
            assert any("stopped" in str(n.message) for n in notification_manager.records)
        assert panel.worker is None
        qtbot.waitUntil(lambda: _our_threads_busy() == 0, timeout=10_000)  # no orphan thread
        assert not _isolate._busy  # no worker process still computing
        assert len(_isolate.worker_pids()) <= max(_isolate.KEEP_WARM, _isolate._peak)
    assert viewer.layers["src"].data.shape == shape  # the viewer still works


# -- preview and sweep ------------------------------------------------------------------------
def test_failing_preview_and_sweep_leave_the_viewer_working(qtbot, setup):
    viewer, panel = setup
    viewer.layers.remove("src")
    viewer.add_image(np.full((16, 16), 0.04, np.float32), name="src")  # mean 0.04: plane "4"
    panel.layer_widget.value = viewer.layers["src"]
    n_layers = len(viewer.layers)
    # preview: the error shows in the panel's status (no pop-up per slider move), no layer
    panel.set_params({"delay": 0.0, "fail_at": 4})
    panel.preview.timer.setInterval(0)
    panel.preview.toggle.value = True
    panel.preview.run()
    qtbot.waitUntil(lambda: not panel.preview._workers, timeout=5000)
    assert "preview failed" in panel.status.value and "injected failure" in panel.status.value
    assert len(viewer.layers) == n_layers
    panel.preview.toggle.value = False
    # sweep over fail_at: its third value makes the processor raise
    notification_manager.records.clear()
    panel.set_params({"fail_at": -1})
    panel.sweep.start("fail_at", "-1, -1, 4, -1")
    qtbot.waitUntil(lambda: panel.sweep.worker is None, timeout=10_000)
    assert any("injected failure at plane 4" in m for m in messages())
    for lay in list(viewer.layers)[n_layers:]:  # whatever was kept is whole
        assert lay.data.shape[-2:] == (16, 16) and np.isfinite(lay.data).all()
    # and the panel still runs
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=10_000)
    assert viewer.layers[-1].data.shape == (16, 16)
