"""Worker generators shared by the panel, the preview, sweeps and the compare panel.

They run in worker threads (this is where heavy libraries get imported, by the processors),
yield :class:`~napari_restore._arrays.Progress` and return their results.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from typing import Any

from .._arrays import Progress
from .._compat import reraise_runtime_errors
from ..processors.registry import ProcessorSpec


def run_part(
    spec: ProcessorSpec,
    data: Any,
    channel_axis: int | None,
    values: dict[str, Any],
    cancel: threading.Event,
    value_range: tuple[float, float] | None = None,
    part: int = 0,
    parts: int = 1,
    resolved: dict[str, Any] | None = None,
) -> Generator[Progress, None, Any]:
    """Run ``spec`` with resolved ``values`` as part ``part`` of ``parts`` runs.

    Progress fractions are re-expressed for the whole sequence of runs; payloads pass
    through. Returns the processor's result; raises ``Cancelled`` when stopped. ``resolved``
    receives what the automatic choices resolved to (see ``ProcessorSpec.iter_apply``).
    """
    gen = reraise_runtime_errors(
        spec.iter_apply(data, channel_axis=channel_axis, cancel=cancel,
                        value_range=value_range, resolved=resolved, **values))
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if parts == 1:
            yield item
        else:
            yield Progress(part, parts, (part + item.fraction) / parts, item.info)


def run_job(
    spec: ProcessorSpec,
    data: Any,
    channel_axis: int | None,
    params: dict[str, Any],
    cancel: threading.Event,
    value_range: tuple[float, float] | None = None,
) -> Generator[Progress, None, tuple[Any, dict[str, Any], float]]:
    """One panel run: resolve parameters, run plane by plane.

    Returns ``(result, params, seconds, resolved)``: the user's choices ("auto" stays
    "auto") and, beside them, what each automatic choice resolved to for this input.
    """
    t0 = time.perf_counter()
    values = spec.check_params(data, params)
    resolved: dict[str, Any] = {}
    result = yield from run_part(spec, data, channel_axis, values, cancel, value_range,
                                 resolved=resolved)
    return result, values, time.perf_counter() - t0, resolved
