"""Run one plane-function call in a worker process, so that Stop works mid-library-call.

A thread cannot be interrupted while it sits inside a C library (BM3D on a 512² plane takes
seconds, BM4D on a brain volume minutes). A :class:`ProcessorSpec` with ``isolate=True``
therefore runs each plane call through :func:`isolated` when it is given a ``cancel`` (panel
and batch runs): the plane and the bound plane function are pickled to a worker process, the
caller polls the cancel event every ``POLL_S`` seconds, and on cancel the worker is terminated
and :class:`~napari_restore._arrays.Cancelled` is raised. Plain function calls (no
``cancel``) stay in-process.

Workers are started with the ``"spawn"`` context (never ``fork``: the GUI process runs Qt
threads), and without the user's main script: a plain ``spawn`` re-runs ``__main__`` in the
child, so a script without an ``if __name__ == "__main__":`` guard (napari's own examples)
would open viewers there. :func:`_start_without_main` starts each worker while
``sys.modules["__main__"]`` is a stand-in with no file, so the child imports only what the
pickled call needs. Starting one costs an interpreter plus numpy/bm3d imports (measured in
``benchmarks/bench_bm3d.py``), so one idle worker is kept warm and reused; a terminated
worker is simply replaced. Workers are daemons: they die with the parent, and an idle worker
exits when its pipe closes.

The plane function must be picklable: a module-level function, or ``functools.partial`` of
one with picklable arguments. A generator plane function runs in the worker too; its float
sub-progress (and picklable payloads) are forwarded to the caller.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from ._arrays import CancelLike, Cancelled, _is_cancelled

__all__ = ["POLL_S", "isolated", "prewarm", "run_isolated", "shutdown", "worker_pids"]

#: How often the caller checks the cancel event while the worker computes (seconds).
POLL_S = 0.02
#: Idle workers kept alive between calls (at least; concurrent runs, e.g. a batch on several
#: threads, keep as many as were ever busy at once, so none pays the start-up per plane).
KEEP_WARM = 1
_CONTEXT = "spawn"

_lock = threading.Lock()
_idle: list[_Worker] = []
_busy: set[_Worker] = set()
_peak = 0  # most workers busy at the same time


def _child_main(conn: Any, preload: tuple[str, ...] = ()) -> None:
    """Worker loop: receive ``(func, plane)``, send back progress, then the result or error."""
    import importlib
    import pickle

    for name in preload:  # warm the imports while nobody waits (best effort)
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001
            pass

    while True:
        try:
            func, plane = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            res = func(plane)
            if isinstance(res, Generator):
                while True:
                    try:
                        item = next(res)
                    except StopIteration as stop:
                        res = stop.value
                        break
                    try:
                        conn.send(("progress", item))
                    except (pickle.PicklingError, TypeError, AttributeError):
                        pass  # an unpicklable payload: progress is best effort
            conn.send(("result", res))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
            import traceback

            if hasattr(exc, "add_note"):  # Python >= 3.11: keep the worker's traceback
                exc.add_note("raised in the worker process:\n" + traceback.format_exc())
            try:
                conn.send(("error", exc))
            except Exception:  # an unpicklable exception: send its text
                conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


class _Worker:
    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        ctx = mp.get_context(_CONTEXT)
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_child_main, args=(child, tuple(preload)), daemon=True,
                                name="napari-restore-worker")
        _start_without_main(self.proc)
        child.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.is_alive()

    def kill(self) -> None:
        """Terminate now (SIGTERM, then SIGKILL after 1 s) and reap the process."""
        try:
            self.conn.close()
        except OSError:
            pass
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(1.0)
            if self.proc.is_alive():
                self.proc.kill()
        self.proc.join(1.0)


_main_lock = threading.Lock()


def _start_without_main(proc: Any) -> None:
    """``proc.start()`` with spawn's "run the parent's main module" step left out.

    ``multiprocessing.spawn.get_preparation_data`` (called by ``start``) records the main
    module's file or name, and the child runs it again as ``__mp_main__``. For the duration of
    ``start`` (which only pickles and launches; milliseconds), ``sys.modules["__main__"]`` is
    a module with neither, so nothing is recorded. Our workers need nothing from
    ``__main__``: their target and every call are module-level functions of the package.
    """
    import sys
    import types

    with _main_lock:
        main = sys.modules.get("__main__")
        stand_in = types.ModuleType("__main__")
        stand_in.__spec__ = None
        sys.modules["__main__"] = stand_in
        try:
            proc.start()
        finally:
            if main is not None:
                sys.modules["__main__"] = main
            else:  # pragma: no cover - an embedded interpreter without __main__
                del sys.modules["__main__"]


def _acquire() -> _Worker:
    global _peak
    with _lock:
        while _idle:
            w = _idle.pop()
            if w.alive():
                _busy.add(w)
                return w
            w.kill()
    w = _Worker()
    with _lock:
        _busy.add(w)
        _peak = max(_peak, len(_busy))
    return w


def _release(w: _Worker, healthy: bool) -> None:
    with _lock:
        _busy.discard(w)
        keep = healthy and w.alive() and len(_idle) < max(KEEP_WARM, _peak)
        if keep:
            _idle.append(w)
    if not keep:
        w.kill()


def prewarm(preload: tuple[str, ...] = ()) -> None:
    """Start an idle worker in the background (returns at once), if none is waiting.

    ``preload`` names modules the worker imports while idle (e.g. ``("bm3d",)``), so the
    first call does not pay for them.
    """
    with _lock:
        if _idle or _busy:
            return
        # Process.start() with "spawn" only launches the interpreter; imports happen there.
        _idle.append(_Worker(preload))


def worker_pids() -> list[int]:
    """PIDs of the live worker processes (idle and busy), for tests and diagnostics."""
    with _lock:
        return [w.pid for w in (*_idle, *_busy) if w.pid is not None and w.alive()]


def shutdown() -> None:
    """Terminate every worker (idle and busy)."""
    global _peak
    with _lock:
        workers = [*_idle, *_busy]
        _idle.clear()
        _busy.clear()
        _peak = 0
    for w in workers:
        w.kill()


atexit.register(shutdown)


def run_isolated(
    func: Callable[[Any], Any], plane: Any, cancel: CancelLike = None, *, poll: float = POLL_S
) -> Generator[Any, None, Any]:
    """Call ``func(plane)`` in a worker process; a generator yielding forwarded sub-progress.

    Raises :class:`Cancelled` within about ``poll`` seconds of ``cancel`` being set (the worker
    is terminated), re-raises the worker's exception, and ``RuntimeError`` if the worker dies.
    Closing the generator (or throwing into it) while the call runs terminates the worker too.
    """
    import pickle

    try:  # pickle first: a clear error for unpicklable plane functions, no worker spent
        payload = pickle.dumps((func, plane), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(
            "isolate=True needs a picklable plane function and parameters (a module-level "
            f"function or functools.partial of one): {exc}"
        ) from exc
    worker = _acquire()
    healthy = False
    try:
        try:
            worker.conn.send_bytes(payload)
        except OSError:  # the warm worker died meanwhile (BrokenPipeError): one retry
            worker.kill()
            with _lock:
                _busy.discard(worker)
            worker = _acquire()
            worker.conn.send_bytes(payload)
        while True:
            if _is_cancelled(cancel):
                raise Cancelled("stopped during a library call; the worker process was terminated")
            if worker.conn.poll(poll):
                try:
                    kind, value = worker.conn.recv()
                except (EOFError, OSError):
                    kind, value = "died", None
                if kind == "progress":
                    yield value
                    continue
                if kind == "result":
                    healthy = True
                    return value
                if kind == "error":
                    healthy = True
                    raise value
            elif worker.alive():
                continue
            worker.proc.join(1.0)
            code = worker.proc.exitcode
            raise RuntimeError(f"the worker process ended unexpectedly (exit code {code})")
    finally:
        _release(worker, healthy)


class isolated:  # noqa: N801 - used like a function
    """``isolated(func, cancel)`` is a plane function running ``func`` in a worker process.

    Picklable itself is not needed: it lives in the caller. ``func`` must be picklable.
    """

    def __init__(self, func: Callable[[Any], Any], cancel: CancelLike, name: str = "") -> None:
        self.func = func
        self.cancel = cancel
        self.__name__ = name or getattr(func, "__name__", "processor")

    def __call__(self, plane: Any) -> Generator[Any, None, Any]:
        return run_isolated(self.func, plane, self.cancel)


def measure_overhead(repeats: int = 3) -> dict[str, float]:
    """Seconds for a cold worker start + trivial call, and for a warm trivial call."""
    import numpy as np

    shutdown()
    plane = np.zeros((8, 8))
    t0 = time.perf_counter()
    _drain(run_isolated(np.copy, plane))
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _drain(run_isolated(np.copy, plane))
        warm.append(time.perf_counter() - t0)
    return {"cold_s": cold, "warm_s": float(np.median(warm))}


def _drain(gen: Generator[Any, None, Any]) -> Any:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
