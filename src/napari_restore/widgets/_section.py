"""Collapsible sections of a dock panel (superqt's ``QCollapsible``), collapsed by default.

A :class:`Section` is a magicgui ``Container`` (its children keep their labels, values and
signals, and ``panel.add_section(widget, after=...)`` can put widgets into it); only its
outer Qt widget is the collapsible box with a title button.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container


def hide_label_cell(widget: Any) -> None:
    """Let ``widget`` span its labelled container: no (empty) label column in front of it."""
    labeled = getattr(widget, "_labeled_widget", None)
    labeled = labeled() if callable(labeled) else None
    inner = getattr(labeled, "_label_widget", None)
    if inner is not None:
        inner.visible = False


class Section(Container):
    """A titled group of widgets that folds away; ``expanded`` says whether it is open."""

    def __init__(self, title: str, widgets: Any = (), *, expanded: bool = False,
                 name: str | None = None, tooltip: str | None = None) -> None:
        from superqt import QCollapsible

        self._collapsible = None
        super().__init__(widgets=list(widgets), labels=True,
                         name=name or title.lower().replace(" ", "_"), label="")
        self.margins = (0, 0, 0, 0)
        for w in self:
            if isinstance(w, Container):  # a row or a group spans the section
                hide_label_cell(w)
        box = QCollapsible(title)
        box.setDuration(0)  # no animation: tests and screenshots see the final layout at once
        box.layout().setContentsMargins(0, 0, 0, 0)
        box.addWidget(Container.native.fget(self))
        if tooltip:
            box.toggleButton().setToolTip(tooltip)
        self._collapsible = box
        self.title = title
        if expanded:
            box.expand(animate=False)
        else:
            box.collapse(animate=False)

    @property
    def native(self) -> Any:
        """The collapsible box (what the panel lays out)."""
        box = getattr(self, "_collapsible", None)
        return box if box is not None else Container.native.fget(self)

    def add_native(self, widget: Any) -> Any:
        """Append a Qt widget (e.g. a plot canvas) below the section's magicgui widgets."""
        Container.native.fget(self).layout().addWidget(widget)
        return widget

    @property
    def expanded(self) -> bool:
        return bool(self._collapsible.isExpanded())

    @expanded.setter
    def expanded(self, value: bool) -> None:
        if value:
            self._collapsible.expand(animate=False)
        else:
            self._collapsible.collapse(animate=False)
