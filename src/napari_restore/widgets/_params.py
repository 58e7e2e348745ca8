"""magicgui widgets generated from :class:`~napari_restore.processors.registry.Param`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    SpinBox,
    Widget,
)

from ..processors.registry import Param

_BIG = 1e9


class NoiseModelComboBox(ComboBox):
    """The ``noise_model`` choice: its named choices and, once a recipe (or the API) gives a
    Poisson–Gaussian model, that model as one more entry, shown short ("poisson-gaussian
    a=4 b=-391") and holding its exact parameter form, so that the panel replays the recipe
    bit-identically (the same model, not a new estimate). A later model replaces it."""

    def __init__(self, *, choices: Any, **kwargs: Any) -> None:
        self._named = tuple(choices)
        self._extra: tuple[str, str] | None = None
        super().__init__(choices=self._entries, **kwargs)

    def _entries(self, _widget: Any = None) -> list[tuple[str, str]]:
        return [(c, c) for c in self._named] + ([self._extra] if self._extra else [])

    @property
    def value(self) -> Any:
        return ComboBox.value.fget(self)

    @value.setter
    def value(self, value: Any) -> None:
        from ..processors.noise_pg import as_model

        try:
            model = as_model(value)
        except ValueError:
            model = None  # refused below as not a valid choice
        if model is not None:
            value = model.to_param()
            self._extra = (f"poisson-gaussian a={model.gain:.4g} b={model.bias:.4g}", value)
            self.reset_choices()
        ComboBox.value.fset(self, value)

#: Word labels of parameters in the panels (keyword names stay in recipes, layer names and
#: tooltips). A parameter not listed here is labelled with its name in words
#: (``patch_size`` -> "patch size").
WORDS: dict[str, str] = {
    "sigma": "σ",
    "noise_model": "noise model",
    "patch_distance": "search radius",
    "bit_depth": "OpenCV bit depth",
    "colorspace": "colour space",
    "threads": "library threads",
    "psf_size": "blur size (px)",
    "psf_sigma": "blur σ (pixels)",
    "boundary": "image edges",
    "clip_limit": "clip limit",
    "tile_grid": "tiles",
    "tile": "process in tiles",
    "refine": "refine (guided filter)",
    "refine_radius": "refine radius (pixels)",
    "refine_eps": "refine smoothing",
    "early_stopping": "stop early (ES-WMV)",
    "window": "averaging window",
    "patience": "patience (iterations)",
    "channels": "network channels",
    "depth": "network depth",
    "skip_channels": "skip-connection channels",
    "reg_noise_std": "input perturbation",
    "ema": "estimate weight (EMA)",
    "seed": "random seed",
    "every": "show estimate every",
    "mode": "grain mode",
}


def label_for(p: Param) -> str:
    """The panel label of ``p``: words, never a keyword name."""
    return WORDS.get(p.name, p.name.replace("_", " "))


def _tooltip(p: Param) -> str:
    return f"{p.doc}\nAllowed: {p.range_text()}\n(keyword: {p.name})"


def _decimals(*values: float | None) -> int:
    """Decimals a spin box needs to show ``values`` (2 to 6)."""
    need = 2
    for v in values:
        if v is None or float(v).is_integer():
            continue
        for d in range(2, 7):
            need = max(need, d)
            if abs(round(float(v), d) - float(v)) < 1e-9:
                break
    return need


class ExactFloatSpinBox(FloatSpinBox):
    """A FloatSpinBox that returns the exact value it was given (e.g. 1/30) while the user has
    not changed it, instead of its display rounding (0.033333)."""

    _exact: float | None = None

    def set_value(self, value: Any) -> None:
        self._exact = None if value is None else float(value)
        super().set_value(value)

    def get_value(self) -> float:
        shown = float(super().get_value())
        if self._exact is not None and abs(shown - self._exact) <= 0.5 * 10.0 ** -_DECIMALS:
            return self._exact
        return shown


_DECIMALS = 6


def _number_widget(p: Param, value: float | None = None, **kwargs: Any) -> Widget:
    """A SpinBox (int) or FloatSpinBox (float) with the parameter's bounds and step (an
    intensity has no upper bound until a layer gives its units: set_intensity_units)."""
    if p.intensity:
        p = replace(p, max=None)
    v = p.default if value is None else value
    if p.type is int:
        return SpinBox(
            min=int(p.min) if p.min is not None else -1_000_000,
            max=int(p.max) if p.max is not None else 1_000_000,
            step=int(p.step or 1), value=int(v if v is not None else (p.min or 0)), **kwargs,
        )
    step = p.step or 0.01
    spin = ExactFloatSpinBox(
        min=p.min if p.min is not None else -_BIG,
        max=p.max if p.max is not None else _BIG,
        step=step, value=float(v if v is not None else (p.min or 0.0) + step * 10), **kwargs,
    )
    if hasattr(spin.native, "setDecimals"):  # show enough digits (1/30 as 0.033333)
        spin.native.setDecimals(_decimals(v, step))
        spin.value = float(v if v is not None else spin.value)
    return spin


class _WithAuto(Container):
    """``inner`` (a number or a pair) with an "auto" check box; ``value`` is None while auto
    is on, and the inner widget is hidden then (no stale greyed value)."""

    def __init__(self, p: Param, inner: Widget, what: str, **kwargs: Any) -> None:
        self._auto = CheckBox(text="auto", value=p.default is None, name=f"{p.name}_auto")
        self._inner = inner
        super().__init__(widgets=[self._auto, inner], layout="horizontal", labels=False,
                         **kwargs)
        self.margins = (0, 0, 0, 0)
        self._auto.tooltip = f"On: chosen automatically. Off: the {what} you set.\n{p.doc}"
        self._on_auto(self._auto.value)
        self._auto.changed.connect(self._on_auto)

    def _on_auto(self, auto: bool) -> None:
        self._inner.enabled = not auto
        self._inner.visible = not auto

    def show_auto(self, shown: bool) -> None:
        """Show or hide the "auto" box (a panel offering its own automatic choice hides it)."""
        self._auto.visible = shown

    def _inner_value(self) -> Any:
        return self._inner.value

    @property
    def value(self) -> Any:
        return None if self._auto.value else self._inner_value()

    @value.setter
    def value(self, v: Any) -> None:
        if v is None:
            self._auto.value = True
        else:
            self._inner.value = v
            self._auto.value = False


class OptionalNumber(_WithAuto):
    """A number spin box with an "auto" check box; ``value`` is None while auto is on."""

    def __init__(self, p: Param, **kwargs: Any) -> None:
        self._kind = p.type
        self._spin = _number_widget(p, name=f"{p.name}_value", tooltip=kwargs.get("tooltip"))
        super().__init__(p, self._spin, "value", **kwargs)

    def _inner_value(self) -> float | int:
        return self._kind(self._spin.value)

    @property
    def value(self) -> float | int | None:
        return _WithAuto.value.fget(self)

    @value.setter
    def value(self, v: float | int | None) -> None:
        _WithAuto.value.fset(self, None if v is None else self._kind(v))


def intensity_units(dtype: Any, data_range: tuple[float, float] | None) -> tuple[str, float, float]:
    """``(unit, span, data_span)`` of a layer: the unit label, the span intensity parameters
    are bounded by (an integer dtype's range, a float image's own span, 1 inside [0, 1]) and
    the span its values really cover (what steps and decimals follow)."""
    import numpy as np

    dtype = np.dtype(dtype)
    lo, hi = data_range if data_range is not None else (0.0, 1.0)
    data_span = float(hi - lo) if hi > lo else 1.0
    from .._arrays import wide_integer

    if wide_integer(dtype):  # 32/64 bits: scaled by the values' range
        return "grey levels", max(data_span, 1.0), max(data_span, 1.0)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return "grey levels", float(info.max) - float(info.min), max(data_span, 1.0)
    if lo >= 0.0 and hi <= 1.0:
        return "data units", 1.0, data_span
    return "data units", data_span, data_span


def _nice_step(raw: float) -> float:
    """The power of ten at or below ``raw`` (1, 0.1, 10, …): steps a person can count in."""
    import math

    return 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0


def set_intensity_units(widget: Widget, p: Param, unit: str, span: float, data_span: float,
                        integer: bool = False) -> None:
    """Show intensity parameter ``p`` in the layer's own units: label "σ (grey levels)",
    maximum ``p.max × span``, a step of about ``p.step`` of the data's span (at least one grey
    level for integer images) and the decimals that step needs."""
    import math

    widget.label = f"{label_for(p)} ({unit})"
    spin = getattr(widget, "_spin", widget)
    step = _nice_step((p.step or 0.01) * data_span)
    if integer:
        step = max(step, 1.0)
    decimals = max(0, -int(math.floor(math.log10(step)))) + 1 if step < 1 else 1
    top = (p.max if p.max is not None else _BIG) * span ** max(p.intensity, 1)
    low = (p.min if p.min is not None else -_BIG) * span ** max(p.intensity, 1)
    decimals = min(decimals, _DECIMALS)
    top = math.floor(top * 10**decimals) / 10**decimals  # never above what the image allows
    value = spin.value
    if hasattr(spin.native, "setDecimals"):
        spin.native.setDecimals(decimals)
    spin.min, spin.max, spin.step = low, top, step
    spin.value = min(max(value, low), top)
    widget.tooltip = spin.tooltip = (
        f"{p.doc}\nIn {unit}; allowed {low:g} to {top:g} for this layer.\n(keyword: {p.name})")


class IntPair(Container):
    """Two integer spin boxes for a (rows, cols) tuple parameter."""

    def __init__(self, p: Param, **kwargs: Any) -> None:
        lo = int(p.min) if p.min is not None else 0
        hi = int(p.max) if p.max is not None else 10_000
        self._spins = [
            SpinBox(min=lo, max=hi, value=int(v), name=f"{p.name}_{i}")
            for i, v in enumerate(p.default)
        ]
        super().__init__(widgets=self._spins, layout="horizontal", labels=False, **kwargs)
        self.margins = (0, 0, 0, 0)
        for spin, part in zip(self._spins, ("rows", "columns"), strict=False):
            spin.tooltip = f"{part}\n{self.tooltip or ''}"

    @property
    def value(self) -> tuple[int, ...]:
        return tuple(int(s.value) for s in self._spins)

    @value.setter
    def value(self, v: tuple[int, ...]) -> None:
        for s, x in zip(self._spins, v, strict=True):
            s.value = int(x)


class OptionalIntPair(_WithAuto):
    """An :class:`IntPair` with an "auto" check box; ``value`` is None while auto is on."""

    def __init__(self, p: Param, **kwargs: Any) -> None:
        lo = int(p.min) if p.min is not None else 0
        hi = int(p.max) if p.max is not None else 10_000
        start = p.default if p.default is not None else (min(max(lo, 8), hi),) * p.length
        self._pair = IntPair(replace(p, default=start, optional=False),
                             tooltip=kwargs.get("tooltip"))
        super().__init__(p, self._pair, "values", **kwargs)


def widget_for(p: Param) -> Widget:
    """The magicgui widget editing parameter ``p`` (its ``.value`` is what the spec validates)."""
    common = {"name": p.name, "label": label_for(p), "tooltip": _tooltip(p)}
    if p.type is bool:
        return CheckBox(value=bool(p.default), **common)
    if p.type is str and p.choices is not None:
        from ..processors.noise_model import NoiseModelParam

        if isinstance(p, NoiseModelParam):
            return NoiseModelComboBox(choices=list(p.choices), value=p.default, **common)
        return ComboBox(choices=list(p.choices), value=p.default, **common)
    if p.type is tuple:
        return OptionalIntPair(p, **common) if p.optional else IntPair(p, **common)
    if p.optional:
        return OptionalNumber(p, **common)
    if p.type in (int, float):
        return _number_widget(p, **common)
    raise TypeError(f"no widget for parameter {p.name} of type {p.type}")
