"""Panel extras for film grain: Analyse (type + NLF and spectrum plots), grid/flip view of
the three result layers, and Synthesise (add grain to a clean layer).

``build(panel)`` is called by :class:`~napari_restore.widgets.panel.ProcessorPanel` (see
:mod:`._extras`). Analysis runs in a worker (:func:`._runner.start_job`) on the current
slice of the panel's input layer (its own choice, not the viewer's selection), so the GUI
never blocks; it reruns when that layer changes, and the profile measured by a Restore run
(its progress payload) updates the plots. Synthesis regrains any layer with any profile: a
colour profile gives a grey layer its luma grain, a greyscale profile gives an RGB layer the
same grain in every channel (:func:`grain_for`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
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
from ._plots import grain_plot, label_grain_axes
from ._runner import start_job
from ._section import Section

_OUTPUTS = ("denoised", "grain", "regrained")


def _describe(p: GrainProfile) -> str:
    """One line a person can read: type, level, size, and what synthesis can regrain."""
    if p.channels == 1:
        kind = "greyscale grain (regrains grey layers; colour layers get it in every channel)"
    else:
        kind = (f"{'colour' if p.colour else 'monochrome'} grain of an RGB layer "
                f"(channel correlation {p.channel_correlation:.2f}; grey layers get its "
                "luma grain)")
    return (f"{p.grain_type.replace('_', ' ')} · σ {p.sigma * 100:.2f} % of range · "
            f"size {p.grain_size_px:.2f} px · {kind}")


def grain_for(profile: GrainProfile, data: np.ndarray, rgb: bool, seed: int) -> np.ndarray:
    """Grain for ``data`` (one plane; RGB(A) when ``rgb``) from ``profile``, whatever the
    channels of each: a colour profile regrains a grey plane with its luma grain (the channel
    mean of its colour grain, which follows the profile's luma NLF); a greyscale profile
    regrains an RGB plane with the same grain in every channel (monochrome film grain)."""
    plane = data[..., :3] if rgb else data
    if profile.channels == 3 and not rgb:
        rgb_like = np.repeat(plane[..., None], 3, axis=-1)
        grain = synthesize_grain(plane.shape[:2] + (3,), profile, luminance=rgb_like,
                                 seed=seed, channel_axis=-1)
        return np.asarray(grain).mean(axis=-1)
    if profile.channels == 1 and rgb:
        luma = plane.astype(np.float64).mean(axis=-1)
        if np.issubdtype(plane.dtype, np.integer):  # the same units (grey levels) as data
            luma = np.rint(luma)
        luma = luma.astype(plane.dtype)
        grain = synthesize_grain(plane.shape[:2], profile, luminance=luma, seed=seed)
        return np.repeat(np.asarray(grain)[..., None], 3, axis=-1)
    shape = plane.shape[:2] + ((3,) if rgb else ())
    return np.asarray(synthesize_grain(shape, profile, luminance=plane, seed=seed,
                                       channel_axis=-1 if rgb else None))


class GrainExtras:
    """The extra widgets and their wiring (kept as ``panel.extras["restore_film_grain"]``)."""

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self.profile: GrainProfile | None = None
        self.profile_layer: str | None = None
        self.worker: Any = None
        self._pending = False
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
        self.analyse_button.tooltip = ("Measure the grain of the panel's image layer (current "
                                       "slice) on its flat regions: type, NLF, spectrum.")
        self.auto = CheckBox(text="analyse on layer change", value=True, name="auto_analyse",
                             tooltip="Analyse again whenever the panel's image layer changes.")
        self.summary = Label(value="grain: —", name="grain_summary", label="grain",
                             tooltip="What the last analysis measured.")
        self.save_file = FileEdit(mode="w", filter="*.json", name="profile_file",
                                  label="profile JSON",
                                  tooltip="Where Save profile writes the grain profile.")
        self.save_button = PushButton(text="Save profile", name="save_profile",
                                      tooltip="Save the last analysis as a grain profile JSON "
                                              "(reusable for synthesis and batch runs).")
        self.av1_button = PushButton(text="Save AV1 table…", name="save_av1_table")
        self.av1_button.tooltip = ("Write the grain as an AV1 film-grain table (libaom "
                                   "filmgrn1) for aomenc --film-grain-table.")
        # -- results: grid / flip
        self.grid = CheckBox(text="grid view of the results", value=False, name="grid_view",
                             tooltip="Show the input and the three results side by side.")
        self.flip_button = PushButton(text="Flip denoised / grain / regrained", name="flip",
                                      tooltip="Show one result at a time, cycling.")
        self._flip_index = -1
        # -- synthesise
        self.synth_target = ComboBox(label="clean layer", name="synth_target",
                                     choices=panel.image_layers,
                                     tooltip="The layer to add grain to (a new layer; grey "
                                             "or RGB, whatever the profile's channels).")
        self.synth_source = ComboBox(
            label="grain from", name="synth_source",
            choices=[("last analysis", "analysis"), ("profile JSON file", "file")],
            tooltip="Use the last analysis, or a saved profile (JSON or AV1 table).",
        )
        self.load_file = FileEdit(mode="r", filter="*.json *.tbl", name="load_file",
                                  label="load profile",
                                  tooltip="A grain profile JSON or an AV1 film-grain table.")
        self.synth_strength = FloatSpinBox(value=1.0, min=0.0, max=3.0, step=0.1,
                                           label="grain strength", name="synth_strength",
                                           tooltip="1 = the grain as measured.")
        self.synth_seed = SpinBox(value=0, min=0, max=2**31 - 1, label="random seed",
                                  name="synth_seed",
                                  tooltip="The same seed gives the same grain.")
        self.synth_button = PushButton(text="Synthesise grain", name="synthesise",
                                       tooltip="Add new grain with the profile's statistics to "
                                               "the clean layer (a new layer).")
        self.canvas, self.figure, self.ax_nlf, self.ax_psd = self._make_plot()
        analysis = Section("Grain analysis", [self.analyse_button, self.auto, self.summary],
                           expanded=True, name="grain_analysis",
                           tooltip="Measure the grain: type, noise-level function, spectrum.")
        analysis.add_native(self.canvas)
        sections = [
            analysis,
            Section("Results view", [self.grid, self.flip_button], expanded=True,
                    name="grain_results"),
            Section("Save grain profile", [self.save_file, self.save_button, self.av1_button],
                    name="grain_save"),
            Section("Synthesise grain", [self.synth_target, self.synth_source, self.load_file,
                                         self.synth_strength, self.synth_seed,
                                         self.synth_button], name="grain_synthesis"),
        ]
        for section in sections:
            panel.add_section(section)
        self.sections = {section.name: section for section in sections}
        self.container = analysis

        self.analyse_button.changed.connect(self.analyse)
        self.save_button.changed.connect(self.save_profile)
        self.av1_button.changed.connect(lambda *_: self.save_av1_table())
        self.grid.changed.connect(self._on_grid)
        self.flip_button.changed.connect(self.flip)
        self.synth_button.changed.connect(self.synthesise)
        panel.layer_widget.changed.connect(self._on_layer)
        panel.events.progressed.connect(self._on_progress)
        panel.events.results.connect(self._on_results)
        panel.connect_viewer(panel.viewer.layers.events.inserted, self._refresh_targets)
        panel.connect_viewer(panel.viewer.layers.events.removed, self._refresh_targets)
        self.results: list[Any] = []
        self.redraw()

    # -- plots ----------------------------------------------------------------------------
    @staticmethod
    def _make_plot() -> tuple[Any, Any, Any, Any]:
        return grain_plot()

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
        label_grain_axes(a1, a2, "% of range")

    @property
    def _alive(self) -> bool:
        return self.panel.alive

    def _on_destroyed(self, *_: Any) -> None:
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
        """The layer to analyse: the panel's own input layer, never the viewer's selection
        (selecting a result layer must not replace the source's profile)."""
        return self.panel.layer_widget.value

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
            grain = grain_for(prof, data, bool(layer.rgb), int(self.synth_seed.value))
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
