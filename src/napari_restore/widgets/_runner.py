"""The one job runner: every worker of the widget layer starts here.

:func:`start_job` creates the cancel event and the thread worker, wires its signals, unwraps
errors (:func:`~napari_restore._compat.unwrap_worker_error`) and reports to napari's activity
dock through :class:`napari.utils.progress`: a determinate bar once the job reports fractions
(:class:`~napari_restore._arrays.Progress` of several planes or iterations), a busy bar with the
elapsed time while it does not (one BM3D plane, a grain analysis). The bar closes when the job
ends, however it ends.
"""

from __future__ import annotations

import atexit
import inspect
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from napari.utils import progress as napari_progress
from qtpy.QtCore import QTimer
from superqt.utils import create_worker

from .._arrays import Cancelled, Progress
from .._compat import unwrap_worker_error

#: Steps of a determinate bar (fractions are shown to 0.1 %).
STEPS = 1000
#: How often a busy job refreshes its elapsed time (ms).
TICK_MS = 500
#: Jobs whose worker has not finished: kept referenced here, so a worker whose caller kept
#: no reference (a background measurement) is never collected mid-run (its Qt signals
#: object would be deleted, and its end would raise "wrapped C/C++ object ... deleted").
_RUNNING: set[Job] = set()


def _finish_at_exit() -> None:
    """At interpreter exit (a script that closed its viewer mid-run): ask every running job
    to stop and wait for the workers, so none ends after Qt's objects are gone."""
    from qtpy.QtCore import QThreadPool

    for job in list(_RUNNING):
        job.cancel.set()
    try:
        QThreadPool.globalInstance().waitForDone(30_000)
    except RuntimeError:  # Qt already torn down
        pass


atexit.register(_finish_at_exit)


class Job:
    """A running (or finished) job: its worker, cancel event, activity-dock bar and outcome.

    ``outcome`` is "running", then "done", "stopped" (the job raised ``Cancelled``) or
    "failed"; ``error`` holds the unwrapped exception of a failed job.
    """

    def __init__(self, description: str) -> None:
        self.description = description
        self.cancel = threading.Event()
        self.worker: Any = None
        self.bar: napari_progress | None = None
        self.t0 = time.perf_counter()
        self.outcome = "running"
        self.error: BaseException | None = None
        self.fraction: float | None = None  # None while busy (no fine-grained progress)
        self._timer: QTimer | None = None
        self.on_tick: Callable[[Job], None] | None = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def running(self) -> bool:
        return self.outcome == "running"

    @property
    def stopping(self) -> bool:
        return self.running and self.cancel.is_set()

    def stop(self) -> None:
        """Ask the job to stop: the cancel event is checked between planes and iterations."""
        self.cancel.set()

    # -- activity dock --------------------------------------------------------------------
    def _open_bar(self, activity: bool) -> None:
        if activity:
            self.bar = napari_progress(total=0, desc=self.description)  # busy until fractions
        self._timer = QTimer()
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        if self._timer is None or self.fraction is not None or not self.running:
            return
        if self.bar is not None:
            self.bar.set_description(f"{self.description} · {self.elapsed:.0f} s")
        if self.on_tick is not None:
            self.on_tick(self)

    def _report(self, item: Progress) -> None:
        fine = item.total > 1 or 0 < item.fraction < 1
        if not fine and self.fraction is None:
            return  # stays busy
        self.fraction = float(item.fraction)
        bar = self.bar  # the dock's updates may process events, even the job's end
        if bar is None:
            return
        if bar.total != STEPS:
            bar.total = STEPS
            bar.set_description(self.description)
        n = int(round(self.fraction * STEPS))
        if self.bar is bar and n != bar.n:
            bar.update(n - bar.n)

    def _stop_ticking(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _close(self, outcome: str) -> None:
        if self.outcome == "running":
            self.outcome = outcome
        self._stop_ticking()
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def start_job(
    make: Callable[[threading.Event], Any],
    description: str,
    *,
    on_progress: Callable[[Any], None] | None = None,
    on_returned: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finished: Callable[[Job], None] | None = None,
    alive: Callable[[], bool] = lambda: True,
    activity: bool = True,
    on_tick: Callable[[Job], None] | None = None,
) -> Job:
    """Run ``make(cancel)`` in a thread worker and return its :class:`Job`.

    ``make`` returns a generator (its yields are progress, its return value the result) or a
    plain value (it did all the work). The callbacks run on the main thread: ``on_progress``
    for every yielded item, ``on_returned`` with the result (also after a Stop when the job
    chose to return), ``on_error`` with the unwrapped exception (never for ``Cancelled``:
    that is the outcome "stopped"), ``on_finished`` with the job at the end. While
    ``alive()`` is false (the owner's widgets are gone) no callback runs; the bar still closes.
    ``activity=False`` keeps the job out of the activity dock (a live preview).
    ``on_tick(job)`` runs every :data:`TICK_MS` while the job is busy (no fractions yet), to
    show the elapsed time.
    """
    job = Job(description)

    def body(cancel: threading.Event) -> Generator[Any, None, Any]:
        out = make(cancel)
        if inspect.isgenerator(out):
            return (yield from out)
        return out

    reporting = False  # inside job._report: the activity dock is processing events

    def yielded(item: Any) -> None:
        nonlocal reporting
        if not job.running:  # a report delivered after the end: the job is over
            return
        if on_progress is not None and alive():
            on_progress(item)
        # after the owner's update: the activity dock may process events (even the end), and
        # with them the reports queued meanwhile; those update the owner but not the bar
        # again (a fast worker's reports would otherwise nest until the recursion limit)
        if isinstance(item, Progress) and job.running and not reporting:
            reporting = True
            try:
                job._report(item)
            finally:
                reporting = False

    returning = False  # inside on_returned: adding layers may process events, "finished" too
    finish_pending = False

    def returned(value: Any) -> None:
        nonlocal returning
        # no busy tick after the result: one queued between "returned" and "finished" (a
        # loaded machine) overwrote the owner's "done …" status with "running … · 1 s"
        job._stop_ticking()
        if on_returned is None or not alive():
            return
        returning = True
        try:
            on_returned(value)
        finally:
            returning = False
            if finish_pending:  # "finished" arrived inside on_returned: it ends the job now
                finished()

    def errored(exc: BaseException) -> None:
        exc = unwrap_worker_error(exc)
        if isinstance(exc, Cancelled):
            job._close("stopped")
            return
        job.error = exc
        job._close("failed")
        if on_error is not None and alive():
            on_error(exc)

    def finished() -> None:
        nonlocal finish_pending
        if returning:  # the owner sees its result before the job's end, whatever the events
            finish_pending = True
            return
        finish_pending = False
        job._close("stopped" if job.cancel.is_set() else "done")
        _RUNNING.discard(job)
        if on_finished is not None and alive():
            on_finished(job)

    worker = create_worker(body, job.cancel, _start_thread=False,
                           _ignore_errors=True)  # errors are reported by on_error
    worker.yielded.connect(yielded)
    worker.returned.connect(returned)
    worker.errored.connect(errored)
    worker.finished.connect(finished)
    job.worker = worker
    job.on_tick = (lambda j: on_tick(j) if alive() else None) if on_tick else None
    job._open_bar(activity)
    job.t0 = time.perf_counter()
    _RUNNING.add(job)
    worker.start()
    return job
