"""The array boundary: the one place where user arrays become working arrays and back.

Every processor sees only what comes out of this module: a C-contiguous floating-point
plane (2-D), colour plane (H, W, 3) or volume (3-D) on an internal working scale. This module

* validates the input (type, dtype, dimensionality, emptiness, memory, NaN/Inf,
  ``channel_axis``) before any work, and raises ``TypeError``/``ValueError`` naming the
  offending parameter;
* maps values by one affine to the working scale (integers by their dtype's range, floats by
  their own range, left alone when it already lies in [0, 1]) and maps results back to the
  input's dtype and range;
* converts every intensity parameter (σ, NLM ``h``, a PSD, noise-model gains) from the
  image's own units — grey levels for integers, values for floats — with the same affine,
  so the user's units never depend on the data's minimum and maximum
  (:func:`working_params`), and converts values resolved inside a run back
  (:class:`Resolved`);
* moves the channel axis last and passes an alpha channel through untouched;
* applies a processor plane by plane over the leading axes of an nD stack, reporting
  progress and honouring cancellation between planes;
* converts working arrays for OpenCV (8/16-bit, C-contiguous) — OpenCV never sees anything else.

Nothing else in the package calls ``np.ascontiguousarray``.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Cancelled",
    "Progress",
    "as_image",
    "Resolved",
    "SingleImage",
    "ValueScale",
    "check_image",
    "drain",
    "from_uint",
    "from_working",
    "iter_planes",
    "run_to_completion",
    "single_image",
    "to_uint",
    "to_working",
    "value_scale",
    "working_params",
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
class Resolved:
    """Values a plane function chose by itself (e.g. an estimated σ), yielded as a payload.

    Inside a plane function the values are in working units; :func:`iter_planes` converts
    the intensity ones to the image's units and reports them (``Progress.info``, and the
    ``resolved`` mapping a caller passes in).
    """

    values: dict[str, Any]


@dataclass(frozen=True)
class ValueScale:
    """The affine between the caller's values and the working scale:
    ``work = (x - origin) / span``, with ``span = high - low``.

    ``origin`` is ``low`` (working values in [0, 1]) unless the processor keeps zero at zero
    (``origin = 0``: libraries that are not offset-invariant, such as bm4d, then see the data
    exactly as a direct call would, only scaled). Intensity parameters (differences of
    values, e.g. a noise σ) convert by ``1 / span``; power-like ones (variances, power
    spectra) by ``1 / span²``.
    """

    dtype: np.dtype
    low: float
    high: float
    origin: float | None = None  # None: low
    by_values: bool = False  # an integer dtype mapped by its values' range (wide_integer)

    def __post_init__(self) -> None:
        if self.origin is None:
            object.__setattr__(self, "origin", self.low)

    @property
    def span(self) -> float:
        return self.high - self.low

    @property
    def identity(self) -> bool:
        return self.origin == 0.0 and self.span == 1.0

    @property
    def unit(self) -> str:
        """The image's own intensity unit, as the user reads it."""
        return "grey levels" if self.dtype.kind in "iu" else "data units"

    def param_to_working(self, value: Any, power: int = 1) -> Any:
        """An intensity parameter (``power=1``) or power-like one (``power=2``) in working units."""
        if power == 0 or value is None or self.span == 1.0:
            return value
        factor = self.span ** power
        if isinstance(value, np.ndarray):
            return value / factor
        return float(value) / factor

    def param_from_working(self, value: Any, power: int = 1) -> Any:
        """The inverse of :meth:`param_to_working` (for values resolved inside a run)."""
        if power == 0 or value is None or self.span == 1.0:
            return value
        factor = self.span ** power
        if isinstance(value, np.ndarray):
            return value * factor
        return float(value) * factor

    def describe(self) -> str:
        """``"uint8 grey levels"`` / ``"data units (span 4095)"``, for error messages."""
        if self.dtype.kind in "iu":
            return f"grey levels of this {self.dtype.name} image"
        return f"data units of this {self.dtype.name} image (its values span {_g(self.span)})"


def _g(value: float) -> str:
    """A number as a person writes it: 0.11, 25, 3.2e+04 (no float noise)."""
    return f"{float(value):.6g}"


CancelLike = Callable[[], bool] | threading.Event | None


def check_cancel(cancel: Any, name: str = "cancel") -> CancelLike:
    """``cancel`` if it is a ``threading.Event``, a callable or None, else a ``TypeError``."""
    if cancel is None or isinstance(cancel, threading.Event) or callable(cancel):
        return cancel
    raise TypeError(
        f"{name} must be a threading.Event, a callable returning True to stop, or None; "
        f"got {type(cancel).__name__}"
    )


def _is_cancelled(cancel: CancelLike) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(check_cancel(cancel)())


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
    except ValueError as exc:  # nested sequences of different lengths
        raise ValueError(
            f"{name} must be a rectangular array (every row the same length); got a ragged "
            f"{type(image).__name__}") from exc
    except Exception as exc:  # exotic objects
        raise TypeError(f"{name} must be array-like; got {type(image).__name__}") from exc
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array; got {type(image).__name__} (not numbers)")
    return arr


def as_image(image: Any, name: str = "image") -> Any:
    """The caller's image as an array of a real dtype, at least 1-D, without reading it.

    The first check of every public function, so that lists, None, strings and scalars get
    a clear error before any processor code sees them.
    """
    arr = _as_array(image, name)
    check_dtype(arr.dtype, name=name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be an image array; got a 0-D scalar")
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
        finite_range(arr, name)
    return arr, cax


#: Bytes of one block when a whole array is scanned (finiteness, value range): a scan never
#: allocates more than a few times this, whatever the array's size.
_SCAN_BYTES = 32 << 20


def _blocks(arr: Any) -> Iterator[np.ndarray]:
    """``arr`` as NumPy blocks along its first axis, each about :data:`_SCAN_BYTES` (lazy
    arrays — dask, zarr — are read block by block, never whole)."""
    if arr.ndim == 0:
        yield np.asarray(arr)
        return
    row = math.prod(arr.shape[1:]) * np.dtype(arr.dtype).itemsize
    step = max(1, _SCAN_BYTES // max(row, 1))
    if step == 1 and row > 4 * _SCAN_BYTES and arr.ndim > 1:
        for i in range(arr.shape[0]):  # one huge row (a plane of a stack): split it further
            yield from _blocks(arr[i])
        return
    for start in range(0, arr.shape[0], step):
        yield np.asarray(arr[start:start + step])


def finite_range(arr: Any, name: str = "image") -> tuple[float, float]:
    """``(min, max)`` of a real array, scanned block by block; ``ValueError`` for NaN/Inf."""
    low, high = math.inf, -math.inf
    for block in _blocks(arr):
        if block.size == 0:
            continue
        lo, hi = block.min(), block.max()
        if block.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or infinite values; only finite values are allowed")
        low, high = min(low, float(lo)), max(high, float(hi))
    return low, high


def _working_dtype(dtype: np.dtype, requested: Any = np.float32) -> np.dtype:
    """float32 unless the input needs float64 precision (float64, >16-bit integers)."""
    needs64 = dtype == np.float64 or (np.issubdtype(dtype, np.integer) and dtype.itemsize > 2)
    if dtype.kind == "f" and dtype.itemsize > 8:  # longdouble
        needs64 = True
    return np.result_type(np.dtype(requested), np.float64 if needs64 else np.float32)


#: Bit depths a wider unsigned integer image may really hold (12 bits inside uint16 is the
#: camera standard): see ``detect_bits`` of :func:`value_scale`.
NOMINAL_BITS = (10, 12, 14)


def nominal_bits(arr: Any, value_range: tuple[float, float] | None = None) -> int:
    """The bit depth an unsigned integer image really uses: the smallest of
    :data:`NOMINAL_BITS` (or the dtype's own) that holds its largest value."""
    dtype = np.dtype(arr.dtype)
    full = dtype.itemsize * 8
    if dtype.kind != "u" or full <= 8:
        return full
    high = value_range[1] if value_range is not None else finite_range(arr)[1]
    for bits in NOMINAL_BITS:
        if bits < full and high < 2**bits:
            return bits
    return full


def wide_integer(dtype: Any) -> bool:
    """Integers of more than 16 bits (int32, uint32, int64, uint64). :func:`value_scale` maps
    them by their values' range, not the dtype's: 2**32 levels or more would put a noise σ
    of tens of counts below the processors' noise-free thresholds (a 1e-6 fraction of the
    span: 4295 counts for int32, so images came back unchanged), and 64-bit data beyond
    float64's resolution (its steps near the middle of the int64 range are 2048 counts)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "iu" and dtype.itemsize > 2


def ranged(dtype: Any) -> bool:
    """Whether :func:`value_scale` maps ``dtype`` by its values' range (floats, and
    :func:`wide_integer` dtypes)."""
    return np.dtype(dtype).kind == "f" or wide_integer(dtype)


def needs_whole_range(dtype: Any) -> bool:
    """Whether a part of an image of ``dtype`` (a plane, a field of view, a batch chunk, a
    streamed block) must be given the whole image's ``value_range`` to be scaled as the
    whole is: every numeric dtype. :func:`ranged` dtypes are scaled by it, 8/16-bit unsigned
    data of a ``detect_bits`` processor read the bit depth from its maximum (a 12-bit
    chunk whose own maximum is below 1024 is still 12-bit), and a Poisson–Gaussian run
    scales the transformed values by the whole's transformed range."""
    return np.dtype(dtype).kind in "iuf"


#: ``offset=False`` keeps zero at zero only while the values are within this many spans of
#: it: beyond, the working values (data / span) would need more than float32's resolution
#: for their differences (counts + 10⁶ on a span of 10³ were 22 counts off in BM3D); the
#: origin is then the minimum, as with ``offset=True``.
FAR_FROM_ZERO = 64.0


def value_scale(arr: Any, value_range: tuple[float, float] | None = None,
                *, name: str = "image", offset: bool = True,
                detect_bits: bool = False) -> ValueScale:
    """Return the affine that maps ``arr``'s values to the working scale.

    Integers of up to 16 bits map by their dtype's full range; floats already inside [0, 1]
    are kept as they are; other floats, and integers of 32 or 64 bits (:func:`wide_integer`),
    map by their own minimum and maximum — or by ``value_range`` when given
    (the range of the whole stack when ``arr`` is one part of it, so that a slice, a field of
    view or a batch chunk is scaled exactly as the whole would be). Intensity parameters are
    converted with the same affine (:func:`working_params`), so what they mean never depends
    on this choice. ``offset=False`` keeps zero at zero (``origin = 0``: the working array
    is the data divided by the span). ``detect_bits=True`` maps an unsigned image wider
    than 8 bits by the bit depth it really uses (:func:`nominal_bits`: 12-bit data in
    uint16 maps 0–4095 to [0, 1]), for processors whose result depends on where the values
    sit in the range (histogram equalisation).
    """
    dtype = np.dtype(arr.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        bits = nominal_bits(arr, value_range) if detect_bits else info.bits
        if bits < info.bits:  # unsigned data using fewer bits: 0 … 2**bits − 1
            return ValueScale(dtype, 0.0, float(2**bits - 1), None if offset else 0.0)
        if not wide_integer(dtype):
            return ValueScale(dtype, float(info.min), float(info.max), None if offset else 0.0)
    if value_range is not None:
        try:
            low, high = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise ValueError(f"value_range must be (low, high); got {value_range!r:.60}") from None
        if not (np.isfinite(low) and np.isfinite(high)) or high < low:
            raise ValueError(f"value_range must be finite (low, high) with low <= high; got {value_range!r}")
    else:
        low, high = finite_range(arr, name)
    if low >= 0.0 and high <= 1.0 and dtype.kind == "f":
        return ValueScale(dtype, 0.0, 1.0)
    if high == low:
        high = low + max(1.0, abs(low) * 1e-6)
    if not math.isfinite(high - low):
        raise ValueError(
            f"{name} has values from {low:.6g} to {high:.6g}: their span exceeds the float64 "
            "range, so no intensity can be measured in it; rescale the image (e.g. divide it "
            "by 1e300) first")
    # offset=False keeps zero at zero, unless the values sit so far from it that the working
    # array (float32 for most libraries) would round their differences away
    keep_zero = not offset and max(abs(low), abs(high)) <= FAR_FROM_ZERO * (high - low)
    return ValueScale(dtype, low, high, 0.0 if keep_zero else None, by_values=dtype.kind in "iu")


#: A float32 is within 2**-24 (relative) of the number it was rounded from: float32(0.01) is
#: 0.00999999977648, below 0.01 as a float64, but it is the user's 0.01.
_FLOAT32_ROUNDING = 2.0 ** -23


def snap_to_bound(value: float, *bounds: float | None) -> float:
    """``value``, or the bound it equals within float32 rounding (a float32 ``0.01`` is 0.01)."""
    for bound in bounds:
        if bound is not None and value != bound and \
                abs(value - bound) <= abs(bound) * _FLOAT32_ROUNDING:
            return float(bound)
    return value


def working_params(
    params: Mapping[str, Any],
    units: Mapping[str, int],
    scale: ValueScale,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, Any]:
    """``params`` with every intensity parameter converted to working units.

    ``units`` maps a parameter name to its power of the intensity unit: 1 for intensities
    (σ, NLM ``h``), 2 for power-like values (variances, power spectra); other names pass
    through. ``bounds`` gives (min, max) in working units — fractions of the image's span —
    and values outside are refused with the allowed range in the image's own units.
    """
    out = dict(params)
    for key, power in units.items():
        value = out.get(key)
        if value is None or not power:
            continue
        work = scale.param_to_working(value, power)
        lo, hi = (bounds or {}).get(key, (None, None))
        if not isinstance(work, np.ndarray):
            work = snap_to_bound(work, lo, hi)
        if not isinstance(work, np.ndarray) and (
                (lo is not None and work < lo) or (hi is not None and work > hi)):
            low = "-inf" if lo is None else _g(scale.param_from_working(lo, power))
            high = "inf" if hi is None else _g(scale.param_from_working(hi, power))
            raise ValueError(
                f"{key}={_g(value)} is out of range for this image; allowed [{low}, {high}] "
                f"({scale.describe()}{', squared' if power == 2 else ''})")
        out[key] = work
    return out


def to_working(arr: Any, scale: ValueScale, dtype: Any = np.float32) -> np.ndarray:
    """Return a new C-contiguous float array of ``arr`` mapped to [0, 1] by ``scale``."""
    wd = _working_dtype(scale.dtype, dtype)
    out = np.array(arr, dtype=wd, order="C", copy=True)
    if not scale.identity:
        if max(abs(scale.low), abs(scale.high)) < float(np.finfo(wd).max) / 4:
            if scale.origin:
                out -= wd.type(scale.origin)
            out /= wd.type(scale.span)
        else:  # values near the dtype's limits: in float64, so nothing overflows
            out = ((np.asarray(arr, dtype=np.float64) - scale.origin) / scale.span).astype(wd)
    return out


def from_working(work: np.ndarray, scale: ValueScale, *, residual: bool = False) -> np.ndarray:
    """Map a working array back to the caller's dtype and value range (a new array).

    ``residual=True`` maps a difference (e.g. a grain layer): it is scaled but not offset and
    is returned as floating point, since it is signed.
    """
    work = np.asarray(work)
    if residual:
        out_dtype = scale.dtype if scale.dtype.kind == "f" else np.dtype(np.float32)
        with np.errstate(over="ignore"):
            return _saturate(work.astype(np.float64) * scale.span, out_dtype)
    if scale.dtype.kind == "f":
        if scale.identity:
            return work.astype(scale.dtype, copy=True)
        with np.errstate(over="ignore"):
            return _saturate(work.astype(np.float64) * scale.span + scale.origin, scale.dtype)
    # 8/16-bit integers: float32 arithmetic is exact to well below half a level (16-bit:
    # 65535 * 2**-24 < 0.004), and twice as fast as float64 on large images.
    calc = np.float32 if scale.dtype.itemsize <= 2 and work.dtype == np.float32 else np.float64
    vals = work.astype(calc, copy=True)
    vals *= calc(scale.span)
    if scale.origin:
        vals += calc(scale.origin)
    np.rint(vals, out=vals)
    low, high = scale.low, scale.high
    if scale.by_values:  # a wide integer mapped by its values' range: results may leave it
        # (up to the dtype's limits; for 64 bits the largest float64 below them)
        info = np.iinfo(scale.dtype)
        low = float(info.min)
        high = float(np.nextafter(float(info.max), 0.0)) if info.bits == 64 else float(info.max)
    np.clip(vals, low, high, out=vals)
    return vals.astype(scale.dtype)


def _saturate(vals: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float values as ``dtype``, saturating at its largest finite value (as integers clip).

    A result a little beyond the input's range (a deblurred edge's overshoot) on data near
    float16/32/64's limit would otherwise become ±inf.
    """
    top = float(np.finfo(dtype).max)
    np.clip(vals, -top, top, out=vals)
    return vals.astype(dtype)


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
    params: Mapping[str, Any] | None = None,
    units: Mapping[str, int] | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    resolved: dict[str, Any] | None = None,
    offset: bool = True,
    detect_bits: bool = False,
    runner: Any = None,
    plane_copies: int = 6,
) -> Generator[Progress, None, Any]:
    """Apply a plane processor over an nD stack, yielding :class:`Progress`, returning the result.

    Parameters
    ----------
    func : callable
        ``func(plane, **params) -> result``. ``plane`` is a new C-contiguous float array of
        shape ``(H, W)`` (or ``(Z, H, W)`` when ``plane_ndim=3``), with a trailing colour axis
        of size 3 when ``channel_axis`` is set and ``per_channel`` is False. It may return a
        tuple for several outputs, and it may be a generator yielding sub-progress (a float in
        [0, 1] or any payload object), whose return value is the result. A :class:`Resolved`
        payload reports values the function chose (working units); they reach the caller
        in the image's units.
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
    params : mapping, optional
        Keyword arguments for ``func``, in the image's own units.
    units : mapping of str to int, optional
        The intensity parameters among ``params`` (and among :class:`Resolved` values) and
        their power (1: intensities such as σ; 2: variances, power spectra): they are
        converted to working units with the data's own affine (:func:`working_params`).
    bounds : mapping, optional
        (min, max) of intensity parameters in working units (fractions of the span).
    offset : bool
        Map values into [0, 1] (True), or keep zero at zero and only divide by the span
        (False), for processors whose library is not offset-invariant.
    detect_bits : bool
        Map wide unsigned integers by the bit depth they use (see :func:`value_scale`).
    runner : optional
        For a stack of several planes: runs planes in worker processes, ahead of the one being
        assembled (:class:`napari_restore._workers.PlaneRunner`); results are the same bits.
    plane_copies : int
        Working copies of one plane the run holds at once (for the up-front memory check).
    resolved : dict, optional
        Filled with the values the processor resolved by itself, in the image's units: one
        value, or a list with one per plane when planes differ.
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
    check_cancel(cancel)
    arr, cax = check_image(
        image, name=name, channel_axis=channel_axis, plane_ndim=plane_ndim, min_size=min_size,
        check_finite=False,
    )
    moved = arr if cax is None else _moveaxis(arr, cax, -1)
    core = plane_ndim + (cax is not None)
    lead = tuple(moved.shape[: moved.ndim - core])
    total = math.prod(lead)
    colour = slice(0, 3) if cax is not None else slice(None)
    outputs: list[np.ndarray] | None = None
    n_out = len(residual_outputs)
    dtype = np.dtype(arr.dtype)
    check_memory(moved.shape, dtype, n_out, plane_bytes=math.prod(moved.shape[-core:])
                 * np.dtype(_working_dtype(dtype, work_dtype)).itemsize,
                 extra=extra_memory, name=name, copies=plane_copies)  # before reading data
    if value_range is not None and dtype.kind == "f":
        finite_range(arr, name)
    scale = value_scale(arr, value_range, name=name, offset=offset,  # floats: scans, refuses NaN/Inf
                        detect_bits=detect_bits)
    units = dict(units or {})
    kwargs = working_params(params or {}, units, scale, bounds)
    found: dict[str, list[Any]] = {}

    native = scale.dtype in {np.dtype(d) for d in native_dtypes}
    alpha = cax is not None and moved.shape[-1] == 4
    stopped_early = False
    split = per_channel and cax is not None

    def load(idx: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        src = np.asarray(moved[idx])
        part = src[..., colour] if cax is not None else src
        return src, _native_plane(part) if native else to_working(part, scale, work_dtype)

    ahead = _Ahead(runner, load, np.ndindex(*lead), kwargs, split) if total > 1 and runner else None
    for i, idx in enumerate(np.ndindex(*lead)):
        if _is_cancelled(cancel):
            if ahead is not None:
                ahead.close()
            raise Cancelled(f"cancelled after {i} of {total} planes")
        if ahead is not None:
            src, plane, gen = ahead.next(i)
        else:
            src, plane = load(idx)
            gen = _call_plane(functools.partial(func, **kwargs) if kwargs else func, plane,
                              split)
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
                if isinstance(sub, Resolved):
                    sub = Resolved({k: scale.param_from_working(v, units.get(k, 0))
                                    for k, v in sub.values.items()})
                    for k, v in sub.values.items():
                        found.setdefault(k, []).append(v)
                elif hasattr(sub, "with_scale"):  # a measurement that records its units
                    sub = sub.with_scale(scale)
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
    if resolved is not None:
        resolved.update(_collapse(found))
    if cax is not None:
        outputs = [np.ascontiguousarray(np.moveaxis(o, -1, cax)) for o in outputs]
    return outputs[0] if n_out == 1 else tuple(outputs)


class _Ahead:
    """Planes submitted to a runner ahead of the one :func:`iter_planes` is assembling.

    The runner's jobs are terminated when the run ends early (error, Stop, an abandoned
    generator): :meth:`next` closes it on any exception, and so does garbage collection.
    """

    def __init__(self, runner: Any, load: Callable[[Any], Any], indices: Iterator[Any],
                 kwargs: Mapping[str, Any], split: bool) -> None:
        self.runner, self.load, self.indices = runner, load, indices
        self.kwargs, self.split = dict(kwargs), split
        self.loaded: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        self.count = 0

    def _fill(self, upto: int) -> None:
        while self.count <= upto:
            idx = next(self.indices, None)
            if idx is None:
                return
            src, plane = self.load(idx)
            self.loaded[self.count] = (src, plane, self.runner.submit(plane, self.kwargs, self.split))
            self.count += 1

    def next(self, i: int) -> tuple[np.ndarray, np.ndarray, Generator[Any, None, Any]]:
        try:
            self._fill(i + self.runner.lookahead)
            src, plane, job = self.loaded.pop(i)
        except BaseException:
            self.close()
            raise
        return src, plane, self._wait(job)

    def _wait(self, job: int) -> Generator[Any, None, Any]:
        done = False
        try:
            res = yield from self.runner.wait(job)
            done = True
            return res
        finally:
            if not done:
                self.close()

    def close(self) -> None:
        self.loaded.clear()
        self.runner.close()

    def __del__(self) -> None:
        try:
            self.runner.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _collapse(found: dict[str, list[Any]]) -> dict[str, Any]:
    """One value per name when all planes (and colour channels) agree, else the list."""
    out: dict[str, Any] = {}
    for k, vals in found.items():
        plain = [v.item() if isinstance(v, np.generic) else v for v in vals]
        out[k] = plain[0] if all(v == plain[0] for v in plain) else plain
    return out


def available_memory() -> int:
    """Bytes of memory available to this process now (psutil; a large number if unknown)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil missing or unsupported platform
        return 1 << 62


def check_memory(shape: tuple[int, ...], dtype: Any, n_out: int = 1, *, plane_bytes: int = 0,
                 extra: int = 0, name: str = "image", copies: int = 6) -> int:
    """Refuse up front a run whose memory would exceed what is available.

    Needed: the outputs (``n_out`` arrays of ``shape``), ``copies`` working copies of one
    plane (untiled, about six: conversion, the processor's own temporaries, the converted
    result; tiled, three) and ``extra`` (what the processor says it needs, e.g. a network's
    activations: for a tiled run, those of the tiles in flight). Raises ``ValueError`` with
    the sizes, instead of leaving the process to the out-of-memory killer. Whether a run is
    tiled is decided before, from the shape alone (:func:`napari_restore._tiles.needs_tiling`),
    so that this check only ever refuses, and never changes a result.
    """
    need = n_out * math.prod(shape) * max(np.dtype(dtype).itemsize, 4) + copies * plane_bytes + extra
    have = available_memory()
    if need > have and copies < 6:  # a tiled run (napari_restore._tiles.TILED_COPIES)
        gib = 1 << 30
        raise ValueError(
            f"{name} of shape {tuple(shape)} needs about {need / gib:.1f} GiB of memory even "
            f"in tiles (its result alone is {n_out * math.prod(shape) * max(np.dtype(dtype).itemsize, 4) / gib:.1f} GiB), "
            f"but only {have / gib:.1f} GiB are available: process a smaller field of view or "
            "fewer planes, or use `napari-restore apply`, which streams stacks to disk")
    if need > have:
        gib = 1 << 30
        raise ValueError(
            f"{name} of shape {tuple(shape)} needs about {need / gib:.1f} GiB of memory for this "
            f"run, but only {have / gib:.1f} GiB are available: process a smaller field of view "
            "or fewer planes, run in tiles (tile='auto') where the processor offers it, or use "
            "`napari-restore apply`, which streams stacks to disk"
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


@dataclass(frozen=True)
class SingleImage:
    """One image (not a stack) through the boundary, for functions that return something
    other than an image (a profile, a prediction, a metric) or that work on the whole image
    at once (see :func:`single_image`).

    Attributes
    ----------
    work : ndarray
        The working array: ``(H, W)``, or ``(H, W, 3)`` for colour (alpha removed).
    scale : ValueScale
        The affine of the values (intensity parameters convert with it).
    channel_axis : int or None
        The caller's colour axis (normalised), or None.
    alpha : ndarray or None
        The caller's alpha channel, untouched, for RGBA input.
    shape : tuple
        The caller's shape.
    """

    work: np.ndarray
    scale: ValueScale
    channel_axis: int | None
    alpha: np.ndarray | None
    shape: tuple[int, ...]

    def back(self, work: np.ndarray, *, residual: bool = False) -> np.ndarray:
        """A working array of this image's layout in the caller's dtype, range and layout;
        alpha passes through (a residual's alpha is zero)."""
        out = from_working(work, self.scale, residual=residual)
        if self.channel_axis is None:
            return out
        if self.alpha is not None:
            alpha = np.zeros_like(self.alpha, dtype=out.dtype) if residual else \
                self.alpha.astype(out.dtype)
            out = np.concatenate([out, alpha[..., None]], axis=-1)
        return np.ascontiguousarray(np.moveaxis(out, -1, self.channel_axis))


def single_image(
    image: Any,
    *,
    channel_axis: int | None = None,
    name: str = "image",
    min_size: int = 1,
    scale: ValueScale | None = None,
    work_dtype: Any = np.float32,
    spatial_ndim: int | None = 2,
    value_range: tuple[float, float] | None = None,
    any_dtype: bool = False,
    detect_bits: bool = False,
) -> SingleImage:
    """Validate one image and return it as a :class:`SingleImage` working array.

    ``scale``: the affine of an image this one belongs with (e.g. the original of a
    denoised version), used when the dtypes agree (or always, with ``any_dtype``: metrics
    compare an image on its reference's scale), so that both share one working scale.
    ``spatial_ndim``: the spatial dimensions required (None: any, e.g. metrics on stacks).
    """
    arr, cax = check_image(image, name=name, channel_axis=channel_axis, min_size=min_size,
                           plane_ndim=spatial_ndim or 1, check_finite=False)
    spatial = arr.ndim - (cax is not None)
    if spatial_ndim is not None and spatial != spatial_ndim:
        raise ValueError(
            f"{name} must be a single {spatial_ndim}-D image (plus channel_axis for colour); "
            f"got shape {tuple(arr.shape)}. Process a stack plane by plane.")
    check_memory(tuple(arr.shape), arr.dtype, 1, plane_bytes=math.prod(arr.shape) * 8, name=name)
    if scale is None or (np.dtype(arr.dtype) != scale.dtype and not any_dtype):
        scale = value_scale(arr, value_range, name=name, detect_bits=detect_bits)
    elif np.dtype(arr.dtype).kind == "f":
        finite_range(arr, name)
    data = np.asarray(arr)
    alpha = None
    if cax is not None:
        data = np.moveaxis(data, cax, -1)
        if data.shape[-1] == 4:
            alpha = data[..., 3]
        data = data[..., :3]
    return SingleImage(to_working(data, scale, work_dtype), scale, cax, alpha, tuple(arr.shape))


#: How far (in spans of the image) a companion image's values may lie outside the image's
#: range and still be a version of it (a denoised estimate may overshoot a little).
COMPANION_MARGIN = 1.0


def companion_image(
    image: Any,
    like: SingleImage,
    *,
    channel_axis: int | None = None,
    name: str = "denoised",
    min_size: int = 1,
    work_dtype: Any = np.float32,
    spatial_ndim: int | None = 2,
) -> np.ndarray:
    """A version of the image ``like`` (its denoised estimate), on ``like``'s working scale.

    Its values are read in the image's own units (grey levels for integer images, values for
    float images); an integer image of another dtype by its dtype's range, and a float image
    in [0, 1] given for an integer image as fractions of the range (scikit-image's
    ``img_as_float``). The shape must match, and the values must lie on the image's scale:
    more than :data:`COMPANION_MARGIN` spans outside the image's range is a ``ValueError``
    naming ``name`` (a denoised version multiplied by 1000, in the wrong units).
    ``spatial_ndim`` as for :func:`single_image` (None: any, e.g. metrics on volumes).
    """
    arr = as_image(image, name)
    if tuple(arr.shape) != tuple(like.shape):
        raise ValueError(
            f"{name} has shape {tuple(arr.shape)}; it must match image {tuple(like.shape)}")
    dtype, scale = np.dtype(arr.dtype), like.scale
    own: ValueScale | None = scale
    if dtype != scale.dtype and dtype.kind in "iu":
        own = None  # by its own dtype's range
    elif dtype != scale.dtype and scale.dtype.kind in "iu":
        lo, hi = finite_range(arr, name)
        own = None if 0.0 <= lo and hi <= 1.0 else scale  # fractions, or the image's units
    work = single_image(image, channel_axis=channel_axis, name=name, min_size=min_size,
                        scale=own, work_dtype=work_dtype, any_dtype=True,
                        spatial_ndim=spatial_ndim).work
    if own is None:  # own dtype's range: [0, 1] in working units already
        return work
    lo, hi = float(work.min()), float(work.max())
    if lo < -COMPANION_MARGIN or hi > 1.0 + COMPANION_MARGIN:
        def units(v: float) -> str:
            return _g(v * scale.span + scale.origin)

        raise ValueError(
            f"{name} is not on the image's scale: its values run from {units(lo)} to "
            f"{units(hi)}, the image's from {_g(scale.low)} to {_g(scale.high)} "
            f"({scale.unit}); give a version of this image in the same units")
    return work


def drain(result: Any) -> Any:
    """The result of a plane function called directly by another plane function: a plain
    value as it is, a generator run to its return value (its progress items dropped)."""
    if not isinstance(result, Generator):
        return result
    while True:
        try:
            next(result)
        except StopIteration as stop:
            return stop.value
