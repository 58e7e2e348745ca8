"""Deep Image Prior panel extras: a live result layer, a loss / stop-statistic plot, a warning.

``build(panel)`` is registered in :mod:`._extras` and wired to ``panel.events``:

- ``started``: clears the plot and warns (with the estimated time) when the target is large
  for the device;
- ``progressed``: every :class:`~napari_restore.processors.dip.DIPStep` adds a point to the
  plot (redrawn at most a few times a second); a step with an estimate creates the live layer
  (first time) or updates its data in place;
- ``results``: the live layer is replaced by the result layer (removed, so there is never a
  duplicate), and the stop / returned iterations go into the result's metadata. A single
  plane's result is named and recorded with the iteration its estimate comes from
  (``it=`` in the name, ``iterations`` in the recipe: replaying it gives the same pixels),
  the budget is kept in ``metadata["napari_restore"]["dip"]["budget"]``;
- ``finished``: a live layer left by a failed run is removed.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from magicgui.widgets import Label
from napari.utils.notifications import show_warning

from ..processors.dip import CPU, PAPER, DIPStep, DIPSummary
from ._layers import META_KEY, result_name, unique_name
from ._plots import draw_later, plot_canvas

#: Rough seconds per pixel and iteration: the CPU preset on one core of a shared 2-core EPYC
#: VM (50-80 ms per iteration at 128², 0.19-0.24 s at 256²; benchmarks/bench_dip.py), and a
#: conservative guess for the paper's net on a GPU (not measured here).
SECONDS_PER_PIXEL_ITERATION = {"cpu": 4e-6, "cuda": 1.5e-7, "mps": 1.5e-6}
#: Warn when a run will likely take longer than this (seconds).
WARN_SECONDS = 120.0
#: Iterations after which ES-WMV typically stops at the default settings (1000-1200 measured).
TYPICAL_STOP = 1200
_REDRAW_INTERVAL = 0.5
_LIVE_INTERVAL = 0.25


def estimate_seconds(n_pixels: int, iterations: int, device: str, channels: int | None) -> float:
    """Worst-case run time: the whole iteration budget at the device's typical rate."""
    rate = SECONDS_PER_PIXEL_ITERATION.get(device, SECONDS_PER_PIXEL_ITERATION["cpu"])
    default = CPU.channels if device == "cpu" else PAPER.channels
    width = (channels or default) / default
    return n_pixels * iterations * rate * max(width, 0.25) ** 2


def _fmt(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class DIPExtras:
    """The live view of one Deep Image Prior panel (kept as ``panel.extras["deep_image_prior"]``)."""

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self.live_layer: Any = None
        self.iterations: list[int] = []
        self.losses: list[float] = []
        self.statistics: list[float] = []
        self.summary: DIPSummary | None = None
        self.last_step: DIPStep | None = None
        self.planes = 1  # planes of the running job (a stack has one returned iteration each)
        self.returned: dict[int, int] = {}  # plane -> returned iteration (from summaries)
        self.warning = ""
        self._last_draw = 0.0
        self._last_show = 0.0
        self.note = Label(value="", name="dip_note", label="note",
                          tooltip="Warnings about the run (e.g. its expected duration).")
        self.canvas, self.figure, self.ax_loss, self.ax_stat = self._make_plot()
        panel.add_section(self.note, after=panel.status)
        panel.add_section(self.canvas)
        panel.events.started.connect(self._on_started)
        panel.events.progressed.connect(self._on_progress)
        panel.events.results.connect(self._on_results)
        panel.events.finished.connect(self._on_finished)

    # -- plot -------------------------------------------------------------------------
    @staticmethod
    def _make_plot() -> tuple[Any, Any, Any, Any]:
        canvas, fig = plot_canvas()
        ax = fig.add_subplot(1, 1, 1)
        ax2 = ax.twinx()
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("loss (MSE)", fontsize=8, color="tab:blue")
        ax2.set_ylabel("window variance", fontsize=8, color="tab:orange")
        for a in (ax, ax2):
            a.tick_params(labelsize=7)
        return canvas, fig, ax, ax2

    def redraw(self) -> None:
        """Redraw the plot from the history (also called by the throttled live updates)."""
        self._last_draw = time.perf_counter()
        ax, ax2 = self.ax_loss, self.ax_stat
        ax.cla()
        ax2.cla()
        if self.iterations:
            it = np.asarray(self.iterations)
            ax.semilogy(it, np.maximum(self.losses, 1e-12), color="tab:blue", lw=1)
            stat = np.asarray(self.statistics, dtype=float)
            ok = np.isfinite(stat) & (stat > 0)
            if ok.any():
                ax2.semilogy(it[ok], stat[ok], color="tab:orange", lw=1)
            else:
                ax2.set_yticks([])  # the window is not full yet
            ret = self.returned_iteration
            if ret:
                ax.axvline(ret, color="tab:green", lw=1, ls="--")
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("loss (MSE)", fontsize=8, color="tab:blue")
        ax2.set_ylabel("window variance", fontsize=8, color="tab:orange")
        for a in (ax, ax2):
            a.tick_params(labelsize=7)
        draw_later(self.canvas)

    @property
    def returned_iteration(self) -> int:
        if self.summary is not None:
            return self.summary.returned_iteration
        return self.last_step.returned_iteration if self.last_step is not None else 0

    # -- events -----------------------------------------------------------------------
    def _on_started(self, layer: Any) -> None:
        self.iterations.clear()
        self.losses.clear()
        self.statistics.clear()
        self.summary = self.last_step = None
        self.planes = 1
        self.returned = {}
        self._remove_live()
        self.redraw()
        self.warning = ""
        self.note.value = ""
        try:
            self._warn_if_large(layer)
        except Exception:  # the estimate is advisory; never block a run on it
            pass

    def _warn_if_large(self, layer: Any) -> None:
        from ..processors.dip import resolve_device

        params = self.panel.params
        target = self.panel.target(layer)
        shape = tuple(target.data.shape)
        spatial = shape[:-1] if layer.rgb else shape
        n_pixels = math.prod(spatial)
        try:
            device = resolve_device(params["device"])
        except ValueError:
            return  # the run itself reports the bad device
        budget = params["iterations"]
        likely = min(budget, TYPICAL_STOP) if params["early_stopping"] else budget
        seconds = estimate_seconds(n_pixels, likely, device, params["channels"])
        if seconds > WARN_SECONDS:
            worst = estimate_seconds(n_pixels, budget, device, params["channels"])
            self.warning = (
                f"Deep Image Prior on {' × '.join(map(str, spatial))} pixels ({device}): about "
                f"{_fmt(seconds)} (up to {_fmt(worst)} for all {budget} iterations). Use "
                "'current slice' or 'visible field of view' on a smaller region for a quicker "
                "look."
            )
            self.note.value = f"⚠ about {_fmt(seconds)} on {device}"
            show_warning(self.warning)

    def _on_progress(self, item: Any) -> None:
        info = getattr(item, "info", None)
        self.planes = max(self.planes, int(getattr(item, "total", 1) or 1))
        if isinstance(info, DIPSummary):
            self.summary = info
            self.returned[int(getattr(item, "done", 0))] = info.returned_iteration
            self.note.value = (f"stopped at {info.stopped_iteration} ({info.reason}), returned "
                               f"{info.returned_iteration} · {info.device} {info.precision} · "
                               f"{info.seconds_per_iteration * 1000:.0f} ms/it")
            self.redraw()
            return
        if not isinstance(info, DIPStep):
            return
        self.last_step = info
        self.iterations.append(info.iteration)
        self.losses.append(info.loss)
        self.statistics.append(info.stop_statistic)
        now = time.perf_counter()
        if info.estimate is not None and (self.live_layer is None
                                          or now - self._last_show >= _LIVE_INTERVAL):
            # at most a few updates a second: a fast small run must not flood the viewer
            self._last_show = now
            self._show(info.estimate)
        if time.perf_counter() - self._last_draw > _REDRAW_INTERVAL:
            self.redraw()

    def _show(self, estimate: np.ndarray) -> None:
        """Create the live layer at the first preview; afterwards update its data in place."""
        viewer = self.panel.viewer
        if self.live_layer is not None and self.live_layer in viewer.layers:
            if self.live_layer.data.shape == estimate.shape:
                self.live_layer.data = estimate
                return
            self._remove_live()  # next plane of a differently shaped stack: start over
        source = self.panel.job_source
        rgb = bool(source.get("rgb", estimate.ndim == 3))
        scale = tuple(source.get("scale", (1.0, 1.0)))[-2:]
        translate = tuple(source.get("translate", (0.0, 0.0)))[-2:]
        name = unique_name(viewer.layers,
                           f"{source.get('name', 'image')} [deep_image_prior live]")
        kwargs: dict[str, Any] = {"name": name, "scale": scale, "translate": translate,
                                  "rgb": rgb}
        if not rgb:
            kwargs["contrast_limits"] = (0.0, 1.0)
        self.live_layer = viewer.add_image(estimate, **kwargs)

    def _on_results(self, layers: list[Any]) -> None:
        self._remove_live()
        if not layers:
            return
        step = self.last_step
        info: dict[str, Any] = {}
        if self.summary is not None:
            info = {"stopped_iteration": self.summary.stopped_iteration,
                    "returned_iteration": self.summary.returned_iteration,
                    "reason": self.summary.reason, "device": self.summary.device,
                    "precision": self.summary.precision,
                    "seconds_per_iteration": round(self.summary.seconds_per_iteration, 5)}
        elif step is not None:  # ended by Stop: the last step says where
            info = {"stopped_iteration": step.iteration,
                    "returned_iteration": step.returned_iteration, "reason": "stopped"}
        if self.planes > 1 and self.returned:
            info["returned_iterations"] = [self.returned[k] for k in sorted(self.returned)]
        meta = layers[0].metadata.get(META_KEY)
        if info and isinstance(meta, dict):
            meta["dip"] = info
            if self.planes == 1:
                self._label_with_iteration(layers[0], meta, info.get("returned_iteration", 0))
        self.redraw()

    def _label_with_iteration(self, layer: Any, meta: dict[str, Any], returned: int) -> None:
        """Name and record a single plane's result with the iteration its estimate comes
        from: the budget is not where the estimate comes from (early stopping, Stop)."""
        params = meta.get("params")
        if not returned or not isinstance(params, dict) or "iterations" not in params:
            return
        meta["dip"]["budget"] = params["iterations"]
        if params["iterations"] == returned:
            return
        # The recipe replays the same pixels: a run with this budget ends at this iteration
        # with the same estimate (the variance minimum so far, or the last estimate).
        params["iterations"] = returned
        old = layer.name
        others = [lay for lay in self.panel.viewer.layers if lay is not layer]
        layer.name = unique_name(others, result_name(meta.get("source", "image"),
                                                     self.panel.spec, params))
        status = self.panel.status
        if old in str(status.value):
            status.value = str(status.value).replace(old, layer.name)

    def _on_finished(self, state: str) -> None:
        self._remove_live()
        self.redraw()

    def _remove_live(self) -> None:
        layer, self.live_layer = self.live_layer, None
        if layer is not None and layer in self.panel.viewer.layers:
            self.panel.viewer.layers.remove(layer)


def build(panel: Any) -> DIPExtras:
    """The extras of the deep_image_prior panel (see :mod:`._extras`)."""
    return DIPExtras(panel)
