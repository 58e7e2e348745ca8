"""Row strips of an image processed on a small shared thread pool.

Large-image kernels (CLAHE's mapping, the guided filter, colour gains) are chains of cheap
element-wise steps; on a whole 4096² image every step streams 64 MB through memory. Cut into
strips of about a megabyte, a chain stays in the CPU cache, and the strips run on all cores:
numpy's element-wise loops and OpenCV both release the GIL. On the 2-core development machine
this makes the guided filter 2.7× faster than the same code on the whole image.

Strips must be independent: each ``func(r0, r1)`` call reads what it needs (plus any halo
rows it asks for itself) and writes only rows ``r0:r1`` of its outputs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

STRIP_BYTES = 1 << 20  # about one megabyte per float32 row strip
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_IN_POOL = threading.local()


def workers() -> int:
    """Threads in the shared pool: the usable CPUs, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(workers(), thread_name_prefix="napari-restore-strips")
        return _POOL


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's pool threads: start a fresh pool when needed
    (otherwise strips submitted in the child would wait forever)."""
    global _POOL, _POOL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def strip_rows(width: int, itemsize: int = 4, minimum: int = 16) -> int:
    """Rows per strip so that one strip of ``width`` values is about :data:`STRIP_BYTES`."""
    return max(minimum, STRIP_BYTES // max(1, width * itemsize))


def for_strips(func: Callable[[int, int], None], height: int, rows: int) -> None:
    """Call ``func(r0, r1)`` for consecutive strips of ``rows`` rows covering ``height``.

    Strips run on the shared pool when there are several of them; the first exception is
    re-raised here after every strip has finished (no strip is left writing in the
    background). Called from inside a strip (nested use), the strips run in this thread.
    """
    bounds = [(r0, min(r0 + rows, height)) for r0 in range(0, height, max(1, rows))]
    if len(bounds) <= 1 or workers() == 1 or getattr(_IN_POOL, "active", False):
        for r0, r1 in bounds:
            func(r0, r1)
        return

    def run(r0: int, r1: int) -> None:
        _IN_POOL.active = True
        try:
            func(r0, r1)
        finally:
            _IN_POOL.active = False

    futures = [_pool().submit(run, r0, r1) for r0, r1 in bounds]
    errors = [f.exception() for f in futures]  # waits for all of them
    for err in errors:
        if err is not None:
            raise err
