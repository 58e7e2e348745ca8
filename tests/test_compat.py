"""Each _compat work-around, and a test that fails once upstream fixes the bug it covers."""

from __future__ import annotations

import pytest

from napari_restore._compat import WorkerRuntimeError, reraise_runtime_errors, unwrap_worker_error


def _raising():
    yield 1
    raise RuntimeError("inner")


def test_reraise_runtime_errors_wraps_and_unwraps():
    gen = reraise_runtime_errors(_raising())
    assert next(gen) == 1
    with pytest.raises(WorkerRuntimeError) as info:
        next(gen)
    assert isinstance(unwrap_worker_error(info.value), RuntimeError)
    assert str(unwrap_worker_error(info.value)) == "inner"


@pytest.mark.gui
def test_superqt_swallows_runtime_errors(qtbot):
    """Upstream bug detector: superqt's GeneratorWorker drops RuntimeErrors silently.

    When this test fails, superqt emits ``errored``/``finished`` for RuntimeErrors again and
    ``reraise_runtime_errors`` can be removed from ``_compat.py``.
    """
    from superqt.utils import create_worker

    worker = create_worker(_raising, _start_thread=False)
    seen = []
    worker.errored.connect(lambda e: seen.append("errored"))
    worker.finished.connect(lambda: seen.append("finished"))
    with pytest.warns(RuntimeWarning, match="RuntimeError in aborted thread"):
        worker.run()  # synchronously, in this thread
    assert seen == []
