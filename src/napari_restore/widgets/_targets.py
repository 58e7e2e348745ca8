"""What a run works on: the whole layer, the current slice, or the visible field of view.

A volume processor (BM4D) works on whole 3-D volumes: it is offered the whole layer (volume
by volume) and the current volume (the current time point of a 4-D layer), never a 2-D
slice or a 2-D field of view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TARGETS = {
    "layer": "whole layer",
    "slice": "current slice",
    "view": "visible field of view",
}
VOLUME_TARGETS = {
    "layer": "whole layer (volume by volume)",
    "volume": "current volume",
}


def targets_for(plane_ndim: int) -> dict[str, str]:
    """The targets offered to a ``plane_ndim``-D processor (key -> label)."""
    return VOLUME_TARGETS if plane_ndim == 3 else TARGETS


@dataclass(frozen=True)
class Target:
    """The data a run processes and where its result sits in world coordinates."""

    data: Any
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    description: str
    index: tuple[int, ...] = ()  # fixed leading indices (slice/view)
    origin: tuple[int, ...] = ()  # crop start of the spatial axes (view)
    value_range: tuple[float, float] | None = None  # whole layer's range (float data)


_RANGES: dict[int, tuple[Any, tuple[float, float]]] = {}


def layer_value_range(layer: Any) -> tuple[float, float] | None:
    """(min, max) of a layer's whole data (cached per data object); None for a non-numeric
    dtype. A part (slice, field of view) is then scaled exactly as a run on the whole layer
    would scale it, so previews match full runs (:func:`.._arrays.needs_whole_range`)."""
    data = layer.data
    from .._arrays import needs_whole_range

    if not needs_whole_range(data.dtype):
        return None
    cached = _RANGES.get(id(layer))
    if cached is not None and cached[0] is data:
        return cached[1]
    rng = (float(np.min(data)), float(np.max(data)))
    _RANGES[id(layer)] = (data, rng)
    return rng


def _current_index(viewer: Any, layer: Any, axes: list[int]) -> tuple[int, ...]:
    point = np.asarray(layer.world_to_data(viewer.dims.point))
    idx = []
    for ax in axes:
        n = layer.data.shape[ax]
        idx.append(int(np.clip(np.round(point[ax]), 0, n - 1)))
    return tuple(idx)


def select_target(viewer: Any, layer: Any, mode: str, plane_ndim: int = 2) -> Target:
    """The part of ``layer`` a run of a ``plane_ndim``-D processor should process.

    ``slice`` (plane processors) and ``volume`` (volume processors) keep the trailing
    ``plane_ndim`` spatial axes at the viewer's current position on the leading ones;
    ``view`` additionally crops the two displayed axes to ``layer.corner_pixels`` (what is on
    screen). A volume processor is not offered ``view`` (the live preview uses it: the
    visible rows and columns of every slice of the current volume) and refuses ``slice``.
    """
    offered = targets_for(plane_ndim)
    if mode not in offered and not (mode == "view" and plane_ndim == 3):
        kind = "a volume processor" if plane_ndim == 3 else "a plane processor"
        raise ValueError(f"target={mode!r} is not allowed for {kind}; choose one of "
                         f"{', '.join(repr(k) for k in offered)}")
    ndim = layer.ndim  # spatial dims (an RGB layer's colour axis is not counted)
    scale, translate = tuple(layer.scale), tuple(layer.translate)
    if mode == "layer" or ndim <= plane_ndim and mode in ("slice", "volume"):
        return Target(layer.data, scale, translate, TARGETS["layer"])
    vrange = layer_value_range(layer)
    lead = list(range(max(ndim - plane_ndim, 0)))
    index = _current_index(viewer, layer, lead)
    keep = slice(len(lead), ndim)
    data = layer.data[index] if index else layer.data
    scale_k, trans_k = scale[keep], list(translate[keep])
    where = ", ".join(f"axis {a}={i}" for a, i in zip(lead, index, strict=True))
    if mode in ("slice", "volume"):
        return Target(data, scale_k, tuple(trans_k), f"{mode} {where}".strip(), index,
                      value_range=vrange)
    corners = np.asarray(layer.corner_pixels, dtype=int)[:, keep]
    shape = data.shape[: ndim - len(lead)]
    if not (corners[1] - corners[0]).any():  # never drawn (hidden canvas): the whole slice
        corners = np.stack([np.zeros(len(shape), int), np.asarray(shape) - 1])
    start = np.clip(corners[0], 0, np.asarray(shape) - 1)
    stop = np.clip(corners[1] + 1, start + 1, shape)
    if plane_ndim == 3:  # crop only the two displayed (last) axes of a volume
        start[:-2], stop[:-2] = 0, np.asarray(shape)[:-2]
    crop = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    for k, a in enumerate(start):
        trans_k[k] += float(a) * scale_k[k]
    desc = f"view {tuple(int(b - a) for a, b in zip(start, stop, strict=True))} at {tuple(int(a) for a in start)}"
    return Target(data[crop], scale_k, tuple(trans_k), (desc + (f", {where}" if where else "")),
                  index, tuple(int(a) for a in start), vrange)
