"""Lazy readers and atomic, streaming writers for the batch runner.

Inputs: TIFF (multi-page, OME-TIFF, read lazily through tifffile's zarr store), Zarr, NPY
(memory-mapped), PNG/JPEG (small: read whole). Outputs keep the input's format where that is
lossless (JPEG input gives PNG output) and its dtype. Every writer writes to a temporary name
next to the final one and renames when complete, so an interrupted run never leaves a
truncated file under a final name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

TIFF = (".tif", ".tiff")
IMAGES = (".png", ".jpg", ".jpeg")
PARTIAL = ".partial"


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


def _read_tiff_page(path: str, key: int) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        return tf.series[0].asarray(key=key)


def _read_npy_index(path: str, index: tuple[int, ...]) -> np.ndarray:
    mm = np.load(path, mmap_mode="r", allow_pickle=False)
    return np.array(mm[index])


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
    dask.distributed workers (which must see the same file system).
    """
    import dask.array as da

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    kind = input_kind(path)
    if kind == "tiff":
        import tifffile

        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            shape, dtype = tuple(series.shape), series.dtype
            page_shape = tuple(series.keyframe.shape)
        if shape[len(shape) - len(page_shape):] != page_shape:
            raise ValueError(f"{path.name}: unsupported TIFF layout (series {shape}, pages {page_shape})")
        lead = shape[: len(shape) - len(page_shape)]
        n = int(np.prod(lead)) if lead else 1
        return _stack_lazily(_read_tiff_page, str(path), lead, list(range(n)), page_shape, dtype)
    if kind == "zarr":
        import zarr

        node = zarr.open(str(path), mode="r")
        component = None
        if not hasattr(node, "shape"):
            keys = sorted(node.array_keys())
            if not keys:
                raise ValueError(f"zarr group {path} holds no array")
            component = keys[0]
        return da.from_zarr(str(path), component=component)
    if kind == "npy":
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        if mm.ndim < 2:
            raise ValueError(f"{path.name}: need at least 2 dimensions; got shape {mm.shape}")
        lead, block = mm.shape[:-2], mm.shape[-2:]
        if mm.ndim >= 3 and mm.shape[-1] in (3, 4):  # keep colour planes whole
            lead, block = mm.shape[:-3], mm.shape[-3:]
        keys = [tuple(int(i) for i in idx) for idx in np.ndindex(*lead)] or [()]
        return _stack_lazily(_read_npy_index, str(path), lead, keys, block, mm.dtype)
    from imageio.v3 import imread

    arr = imread(path)
    return da.from_array(arr, chunks=arr.shape)


def output_path(src: Path, outdir: Path, suffix: str = "") -> Path:
    """Where the output of ``src`` goes (``suffix`` names one of several outputs)."""
    kind = input_kind(src)
    name = src.name
    lower = name.lower()
    for ext in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".zarr", ".npy", ".png", ".jpeg", ".jpg"):
        if lower.endswith(ext):
            stem, ext_out = name[: -len(ext)], name[-len(ext):]
            break
    else:  # pragma: no cover - input_kind already rejected it
        stem, ext_out = src.stem, src.suffix
    if kind == "image" and ext_out.lower() in (".jpg", ".jpeg"):
        ext_out = ".png"  # never re-encode a restored image lossily
    return outdir / f"{stem}{'.' + suffix if suffix else ''}{ext_out}"


def temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}{PARTIAL}")


def clean_stale_partials(outdir: Path) -> list[Path]:
    """Remove temporary files left by an interrupted run (any process)."""
    removed = []
    for p in outdir.glob(f".*{PARTIAL}"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


class Writer:
    """Streams planes (in C order of the leading axes) into a temporary file; ``commit`` renames.

    Parameters
    ----------
    final : Path
        The output's final name.
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

    def commit(self, overwrite: bool = False) -> Path:
        expected = int(np.prod(self.lead)) if self.lead else 1
        if self._count != expected:
            raise RuntimeError(f"wrote {self._count} of {expected} planes")
        if self.kind == "image":
            from imageio.v3 import imwrite

            imwrite(self.tmp, self._planes[0], extension=".png")
        elif self.kind == "npy":
            self._target.flush()
            del self._target
        elif self.kind == "tiff":
            self._target.close()
        if self.final.exists():
            if not overwrite:
                raise FileExistsError(f"{self.final} exists (use --overwrite)")
            if self.final.is_dir():
                shutil.rmtree(self.final)
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        try:
            if self.kind == "tiff" and self._target is not None:
                self._target.close()
        finally:
            if self.tmp.is_dir():
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                self.tmp.unlink(missing_ok=True)
