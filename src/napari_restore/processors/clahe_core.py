"""CLAHE (Zuiderveld 1994) at full precision: 256-bin clip semantics, continuous mapping.

OpenCV's CLAHE takes 8- or 16-bit input. At 8 bits it quantises the data; at 16 bits it builds
65536-bin tile histograms, and its clip limit (a multiple of the mean bin height) then means
something different for data with 256 used levels (every level is clipped: almost no
equalisation) and for continuous data (the histogram is too sparse to clip: plain AHE). So
the clip limit would mean different things for uint8, uint16 and float images.

This module keeps the familiar 8-bit semantics for every input and loses no precision:

1. tile histograms with 256 bins (``clip_limit`` is a multiple of the mean bin height,
   exactly as in OpenCV's 8-bit CLAHE), clipped and the excess redistributed uniformly;
2. each tile's mapping is the cumulative histogram *at the bin edges*, linear inside a bin
   (the exact equalisation of a piecewise-uniform density), resampled to a fine table of
   ``F + 1`` entries (F ≥ 768; 3840 for an 8-column grid);
3. every pixel is mapped through the four nearest tiles' tables with bilinear weights
   between tile centres (in steps of 1/32 of a tile, the same on every OpenCV version), using
   two ``cv2.remap`` calls (linear in level and tile row), so a continuous input value gives a
   continuous output (levels too are placed on remap's 1/32 sub-sample grid, the step OpenCV 4
   uses and OpenCV 5 does not: at least 24 576 distinct levels, far more than 8 bits, and the
   same result on every OpenCV version).

uint8 channels take a shortcut with the same result: the continuous mapping is evaluated once
per tile at the 256 levels, and one ``cv2.remap`` per strip blends the four tiles. Both paths
run in row strips on all cores (:mod:`napari_restore._parallel`).
"""

from __future__ import annotations

import numpy as np

from .._arrays import contiguous
from .._compat import REMAP_STEPS, remap_grid
from .._parallel import for_strips, strip_rows

BINS = 256
_REMAP_MAX = 32000  # remap coordinates must stay below SHRT_MAX


def _edges(n: int, tiles: int) -> np.ndarray:
    return np.linspace(0, n, tiles + 1).round().astype(np.int64)


def _fine_size(cols: int) -> int:
    f = (_REMAP_MAX // cols - 2) // BINS * BINS
    return int(min(max(f, BINS), 16 * BINS))


def tile_histograms(b8: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """256-bin histograms of every tile of a plane of bin indices (uint8), ``(rows*cols, 256)``."""
    import cv2

    h, w = b8.shape
    rows, cols = grid
    ye, xe = _edges(h, rows), _edges(w, cols)
    hist = np.empty((rows * cols, BINS))
    for i in range(rows):
        for j in range(cols):
            tile = b8[ye[i]:ye[i + 1], xe[j]:xe[j + 1]]
            hist[i * cols + j] = cv2.calcHist([tile], [0], None, [BINS], [0, BINS]).ravel()
    return hist


def _bins(v: np.ndarray) -> np.ndarray:
    """Bin index (floor of ``v * 256``) of every pixel; uint8 levels are their own bins."""
    if v.dtype == np.uint8:
        return v  # level b is b/255, whose bin is floor(256 b / 255) = b
    b = np.multiply(v, np.float32(BINS), dtype=np.float32)
    np.minimum(b, np.float32(BINS - 1), out=b)
    return b.astype(np.uint8)


def tile_luts(v: np.ndarray, clip_limit: float, grid: tuple[int, int]) -> np.ndarray:
    """Clipped cumulative histograms at bin edges, shape ``(rows * cols, BINS + 1)``, in [0, 1]."""
    return luts_from_histograms(tile_histograms(_bins(v), grid), v.shape, clip_limit, grid)


def luts_from_histograms(hist: np.ndarray, shape: tuple[int, int], clip_limit: float,
                         grid: tuple[int, int]) -> np.ndarray:
    """:func:`tile_luts` from the tiles' 256-bin histograms of a plane of ``shape`` (also
    when they were counted strip by strip: :mod:`.clahe_strips`)."""
    h, w = shape
    rows, cols = grid
    ye, xe = _edges(h, rows), _edges(w, cols)
    counts = (np.diff(ye)[:, None] * np.diff(xe)[None, :]).reshape(-1, 1).astype(np.float64)
    limit = np.maximum(clip_limit * counts / BINS, 1.0)
    excess = np.maximum(hist - limit, 0.0).sum(axis=1, keepdims=True)
    hist = np.minimum(hist, limit) + excess / BINS
    cdf = np.zeros((rows * cols, BINS + 1))
    np.cumsum(hist, axis=1, out=cdf[:, 1:])
    return cdf / cdf[:, -1:]


def _tile_coordinates(h: int, w: int, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Fractional tile row of every image row and tile column of every image column.

    Tile centres are at integer coordinates; pixels outside the outer centres are clamped (the
    outer tiles' mappings apply unblended there, as in Zuiderveld's CLAHE). Coordinates are on
    remap's 1/32 grid (:func:`.._compat.remap_grid`): both mapping paths then blend tiles with
    the same weights, on every OpenCV version.
    """
    rows, cols = grid
    ye, xe = _edges(h, rows), _edges(w, cols)
    cy = (ye[:-1] + ye[1:] - 1) / 2.0
    cx = (xe[:-1] + xe[1:] - 1) / 2.0
    ty = np.interp(np.arange(h), cy, np.arange(rows))
    tx = np.interp(np.arange(w), cx, np.arange(cols))
    return remap_grid(ty), remap_grid(tx)


def _check_grid(shape: tuple[int, int], grid: tuple[int, int]) -> None:
    h, w = shape
    rows, cols = grid
    if not (1 <= rows <= h and 1 <= cols <= w and cols <= _REMAP_MAX // (BINS + 2)):
        raise ValueError(
            f"tile grid {grid} is not possible for a {h}×{w} plane (at most {h} rows, "
            f"{min(w, _REMAP_MAX // (BINS + 2))} columns)"
        )


_STRIP = 64  # rows mapped at a time: small reused buffers instead of full-size maps
_BLOCK = 16384  # columns mapped at a time (cv2.remap needs images narrower than SHRT_MAX)


def clahe_channel(v: np.ndarray, clip_limit: float, grid: tuple[int, int]) -> np.ndarray:
    """Equalise one 2-D channel; returns float32 in [0, 1].

    ``v`` is a C-contiguous working channel (float32 in [0, 1]) or a uint8 channel (level
    ``b`` meaning ``b / 255``). Both give the same result for the same values: the uint8 path
    evaluates the same continuous mapping at the 256 levels, once per tile, and blends tiles
    with one ``cv2.remap`` per strip (about 3× faster than the continuous path).
    """
    if v.dtype != np.uint8:
        v = v.astype(np.float32, copy=False)
    _check_grid(v.shape, grid)
    cdf = tile_luts(v, clip_limit, grid)
    if v.dtype == np.uint8:
        return _map_levels(v, cdf, grid)
    return _map_continuous(v, cdf, grid)


def _map_levels(v8: np.ndarray, cdf: np.ndarray, grid: tuple[int, int],
                shape: tuple[int, int] | None = None, row0: int = 0) -> np.ndarray:
    """Map uint8 levels: per tile, the continuous mapping at ``b / 255`` for b in 0..255.

    The table holds level ``b`` of tile column ``c`` at x = ``b * cols + c``, tile rows along
    y, so remap's bilinear interpolation at x = ``b * cols + tx``, y = ``ty`` is exactly the
    blend of the four nearest tiles' mappings (with 1/32 weight steps). Level ``b`` is looked
    up at the position the continuous path gives ``b / 255``, so both paths agree.

    ``v8`` may be rows ``row0:row0 + len(v8)`` of a plane of ``shape`` (the result is those
    rows of the whole plane's result: every row is mapped on its own).
    """
    import cv2

    h, w = v8.shape
    ph = h if shape is None else int(shape[0])
    rows, cols = grid
    # bin position of level b / 255 exactly where the continuous path puts it (_level_grid)
    level = np.arange(BINS, dtype=np.float32) / np.float32(255.0)  # as the boundary maps b
    fine = _fine_size(cols)
    pos = _level_grid(level, fine, np.empty_like(level)).astype(np.float64) * (BINS / fine)
    k = np.minimum(pos.astype(np.int64), BINS - 1)
    lut = cdf[:, k] + (pos - k) * (cdf[:, k + 1] - cdf[:, k])  # (rows*cols, 256)
    table = contiguous(lut.reshape(rows, cols, BINS).transpose(0, 2, 1), np.float32)
    table = table.reshape(rows, BINS * cols)
    if rows == 1:  # remap needs two rows to interpolate between
        table = np.concatenate([table, table], axis=0)
    ty, tx = _tile_coordinates(ph, w, grid)
    ty, tx = ty[row0:row0 + h].astype(np.float32), tx.astype(np.float32)
    out = np.empty((h, w), np.float32)
    bw = min(w, _BLOCK)  # remap needs images narrower than SHRT_MAX

    def strip(r0: int, r1: int) -> None:
        n = r1 - r0
        y = np.empty((n, bw), np.float32)
        y[:] = ty[r0:r1, None]
        x = np.empty((n, bw), np.float32)
        for b0 in range(0, w, bw):
            m = min(bw, w - b0)
            xs, ys = x[:, :m], y[:, :m]
            np.multiply(v8[r0:r1, b0:b0 + m], np.float32(cols), out=xs, casting="unsafe")
            xs += tx[b0:b0 + m]
            out[r0:r1, b0:b0 + m] = cv2.remap(
                table, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )

    for_strips(strip, h, strip_rows(min(w, bw)))
    return out


def _level_grid(v: np.ndarray, fine: int, out: np.ndarray) -> np.ndarray:
    """Level coordinate ``v * fine`` in table entries, on remap's 1/32 grid (into ``out``).

    OpenCV 4 rounds remap coordinates to 1/32 itself, OpenCV 5 does not: rounding here makes
    the continuous path the same on both, and lets the uint8 path use the same positions.
    """
    np.multiply(v, np.float32(fine * REMAP_STEPS), out=out)
    np.rint(out, out=out)
    out *= np.float32(1.0 / REMAP_STEPS)  # a power of two: exact
    return out


def _map_continuous(v: np.ndarray, cdf: np.ndarray, grid: tuple[int, int],
                    shape: tuple[int, int] | None = None, row0: int = 0) -> np.ndarray:
    """Map continuous values: fine per-tile tables, linear in level and tile row (remap).

    ``v`` may be rows ``row0:row0 + len(v)`` of a plane of ``shape`` (see :func:`_map_levels`).
    """
    import cv2

    h, w = v.shape
    ph = h if shape is None else int(shape[0])
    rows, cols = grid
    fine = _fine_size(cols)
    pos = np.arange(fine + 1) * (BINS / fine)
    k = np.minimum(pos.astype(np.int64), BINS - 1)
    frac = pos - k
    lut = cdf[:, k] + frac * (cdf[:, k + 1] - cdf[:, k])  # (rows*cols, fine+1)
    table = np.empty((rows, cols, fine + 2), np.float32)
    table[..., : fine + 1] = lut.reshape(rows, cols, fine + 1)
    table[..., fine + 1] = table[..., fine]  # guard column: no bleeding between tiles
    table = table.reshape(rows, cols * (fine + 2))
    if rows == 1:  # remap needs two rows to interpolate between
        table = np.concatenate([table, table], axis=0)

    ty, tx = _tile_coordinates(ph, w, grid)
    ty = ty[row0:row0 + h].astype(np.float32)
    c0 = np.minimum(np.floor(tx), max(cols - 2, 0)).astype(np.int64)
    wx = (tx - c0).astype(np.float32)[None, :]
    c1 = np.minimum(c0 + 1, cols - 1)
    off0 = (c0 * (fine + 2)).astype(np.float32)[None, :]
    off1 = (c1 * (fine + 2)).astype(np.float32)[None, :]

    out = np.empty((h, w), np.float32)
    bw = min(_BLOCK, w)

    def strip(r0: int, r1: int) -> None:
        n = r1 - r0
        level, x, y, right = (np.empty((n, bw), np.float32) for _ in range(4))
        for b0 in range(0, w, bw):  # remap needs images narrower than SHRT_MAX
            b1 = min(b0 + bw, w)
            m = b1 - b0
            lv, xs, ys, rt = level[:, :m], x[:, :m], y[:, :m], right[:, :m]
            _level_grid(v[r0:r1, b0:b1], fine, lv)
            ys[:] = ty[r0:r1, None]
            np.add(lv, off0[:, b0:b1], out=xs)
            dst = cv2.remap(table, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if cols > 1:
                np.add(lv, off1[:, b0:b1], out=xs)
                rt[:] = cv2.remap(table, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                rt -= dst
                rt *= wx[:, b0:b1]
                dst += rt
            out[r0:r1, b0:b1] = dst

    for_strips(strip, h, _STRIP)
    return out
