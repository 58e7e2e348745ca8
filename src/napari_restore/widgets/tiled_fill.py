"""A huge plane in the viewer: the result layer is added at once and fills as tiles finish.

When a panel run is streamed (:func:`napari_restore._stream.stream_mode`: a tiled run of a
tileable processor, or LB-CLAHE on a plane above its strip threshold) on one greyscale 2-D
plane, the panel calls :func:`start` instead of its ordinary job: the result layer appears
empty, every row of tiles (or CLAHE strip) is written into it as soon as it is final, and
the activity dock shows the fraction done (:func:`._runner.start_job`). The source is read
window by window (a dask or zarr layer is never loaded whole). The result is held in memory
up to :data:`MEMORY_BYTES`, beyond in a temporary Zarr store on disk.

A run that fails or is stopped removes its half-filled layer, as an ordinary run adds none.
The bits are those of :meth:`ProcessorSpec.apply` with the same ``tile``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _stream
from .._arrays import Progress
from ._layers import display_kwargs, result_metadata, result_name, snapshot, unique_name
from ._runner import Job, start_job

__all__ = ["MEMORY_BYTES", "mode_for", "start"]

#: Results up to this size are filled in memory; larger ones in a temporary Zarr store.
MEMORY_BYTES = 2 << 30


def mode_for(spec: Any, data: Any, params: dict[str, Any], channel_axis: int | None) -> str | None:
    """"tiles", "strips" or None: whether a panel run on ``data`` fills its layer as it goes."""
    if channel_axis is not None or getattr(data, "ndim", 0) != 2:
        return None
    try:
        return _stream.stream_mode(spec, params, tuple(data.shape), data.dtype)
    except (TypeError, ValueError):
        return None  # the ordinary run reports the bad value


def _empty(shape: tuple[int, ...], dtype: Any) -> Any:
    if math.prod(shape) * np.dtype(dtype).itemsize <= MEMORY_BYTES:
        return np.zeros(shape, dtype)
    import zarr

    folder = tempfile.mkdtemp(prefix="napari-restore-fill-")
    return zarr.open_array(f"{folder}/result.zarr", mode="w", shape=shape, dtype=dtype,
                           chunks=tuple(min(s, _stream.OUT_CHUNK) for s in shape))


def start(panel: Any, spec: Any, target: Any, layer: Any, params: dict[str, Any],
          channel_axis: int | None, *, on_error: Callable[[BaseException], None],
          on_finished: Callable[[Job], None]) -> Job | None:
    """Start a filling run for ``panel`` (None when :func:`mode_for` says it is not one).

    Uses the panel's public surface: ``viewer``, ``report`` (progress), ``status``,
    ``last_layers`` and ``events.results``; ``on_error``/``on_finished`` are the panel's own
    handlers, so its state machine (Run → Stop → Run) is the ordinary one.
    """
    data = target.data
    mode = mode_for(spec, data, params, channel_axis)
    if mode is None:
        return None
    viewer = panel.viewer
    source = snapshot(layer, target)
    out = _empty(tuple(data.shape), data.dtype)
    name = unique_name(viewer.layers, result_name(source["name"], spec, params))
    kwargs = display_kwargs(spec.outputs[0], source)
    if "contrast_limits" not in kwargs:  # an empty layer has no range of its own yet
        kwargs["contrast_limits"] = source.get("contrast_limits") or (0, 1)
    meta = {"target": source.get("target"), "source_dtype": source.get("dtype")}
    result = viewer.add_image(out, name=name, scale=source["scale"],
                              translate=source["translate"],
                              metadata=result_metadata(spec, params, source["name"], None, 0.0,
                                                       filling=True, **meta), **kwargs)
    state = {"rows": 0, "layer": result, "auto_contrast": not spec.outputs[0].keeps_scale}

    def make(cancel: Any) -> Any:
        t0 = time.perf_counter()
        resolved: dict[str, Any] = {}
        for item in _stream.iter_stream(spec, data, params, value_range=target.value_range,
                                        cancel=cancel, resolved=resolved, mode=mode):
            if isinstance(item, tuple):
                yield item
            else:
                yield Progress(0, 1, min(float(item), 0.999))
        return resolved, time.perf_counter() - t0

    def progressed(item: Any) -> None:
        if isinstance(item, Progress):
            panel.report(item)
            return
        _idx, r0, rows = item
        out[r0:r0 + rows.shape[0]] = rows
        state["rows"] = r0 + rows.shape[0]
        if state["auto_contrast"] and r0 == 0:  # a new range (CLAHE): from the first rows
            lo, hi = float(rows.min()), float(rows.max())
            result.contrast_limits = (lo, hi if hi > lo else lo + 1)
        result.refresh()

    def returned(value: Any) -> None:
        resolved, seconds = value
        result.metadata = result_metadata(spec, params, source["name"], None, seconds,
                                          resolved=resolved or None, **meta)
        panel.last_layers = [result]
        panel.status.value = f"done in {seconds:.2f} s → {result.name}"
        panel.events.results.emit([result])

    def drop() -> None:
        if result in viewer.layers:
            viewer.layers.remove(result)

    def errored(exc: BaseException) -> None:
        drop()
        on_error(exc)

    def finished(job: Job) -> None:
        if job.outcome != "done":
            drop()  # stopped (or failed): no half-filled layer stays behind
        on_finished(job)

    return start_job(make, f"{spec.title} on {layer.name} ({mode})", on_progress=progressed,
                     on_returned=returned, on_error=errored, on_finished=finished,
                     alive=lambda: panel.alive)
