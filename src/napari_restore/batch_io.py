"""Lazy readers and atomic, streaming writers for the batch runner, and the rules that keep a
batch from destroying or silently skipping data.

Inputs: TIFF (multi-page, OME-TIFF, read lazily through tifffile), Zarr, NPY (memory-mapped),
PNG/JPEG (small: read whole). Anything that is not a regular file (a FIFO, a device), an empty
file and an unreadable one is refused with a ``ValueError`` naming the file. Outputs keep the
input's format where that is lossless (JPEG input gives PNG output) and its dtype.

Naming (:func:`plan_outputs`): outputs mirror the inputs' paths relative to the deepest folder
that holds them all, so inputs from one folder give a flat output folder and ``a/x.tif``,
``b/x.tif`` give ``OUT/a/x.tif``, ``OUT/b/x.tif``. Two inputs that would still share an output
(``pair.png`` and ``pair.jpg``, an input listed twice) and an output that would be an input
refuse the whole batch before anything is written.

Ownership (:func:`output_state`): next to every output a sidecar ``NAME.json`` records the
recipe, the input and the output file's size and modification time. An existing output is
this tool's only while its sidecar says so and the file still matches it; only such outputs
are replaced, and only with ``overwrite``. A directory, a link or anyone else's file at an
output's name is never replaced.

Temporary files: ``.NAME.HOST-PID-TOKEN.partial`` next to the final name, renamed into place
when complete (an interrupted run never leaves a truncated file under a final name). They are
per run and per process: :func:`clean_stale_partials` removes only those of processes on this
host that no longer run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _jsonio

TIFF = (".tif", ".tiff")
IMAGES = (".png", ".jpg", ".jpeg")
PARTIAL = ".partial"
#: ``written_by`` of every sidecar this module writes: what marks an output as ours.
SIDECAR_TAG = "napari-restore batch output"
_EXTS = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".zarr", ".npy", ".png", ".jpeg", ".jpg")
_LABELS = {"tiff": "TIFF", "zarr": "Zarr", "npy": "NPY", "image": "PNG/JPEG"}
_ZARR_META = ("zarr.json", ".zarray", ".zgroup", ".zattrs")
_MAX_PROBLEMS = 5  # naming problems listed in one error


class InputError(ValueError):
    """An input that cannot be read; the message names the file and what is wrong."""


class OutputConflict(FileExistsError):
    """An existing output that this run may not replace (or may replace only with overwrite)."""


def input_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".ome.tif", ".ome.tiff")) or path.suffix.lower() in TIFF:
        return "tiff"
    if path.suffix.lower() == ".zarr" or (path.is_dir() and (path / "zarr.json").exists()):
        return "zarr"
    if path.suffix.lower() == ".npy":
        return "npy"
    if path.suffix.lower() in IMAGES:
        return "image"
    raise ValueError(
        f"unsupported input {path.name!r}: use .tif/.tiff (incl. OME-TIFF), .zarr, .npy, .png or .jpg"
    )


def check_input(path: Path) -> str:
    """The input's kind, after refusing what would hang or mislead a reader.

    ``FileNotFoundError`` for a missing input; ``ValueError`` for a FIFO, a device, a
    directory that is not a Zarr store (or a Zarr "store" that is a file), an empty file and
    a Zarr store whose metadata files are not regular files. Only ``stat`` is used: nothing
    is opened, so nothing blocks.
    """
    kind = input_kind(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"input {path} does not exist") from None
    if kind == "zarr":
        if not stat.S_ISDIR(st.st_mode):
            what = "a file" if stat.S_ISREG(st.st_mode) else _jsonio.file_kind(st.st_mode)
            raise InputError(f"input {path} is {what}; a Zarr store is a folder")
        for name in _ZARR_META:
            if os.path.lexists(path / name):
                _jsonio.check_regular(path / name, "Zarr metadata file")
        return kind
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"input {path} is {_jsonio.file_kind(st.st_mode)}; a regular file is needed")
    if st.st_size == 0:
        raise InputError(f"input {path} is empty (0 bytes)")
    return kind


def _unreadable(path: str | Path, kind: str, exc: BaseException) -> InputError:
    text = " ".join(str(exc).split())
    if kind == "image" and ("backend" in text or "can not handle" in text):
        text = "no decoder recognises its content"  # not imageio's plugin suggestions
    text = text[:200] or type(exc).__name__
    return InputError(f"{Path(path).name}: not a readable {_LABELS[kind]} file ({text})")


def _read_tiff_page(path: str, key: int) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            return tf.series[0].asarray(key=key)
    except Exception as exc:  # a truncated or corrupt page: name the file and the page
        raise InputError(f"{Path(path).name}: page {key} could not be read "
                         f"({' '.join(str(exc).split())[:200]})") from None


def _read_npy_index(path: str, index: tuple[int, ...]) -> np.ndarray:
    try:
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        return np.array(mm[index])
    except Exception as exc:
        raise InputError(f"{Path(path).name}: plane {index} could not be read "
                         f"({' '.join(str(exc).split())[:200]})") from None


def _stack_lazily(reader: Any, path: str, lead: tuple[int, ...], keys: list[Any],
                  block_shape: tuple[int, ...], dtype: Any) -> Any:
    """A dask array whose blocks are ``reader(path, key)`` calls: picklable by path, so it
    works on dask.distributed workers, and each block is read only when computed."""
    import dask
    import dask.array as da

    if not lead:
        return da.from_delayed(dask.delayed(reader)(path, keys[0]), block_shape, dtype=dtype)
    flat = [da.from_delayed(dask.delayed(reader, pure=True)(path, key), block_shape, dtype=dtype)
            for key in keys]

    def build(level: int, start: int) -> Any:  # nested stacks along the leading axes
        if level == len(lead):
            return flat[start]
        step = int(np.prod(lead[level + 1:])) if level + 1 < len(lead) else 1
        return da.stack([build(level + 1, start + i * step) for i in range(lead[level])])

    return build(0, 0)


def open_lazy(path: str | Path) -> Any:
    """A dask array over ``path`` that reads plane by plane (never the whole stack at once).

    Blocks read their plane from the file by path, so the graph pickles and runs on
    dask.distributed workers (which must see the same file system). A missing input is
    ``FileNotFoundError``; one that is not a regular file, empty or unreadable is
    :class:`InputError` (a ``ValueError``) naming the file.
    """
    path = Path(path)
    kind = check_input(path)
    try:
        return _OPENERS[kind](path)
    except (InputError, MemoryError):
        raise
    except Exception as exc:  # a corrupt file: the library's error, named and on one line
        raise _unreadable(path, kind, exc) from None


def _open_tiff(path: Path) -> Any:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        if not tf.series:
            raise InputError(f"{path.name}: not a readable TIFF file (no image found in it)")
        series = tf.series[0]
        shape, dtype = tuple(series.shape), series.dtype
        page_shape = tuple(series.keyframe.shape)
    if shape[len(shape) - len(page_shape):] != page_shape:
        raise InputError(f"{path.name}: unsupported TIFF layout (series {shape}, pages {page_shape})")
    lead = shape[: len(shape) - len(page_shape)]
    n = int(np.prod(lead)) if lead else 1
    return _stack_lazily(_read_tiff_page, str(path), lead, list(range(n)), page_shape, dtype)


def _open_zarr(path: Path) -> Any:
    import dask.array as da
    import zarr

    node = zarr.open(str(path), mode="r")
    component = None
    if not hasattr(node, "shape"):
        keys = sorted(node.array_keys())
        if not keys:
            raise InputError(f"zarr group {path} holds no array")
        component = keys[0]
    return da.from_zarr(str(path), component=component)


def _open_npy(path: Path) -> Any:
    mm = np.load(path, mmap_mode="r", allow_pickle=False)
    if mm.ndim < 2:
        raise InputError(f"{path.name}: need at least 2 dimensions; got shape {mm.shape}")
    lead, block = mm.shape[:-2], mm.shape[-2:]
    if mm.ndim >= 3 and mm.shape[-1] in (3, 4):  # keep colour planes whole
        lead, block = mm.shape[:-3], mm.shape[-3:]
    keys = [tuple(int(i) for i in idx) for idx in np.ndindex(*lead)] or [()]
    return _stack_lazily(_read_npy_index, str(path), lead, keys, block, mm.dtype)


def _open_image(path: Path) -> Any:
    import dask.array as da
    from imageio.v3 import imread

    arr = imread(path)
    return da.from_array(arr, chunks=arr.shape)


_OPENERS = {"tiff": _open_tiff, "zarr": _open_zarr, "npy": _open_npy, "image": _open_image}


# -- naming ------------------------------------------------------------------------------
def output_name(src: Path, suffix: str = "") -> str:
    """The file name of the output of ``src`` (``suffix`` names one of several outputs)."""
    kind = input_kind(src)
    name = src.name
    lower = name.lower()
    for ext in _EXTS:
        if lower.endswith(ext):
            stem, ext_out = name[: -len(ext)], name[-len(ext):]
            break
    else:  # pragma: no cover - input_kind already rejected it
        stem, ext_out = src.stem, src.suffix
    if kind == "image" and ext_out.lower() in (".jpg", ".jpeg"):
        ext_out = ".png"  # never re-encode a restored image lossily
    return f"{stem}{'.' + suffix if suffix else ''}{ext_out}"


def output_path(src: Path, outdir: Path, suffix: str = "") -> Path:
    """``outdir / output_name(src, suffix)`` (a single input; see :func:`plan_outputs`)."""
    return Path(outdir) / output_name(Path(src), suffix)


def plan_outputs(inputs: Sequence[str | Path], outdir: str | Path,
                 suffixes: Sequence[str] = ("",)) -> list[list[Path] | None]:
    """The final output paths of every input (``None`` for an unsupported input).

    Outputs mirror the inputs' paths relative to the deepest folder holding them all. Raises
    ``ValueError`` listing every input that would share an output with another one (after
    mirroring: ``pair.png`` and ``pair.jpg``, or an input given twice) and every output that
    would be an input, or lie inside one (a Zarr folder) or hold one.
    """
    outdir = Path(outdir)
    srcs = [Path(p) for p in inputs]
    absolute = [Path(os.path.abspath(p)) for p in srcs]
    plans: list[list[Path] | None] = []
    supported = []
    for p in srcs:
        try:
            supported.append([output_name(p, s) for s in suffixes])
        except ValueError:
            supported.append(None)
    parents = [str(a.parent) for a, names in zip(absolute, supported, strict=True) if names]
    try:
        root: Path | None = Path(os.path.commonpath(parents)) if parents else None
    except ValueError:  # inputs on different drives (Windows): each drive is a first folder
        root = None
    for a, names in zip(absolute, supported, strict=True):
        if names is None:
            plans.append(None)
            continue
        if root is not None:
            rel = a.parent.relative_to(root)
        else:
            rel = Path(a.drive.rstrip(":") or "_", a.parent.relative_to(a.anchor))
        plans.append([outdir / rel / n for n in names])

    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, plan in enumerate(plans):
        for out in plan or ():
            j = seen.setdefault(os.path.normcase(os.path.abspath(out)), i)
            if j == i:
                continue
            if absolute[j] == absolute[i]:
                problems.append(f"input {srcs[i]} is listed twice")
            else:
                why = " (JPEG inputs give PNG outputs)" if any(
                    p.suffix.lower() in (".jpg", ".jpeg") for p in (srcs[i], srcs[j])) else ""
                problems.append(f"inputs {srcs[j]} and {srcs[i]} would both be written to "
                                f"{out}{why}; rename one, or give it its own run and -o folder")
            break
    problems += _outputs_onto_inputs(srcs, plans)
    if problems:
        more = f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
        raise ValueError("; ".join(problems[:_MAX_PROBLEMS]) + more)
    return plans


def _outputs_onto_inputs(srcs: list[Path], plans: list[list[Path] | None]) -> list[str]:
    """An output that resolves to an input, lies inside an input folder or holds an input."""
    real = {os.path.realpath(p): p for p in srcs}
    ids: dict[tuple[int, int], Path] = {}
    for p in srcs:
        with contextlib.suppress(OSError):
            st = os.stat(p)
            ids[(st.st_dev, st.st_ino)] = p
    problems = []
    for plan in plans:
        for out in plan or ():
            r = os.path.realpath(out)
            hit = real.get(r)
            if hit is None:
                with contextlib.suppress(OSError):
                    st = os.stat(out)
                    hit = ids.get((st.st_dev, st.st_ino))  # a hard link to an input
            if hit is None:  # inside an input (a Zarr folder)?
                hit = next((real[str(q)] for q in Path(r).parents if str(q) in real), None)
            if hit is not None:
                problems.append(f"output {out} would replace the input {hit}; choose an "
                                "output folder (-o) that holds no input")
    outs = {os.path.realpath(o): o for plan in plans for o in plan or ()
            if o.suffix.lower() == ".zarr"}
    for r, p in real.items():  # an input inside an output folder that overwrite would replace
        out = next((outs[str(q)] for q in Path(r).parents if str(q) in outs), None)
        if out is not None:
            problems.append(f"output {out} would replace the folder holding the input {p}")
    return problems


# -- temporary files ---------------------------------------------------------------------
_TAG = re.compile(r"\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{8}(?:\.[a-z]+)?\.partial$")
_LEGACY = re.compile(r"\.(?P<pid>\d+)\.partial$")  # ``.NAME.PID.partial`` of earlier versions


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"


def temp_path(final: Path, role: str = "") -> Path:
    """A temporary name next to ``final``, unique to this process and call."""
    tag = f"{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
    return final.with_name(f".{final.name}.{tag}{'.' + role if role else ''}{PARTIAL}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (``True`` when that cannot be told)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's live process
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is dead too
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def clean_stale_partials(outdir: Path, pids: Sequence[int] | None = None) -> list[Path]:
    """Remove the temporary files in ``outdir`` of processes on this host that no longer run.

    A live run's files (another process, or this one) are never touched, nor those of other
    hosts sharing the folder, nor files whose name does not carry a process id. ``pids``
    limits the cleaning to those processes (after a worker process ended).
    """
    removed: list[Path] = []
    try:
        entries = list(Path(outdir).glob(f".*{PARTIAL}"))
    except OSError:
        return removed
    host = _host()
    for p in entries:
        m = _TAG.search(p.name)
        if m is not None and m["host"] != host:
            continue
        m = m or _LEGACY.search(p.name)
        if m is None:
            continue
        pid = int(m["pid"])
        if (pids is not None and pid not in pids) or pid_alive(pid):
            continue
        _remove(p)
        removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


# -- ownership ---------------------------------------------------------------------------
def sidecar_path(final: Path) -> Path:
    return final.with_name(final.name + ".json")


def file_identity(st: os.stat_result) -> list[int]:
    """What a sidecar remembers of a file to recognise it: size and modification time."""
    return [int(st.st_size), int(st.st_mtime_ns)]


def source_identity(src: Path) -> dict[str, Any]:
    """How a sidecar names an input: its real path and, for a file, its size and mtime."""
    st = os.stat(src)
    return {"input": os.path.realpath(src),
            "input_stat": file_identity(st) if stat.S_ISREG(st.st_mode) else None}


def recipe_key(recipe: Mapping[str, Any]) -> str:
    """The part of a recipe dict that decides its output (not its version or provenance)."""
    return json.dumps({k: recipe.get(k) for k in ("processor", "params", "channel_axis")},
                      sort_keys=True, default=str)


def read_sidecar(side: Path) -> dict[str, Any] | None:
    """The sidecar at ``side`` if napari-restore wrote it, else ``None`` (never blocks)."""
    if not os.path.lexists(side) or os.path.islink(side):
        return None
    try:
        meta = _jsonio.parse(_jsonio.read_text(side, "sidecar"), "sidecar")
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(meta, dict) or meta.get("written_by") != SIDECAR_TAG:
        return None
    return meta


def _zarr_run(path: Path) -> Any:
    """The ``run`` token this module wrote into a Zarr output's attributes, if any."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        try:
            doc = _jsonio.parse(_jsonio.read_text(path / name, "Zarr metadata file"), "Zarr metadata")
        except (OSError, ValueError, TypeError):
            continue
        attrs = doc.get(key, {}) if key and isinstance(doc, dict) else doc
        if isinstance(attrs, dict) and isinstance(attrs.get("napari_restore"), dict):
            return attrs["napari_restore"].get("run")
    return None


@dataclass(frozen=True)
class OutputState:
    """What is at an output's name: ``missing``; ``current`` (this tool wrote it from this
    input with this recipe, and neither changed since); ``replaceable`` (this tool wrote it,
    but from another input or recipe, or the input changed); ``foreign`` (anything else: a
    directory, a link, a file it did not write or that was changed since)."""

    kind: str
    reason: str = ""


_FOREIGN_HINT = ("; --overwrite replaces only outputs napari-restore wrote, so move it away "
                 "or choose another output folder (-o)")


def output_state(final: Path, source: Mapping[str, Any], rkey: str) -> OutputState:
    """Classify what is at ``final`` for an output of ``source`` (:func:`source_identity`)
    made with the recipe whose :func:`recipe_key` is ``rkey``. Only ``lstat`` and the
    sidecar (a bounded read of a regular file) are used: nothing blocks."""
    side = sidecar_path(final)
    if not os.path.lexists(final):
        if os.path.lexists(side) and read_sidecar(side) is None:
            return OutputState("foreign", f"{side} is {_what(side)}, not a napari-restore "
                                          "sidecar" + _FOREIGN_HINT)
        return OutputState("missing")
    zarr_out = final.suffix.lower() == ".zarr"
    st = os.lstat(final)
    if stat.S_ISLNK(st.st_mode):
        return OutputState("foreign", f"{final} is a symbolic link" + _FOREIGN_HINT)
    if zarr_out != stat.S_ISDIR(st.st_mode) or not (zarr_out or stat.S_ISREG(st.st_mode)):
        what = "a regular file" if stat.S_ISREG(st.st_mode) else _jsonio.file_kind(st.st_mode)
        return OutputState("foreign", f"{final} is {what}, not a napari-restore output" + _FOREIGN_HINT)
    meta = read_sidecar(side)
    if meta is None or Path(str(meta.get("output", ""))).name != final.name:
        why = (f"{side.name} is {_what(side)}, not a sidecar of ours" if os.path.lexists(side)
               else f"no sidecar {side.name}")
        return OutputState("foreign", f"{final} exists and was not written by napari-restore "
                                      f"({why})" + _FOREIGN_HINT)
    if zarr_out:
        if meta.get("run") is None or _zarr_run(final) != meta.get("run"):
            return OutputState("foreign", f"{final} does not match its sidecar {side.name}"
                                          + _FOREIGN_HINT)
        latest = True
    else:
        ident = file_identity(st)
        latest = ident == meta.get("output_stat")
        if not latest and ident != meta.get("previous_stat"):
            return OutputState("foreign", f"{final} was changed after napari-restore wrote it "
                                          f"(it no longer matches {side.name})" + _FOREIGN_HINT)
    if not latest:
        return OutputState("replaceable", f"{final} is an earlier napari-restore output")
    if meta.get("input") != source["input"]:
        return OutputState("replaceable", f"{final} was written from another input, "
                                          f"{meta.get('input')}")
    if recipe_key(meta.get("recipe") or {}) != rkey:
        return OutputState("replaceable", f"{final} was written with a different recipe")
    if meta.get("input_stat") != source["input_stat"]:
        return OutputState("replaceable", f"the input changed after {final} was written")
    return OutputState("current", f"{final} was already written from this input with this recipe")


def _what(path: Path) -> str:
    """A path's kind in words, for messages ("a FIFO (named pipe)", "a regular file", …)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    return "a regular file" if stat.S_ISREG(st.st_mode) else _jsonio.file_kind(st.st_mode)


def check_replaceable(state: OutputState, overwrite: bool) -> None:
    """Raise :class:`OutputConflict` where ``state`` may not be replaced (with ``overwrite``)."""
    if state.kind == "foreign":
        raise OutputConflict(state.reason)
    if state.kind == "replaceable" and not overwrite:
        raise OutputConflict(state.reason + "; use --overwrite to replace it")


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (``flock`` on the directory itself: no lock file)
    while an output is checked and renamed into place, so concurrent runs do not race."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rename checks only
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # a file system without flock: best effort
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = temp_path(path)
    try:
        tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class Writer:
    """Streams planes (in C order of the leading axes) into a temporary file; ``commit``
    moves it to its final name.

    Parameters
    ----------
    final : Path
        The output's final name (its folder is created).
    shape, dtype :
        The whole output's shape and dtype.
    plane_ndim : int
        Trailing dimensions of one written block (spatial + colour).
    meta : dict
        Recipe and versions; goes into the TIFF description / Zarr attrs.
    """

    def __init__(self, final: Path, shape: tuple[int, ...], dtype: Any, plane_ndim: int,
                 meta: dict[str, Any]) -> None:
        self.final, self.shape, self.dtype = final, tuple(shape), np.dtype(dtype)
        self.plane_ndim, self.meta = plane_ndim, meta
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(final)
        self.kind = "image" if final.suffix.lower() == ".png" else input_kind(final)
        self._planes: list[np.ndarray] = []
        self._target: Any = None
        self._count = 0
        if self.kind == "npy":
            self._target = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=self.dtype,
                                                     shape=self.shape)
        elif self.kind == "zarr":
            import zarr

            chunks = (1,) * (len(self.shape) - plane_ndim) + self.shape[len(self.shape) - plane_ndim:]
            self._target = zarr.open_array(str(self.tmp), mode="w", shape=self.shape,
                                           dtype=self.dtype, chunks=chunks)
            self._target.attrs["napari_restore"] = meta

    @property
    def lead(self) -> tuple[int, ...]:
        return self.shape[: len(self.shape) - self.plane_ndim]

    def write_stream(self, blocks: Any) -> None:
        """Write every block (one index of the leading axes each, in C order) as it arrives."""
        block_shape = self.shape[len(self.lead):]

        def checked() -> Any:
            for block in blocks:
                yield np.asarray(block, dtype=self.dtype).reshape(block_shape)
                self._count += 1

        if self.kind in ("npy", "zarr"):
            for k, block in enumerate(checked()):
                idx = np.unravel_index(k, self.lead) if self.lead else ()
                self._target[tuple(int(i) for i in idx)] = block
        elif self.kind == "image":
            self._planes = list(checked())
        else:
            self._tiff(checked())

    def _tiff(self, blocks: Any) -> None:
        import tifffile

        rgb = self.shape[-1] in (3, 4) and self.plane_ndim >= 3 and len(self.shape) >= 3
        page_ndim = 3 if rgb else 2
        page_shape = self.shape[len(self.shape) - page_ndim:]

        def pages() -> Any:
            for block in blocks:
                yield from block.reshape((-1, *page_shape))

        big = int(np.prod(self.shape)) * self.dtype.itemsize > 2**31 - 2**25
        self._target = tifffile.TiffWriter(self.tmp, bigtiff=big)
        self._target.write(pages(), shape=self.shape, dtype=self.dtype,
                           photometric="rgb" if rgb else "minisblack",
                           metadata={"napari_restore": self.meta})

    def finish(self) -> None:
        """Complete the temporary file (every plane must have been written)."""
        expected = int(np.prod(self.lead)) if self.lead else 1
        if self._count != expected:
            raise RuntimeError(f"wrote {self._count} of {expected} planes")
        if self.kind == "image":
            from imageio.v3 import imwrite

            imwrite(self.tmp, self._planes[0], extension=".png")
            self._planes = []
        elif self.kind == "npy":
            self._target.flush()
            self._target = None
        elif self.kind == "tiff":
            self._target.close()
            self._target = None

    def commit(self, *, overwrite: bool, source: Mapping[str, Any], sidecar: dict[str, Any]) -> bool:
        """Move the finished output to its final name and write its sidecar.

        Checked again under a lock on the folder, so a concurrent run cannot slip in between:
        anything :func:`output_state` calls foreign raises :class:`OutputConflict`, and so does
        a replaceable output without ``overwrite``. A current output that another run wrote
        meanwhile is kept (``False`` is returned and the temporary file is dropped). The
        sidecar is written first and remembers the file it replaces, so a kill at any point
        leaves either output recognised as this tool's.
        """
        self.finish()
        side = sidecar_path(self.final)
        with _folder_lock(self.final.parent):
            state = output_state(self.final, source, recipe_key(sidecar.get("recipe") or {}))
            check_replaceable(state, overwrite)
            if state.kind == "current" and not overwrite:
                self.abort()
                return False
            zarr_out = self.kind == "zarr"
            old = None if zarr_out or state.kind == "missing" else file_identity(os.lstat(self.final))
            new = None if zarr_out else file_identity(os.stat(self.tmp))  # rename keeps it
            _write_json(side, {"written_by": SIDECAR_TAG, **sidecar, **source,
                               "output": str(self.final), "output_stat": new, "previous_stat": old})
            if state.kind == "missing":
                self._place_new()
            elif zarr_out:  # our own earlier store: swap, then delete the old one
                old_dir = temp_path(self.final, "old")
                os.rename(self.final, old_dir)
                os.rename(self.tmp, self.final)
                shutil.rmtree(old_dir, ignore_errors=True)
            else:
                os.replace(self.tmp, self.final)
        return True

    def _place_new(self) -> None:
        if self.kind == "zarr":
            os.rename(self.tmp, self.final)  # fails rather than replace a non-empty folder
            return
        try:
            os.link(self.tmp, self.final)  # atomic, and never replaces what appeared meanwhile
        except FileExistsError:
            raise OutputConflict(f"{self.final} appeared while this run was writing it") from None
        except OSError:  # no hard links on this file system
            if os.path.lexists(self.final):
                raise OutputConflict(f"{self.final} appeared while this run was writing it") from None
            os.replace(self.tmp, self.final)
            return
        self.tmp.unlink()

    def abort(self) -> None:
        try:
            if self.kind == "tiff" and self._target is not None:
                self._target.close()
        finally:
            self._target = None
            _remove(self.tmp)
