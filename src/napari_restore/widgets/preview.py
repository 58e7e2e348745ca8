"""Live preview for any panel: debounced re-runs on the visible field of view, one reused layer.

While the Preview box is ticked, every parameter change (and a change of layer, slice or
camera) restarts a 300 ms timer; when it fires, the processor runs on the current 2-D slice
cropped to what is on screen (``layer.corner_pixels``). A newer change cancels the run in
flight, and a result that arrives after a newer run was started is dropped, never shown.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox
from qtpy.QtCore import QTimer

from .._compat import viewer_camera
from ._jobs import run_job
from ._layers import display_kwargs, jsonable, snapshot
from ._runner import start_job

if TYPE_CHECKING:  # the panel is used through its public API only
    from .panel import ProcessorPanel

DEBOUNCE_MS = 300


def preview_name(source: str) -> str:
    return f"{source} [preview]"


class LivePreview:
    """Attach a live preview to ``panel`` (adds a "live preview" check box to it)."""

    def __init__(self, panel: ProcessorPanel, delay_ms: int = DEBOUNCE_MS) -> None:
        self.panel = panel
        part = "volume" if panel.spec.plane_ndim == 3 else "slice"
        self.toggle = CheckBox(text="live preview", value=False, name="preview",
                               tooltip=f"Re-run on the visible area of the current {part} "
                                       "at every change (debounced); one reused layer.")
        self.timer = QTimer(panel.native)  # dies with the panel
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self.run)
        self.generation = 0
        self.shown = 0  # results displayed (for tests and the status line)
        self.dropped = 0  # stale results discarded
        self.layer: Any = None
        self._cancel: threading.Event | None = None
        self._workers: set[Any] = set()
        self.toggle.changed.connect(self._on_toggle)
        for w in panel.param_widgets.values():
            w.changed.connect(self.schedule)
        panel.layer_widget.changed.connect(self.schedule)
        viewer = panel.viewer
        panel.connect_viewer(viewer.dims.events.current_step, self.schedule)
        camera = viewer_camera(viewer)
        panel.connect_viewer(camera.events.zoom, self.schedule)
        panel.connect_viewer(camera.events.center, self.schedule)
        self._alive = True

    @property
    def busy(self) -> bool:
        return bool(self._workers) or self.timer.isActive()

    def schedule(self, *_: Any) -> None:
        if self._alive and self.toggle.value:
            self.timer.start()  # restarts: debounced

    def shutdown(self) -> None:
        """The panel is going away: cancel runs, forget results."""
        self._alive = False
        self.generation += 1
        if self._cancel is not None:
            self._cancel.set()

    def _on_toggle(self, on: bool) -> None:
        if on:
            self.schedule()
            return
        self.timer.stop()
        self.generation += 1
        if self._cancel is not None:
            self._cancel.set()
        if self.layer is not None and self.layer in self.panel.viewer.layers:
            self.panel.viewer.layers.remove(self.layer)
        self.layer = None

    def run(self) -> None:
        """Start a preview run now (cancelling any run in flight)."""
        panel = self.panel
        layer = panel.layer_widget.value
        if layer is None or not self.toggle.value or layer is self.layer:
            return
        self.generation += 1
        if self._cancel is not None:
            self._cancel.set()
        try:
            spec = panel.run_spec()
            params = spec.validate_params(panel.params)
            target = panel.target(layer, "view")
        except (TypeError, ValueError) as exc:
            panel.status.value = f"preview: {exc}"
            return
        cax = -1 if layer.rgb else None
        gen, snap = self.generation, snapshot(layer, target)
        panel.status.value = "preview running…"
        # previews are short and frequent: kept out of napari's activity dock
        job = start_job(
            lambda cancel: run_job(spec, target.data, cax, params, cancel, target.value_range),
            f"{spec.title} preview", activity=False,
            on_returned=partial(self._show, gen, snap, cax),
            on_error=partial(self._error, gen),
            on_finished=self._workers.discard)
        self._cancel = job.cancel
        self._workers.add(job)

    def _show(self, gen: int, snap: dict, cax: int | None, value: tuple) -> None:
        if gen != self.generation or not self._alive or not self.toggle.value:
            self.dropped += 1
            return
        result, params, seconds, _resolved = value
        if isinstance(result, tuple):
            result = result[0]
        viewer = self.panel.viewer
        meta = {"napari_restore": {"processor": self.panel.spec.name, "params": jsonable(params),
                                   "channel_axis": cax, "source": snap["name"],
                                   "preview": True, "seconds": round(seconds, 4)}}
        name = preview_name(snap["name"])
        if self.layer is not None and self.layer in viewer.layers and self.layer.rgb == snap["rgb"] \
                and self.layer.data.ndim == result.ndim:
            self.layer.data = result
            self.layer.scale, self.layer.translate = snap["scale"], snap["translate"]
            self.layer.metadata = meta
            self.layer.name = name
            if not self.panel.spec.outputs[0].keeps_scale and not snap["rgb"]:
                self.layer.reset_contrast_limits()  # its own range, which each run changes
        else:
            if self.layer is not None and self.layer in viewer.layers:
                viewer.layers.remove(self.layer)
            kwargs = display_kwargs(self.panel.spec.outputs[0], snap)
            self.layer = viewer.add_image(result, name=name, scale=snap["scale"],
                                          translate=snap["translate"], rgb=snap["rgb"],
                                          metadata=meta, **kwargs)
        self.shown += 1
        self.panel.status.value = f"preview: {seconds * 1000:.0f} ms"

    def _error(self, gen: int, exc: BaseException) -> None:
        if gen == self.generation:
            self.panel.status.value = f"preview failed: {type(exc).__name__}: {exc}"
