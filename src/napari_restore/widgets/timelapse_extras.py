"""Panel extras for time-lapse denoising: the time axis from the layer's axis labels.

``build(panel)`` is called by :class:`~napari_restore.widgets.panel.ProcessorPanel` (see
:mod:`._extras`). When the chosen layer has an axis labelled ``t`` or ``time`` (napari's
``layer.axis_labels``, case-insensitive; also ``frame``/``frames``), the **time axis**
parameter is set to it, counted from the end (``-3`` for ``(t, y, x)``), so that it also
names the right axis of the current volume a run on "current volume" gets. Without such a
label the user's choice stays (default: the first axis), and the line below the parameters
says which axis that is and how many frames it has.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Label

#: Axis labels taken as time (compared in lower case).
TIME_LABELS = ("t", "time", "frame", "frames")


def find_time_axis(layer: Any) -> int | None:
    """The data axis of ``layer`` labelled as time, counted from the end (negative), or None."""
    labels = [str(label).strip().lower() for label in getattr(layer, "axis_labels", ())]
    extra = 1 if getattr(layer, "rgb", False) else 0  # an RGB layer's colour axis is last
    for axis, label in enumerate(labels):
        if label in TIME_LABELS:
            return axis - len(labels) - extra
    return None


class TimelapseExtras:
    """The time-axis line and its wiring (kept as ``panel.extras["timelapse_denoise"]``)."""

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self.label = Label(value="—", name="time_axis_found", label="time axis")
        self.label.tooltip = ("The axis denoised as time: the one labelled 't' or 'time' in "
                              "the layer's axis labels, else the 'time axis' parameter "
                              "(Advanced parameters).")
        panel.add_section(self.label, after=panel.param_widgets["radius"])
        panel.layer_widget.changed.connect(self.refresh)
        panel.param_widgets["time_axis"].changed.connect(self._describe)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Set the time axis from the chosen layer's labels (if it has one), and describe it."""
        layer = self.panel.layer_widget.value
        if layer is not None:
            axis = find_time_axis(layer)
            if axis is not None:
                self.panel.param_widgets["time_axis"].value = axis
        self._describe()

    def _describe(self, *_: Any) -> None:
        layer = self.panel.layer_widget.value
        if layer is None:
            self.label.value = "—"
            return
        shape = tuple(layer.data.shape)
        value = int(self.panel.param_widgets["time_axis"].value)
        if not -len(shape) <= value < len(shape):
            self.label.value = f"axis {value} is out of range for a {len(shape)}-D layer"
            return
        axis = value % len(shape)
        labels = list(getattr(layer, "axis_labels", ()))
        name = f" '{labels[axis]}'" if axis < len(labels) else ""
        frames = shape[axis]
        found = find_time_axis(layer) is not None
        text = f"axis {axis}{name}, {frames} frame{'s' if frames != 1 else ''}"
        if frames < 2:
            text += ": not a time-lapse (set time axis, or label the time axis 't')"
        elif not found:
            text += " (no axis labelled 't' or 'time': set time axis if this is not time)"
        self.label.value = text


def build(panel: Any) -> TimelapseExtras:
    return TimelapseExtras(panel)
