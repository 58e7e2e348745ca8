"""Compare grain: a dock widget overlaying the NLF curves and power spectra of two or more grain
layers in one plot, with a distance table for each pair.

Its own dock widget (declared in ``napari.yaml``), composed only of magicgui widgets, a
matplotlib canvas and the job runner (:func:`._runner.start_job`): the measurement
(:func:`~napari_restore.processors.grain_compare.iter_compare_grains`) runs in a worker on the
current slice of each chosen layer. Each grain may be given the image it belongs to (for the
NLF's intensities); a result layer of the Film grain panel is paired with its source layer.
"""

from __future__ import annotations

import math
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, Select, Table
from qtpy.QtWidgets import QStyledItemDelegate

from ..processors.grain_compare import COLUMNS, GrainComparison, iter_compare_grains
from ._dock import LinkedDock, ViewerLink
from ._fit import TextLabel, fit_width
from ._layers import META_KEY, unique_name
from ._plots import grain_plot, label_grain_axes
from ._runner import start_job
from ._targets import select_target

#: Height of the plot (px): fixed, so the dock does not grow with the window.
PLOT_HEIGHT = 230
#: Height of a table row (px).
ROW_HEIGHT = 21
#: Colours of the grains in the plot (matplotlib's tab10 order).
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


#: Columns of the table: the pair "A–B" (B against A, numbered as in the key), then the core's.
TABLE_COLUMNS = ("pair",) + COLUMNS[2:]


def _label(k: int) -> str:
    return str(k + 1)


def _cell(column: str, value: Any) -> str:
    """A table cell as shown: 3 significant digits (the dock is narrow), the channel
    correlation difference signed with 2 decimals, an infinite ratio as ∞."""
    if not isinstance(value, float):
        return str(value)
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if column == "Δ chan ρ":
        return f"{round(value, 2) + 0.0:+.2f}"
    return f"{value:.3g}"


class GrainComparePanel(LinkedDock, Container):
    """Dock widget: choose grain layers (and their images), Compare, read the plot and table."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        # -- make a grain layer: image − its clean version
        self.grain_of = ComboBox(label="grain of", choices=self._images, name="grain_of",
                                 tooltip="A grainy image: the scan, a regrained result, a "
                                         "stock's frame.")
        self.minus = ComboBox(label="minus", choices=self._images, name="minus",
                              tooltip="Its clean version: the denoised result, the clean "
                                      "reference.")
        self.make_button = PushButton(text="Add grain layer (image − clean)", name="make_grain")
        make_box = Container(widgets=[self.grain_of, self.minus], labels=True, name="make")
        make_box.margins = (0, 0, 0, 0)
        # -- the comparison
        self.grains = Select(label="grains", choices=self._images, name="grains",
                             tooltip="Two or more grain layers: a scan's grain, the extracted "
                                     "grain, a resynthesised grain, a reference stock's grain.")
        self.grains.max_height = 100
        self.images_box = Container(name="images", labels=True)
        self.images_box.margins = (0, 0, 0, 0)
        self.compare_button = PushButton(text="Compare grain", name="compare",
                                         tooltip="Measure each grain (current slice) and "
                                                 "compare every pair.")
        self.status = TextLabel(value="choose two or more grain layers", name="status")
        self.key = TextLabel(value="", name="key")
        plot_box = Container(name="plot", labels=False)
        plot_box.margins = (0, 0, 0, 0)
        self.canvas, self.figure, self.ax_nlf, self.ax_psd = self._make_plot()
        plot_box.native.layout().addWidget(self.canvas)
        self.table = Table(value={"data": [], "index": [], "columns": list(TABLE_COLUMNS)},
                           name="table")
        self.table.min_height = 6 * ROW_HEIGHT + 30  # the 6 pairs of 4 grains, no scrolling
        self.table.native.verticalHeader().setVisible(False)
        # cells as _cell writes them (magicgui's delegate would reformat numbers to 4 decimals)
        self.table.native.setItemDelegate(QStyledItemDelegate(self.table.native))
        self.table.native.setStyleSheet("QTableWidget::item { padding: 0px 1px; }")
        self.table.native.horizontalHeader().setMinimumSectionSize(16)
        self.table.native.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        super().__init__(widgets=[Label(value="grain layers:"), self.grains, self.images_box,
                                  self.compare_button, self.status, self.key, plot_box,
                                  self.table, Label(value="make a grain layer:"), make_box,
                                  self.make_button],
                         labels=False, scrollable=True)
        self.native._magic_widget = self
        self.result: GrainComparison | None = None
        self.job: Any = None
        self._paired: dict[str, Any] = {}  # grain layer name -> image layer (or None)
        self._image_widgets: dict[str, ComboBox] = {}
        self.make_button.changed.connect(lambda *_: self.make_grain())
        self.compare_button.changed.connect(lambda *_: self._on_compare_clicked())
        self.grains.changed.connect(lambda *_: self._rebuild_images())
        self._link = ViewerLink(self.native, on_close=self._stop_job)
        ev = viewer.layers.events
        for e in (ev.inserted, ev.removed, ev.reordered):
            self._link.connect(e, self._on_layers)
        self.redraw()
        fit_width(self)

    @property
    def native(self) -> Any:
        """The outer Qt widget: the scroll area (what napari docks)."""
        return self.root_native_widget

    def scroll_to_results(self) -> None:
        """Scroll the dock so that the plot and the table are in view."""
        self.native.ensureWidgetVisible(self.table.native, 0, 0)

    # -- layers ---------------------------------------------------------------------------
    def _on_layers(self, *_: Any) -> None:
        if not self._alive:
            return
        for combo in (self.grains, self.grain_of, self.minus):
            combo.reset_choices()
        self._rebuild_images()

    def _guess_image(self, layer: Any) -> Any:
        """The source layer recorded in a result's metadata, when it is still in the viewer."""
        source = (layer.metadata.get(META_KEY) or {}).get("source")
        if source and source in self._viewer.layers and source != layer.name:
            found = self._viewer.layers[source]
            if isinstance(found, napari.layers.Image) and found.data.shape == layer.data.shape:
                return found
        return None

    def _rebuild_images(self) -> None:
        """One "image of k" picker per chosen grain (kept across rebuilds)."""
        for name, combo in self._image_widgets.items():
            self._paired[name] = combo.value
        self.images_box.clear()
        self._image_widgets = {}
        chosen = list(self.grains.value)
        others = [(lay.name, lay) for lay in self._viewer.layers
                  if isinstance(lay, napari.layers.Image) and lay not in chosen]
        for k, layer in enumerate(chosen):
            value = self._paired.get(layer.name, self._guess_image(layer))
            if value is not None and value not in self._viewer.layers:
                value = None
            combo = ComboBox(label=f"image of {_label(k)}", choices=others, value=value,
                             nullable=True, name=f"image_{k + 1}",
                             tooltip=f"The image {layer.name!r} belongs to (the grainy image it "
                                     "is part of, or the clean one it is for): the NLF's "
                                     "intensities. Empty: no image (one level).")
            self._image_widgets[layer.name] = combo
            self.images_box.append(combo)
        fit_width(self.images_box, width=0)
        self.key.value = "  ".join(f"{_label(k)}: {lay.name}" for k, lay in enumerate(chosen))

    def set_image(self, grain: Any, image: Any) -> None:
        """Pair the chosen grain layer ``grain`` with ``image`` (a layer, or None)."""
        self._image_widgets[grain.name].value = image

    def make_grain(self, image: Any = None, clean: Any = None) -> Any:
        """Add the grain layer ``image − clean`` (signed, float32, in the image's units; the
        current slice of each) and return it; it is paired with ``image`` when compared."""
        image = self.grain_of.value if image is None else image
        clean = self.minus.value if clean is None else clean
        if image is None or clean is None or image is clean:
            self.status.value = "Add grain layer: choose an image and its clean version"
            return None
        a = np.asarray(select_target(self._viewer, image, "slice").data)
        b = np.asarray(select_target(self._viewer, clean, "slice").data)
        if a.shape != b.shape or bool(image.rgb) != bool(clean.rgb):
            self.status.value = (f"Add grain layer: {image.name!r} {a.shape} and {clean.name!r} "
                                 f"{b.shape} must have the same shape")
            return None
        grain = a.astype(np.float32) - b.astype(np.float32)
        if image.rgb and grain.shape[-1] == 4:  # alpha is not grain
            grain = grain[..., :3]
        lim = float(np.quantile(np.abs(grain), 0.995)) or 1.0
        name = unique_name(self._viewer.layers, f"{image.name} − {clean.name} grain")
        layer = self._viewer.add_image(
            grain, name=name, rgb=bool(image.rgb), contrast_limits=(-lim, lim),
            scale=image.scale[-2:], translate=image.translate[-2:],
            metadata={META_KEY: {"output": "grain", "source": image.name, "clean": clean.name}})
        self.status.value = f"added {name!r}"
        return layer

    # -- comparison -----------------------------------------------------------------------
    def _inputs(self) -> tuple[list[Any], list[Any], list[str], int | None]:
        chosen = list(self.grains.value)
        if len(chosen) < 2:
            raise ValueError("choose two or more grain layers")
        images = [self._image_widgets[lay.name].value if lay.name in self._image_widgets
                  else None for lay in chosen]
        rgb = {bool(lay.rgb) for lay in chosen + [im for im in images if im is not None]}
        if len(rgb) > 1:
            raise ValueError("the grains (and their images) must be all greyscale or all RGB")
        slice_of = lambda lay: np.asarray(select_target(self._viewer, lay, "slice").data)
        grains = [slice_of(lay) for lay in chosen]
        imgs = [None if im is None else slice_of(im) for im in images]
        return grains, imgs, [lay.name for lay in chosen], (-1 if rgb == {True} else None)

    def compare(self) -> Any:
        """Measure the chosen grains in a worker and show the result; returns the job."""
        if self.job is not None:
            return self.job
        try:
            grains, images, names, cax = self._inputs()
        except ValueError as exc:
            self.status.value = f"Compare grain: {exc}"
            return None
        self.status.value = f"measuring {len(grains)} grains…"
        self.compare_button.text = "Stop"
        self.job = start_job(
            lambda cancel: iter_compare_grains(grains, images=images, names=names,
                                               channel_axis=cax, cancel=cancel),
            f"Compare grain: {len(grains)} layers",
            on_progress=lambda p: setattr(self.status, "value",
                                          f"measured {p.done}/{p.total} grains"),
            on_returned=self.show, on_error=self._on_error, on_finished=self._on_finished,
            alive=lambda: self._alive)
        return self.job

    def _on_compare_clicked(self) -> None:
        if self.job is None:
            self.compare()
        elif not self.job.stopping:
            self.job.stop()
            self.compare_button.text = "Stopping…"

    def _on_error(self, exc: BaseException) -> None:
        self.status.value = f"Compare grain: {exc}"

    def _on_finished(self, job: Any) -> None:
        self.job = None
        self.compare_button.text = "Compare grain"
        if job.outcome == "stopped":
            self.status.value = "stopped"

    def show(self, result: GrainComparison) -> None:
        """Show a comparison: the plot and the distance table."""
        self.result = result
        labels = {name: _label(k) for k, name in enumerate(result.names)}
        rows = result.table()
        for row in rows:
            row["pair"] = f"{labels[row['A']]}–{labels[row['B']]}"
        self.table.value = {"data": [[_cell(c, r[c]) for c in TABLE_COLUMNS] for r in rows],
                            "index": list(range(1, len(rows) + 1)),
                            "columns": list(TABLE_COLUMNS)}
        self.table.native.resizeColumnsToContents()
        self.status.value = (f"{len(result.curves)} grains, {len(rows)} pairs "
                             f"(σ in {result.unit}; B against A)")
        self.redraw()

    # -- plot -----------------------------------------------------------------------------
    @staticmethod
    def _make_plot() -> tuple[Any, Any, Any, Any]:
        return grain_plot(PLOT_HEIGHT)

    def redraw(self) -> None:
        """Overlay every grain's NLF (σ vs intensity; rms over colour channels) and spectrum."""
        a1, a2 = self.ax_nlf, self.ax_psd
        a1.cla()
        a2.cla()
        unit = "data units"
        res = self.result
        if res is not None:
            unit = res.unit
            for k, c in enumerate(res.curves):
                col = COLOURS[k % len(COLOURS)]
                sigma = np.sqrt(np.mean(np.asarray(c.sigma) ** 2, axis=0))
                if c.has_image:
                    a1.plot(c.intensity, sigma, "o-", ms=2.5, lw=1.2, color=col, label=_label(k))
                else:  # one level at every intensity
                    a1.axhline(float(sigma[0]), ls="--", lw=1.2, color=col, label=_label(k))
                f = np.asarray(c.freq)
                a2.semilogy(f[1:], np.maximum(np.asarray(c.power)[1:], 1e-8), "-", lw=1.2,
                            color=col, label=_label(k))
            a1.set_ylim(bottom=0)
            a1.legend(fontsize=6, frameon=False, ncol=2)
        label_grain_axes(a1, a2, unit)
