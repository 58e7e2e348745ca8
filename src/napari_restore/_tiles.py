"""Overlapping tiles for any plane processor: geometry, whole-plane parameters, blending.

A processor is tileable when its spec has a ``footprint(params, plane_shape) -> int``: the
halo, in pixels, beyond which a pixel of the result no longer depends on the input (BM3D's
block plus half its search window, non-local means' patch radius plus search distance, Deep
Image Prior's receptive field). A plane is cut into windows of one size that overlap by at
least :func:`overlap` = 2 × halo + a blending ramp. A window's weight is 0 within ``halo`` of
each of its interior edges and rises as sin² over the ramp beyond; the weights are normalised
so that those of every pixel sum to 1. So no pixel takes any weight from a window that saw
less than its footprint around it, and the weights are smooth. A window at the plane's border
keeps full weight up to that border (the untiled run sees the same border there).

Every automatic parameter is resolved once on the whole plane before it is cut
(:func:`plane_params`: σ and the noise model of BM3D/BM4D, σ of the classic denoisers), and
every window gets the same values, so that tiles agree with one another and with an untiled
run. The windows run as jobs on the worker processes (:mod:`napari_restore._workers`); the
result is assembled in window order, so its bits do not depend on the number of workers.

Tiling is used when asked for (``tile=(rows, cols)`` or ``tile="auto"``) and by default only
where :func:`needs_tiling` says an untiled run cannot fit: a fixed function of the plane's
shape, its dtype and the processor (:data:`UNTILED_BYTES`), never of timing or of the memory
free at the time, so that the same input gives the same bits on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._arrays import CancelLike, Resolved, contiguous

__all__ = ["AUTO_WINDOW", "UNTILED_BYTES", "TileGrid", "TiledPlane", "check_tile", "grid_for",
           "needs_tiling", "overlap", "untiled_bytes"]

#: ``tile="auto"`` cuts the rows into ceil(rows / 512) windows and the columns into
#: ceil(cols / 2048): strips about 512 rows high and at most about 2048 px wide. A 1024² plane
#: becomes 2 strips of 546 × 1024 (BM3D), one per worker on two cores, with 6.5 % of the pixels
#: computed twice; 2 × 2 windows would compute 14 % twice for the same parallelism. A function of
#: the shape only, so that the same input gives the same bits on any machine.
AUTO_WINDOW = (512, 2048)
#: An untiled run whose estimated working memory (:func:`untiled_bytes`) exceeds this is
#: tiled by default ("auto"). A constant, so that the choice never depends on the machine.
UNTILED_BYTES = 8 << 30
#: Working copies of a plane an untiled run is assumed to hold (conversion, the library's
#: temporaries, the result), in the processor's working precision.
WORK_COPIES = 6
#: Working copies of a whole plane a tiled run holds: the working plane, the float64 sum.
TILED_COPIES = 3
#: Smallest blending ramp between two windows (pixels), beyond twice the halo.
MIN_RAMP = 8


def overlap(halo: int) -> int:
    """Least overlap of two neighbouring windows for a footprint of ``halo`` pixels."""
    return 2 * int(halo) + max(MIN_RAMP, int(halo) // 2)


def min_tile(halo: int) -> int:
    """Smallest tile side for a footprint of ``halo`` px: the overlap plus one ramp."""
    return overlap(halo) + MIN_RAMP


def footprint(spec: Any, params: dict[str, Any], plane_shape: tuple[int, ...]) -> int | None:
    """The processor's halo in pixels for these parameters, or None (not tileable)."""
    if spec.footprint is None:
        return None
    return max(0, int(spec.footprint(params, tuple(plane_shape))))


def untiled_bytes(spec: Any, plane_shape: tuple[int, ...], dtype: Any,
                  params: dict[str, Any]) -> int:
    """Estimated working memory of one untiled plane: the processor's own ``memory`` estimate
    plus :data:`WORK_COPIES` working copies of the plane (``dtype`` does not enter beyond the
    working precision: every input is converted to it)."""
    pixels = math.prod(int(s) for s in plane_shape)
    work = np.dtype(spec.work_dtype).itemsize
    extra = int(spec.memory(params, tuple(plane_shape))) if spec.memory is not None else 0
    return WORK_COPIES * work * pixels + extra


def needs_tiling(spec: Any, plane_shape: tuple[int, ...], dtype: Any,
                 params: dict[str, Any]) -> bool:
    """Whether a run with ``tile=None`` is tiled: the processor is tileable and an untiled
    plane would need more than :data:`UNTILED_BYTES` (:func:`untiled_bytes`).

    ``plane_shape`` is the spatial shape of one plane (``(H, W)``, or ``(Z, H, W)`` for a
    volume processor), without colour. A function of shape, dtype and processor only.
    """
    np.dtype(dtype)  # a dtype is required (validated), though only the working one counts
    if spec.footprint is None:
        return False
    return untiled_bytes(spec, plane_shape, dtype, params) > UNTILED_BYTES


def window_shape(spec: Any, tile: Any, plane_shape: tuple[int, ...],
                 params: dict[str, Any]) -> tuple[int, ...]:
    """The shape of one window (``plane_shape`` with its last two axes cut to the tile)."""
    halo = footprint(spec, params, plane_shape) or 0
    spatial = tuple(plane_shape[-2:])
    grid = grid_for(tile, spatial, halo, name=spec.name)
    window = spatial if grid is None else grid.window
    return tuple(plane_shape[:-2]) + tuple(window)


def check_tile(tile: Any) -> Any:
    """``tile`` validated: "off" (None is the same), "auto" or a pair (rows, cols) of ints."""
    if tile is None or (isinstance(tile, str) and tile == "off"):
        return "off"
    if isinstance(tile, str) and tile == "auto":
        return tile
    if isinstance(tile, str):  # a string of the wrong value
        raise ValueError(  # noqa: TRY004
            f"tile={tile!r} is not allowed; use 'off' (or None), 'auto' or (rows, cols)")
    if isinstance(tile, bool | np.bool_) or not hasattr(tile, "__len__"):
        raise TypeError(f"tile must be 'off' (or None), 'auto' or a pair (rows, cols) of "
                        f"integers; got {tile!r:.60}")
    if len(tile) != 2:
        raise ValueError(f"tile must have 2 entries (rows, cols); got {len(tile)} ({tile!r:.60})")
    out = []
    for v in tile:
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer):
            if isinstance(v, float | np.floating) and float(v).is_integer():
                v = int(v)
            else:
                raise TypeError(f"tile must be a pair of integers (rows, cols); got {tile!r:.60}")
        if v < 1:
            raise ValueError(f"tile={tuple(tile)!r} is out of range; each side must be >= 1")
        out.append(int(v))
    return tuple(out)


@dataclass(frozen=True)
class TileGrid:
    """Windows of one size ``window`` covering a plane of ``shape`` (the two tiled axes).

    ``starts`` holds the window origins along each axis; neighbouring windows overlap by at
    least :func:`overlap` pixels.
    """

    shape: tuple[int, int]
    window: tuple[int, int]
    halo: int
    starts: tuple[tuple[int, ...], tuple[int, ...]]

    @property
    def count(self) -> int:
        return len(self.starts[0]) * len(self.starts[1])

    def windows(self) -> list[tuple[slice, slice]]:
        return [(slice(r, r + self.window[0]), slice(c, c + self.window[1]))
                for r in self.starts[0] for c in self.starts[1]]

    def weights(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """1-D blending weights of every window along each axis (sums to 1 everywhere)."""
        return (_axis_weights(self.starts[0], self.window[0], self.shape[0], self.halo),
                _axis_weights(self.starts[1], self.window[1], self.shape[1], self.halo))


def _starts(length: int, window: int, n: int) -> tuple[int, ...]:
    if n <= 1:
        return (0,)
    return tuple(round(k * (length - window) / (n - 1)) for k in range(n))


def _axis_weights(starts: tuple[int, ...], window: int, length: int, halo: int) -> list[np.ndarray]:
    """Each window's weight along one axis: 0 within ``halo`` of an interior edge, rising as
    sin² over the ramp beyond, then normalised so that the weights of every pixel sum to 1
    (also where more than two windows overlap)."""
    ramp = float(max(1, overlap(halo) - 2 * halo))
    x = np.arange(window, dtype=np.float64)
    raw = []
    for k, s in enumerate(starts):
        r = np.ones(window, np.float64)
        if k > 0:
            r *= np.sin(0.5 * np.pi * np.clip((x - halo + 0.5) / ramp, 0.0, 1.0)) ** 2
        if k < len(starts) - 1:
            r *= np.sin(0.5 * np.pi * np.clip((window - 1 - x - halo + 0.5) / ramp, 0.0, 1.0)) ** 2
        raw.append(r)
    total = np.zeros(length, np.float64)
    for s, r in zip(starts, raw, strict=True):
        total[s:s + window] += r
    return [r / total[s:s + window] for s, r in zip(starts, raw, strict=True)]


def grid_for(tile: Any, shape: tuple[int, int], halo: int, *, name: str = "processor",
             report: dict[str, Any] | None = None) -> TileGrid | None:
    """The window grid for ``tile`` ("auto" or (rows, cols)) on a plane of ``shape``.

    Returns None when one window covers the whole plane (the run is untiled). A tile larger
    than the plane along an axis is cut to the plane there; that correction is written to
    ``report["tile"]``. A tile side smaller than :func:`min_tile` (the overlap the footprint
    needs plus one ramp) raises ``ValueError`` saying the smallest allowed.
    """
    o = overlap(halo)
    shape = (int(shape[0]), int(shape[1]))
    if tile == "auto":
        window, ns = [], []
        for length, core in zip(shape, AUTO_WINDOW, strict=True):
            n = max(1, math.ceil(length / core))
            while n > 1 and math.ceil((length + (n - 1) * o) / n) < min_tile(halo):
                n -= 1
            w = length if n == 1 else math.ceil((length + (n - 1) * o) / n)
            window.append(min(w, length))
            ns.append(n)
    else:
        rows, cols = tile
        least = min_tile(halo)
        for side, length in ((rows, shape[0]), (cols, shape[1])):
            if side < least and side < length:
                raise ValueError(
                    f"tile={tuple(tile)!r} is smaller than {name}'s footprint allows: its "
                    f"tiles overlap by {o} px (twice its {halo} px halo plus a blending ramp), "
                    f"so each side must be at least {least} px (or use tile='auto')")
        window = [min(rows, shape[0]), min(cols, shape[1])]
        if (rows, cols) != tuple(window) and report is not None:
            report["tile"] = tuple(window)
        ns = []
        for length, w in zip(shape, window, strict=True):
            if w >= length:
                ns.append(1)
            else:
                ns.append(math.ceil((length - o) / (w - o)))
    if ns == [1, 1]:
        if report is not None and tile != "auto":
            report["tile"] = None  # the plane fits in one tile: an untiled run
        return None
    starts = (_starts(shape[0], window[0], ns[0]), _starts(shape[1], window[1], ns[1]))
    return TileGrid(shape, (window[0], window[1]), int(halo), starts)


def plane_params(spec: Any, plane: np.ndarray, params: dict[str, Any],
                 window: tuple[int, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parameters for every window, with each automatic choice resolved on the whole plane.

    Uses the spec's ``tile_params(plane, params, window)`` when it has one; otherwise a
    ``sigma`` left on automatic (None) is estimated on the whole plane (wavelet MAD, colour
    channels averaged). Returns (window parameters, what was resolved), in working units.
    """
    if spec.tile_params is not None:
        return spec.tile_params(plane, dict(params), tuple(window))
    out, resolved = dict(params), {}
    if "sigma" in out and out["sigma"] is None:
        from .processors.noise import estimate_noise_sigma

        colour = spec.input_kind == "rgb" and plane.ndim == 3 and plane.shape[-1] == 3
        out["sigma"] = resolved["sigma"] = estimate_noise_sigma(
            plane, channel_axis=-1 if colour else None)
    return out, resolved


class TiledPlane:
    """A plane function that runs ``spec.plane_func`` window by window on the workers.

    Called by the array boundary like the plane function itself, on one working plane
    (``(H, W)``, ``(H, W, 3)``, or ``(Z, H, W)`` for volume processors, tiled over its last
    two axes); a generator yielding what was resolved and the fraction done.
    """

    def __init__(self, spec: Any, tile: Any, *, cancel: CancelLike = None,
                 workers: int | None = None, report: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.tile = tile
        self.cancel = cancel
        self.workers = workers
        self.report = report
        self.__name__ = getattr(spec.plane_func, "__name__", spec.name)

    def _axes(self, plane: np.ndarray) -> tuple[int, int]:
        return (plane.ndim - 2, plane.ndim - 1) if self.spec.input_kind == "volume3d" else (0, 1)

    def __call__(self, plane: np.ndarray, **params: Any) -> Generator[Any, None, Any]:
        from ._workers import PlaneJob, run_jobs

        ay, ax = self._axes(plane)
        spatial = (plane.shape[ay], plane.shape[ax])
        halo = footprint(self.spec, params, plane.shape)
        if halo is None:
            raise ValueError(f"{self.spec.name} cannot be tiled")
        grid = grid_for(self.tile, spatial, halo, name=self.spec.name, report=self.report)
        if grid is None:  # one window is the whole plane: the untiled call, as it is
            res = self.spec.plane_func(plane, **params)
            if isinstance(res, Generator):
                res = yield from res
            return res
        if self.report is not None:
            self.report.setdefault("tile", grid.window)
            self.report["tiles"] = grid.count
        run, resolved = plane_params(self.spec, plane, params, grid.window)
        if resolved:
            yield Resolved(resolved)
        index = [slice(None)] * plane.ndim
        items = []
        for rs, cs in grid.windows():
            index[ay], index[ax] = rs, cs
            items.append(contiguous(plane[tuple(index)]))
        job = PlaneJob(self.spec.plane_func, tuple(sorted(run.items())), False)
        results = yield from run_jobs(job, items, cancel=self.cancel, workers=self.workers)
        return _blend(results, grid, plane, (ay, ax))


def _blend(results: list[Any], grid: TileGrid, plane: np.ndarray,
           axes: tuple[int, int]) -> Any:
    """Weighted sum of the windows' results, in window order (the same bits for any workers)."""
    first = results[0]
    several = isinstance(first, tuple)
    n_out = len(first) if several else 1
    parts = [r if several else (r,) for r in results]
    wy, wx = grid.weights()
    ay, ax = axes
    outs = []
    for j in range(n_out):
        ref = np.asarray(parts[0][j])
        shape = list(ref.shape)
        shape[ay], shape[ax] = grid.shape
        acc = np.zeros(shape, np.float64)
        k = 0
        index = [slice(None)] * len(shape)
        windows = grid.windows()
        for iy in range(len(grid.starts[0])):
            for ix in range(len(grid.starts[1])):
                rs, cs = windows[k]
                w = np.multiply.outer(wy[iy], wx[ix])
                wshape = [1] * len(shape)
                wshape[ay], wshape[ax] = w.shape
                index[ay], index[ax] = rs, cs
                acc[tuple(index)] += np.asarray(parts[k][j], np.float64) * w.reshape(wshape)
                k += 1
        outs.append(acc.astype(ref.dtype if ref.dtype.kind == "f" else plane.dtype, copy=False))
    return tuple(outs) if several else outs[0]
