"""The generic dock panel: one is generated from each processor spec.

State machine (as in careamics-napari): ``idle -> running -> stopping -> idle``. Run turns
into Stop while a job runs; Stop sets the job's cancel event, which the array boundary checks
between planes and iterations. The run then ends with ``Cancelled`` and no result layer is
added, unless the spec says ``stop_keeps_result`` (the best result so far is kept). Jobs start
through :func:`._runner.start_job`, which also reports to napari's activity dock.

Extension API (what extras use, and all they use):

- ``add_section(widget, after=None)``: add a sub-container (or any widget) to the panel;
- ``add_run_hook(fn)``: ``fn(spec) -> spec`` transforms the spec of every run (Run, preview,
  sweep) just before it starts, e.g. to bind arrays with ``registry.with_arrays``; it may
  raise ``ValueError``/``TypeError`` to refuse the run. ``run_spec()`` applies the hooks;
- ``events``: ``started``, ``progressed``, ``results``, ``finished`` (see :class:`PanelEvents`);
- ``report(progress)``: show a progress report in the panel (bar, status, elapsed time);
- ``connect_viewer(signal, callback)``: viewer callbacks dropped when the panel dies;
- read-only state: ``viewer``, ``spec``, ``params``, ``target()``, ``image_layers()``,
  ``job_source`` (the snapshot of the running job's source layer), ``alive``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, ProgressBar, PushButton
from magicgui.widgets.bases import Widget
from psygnal import Signal
from napari.utils.notifications import show_error, show_info, show_warning

from .._arrays import Progress, ranged
from ..processors.registry import ProcessorSpec, get_processor
from ..settings import load_params, save_params
from ._dock import ViewerLink, image_choices
from ._extras import build_extras
from ._fit import TextLabel, align_labels, fit_width
from ._jobs import run_job
from ._layers import add_results, snapshot
from ._targets import Target, layer_value_range, select_target, targets_for
from .preview import LivePreview
from .recipes_ui import RecipeButtons
from .sweep import ParameterSweep
from ._params import intensity_units, set_intensity_units, widget_for
from ._runner import Job, start_job
from . import tiled_fill
from ._section import Section, hide_label_cell

if TYPE_CHECKING:
    from collections.abc import Callable

    from superqt.utils import GeneratorWorker

_PROGRESS_STEPS = 1000

#: Parameters shown above the fold besides the key ones (those in result layer names); the
#: others go into the "Advanced parameters" section, collapsed by default.
BASIC = frozenset({"sigma", "noise_model", "early_stopping", "device"})


def is_basic(p: Any) -> bool:
    """Whether parameter ``p`` is shown above the fold (else under "Advanced parameters")."""
    return bool(p.key) or p.name in BASIC


class PanelEvents:
    """Signals a panel emits, for extras (plots, live views) and tests.

    - ``started(source_layer)``: a run is about to start (its worker starts right after).
    - ``progressed(Progress)``: a progress report arrived (on the main thread).
    - ``results(list_of_layers)``: result layers were added.
    - ``finished(state)``: a run ended; ``state`` is "done", "stopped" or "failed".
    """

    started = Signal(object)
    progressed = Signal(object)
    results = Signal(list)
    finished = Signal(str)


class ProcessorPanel(Container):
    """Dock panel for one processor: layer picker, parameters, Run/Stop and a progress bar."""

    def __init__(self, viewer: napari.viewer.Viewer, spec: ProcessorSpec) -> None:
        self._viewer = viewer
        self.spec = spec
        self.layer_widget = ComboBox(label="image", name="image", choices=self.image_layers,
                                     tooltip="The layer to process (never modified; results "
                                             "are new layers).")
        self.param_widgets = {p.name: widget_for(p) for p in spec.params}
        advanced = [self.param_widgets[p.name] for p in spec.params if not is_basic(p)]
        #: The collapsible "Advanced parameters" section (None when every parameter is basic).
        self.advanced = Section(
            "Advanced parameters", advanced, name="advanced",
            tooltip="Parameters that rarely need changing.") if advanced else None
        targets = targets_for(spec.plane_ndim)
        self.target_widget = ComboBox(
            label="apply to", name="target",
            value=spec.default_target if spec.default_target in targets else "layer",
            choices=[(label, key) for key, label in targets.items()],
            tooltip="Whole layer (volume by volume), or the current volume (the current time "
                    "point of a 4-D layer)." if spec.plane_ndim == 3 else
                    "Whole layer (plane by plane), the current slice, or the part of the "
                    "current slice visible on screen.",
        )
        self.run_button = PushButton(
            text="Run", name="run",
            tooltip=f"Run {spec.title} on the chosen layer; the result is a new layer. While "
                    "it runs this button is Stop.")
        self.progress = ProgressBar(min=0, max=_PROGRESS_STEPS, value=0, name="progress",
                                    label="progress",
                                    tooltip="Progress of the run (moving while one plane is "
                                            "computed; also in napari's activity dock).")
        self.status = TextLabel(value="", name="status", tooltip="")
        basic = [self.param_widgets[p.name] for p in spec.params if is_basic(p)]
        super().__init__(
            widgets=[self.layer_widget, *basic, *([self.advanced] if self.advanced else []),
                     self.target_widget, self.run_button, self.progress, self.status],
            labels=True, scrollable=True,  # long panels scroll instead of growing the window
        )
        for section in self._sections():
            hide_label_cell(section)
        self.native._magic_widget = self
        self.tooltip = spec.summary
        self.state = "idle"
        self.worker: GeneratorWorker | None = None
        self.job: Job | None = None
        self._cancel: threading.Event | None = None
        self._run_hooks: list[Callable[[ProcessorSpec], ProcessorSpec]] = []
        self.extras: dict[str, Any] = {}
        self._job: dict[str, Any] = {}
        self.last_layers: list[Any] = []
        self.events = PanelEvents()
        self._outcome = "done"
        self.run_button.changed.connect(self._on_run_clicked)
        self._link = ViewerLink(self.native, on_close=self._on_close)
        events = viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            self.connect_viewer(ev, self._refresh_layers)
        self._refresh_layers()
        self._restore_params()
        self.layer_widget.changed.connect(self._show_units)
        self._show_units()
        for w in self.param_widgets.values():
            w.changed.connect(self._remember_params)
        # The tuning tools every panel gets (issue: tune and compare).
        self.preview = LivePreview(self)
        self.sweep = ParameterSweep(self)
        self.recipes = RecipeButtons(self)
        self.insert(self.index(self.run_button), self.preview.toggle)
        self.add_section(self.recipes.container)
        self.add_section(self.sweep.container)
        # widgets stay packed at the top (no stretched gaps in a tall dock): extras go above
        Container.native.fget(self).layout().addStretch(1)
        build_extras(self)
        fit_width(self)

    @property
    def viewer(self) -> napari.viewer.Viewer:
        return self._viewer

    @property
    def native(self) -> Any:
        """The panel's outer Qt widget: the scroll area (what napari docks)."""
        return self.root_native_widget

    @property
    def alive(self) -> bool:
        """False once the panel's widgets are being deleted (late signals must not touch them)."""
        return self._link.alive

    @property
    def _alive(self) -> bool:
        return self._link.alive

    @property
    def job_source(self) -> dict[str, Any]:
        """Snapshot of the source layer of the current (or last) run: name, scale, rgb…"""
        return dict(self._job.get("source", {}))

    def add_section(self, widget: Any, after: Any = None) -> Any:
        """Add ``widget`` (a magicgui widget, e.g. a Container or a :class:`Section`, or a Qt
        widget) to the panel.

        ``after`` is a widget of the panel (or its name), also one inside a section (e.g. an
        advanced parameter's widget): ``widget`` goes right below it, in the same section; by
        default it goes at the end. A :class:`Section` (collapsible, collapsed unless built
        with ``expanded=True``) spans the panel's width. Returns ``widget``.
        """
        if not isinstance(widget, Widget):
            layout = Container.native.fget(self).layout()
            layout.insertWidget(max(layout.count() - 1, 0), widget)  # above the stretch
            return widget
        if after is None:
            self.append(widget)
        else:
            ref = self._find(after)
            box = self._container_of(ref)
            box.insert(_index(box, ref) + 1, widget)
        if isinstance(widget, Section):
            hide_label_cell(widget)
        return widget

    def _find(self, name_or_widget: Any) -> Any:
        if not isinstance(name_or_widget, str):
            return name_or_widget
        for box in (self, *self._sections()):
            for w in box:
                if w.name == name_or_widget:
                    return w
        raise KeyError(f"{self.spec.title} panel has no widget named {name_or_widget!r}")

    def _sections(self) -> list[Section]:
        return [w for w in self if isinstance(w, Section)]

    def _container_of(self, widget: Any) -> Any:
        for box in (self, *self._sections()):
            if any(w is widget for w in box):
                return box
        raise ValueError(f"{widget!r} is not a widget of the {self.spec.title} panel")

    def add_run_hook(self, hook: Callable[[ProcessorSpec], ProcessorSpec]) -> None:
        """Register ``hook(spec) -> spec``, applied in order to the spec of every run."""
        self._run_hooks.append(hook)

    def run_spec(self) -> ProcessorSpec:
        """The spec a run would use now: ``spec`` through every run hook (which may raise
        ``ValueError``/``TypeError`` to refuse the run)."""
        spec = self.spec
        for hook in self._run_hooks:
            spec = hook(spec)
        return spec

    def connect_viewer(self, signal: Any, callback: Any) -> None:
        """Connect a viewer event for this panel's lifetime (dropped when the panel dies)."""
        self._link.connect(signal, callback)

    def _on_close(self) -> None:
        """The panel is being deleted (``alive`` is already false): stop every job."""
        if self._cancel is not None:
            self._cancel.set()
        self.preview.shutdown()
        self.sweep.shutdown()

    # -- layers -------------------------------------------------------------------------
    def image_layers(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """``(name, layer)`` of the viewer's image layers (choices for layer pickers)."""
        return image_choices(self._viewer)

    def _refresh_layers(self, _event: Any = None) -> None:
        current = self.layer_widget.value
        self.layer_widget.reset_choices()
        choices = [lay for _, lay in self.image_layers()]
        if current is None and choices:
            active = self._viewer.layers.selection.active
            self.layer_widget.value = active if active in choices else choices[-1]

    # -- parameters ---------------------------------------------------------------------
    def _show_units(self, *_: Any) -> None:
        """Label intensity parameters with the chosen layer's units; bounds, steps and
        decimals follow its dtype and range (σ in grey levels of uint16 steps by levels)."""
        layer = self.layer_widget.value
        if layer is None:
            return
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        dtype = np.dtype(data.dtype)
        try:
            rng = (layer_value_range(layer) if ranged(dtype)
                   else tuple(float(v) for v in layer.contrast_limits_range))
        except (TypeError, ValueError):
            rng = None
        unit, span, data_span = intensity_units(dtype, rng)
        for p in self.spec.params:
            if p.intensity:
                set_intensity_units(self.param_widgets[p.name], p, unit, span, data_span,
                                    integer=dtype.kind in "iu")
        align_labels(self)  # the unit changed a label's width

    @property
    def params(self) -> dict[str, Any]:
        """Current parameter values as the spec expects them."""
        return {name: w.value for name, w in self.param_widgets.items()}

    def set_params(self, values: dict[str, Any]) -> None:
        for name, v in self.spec.validate_params({**self.params, **values}).items():
            try:
                self.param_widgets[name].value = v
            except ValueError as exc:  # beyond what the chosen layer allows
                raise ValueError(f"{name}={v!r}: {exc}") from None

    def _restore_params(self) -> None:
        try:
            self.set_params(load_params(self.spec.name))
        except (TypeError, ValueError):  # a spec changed since: keep the defaults
            pass

    def _remember_params(self, *_: Any) -> None:
        try:
            save_params(self.spec.name, self.params)
        except (TypeError, ValueError):
            pass  # an intermediate widget state; the next change saves

    def target(self, layer: Any = None, mode: str | None = None) -> Target:
        """What a run would process now (see :mod:`._targets`)."""
        layer = layer if layer is not None else self.layer_widget.value
        return select_target(self._viewer, layer, mode or self.target_widget.value,
                             self.spec.plane_ndim)

    # -- running ------------------------------------------------------------------------
    def _on_run_clicked(self, *_: Any) -> None:
        if self.state == "idle":
            self.start()
        elif self.state == "running":
            self.stop()

    def start(self) -> GeneratorWorker | None:
        """Start a run on the selected layer; returns the worker (None if it could not start)."""
        if self.state != "idle":
            return None
        layer = self.layer_widget.value
        if layer is None:
            show_warning(f"{self.spec.title}: choose an image layer first.")
            return None
        try:
            spec = self.run_spec()
            params = spec.validate_params(self.params)
            target = self.target(layer)
        except (TypeError, ValueError) as exc:
            show_error(f"{self.spec.title}: {exc}")
            return None
        channel_axis = -1 if layer.rgb else None
        self._job = {"source": snapshot(layer, target), "channel_axis": channel_axis,
                     "spec": spec}
        self._set_state("running")
        self.progress.value = 0
        self.status.value = f"running on {layer.name} ({target.description})…"
        self._outcome = "done"
        self.events.started.emit(layer)
        self.job = tiled_fill.start(  # a streamed run: its layer fills as tiles finish
            self, spec, target, layer, params, channel_axis, on_error=self._on_errored,
            on_finished=self._on_finished) or start_job(
            lambda cancel: run_job(spec, target.data, channel_axis, params, cancel,
                                   target.value_range),
            f"{self.spec.title} on {layer.name}",
            on_progress=self.report, on_returned=self._on_returned,
            on_error=self._on_errored, on_finished=self._on_finished,
            alive=lambda: self._alive, on_tick=self._show_busy)
        self._busy_text = self.status.value
        self.progress.max = 0  # busy until the job reports fractions
        self._cancel = self.job.cancel
        self.worker = self.job.worker
        return self.worker

    def stop(self) -> None:
        """Request cancellation.

        The array boundary sees the cancel event at the next plane or iteration and ends the
        run: no layer is added, unless the spec says ``stop_keeps_result`` (then the
        processor's best result so far becomes the result).
        """
        if self.state != "running" or self.worker is None:
            return
        assert self._cancel is not None
        self._cancel.set()
        self._set_state("stopping")
        self.status.value = "stopping…"

    def _set_state(self, state: str) -> None:
        self.state = state
        self.run_button.text = {"idle": "Run", "running": "Stop", "stopping": "Stopping…"}[state]
        self.run_button.enabled = state != "stopping"

    def _show_busy(self, job: Job) -> None:
        """A run without fine-grained progress (one plane): busy bar and elapsed time."""
        self.status.value = f"{self._busy_text} · {job.elapsed:.0f} s"

    def report(self, item: Progress, job: Job | None = None) -> None:
        """Show a progress report: the bar, and plane k/n with elapsed time and ETA (of
        ``job``, by default the panel's run); emits ``events.progressed``."""
        if not self._alive:
            return
        job = job or self.job
        self.events.progressed.emit(item)
        if job is not None and job.fraction is None and item.total <= 1 \
                and not 0 < item.fraction < 1:
            return  # no fine-grained progress: stays busy
        self.progress.max = _PROGRESS_STEPS
        self.progress.value = int(round(item.fraction * _PROGRESS_STEPS))
        elapsed = job.elapsed if job is not None else 0.0
        text = f"plane {min(item.done + 1, item.total)}/{item.total} · {elapsed:.1f} s"
        if 0 < item.fraction < 1:
            eta = elapsed * (1 - item.fraction) / item.fraction
            text += f" · ETA {eta:.0f} s"
        self.status.value = text

    def _on_returned(self, value: tuple[Any, dict[str, Any], float, dict[str, Any]]) -> None:
        if not self._alive:
            return
        stopped = self._cancel is not None and self._cancel.is_set()
        if stopped and not self._job["spec"].stop_keeps_result:
            self._outcome = "stopped"  # stopped at the very end: keep the promise of "no layer"
            return
        result, params, seconds, resolved = value
        try:
            self.last_layers = add_results(
                self._viewer, self._job["source"], self._job["spec"], params,
                self._job["channel_axis"], result, seconds, resolved=resolved,
            )
        except Exception as exc:  # e.g. the viewer is closing
            show_error(f"{self.spec.title}: could not add the result layer: {exc}")
            return
        self.progress.max = _PROGRESS_STEPS
        self.progress.value = _PROGRESS_STEPS
        self.status.value = f"done in {seconds:.2f} s → {self.last_layers[0].name}"
        self._outcome = "kept" if stopped else "done"
        self.events.results.emit(self.last_layers)

    def _on_errored(self, exc: BaseException) -> None:
        self._outcome = "failed"
        if isinstance(exc, TypeError | ValueError):
            show_error(f"{self.spec.title}: {exc}")
        else:
            show_error(f"{self.spec.title} failed: {type(exc).__name__}: {exc}")
        self.status.value = f"failed: {exc}"

    def _on_finished(self, job: Job) -> None:
        self.worker = None
        if self.progress.max == 0:
            self.progress.max = _PROGRESS_STEPS
        if job.outcome == "stopped" and self._outcome == "done":
            self._outcome = "stopped"  # ended by Cancelled
        self._set_state("idle")
        if self._outcome == "stopped":
            self.progress.value = 0
            self.status.value = "stopped: no layer added"
            show_info(f"{self.spec.title}: stopped, no layer added.")
        elif self._outcome == "kept":
            show_info(f"{self.spec.title}: stopped; kept the best result so far.")
        self.events.finished.emit(self._outcome)


def _index(box: Any, widget: Any) -> int:
    return next(i for i, w in enumerate(box) if w is widget)


def panel_factory(name: str) -> type[ProcessorPanel]:
    """The npe2 widget contribution for processor ``name``: a panel class taking the viewer.

    napari inspects ``__init__`` for a viewer parameter, so this is a (tiny) class rather
    than a function.
    """

    class Panel(ProcessorPanel):
        def __init__(self, viewer: napari.viewer.Viewer) -> None:
            super().__init__(viewer, get_processor(name))

    Panel.__name__ = Panel.__qualname__ = "".join(w.title() for w in name.split("_")) + "Panel"
    Panel.__doc__ = f"Dock panel for the {name!r} processor."
    return Panel
