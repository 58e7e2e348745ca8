"""Processor specs: each processor is described once, everything else is derived from it.

A :class:`ProcessorSpec` couples one pure plane function with the description of its
parameters (:class:`Param`), the kind of input it works on and its outputs. The dock panels,
recipes, the batch CLI and the docs tables are all generated from these specs; validation of
parameter values happens here, so the functions, the panels and the recipes share one set of
rules and one set of error messages.

Adding a processor = writing its plane function and calling :func:`register` with a spec.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .._arrays import CancelLike, Progress, iter_planes, run_to_completion

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

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise naming the parameter."""
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
        if self.min is not None and out < self.min:
            raise ValueError(f"{self.name}={value!r:.40} is out of range; allowed {self.range_text()}")
        if self.max is not None and out > self.max:
            raise ValueError(f"{self.name}={value!r:.40} is out of range; allowed {self.range_text()}")
        return out

    def range_text(self) -> str:
        """Human-readable allowed values (for errors and docs)."""
        if self.choices is not None:
            return ", ".join(repr(c) for c in self.choices)
        if self.type is bool:
            return "True, False"
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        text = f"[{lo}, {hi}]" if self.type is not str else "any string"
        if self.optional:
            text += " or None (automatic)"
        return text

    @property
    def short(self) -> str:
        return self.label or self.name


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
        OpenCV bit depth of "auto") before the run; the result is what gets recorded.
    check : callable, optional
        ``check(params, image)`` for cross-parameter / image-dependent validation.
    stop_keeps_result : bool
        Stop in the panel keeps the processor's best result so far (an iterative plane
        function catches :class:`~napari_restore._arrays.Cancelled` and returns it) instead
        of discarding the run.
    panel_extras : str, optional
        ``"module:function"`` called as ``function(panel)`` after a panel for this spec is
        built, to add extra widgets (plots, live views) wired to the panel's ``events``.
        A string, so that processors never import widget code.
    default_target : {"layer", "slice", "view"}
        What the panel processes by default: the whole layer (plane by plane), the current
        slice, or the visible field of view of the current slice (slow processors).
    isolate : bool
        Run each plane call in a worker process when a ``cancel`` is given (panel and batch
        runs), so that Stop takes effect within a fraction of a second even in the middle of
        a long library call (see :mod:`napari_restore._isolate`). ``plane_func`` and the
        parameter values must then be picklable. Plain function calls stay in-process.
    thread_safe : bool
        False when the library behind ``plane_func`` must not run in two threads of one
        process at once (bm3d/bm4d's binary core aborts the process): calls are then
        serialised by a per-processor lock, so a panel run, a preview and a threaded batch
        can never overlap inside the library.
    memory : callable, optional
        ``memory(params, plane_shape) -> bytes`` the processor needs beyond the working
        arrays (e.g. a network's activations); checked up front with the available memory.
    native_dtypes : tuple of str
        Input dtypes that ``plane_func`` takes as they are (read-only, values unscaled)
        instead of as working floats, for processors with a fast path (LB-CLAHE's 8-bit
        path); a result in that dtype is used as it is. See
        :func:`~napari_restore._arrays.iter_planes`.
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
    panel_extras: str | None = None
    default_target: Literal["layer", "slice", "view"] = "layer"
    isolate: bool = False
    thread_safe: bool = True
    memory: Callable[[dict, tuple[int, ...]], int] | None = None
    native_dtypes: tuple[str, ...] = ()

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

    def iter_apply(
        self,
        image: Any,
        *,
        channel_axis: int | None = None,
        cancel: CancelLike = None,
        value_range: tuple[float, float] | None = None,
        **params: Any,
    ) -> Generator[Progress, None, Any]:
        """Validate, then run plane by plane; yields :class:`Progress`, returns the result.

        ``value_range`` scales float input by a given (min, max) — the whole stack's, when
        ``image`` is a slice, a field of view or a batch chunk of it.
        """
        values = self.resolve_params(image, params)
        if self.isolate and cancel is not None:
            import functools

            from .._isolate import isolated

            func: Callable[[Any], Any] = isolated(
                functools.partial(self.plane_func, **values), cancel, self.name
            )
        else:
            func = self._bound(values)
        return (
            yield from iter_planes(
                func,
                image,
                channel_axis=channel_axis,
                plane_ndim=self.plane_ndim,
                per_channel=self.input_kind == "plane2d",
                residual_outputs=tuple(o.kind == "residual" for o in self.outputs),
                work_dtype=self.work_dtype,
                native_dtypes=self.native_dtypes,
                min_size=self.min_size,
                cancel=cancel,
                value_range=value_range,
                extra_memory=self._extra_memory(values, image, channel_axis),
            )
        )

    def _extra_memory(self, values: dict[str, Any], image: Any, channel_axis: int | None) -> int:
        if self.memory is None:
            return 0
        try:
            shape = [s for i, s in enumerate(image.shape)
                     if channel_axis is None or i != int(channel_axis) % image.ndim]
        except (AttributeError, TypeError, ValueError, ZeroDivisionError):
            return 0  # not an array: the boundary rejects it with a clear message
        return int(self.memory(values, tuple(shape[-self.plane_ndim:])))

    def resolve_params(self, image: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validated parameters with input-dependent values resolved (what a recipe records)."""
        values = self.validate_params(params)
        if self.check is not None:
            self.check(values, image)
        if self.prepare is not None:
            values = self.prepare(dict(values), image)
        return values

    def _bound(self, values: dict[str, Any]) -> Callable[[Any], Any]:
        func = self.plane_func
        lock = None if self.thread_safe else _LOCKS.setdefault(self.name, threading.Lock())

        def plane(x: Any) -> Any:
            if lock is None:
                return func(x, **values)
            with lock:
                return func(x, **values)

        plane.__name__ = self.name
        return plane

    def apply(
        self,
        image: Any,
        *,
        channel_axis: int | None = None,
        progress: Callable[[Progress], None] | None = None,
        cancel: CancelLike = None,
        value_range: tuple[float, float] | None = None,
        **params: Any,
    ) -> Any:
        """Run to completion and return the result (see :meth:`iter_apply`)."""
        return run_to_completion(
            self.iter_apply(image, channel_axis=channel_axis, cancel=cancel,
                            value_range=value_range, **params),
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


REGISTRY: dict[str, ProcessorSpec] = {}
_LOCKS: dict[str, threading.Lock] = {}


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
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise ValueError(f"unknown processor {name!r}; known processors: {known}") from None
