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

Nothing is destroyed or silently skipped (see :mod:`napari_restore.batch_io`): output names
mirror the inputs' relative paths and a remaining collision, or an output that would be an
input, refuses the batch up front; ``overwrite`` replaces only outputs this tool wrote; an
existing output counts as "skipped" only when it was written from the same input with the same
recipe. With ``isolate=True`` (the command line's default) each file is processed in a worker
process, so a native crash in a library fails that file alone.
"""

from __future__ import annotations

import importlib
import numbers
import secrets
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .batch_io import (
    Writer,
    check_input,
    check_replaceable,
    clean_stale_partials,
    open_lazy,
    output_state,
    plan_outputs,
    recipe_key,
    source_identity,
)
from . import _stream
from ._arrays import needs_whole_range
from .recipes import Recipe
from .processors.registry import get_processor


@dataclass
class FileResult:
    input: str
    outputs: list[str] = field(default_factory=list)
    status: str = "done"  # done | skipped | failed
    error: str = ""
    note: str = ""  # why it was skipped
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
    if needs_whole_range(arr.dtype):  # every chunk is scaled as the whole file
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


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r:.40}")
    return int(value)


def _as_recipe(recipe: Recipe | dict | str | Path) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str | Path):
        return Recipe.load(recipe)
    return Recipe.from_dict(recipe)


def _make_outdir(outdir: Path) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f"outdir {outdir} exists and is not a directory")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in outdir.parents if p.exists() and not p.is_dir()), outdir)
        raise ValueError(f"outdir {outdir} cannot be created: {blocker} is a file, "
                         "not a directory") from None
    except OSError as exc:
        raise ValueError(f"outdir {outdir} cannot be created ({exc.strerror or exc})") from None


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
    isolate: bool = False,
) -> BatchReport:
    """Apply ``recipe`` to every input, writing one output per input (per output of the recipe).

    Parameters
    ----------
    recipe : Recipe, dict or JSON path
    inputs : paths
        TIFF (incl. multi-page and OME-TIFF), Zarr, NPY, PNG/JPEG.
    outdir : path
        Created if missing; an existing *file* there is an error. Outputs mirror the inputs'
        paths relative to the deepest folder holding them all (inputs from one folder give
        a flat ``outdir``). Two inputs that would share an output, or an output that would be
        an input, raise ``ValueError`` before anything is written.
    client : dask.distributed.Client, optional
        Run on this cluster. Otherwise ``scheduler`` (an address such as
        ``"tcp://host:8786"``) connects to one, ``workers=N`` (N >= 1) starts a
        ``LocalCluster`` with N worker processes, and with neither, dask's local threads are
        used.
    planes_per_chunk : int
        Planes per dask chunk along the first leading axis (>= 1).
    overwrite : bool
        Replace existing outputs that this tool wrote (recognised by their sidecar
        ``NAME.json``). Without it, an output already written from the same input with the
        same recipe is skipped (so a re-run completes the rest) and any other existing
        output fails that file. A directory, a link or a file this tool did not write is
        never replaced.
    progress : callable, optional
        ``progress(done, total, input_name)`` after every written chunk.
    isolate : bool
        Process each file in a worker process (started once, replaced after a crash), so a
        native crash (segfault) in a library fails that file alone. Without a ``client``
        only; the processor must be registered by an importable module.

    Returns
    -------
    BatchReport
        Per input: outputs, status (done / skipped / failed), the error or why it was skipped.
    """
    recipe = _as_recipe(recipe)
    if workers is not None:
        workers = _count(workers, "workers")
    planes_per_chunk = _count(planes_per_chunk, "planes_per_chunk")
    spec = get_processor(recipe.processor)
    outdir = Path(outdir)
    srcs = [Path(s) for s in inputs]
    names = [o.name for o in spec.outputs] if len(spec.outputs) > 1 else [""]
    plans = plan_outputs(srcs, outdir, names)  # refuses collisions before anything is written
    _make_outdir(outdir)
    for folder in {f.parent for plan in plans for f in plan or ()}:
        if folder.is_dir():
            clean_stale_partials(folder)
    own = None
    if client is None and (scheduler or workers):
        client, own = _make_client(scheduler, workers)
    worker: _FileWorker | None = None
    modules = _modules(spec) if isolate and client is None else None
    try:
        group = max(2, 2 * _n_workers(client)) if client is not None else 4
        report = BatchReport()
        for src, finals in zip(srcs, plans, strict=True):
            if modules is None:
                report.files.append(_one(recipe, src, finals, client, group,
                                         planes_per_chunk, overwrite, progress))
                continue
            if worker is None:
                worker = _FileWorker()
            job = {"modules": modules, "recipe": recipe, "src": src, "finals": finals,
                   "ppc": planes_per_chunk, "overwrite": overwrite}
            try:
                report.files.append(worker.run(job, progress))
            except _WorkerDied as died:
                worker = None
                report.files.append(FileResult(str(src), status="failed", error=str(died)))
            except BaseException:  # interrupted: stop the worker, leave no partial file
                worker.stop()
                worker = None
                raise
            finally:
                if worker is None:  # the worker ended: remove what it left
                    for folder in {f.parent for f in finals or ()}:
                        clean_stale_partials(folder)
        return report
    finally:
        if worker is not None:
            worker.close()
        if own is not None:
            own.close()
            client.close()
        for folder in {f.parent for plan in plans for f in plan or ()}:
            if folder.is_dir():  # what processes that died meanwhile left behind
                clean_stale_partials(folder)


def _modules(spec: Any) -> list[str] | None:
    """Modules a worker process imports so that ``spec`` is registered there (``None``: the
    processor was registered by ``__main__`` and cannot be found by a worker)."""
    mods = set()
    for f in (spec.plane_func, getattr(spec.plane_func, "func", None), spec.prepare, spec.check):
        mod = getattr(f, "__module__", None)
        if mod:
            mods.add(mod)
    if "__main__" in mods or "__mp_main__" in mods:
        return None
    return sorted(m for m in mods if not m.startswith("napari_restore."))


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
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    return Client(cluster), cluster


def _meta(recipe: Recipe, src: Path, info: dict, run: str) -> dict[str, Any]:
    from ._versions import versions

    return {"recipe": recipe.to_dict(), "input": str(src), "versions": versions(lite=True),
            "value_range": info["value_range"], "run": run}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 500:
        text = text[:500] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one(recipe: Recipe, src: Path, finals: list[Path] | None, client: Any, group: int,
         ppc: int, overwrite: bool, progress: Callable | None) -> FileResult:
    res = FileResult(str(src))
    t0 = time.perf_counter()
    writers: list[Writer] = []
    try:
        check_input(src)  # unsupported, missing, FIFO, device, empty: fails before any read
        if finals is None:  # pragma: no cover - check_input refused the unsupported input
            raise ValueError(f"unsupported input {src}")
        source = source_identity(src)
        rkey = recipe_key(recipe.to_dict())
        states = [output_state(f, source, rkey) for f in finals]
        for state in states:
            check_replaceable(state, overwrite)
        if not overwrite and all(s.kind == "current" for s in states):
            res.status, res.outputs, res.note = "skipped", [str(f) for f in finals], states[0].reason
            return res
        arr = open_lazy(src)
        info = _stream.stream_file(recipe, src, tuple(arr.shape), arr.dtype, finals, writers,
                                   progress)  # a huge plane: tiles or strips, never whole
        if info is not None:
            meta, shape = info["meta"], tuple(arr.shape)
        else:
            result, info = plan(recipe, arr, ppc)
            run = secrets.token_hex(8)
            meta = _meta(recipe, src, info, run)
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
        kept = []
        for w in writers:
            side = {**meta, "shape": list(shape), "seconds": round(time.perf_counter() - t0, 3)}
            if not w.commit(overwrite=overwrite, source=source, sidecar=side):
                kept.append(w.final)
        res.outputs = [str(w.final) for w in writers]
        res.planes = int(np.prod(info["shape"][: info["lead"]]))  # units of work written
        if len(kept) == len(writers):  # a concurrent run wrote the same outputs first
            res.status = "skipped"
            res.note = f"{kept[0]} was written meanwhile by another run from this input with this recipe"
    except Exception as exc:  # one bad file fails alone
        for w in writers:
            w.abort()
        res.status, res.error = "failed", _one_line(exc)
    except BaseException:  # interrupted (SIGTERM/Ctrl-C): leave no partial file behind
        for w in writers:
            w.abort()
        raise
    res.seconds = time.perf_counter() - t0
    return res


# -- one worker process for the files (isolate=True) --------------------------------------
class _WorkerDied(RuntimeError):
    def __init__(self, code: int | None) -> None:
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"was killed by {name}"
            if -code in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE,
                         signal.SIGABRT):
                how += " (a crash inside a library)"
        else:
            how = f"ended unexpectedly (exit code {code}; its error output is above)"
        super().__init__(f"the worker process processing this file {how}; its partial "
                         "outputs were removed and the other files go on")


def _worker_main(conn: Any) -> None:
    """Worker loop: receive a file job, send progress, then its :class:`FileResult`."""

    def stop(signum: int, _frame: Any) -> None:  # unwind: _one removes its partial files
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    conn.send(("ready",))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return

        def progress(done: int, total: int, name: str) -> None:
            conn.send(("progress", done, total, name))

        try:
            for name in job["modules"]:
                importlib.import_module(name)
            res = _one(job["recipe"], job["src"], job["finals"], None, 4, job["ppc"],
                       job["overwrite"], progress)
        except Exception as exc:  # noqa: BLE001 - a module that does not import
            res = FileResult(str(job["src"]), status="failed", error=_one_line(exc))
        try:
            conn.send(("result", res))
        except (EOFError, OSError):  # the parent is gone
            return


class WorkerStartError(RuntimeError):
    """The worker process of ``isolate=True`` could not start (nothing was processed in it)."""


class _FileWorker:
    """A spawned process running :func:`_one` for one file at a time (see ``isolate``)."""

    STOP_S = 10.0  # how long an interrupted worker gets to remove its partial files

    def __init__(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # never fork: the parent may run threads (dask, Qt)
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True,
                                name="napari-restore-batch")
        self.proc.start()
        child.close()
        self.ready = False

    def _started(self) -> None:
        """Wait for the worker's first message; :class:`WorkerStartError` if it died first."""
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            self.stop()
            raise WorkerStartError(
                f"the batch worker process could not start (exit code {self.proc.exitcode}; its "
                "error output is above). From a script, call batch.apply under "
                "`if __name__ == '__main__':`, or pass isolate=False") from None
        if msg != ("ready",):  # pragma: no cover - protocol error
            raise WorkerStartError(f"the batch worker process sent {msg!r:.80} first")
        self.ready = True

    def run(self, job: dict[str, Any], progress: Callable | None) -> FileResult:
        if not self.ready:
            self._started()
        try:
            self.conn.send(job)
        except (EOFError, OSError):
            self.stop()
            raise _WorkerDied(self.proc.exitcode) from None
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.stop()
                raise _WorkerDied(self.proc.exitcode) from None
            if msg[0] == "progress":
                if progress is not None:
                    progress(*msg[1:])
                continue
            return msg[1]

    def stop(self) -> None:
        """Terminate (SIGTERM: the worker removes its partial files), then kill, and reap."""
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(self.STOP_S)
            if self.proc.is_alive():
                self.proc.kill()
        self.proc.join(self.STOP_S)
        self.conn.close()

    def close(self) -> None:
        """Let an idle worker exit on its own (end of the batch)."""
        self.conn.close()
        self.proc.join(self.STOP_S)
        if self.proc.is_alive():
            self.stop()


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
