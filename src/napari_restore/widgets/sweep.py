"""Parameter sweeps for any panel: one layer stacked along a new leading axis, one plane a value."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, LineEdit, PushButton
from napari.utils.notifications import show_error, show_info

from .._arrays import Cancelled, Progress
from .._compat import viewer_text_overlay
from ..processors.registry import Param, ProcessorSpec
from ._jobs import run_part
from ._layers import display_kwargs, result_metadata, snapshot, unique_name
from ._params import label_for
from ._runner import start_job
from ._section import Section

if TYPE_CHECKING:  # the panel is used through its public API only
    from .panel import ProcessorPanel


def sweepable(spec: ProcessorSpec) -> list[Param]:
    """Parameters a sweep can vary: numbers and choices."""
    return [p for p in spec.params if p.type in (int, float) or p.choices is not None]


def parse_values(param: Param, text: str) -> list[Any]:
    """Values of a sweep from text, each validated by ``param``.

    ``"start:stop:count"`` gives ``count`` evenly spaced values (integers are rounded and
    de-duplicated); ``"a, b, c"`` a list; an empty text all choices of a choice parameter.
    """
    text = text.strip()
    if not text:
        if param.choices is not None:
            return list(param.choices)
        raise ValueError(f"give values for {param.name}: 'start:stop:count' or a comma list")
    if ":" in text and param.choices is None:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"sweep range for {param.name} must be 'start:stop:count'; got {text!r}")
        try:
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ValueError(f"sweep range for {param.name} must be numbers 'start:stop:count'; "
                             f"got {text!r}") from None
        if not 1 <= count <= 100:
            raise ValueError(f"sweep count must be between 1 and 100; got {count}")
        raw: list[Any] = list(np.linspace(start, stop, count))
        if param.type is int:
            raw = list(dict.fromkeys(int(round(v)) for v in raw))
    else:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if param.type is str:
            raw = items
        else:
            try:
                raw = [param.type(float(t)) if param.type is int else float(t) for t in items]
            except ValueError:
                raise ValueError(f"sweep values for {param.name} must be numbers; got {text!r}") from None
    if len(raw) > 100:
        raise ValueError(f"at most 100 sweep values; got {len(raw)}")
    return [param.validate(v) for v in raw]


def sweep_job(spec: ProcessorSpec, data: Any, channel_axis: int | None, params: dict,
              name: str, values: list, cancel: threading.Event,
              value_range: tuple[float, float] | None = None, losses: list | None = None,
              ) -> Generator[Progress, None, tuple[list, list, dict, float]]:
    """Run ``spec`` once per value; yields progress counting runs; Stop keeps finished runs.

    ``losses``: a list that receives each finished value's self-supervised loss
    (:func:`~napari_restore.calibration.self_supervised_loss` on ``data``; None where the
    processor or the input is not calibrated, e.g. a stack)."""
    t0 = time.perf_counter()
    results, done = [], []
    n = len(values)
    resolved = params
    for k, v in enumerate(values):
        resolved = spec.check_params(data, {**params, name: v})
        try:
            res = yield from run_part(spec, data, channel_axis, resolved, cancel, value_range, k, n)
        except Cancelled:
            break
        if losses is not None:
            losses.append(_loss(spec, data, channel_axis, resolved, cancel))
        results.append(res[0] if isinstance(res, tuple) else res)
        done.append(v)
        yield Progress(k + 1, n, (k + 1) / n)
    return results, done, resolved, time.perf_counter() - t0


def _loss(spec: ProcessorSpec, data: Any, channel_axis: int | None, params: dict,
          cancel: threading.Event) -> float | None:
    from ..calibration import self_supervised_loss

    try:
        return float(self_supervised_loss(np.asarray(data), spec.name, params,
                                          channel_axis=channel_axis, cancel=cancel))
    except (TypeError, ValueError, Cancelled):  # Stop: the next run ends the sweep
        return None


class ParameterSweep:
    """Adds a "sweep" section to ``panel``: pick a parameter, give values, Run sweep/Stop."""

    def __init__(self, panel: ProcessorPanel) -> None:
        self.panel = panel
        params = sweepable(panel.spec)
        self.param = ComboBox(label="parameter", name="sweep_param",
                              choices=[(label_for(p), p.name) for p in params],
                              tooltip="Parameter to vary; all others keep their current values.")
        self.values = LineEdit(label="values", name="sweep_values",
                               tooltip="start:stop:count (e.g. 0.02:0.10:5), a list (0.02, 0.05), "
                                       "or empty for every choice.")
        self.button = PushButton(text="Run sweep", name="sweep_run",
                                 tooltip="Run once per value into one stacked layer (the value "
                                         "is shown on the canvas); click again to stop.")
        self.with_loss = CheckBox(text="self-supervised loss per slice", value=False,
                                  name="sweep_loss",
                                  tooltip="Also compute each value's self-supervised loss (no "
                                          "reference needed; reruns the processor on masked "
                                          "input) and show it under the slider value.")
        self.container = Section("Parameter sweep", [self.param, self.values, self.with_loss,
                                                     self.button],
                                 name="sweep_section",
                                 tooltip="Run the processor once per value of one parameter.")
        self.container.visible = bool(params)
        self.button.changed.connect(self._clicked)
        self.worker: Any = None
        self._cancel: threading.Event | None = None
        self.layer: Any = None
        self._labels: dict[int, tuple[str, list]] = {}
        self._losses: dict[int, list] = {}
        panel.connect_viewer(panel.viewer.dims.events.current_step, self._update_overlay)
        panel.connect_viewer(panel.viewer.layers.events.removed, self._update_overlay)

    def _clicked(self, *_: Any) -> None:
        if self.worker is None:
            self.start()
        elif self._cancel is not None:
            self._cancel.set()
            self.button.text = "Stopping…"

    def start(self, param: str | None = None, values: list | str | None = None) -> Any:
        """Start a sweep (``values`` as text or an already-parsed list); returns the worker."""
        panel = self.panel
        if self.worker is not None or panel.state != "idle":
            return None
        layer = panel.layer_widget.value
        try:
            if layer is None:
                raise ValueError("choose an image layer first")
            name = param or self.param.value
            p = panel.spec.param(name)
            self.param.value = name
            vals = parse_values(p, values if isinstance(values, str) else self.values.value) \
                if not isinstance(values, list) else [p.validate(v) for v in values]
            spec = panel.run_spec()
            params = spec.validate_params(panel.params)
            target = panel.target(layer)
        except (TypeError, ValueError, KeyError) as exc:
            show_error(f"{panel.spec.title} sweep: {exc}")
            return None
        cax = -1 if layer.rgb else None
        snap = snapshot(layer, target)
        self.button.text = "Stop sweep"
        panel.status.value = f"sweep of {name}: {len(vals)} runs…"
        losses: list | None = [] if self.with_loss.value else None
        self._pending_losses = losses
        job = start_job(
            lambda cancel: sweep_job(spec, target.data, cax, params, name, vals, cancel,
                                     target.value_range, losses),
            f"{spec.title} sweep of {name}",
            on_progress=lambda item: panel.report(item, job),
            on_returned=lambda v: self._finish(snap, cax, name, v),
            on_error=self._error, on_finished=self._finished,
            alive=lambda: panel.alive)
        self._cancel = job.cancel
        self.worker = job.worker
        return self.worker

    def _finish(self, snap: dict, cax: int | None, name: str, value: tuple) -> None:
        results, done, params, seconds = value
        if not results:
            show_info(f"{self.panel.spec.title}: sweep stopped before the first run finished.")
            return
        spec, viewer = self.panel.spec, self.panel.viewer
        data = np.stack(results)
        label = spec.param(name).short
        first, last = done[0], done[-1]
        fmt = (lambda v: f"{v:.3g}") if isinstance(first, float) else str
        base = f"{snap['name']} [{spec.name} sweep {label}={fmt(first)}…{fmt(last)}]"
        losses = getattr(self, "_pending_losses", None)
        sweep = {"param": name, "values": done}
        if losses is not None:
            sweep["losses"] = losses[: len(done)]
        meta = result_metadata(spec, {**params, name: done[0]}, snap["name"], cax, seconds,
                               sweep=sweep, target=snap.get("target"))
        kwargs = display_kwargs(spec.outputs[0], snap)
        self.layer = viewer.add_image(
            data, name=unique_name(viewer.layers, base), rgb=snap["rgb"], metadata=meta,
            scale=(1.0, *snap["scale"]), translate=(0.0, *snap["translate"]), **kwargs)
        axis = viewer.dims.ndim - self.layer.ndim
        labels = list(viewer.dims.axis_labels)
        labels[axis] = name
        viewer.dims.axis_labels = labels
        viewer.dims.set_current_step(axis, 0)
        self._labels[id(self.layer)] = (name, done)
        if losses is not None:
            self._losses[id(self.layer)] = losses[: len(done)]
        self._update_overlay()
        stopped = self._cancel is not None and self._cancel.is_set()
        self.panel.status.value = (f"sweep {'stopped' if stopped else 'done'}: {len(done)} runs "
                                   f"in {seconds:.1f} s → {self.layer.name}")
        self.panel.progress.value = self.panel.progress.max

    def _update_overlay(self, *_: Any) -> None:
        """Show "σ = 0.04" for the sweep plane under the slider (napari text overlay)."""
        viewer = self.panel.viewer
        layer = self.layer
        if layer is None or id(layer) not in self._labels:
            return
        if layer not in viewer.layers:  # the sweep layer was deleted: clear our overlay
            viewer_text_overlay(viewer).visible = False
            self._labels.pop(id(layer), None)
            self.layer = None
            return
        name, values = self._labels[id(layer)]
        axis = viewer.dims.ndim - layer.ndim
        k = int(np.clip(viewer.dims.current_step[axis], 0, len(values) - 1))
        overlay = viewer_text_overlay(viewer)
        overlay.visible = True
        value = values[k]
        shown = f"{value:.6g}" if isinstance(value, float) else value
        text = f"{layer.name.split(' [')[0]}: {name} = {shown}"
        losses = self._losses.get(id(layer))
        if losses and k < len(losses) and losses[k] is not None:
            text += f"\nself-supervised loss {losses[k]:.4g}"
        overlay.text = text

    def _error(self, exc: BaseException) -> None:
        show_error(f"{self.panel.spec.title} sweep failed: {type(exc).__name__}: {exc}")

    def _finished(self, _job: Any = None) -> None:
        self.worker = None
        self.button.text = "Run sweep"

    def shutdown(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
