"""Processor specs: each processor is described once, everything else is derived from it.

A :class:`ProcessorSpec` couples one pure plane function with the description of its
parameters (:class:`Param`), the kind of input it works on and its outputs. The dock panels,
recipes, the batch CLI and the docs tables are all generated from these specs; validation of
parameter values happens here, so the functions, the panels and the recipes share one set of
rules and one set of error messages.

Adding a processor = writing its plane function and calling :func:`register` with a spec.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .. import _tiles, _workers
from .._arrays import (CancelLike, Progress, as_image, check_cancel, iter_planes,
                      run_to_completion, snap_to_bound)

InputKind = Literal["plane2d", "rgb", "volume3d"]

_MISSING = object()


@dataclass(frozen=True)
class Param:
    """One parameter of a processor.

    Attributes
    ----------
    name : str
        Keyword name in the public function.
    type : type
        ``float``, ``int``, ``bool``, ``str`` or ``tuple`` (a pair of ints).
    default : object
        Default value (``None`` only when ``optional``).
    doc : str
        One-line description; becomes the widget tooltip and the docs table entry.
    min, max : float, optional
        Inclusive bounds for numbers (each element for tuples).
    choices : tuple, optional
        Allowed values for a ``str`` parameter.
    optional : bool
        ``None`` is allowed and means "automatic" (e.g. estimate sigma).
    key : bool
        Shown in result layer names.
    step : float, optional
        Widget step for numbers.
    label : str, optional
        Widget label / short name in layer names (defaults to ``name``).
    intensity : int
        0 for a plain number; 1 for an intensity in the image's own units (grey levels for
        integer images, values for float images), e.g. a noise σ or NLM ``h``; 2 for a
        power-like value (a variance, a power spectrum). The array boundary converts exactly
        these parameters with the data's affine (:func:`napari_restore._arrays.working_params`);
        their ``min``/``max`` are then fractions of the image's span (of its square for 2),
        checked against the image once it is known.
    """

    name: str
    type: type
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    optional: bool = False
    key: bool = False
    step: float | None = None
    label: str | None = None
    length: int = 2  # for tuple parameters
    intensity: int = 0
    validator: Callable[[Any], Any] | None = None  # replaces the type rules (e.g. ``tile``)

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise naming the parameter."""
        if self.validator is not None:
            return self.validator(value)
        if value is None:
            if self.optional:
                return None
            raise TypeError(f"{self.name} must not be None")
        if self.type is bool:
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"{self.name} must be True or False; got {value!r}")
            return bool(value)
        if self.type is str:
            if not isinstance(value, str):
                raise TypeError(f"{self.name} must be a string; got {type(value).__name__}")
            if self.choices is not None and value not in self.choices:
                allowed = ", ".join(repr(c) for c in self.choices)
                raise ValueError(f"{self.name}={value!r} is not allowed; choose one of {allowed}")
            return value
        if self.type is tuple:
            if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
                raise TypeError(
                    f"{self.name} must be a sequence of {self.length} integers; got {value!r}"
                )
            if len(value) != self.length:
                raise ValueError(
                    f"{self.name} must have {self.length} entries; got {len(value)} ({value!r})"
                )
            return tuple(self._number(v, int) for v in value)
        return self._number(value, self.type)

    def _number(self, value: Any, kind: type) -> Any:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise TypeError(f"{self.name} must be a {kind.__name__}; got {value!r}")
        if kind is int:
            if isinstance(value, float | np.floating) and not float(value).is_integer():
                raise TypeError(f"{self.name} must be an integer; got {value!r}")
            out: Any = int(value)
        else:
            try:
                out = float(value)
            except OverflowError:  # an integer beyond float range (e.g. from hostile JSON)
                out = math.inf
            if not math.isfinite(out):
                raise ValueError(f"{self.name} must be finite; got {value!r:.40}")
            out = snap_to_bound(out, self.min, self.max)
        if self.intensity:
            # In the image's units: the bounds are checked against the image (the boundary);
            # only the sign is known without it.
            if self.min is not None and self.min >= 0 and out < 0:
                raise ValueError(f"{self.name}={_num(out)} is out of range; it must be >= 0 "
                                 "(in the image's own units)")
            return out
        if self.min is not None and out < self.min:
            raise ValueError(f"{self.name}={_num(out)} is out of range; allowed {self.range_text()}")
        if self.max is not None and out > self.max:
            raise ValueError(f"{self.name}={_num(out)} is out of range; allowed {self.range_text()}")
        return out

    def range_text(self) -> str:
        """Human-readable allowed values (for errors and docs)."""
        if self.choices is not None:
            return ", ".join(repr(c) for c in self.choices)
        if self.type is bool:
            return "True, False"
        if self.intensity:
            lo = "-∞" if self.min is None else f"{self.min:g}"
            hi = "∞" if self.max is None else f"{self.max:g}"
            text = (f"{lo} to {hi} × the image's span{'²' if self.intensity == 2 else ''}, "
                    "in the image's own units (grey levels for integer images, values for "
                    "float images)")
            return text + (" or None (automatic)" if self.optional else "")
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        text = f"[{lo}, {hi}]" if self.type is not str else "any string"
        if self.optional:
            text += " or None (automatic)"
        return text

    @property
    def short(self) -> str:
        return self.label or self.name


def _num(value: Any) -> str:
    """A number as a person writes it (``6.03``, not ``np.float64(6.033…)``)."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        text = str(int(value))
        return text if len(text) <= 20 else f"an integer of {len(text)} digits"
    try:
        return f"{float(value):.6g}"
    except (OverflowError, ValueError, TypeError):
        return f"{value!r:.40}"


@dataclass(frozen=True)
class Output:
    """One output of a processor: ``kind="image"`` keeps the input's dtype and value range;
    ``kind="residual"`` is a signed difference returned as float (e.g. a grain layer).

    ``keeps_scale`` says whether the output's values mean what the input's do (a denoised
    image: shown with the source's contrast limits) or not (contrast enhancement, a residual:
    shown with limits from its own data). ``None`` means ``kind == "image"``.
    """

    name: str = "result"
    kind: Literal["image", "residual"] = "image"
    keeps_scale: bool | None = None

    def __post_init__(self) -> None:
        if self.keeps_scale is None:
            object.__setattr__(self, "keeps_scale", self.kind == "image")


@dataclass(frozen=True)
class ProcessorSpec:
    """The single description of a processor.

    Attributes
    ----------
    name : str
        Registry key, used in recipes, layer names and the CLI (e.g. ``"classic_denoise"``).
    title : str
        Human title (panel and menu).
    plane_func : callable
        ``plane_func(plane, **params)`` on a working array in [0, 1] (see
        :func:`napari_restore._arrays.iter_planes`); may be a generator yielding sub-progress.
    params : tuple of Param
    input_kind : {"plane2d", "rgb", "volume3d"}
        ``plane2d``: greyscale planes (colour is processed channel by channel);
        ``rgb``: greyscale planes or colour planes ``(H, W, 3)`` handled jointly;
        ``volume3d``: 3-D volumes, applied per volume over leading axes.
    outputs : tuple of Output
    summary : str
        One paragraph for the docs/panel.
    min_size : int
        Smallest spatial size the processor accepts.
    work_dtype : numpy dtype
        Working precision (float32, or float64 where the library needs it).
    prepare : callable, optional
        ``prepare(params, image) -> params`` resolves input-dependent values (e.g. an
        OpenCV bit depth of "auto") for one run. The user's choice is what gets recorded;
        what it resolved to is reported beside it (``resolved=`` of :meth:`iter_apply`).
    check : callable, optional
        ``check(params, image)`` for cross-parameter / image-dependent validation.
    stop_keeps_result : bool
        Stop in the panel keeps the processor's best result so far (an iterative plane
        function catches :class:`~napari_restore._arrays.Cancelled` and returns it) instead
        of discarding the run.
    default_target : {"layer", "slice", "view"}
        What the panel processes by default: the whole layer (plane by plane), the current
        slice, or the visible field of view of the current slice (slow processors).
    isolate : bool
        Run each plane call in a worker process when a ``cancel`` is given (panel and batch
        runs), so that Stop takes effect within a fraction of a second even in the middle of
        a long library call (see :mod:`napari_restore._isolate`). ``plane_func`` and the
        parameter values must then be picklable. Plain function calls stay in-process.
    memory : callable, optional
        ``memory(params, plane_shape) -> bytes`` the processor needs beyond the working
        arrays (e.g. a network's activations); checked up front with the available memory.
    native_dtypes : tuple of str
        Input dtypes that ``plane_func`` takes as they are (read-only, values unscaled)
        instead of as working floats, for processors with a fast path (LB-CLAHE's 8-bit
        path); a result in that dtype is used as it is. See
        :func:`~napari_restore._arrays.iter_planes`.
    arrays : tuple of (name, array, power)
        Array arguments of ``plane_func`` that cannot be spec parameters (a PSD, a PSF):
        passed to every plane call, converted to working units like an intensity parameter
        of that power (0: unitless). Set with :func:`with_arrays`; never recorded in recipes.
    offset : bool
        True: working values lie in [0, 1] (the data's affine). False: zero stays at zero
        and values are only divided by the span, for libraries that are not offset-invariant
        (bm3d/bm4d), so that a run equals the direct library call in the image's units.
    detect_bits : bool
        Map unsigned images wider than 8 bits by the bit depth they really use (12-bit data
        in uint16: 0–4095), for processors whose result depends on where values sit in the
        range (CLAHE's histograms); see :func:`napari_restore._arrays.value_scale`.
    footprint : callable, optional
        ``footprint(params, plane_shape) -> int``: the halo in pixels beyond which a result
        pixel does not depend on the input. Set = the processor can run in overlapping tiles
        (``tile=`` of :meth:`iter_apply`; :mod:`napari_restore._tiles`). None = not tileable.
    tile_params : callable, optional
        ``tile_params(plane, params, window) -> (params, resolved)``: every automatic
        parameter resolved on the whole working plane, for all of its tiles of spatial shape
        ``window`` (default: a ``sigma`` of None is estimated; see
        :func:`napari_restore._tiles.plane_params`).
    prepared_units : tuple of (name, power)
        Values that ``prepare`` adds to a run in the image's units (e.g. the input's value
        range): converted to working units like intensity parameters of that power.
    """

    name: str
    title: str
    plane_func: Callable[..., Any]
    params: tuple[Param, ...]
    input_kind: InputKind = "plane2d"
    outputs: tuple[Output, ...] = (Output(),)
    summary: str = ""
    min_size: int = 1
    work_dtype: Any = np.float32
    prepare: Callable[[dict, Any], dict] | None = None
    check: Callable[[dict, Any], None] | None = None
    references: tuple[str, ...] = field(default=())
    stop_keeps_result: bool = False
    default_target: Literal["layer", "slice", "view"] = "layer"
    isolate: bool = False
    memory: Callable[[dict, tuple[int, ...]], int] | None = None
    native_dtypes: tuple[str, ...] = ()
    arrays: tuple[tuple[str, Any, int], ...] = ()
    offset: bool = True
    detect_bits: bool = False
    footprint: Callable[[dict, tuple[int, ...]], int] | None = None
    tile_params: Callable[[Any, dict, tuple[int, int]], tuple[dict, dict]] | None = None
    prepared_units: tuple[tuple[str, int], ...] = ()

    @property
    def plane_ndim(self) -> int:
        return 3 if self.input_kind == "volume3d" else 2

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults and validate every value; unknown names raise ``TypeError``."""
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(
                f"{self.name} got unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known)) or 'none'}"
            )
        return {p.name: p.validate(params.get(p.name, p.default)) for p in self.params}

    @property
    def units(self) -> dict[str, int]:
        """The intensity parameters and their power (see :attr:`Param.intensity`)."""
        return {p.name: p.intensity for p in self.params if p.intensity}

    @property
    def bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """(min, max) of the intensity parameters, as fractions of the image's span."""
        return {p.name: (p.min, p.max) for p in self.params if p.intensity}

    def iter_apply(
        self,
        image: Any,
        *,
        channel_axis: int | None = None,
        cancel: CancelLike = None,
        value_range: tuple[float, float] | None = None,
        resolved: dict[str, Any] | None = None,
        tile: Any = None,
        workers: int | None = None,
        **params: Any,
    ) -> Generator[Progress, None, Any]:
        """Validate, then run plane by plane; yields :class:`Progress`, returns the result.

        ``value_range`` scales float input by a given (min, max) — the whole stack's, when
        ``image`` is a slice, a field of view or a batch chunk of it. ``resolved``, when
        given, is filled with what every automatic choice resolved to for this input (in
        the image's units), beside the user's choices in ``params``.

        ``tile`` is None (untiled, unless :func:`~napari_restore._tiles.needs_tiling`), "auto"
        or (rows, cols): overlapping tiles, blended (:mod:`napari_restore._tiles`); the tile
        size used is reported as ``resolved["tile"]``. Tiles, and the planes of a stack of an
        ``isolate`` processor, run on ``workers`` worker processes (default: the machine's
        cores; :mod:`napari_restore._workers`); the result does not depend on that number.
        """
        check_cancel(cancel)
        workers = _workers.check_workers(workers)
        tiled = any(p.name == "tile" for p in self.params)
        if tiled:
            params = {**params, "tile": tile}
        elif tile is not None and _tiles.check_tile(tile) != "off":
            raise ValueError(
                f"tile={tile!r}: {self.name} cannot run in tiles (its result at one pixel "
                "depends on the whole plane); use tile=None")
        arr = as_image(image)
        values = self.check_params(arr, params)
        if _poisson_gaussian(values):  # GAT → this run at σ = 1 → exact inverse (vst.py)
            from . import vst

            return (yield from vst.iter_apply_vst(
                self, arr, values, channel_axis=channel_axis, cancel=cancel,
                value_range=value_range, resolved=resolved, workers=workers))
        tile = values.pop("tile", "off")
        run = self.prepare(dict(values), arr) if self.prepare is not None else values
        if resolved is not None:
            resolved.update({k: v for k, v in run.items() if values.get(k) != v})
        units = {**self.units, **dict(self.prepared_units)}
        if self.arrays:
            run = {**run, **{name: value for name, value, _ in self.arrays}}
            units.update({name: power for name, _, power in self.arrays})
        report: dict[str, Any] = {}
        tiling = self._tiling(tile, arr, channel_axis, values, report)
        runner = None
        if tiling is not None:
            func: Callable[..., Any] = _tiles.TiledPlane(
                self, tiling, cancel=cancel, workers=workers, report=report)
        elif self.isolate and cancel is not None:
            func = functools.partial(_isolated_call, self.plane_func, cancel, self.name)
        else:
            func = self.plane_func
        if tiling is None and self.isolate and not _workers.in_worker():
            runner = _workers.PlaneRunner(self.plane_func, cancel=cancel, workers=workers)
        result = yield from iter_planes(
            func,
            arr,
            params=run,
            units=units,
            bounds=self.bounds,
            resolved=resolved,
            channel_axis=channel_axis,
            plane_ndim=self.plane_ndim,
            per_channel=self.input_kind == "plane2d",
            residual_outputs=tuple(o.kind == "residual" for o in self.outputs),
            work_dtype=self.work_dtype,
            native_dtypes=self.native_dtypes,
            min_size=self.min_size,
            cancel=cancel,
            value_range=value_range,
            offset=self.offset,
            detect_bits=self.detect_bits,
            extra_memory=self._extra_memory(run, arr, channel_axis, tiling, workers),
            runner=runner,
            plane_copies=_tiles.TILED_COPIES if tiling is not None else _tiles.WORK_COPIES,
        )
        if resolved is not None:
            resolved.update(report)
        return result

    def plane_shape(self, image: Any, channel_axis: int | None) -> tuple[int, ...] | None:
        """The spatial shape of one plane of ``image`` (None when it has no usable shape)."""
        try:
            shape = [s for i, s in enumerate(image.shape)
                     if channel_axis is None or i != int(channel_axis) % image.ndim]
        except (AttributeError, TypeError, ValueError, ZeroDivisionError):
            return None  # not an array: the boundary rejects it with a clear message
        if len(shape) < self.plane_ndim:
            return None
        return tuple(int(s) for s in shape[-self.plane_ndim:])

    def _tiling(self, tile: Any, image: Any, channel_axis: int | None,
                values: dict[str, Any], report: dict[str, Any]) -> Any:
        """The tile request to run with ("auto" or (rows, cols)), or None for untiled."""
        if tile != "off":
            return tile
        shape = self.plane_shape(image, channel_axis)
        if shape is None or self.footprint is None:
            return None
        if _tiles.needs_tiling(self, shape, image.dtype, values):
            report["tile_reason"] = (
                f"tiled by default: an untiled {'x'.join(map(str, shape))} plane needs more "
                f"than {_tiles.UNTILED_BYTES / 2**30:g} GiB")
            return "auto"
        return None

    def _extra_memory(self, values: dict[str, Any], image: Any, channel_axis: int | None,
                      tiling: Any = None, workers: int | None = None) -> int:
        if self.memory is None:
            return 0
        shape = self.plane_shape(image, channel_axis)
        if shape is None:
            return 0
        if tiling is not None:  # each worker holds one window at a time
            window = _tiles.window_shape(self, tiling, shape, values)
            return int(self.memory(values, window)) * (workers or _workers.pool_size())
        return int(self.memory(values, shape))

    def check_params(self, image: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        """The user's parameter values, validated (also against ``image``: ``check``).

        Automatic choices stay as the user made them ("auto", None): they are resolved for
        each input by the run itself, and reported beside (``resolved=``).
        """
        values = self.validate_params(params)
        if self.check is not None:
            self.check(values, image)
        return values

    def apply(
        self,
        image: Any,
        *,
        channel_axis: int | None = None,
        progress: Callable[[Progress], None] | None = None,
        cancel: CancelLike = None,
        value_range: tuple[float, float] | None = None,
        resolved: dict[str, Any] | None = None,
        tile: Any = None,
        workers: int | None = None,
        **params: Any,
    ) -> Any:
        """Run to completion and return the result (see :meth:`iter_apply`)."""
        return run_to_completion(
            self.iter_apply(image, channel_axis=channel_axis, cancel=cancel,
                            value_range=value_range, resolved=resolved, tile=tile,
                            workers=workers, **params),
            progress,
        )

    def key_text(self, params: Mapping[str, Any]) -> str:
        """Short text of the key parameters, for layer names: ``"nl_means σ=auto"``."""
        parts = []
        for p in self.params:
            if not p.key:
                continue
            v = params.get(p.name, p.default)
            if v is None:
                text = "auto"
            elif isinstance(v, float):
                text = f"{v:.3g}"
            elif isinstance(v, tuple):
                text = "x".join(str(x) for x in v)
            else:
                text = str(v)
            parts.append(text if p.type is str else f"{p.short}={text}")
        return " ".join(parts)


def _poisson_gaussian(values: Mapping[str, Any]) -> bool:
    """``noise_model`` asks for Poisson–Gaussian noise (:mod:`.vst` wraps the run)."""
    nm = values.get("noise_model")
    return isinstance(nm, str) and nm.startswith("poisson-gaussian")


REGISTRY: dict[str, ProcessorSpec] = {}

#: The ``tile`` parameter of every tileable processor (a spec with a ``footprint``): panels
#: show it as off/auto, recipes record it, the API also takes (rows, cols).
TILE = Param(
    "tile", str, "off",
    "Overlapping tiles, blended: off = the whole plane at once (tiled anyway only when it "
    "cannot fit, see Large images in the docs); auto = strips about 512 rows high (at most "
    "about 2048 px wide) run on all cores; (rows, cols) in the Python API and recipes = that tile size in pixels.",
    choices=("off", "auto"), validator=_tiles.check_tile)


def with_arrays(spec: ProcessorSpec, units: Mapping[str, int] | None = None,
                **arrays: Any) -> ProcessorSpec:
    """An unregistered copy of ``spec`` whose plane calls also get ``arrays``.

    ``units`` gives each array's power of the intensity unit (see :attr:`Param.intensity`):
    the boundary converts it from the image's units to working units, as it converts the
    intensity parameters.
    """
    import dataclasses

    units = dict(units or {})
    return dataclasses.replace(spec, arrays=spec.arrays + tuple(
        (name, value, int(units.get(name, 0))) for name, value in arrays.items()))


def public_signature(spec: ProcessorSpec, *, after: tuple[tuple[str, Any], ...] = (),
                     returns: Any = "np.ndarray") -> Any:
    """The signature of a processor's public function, made from its spec.

    ``image`` first, then every spec parameter as keyword-only with its default (so the
    spec is the one place a parameter is written), then the ``after`` (name, default)
    pairs such as ``channel_axis``. Set it as the function's ``__signature__``.
    """
    import inspect

    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("image", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for p in spec.params:
        annotation = p.type.__name__ + (" | None" if p.optional else "")
        params.append(inspect.Parameter(p.name, kw, default=p.default, annotation=annotation))
    params += [inspect.Parameter(name, kw, default=default) for name, default in after]
    return inspect.Signature(params, return_annotation=returns)


def params_docstring(spec: ProcessorSpec, indent: str = "    ") -> str:
    """The numpydoc ``Parameters`` entries of ``spec``'s parameters (name : type, doc)."""
    import textwrap

    lines = []
    for p in spec.params:
        kind = p.type.__name__ + (" or None" if p.optional else "")
        if p.choices:
            kind = "{" + ", ".join(repr(c) for c in p.choices) + "}"
        lines.append(f"{indent}{p.name} : {kind}")
        lines += textwrap.wrap(f"{p.doc} Default {p.default!r}.", 88 - 2 * len(indent),
                               initial_indent=2 * indent, subsequent_indent=2 * indent)
    return "\n".join(lines)


def _isolated_call(plane_func: Callable[..., Any], cancel: CancelLike, name: str,
                   plane: Any, **params: Any) -> Any:
    """One plane call in a worker process that Stop can end (see :mod:`.._isolate`)."""
    from .._isolate import isolated

    return isolated(functools.partial(plane_func, **params), cancel, name)(plane)


def register(spec: ProcessorSpec, *, replace: bool = False) -> ProcessorSpec:
    """Add ``spec`` to the registry (``replace=True`` to overwrite an existing entry)."""
    if spec.name in REGISTRY and not replace:
        raise ValueError(f"a processor named {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def get_processor(name: str) -> ProcessorSpec:
    """Return the spec registered under ``name`` (``ValueError`` listing the known names)."""
    from . import _load_all

    _load_all()
    if not isinstance(name, str):
        raise TypeError(f"processor name must be a string such as 'classic_denoise'; "
                        f"got {type(name).__name__} {name!r:.60}")
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise ValueError(f"unknown processor {name!r:.80}; known processors: {known}") from None
