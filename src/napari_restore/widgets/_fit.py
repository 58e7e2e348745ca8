"""Panels that fit the window: no text or layer name may widen a dock panel.

:func:`fit_width` is applied to a panel once its widgets (extras included) are in place: layer
pickers size to a few characters instead of their longest layer name, and text labels (status
lines, summaries) wrap within the panel's width, with the full text as their tooltip.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Label
from qtpy.QtCore import QEvent, QObject
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
    align_labels(panel)
    panel.native.setMinimumWidth(width)
    panel.native.setMaximumWidth(max(width, PANEL_MAX_WIDTH))


def align_labels(container: Any) -> None:
    """Make the label column of ``container`` (and of its sub-containers) as wide as its
    widest label in the font the panel really uses (magicgui measures with the application's
    default font, so a label such as "σ (grey levels)" could be clipped under napari's)."""
    from magicgui.widgets import Container

    rows = [w._labeled_widget() for w in container
            if callable(getattr(w, "_labeled_widget", None))]
    rows = [r for r in rows if r is not None]
    if rows:
        def width(r: Any) -> int:
            q = r._label_widget.native
            return q.fontMetrics().horizontalAdvance(q.text()) + 4

        widest = max(width(r) for r in rows)
        for r in rows:
            if r._label_widget.native.minimumWidth() < widest:
                r.label_width = widest
    for w in container:
        if isinstance(w, Container):
            align_labels(w)


class _Refit(QObject):
    """Re-fits a label whenever it is resized (a resize may change its line count) and, with
    ``on_text``, whenever its text changes: a QLabel has no signal for that (nor does a
    magicgui Label set from code), but setting its text asks its parent for a new layout
    (``LayoutRequest``)."""

    def __init__(self, label: QLabel, fit: Any, *, on_text: bool = False) -> None:
        super().__init__(label)
        self._fit = fit
        label.installEventFilter(self)
        parent = label.parentWidget()
        if on_text and parent is not None:
            parent.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
        if event.type() in (QEvent.Type.Resize, QEvent.Type.LayoutRequest):
            self._fit()
        return False


def wrap(label: Any) -> None:
    """Let ``label`` (a magicgui Label) wrap within its panel's width, never widen it; its
    tooltip is its full text. It is as tall as its lines need at its width (set again when
    it is resized or its text changes), so no line is cut. A :class:`TextLabel` (a status
    line) is elided to one line instead."""
    q: QLabel = label.native
    policy = q.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    q.setSizePolicy(policy)
    if isinstance(label, TextLabel):
        label.refit()
        return
    q.setWordWrap(True)

    def fit(*_: Any) -> None:
        try:
            if q.toolTip() != q.text():
                q.setToolTip(q.text())
            height = q.heightForWidth(max(q.width(), 1))
        except RuntimeError:  # deleted meanwhile
            return
        if height > 0 and height != q.minimumHeight():  # -1: no height-for-width (empty)
            q.setMinimumHeight(height)

    _Refit(q, fit, on_text=True)
    fit()


class TextLabel(Label):
    """A one-line label (a status line): elided to its width, the full text as its tooltip;
    ``value`` is always the full text."""

    _full = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _Refit(self.native, self.refit)

    @property
    def value(self) -> Any:
        return self._full

    @value.setter
    def value(self, value: Any) -> None:
        self._full = "" if value is None else str(value)
        self.native.setToolTip(self._full)
        self.refit()
        self.changed.emit(self._full)

    def refit(self) -> None:
        """Show as much of the full text as fits on one line (elided at the end)."""
        from qtpy.QtCore import Qt

        q = self.native
        try:
            width = q.width() if q.isVisible() else 10_000
            shown = q.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight,
                                               max(width - 4, 20))
            q.setText(shown)
        except RuntimeError:  # deleted meanwhile
            pass
