"""Huge planes: a plane read from disk and written to disk in pieces, never held whole.

A plane larger than memory (a 16k² slide-scanner or EM mosaic) goes through a processor
without the array boundary's whole-plane working copy:

* **tiled processors** (a ``footprint``: :mod:`napari_restore._tiles`) run one row of
  overlapping windows at a time. The windows of a row are read from the source, converted to
  the working scale, computed on the worker processes and blended into a band of rows with
  the same weights and in the same order as :class:`~napari_restore._tiles.TiledPlane`; the
  rows no later window touches are converted back and handed to the writer. The result is
  bit-identical to the in-memory tiled run with the same ``tile``.
* **LB-CLAHE** (not tileable: its mapping is global per grid cell) runs in two passes over row
  strips (:mod:`napari_restore.processors.clahe_strips`), bit-identical to the in-memory run.

Parameters are those of the whole plane (:func:`napari_restore._tiles.plane_params`); an
automatic σ needs the whole plane, which is read once for it while its working copy is at
most :data:`WHOLE_BYTES` (beyond, give σ). Inputs are read lazily (:func:`open_array`: Zarr,
TIFF/OME-TIFF through tifffile's Zarr store, NPY memory-mapped); outputs are written by
:class:`StreamWriter` to a temporary name and renamed into place only when complete
(:class:`napari_restore.batch_io.Writer`).

The CLI streams a plane when :func:`stream_mode` says so: tiled processors when the run is
tiled (``tile`` asked for, or :func:`~napari_restore._tiles.needs_tiling`), LB-CLAHE when the
working plane exceeds :data:`STRIP_PLANE_BYTES`. Both are functions of the shape, dtype and
processor only, and streaming never changes a result, so outputs do not depend on the machine.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import _tiles
from ._arrays import (
    Cancelled,
    CancelLike,
    _back,
    _is_cancelled,
    _native_plane,
    _working_dtype,
    contiguous,
    to_working,
    value_scale,
    working_params,
)
from .batch_io import Writer, check_input, input_kind, temp_path

__all__ = ["STRIP_PLANE_BYTES", "WHOLE_BYTES", "StreamWriter", "iter_stream", "open_array",
           "stream_file", "stream_mode"]

#: LB-CLAHE streams a plane in strips when its float32 working copy exceeds this (4096²).
STRIP_PLANE_BYTES = 64 << 20
#: An automatic parameter that needs the whole plane (σ) reads it whole up to this working size.
WHOLE_BYTES = 512 << 20
#: Chunk side of streamed Zarr outputs, tile side of streamed TIFF outputs.
OUT_CHUNK = 1024
TIFF_TILE = 256

Block = tuple[tuple[int, ...], int, np.ndarray]  # (plane index, first row, rows)


# -- lazy inputs ---------------------------------------------------------------------------
def open_array(path: str | Path) -> Any:
    """A lazily indexed array over ``path`` (reads only what a slice asks for).

    Zarr: the array itself (the first array of a group); TIFF and OME-TIFF: the first series
    through tifffile's Zarr store (tiles or strips read on demand); NPY: a memory map.
    """
    import zarr

    path = Path(path)
    kind = check_input(path)
    if kind == "zarr":
        node = zarr.open(str(path), mode="r")
        if not hasattr(node, "shape"):
            keys = sorted(node.array_keys())
            node = node[keys[0]]
        return node
    if kind == "tiff":
        import tifffile

        store = tifffile.imread(path, aszarr=True)
        node = zarr.open(store, mode="r")
        if not hasattr(node, "shape"):  # a pyramid: level 0
            node = node[min(node.array_keys())]
        return node
    if kind == "npy":
        return np.load(path, mmap_mode="r", allow_pickle=False)
    raise ValueError(f"{path.name}: {kind} inputs are read whole; huge planes need TIFF, Zarr or NPY")


# -- when to stream --------------------------------------------------------------------------
def stream_mode(spec: Any, params: dict[str, Any], shape: tuple[int, ...], dtype: Any,
                channel_axis: int | None = None) -> str | None:
    """"tiles", "strips" or None (the ordinary whole-plane path) for a greyscale run.

    Tiled processors stream when the run is tiled: ``params["tile"]`` is "auto" or a size,
    or the plane :func:`~napari_restore._tiles.needs_tiling`. LB-CLAHE streams in strips when
    one float32 working plane exceeds :data:`STRIP_PLANE_BYTES`. Colour runs and
    multi-output processors are not streamed.
    """
    if channel_axis is not None or len(shape) < 2 or len(spec.outputs) != 1:
        return None
    plane = tuple(int(s) for s in shape[-2:])
    if spec.input_kind == "volume3d":
        return None
    if spec.name == "lb_clahe":
        return "strips" if 4 * math.prod(plane) > STRIP_PLANE_BYTES else None
    if spec.footprint is None:
        return None
    tile = _tiles.check_tile(params.get("tile"))
    if tile != "off":
        return "tiles"
    values = spec.validate_params({k: v for k, v in params.items() if k != "tile"})
    return "tiles" if _tiles.needs_tiling(spec, plane, dtype, values) else None


# -- the streamed run --------------------------------------------------------------------------
class _Source:
    """Reads rows/windows of one plane of a lazy array and converts them like the boundary."""

    def __init__(self, arr: Any, idx: tuple[int, ...], scale: Any, work_dtype: Any,
                 native: bool) -> None:
        self.arr, self.idx, self.scale = arr, idx, scale
        self.work_dtype, self.native = work_dtype, native
        self.shape = tuple(int(s) for s in arr.shape[len(idx):])

    def raw(self, rs: slice, cs: slice = slice(None)) -> np.ndarray:
        return np.asarray(self.arr[self.idx + (rs, cs)])

    def work(self, rs: slice, cs: slice = slice(None)) -> np.ndarray:
        part = self.raw(rs, cs)
        return _native_plane(part) if self.native else to_working(part, self.scale, self.work_dtype)


class _LazyPlane:
    """The working plane as ``_tiles.plane_params`` sees it, read only where it is sliced
    (TV's iteration count reads a central crop; an explicit σ reads nothing)."""

    def __init__(self, src: _Source, dtype: np.dtype) -> None:
        self.src, self.shape, self.ndim, self.dtype = src, src.shape, 2, dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        rs, cs = key if isinstance(key, tuple) else (key, slice(None))
        return self.src.work(rs, cs)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise _NeedsWhole


class _NeedsWhole(Exception):
    pass


def _prepare(spec: Any, arr: Any, params: dict[str, Any], value_range: Any) -> tuple[Any, ...]:
    """Validated, prepared, working-unit parameters and the value scale (as iter_apply)."""
    values = spec.check_params(arr, {k: v for k, v in params.items()
                                     if k != "tile" or any(p.name == "tile" for p in spec.params)})
    tile = values.pop("tile", "off")
    nm = values.get("noise_model")
    if isinstance(nm, str) and nm.startswith("poisson-gaussian"):
        raise ValueError("noise_model='poisson-gaussian' is not streamed on huge planes yet; "
                         "use 'white' with sigma, or a smaller field of view")
    run = spec.prepare(dict(values), arr) if spec.prepare is not None else dict(values)
    units = {**spec.units, **dict(spec.prepared_units)}
    if spec.arrays:
        run = {**run, **{name: value for name, value, _ in spec.arrays}}
        units.update({name: power for name, _, power in spec.arrays})
    scale = value_scale(arr, value_range, name=spec.name, offset=spec.offset,
                        detect_bits=spec.detect_bits)
    kwargs = working_params(run, units, scale, spec.bounds)
    return values, tile, kwargs, units, scale


def iter_stream(spec: Any, arr: Any, params: dict[str, Any], *, value_range: Any = None,
                strip: int | None = None, cancel: CancelLike = None, workers: int | None = None,
                resolved: dict[str, Any] | None = None,
                mode: str | None = None) -> Generator[float | Block, None, None]:
    """Run ``spec`` over the greyscale planes of a lazy array ``arr`` (``(..., H, W)``).

    Yields the fraction done (floats) and result blocks ``(plane index, r0, rows)`` in the
    input's dtype, in order. ``params`` are the user's (``tile`` among them for a tiled run);
    ``resolved`` is filled as in :meth:`ProcessorSpec.iter_apply`. ``mode`` is "tiles" or
    "strips" (default: :func:`stream_mode`, else "tiles" for a tileable processor).
    """
    from ._arrays import check_cancel

    check_cancel(cancel)
    if mode is None:
        mode = stream_mode(spec, params, tuple(arr.shape), arr.dtype) or (
            "strips" if spec.name == "lb_clahe" else "tiles")
    _values, tile, kwargs, units, scale = _prepare(spec, arr, params, value_range)
    if mode == "tiles" and spec.footprint is None:
        raise ValueError(f"{spec.name} cannot run in tiles")
    if mode == "tiles" and tile == "off":
        tile = "auto"
    native = scale.dtype in {np.dtype(d) for d in spec.native_dtypes}
    wd = _working_dtype(scale.dtype, spec.work_dtype)
    lead = tuple(int(s) for s in arr.shape[:-2])
    total = math.prod(lead)
    found: dict[str, Any] = {}
    for i, idx in enumerate(np.ndindex(*lead)):
        src = _Source(arr, tuple(int(k) for k in idx), scale, spec.work_dtype, native)
        run = (_tiled_plane if mode == "tiles" else _strips_plane)(
            spec, src, kwargs, tile, wd, strip, cancel, workers, found)
        for item in run:
            if isinstance(item, tuple):
                yield item
            else:
                yield (i + float(item)) / total
    if resolved is not None:
        for k, v in found.items():
            resolved[k] = scale.param_from_working(v, units.get(k, 0)) \
                if isinstance(v, int | float) and not isinstance(v, bool) else v


def _whole_params(spec: Any, src: _Source, kwargs: dict[str, Any], window: tuple[int, int],
                  wd: np.dtype) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        return _tiles.plane_params(spec, _LazyPlane(src, wd), kwargs, window)
    except _NeedsWhole:
        pass
    need = math.prod(src.shape) * wd.itemsize
    if need > WHOLE_BYTES:
        raise ValueError(
            f"{spec.name}: an automatic parameter (sigma on auto) is measured on the whole "
            f"plane, and a {src.shape[0]}x{src.shape[1]} plane needs {need / 2**30:.1f} GiB "
            f"for that (more than {WHOLE_BYTES / 2**30:g} GiB); give sigma (in the image's "
            "units) for a plane this large")
    return _tiles.plane_params(spec, src.work(slice(None)), kwargs, window)


def _in_daemon() -> bool:
    """A daemonic process (the batch's file worker) cannot start worker processes."""
    return bool(multiprocessing.current_process().daemon)


def _run_windows(job: Any, items: list[np.ndarray], cancel: CancelLike,
                 workers: int | None) -> Generator[float, None, list[Any]]:
    from ._workers import run_jobs

    if not _in_daemon():
        return (yield from run_jobs(job, items, cancel=cancel, workers=workers))
    out = []  # the same single-threaded job, one window after the other, in this process
    for k, item in enumerate(items):
        if _is_cancelled(cancel):
            raise Cancelled("stopped")
        gen = job(item)
        while True:
            try:
                sub = next(gen)
            except StopIteration as stop:
                out.append(stop.value)
                break
            if isinstance(sub, int | float):
                yield (k + float(sub)) / len(items)
        yield (k + 1) / len(items)
    return out


def _tiled_plane(spec: Any, src: _Source, kwargs: dict[str, Any], tile: Any, wd: np.dtype,
                 strip: int | None, cancel: CancelLike, workers: int | None,
                 found: dict[str, Any]) -> Iterator[float | Block]:
    """One plane, one row of windows at a time (see the module docstring)."""
    from ._workers import PlaneJob

    h, w = src.shape
    halo = _tiles.footprint(spec, kwargs, src.shape)
    report: dict[str, Any] = {}
    grid = _tiles.grid_for(tile, (h, w), halo, name=spec.name, report=report)
    if grid is None:  # one window is the plane: it is small; run it whole
        grid = _tiles.TileGrid((h, w), (h, w), int(halo), ((0,), (0,)))
    found.setdefault("tile", report.get("tile", grid.window))
    found["tiles"] = grid.count
    run, res = _whole_params(spec, src, kwargs, grid.window, wd)
    found.update(res)
    job = PlaneJob(spec.plane_func, tuple(sorted(run.items())), False)
    wy, wx = grid.weights()
    (rstarts, cstarts), (wh, ww) = grid.starts, grid.window
    acc = None
    acc0 = 0  # first row acc holds
    ref_dtype = None
    n_rows = len(rstarts)
    for iy, r0 in enumerate(rstarts):
        band = src.work(slice(r0, r0 + wh))
        items = [contiguous(band[:, c0:c0 + ww]) for c0 in cstarts]
        del band
        results = yield from _scaled(_run_windows(job, items, cancel, workers), iy, n_rows)
        del items
        if acc is None:
            acc = np.zeros((wh, w), np.float64)
            acc0 = r0
        else:  # extend the band down to this row of windows
            keep = acc[r0 - acc0:]
            acc = np.zeros((r0 + wh - r0, w), np.float64)
            acc[:keep.shape[0]] = keep
            acc0 = r0
        for ix, c0 in enumerate(cstarts):
            out = np.asarray(results[ix])
            if ref_dtype is None:
                ref_dtype = out.dtype
            wgt = np.multiply.outer(wy[iy], wx[ix])
            acc[:, c0:c0 + ww] += np.asarray(out, np.float64) * wgt
        results = None
        done_to = rstarts[iy + 1] if iy + 1 < n_rows else h
        rows = acc[:done_to - acc0]
        o = rows.astype(ref_dtype if ref_dtype.kind == "f" else src.scale.dtype, copy=False)
        raw = src.raw(slice(acc0, done_to)) if src.native else None
        yield src.idx, acc0, _back(o, src.scale, False, src.native, raw if raw is not None else o)
        acc = acc[done_to - acc0:]
        acc0 = done_to
        yield (iy + 1) / n_rows


def _scaled(gen: Generator[float, None, Any], k: int, n: int) -> Generator[float, None, Any]:
    while True:
        try:
            f = next(gen)
        except StopIteration as stop:
            return stop.value
        yield (k + float(f)) / n


def _strips_plane(spec: Any, src: _Source, kwargs: dict[str, Any], tile: Any, wd: np.dtype,
                  strip: int | None, cancel: CancelLike, workers: int | None,
                  found: dict[str, Any]) -> Iterator[float | Block]:
    """One plane of LB-CLAHE in strips (:mod:`.processors.clahe_strips`)."""
    from .processors import clahe_strips

    if spec.name != "lb_clahe":
        raise ValueError(f"{spec.name} does not run in strips")
    h, w = src.shape

    def read(r0: int, r1: int) -> np.ndarray:
        return src.work(slice(r0, r1))

    clip, grid = kwargs["clip_limit"], kwargs["tile_grid"]
    if clip is None or grid is None:
        p_clip, p_grid, note = clahe_strips.predict_streamed(read, (h, w), strip=strip)
        if clip is None:
            clip = found["clip_limit"] = p_clip
        if grid is None:
            grid = found["tile_grid"] = tuple(p_grid)
        found.update(note)
    for item in clahe_strips.clahe_strips(
            read, (h, w), clip_limit=clip, tile_grid=tuple(grid), refine=kwargs["refine"],
            refine_radius=kwargs["refine_radius"], refine_eps=kwargs["refine_eps"],
            strip=strip, cancel=cancel):
        if isinstance(item, tuple):
            r0, rows = item
            raw = src.raw(slice(r0, r0 + rows.shape[0])) if src.native else rows
            yield src.idx, r0, _back(rows, src.scale, False, src.native, raw)
        else:
            yield item


# -- streamed outputs ----------------------------------------------------------------------------
class StreamWriter(Writer):
    """A :class:`~napari_restore.batch_io.Writer` fed row blocks of planes.

    Zarr outputs are chunked in :data:`OUT_CHUNK`² pieces (a block rewrites only the
    chunks it touches), NPY outputs are memory-mapped, TIFF outputs are tiled
    (:data:`TIFF_TILE`²) and written as the rows arrive. Everything goes to the temporary
    name; :meth:`commit` renames it only after every row of every plane was written.
    """

    def __init__(self, final: Path, shape: tuple[int, ...], dtype: Any,
                 meta: dict[str, Any]) -> None:
        self.final, self.shape, self.dtype = final, tuple(shape), np.dtype(dtype)
        self.plane_ndim, self.meta = 2, meta
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(final)
        self.kind = input_kind(final)
        self._planes, self._target, self._count = [], None, 0
        if self.kind == "zarr":
            import zarr

            chunks = (1,) * (len(shape) - 2) + tuple(min(s, OUT_CHUNK) for s in shape[-2:])
            self._target = zarr.open_array(str(self.tmp), mode="w", shape=self.shape,
                                           dtype=self.dtype, chunks=chunks)
            self._target.attrs["napari_restore"] = meta
        elif self.kind == "npy":
            self._target = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=self.dtype,
                                                     shape=self.shape)
        elif self.kind != "tiff":
            raise ValueError(f"{final.name}: huge planes are written as TIFF, Zarr or NPY")

    def write_blocks(self, blocks: Iterator[Block]) -> None:
        h = self.shape[-1 - 1]
        if self.kind == "tiff":
            self._tiff_tiles(blocks)
            return
        for idx, r0, rows in blocks:
            self._target[tuple(idx) + (slice(r0, r0 + rows.shape[0]),)] = rows
            if r0 + rows.shape[0] == h:
                self._count += 1

    def _tiff_tiles(self, blocks: Iterator[Block]) -> None:
        import tifffile

        h, w = self.shape[-2:]
        t = TIFF_TILE

        def tiles() -> Iterator[np.ndarray]:
            buf = np.zeros((t, w), self.dtype)
            fill = 0
            for _idx, r0, rows in blocks:
                pos = 0
                while pos < rows.shape[0]:
                    n = min(t - fill, rows.shape[0] - pos)
                    buf[fill:fill + n] = rows[pos:pos + n]
                    fill += n
                    pos += n
                    if fill == t or r0 + pos == h:
                        if r0 + pos == h:  # counted first: the writer stops pulling
                            self._count += 1  # after the plane's last tile
                        for c0 in range(0, w, t):
                            tile = np.zeros((t, t), self.dtype)
                            part = buf[:fill, c0:c0 + t]
                            tile[:part.shape[0], :part.shape[1]] = part
                            yield tile
                        fill = 0
                        buf[:] = 0

        big = math.prod(self.shape) * self.dtype.itemsize > 2**31 - 2**25
        self._target = tifffile.TiffWriter(self.tmp, bigtiff=big)
        self._target.write(tiles(), shape=self.shape, dtype=self.dtype, tile=(t, t),
                           photometric="minisblack", metadata={"napari_restore": self.meta})


def stream_file(recipe: Any, src: Path, shape: tuple[int, ...], dtype: Any,
                finals: list[Path], writers: list[Any],
                progress: Callable[[int, int, str], None] | None) -> dict[str, Any] | None:
    """The batch's path for a huge plane: None when :func:`stream_mode` says no.

    Otherwise streams ``recipe`` from ``src`` into a :class:`StreamWriter` (appended to
    ``writers``, so the caller aborts it on failure and commits it on success) and returns
    the run's ``info`` (as :func:`napari_restore.batch.plan` does).
    """
    from ._versions import versions
    from .processors import get_processor

    spec = get_processor(recipe.processor)
    params = dict(recipe.params)
    mode = stream_mode(spec, params, tuple(shape), dtype, recipe.channel_axis)
    if mode is None:
        return None
    arr = open_array(src)
    value_range = None
    from ._arrays import needs_whole_range

    if needs_whole_range(arr.dtype):
        from ._arrays import finite_range

        value_range = finite_range(arr, src.name)
    import secrets

    meta = {"recipe": recipe.to_dict(), "input": str(src), "versions": versions(lite=True),
            "value_range": value_range, "run": secrets.token_hex(8), "streamed": mode}
    writer = StreamWriter(finals[0], tuple(arr.shape), arr.dtype, meta)
    writers.append(writer)
    resolved: dict[str, Any] = {}
    steps = 1000

    def blocks() -> Iterator[Block]:
        last = -1
        for item in iter_stream(spec, arr, params, value_range=value_range, mode=mode,
                                resolved=resolved):
            if isinstance(item, tuple):
                yield item
            elif progress is not None and int(item * steps) > last:
                last = int(item * steps)
                progress(last, steps, src.name)

    writer.write_blocks(blocks())
    meta["resolved"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in resolved.items()}
    lead = arr.ndim - 2
    return {"lead": lead, "unit": 2, "n_out": 1, "out_dtypes": [np.dtype(arr.dtype)],
            "outputs": [spec.outputs[0].name], "channel_axis": None, "shape": tuple(arr.shape),
            "value_range": value_range, "meta": meta}
