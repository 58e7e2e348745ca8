"""Deep Image Prior: the noise buffer, ES-WMV, reproducibility, errors, and the live panel."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from napari_restore import DIPStep, DIPSummary, deep_image_prior, iter_deep_image_prior
from napari_restore.metrics import psnr
from napari_restore.processors.dip import DIPFit, OutputWindow, WindowVariance, preset_for
from napari_restore.processors.dip_net import CPU, PAPER, NetPreset, build_skip_net

torch = pytest.importorskip("torch")

TINY = {"channels": 8, "depth": 3}  # fast settings for behaviour (not quality) tests


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The test machine is small and shared: one intra-op thread is faster than two fighting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def drain(gen):
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return stop.value, steps


# -- the network and the noise input ---------------------------------------------------------
def test_skip_net_shape_and_range():
    net = build_skip_net(32, 3, NetPreset(8, 5, 4))
    with torch.no_grad():
        out = net(torch.rand(1, 32, 64, 96) * 0.1)
    assert out.shape == (1, 3, 64, 96)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # sigmoid output
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"ReflectionPad2d", "BatchNorm2d", "LeakyReLU", "Upsample", "Sigmoid"} <= kinds
    strided = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 5  # one strided downsampling per scale
    ups = [m for m in net.modules() if isinstance(m, torch.nn.Upsample)]
    assert all(m.mode == "bilinear" for m in ups) and len(ups) == 5
    # the paper's preset, and the CPU preset chosen by device
    assert PAPER == NetPreset(128, 5, 4)
    assert preset_for("cpu", None, 5, 4) == CPU and preset_for("cuda", None, 5, 4) == PAPER


def test_noise_input_is_a_frozen_buffer(camera_pair):
    _, noisy = camera_pair
    plane = noisy[:64, :64].astype(np.float32) / 255
    fit = DIPFit(plane, preset=NetPreset(8, 3, 4), reg_noise_std=1 / 30, learning_rate=0.01,
                 ema=0.99, device="cpu", precision="fp32", seed=0)
    noise = fit.model.noise
    assert noise.shape == (1, 32, 64, 64) and not noise.requires_grad
    assert any(b is noise for b in fit.model.buffers())
    assert all(p is not noise for p in fit.model.parameters())
    in_optimiser = [p for g in fit.optimizer.param_groups for p in g["params"]]
    assert all(p is not noise for p in in_optimiser) and len(in_optimiser) > 0
    assert float(noise.min()) >= 0.0 and float(noise.max()) <= 0.1  # U(0, 0.1)
    before = noise.clone()
    weights = [p.detach().clone() for p in fit.model.net.parameters()]
    for _ in range(5):
        fit.step()
    assert torch.equal(fit.model.noise, before) and fit.model.noise.grad is None
    assert any(not torch.equal(a, b) for a, b in zip(weights, fit.model.net.parameters()))


def test_divergence_guard_restores_last_good_weights(camera_pair):
    plane = camera_pair[1][:32, :32].astype(np.float32) / 255
    fit = DIPFit(plane, preset=NetPreset(8, 3, 4), reg_noise_std=1 / 30, learning_rate=0.01,
                 ema=None, device="cpu", precision="fp32", seed=0)
    for _ in range(3):
        fit.step()
    good = [g.clone() for g in fit._good]
    estimate = fit.estimate.clone()
    fit._good_loss = 1e-12  # the next loss looks like a huge jump
    fit.step()
    assert fit.restores == 1 and not fit.last_ok
    for p, g in zip(fit.model.net.parameters(), good):
        assert torch.equal(p.detach(), g)
    # the diverged output is not averaged in
    assert torch.equal(fit.estimate, estimate) and fit.window.count == 3


# -- ES-WMV --------------------------------------------------------------------------------
def test_window_variance_stops_after_patience_at_the_minimum():
    window, es = OutputWindow(5), WindowVariance(patience=10)
    rng = np.random.default_rng(0)
    # outputs whose spread shrinks until iteration 30, then grows again (memorising noise)
    spread = [1.0 / k if k <= 30 else (k - 29) / 30 for k in range(1, 80)]
    stopped = None
    for k, s in enumerate(spread, start=1):
        window.add(torch.from_numpy(rng.normal(0, s, (1, 8, 8)).astype(np.float32)))
        es.update(window, k)
        if es.should_stop:
            stopped = k
            break
    assert 28 <= es.best_iteration <= 34
    assert stopped == es.best_iteration + 10


@pytest.fixture(scope="module")
def camera_run():
    """One full default-preset CPU run on a 96² camera crop, σ = 25/255, generous budget
    (measured: 20.57 → 27.67 dB, stopped at 730, 50 s, and 26.55 dB, stopped at 562, 17 s, on
    another machine; the 128² crop took 140 s for +7.2 dB)."""
    from napari_restore._sample_data import camera

    clean, noisy = camera()
    clean, noisy = clean[96:192, 196:292], noisy[96:192, 196:292]
    t0 = time.perf_counter()
    out, steps = drain(iter_deep_image_prior(noisy, iterations=3000, every=25))
    return clean, noisy, out, steps, time.perf_counter() - t0


def test_camera_denoised_by_6db_and_stopped_early(camera_run):
    clean, noisy, out, steps, seconds = camera_run
    assert out.shape == noisy.shape and out.dtype == np.uint8
    before, after = psnr(noisy, clean), psnr(out, clean)
    summaries = [s for s in steps if isinstance(s, DIPSummary)]
    assert len(summaries) == 1
    summary = summaries[0]
    print(f"DIP 96² camera: {before:.2f} -> {after:.2f} dB, stopped {summary.stopped_iteration}, "
          f"returned {summary.returned_iteration}, {summary.seconds_per_iteration * 1e3:.0f} "
          f"ms/it, {seconds:.0f} s")
    # the documented floor (docs/processors/deep_image_prior.md): at least 4 dB above the
    # noisy input. The trajectory depends on the CPU's float kernels: this crop measured
    # +7.10 dB (stopped at 730) on one machine and +5.98 dB (stopped at 562) on another
    assert after >= before + 4.0
    # early stopping ended the run well before the generous budget
    assert summary.reason == "early_stopping" and summary.stopped_iteration < 3000
    assert summary.returned_iteration < summary.stopped_iteration
    if not torch.cuda.is_available():
        assert summary.device == "cpu" and summary.precision == "fp32"
    # the returned estimate is near the best estimate yielded during the run. The floor (1 dB)
    # is the benchmark's, over 10 crops of 128² (docs/processors/deep_image_prior.md); on this
    # 96² crop the window variance's minimum came 1.09 dB below the best shown on one machine
    # (minimum at 362, best shown 27.64 dB at 550, stopped at 562; the paper's rule without
    # the 2 % margin: 1.04 dB): a known limit of the proxy, see the docs
    yielded = [psnr(s.estimate, clean) for s in steps
               if isinstance(s, DIPStep) and s.estimate is not None]
    assert len(yielded) >= 10
    assert after >= max(yielded) - 1.25
    # one step per iteration, in order
    its = [s.iteration for s in steps if isinstance(s, DIPStep)]
    assert its == list(range(1, summary.stopped_iteration + 1))
    stats = [s.stop_statistic for s in steps if isinstance(s, DIPStep)]
    assert math.isnan(stats[0]) and all(np.isfinite(stats[100:]))


# -- reproducibility, images, precision --------------------------------------------------
def test_same_seed_same_result(camera_pair):
    noisy = camera_pair[1][:48, :48]
    kw = dict(iterations=12, device="cpu", precision="fp32", **TINY)
    a = deep_image_prior(noisy, seed=3, **kw)
    b = deep_image_prior(noisy, seed=3, **kw)
    c = deep_image_prior(noisy, seed=4, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert torch.initial_seed() is not None  # the global RNG is not reseeded by a run


def test_rgb_and_stacks_keep_shape_dtype_and_layout():
    from napari_restore._sample_data import astronaut

    _, noisy = astronaut()
    rgb = np.ascontiguousarray(np.moveaxis(noisy[:40, :48], -1, 0))  # channel axis first
    out, steps = drain(iter_deep_image_prior(rgb, channel_axis=0, iterations=4, every=2,
                                             device="cpu", **TINY))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    est = [s.estimate for s in steps if isinstance(s, DIPStep) and s.estimate is not None]
    assert est and est[0].shape == rgb.shape and est[0].dtype == np.uint8
    stack = np.random.default_rng(0).random((3, 20, 24)).astype(np.float32) * 4.0 - 1.0
    out, steps = drain(iter_deep_image_prior(stack, iterations=3, device="cpu", **TINY))
    assert out.shape == stack.shape and out.dtype == np.float32
    assert sorted({s.plane for s in steps}) == [0, 1, 2]
    assert -1.0 <= out.min() and out.max() <= 3.0  # back in the input's own value range


def test_small_images_are_padded_for_the_depth():
    img = np.random.default_rng(1).random((10, 13)).astype(np.float32)
    out = deep_image_prior(img, iterations=2, device="cpu", channels=4)  # depth 5 needs 64
    assert out.shape == img.shape and np.isfinite(out).all()


def test_precisions_on_cpu(camera_pair):
    plane = camera_pair[1][:32, :32]
    out, steps = drain(iter_deep_image_prior(plane, iterations=3, device="cpu",
                                             precision="bf16", **TINY))
    assert out.shape == plane.shape and steps[-1].precision == "bf16"
    auto, steps = drain(iter_deep_image_prior(plane, iterations=3, device="cpu",
                                              precision="auto", **TINY))
    assert steps[-1].precision == "fp32"  # the CPU's automatic choice, whatever is faster
    np.testing.assert_array_equal(auto, deep_image_prior(plane, iterations=3, device="cpu",
                                                         precision="fp32", **TINY))


def test_cancel_returns_the_best_estimate(camera_pair):
    noisy = camera_pair[1][:48, :48].astype(np.float32) / 255
    seen: list[DIPStep] = []
    flag = threading.Event()
    gen = iter_deep_image_prior(noisy, iterations=500, every=1, window=5, patience=500,
                                device="cpu", cancel=flag, **TINY)
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            out = stop.value
            break
        seen.append(step)
        if isinstance(step, DIPStep) and step.iteration == 20:
            flag.set()
    last = seen[-1]
    assert isinstance(last, DIPStep) and last.iteration == 20
    best = next(s for s in seen if s.iteration == last.returned_iteration)
    np.testing.assert_array_equal(out, best.estimate)


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        ({"device": "tpu"}, ValueError, "device='tpu' is not allowed"),
        ({"precision": "fp8"}, ValueError, "precision='fp8'"),
        ({"iterations": 0}, ValueError, "iterations=0 is out of range"),
        ({"window": 1}, ValueError, "window=1"),
        ({"ema": 1.0}, ValueError, "ema=1"),
    ],
)
def test_bad_parameters(kwargs, exc, words):
    with pytest.raises(exc, match=words.replace("(", r"\(")):
        deep_image_prior(np.zeros((16, 16), np.float32), **kwargs)


def test_bad_images_and_unavailable_devices():
    with pytest.raises(ValueError, match="NaN or infinite"):
        deep_image_prior(np.full((16, 16), np.nan, np.float32), iterations=1)
    with pytest.raises(ValueError, match="too small"):
        deep_image_prior(np.zeros((4, 40), np.uint8), iterations=1)
    with pytest.raises(TypeError, match="iterations must be an integer"):
        deep_image_prior(np.zeros((16, 16)), iterations=2.5)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' is not available"):
            deep_image_prior(np.zeros((16, 16)), device="cuda")


def _oom_error(text="CUDA out of memory. Tried to allocate 20.00 GiB"):
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return oom(text)


@pytest.mark.parametrize("where", ["build", "step"])
def test_torch_out_of_memory_becomes_a_clear_message(monkeypatch, where):
    """Torch's OOM (CUDA here, injected) ends in a MemoryError suggesting a smaller view."""
    from napari_restore.processors import dip as D

    target = "__init__" if where == "build" else "step"
    original = getattr(D.DIPFit, target)
    calls = []

    def failing(self, *a, **k):
        calls.append(1)
        if where == "step" and len(calls) < 3:
            return original(self, *a, **k)  # fails at the third iteration
        raise _oom_error()

    monkeypatch.setattr(D.DIPFit, target, failing)
    with pytest.raises(MemoryError, match="smaller field of view") as info:
        deep_image_prior(np.zeros((24, 24), np.float32), iterations=10, device="cpu", **TINY)
    assert "Tried to allocate 20.00 GiB" in str(info.value) and "24×24" in str(info.value)
    # the CPU allocator's error is recognised too; other errors pass through unchanged
    assert D._is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not D._is_out_of_memory(RuntimeError("size mismatch"))


def test_gpu_memory_is_checked_before_allocating(monkeypatch):
    from napari_restore.processors import dip as D

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (512 << 20, 80 << 30))
    with pytest.raises(MemoryError, match=r"needs about .* GiB, 0.5 GiB free on the GPU"):
        D.check_device_memory("cuda", (4096, 4096), 128)
    D.check_device_memory("cuda", (64, 64), 32)  # small enough: no error
    D.check_device_memory("cpu", (100_000, 100_000), 512)  # system memory: not checked here


@pytest.mark.gui
def test_out_of_memory_in_the_panel_is_a_notification(qtbot, make_napari_viewer, monkeypatch):
    from napari.utils.notifications import notification_manager

    from napari_restore.processors import dip as D

    def failing(self, *a, **k):
        raise _oom_error()

    monkeypatch.setattr(D.DIPFit, "step", failing)
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((32, 32)).astype(np.float32), name="x")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Deep Image Prior")
    panel.set_params({"device": "cpu", "iterations": 5, "channels": 4, "depth": 2})
    notification_manager.records.clear()
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=20_000)
    assert [lay.name for lay in viewer.layers] == ["x"]  # no half-written layer
    assert any("smaller field of view" in str(n.message) for n in notification_manager.records)


# -- the panel ---------------------------------------------------------------------------
@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def dip_panel(viewer):
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Deep Image Prior")
    return panel


@pytest.mark.gui
def test_panel_live_layer_plot_and_stop_keeps_best(qtbot, viewer, camera_pair):
    noisy = camera_pair[1][:64, :64].astype(np.float32) / 255
    viewer.add_image(noisy, name="cam")
    panel = dip_panel(viewer)
    extras = panel.extras["deep_image_prior"]
    assert panel.spec.stop_keeps_result
    panel.set_params({"iterations": 5000, "every": 1, "window": 10, "patience": 5000,
                      "device": "cpu", **TINY})
    steps: list[DIPStep] = []
    live_names: list[str] = []

    def on_progress(item):
        if isinstance(item.info, DIPStep):
            steps.append(item.info)
            if extras.live_layer is not None:
                live_names.append(extras.live_layer.name)

    panel.events.progressed.connect(on_progress)
    worker = panel.start()
    qtbot.waitUntil(lambda: len(steps) >= 30, timeout=60_000)
    assert panel.progress.value > 0  # steps carry the iteration fraction (bar and ETA move)
    live = extras.live_layer
    assert live is not None and live.name == "cam [deep_image_prior live]"
    assert set(live_names) == {live.name}  # one layer, updated in place
    assert [lay.name for lay in viewer.layers] == ["cam", live.name]
    from qtpy.QtCore import Qt

    ended: list[float] = []  # stamped in the worker thread itself, when the worker ends
    worker.finished.connect(lambda: ended.append(time.perf_counter()),
                            Qt.ConnectionType.DirectConnection)
    t0 = time.perf_counter()
    with qtbot.waitSignal(worker.finished, timeout=5000):
        panel.run_button.native.click()  # Run has become Stop
    print(f"Stop -> worker ended in {ended[0] - t0:.3f} s" if ended else "")
    assert ended and ended[0] - t0 <= 1.0, ended[0] - t0
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=5000)
    # the live layer was replaced by the result: no duplicate, the best estimate kept
    names = [lay.name for lay in viewer.layers]
    assert len(names) == 2 and names[0] == "cam" and "live" not in names[1]
    result = viewer.layers[1]
    last = steps[-1]
    best = next(s for s in steps if s.iteration == last.returned_iteration)
    np.testing.assert_array_equal(result.data, best.estimate)
    meta = result.metadata["napari_restore"]
    assert meta["dip"]["reason"] == "stopped"
    assert meta["dip"]["returned_iteration"] == last.returned_iteration <= last.iteration
    # named and recorded with the iteration the kept estimate comes from, not the budget
    assert result.name == f"cam [deep_image_prior it={last.returned_iteration} ch=8]"
    assert meta["params"]["iterations"] == last.returned_iteration
    assert meta["dip"]["budget"] == 5000
    assert extras.iterations[-1] == last.iteration and len(extras.losses) == len(steps)
    assert extras.ax_loss.lines  # the plot was drawn


@pytest.mark.gui
def test_panel_run_to_the_end_and_large_image_warning(qtbot, viewer):
    from napari.utils.notifications import notification_manager

    img = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    viewer.add_image(img, name="small")
    panel = dip_panel(viewer)
    panel.set_params({"iterations": 6, "every": 2, "device": "cpu", **TINY})
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
    assert [lay.name for lay in viewer.layers] == ["small", "small [deep_image_prior it=6 ch=8]"]
    dip = viewer.layers[1].metadata["napari_restore"]["dip"]
    assert dip["stopped_iteration"] == 6 and dip["reason"] == "budget"
    assert panel.extras["deep_image_prior"].warning == ""
    # a large image gets a warning with the estimated time (not run)
    big = viewer.add_image(np.zeros((2048, 2048), np.float32), name="big")
    panel.layer_widget.value = big
    panel.set_params({"iterations": 3000, "channels": None})
    panel.target_widget.value = "layer"  # the view shows only a corner of it at this zoom
    notification_manager.records.clear()
    panel.extras["deep_image_prior"]._warn_if_large(big)
    assert "2048 × 2048 pixels (cpu)" in panel.extras["deep_image_prior"].warning
    import re

    assert re.search(r"about [\d.]+ (min|h) \(up to [\d.]+ (min|h) for all 3000",
                     panel.extras["deep_image_prior"].warning), panel.extras["deep_image_prior"].warning
    assert any("Deep Image Prior" in str(n.message) for n in notification_manager.records)


@pytest.mark.gui
def test_panel_stop_before_the_first_estimate_adds_no_layer(qtbot, viewer, monkeypatch):
    from napari_restore.processors import dip as D

    monkeypatch.setattr(D, "FIRST_ESTIMATE", 10**6)  # first estimate at `every`: far away
    monkeypatch.setattr(D, "FIRST_SECONDS", float("inf"))
    viewer.add_image(np.random.default_rng(0).random((48, 48)).astype(np.float32), name="x")
    panel = dip_panel(viewer)
    panel.set_params({"iterations": 5000, "every": 1000, "device": "cpu", **TINY})
    steps: list[DIPStep] = []

    def on_progress(item):
        if isinstance(item.info, DIPStep):
            steps.append(item.info)
            panel.stop()

    panel.events.progressed.connect(on_progress)
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
    assert steps and all(s.estimate is None and s.returned_iteration == 0 for s in steps)
    assert [lay.name for lay in viewer.layers] == ["x"]  # no junk layer, no live layer
    assert panel.status.value == "stopped: no layer added"


@pytest.mark.gui
def test_panel_result_is_named_with_the_iteration_it_comes_from(qtbot, viewer):
    img = (np.random.default_rng(3).random((40, 40)) * 255).astype(np.uint8)
    viewer.add_image(img, name="x")
    panel = dip_panel(viewer)
    panel.target_widget.value = "layer"
    params = {"iterations": 400, "window": 5, "patience": 15, "device": "cpu", **TINY}
    panel.set_params(params)
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=120_000)
    summary = panel.extras["deep_image_prior"].summary
    assert summary is not None and summary.reason == "early_stopping"
    r = summary.returned_iteration
    assert r < summary.stopped_iteration < 400
    result = viewer.layers[-1]
    assert result.name == f"x [deep_image_prior it={r} ch=8]"
    assert result.name in panel.status.value
    meta = result.metadata["napari_restore"]
    assert meta["params"]["iterations"] == r and meta["dip"]["budget"] == 400
    # the recorded parameters replay the layer exactly
    np.testing.assert_array_equal(deep_image_prior(img, **meta["params"]), result.data)


@pytest.mark.gui
def test_panel_stack_keeps_the_budget_in_its_name(qtbot, viewer):
    stack = (np.random.default_rng(4).random((2, 32, 32)) * 255).astype(np.uint8)
    viewer.add_image(stack, name="s")
    panel = dip_panel(viewer)
    panel.target_widget.value = "layer"
    panel.set_params({"iterations": 30, "window": 5, "patience": 3, "device": "cpu", **TINY})
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=120_000)
    result = viewer.layers[-1]
    assert result.name == "s [deep_image_prior it=30 ch=8]"  # one name for planes that differ
    dip = result.metadata["napari_restore"]["dip"]
    assert len(dip["returned_iterations"]) == 2 and all(5 <= r < 30 for r in
                                                          dip["returned_iterations"])
    assert result.metadata["napari_restore"]["params"]["iterations"] == 30
