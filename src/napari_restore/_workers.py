"""Deterministic parallel runs: planes and tiles fanned out to single-threaded worker processes.

There is one set of worker processes for the whole session, the warm workers of
:mod:`napari_restore._isolate` (spawned, never forked, so it is safe beside Qt; started without
re-running the user's ``__main__``). The panel, its preview, the sweep, calibration and the
batch CLI all reach it through :meth:`ProcessorSpec.iter_apply
<napari_restore.processors.registry.ProcessorSpec.iter_apply>`; this module only decides how
many of those workers one run keeps busy (:func:`pool_size`) and drives them.

Determinism: every job runs alone in its worker, with the thread counts of OpenMP/BLAS
libraries set to 1 (:data:`THREAD_ENV`, set before a job imports its libraries) and with the
processors' own ``threads=1`` default (bm3d/bm4d). A job's result is therefore the same bits
whichever worker runs it and however many run beside it; results are assembled in job order.
So 1, 2 or 4 workers give identical outputs, and a plane run as a job equals the library's
single-threaded call on that plane.

Failures: a worker that dies (SIGKILL, the out-of-memory killer, a crash in a C library) is
replaced and its job is run once more; a second death of the same job stops the run with a
``RuntimeError`` naming the job. Other running jobs are then terminated, and nothing is
returned, so a partial result is never passed off as complete. An exception raised by a job
is re-raised as it is. ``cancel`` terminates the running jobs within :data:`POLL_S`.
"""

from __future__ import annotations

import os
import pickle
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ._arrays import Cancelled, CancelLike, _call_plane, _is_cancelled

__all__ = ["POLL_S", "RETRIES", "THREAD_ENV", "PlaneJob", "PlaneRunner", "pool_size",
           "prewarm", "run_jobs", "using_workers"]

#: How often a waiting run checks its cancel event and its workers' health (seconds).
POLL_S = 0.02
#: A job whose worker died is run again this many times before the run fails.
RETRIES = 1
#: Thread-count variables set to 1 in every worker before a job loads its libraries.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
#: Environment variable overriding the number of workers a run uses (a positive integer).
WORKERS_ENV = "NAPARI_RESTORE_WORKERS"

_override: int | None = None


def pool_size() -> int:
    """Workers one run keeps busy: ``$NAPARI_RESTORE_WORKERS``, else the usable CPUs (≤ 8).

    The number never changes a result (see the module docstring), only the time it takes.
    """
    if _override is not None:
        return _override
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV}={env!r} must be a positive integer") from None
        if n < 1:
            raise ValueError(f"{WORKERS_ENV}={env!r} must be a positive integer")
        return n
    from ._parallel import workers

    return workers()


def check_workers(workers: Any) -> int | None:
    """``workers`` validated: None (the pool size) or a positive integer."""
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be a positive integer or None; got {workers!r:.40}")
    if workers < 1:
        raise ValueError(f"workers={workers} is out of range; it must be at least 1")
    return int(workers)


@contextmanager
def using_workers(n: int | None) -> Iterator[None]:
    """Within the block, runs use ``n`` workers (None: the default). For tests, benchmarks."""
    global _override
    old = _override
    _override = check_workers(n)
    try:
        yield
    finally:
        _override = old


def prewarm(n: int | None = None, preload: tuple[str, ...] = ()) -> None:
    """Start idle workers in the background, up to ``n`` (default :func:`pool_size`)."""
    from . import _isolate

    want = pool_size() if n is None else int(n)
    with _isolate._lock:
        have = len(_isolate._idle) + len(_isolate._busy)
        _isolate._peak = max(_isolate._peak, want)
    for _ in range(max(0, want - have)):
        w = _isolate._Worker(tuple(preload))
        with _isolate._lock:
            _isolate._idle.append(w)


def _single_threaded() -> None:
    for name in THREAD_ENV:
        os.environ[name] = "1"
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@dataclass(frozen=True)
class PlaneJob:
    """A picklable job: ``plane_func(plane, **kwargs)`` (per colour channel when asked).

    Returns a generator, as plane functions may: the worker forwards its float sub-progress
    and :class:`~napari_restore._arrays.Resolved` payloads to the caller (other payloads,
    such as Deep Image Prior's live estimates, stay in the worker).
    """

    plane_func: Callable[..., Any]
    kwargs: tuple[tuple[str, Any], ...] = ()
    per_channel: bool = False

    def __call__(self, plane: Any) -> Generator[Any, None, Any]:
        _single_threaded()
        import functools

        func = functools.partial(self.plane_func, **dict(self.kwargs))
        return _forwarded(_call_plane(func, plane, self.per_channel))


def _forwarded(gen: Generator[Any, None, Any]) -> Generator[Any, None, Any]:
    from ._arrays import Resolved

    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(item, int | float | Resolved):
            yield item


class _Running:
    __slots__ = ("index", "partial", "payloads", "worker")

    def __init__(self, index: int, worker: Any) -> None:
        self.index = index
        self.worker = worker
        self.partial = 0.0
        self.payloads: list[Any] = []


class _Dispatcher:
    """Jobs on at most ``n`` workers at once; results and payloads kept per job index."""

    def __init__(self, job: Callable[[Any], Any], n: int, what: str) -> None:
        self.job = job
        self.n = max(1, n)
        self.what = what
        self.queue: deque[int] = deque()
        self.items: dict[int, Any] = {}
        self.running: dict[int, _Running] = {}  # by index
        self.done: dict[int, tuple[Any, list[Any]]] = {}
        self.tries: dict[int, int] = {}
        self.total = 0

    def add(self, item: Any) -> int:
        index = self.total
        self.total += 1
        self.items[index] = item
        self.queue.append(index)
        return index

    def _payload(self, index: int) -> bytes:
        try:
            return pickle.dumps((self.job, self.items[index]), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(
                "parallel runs need a picklable plane function and parameters (a module-level "
                f"function or functools.partial of one): {exc}") from exc

    def _start(self) -> None:
        from . import _isolate

        while self.queue and len(self.running) < self.n:
            index = self.queue.popleft()
            payload = self._payload(index)
            worker = _isolate._acquire()
            try:
                worker.conn.send_bytes(payload)
            except OSError:  # the warm worker died meanwhile: the job waits for another
                _isolate._release(worker, False)
                self.queue.appendleft(index)
                continue
            self.running[index] = _Running(index, worker)

    def _died(self, run: _Running) -> None:
        from . import _isolate

        run.worker.proc.join(1.0)
        code = run.worker.proc.exitcode
        del self.running[run.index]
        _isolate._release(run.worker, False)
        self.tries[run.index] = self.tries.get(run.index, 0) + 1
        if self.tries[run.index] > RETRIES:
            signal = f"signal {-code}" if isinstance(code, int) and code < 0 else f"exit code {code}"
            raise RuntimeError(
                f"a worker process died ({signal}) twice while computing {self.what} "
                f"{run.index + 1} of {self.total}; the run was stopped and no result was "
                "produced (out of memory? try smaller tiles or fewer workers)")
        self.queue.appendleft(run.index)

    def pump(self, cancel: CancelLike) -> None:
        """Start queued jobs, then wait up to :data:`POLL_S` for messages and handle them."""
        from multiprocessing.connection import wait

        from . import _isolate

        if _is_cancelled(cancel):
            raise Cancelled("stopped; the worker processes were terminated")
        self._start()
        if not self.running:
            return
        conns = {r.worker.conn: r for r in self.running.values()}
        sentinels = {r.worker.proc.sentinel: r for r in self.running.values()}
        ready = wait([*conns, *sentinels], timeout=POLL_S)
        dead: list[_Running] = []
        for obj in ready:
            run = conns.get(obj)
            if run is None:
                run = sentinels[obj]
                if run.worker.conn.poll():
                    continue  # the message is read below through its pipe first
                if run.index in self.running:
                    dead.append(run)
                continue
            while run.index in self.running and run.worker.conn.poll():
                try:
                    kind, value = run.worker.conn.recv()
                except (EOFError, OSError):
                    dead.append(run)
                    break
                if kind == "progress":
                    if isinstance(value, int | float):
                        run.partial = min(max(float(value), 0.0), 1.0)
                    else:
                        run.payloads.append(value)
                elif kind == "result":
                    del self.running[run.index]
                    _isolate._release(run.worker, True)
                    self.done[run.index] = (value, run.payloads)
                elif kind == "error":
                    del self.running[run.index]
                    _isolate._release(run.worker, True)
                    raise value
        for run in dead:
            if run.index in self.running:
                self._died(run)

    def fraction(self) -> float:
        if not self.total:
            return 1.0
        partial = sum(r.partial for r in self.running.values())
        return min(1.0, (len(self.done) + partial) / self.total)

    def close(self) -> None:
        """Terminate every running job (after a failure, Stop, or an abandoned run)."""
        from . import _isolate

        running, self.running = list(self.running.values()), {}
        self.queue.clear()
        for run in running:
            _isolate._release(run.worker, False)


def in_worker() -> bool:
    """True inside a worker process (which may not start processes of its own): jobs then
    run one after the other in it, with the same bits."""
    import multiprocessing as mp

    return bool(mp.current_process().daemon)


def _inline(job: Callable[[Any], Any], items: list[Any],
            cancel: CancelLike) -> Generator[float, None, list[Any]]:
    results = []
    for k, item in enumerate(items):
        if _is_cancelled(cancel):
            raise Cancelled(f"cancelled after {k} of {len(items)} tiles")
        res = job(item)
        if isinstance(res, Generator):
            while True:
                try:
                    sub = next(res)
                except StopIteration as stop:
                    res = stop.value
                    break
                if isinstance(sub, int | float):
                    yield (k + min(max(float(sub), 0.0), 1.0)) / len(items)
        results.append(res)
        yield (k + 1) / len(items)
    return results


def run_jobs(job: Callable[[Any], Any], items: list[Any], *, cancel: CancelLike = None,
             workers: int | None = None, what: str = "tile") -> Generator[float, None, list[Any]]:
    """Run ``job(item)`` for every item in worker processes; yields the fraction done.

    Returns the results in item order (payloads that jobs yield are dropped). At most
    ``workers`` (default :func:`pool_size`) run at once. See the module docstring for
    failures and cancellation. Inside a worker process (:func:`in_worker`) the jobs run
    in it, one after the other.
    """
    if in_worker():
        return (yield from _inline(job, items, cancel))
    disp = _Dispatcher(job, min(workers or pool_size(), max(1, len(items))), what)
    for item in items:
        disp.add(item)
    try:
        last = -1.0
        while len(disp.done) < disp.total:
            disp.pump(cancel)
            frac = disp.fraction()
            if frac > last:
                last = frac
                yield frac
        return [disp.done[i][0] for i in range(disp.total)]
    finally:
        disp.close()


class PlaneRunner:
    """Planes of a stack fanned out to workers, consumed in order by the array boundary.

    :func:`napari_restore._arrays.iter_planes` calls :meth:`submit` for planes ahead of the
    one it is on (:attr:`lookahead` of them) and :meth:`wait` for the current one, which
    yields that plane's forwarded payloads and sub-progress and returns its result.
    """

    def __init__(self, plane_func: Callable[..., Any], *, cancel: CancelLike = None,
                 workers: int | None = None) -> None:
        self.plane_func = plane_func
        self.cancel = cancel
        self.n = workers or pool_size()
        self.lookahead = 2 * self.n
        self.disp: _Dispatcher | None = None

    def submit(self, plane: Any, kwargs: dict[str, Any], per_channel: bool) -> int:
        if self.disp is None:
            job = PlaneJob(self.plane_func, tuple(sorted(kwargs.items())), per_channel)
            self.disp = _Dispatcher(job, self.n, "plane")
        return self.disp.add(plane)

    def wait(self, index: int) -> Generator[Any, None, Any]:
        disp = self.disp
        assert disp is not None
        disp.items.pop(index - self.lookahead - 1, None)  # planes long done: free them
        last = 0.0
        while index not in disp.done:
            disp.pump(self.cancel)
            run = disp.running.get(index)
            if run is not None and run.partial > last:
                last = run.partial
                yield last
        value, payloads = disp.done.pop(index)
        disp.items.pop(index, None)
        yield from payloads
        return value

    def close(self) -> None:
        if self.disp is not None:
            self.disp.close()
