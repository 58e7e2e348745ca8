"""Panels that fit the window: no text or layer name may widen a dock panel.

:func:`fit_width` is applied to a panel once its widgets (extras included) are in place: layer
pickers size to a few characters instead of their longest layer name, and text labels (status
lines, summaries) wrap within the panel's width, with the full text as their tooltip.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Label
from qtpy.QtWidgets import QComboBox, QLabel, QSizePolicy

#: The width a panel asks for (px): with napari's layer list, a 1280 px wide window keeps
#: about half its width for the canvas.
PANEL_WIDTH = 300
#: The widest a panel gets (px), whatever its texts and plots ask for.
PANEL_MAX_WIDTH = 340
#: Characters a combo box sizes itself to (longer names are elided by Qt).
COMBO_CHARS = 6


def fit_width(panel: Any, width: int = PANEL_WIDTH) -> None:
    """Stop the children of ``panel`` (a magicgui Container) from widening it: combo boxes
    size to :data:`COMBO_CHARS` characters, text labels wrap (full text as tooltip); the
    panel gets ``width`` as its minimum width."""
    from magicgui.widgets import Container

    for combo in panel.native.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(COMBO_CHARS)

    def labels(container: Any) -> Any:
        for w in container:
            if isinstance(w, Container):
                yield from labels(w)
            elif isinstance(w, Label):
                yield w

    for label in labels(panel):
        wrap(label)
    panel.native.setMinimumWidth(width)
    panel.native.setMaximumWidth(max(width, PANEL_MAX_WIDTH))


def wrap(label: Any) -> None:
    """Let ``label`` (a magicgui Label) wrap within its panel's width, never widen it; its
    tooltip is its full text."""
    q: QLabel = label.native
    q.setWordWrap(True)
    policy = q.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    q.setSizePolicy(policy)
    q.setToolTip(str(label.value))


class TextLabel(Label):
    """A Label whose tooltip is always its full text (a status line that may wrap)."""

    @property
    def value(self) -> Any:
        return Label.value.fget(self)

    @value.setter
    def value(self, value: Any) -> None:
        Label.value.fset(self, value)
        self.native.setToolTip(str(value))
