"""magicgui widgets generated from :class:`~napari_restore.processors.registry.Param`."""

from __future__ import annotations

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


def _tooltip(p: Param) -> str:
    return f"{p.doc}\nAllowed: {p.range_text()}"


class OptionalFloat(Container):
    """A float spin box with an "auto" check box; ``value`` is None while auto is on."""

    def __init__(self, p: Param, **kwargs: Any) -> None:
        self._auto = CheckBox(text="auto", value=p.default is None, name=f"{p.name}_auto")
        self._spin = FloatSpinBox(
            min=p.min if p.min is not None else -_BIG,
            max=p.max if p.max is not None else _BIG,
            step=p.step or 0.01,
            value=p.default if p.default is not None else (p.min or 0.0) + (p.step or 0.01) * 10,
            name=f"{p.name}_value",
        )
        self._spin.enabled = not self._auto.value
        super().__init__(widgets=[self._auto, self._spin], layout="horizontal", labels=False, **kwargs)
        self.margins = (0, 0, 0, 0)
        self._auto.changed.connect(lambda v: setattr(self._spin, "enabled", not v))

    @property
    def value(self) -> float | None:
        return None if self._auto.value else float(self._spin.value)

    @value.setter
    def value(self, v: float | None) -> None:
        if v is None:
            self._auto.value = True
        else:
            self._spin.value = float(v)
            self._auto.value = False


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

    @property
    def value(self) -> tuple[int, ...]:
        return tuple(int(s.value) for s in self._spins)

    @value.setter
    def value(self, v: tuple[int, ...]) -> None:
        for s, x in zip(self._spins, v, strict=True):
            s.value = int(x)


def widget_for(p: Param) -> Widget:
    """The magicgui widget editing parameter ``p`` (its ``.value`` is what the spec validates)."""
    common = {"name": p.name, "label": p.short, "tooltip": _tooltip(p)}
    if p.type is bool:
        return CheckBox(value=bool(p.default), **common)
    if p.type is str and p.choices is not None:
        return ComboBox(choices=list(p.choices), value=p.default, **common)
    if p.type is tuple:
        return IntPair(p, **common)
    if p.optional:
        return OptionalFloat(p, **common)
    if p.type is int:
        return SpinBox(
            min=int(p.min) if p.min is not None else -1_000_000,
            max=int(p.max) if p.max is not None else 1_000_000,
            step=int(p.step or 1), value=int(p.default), **common,
        )
    if p.type is float:
        return FloatSpinBox(
            min=p.min if p.min is not None else -_BIG,
            max=p.max if p.max is not None else _BIG,
            step=p.step or 0.01, value=float(p.default), **common,
        )
    raise TypeError(f"no widget for parameter {p.name} of type {p.type}")
