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
   between tile centres, using two ``cv2.remap`` calls (linear in level and tile row), so a
   continuous input value gives a continuous output (remap's 1/32 sub-sample step means at
   least 24 576 distinct levels, far more than 8 bits).
"""

from __future__ import annotations

import numpy as np

BINS = 256
_REMAP_MAX = 32000  # remap coordinates must stay below SHRT_MAX


def _edges(n: int, tiles: int) -> np.ndarray:
    return np.linspace(0, n, tiles + 1).round().astype(np.int64)


def _fine_size(cols: int) -> int:
    f = (_REMAP_MAX // cols - 2) // BINS * BINS
    return int(min(max(f, BINS), 16 * BINS))


def tile_luts(v: np.ndarray, clip_limit: float, grid: tuple[int, int]) -> np.ndarray:
    """Clipped cumulative histograms at bin edges, shape ``(rows * cols, BINS + 1)``, in [0, 1]."""
    import cv2

    h, w = v.shape
    rows, cols = grid
    ye, xe = _edges(h, rows), _edges(w, cols)
    b = np.multiply(v, np.float32(BINS), dtype=np.float32)
    np.minimum(b, np.float32(BINS - 1), out=b)
    b8 = b.astype(np.uint8)  # floor: bin index of every pixel
    hist = np.empty((rows * cols, BINS))
    for i in range(rows):
        for j in range(cols):
            tile = b8[ye[i]:ye[i + 1], xe[j]:xe[j + 1]]
            hist[i * cols + j] = cv2.calcHist([tile], [0], None, [BINS], [0, BINS]).ravel()
    counts = (np.diff(ye)[:, None] * np.diff(xe)[None, :]).reshape(-1, 1).astype(np.float64)
    limit = np.maximum(clip_limit * counts / BINS, 1.0)
    excess = np.maximum(hist - limit, 0.0).sum(axis=1, keepdims=True)
    hist = np.minimum(hist, limit) + excess / BINS
    cdf = np.zeros((rows * cols, BINS + 1))
    np.cumsum(hist, axis=1, out=cdf[:, 1:])
    return cdf / cdf[:, -1:]


_STRIP = 64  # rows mapped at a time: small reused buffers instead of full-size maps
_BLOCK = 16384  # columns mapped at a time (cv2.remap needs images narrower than SHRT_MAX)


def clahe_channel(v: np.ndarray, clip_limit: float, grid: tuple[int, int]) -> np.ndarray:
    """Equalise one 2-D working channel (C-contiguous float32 in [0, 1]); returns float32."""
    import cv2

    v = v.astype(np.float32, copy=False)
    h, w = v.shape
    rows, cols = grid
    if not (1 <= rows <= h and 1 <= cols <= w and cols <= _REMAP_MAX // (BINS + 2)):
        raise ValueError(
            f"tile grid {grid} is not possible for a {h}×{w} plane (at most {h} rows, "
            f"{min(w, _REMAP_MAX // (BINS + 2))} columns)"
        )
    cdf = tile_luts(v, clip_limit, grid)
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

    ye, xe = _edges(h, rows), _edges(w, cols)
    cy = (ye[:-1] + ye[1:] - 1) / 2.0
    cxs = (xe[:-1] + xe[1:] - 1) / 2.0
    ty = np.interp(np.arange(h), cy, np.arange(rows)).astype(np.float32)
    tx = np.interp(np.arange(w), cxs, np.arange(cols))
    c0 = np.minimum(np.floor(tx), max(cols - 2, 0)).astype(np.int64)
    wx = (tx - c0).astype(np.float32)[None, :]
    c1 = np.minimum(c0 + 1, cols - 1)
    off0 = (c0 * (fine + 2)).astype(np.float32)[None, :]
    off1 = (c1 * (fine + 2)).astype(np.float32)[None, :]

    out = np.empty((h, w), np.float32)
    s, bw = min(_STRIP, h), min(_BLOCK, w)
    level, mx, my, right = (np.empty((s, bw), np.float32) for _ in range(4))
    for r0 in range(0, h, s):
        r1 = min(r0 + s, h)
        n = r1 - r0
        for b0 in range(0, w, bw):  # remap needs images narrower than SHRT_MAX
            b1 = min(b0 + bw, w)
            m = b1 - b0
            lv, x, y, rt = level[:n, :m], mx[:n, :m], my[:n, :m], right[:n, :m]
            np.multiply(v[r0:r1, b0:b1], np.float32(fine), out=lv)
            y[:] = ty[r0:r1, None]
            np.add(lv, off0[:, b0:b1], out=x)
            dst = cv2.remap(table, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if cols > 1:
                np.add(lv, off1[:, b0:b1], out=x)
                rt[:] = cv2.remap(table, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                rt -= dst
                rt *= wx[:, b0:b1]
                dst += rt
            out[r0:r1, b0:b1] = dst
    return out
