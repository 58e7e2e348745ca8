"""Panel extras for film grain: Analyse (type + NLF and spectrum plots), grid/flip view of
the three result layers, and Synthesise (add grain to a clean layer).

``build(panel)`` is called by :class:`~napari_restore.widgets.panel.ProcessorPanel` (see
:mod:`._extras`). Analysis runs in a worker (:func:`._runner.start_job`) on the current
slice of the selected layer, so the GUI never blocks; it reruns when the selected layer
changes, and the profile measured by a Restore run (its progress payload) updates the plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_error, show_info

from .._compat import viewer_grid
from ..processors.grain_analysis import analyze_grain
from ..processors.grain_profile import GrainProfile
from ..processors.grain_synthesis import synthesize_grain
from ._plots import draw_later
from ._runner import start_job

_OUTPUTS = ("denoised", "grain", "regrained")


def _describe(p: GrainProfile) -> str:
    kind = "colour" if p.colour else "mono"
    return (f"{p.grain_type} · σ {p.sigma * 100:.2f} % · size {p.grain_size_px:.2f} px · "
            f"{kind} (ρ {p.channel_correlation:.2f})")


class GrainExtras:
    """The extra widgets and their wiring (kept as ``panel.extras["restore_film_grain"]``)."""

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self.profile: GrainProfile | None = None
        self.profile_layer: str | None = None
        self.worker: Any = None
        self._pending = False
        self._alive = True
        panel.native.destroyed.connect(self._on_destroyed)
        # automatic analyses are debounced: flipping through layers starts one analysis, and a
        # closing viewer (its layers removed one by one) starts none, as the timer dies with
        # the panel
        from qtpy.QtCore import QTimer

        self._timer = QTimer(panel.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.analyse)
        # -- analyse
        self.analyse_button = PushButton(text="Analyse", name="analyse")
        self.analyse_button.tooltip = ("Measure the grain of the selected layer (current "
                                       "slice) on its flat regions: type, NLF, spectrum.")
        self.auto = CheckBox(text="analyse on layer change", value=True, name="auto_analyse")
        self.summary = Label(value="grain: —", name="grain_summary")
        self.save_file = FileEdit(mode="w", filter="*.json", name="profile_file",
                                  label="profile JSON")
        self.save_button = PushButton(text="Save profile", name="save_profile")
        self.av1_button = PushButton(text="Save AV1 table…", name="save_av1_table")
        self.av1_button.tooltip = ("Write the grain as an AV1 film-grain table (libaom "
                                   "filmgrn1) for aomenc --film-grain-table.")
        # -- results: grid / flip
        self.grid = CheckBox(text="grid view of the results", value=False, name="grid_view")
        self.flip_button = PushButton(text="Flip denoised / grain / regrained", name="flip")
        self._flip_index = -1
        # -- synthesise
        self.synth_target = ComboBox(label="clean layer", name="synth_target",
                                     choices=panel.image_layers)
        self.synth_source = ComboBox(
            label="grain from", name="synth_source",
            choices=[("last analysis", "analysis"), ("profile JSON file", "file")],
        )
        self.load_file = FileEdit(mode="r", filter="*.json *.tbl", name="load_file",
                                  label="load profile")
        self.synth_strength = FloatSpinBox(value=1.0, min=0.0, max=3.0, step=0.1,
                                           label="grain strength", name="synth_strength")
        self.synth_seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed", name="synth_seed")
        self.synth_button = PushButton(text="Synthesise grain", name="synthesise")
        box = Container(
            widgets=[self.analyse_button, self.auto, self.summary, self.save_file,
                     self.save_button, self.av1_button, self.grid, self.flip_button, self.synth_target,
                     self.synth_source, self.load_file, self.synth_strength, self.synth_seed,
                     self.synth_button],
            labels=True, name="grain_tools",
        )
        self.container = box
        panel.add_section(box)
        self.canvas, self.figure, self.ax_nlf, self.ax_psd = self._make_plot()
        panel.add_section(self.canvas)

        self.analyse_button.changed.connect(self.analyse)
        self.save_button.changed.connect(self.save_profile)
        self.av1_button.changed.connect(lambda *_: self.save_av1_table())
        self.grid.changed.connect(self._on_grid)
        self.flip_button.changed.connect(self.flip)
        self.synth_button.changed.connect(self.synthesise)
        panel.layer_widget.changed.connect(self._on_layer)
        panel.connect_viewer(panel.viewer.layers.selection.events.active, self._on_selection)
        panel.events.progressed.connect(self._on_progress)
        panel.events.results.connect(self._on_results)
        panel.connect_viewer(panel.viewer.layers.events.inserted, self._refresh_targets)
        panel.connect_viewer(panel.viewer.layers.events.removed, self._refresh_targets)
        self.results: list[Any] = []
        self.redraw()

    # -- plots ----------------------------------------------------------------------------
    @staticmethod
    def _make_plot() -> tuple[Any, Any, Any, Any]:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3.8, 2.3), dpi=90, layout="constrained")
        ax1 = fig.add_subplot(1, 2, 1)
        ax2 = fig.add_subplot(1, 2, 2)
        canvas = FigureCanvasQTAgg(fig)
        canvas.setMinimumHeight(180)
        return canvas, fig, ax1, ax2

    def redraw(self) -> None:
        """Draw the NLF (grain std vs intensity) and the radial power spectrum."""
        a1, a2 = self.ax_nlf, self.ax_psd
        a1.cla()
        a2.cla()
        p = self.profile
        if p is not None:
            x = np.asarray(p.nlf_intensity)
            names = ["grey"] if p.channels == 1 else ["R", "G", "B"]
            colours = ["k"] if p.channels == 1 else ["tab:red", "tab:green", "tab:blue"]
            for row, name, col in zip(p.nlf_sigma, names, colours, strict=True):
                a1.plot(x, np.asarray(row) * 100, "o-", ms=3, lw=1, color=col, label=name)
            if p.channels > 1:
                a1.plot(x, np.asarray(p.nlf_chroma) * 100, "--", lw=1, color="0.5", label="chroma")
            a1.legend(fontsize=6, frameon=False)
            f = np.asarray(p.spectrum_freq)
            a2.semilogy(f[1:], np.maximum(np.asarray(p.spectrum_power)[1:], 1e-8), "-", lw=1.2)
        a1.set_xlabel("intensity", fontsize=7)
        a1.set_ylabel("grain σ (% of range)", fontsize=7)
        a1.set_title("noise-level function", fontsize=8)
        a2.set_xlabel("cycles / pixel", fontsize=7)
        a2.set_title("power spectrum", fontsize=8)
        for a in (a1, a2):
            a.tick_params(labelsize=6)
        draw_later(self.canvas)

    def _on_destroyed(self, *_: Any) -> None:
        self._alive = False
        self._pending = False

    def show_profile(self, profile: GrainProfile, layer_name: str | None = None) -> None:
        if not self._alive:
            return
        self.profile = profile
        self.profile_layer = layer_name
        where = f" ({layer_name})" if layer_name else ""
        self.summary.value = _describe(profile) + where
        self.redraw()

    # -- analysis ---------------------------------------------------------------------------
    def _on_layer(self, *_: Any) -> None:
        self._refresh_targets()
        if self.auto.value and self._alive:
            self._timer.start()

    def _analysis_layer(self) -> Any:
        """The layer to analyse: the viewer's selected image layer (what the user looks at),
        else the panel's input layer."""
        import napari

        active = self.panel.viewer.layers.selection.active
        if isinstance(active, napari.layers.Image):
            return active
        return self.panel.layer_widget.value

    def _on_selection(self, *_: Any) -> None:
        if self.auto.value and self._alive:
            self._timer.start()

    def analyse(self, *_: Any) -> Any:
        """Analyse the selected layer's current slice in a thread worker; returns the worker."""
        layer = self._analysis_layer()
        if layer is None:
            self.summary.value = "grain: — (no image layer)"
            return None
        if self.worker is not None:  # one at a time: rerun when the current one ends
            self._pending = True
            return self.worker
        try:
            data = np.asarray(self.panel.target(layer, "slice").data)
        except ValueError as exc:
            self.summary.value = f"grain: — ({exc})"[:90]
            return None
        cax = -1 if layer.rgb else None
        self.summary.value = f"analysing {layer.name}…"
        name = layer.name
        job = start_job(lambda _cancel: analyze_grain(data, channel_axis=cax),
                        f"Film grain: analysing {name}",
                        on_returned=lambda prof: self.show_profile(prof, name),
                        on_error=self._on_error, on_finished=self._on_analysis_done)
        self.worker = job.worker
        return self.worker

    def _on_error(self, exc: BaseException) -> None:
        if not self._alive:
            return
        self.summary.value = f"grain: — ({exc})"[:90]

    def _on_analysis_done(self, _job: Any = None) -> None:
        self.worker = None
        if self._pending and self._alive:
            self._pending = False
            self.analyse()

    def wait(self, timeout: float = 60.0) -> None:
        """Block (processing Qt events) until no analysis is running — for scripts and tests."""
        import time

        from qtpy.QtWidgets import QApplication

        t0 = time.perf_counter()
        while (self.worker is not None or self._pending or self._timer.isActive()) \
                and time.perf_counter() - t0 < timeout:
            QApplication.processEvents()
            time.sleep(0.01)

    def _on_progress(self, item: Any) -> None:
        if isinstance(getattr(item, "info", None), GrainProfile):
            self.show_profile(item.info, "restore run")

    def save_profile(self, *_: Any) -> None:
        path = Path(str(self.save_file.value))
        if self.profile is None or not path.name or path.is_dir():
            show_error("Film grain: analyse a layer and choose a file name first.")
            return
        self.profile.save(path)
        show_info(f"Film grain: profile saved to {path}")

    def save_av1_table(self, path: str | Path | None = None) -> str | None:
        """Save the profile as an AV1 film-grain table (asks for the file when ``path`` is
        None); returns the message shown, or None."""
        from ..processors.grain_av1 import save_av1_table

        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(self.panel.native, "Save AV1 film-grain table",
                                                  "", "AV1 film-grain table (*.tbl)")
            if not path:
                return None
        try:
            msg = save_av1_table(self.profile, path, fit=True)
        except (ValueError, OSError) as exc:
            show_error(f"Film grain: {exc}")
            return None
        show_info(f"Film grain: {msg}")
        return msg

    # -- results ----------------------------------------------------------------------------
    def _on_results(self, layers: list[Any]) -> None:
        self.results = list(layers)
        self._flip_index = -1
        if self.grid.value:
            self._on_grid(True)

    def _on_grid(self, on: bool) -> None:
        """Grid mode showing the source and the three results side by side."""
        viewer = self.panel.viewer
        if on and self.results:
            keep = set(self.results)
            src = self.panel.layer_widget.value
            if src is not None:
                keep.add(src)
            for lay in viewer.layers:
                lay.visible = lay in keep
        viewer_grid(viewer).enabled = bool(on)

    def flip(self, *_: Any) -> None:
        """Show one of the three result layers at a time (cycling)."""
        live = [lay for lay in self.results if lay in self.panel.viewer.layers]
        if not live:
            return
        viewer_grid(self.panel.viewer).enabled = False
        self.grid.value = False
        self._flip_index = (self._flip_index + 1) % len(live)
        for i, lay in enumerate(live):
            lay.visible = i == self._flip_index
        self.panel.viewer.layers.selection.active = live[self._flip_index]

    # -- synthesis --------------------------------------------------------------------------
    def _refresh_targets(self, *_: Any) -> None:
        self.synth_target.reset_choices()

    def _synth_profile(self) -> GrainProfile:
        if self.synth_source.value == "file":
            path = Path(str(self.load_file.value))
            if not path.is_file():
                raise ValueError("choose a grain profile JSON file to load")
            if path.suffix.lower() == ".tbl":  # an AV1 film-grain table
                return GrainProfile.from_av1_table(path)
            return GrainProfile.load(path)
        if self.profile is None:
            raise ValueError("analyse a grainy layer first (or load a profile JSON file)")
        return self.profile

    def synthesise(self, *_: Any) -> Any:
        """Add synthesised grain to the chosen clean layer (a new layer); returns it."""
        layer = self.synth_target.value
        if layer is None:
            show_error("Film grain: choose a clean layer to add grain to.")
            return None
        try:
            prof = self._synth_profile()
            data = np.asarray(self.panel.target(layer, "slice").data)
            cax = -1 if layer.rgb else None
            shape = data.shape[:2] + ((3,) if prof.channels == 3 else ())
            if layer.rgb and prof.channels == 1:
                raise ValueError("the profile is greyscale but the layer is RGB; "
                                 "measure the grain on a colour layer")
            if not layer.rgb and prof.channels == 3:
                raise ValueError("the profile is colour but the layer is greyscale; "
                                 "measure the grain on a greyscale layer")
            grain = synthesize_grain(shape, prof, luminance=data[..., :3] if layer.rgb else data,
                                     seed=int(self.synth_seed.value),
                                     channel_axis=cax)
        except (TypeError, ValueError) as exc:
            show_error(f"Film grain: {exc}")
            return None
        out = data.astype(np.float64)
        if layer.rgb:
            out[..., :3] += self.synth_strength.value * grain
        else:
            out += self.synth_strength.value * grain
        if np.issubdtype(data.dtype, np.integer):
            info = np.iinfo(data.dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        out = out.astype(data.dtype)
        from ._layers import unique_name

        name = unique_name(self.panel.viewer.layers,
                           f"{layer.name} [grain {prof.grain_type} seed={self.synth_seed.value}]")
        return self.panel.viewer.add_image(out, name=name, rgb=layer.rgb,
                                           scale=layer.scale[-2:], translate=layer.translate[-2:])


def build(panel: Any) -> GrainExtras:
    """Add the Analyse / grid / Synthesise tools and the grain plots to ``panel``."""
    return GrainExtras(panel)
