"""Third-party work-arounds, each scoped to the library it fixes, with the versions it covers.

Every work-around here has a test in ``tests/test_compat.py`` that fails once upstream fixes
the bug, so it can be removed that day. Nothing here patches numpy (or anything else) for the
whole process.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


class WorkerRuntimeError(Exception):
    """A ``RuntimeError`` raised inside a thread-worker generator, re-raised under another type.

    superqt's ``GeneratorWorker.work`` (superqt <= 0.9.0, the newest release on 2026-11-24)
    catches every ``RuntimeError`` from the generator, assuming the Qt worker object was
    deleted, and ``WorkerBase.run`` then only warns and returns: neither ``errored`` nor
    ``finished`` is emitted, so a panel waiting for ``finished`` would stay "running" forever.
    Our worker generators are wrapped by :func:`reraise_runtime_errors`; the original error is
    ``__cause__``. ``tests/test_compat.py::test_superqt_swallows_runtime_errors`` fails once
    superqt stops swallowing them, and this shim can go.
    """


def reraise_runtime_errors(gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Delegate to ``gen``, turning a ``RuntimeError`` into :class:`WorkerRuntimeError`."""
    try:
        return (yield from gen)
    except RuntimeError as exc:
        raise WorkerRuntimeError(str(exc)) from exc


def unwrap_worker_error(exc: BaseException) -> BaseException:
    """The error a user should see (undoes :func:`reraise_runtime_errors`)."""
    if isinstance(exc, WorkerRuntimeError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc
