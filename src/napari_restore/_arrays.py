"""The array boundary: the one place where user arrays become working arrays and back.

Every processor sees only what comes out of this module: a C-contiguous floating-point
plane (2-D), colour plane (H, W, 3) or volume (3-D) whose values lie in [0, 1]. This module

* validates the input (dtype, dimensionality, emptiness, NaN/Inf, ``channel_axis``) and raises
  ``TypeError``/``ValueError`` naming the offending parameter;
* maps values to [0, 1] (integers by their dtype's range, floats by their own range, which is
  left alone when it already lies in [0, 1]) and maps results back to the input's dtype and range;
* moves the channel axis last and passes an alpha channel through untouched;
* applies a processor plane by plane over the leading axes of an nD stack, reporting
  progress and honouring cancellation between planes;
* converts working arrays for OpenCV (8/16-bit, C-contiguous) — OpenCV never sees anything else.

Nothing else in the package calls ``np.ascontiguousarray``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Cancelled",
    "Progress",
    "ValueScale",
    "check_image",
    "from_uint",
    "from_working",
    "iter_planes",
    "run_to_completion",
    "to_uint",
    "to_working",
    "value_scale",
]


class Cancelled(Exception):
    """Raised inside a run when cancellation was requested between planes/iterations."""


@dataclass(frozen=True)
class Progress:
    """One progress report of a running processor.

    Attributes
    ----------
    done : int
        Planes finished so far.
    total : int
        Planes in the whole run.
    fraction : float
        Overall completion in [0, 1] (includes progress inside the current plane when the
        processor reports it).
    info : object
        Processor-specific payload (e.g. a Deep Image Prior step), or ``None``.
    """

    done: int
    total: int
    fraction: float
    info: Any = None


@dataclass(frozen=True)
class ValueScale:
    """How values map between the caller's array and the [0, 1] working range."""

    dtype: np.dtype
    low: float
    high: float

    @property
    def span(self) -> float:
        return self.high - self.low

    @property
    def identity(self) -> bool:
        return self.low == 0.0 and self.high == 1.0


CancelLike = Callable[[], bool] | threading.Event | None


def _is_cancelled(cancel: CancelLike) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _dtype_name(dtype: np.dtype) -> str:
    return np.dtype(dtype).name


def check_dtype(dtype: Any, *, name: str = "image") -> np.dtype:
    """Return ``dtype`` if it is a real integer or floating dtype, else raise ``TypeError``."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        raise TypeError(
            f"{name} has dtype bool; expected a real integer or floating-point dtype "
            "(e.g. uint8, uint16, float32). Convert masks with image.astype(np.uint8) first."
        )
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(
            f"{name} has complex dtype {dtype}; expected a real integer or floating-point dtype. "
            "Pass np.abs(image) or image.real explicitly."
        )
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(
            f"{name} has dtype {dtype}; expected a real integer or floating-point dtype "
            "(uint8, uint16, int16, float32, float64, ...)."
        )
    return dtype


def _as_array(image: Any, name: str) -> Any:
    """Return an ndarray-like (NumPy, or a lazy array with dtype/shape/ndim) without copying."""
    if isinstance(image, np.ndarray):
        return image
    if all(hasattr(image, a) for a in ("dtype", "shape", "ndim", "__getitem__")):
        return image  # dask / zarr: read plane by plane, never loaded whole here
    if image is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        arr = np.asarray(image)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"{name} must be array-like; got {type(image).__name__}") from exc
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array; got {type(image).__name__} of objects")
    return arr


def normalize_channel_axis(channel_axis: Any, ndim: int) -> int | None:
    """Validate ``channel_axis`` against ``ndim`` and return it as a non-negative int (or None)."""
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, int | np.integer):
        raise TypeError(f"channel_axis must be an int or None; got {channel_axis!r}")
    if not -ndim <= channel_axis < ndim:
        raise ValueError(
            f"channel_axis={channel_axis} is out of range for an image with {ndim} dimensions"
        )
    return int(channel_axis) % ndim


def check_image(
    image: Any,
    *,
    name: str = "image",
    channel_axis: int | None = None,
    plane_ndim: int = 2,
    min_size: int = 1,
    check_finite: bool = True,
) -> tuple[Any, int | None]:
    """Validate an input image and return ``(array, normalised channel_axis)``.

    Parameters
    ----------
    image : array-like
        The caller's array; never modified.
    name : str
        Parameter name used in error messages.
    channel_axis : int or None
        Axis holding RGB (size 3) or RGBA (size 4) colour, or None for greyscale.
    plane_ndim : int
        Spatial dimensions the processor works on (2 for planes, 3 for volumes).
    min_size : int
        Smallest allowed size of each spatial dimension.
    check_finite : bool
        Reject NaN and infinite values.

    Raises
    ------
    TypeError
        For bool, complex, object or non-array input, or a non-integer ``channel_axis``.
    ValueError
        For too few dimensions, empty arrays, spatial sizes below ``min_size``, an invalid
        ``channel_axis`` or non-finite values.
    """
    arr = _as_array(image, name)
    check_dtype(arr.dtype, name=name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be at least {plane_ndim}-D; got a 0-D scalar")
    cax = normalize_channel_axis(channel_axis, arr.ndim)
    spatial_ndim = arr.ndim - (cax is not None)
    if spatial_ndim < plane_ndim:
        extra = " plus the channel axis" if cax is not None else ""
        raise ValueError(
            f"{name} must have at least {plane_ndim} spatial dimensions{extra}; "
            f"got shape {tuple(arr.shape)}"
        )
    if any(s == 0 for s in arr.shape):
        raise ValueError(f"{name} must not be empty; got shape {tuple(arr.shape)}")
    if cax is not None and arr.shape[cax] not in (3, 4):
        raise ValueError(
            f"channel_axis={channel_axis} points at an axis of size {arr.shape[cax]}; colour "
            "images need 3 (RGB) or 4 (RGBA) channels there. For other multichannel data "
            "leave channel_axis=None: leading axes are processed plane by plane."
        )
    spatial = [s for i, s in enumerate(arr.shape) if i != cax][-plane_ndim:]
    if min(spatial) < min_size:
        raise ValueError(
            f"{name} is too small: its spatial shape {tuple(spatial)} must be at least "
            f"{min_size} pixels along every axis for this processor"
        )
    if check_finite and np.issubdtype(arr.dtype, np.floating):
        if not bool(np.isfinite(arr).all()):
            raise ValueError(f"{name} contains NaN or infinite values; only finite values are allowed")
    return arr, cax


def _working_dtype(dtype: np.dtype, requested: Any = np.float32) -> np.dtype:
    """float32 unless the input needs float64 precision (float64, >16-bit integers)."""
    needs64 = dtype == np.float64 or (np.issubdtype(dtype, np.integer) and dtype.itemsize > 2)
    if dtype.kind == "f" and dtype.itemsize > 8:  # longdouble
        needs64 = True
    return np.result_type(np.dtype(requested), np.float64 if needs64 else np.float32)


def value_scale(arr: Any, value_range: tuple[float, float] | None = None) -> ValueScale:
    """Return the mapping of ``arr``'s values to [0, 1].

    Integers map by their dtype's full range; floats already inside [0, 1] are kept as they
    are; other floats map by their own minimum and maximum — or by ``value_range`` when given
    (the range of the whole stack when ``arr`` is one part of it, so that a slice, a field of
    view or a batch chunk is scaled exactly as the whole would be).
    """
    dtype = np.dtype(arr.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return ValueScale(dtype, float(info.min), float(info.max))
    if value_range is not None:
        low, high = (float(v) for v in value_range)
        if not (np.isfinite(low) and np.isfinite(high)) or high < low:
            raise ValueError(f"value_range must be finite (low, high) with low <= high; got {value_range!r}")
    else:
        low, high = float(arr.min()), float(arr.max())
    if low >= 0.0 and high <= 1.0:
        return ValueScale(dtype, 0.0, 1.0)
    if high == low:
        return ValueScale(dtype, low, low + 1.0)
    return ValueScale(dtype, low, high)


def to_working(arr: Any, scale: ValueScale, dtype: Any = np.float32) -> np.ndarray:
    """Return a new C-contiguous float array of ``arr`` mapped to [0, 1] by ``scale``."""
    wd = _working_dtype(scale.dtype, dtype)
    out = np.array(arr, dtype=wd, order="C", copy=True)
    if not scale.identity:
        out -= wd.type(scale.low)
        out /= wd.type(scale.span)
    return out


def from_working(work: np.ndarray, scale: ValueScale, *, residual: bool = False) -> np.ndarray:
    """Map a working array back to the caller's dtype and value range (a new array).

    ``residual=True`` maps a difference (e.g. a grain layer): it is scaled but not offset and
    is returned as floating point, since it is signed.
    """
    work = np.asarray(work)
    if residual:
        out_dtype = scale.dtype if scale.dtype.kind == "f" else np.dtype(np.float32)
        return (work.astype(np.float64) * scale.span).astype(out_dtype)
    if scale.dtype.kind == "f":
        if scale.identity:
            return work.astype(scale.dtype, copy=True)
        return (work.astype(np.float64) * scale.span + scale.low).astype(scale.dtype)
    # 8/16-bit integers: float32 arithmetic is exact to well below half a level (16-bit:
    # 65535 * 2**-24 < 0.004), and twice as fast as float64 on large images.
    calc = np.float32 if scale.dtype.itemsize <= 2 and work.dtype == np.float32 else np.float64
    vals = work.astype(calc, copy=True)
    vals *= calc(scale.span)
    if scale.low:
        vals += calc(scale.low)
    np.rint(vals, out=vals)
    np.clip(vals, scale.low, scale.high, out=vals)
    return vals.astype(scale.dtype)


def to_uint(work: np.ndarray, bits: int) -> np.ndarray:
    """Working [0, 1] array -> C-contiguous uint8/uint16 for OpenCV (values clipped)."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16; got {bits}")
    top = 255.0 if bits == 8 else 65535.0
    out = np.rint(np.clip(work, 0.0, 1.0) * top)
    return np.ascontiguousarray(out.astype(np.uint8 if bits == 8 else np.uint16))


def from_uint(arr: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """uint8/uint16 OpenCV output -> working [0, 1] float array."""
    top = 255.0 if arr.dtype == np.uint8 else 65535.0
    return (np.asarray(arr, dtype=np.float64) / top).astype(dtype)


def contiguous(arr: np.ndarray, dtype: Any = None) -> np.ndarray:
    """C-contiguous array for third-party code (a copy only when needed)."""
    return np.ascontiguousarray(arr, dtype=dtype)


PlaneFunc = Callable[..., Any]


def _call_plane(func: PlaneFunc, plane: np.ndarray, per_channel: bool) -> Iterator[Any]:
    """Run ``func`` on one plane; generator functions may yield sub-progress in [0, 1]."""

    def one(p: np.ndarray) -> Generator[Any, None, Any]:
        res = func(p)
        if isinstance(res, Generator):
            res = yield from res
        return res

    if not per_channel:
        return (yield from one(plane))
    outs = []
    n = plane.shape[-1]
    for c in range(n):
        sub = yield from _scaled(one(np.ascontiguousarray(plane[..., c])), c, n)
        outs.append(sub)
    if isinstance(outs[0], tuple):
        return tuple(np.stack(parts, axis=-1) for parts in zip(*outs, strict=True))
    return np.stack(outs, axis=-1)


def _scaled(gen: Generator, index: int, count: int) -> Generator[Any, None, Any]:
    """Re-express sub-progress of part ``index`` of ``count`` as a fraction of the whole."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(item, int | float):
            yield (index + float(item)) / count
        else:
            yield item


def _native_plane(part: np.ndarray) -> np.ndarray:
    """A plane in the input's own dtype: C-contiguous, and read-only when it is the input."""
    plane = np.ascontiguousarray(part)
    if plane.flags.writeable and np.may_share_memory(plane, part):
        plane = plane.view()
        plane.flags.writeable = False  # this view only: the caller's array is unchanged
    return plane


def _back(o: np.ndarray, scale: ValueScale, residual: bool, native: bool, src: np.ndarray) -> np.ndarray:
    """A plane result in the caller's dtype: a native result as it is, else from the working range."""
    if native and not residual and o.dtype == scale.dtype:
        return o.copy() if np.may_share_memory(o, src) else o
    if o.dtype.kind not in "fc":
        raise RuntimeError(f"a plane processor returned {o.dtype} for a {scale.dtype} plane; "
                           "expected the plane's own dtype or a float working array")
    return from_working(o, scale, residual=residual)


def _check_result(res: Any, shape: tuple, n_out: int, what: str) -> tuple[np.ndarray, ...]:
    outs = res if isinstance(res, tuple) else (res,)
    if len(outs) != n_out:
        raise RuntimeError(f"{what} returned {len(outs)} outputs; its spec declares {n_out}")
    checked = []
    for o in outs:
        o = np.asarray(o)
        if o.shape != shape:
            raise RuntimeError(f"{what} returned shape {o.shape} for a plane of shape {shape}")
        if o.dtype.kind not in "biu" and not np.isfinite(o).all():
            raise RuntimeError(f"{what} produced NaN or infinite values (a bug: please report it)")
        checked.append(o)
    return tuple(checked)


def iter_planes(
    func: PlaneFunc,
    image: Any,
    *,
    channel_axis: int | None = None,
    plane_ndim: int = 2,
    per_channel: bool = False,
    residual_outputs: tuple[bool, ...] = (False,),
    work_dtype: Any = np.float32,
    min_size: int = 1,
    cancel: CancelLike = None,
    name: str = "image",
    value_range: tuple[float, float] | None = None,
    extra_memory: int = 0,
    native_dtypes: tuple[Any, ...] = (),
) -> Generator[Progress, None, Any]:
    """Apply a plane processor over an nD stack, yielding :class:`Progress`, returning the result.

    Parameters
    ----------
    func : callable
        ``func(plane) -> result``. ``plane`` is a new C-contiguous float array in [0, 1] of
        shape ``(H, W)`` (or ``(Z, H, W)`` when ``plane_ndim=3``), with a trailing colour axis
        of size 3 when ``channel_axis`` is set and ``per_channel`` is False. It may return a
        tuple for several outputs, and it may be a generator yielding sub-progress (a float in
        [0, 1] or any payload object), whose return value is the result.
    image : array-like
        Any real dtype, any strides. Read only: never modified.
    channel_axis : int or None
        RGB/RGBA axis. Alpha (a 4th channel) is passed through untouched.
    plane_ndim : int
        2 for plane processors, 3 for volume processors.
    per_channel : bool
        Call ``func`` once per colour channel instead of once per colour plane.
    residual_outputs : tuple of bool
        One entry per output; True for signed difference outputs (returned as float).
    native_dtypes : tuple of dtypes
        Input dtypes that ``func`` takes as they are instead of as working floats (e.g.
        ``(np.uint8,)`` for a processor with an 8-bit fast path): the plane is then the
        input's own values, C-contiguous and read-only, and a result of that same dtype is
        used as it is (a float result is treated as a working array, as usual).
    value_range : (float, float), optional
        For float input: the (min, max) to scale by instead of the input's own — pass the
        whole stack's range when ``image`` is a part of it (see :func:`value_scale`).
    cancel : threading.Event or callable
        Checked before every plane and at every sub-progress step; when set,
        :class:`Cancelled` is raised. A generator ``func`` receives it (``gen.throw``) and
        may catch it and return its best result so far: for a single plane that result is
        returned; for a stack, :class:`Cancelled` is raised (no partial stacks).

    Returns
    -------
    ndarray or tuple of ndarray
        Output(s) with the input's shape; image outputs keep its dtype and value range.
    """
    arr, cax = check_image(
        image, name=name, channel_axis=channel_axis, plane_ndim=plane_ndim, min_size=min_size
    )
    scale = value_scale(arr, value_range)
    moved = arr if cax is None else _moveaxis(arr, cax, -1)
    core = plane_ndim + (cax is not None)
    lead = tuple(moved.shape[: moved.ndim - core])
    total = math.prod(lead)
    colour = slice(0, 3) if cax is not None else slice(None)
    outputs: list[np.ndarray] | None = None
    n_out = len(residual_outputs)
    check_memory(moved.shape, scale.dtype, n_out, plane_bytes=math.prod(moved.shape[-core:])
                 * np.dtype(_working_dtype(scale.dtype, work_dtype)).itemsize,
                 extra=extra_memory, name=name)

    native = scale.dtype in {np.dtype(d) for d in native_dtypes}
    alpha = cax is not None and moved.shape[-1] == 4
    stopped_early = False
    for i, idx in enumerate(np.ndindex(*lead)):
        if _is_cancelled(cancel):
            raise Cancelled(f"cancelled after {i} of {total} planes")
        src = np.asarray(moved[idx])
        part = src[..., colour] if cax is not None else src
        plane = _native_plane(part) if native else to_working(part, scale, work_dtype)
        gen = _call_plane(func, plane, per_channel and cax is not None)
        res = None
        fraction = i / total  # payload items report the latest sub-progress, not 0
        while True:
            try:
                sub = next(gen)
            except StopIteration as stop:
                res = stop.value
                break
            if _is_cancelled(cancel):
                # An iterative processor may finish early by catching Cancelled and returning
                # its best result so far (Deep Image Prior does); others let it propagate.
                try:
                    gen.throw(Cancelled(f"cancelled during plane {i + 1} of {total}"))
                except StopIteration as stop:
                    res, stopped_early = stop.value, True
                    break
                gen.close()
                raise Cancelled(f"cancelled during plane {i + 1} of {total}")
            if isinstance(sub, int | float):
                fraction = (i + min(max(float(sub), 0.0), 1.0)) / total
                yield Progress(i, total, fraction)
            else:
                yield Progress(i, total, fraction, sub)
        if stopped_early and total > 1:
            raise Cancelled(f"stopped early in plane {i + 1} of {total}; no partial stack")
        outs = _check_result(res, plane.shape, n_out, getattr(func, "__name__", "processor"))
        backs = [_back(o, scale, r, native and n_out == 1, src)
                 for o, r in zip(outs, residual_outputs, strict=True)]
        if total == 1 and not alpha:
            outputs = [b.reshape(moved.shape) for b in backs]  # one plane: no copy
            yield Progress(1, 1, 1.0)
            break
        if outputs is None:
            outputs = [
                np.empty(moved.shape, dtype=np.float32 if r and scale.dtype.kind != "f" else scale.dtype)
                for r in residual_outputs
            ]
        for out, back, r in zip(outputs, backs, residual_outputs, strict=True):
            if cax is not None:
                out[idx + (Ellipsis, colour)] = back
                if alpha:  # alpha passes through untouched
                    out[idx + (Ellipsis, 3)] = 0 if r else src[..., 3]
            else:
                out[idx] = back
        yield Progress(i + 1, total, (i + 1) / total)
        if stopped_early:
            break

    assert outputs is not None
    if cax is not None:
        outputs = [np.ascontiguousarray(np.moveaxis(o, -1, cax)) for o in outputs]
    return outputs[0] if n_out == 1 else tuple(outputs)


def available_memory() -> int:
    """Bytes of memory available to this process now (psutil; a large number if unknown)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil missing or unsupported platform
        return 1 << 62


def check_memory(shape: tuple[int, ...], dtype: Any, n_out: int = 1, *, plane_bytes: int = 0,
                 extra: int = 0, name: str = "image") -> int:
    """Refuse up front a run whose memory would exceed what is available.

    Needed: the outputs (``n_out`` arrays of ``shape``), about six working copies of one plane
    (conversion, the processor's own temporaries, the converted result) and ``extra`` (what
    the processor says it needs, e.g. a network's activations). Raises ``ValueError`` with the
    sizes, instead of leaving the process to the out-of-memory killer.
    """
    need = n_out * math.prod(shape) * max(np.dtype(dtype).itemsize, 4) + 6 * plane_bytes + extra
    have = available_memory()
    if need > have:
        gib = 1 << 30
        raise ValueError(
            f"{name} of shape {tuple(shape)} needs about {need / gib:.1f} GiB of memory for this "
            f"run, but only {have / gib:.1f} GiB are available: process a smaller field of view "
            "or fewer planes, or use `napari-restore apply`, which streams stacks to disk"
        )
    return need


def _moveaxis(arr: Any, source: int, dest: int) -> Any:
    if isinstance(arr, np.ndarray):
        return np.moveaxis(arr, source, dest)
    try:  # dask and friends implement moveaxis lazily via __array_function__
        return np.moveaxis(arr, source, dest)
    except Exception:
        return np.moveaxis(np.asarray(arr), source, dest)


def run_to_completion(
    gen: Generator[Progress, None, Any],
    progress: Callable[[Progress], None] | None = None,
) -> Any:
    """Drain a progress generator, forwarding each report to ``progress``; return its result."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(item)
