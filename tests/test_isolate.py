"""The worker-process mechanism on its own (generic: any picklable plane function)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from napari_restore import _isolate
from napari_restore._arrays import Cancelled


def _steps(plane, *, n):
    for i in range(n):
        yield (i + 1) / n
    return plane * 2


def _crash(plane):
    os._exit(3)


def _sleepy(plane, *, seconds):
    time.sleep(seconds)
    return plane + 1


@pytest.fixture(autouse=True)
def _clean():
    yield
    _isolate.shutdown()


def _drain(gen):
    items = []
    while True:
        try:
            items.append(next(gen))
        except StopIteration as stop:
            return items, stop.value


def test_generator_progress_is_forwarded_and_result_returned():
    import functools

    items, out = _drain(_isolate.run_isolated(functools.partial(_steps, n=4), np.ones((3, 3))))
    assert items == [0.25, 0.5, 0.75, 1.0]
    assert np.array_equal(out, np.full((3, 3), 2.0))


def test_a_dying_worker_is_a_clear_error_and_is_replaced():
    with pytest.raises(RuntimeError, match=r"worker process ended unexpectedly \(exit code 3\)"):
        _drain(_isolate.run_isolated(_crash, np.zeros(2)))
    _, out = _drain(_isolate.run_isolated(np.copy, np.arange(3)))  # a fresh worker
    assert np.array_equal(out, np.arange(3))


def test_cancel_terminates_and_closing_the_generator_too():
    import functools

    cancel = threading.Event()
    gen = _isolate.run_isolated(functools.partial(_sleepy, seconds=30), np.zeros(2), cancel)
    threading.Timer(0.5, cancel.set).start()
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        _drain(gen)
    assert time.perf_counter() - t0 < 10  # 30 s call ended (spawn start-up included)
    assert not _isolate.worker_pids()


def test_concurrent_runs_keep_as_many_warm_workers():
    import functools

    func = functools.partial(_sleepy, seconds=0.3)
    threads = [threading.Thread(target=_drain, args=(_isolate.run_isolated(func, np.zeros(1)),))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    pids = set(_isolate.worker_pids())
    assert len(pids) == 2  # both kept warm for the next concurrent run
    for t in [threading.Thread(target=_drain, args=(_isolate.run_isolated(func, np.zeros(1)),))
              for _ in range(2)]:
        t.start()
        t.join(60)
    assert set(_isolate.worker_pids()) == pids  # reused, no new start-up


def test_plain_calls_never_start_a_process(temp_processor):
    spec = temp_processor("iso_probe", _sleepy_zero, isolate=True)
    out = spec.apply(np.zeros((4, 4)))  # no cancel: in-process
    assert np.array_equal(out, np.full((4, 4), 0.5)) and not _isolate.worker_pids()
    out = spec.apply(np.zeros((4, 4)), cancel=threading.Event())  # panel/batch: isolated
    assert np.array_equal(out, np.full((4, 4), 0.5)) and _isolate.worker_pids()


def _sleepy_zero(plane):
    return plane + 0.5


def test_unpicklable_plane_function_is_a_clear_error():
    with pytest.raises(TypeError, match="isolate=True needs a picklable plane function"):
        _drain(_isolate.run_isolated(lambda p: p, np.zeros(2)))
    assert not _isolate.worker_pids()  # nothing was started for it


def test_worker_errors_keep_type_message_and_worker_traceback():
    with pytest.raises(ValueError, match="negative dimensions") as info:
        _drain(_isolate.run_isolated(np.empty, -1))
    assert any("raised in the worker process" in n for n in getattr(info.value, "__notes__", []))
