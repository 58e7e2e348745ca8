"""Panel extras for learning-based CLAHE: the predicted parameters and a "use predicted" toggle.

``build(panel)`` is called by :class:`~napari_restore.widgets.panel.ProcessorPanel` (see
:mod:`._extras`). The prediction is made for the current slice of the selected
layer and is refreshed when the layer or the slice changes; it takes a few milliseconds (the
features are computed on a copy shrunk to 160 pixels).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, Label

from ..processors.clahe import predict_clahe_params


class ClaheExtras:
    """The extra widgets and their wiring (kept as ``panel.extras["lb_clahe"]``)."""

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self.prediction: tuple[float, tuple[int, int]] | None = None
        self.label = Label(value="predicted: —", name="predicted", label="predicted")
        self.label.tooltip = ("Clip limit and tile grid the shipped model predicts for the "
                              "current slice of the selected layer.")
        self.toggle = CheckBox(text="use predicted", name="use_predicted",
                               value=self._auto_now())
        self.toggle.tooltip = ("On: clip limit and tile grid are predicted per plane when the "
                               "run starts. Off: start from the predicted numbers and edit them.")
        panel.add_section(self.label, after=panel.param_widgets["tile_grid"])
        panel.add_section(self.toggle, after=self.label)
        self._syncing = False
        self.toggle.changed.connect(self._on_toggle)
        for name in ("clip_limit", "tile_grid"):
            panel.param_widgets[name].changed.connect(self._on_param)
        panel.layer_widget.changed.connect(self.refresh)
        panel.connect_viewer(panel.viewer.dims.events.current_step, self.refresh)
        self.refresh()

    def _auto_now(self) -> bool:
        p = self.panel.params
        return p["clip_limit"] is None and p["tile_grid"] is None

    def refresh(self, *_: Any) -> None:
        """Recompute the prediction for the selected layer's current slice."""
        layer = self.panel.layer_widget.value
        self.prediction = None
        if layer is None:
            self.label.value = "predicted: —"
            return
        try:
            data = np.asarray(self.panel.target(layer, "slice").data)
            self.prediction = predict_clahe_params(data, channel_axis=-1 if layer.rgb else None)
        except (TypeError, ValueError) as exc:
            self.label.value = f"predicted: — ({exc})"[:80]
            return
        clip, (rows, cols) = self.prediction
        self.label.value = f"clip {clip:.2f}, tiles {rows}×{cols}"

    def _on_toggle(self, on: bool) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            if on:
                self.panel.set_params({"clip_limit": None, "tile_grid": None})
            elif self.prediction is not None:
                clip, grid = self.prediction
                self.panel.set_params({"clip_limit": clip, "tile_grid": grid})
        finally:
            self._syncing = False

    def _on_param(self, *_: Any) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.toggle.value = self._auto_now()
        finally:
            self._syncing = False


def build(panel: Any) -> ClaheExtras:
    """Add the predicted-parameter label and the "use predicted" toggle to ``panel``."""
    return ClaheExtras(panel)
