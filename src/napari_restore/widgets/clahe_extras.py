"""Panel extras for learning-based CLAHE: one choice for the clip limit and tile grid.

``build(panel)`` is called by :class:`~napari_restore.widgets.panel.ProcessorPanel` (see
:mod:`._extras`). "clip & tiles" is either *predicted* (the shipped model predicts both for
every plane when the run starts; the two number fields are hidden and the line under the
choice shows what it predicts for the current slice) or *set by hand* (the two fields are
shown, starting from the prediction). The parameters' own "auto" boxes are hidden: this one
choice replaces them (only a recipe that sets one and leaves the other on auto shows that
one's box). The prediction is refreshed when the layer or the slice changes; it
takes a few milliseconds (the features are computed on a copy shrunk to 160 pixels).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Label

from ..processors.clahe import predict_clahe_params

PREDICTED, MANUAL = "predicted", "manual"
_NAMES = ("clip_limit", "tile_grid")


class ClaheExtras:
    """The extra widgets and their wiring (kept as ``panel.extras["lb_clahe"]``)."""

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self.prediction: tuple[float, tuple[int, int]] | None = None
        self.choice = ComboBox(
            label="clip & tiles", name="clahe_parameters",
            choices=[("predicted per plane", PREDICTED), ("set by hand", MANUAL)],
            value=PREDICTED if self._auto_now() else MANUAL,
            tooltip="Predicted: the shipped model chooses the clip limit and tile grid for "
                    "every plane when the run starts (recorded as 'auto' in the recipe). Set "
                    "by hand: start from the predicted numbers and edit them.")
        self.label = Label(value="predicted: —", name="predicted", label="predicted here")
        self.label.tooltip = ("Clip limit and tile grid the shipped model predicts for the "
                              "current slice of the chosen layer.")
        colour = panel.param_widgets["colorspace"]
        panel.add_section(self.choice, after=colour)
        panel.add_section(self.label, after=self.choice)
        for name in _NAMES:
            widget = panel.param_widgets[name]
            widget.show_auto(False)
            widget.changed.connect(self._on_param)
        self._syncing = False
        self.choice.changed.connect(self._on_choice)
        panel.layer_widget.changed.connect(self.refresh)
        panel.connect_viewer(panel.viewer.dims.events.current_step, self.refresh)
        self.refresh()
        self._show_fields()

    def _auto_now(self) -> bool:
        p = self.panel.params
        return p["clip_limit"] is None and p["tile_grid"] is None

    def refresh(self, *_: Any) -> None:
        """Recompute the prediction for the chosen layer's current slice."""
        layer = self.panel.layer_widget.value
        self.prediction = None
        if layer is None:
            self.label.value = "predicted: —"
            return
        try:
            data = np.asarray(self.panel.target(layer, "slice").data)
            self.prediction = predict_clahe_params(data, channel_axis=-1 if layer.rgb else None)
        except (TypeError, ValueError) as exc:
            self.label.value = f"predicted: — ({exc})"
            return
        clip, (rows, cols) = self.prediction
        self.label.value = f"clip {clip:.2f}, tiles {rows} × {cols}"

    def _show_fields(self) -> None:
        """Predicted: no number fields. By hand: both fields; a field a recipe left on auto
        (the other one set) shows its "auto" box, so what the run does is visible."""
        manual = self.choice.value == MANUAL
        for name in _NAMES:
            widget = self.panel.param_widgets[name]
            widget.visible = manual
            widget.show_auto(manual and widget.value is None)

    def _on_choice(self, value: str) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            if value == PREDICTED:
                self.panel.set_params({name: None for name in _NAMES})
            else:
                self._fill_from_prediction()
        finally:
            self._syncing = False
        self._show_fields()

    def _fill_from_prediction(self) -> None:
        """Manual mode: an empty field starts from the predicted value."""
        if self.prediction is None:
            self.refresh()
        if self.prediction is None:
            return
        params = self.panel.params
        fill = {name: v for name, v in zip(_NAMES, self.prediction, strict=True)
                if params[name] is None}
        if fill:
            self.panel.set_params(fill)

    def _on_param(self, *_: Any) -> None:
        """A parameter set from outside (a recipe, set_params): the choice follows it."""
        if self._syncing:
            return
        self._syncing = True
        try:
            self.choice.value = PREDICTED if self._auto_now() else MANUAL
        finally:
            self._syncing = False
        self._show_fields()


def build(panel: Any) -> ClaheExtras:
    """Add the "clip & tiles" choice and the predicted values to ``panel``."""
    return ClaheExtras(panel)
