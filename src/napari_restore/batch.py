"""Replay a recipe over files and stacks with dask: locally, or on a dask.distributed cluster.

Each input is read lazily and re-chunked so that one chunk holds exactly one unit of work
(a plane, a colour plane, or a volume for 3-D processors — no overlap is needed, since no
processor looks across that unit). The recipe runs per chunk through ``map_blocks`` — the
same :func:`~napari_restore.recipes.apply_recipe` the panels use — and results are computed a
few chunks at a time and written as they arrive, so peak memory is bounded by chunks, not by
the stack. Float stacks are scaled by the whole stack's range (one extra streamed pass), so the
output is identical to an in-memory run.

Python::

    from napari_restore import batch
    report = batch.apply("recipe.json", ["a.tif", "b.zarr"], "out/", workers=2)

Command line: ``napari-restore apply RECIPE INPUT... -o OUTDIR [--workers N]
[--scheduler ADDRESS] [--chunks N] [--overwrite]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .batch_io import Writer, clean_stale_partials, open_lazy, output_path
from .recipes import Recipe
from .processors.registry import get_processor


@dataclass
class FileResult:
    input: str
    outputs: list[str] = field(default_factory=list)
    status: str = "done"  # done | skipped | failed
    error: str = ""
    planes: int = 0
    seconds: float = 0.0


@dataclass
class BatchReport:
    files: list[FileResult] = field(default_factory=list)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        counts = {s: sum(f.status == s for f in self.files) for s in ("done", "skipped", "failed")}
        lines = [f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"]
        lines += [f"FAILED {f.input}: {f.error}" for f in self.failed]
        return "\n".join(lines)


def _process_block(block: np.ndarray, recipe: dict, value_range: tuple | None,
                   n_out: int, out_dtype: str) -> np.ndarray:
    """One chunk through the recipe (runs on a dask worker: imports happen here)."""
    from napari_restore.recipes import apply_recipe

    res = apply_recipe(recipe, block, value_range=value_range)
    if n_out == 1:
        return res
    return np.stack([np.asarray(r, dtype=out_dtype) for r in res])


def _unit_ndim(recipe: Recipe) -> int:
    spec = get_processor(recipe.processor)
    return spec.plane_ndim + (recipe.channel_axis is not None)


def plan(recipe: Recipe, arr: Any, planes_per_chunk: int = 1) -> tuple[Any, dict[str, Any]]:
    """The lazy result of ``recipe`` over dask array ``arr`` and what is needed to write it."""
    import dask.array as da

    spec = get_processor(recipe.processor)
    cax = recipe.channel_axis
    if cax is not None:
        if not -arr.ndim <= cax < arr.ndim:
            raise ValueError(f"recipe channel_axis={cax} is out of range for input with {arr.ndim} dims")
        arr = da.moveaxis(arr, cax, -1)
    unit = _unit_ndim(recipe)
    if arr.ndim < unit:
        raise ValueError(f"input has {arr.ndim} dimensions; {spec.name} needs at least {unit}")
    lead = arr.ndim - unit
    chunks = tuple([1] * max(lead - 1, 0) + ([planes_per_chunk] if lead else []) + [-1] * unit)
    arr = arr.rechunk(chunks)
    value_range = None
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = da.compute(arr.min(), arr.max())
        value_range = (float(lo), float(hi))
    in_dtype = np.dtype(arr.dtype)
    out_dtypes = [in_dtype if o.kind == "image" else (in_dtype if in_dtype.kind == "f" else np.dtype(np.float32))
                  for o in spec.outputs]
    n_out = len(spec.outputs)
    common = np.result_type(*out_dtypes)
    rdict = {**recipe.to_dict(), "channel_axis": -1 if cax is not None else None}
    if n_out == 1:
        result = arr.map_blocks(_process_block, rdict, value_range, 1, str(common), dtype=common)
    else:
        result = arr.map_blocks(_process_block, rdict, value_range, n_out, str(common),
                                dtype=common, new_axis=0,
                                chunks=((n_out,), *arr.chunks))
    info = {"lead": lead, "unit": unit, "n_out": n_out, "out_dtypes": out_dtypes,
            "outputs": [o.name for o in spec.outputs], "channel_axis": cax,
            "shape": arr.shape, "value_range": value_range}
    return result, info


def _blocks(result: Any, client: Any, group: int) -> Iterator[np.ndarray]:
    """Compute chunks ``group`` at a time, in C order of the leading axes, and yield them."""
    import dask

    keys = list(np.ndindex(*result.numblocks))
    for start in range(0, len(keys), group):
        batch = [result.blocks[k] for k in keys[start:start + group]]
        if client is not None:
            computed = client.compute(batch, sync=True)
        else:
            computed = dask.compute(*batch, scheduler="threads")
        yield from computed


def apply(
    recipe: Recipe | dict | str | Path,
    inputs: Sequence[str | Path],
    outdir: str | Path,
    *,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    planes_per_chunk: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> BatchReport:
    """Apply ``recipe`` to every input, writing one output per input (per output of the recipe).

    Parameters
    ----------
    recipe : Recipe, dict or JSON path
    inputs : paths
        TIFF (incl. multi-page and OME-TIFF), Zarr, NPY, PNG/JPEG.
    outdir : path
        Created if missing; an existing *file* there is an error.
    client : dask.distributed.Client, optional
        Run on this cluster. Otherwise ``scheduler`` (an address such as
        ``"tcp://host:8786"``) connects to one, ``workers=N`` starts a ``LocalCluster`` with N
        worker processes, and with neither, dask's local threads are used.
    planes_per_chunk : int
        Planes per dask chunk along the first leading axis.
    overwrite : bool
        Replace existing outputs (else they are skipped, so a re-run completes the rest).
    progress : callable, optional
        ``progress(done, total, input_name)`` after every written chunk.

    Returns
    -------
    BatchReport
        Per input: outputs, status (done / skipped / failed) and the error.
    """
    if not isinstance(recipe, Recipe):
        recipe = Recipe.load(recipe) if isinstance(recipe, str | Path) else Recipe.from_dict(recipe)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f"outdir {outdir} exists and is not a directory")
    if planes_per_chunk < 1:
        raise ValueError(f"planes_per_chunk must be >= 1; got {planes_per_chunk}")
    outdir.mkdir(parents=True, exist_ok=True)
    clean_stale_partials(outdir)
    own = None
    if client is None and (scheduler or workers):
        client, own = _make_client(scheduler, workers)
    try:
        group = max(2, 2 * _n_workers(client)) if client is not None else 4
        report = BatchReport()
        for src in inputs:
            report.files.append(_one(recipe, Path(src), outdir, client, group, planes_per_chunk,
                                     overwrite, progress))
        return report
    finally:
        if own is not None:
            own.close()
            client.close()


def _n_workers(client: Any) -> int:
    try:
        return max(1, len(client.scheduler_info().get("workers", {})))
    except Exception:  # pragma: no cover
        return 1


def _make_client(scheduler: str | None, workers: int | None) -> tuple[Any, Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - extra not installed
        raise ImportError("--workers/--scheduler need `pip install napari-restore[distributed]`") from exc
    if scheduler:
        return Client(scheduler), None
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    return Client(cluster), cluster


def _meta(recipe: Recipe, src: Path, info: dict) -> dict[str, Any]:
    from .cli import versions

    return {"recipe": recipe.to_dict(), "input": str(src), "versions": versions(lite=True),
            "value_range": info["value_range"]}


def _one(recipe: Recipe, src: Path, outdir: Path, client: Any, group: int, ppc: int,
         overwrite: bool, progress: Callable | None) -> FileResult:
    res = FileResult(str(src))
    t0 = time.perf_counter()
    writers: list[Writer] = []
    try:
        arr = open_lazy(src)
        result, info = plan(recipe, arr, ppc)
        names = info["outputs"] if info["n_out"] > 1 else [""]
        finals = [output_path(src, outdir, n) for n in names]
        if all(f.exists() for f in finals) and not overwrite:
            res.status, res.outputs = "skipped", [str(f) for f in finals]
            return res
        meta = _meta(recipe, src, info)
        # the output shape in the input's axis order
        shape = tuple(arr.shape)
        total = int(np.prod(result.numblocks))
        unit = info["unit"]
        for f, dt in zip(finals, info["out_dtypes"], strict=True):
            writers.append(Writer(f, _moved_shape(shape, info["channel_axis"]), dt, unit, meta))

        def stream() -> Iterator[Any]:
            for k, block in enumerate(_blocks(result, client, group)):
                if progress is not None:
                    progress(k + 1, total, src.name)
                yield block

        _fan_out(stream(), writers, ppc, info)
        out_paths = []
        for w in writers:
            out_paths.append(w.commit(overwrite=overwrite))
        for p in out_paths:
            _sidecar(p, meta, shape, time.perf_counter() - t0)
        res.outputs = [str(p) for p in out_paths]
        res.planes = int(np.prod(info["shape"][: info["lead"]]))  # units of work written
    except Exception as exc:  # one bad file fails alone
        for w in writers:
            w.abort()
        res.status, res.error = "failed", f"{type(exc).__name__}: {exc}"
    except BaseException:  # interrupted (SIGTERM/Ctrl-C): leave no partial file behind
        for w in writers:
            w.abort()
        raise
    res.seconds = time.perf_counter() - t0
    return res


_END = object()


def _fan_out(blocks: Iterator[np.ndarray], writers: list[Writer], ppc: int, info: dict) -> None:
    """Feed every computed chunk to each writer (one thread each, bounded queues).

    With several outputs (e.g. denoised / grain / regrained) a chunk carries all of them
    stacked on a new first axis; each writer gets its part, and memory stays bounded by a
    couple of chunks per writer.
    """
    import queue
    import threading

    if len(writers) == 1:
        writers[0].write_stream(_planes(blocks, ppc, info))
        return
    queues: list[queue.Queue] = [queue.Queue(maxsize=2) for _ in writers]
    errors: list[BaseException] = []

    def drain(q: queue.Queue) -> Iterator[np.ndarray]:
        while (item := q.get()) is not _END:
            yield item

    def run(w: Writer, q: queue.Queue) -> None:
        try:
            w.write_stream(_planes(drain(q), ppc, info))
        except BaseException as exc:  # reported below, in the calling thread
            errors.append(exc)
            while q.get() is not _END:  # keep the producer from blocking
                pass

    threads = [threading.Thread(target=run, args=(w, q), daemon=True)
               for w, q in zip(writers, queues, strict=True)]
    for t in threads:
        t.start()
    try:
        for block in blocks:
            if errors:
                break
            for i, q in enumerate(queues):
                q.put(block[i])
    finally:
        for q in queues:
            q.put(_END)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


def _moved_shape(shape: tuple[int, ...], cax: int | None) -> tuple[int, ...]:
    if cax is None:
        return shape
    s = list(shape)
    c = s.pop(cax)
    return (*s, c)


def _planes(blocks: Iterator[np.ndarray], ppc: int, info: dict) -> Iterator[np.ndarray]:
    """Split chunks of ``ppc`` planes into single planes for the writer."""
    for block in blocks:
        if info["lead"] == 0:
            yield block
            continue
        lead_block = block.reshape((-1, *block.shape[block.ndim - info["unit"]:]))
        yield from lead_block


def _sidecar(path: Path, meta: dict, shape: tuple, seconds: float) -> Path:
    side = path.with_name(path.name + ".json")
    tmp = side.with_name(f".{side.name}.partial")
    tmp.write_text(json.dumps({**meta, "output": str(path), "shape": list(shape),
                               "seconds": round(seconds, 3)}, indent=2))
    tmp.replace(side)
    return side
