"""LB-CLAHE of a plane too large to hold, in row strips: the same result as the whole plane.

CLAHE's mapping is global per tile-grid cell: every cell's clipped histogram sets the mapping
of the pixels around its centre, blended bilinearly with its neighbours. So the plane cannot be
cut into independent tiles, but it can be *streamed* in two passes over row strips:

1. every strip's pixels are counted into the 256-bin histograms of the grid cells they fall
   in (a cell spanning several strips is counted in parts; the counts are integers, so the
   sum is exact), then the cells' clipped cumulative tables are made once
   (:func:`.clahe_core.luts_from_histograms`);
2. every strip is mapped through those tables, each row with the tile coordinates it has in
   the whole plane (:func:`.clahe_core._map_continuous` / ``_map_levels`` with ``row0``), and
   refined by the guided filter with ``2 * refine_radius`` rows of halo read above and below.

Every output row therefore sees exactly the tables and the pixels the in-memory run gives it:
``tests/test_huge_planes.py`` checks that the result is bit-identical to :func:`lb_clahe
<.clahe.lb_clahe>` (greyscale planes). Memory: two strips and their temporaries, never the plane.

Parameters on auto are predicted from the plane's features (:func:`.clahe.predict_plane`):
up to :data:`PREDICT_WHOLE_BYTES` of float32 plane on every pixel, beyond on the plane
subsampled by an integer stride to at most :data:`PREDICT_SIDE` pixels a side (reported as
``predicted_on``), in memory and in strips alike (:func:`predict_step`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._arrays import Cancelled, CancelLike, _is_cancelled, contiguous
from . import clahe_core
from .clahe_colour import _finish
from .guided_filter import guided_filter

__all__ = ["PREDICT_SIDE", "PREDICT_WHOLE_BYTES", "STRIP_BYTES", "clahe_strips",
           "predict_step", "predict_streamed", "strip_rows"]

#: A strip of the working plane is about this many bytes (float32): 1024 rows of 16384.
STRIP_BYTES = 64 << 20
#: Auto parameters are predicted on the whole plane while its working copy is at most this.
PREDICT_WHOLE_BYTES = 256 << 20
#: Beyond, on the plane subsampled to at most this many pixels along its longer side.
PREDICT_SIDE = 4096

ReadRows = Callable[[int, int], np.ndarray]


def strip_rows(width: int, rows: int | None = None) -> int:
    """Rows per strip: ``rows`` when given, else about :data:`STRIP_BYTES` of float32."""
    if rows is not None:
        return max(1, int(rows))
    return max(16, STRIP_BYTES // max(1, 4 * int(width)))


def predict_step(shape: tuple[int, int], channels: int = 1) -> int:
    """Stride of the pixels the auto parameters are predicted on: 1 while the float32 plane
    is at most :data:`PREDICT_WHOLE_BYTES`, else the least that brings its longer side to at
    most :data:`PREDICT_SIDE` (the same rule in memory and in strips)."""
    h, w = (int(s) for s in shape)
    if 4 * h * w * channels <= PREDICT_WHOLE_BYTES:
        return 1
    return max(1, math.ceil(max(h, w) / PREDICT_SIDE))


def predict_streamed(read_rows: ReadRows, shape: tuple[int, int], *,
                     strip: int | None = None) -> tuple[float, tuple[int, int], dict[str, Any]]:
    """``(clip_limit, tile_grid, note)`` predicted for a streamed plane: the same as
    :func:`.clahe.predict_plane` on the whole plane (see :func:`predict_step`)."""
    from .clahe import grid_for, predict_from_features
    from .clahe_features import plane_features

    h, w = (int(s) for s in shape)
    rows = strip_rows(w, strip)
    step = predict_step((h, w))
    parts = []
    for r0 in range(0, h, rows):
        first = -r0 % step  # the rows r ≡ 0 (mod step)
        parts.append(read_rows(r0, min(r0 + rows, h))[first::step, ::step])
    small = contiguous(np.concatenate(parts))
    if small.dtype == np.uint8:
        small = small.astype(np.float32) / np.float32(255.0)
    clip, tiles = predict_from_features(plane_features(small))
    note = {} if step == 1 else {
        "predicted_on": f"every {step}th pixel ({small.shape[0]}x{small.shape[1]})"}
    return clip, tuple(grid_for((h, w), tiles)), note


def _histograms(read_rows: ReadRows, shape: tuple[int, int], grid: tuple[int, int],
                rows: int, cancel: CancelLike) -> Iterator[float | np.ndarray]:
    import cv2

    h, w = shape
    gr, gc = grid
    ye, xe = clahe_core._edges(h, gr), clahe_core._edges(w, gc)
    hist = np.zeros((gr * gc, clahe_core.BINS))
    for r0 in range(0, h, rows):
        if _is_cancelled(cancel):
            raise Cancelled("cancelled while counting the CLAHE histograms")
        r1 = min(r0 + rows, h)
        b8 = clahe_core._bins(read_rows(r0, r1))
        for i in range(gr):
            y0, y1 = max(int(ye[i]), r0), min(int(ye[i + 1]), r1)
            if y0 >= y1:
                continue
            for j in range(gc):
                part = b8[y0 - r0:y1 - r0, xe[j]:xe[j + 1]]
                hist[i * gc + j] += cv2.calcHist([part], [0], None, [clahe_core.BINS],
                                                 [0, clahe_core.BINS]).ravel()
        yield r1 / h
    yield hist


def clahe_strips(read_rows: ReadRows, shape: tuple[int, int], *, clip_limit: float,
                 tile_grid: tuple[int, int], refine: bool = True, refine_radius: int = 2,
                 refine_eps: float = 2e-3, strip: int | None = None,
                 cancel: CancelLike = None) -> Iterator[float | tuple[int, np.ndarray]]:
    """Equalise a greyscale plane of ``shape`` read by ``read_rows(r0, r1)`` strip by strip.

    ``read_rows`` returns rows ``r0:r1`` as the array boundary gives them to
    :func:`.clahe.lb_clahe_plane` (float32 working values in [0, 1], or uint8 levels).
    Yields the fraction done (floats: the histogram pass is the first half) and
    ``(r0, rows)`` result strips in order (float32 in [0, 1], or uint8 for uint8 input).
    """
    from .clahe import _check_grid

    h, w = (int(s) for s in shape)
    grid = (int(tile_grid[0]), int(tile_grid[1]))
    _check_grid((h, w), grid)
    clahe_core._check_grid((h, w), grid)
    rows = strip_rows(w, strip)
    hist = None
    for item in _histograms(read_rows, (h, w), grid, rows, cancel):
        if isinstance(item, np.ndarray):
            hist = item
        else:
            yield 0.5 * item
    assert hist is not None
    cdf = clahe_core.luts_from_histograms(hist, (h, w), clip_limit, grid)
    halo = 2 * int(refine_radius) if refine else 0
    for r0 in range(0, h, rows):
        if _is_cancelled(cancel):
            raise Cancelled("cancelled while mapping the CLAHE strips")
        r1 = min(r0 + rows, h)
        a0, a1 = max(r0 - halo, 0), min(r1 + halo, h)
        v = read_rows(a0, a1)
        if v.dtype != np.uint8:
            v = contiguous(v, dtype=np.float32)
            out = clahe_core._map_continuous(v, cdf, grid, (h, w), a0)
        else:
            out = clahe_core._map_levels(contiguous(v), cdf, grid, (h, w), a0)
        if refine:
            out = guided_filter(out, radius=refine_radius, eps=refine_eps)
        keep = slice(r0 - a0, r1 - a0)
        yield r0, _finish(contiguous(out[keep]), v)
        yield 0.5 + 0.5 * r1 / h
