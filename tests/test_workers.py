"""Deterministic parallel runs (napari_restore._workers): bits independent of the number of
workers, planes equal to the single-threaded library call, dead workers, Stop.
Speed-up floors: benchmarks/bench_workers.py."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from napari_restore import _isolate, _workers
from napari_restore._arrays import Cancelled
from napari_restore.processors import get_processor
from napari_restore.processors.registry import TILE, Param


def _noisy(shape, sigma=0.08, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    clean = 0.5 + 0.3 * np.sin(yy / 7.0) * np.cos(xx / 11.0)
    return (clean + rng.normal(0, sigma, shape)).astype(np.float32)


def _run(name, image, workers, **params):
    resolved: dict = {}
    out = get_processor(name).apply(image, workers=workers, resolved=resolved, **params)
    return out, resolved


CASES = {
    "bm3d_denoise": (lambda: _noisy((140, 140)), {"sigma": 0.08, "tile": (104, 104)}),
    "bm4d_denoise": (lambda: _noisy((6, 70, 70)), {"sigma": 0.08, "tile": (56, 56)}),
    "nl_means": (lambda: _noisy((100, 100)), {"method": "nl_means", "tile": (48, 48)}),
    "tv_chambolle": (lambda: _noisy((140, 140)), {"method": "tv_chambolle", "tile": (72, 72)}),
    "wavelet": (lambda: _noisy((130, 130)), {"method": "wavelet", "tile": (100, 100)}),
    "opencv_nlm": (lambda: _noisy((100, 100)), {"method": "opencv_nlm", "tile": (48, 48)}),
    "deep_image_prior": (lambda: _noisy((64, 64)), {
        "iterations": 6, "depth": 2, "channels": 4, "window": 3, "patience": 2,
        "tile": (40, 40)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_identical_bits_with_1_2_and_4_workers(case):
    make, params = CASES[case]
    name = case if case in ("bm3d_denoise", "bm4d_denoise", "deep_image_prior") \
        else "classic_denoise"
    image = make()
    outs = [_run(name, image, n, **params) for n in (1, 2, 4)]
    assert outs[0][1]["tiles"] >= 4  # really tiled
    for out, resolved in outs[1:]:
        assert np.array_equal(out, outs[0][0])
        assert resolved == outs[0][1]


def test_stack_planes_run_in_parallel_equal_the_single_threaded_call_per_plane():
    from napari_restore import _compat

    stack = np.stack([_noisy((64, 72), seed=s) for s in range(3)]).clip(0, 1)
    spec = get_processor("bm3d_denoise")
    resolved: dict = {}
    with _workers.using_workers(2):
        out = spec.apply(stack, resolved=resolved)  # the default path: planes on 2 workers
        given = spec.apply(stack, sigma=0.08)
    assert len(_isolate.worker_pids()) >= 2
    bm3d = _compat.bm3d_module()
    for i, plane in enumerate(stack):
        one: dict = {}
        assert np.array_equal(out[i], spec.apply(plane, resolved=one))  # in-process
        assert resolved["sigma"][i] == one["sigma"]
        raw = bm3d.bm3d(plane.astype(np.float64), 0.08, _compat.bm3d_profile("np", 1))
        assert np.array_equal(given[i], np.asarray(raw).astype(np.float32))  # the raw library
    assert np.array_equal(out, spec.apply(stack, workers=1))


def test_workers_are_single_threaded():
    pool = _workers.run_jobs(_thread_env, [np.zeros(2)] * 3, workers=2)
    while True:
        try:
            next(pool)
        except StopIteration as stop:
            values = stop.value
            break
    assert values == [("1", "1")] * 3


def _thread_env(plane):
    _workers._single_threaded()
    return os.environ["OMP_NUM_THREADS"], os.environ["OPENBLAS_NUM_THREADS"]


def _killer(plane, *, marker):
    """Killed by SIGKILL on its first call per tile (marker) or always (marker == "")."""
    if not marker:
        os.kill(os.getpid(), signal.SIGKILL)
    path = f"{marker}-{int(plane.sum() * 1000)}"
    if not os.path.exists(path):
        open(path, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return plane * 0.5


def _spec(temp_processor, **kw):
    return temp_processor("killer", _killer, params=(Param("marker", str, "", "marker"), TILE),
                          footprint=lambda params, shape: 2, **kw)


def test_a_worker_killed_by_sigkill_is_retried_once_for_that_tile(temp_processor, tmp_path):
    spec = _spec(temp_processor)
    image = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    resolved: dict = {}
    out = spec.apply(image, marker=str(tmp_path / "m"), tile=(28, 28), resolved=resolved)
    np.testing.assert_allclose(out, image * 0.5, rtol=1e-6)
    assert len(list(tmp_path.iterdir())) == resolved["tiles"] == 4  # each tile's 1st worker died


def test_a_tile_that_kills_its_worker_twice_fails_clearly_without_hanging(temp_processor):
    spec = _spec(temp_processor)
    image = np.zeros((60, 60), np.float32)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"worker process died \(signal 9\) twice .* tile "
                                           r".*no result was produced"):
        spec.apply(image, marker="", tile=(24, 24))
    assert time.perf_counter() - start < 60


def test_a_killed_plane_job_of_a_stack_fails_clearly(temp_processor):
    spec = _spec(temp_processor, isolate=True)
    with pytest.raises(RuntimeError, match=r"died \(signal 9\) twice .* plane"):
        spec.apply(np.zeros((3, 16, 16), np.float32), marker="")


def _slow(plane, *, seconds):
    time.sleep(seconds)
    return plane


def test_stop_terminates_a_tiled_run_quickly(temp_processor):
    spec = temp_processor("slow", _slow, params=(Param("seconds", float, 30.0, "s"), TILE),
                          footprint=lambda params, shape: 2)
    cancel = threading.Event()
    threading.Timer(1.5, cancel.set).start()
    start = time.perf_counter()
    with pytest.raises(Cancelled):
        spec.apply(np.zeros((64, 64), np.float32), tile=(32, 32), cancel=cancel)
    assert time.perf_counter() - start < 15
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(p) for p in _busy_pids()):
        time.sleep(0.05)
    assert not _busy_pids()


def _busy_pids():
    with _isolate._lock:
        return [w.pid for w in _isolate._busy if w.alive()]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_bad_worker_counts_are_refused():
    with pytest.raises(ValueError, match="workers=0"):
        get_processor("classic_denoise").apply(np.zeros((16, 16)), workers=0)
    with pytest.raises(TypeError, match="workers must be"):
        get_processor("classic_denoise").apply(np.zeros((16, 16)), workers=1.5)
