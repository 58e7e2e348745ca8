"""Compare panel: metrics table of result layers, grid view, difference layer, CSV, and
"Compare denoisers" (several processors on the same field of view, side by side)."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, ProgressBar, PushButton, Select, Table
from napari.utils.notifications import show_error, show_info

from .. import metrics
from .._arrays import Cancelled, Progress
from .._compat import viewer_grid
from ..processors import REGISTRY
from ..processors.registry import get_processor
from ..settings import load_params
from ._jobs import run_part
from ._layers import META_KEY, add_results, snapshot
from ._dock import LinkedDock, ViewerLink
from ._fit import TextLabel, fit_width
from ._runner import STEPS, start_job

COLUMNS = ["layer", "PSNR (dB)", "SSIM", "SS loss", "noise σ", "residual σ", "structure",
           "lag-1 ρ", "grain std", "processor", "parameters"]
#: The no-reference columns (:mod:`napari_restore.noref`), computed against the result's
#: source layer (the noisy input named in its metadata, else the panel's source): the
#: self-supervised loss of the result's recipe, the std of the residual (input − result),
#: the structure score of the residual and its lag-1 autocorrelation (whiteness: 0 = white).
NOREF_COLUMNS = ["SS loss", "residual σ", "structure", "lag-1 ρ"]


def _meta(layer: Any) -> dict[str, Any]:
    return dict(getattr(layer, "metadata", {}).get(META_KEY) or {})


def aligned_reference(layer: Any, reference: Any) -> np.ndarray | None:
    """The part of ``reference`` that ``layer`` covers (whole, a slice, or a field of view).

    Uses the target recorded in the result's metadata; None when the shapes cannot match.
    """
    ref = np.asarray(reference.data)
    shape = tuple(layer.data.shape)
    meta = _meta(layer)
    if "sweep" in meta:
        shape = shape[1:]
    target = meta.get("target") or {}
    index = tuple(target.get("index") or ())
    if index and len(index) <= ref.ndim:
        ref = ref[index]
    origin = target.get("origin") or ()
    if origin:
        spatial = shape[: len(origin)]
        ref = ref[tuple(slice(o, o + n) for o, n in zip(origin, spatial, strict=True))]
    return ref if tuple(ref.shape) == shape else None


def _value_text(v: Any) -> str:
    """A parameter value as a person reads it: 0.11, not 0.11000000000000001; None is auto."""
    if v is None:
        return "auto"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, tuple | list):
        return "×".join(_value_text(x) for x in v)
    return str(v)


def _params_text(meta: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value_text(v)}" for k, v in (meta.get("params") or {}).items())


def remembered_params(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(values, changed)`` a run of processor ``name`` from this panel uses: its panel's
    remembered parameters (the defaults where none are remembered), and those that differ
    from the defaults."""
    spec = get_processor(name)
    try:
        values = spec.validate_params(load_params(name))
    except (TypeError, ValueError):  # remembered values of an older spec: the defaults
        values = spec.validate_params({})
    defaults = spec.defaults()
    return values, {k: v for k, v in values.items() if defaults.get(k) != v}


def params_summary(names: list[str]) -> str:
    """What "Compare denoisers" will run: each processor with its non-default parameters."""
    lines = []
    for name in names:
        _, changed = remembered_params(name)
        text = _params_text({"params": changed}) if changed else "defaults"
        lines.append(f"{get_processor(name).title}: {text}")
    return "\n".join(lines)


def source_of(layer: Any, layers: Any, default: Any = None) -> Any:
    """The noisy input of result ``layer``: the layer its metadata names (when it is still
    there, and not ``layer`` itself), else ``default``."""
    name = _meta(layer).get("source")
    if name and name in layers and layers[name] is not layer:
        return layers[name]
    return default if default is not layer else None


def _g4(v: float) -> float:
    return float(f"{v:.4g}")


def noref_row(source: np.ndarray, arr: np.ndarray, meta: dict[str, Any], params: Any,
              cax: int | None) -> dict[str, Any]:
    """The no-reference columns of one result plane ``arr`` against ``source`` (aligned);
    blank where a measure does not apply (e.g. no recipe, a processor calibration refuses)."""
    from .. import noref
    from ..calibration import self_supervised_loss
    from ..recipes import Recipe

    row: dict[str, Any] = {c: "" for c in NOREF_COLUMNS}
    try:
        m = noref.noref_metrics(source, arr, channel_axis=cax)
    except (TypeError, ValueError):
        return row
    row["residual σ"] = _g4(m.residual_std)
    row["structure"] = round(m.structure, 4)
    row["lag-1 ρ"] = round(m.lag1, 4)
    if meta.get("processor") and meta.get("output") is None:
        recipe = {k: v for k, v in meta.items() if k not in ("sweep", "preview")}
        recipe["params"] = params or {}
        try:
            row["SS loss"] = _g4(self_supervised_loss(source, Recipe.from_dict(recipe),
                                                      channel_axis=cax))
        except (TypeError, ValueError, KeyError):
            pass
    return row


def _cell_text(v: Any, digits: int = 4) -> str:
    """A table cell as a person reads it: numbers to ``digits`` significant digits, never in
    e-notation between 1e-3 and 1e5 (−0.0777, 31.23, 12345); text unchanged."""
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        return str(v)
    if isinstance(v, int | np.integer):
        return str(int(v))
    v = float(v)
    if not np.isfinite(v) or v == 0:
        return "0" if v == 0 else str(v)
    mag = abs(v)
    if not 1e-3 <= mag < 1e5:
        return f"{v:.{digits - 1}e}"
    decimals = max(0, digits - 1 - int(np.floor(np.log10(mag))))
    text = f"{v:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def gather_rows(layers: list[Any], reference: Any | None, source: Any | None = None,
                viewer_layers: Any = None) -> list[dict[str, Any]]:
    """What :func:`table_rows` needs of each layer, read on the main thread: plain values and
    numpy arrays (views of the layers' data), no layer objects."""
    items = []
    for layer in layers:
        ref = aligned_reference(layer, reference) if reference is not None \
            and reference is not layer else None
        src_layer = source_of(layer, viewer_layers, source) if viewer_layers is not None \
            else (source if source is not layer else None)
        src = aligned_reference(layer, src_layer) if src_layer is not None else None
        items.append({"name": layer.name, "meta": _meta(layer), "rgb": bool(layer.rgb),
                      "data": np.asarray(layer.data), "ref": ref, "src": src})
    return items


def _item_rows(item: dict[str, Any]) -> list[dict[str, Any]]:
    meta, data, ref, src = item["meta"], item["data"], item["ref"], item["src"]
    cax = -1 if item["rgb"] else None
    sweep = meta.get("sweep")
    planes = [(item["name"], data, meta.get("params"))]
    if sweep:  # the value first: it is what tells the rows apart
        planes = [(f"{sweep['param']}={_value_text(v)} · {item['name']}", data[k],
                   {**(meta.get("params") or {}), sweep["param"]: v})
                  for k, v in enumerate(sweep["values"])]
    rows = []
    for name, arr, params in planes:
        row = {c: "" for c in COLUMNS}
        row["layer"] = name
        if ref is not None:
            row["PSNR (dB)"] = round(metrics.psnr(arr, ref, channel_axis=cax), 3)
            if min(arr.shape[:2]) >= 7:
                row["SSIM"] = round(metrics.ssim(arr, ref, channel_axis=cax), 4)
        row["noise σ"] = float(f"{metrics.noise_sigma(arr, channel_axis=cax):.4g}")
        if src is not None:
            row.update(noref_row(src, arr, meta, params, cax))
        if meta.get("output") == "grain":
            row["grain std"] = round(float(np.std(arr)), 5)
        row["processor"] = meta.get("processor", "")
        row["parameters"] = _params_text({"params": params}) if params else ""
        rows.append(row)
    return rows


def table_rows(items: list[dict[str, Any]], cancel: threading.Event | None = None,
               ) -> Generator[Progress, None, list[dict[str, Any]]]:
    """The table's rows of :func:`gather_rows`' items (the work of a worker: no Qt, no layer);
    progress counts layers; a set ``cancel`` raises :class:`Cancelled` between layers and
    after the last one (a Stop during the last layer keeps the previous table too)."""
    rows: list[dict[str, Any]] = []
    n = len(items)
    for k, item in enumerate(items):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        rows += _item_rows(item)
        yield Progress(k + 1, n, (k + 1) / n)
    if cancel is not None and cancel.is_set():
        raise Cancelled
    return rows


def compare_rows(layers: list[Any], reference: Any | None,
                 source: Any | None = None, viewer_layers: Any = None) -> list[dict[str, Any]]:
    """One row of metrics per layer (per plane for sweep layers), computed here (blocking).

    PSNR/SSIM against ``reference`` (when given); the no-reference columns against each
    result's source (:func:`source_of`, falling back to ``source``)."""
    gen = table_rows(gather_rows(layers, reference, source, viewer_layers))
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def compare_job(specs: list[str], data: Any, channel_axis: int | None,
                cancel: threading.Event, value_range: tuple[float, float] | None = None,
                ) -> Generator[Progress, None, list]:
    """Run each named processor (its remembered parameters) on ``data``; progress counts runs.

    Stop keeps the runs that finished."""
    out = []
    n = len(specs)
    for k, name in enumerate(specs):
        spec = get_processor(name)
        t0 = time.perf_counter()
        values = spec.check_params(data, remembered_params(name)[0])
        try:
            res = yield from run_part(spec, data, channel_axis, values, cancel, value_range, k, n)
        except Cancelled:
            break
        out.append((spec, values, res, time.perf_counter() - t0))
        yield Progress(k + 1, n, (k + 1) / n)
    return out


class ComparePanel(LinkedDock, Container):
    """Dock panel comparing result layers against a reference."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.layers_widget = Select(label="results", choices=self._images, name="results")
        self.reference = ComboBox(label="reference", choices=self._images, nullable=True,
                                  name="reference",
                                  tooltip="The clean image when you have one, else the source.")
        self.update_button = PushButton(text="Update table", name="update")
        self.grid_button = PushButton(text="Grid view", name="grid")
        self.diff_button = PushButton(text="Difference A − B", name="difference")
        self.csv_button = PushButton(text="Export table as CSV…", name="export")
        self.residual_button = PushButton(
            text="Residual layer (input − result)", name="residual",
            tooltip="Add what the first selected result removed from its source (the method "
                    "noise): white noise when only noise was removed, edges when it "
                    "over-smoothed.")
        rows = [Container(widgets=pair, layout="horizontal", labels=False)
                for pair in ((self.update_button, self.grid_button),
                             (self.diff_button, self.csv_button), (self.residual_button,))]
        for row in rows:
            row.margins = (0, 0, 0, 0)
        buttons = Container(widgets=rows, labels=False)
        buttons.margins = (0, 0, 0, 0)
        self.table = Table(value={"data": [], "index": [], "columns": COLUMNS}, name="table")
        self.table.min_height = 220
        self.layers_widget.max_height = 130
        self.denoisers = Select(
            label="denoisers", name="denoisers",
            choices=[(s.title, s.name) for s in REGISTRY.values() if s.input_kind != "volume3d"],
            tooltip="Run these processors with their remembered parameters on the visible "
                    "field of view of the source, then compare in grid view.")
        self.denoisers.max_height = 110
        self.source = ComboBox(label="source", choices=self._images, name="source",
                               tooltip="The layer the denoisers run on (its visible area).")
        self.params_label = TextLabel(value="", name="denoiser_params", label="parameters")
        self._source_chosen = False  # the user picked a source: keep it
        self.run_denoisers = PushButton(text="Compare denoisers on view", name="compare_denoisers",
                                        tooltip="Run the chosen denoisers (Stop keeps the runs "
                                                "that finished).")
        self.progress = ProgressBar(min=0, max=STEPS, value=0, name="progress", label="progress")
        self.status = TextLabel(value="", name="status")
        super().__init__(widgets=[self.layers_widget, self.reference, buttons, self.table,
                                  self.source, self.denoisers, self.params_label,
                                  self.run_denoisers, self.progress, self.status])
        self.rows: list[dict[str, Any]] = []
        self.worker: Any = None
        self.job: Any = None
        self.table_job: Any = None  # the table's computation (its own Stop: Update table)
        self.update_button.changed.connect(lambda *_: self._on_update_clicked())
        self.grid_button.changed.connect(lambda *_: self.grid_view())
        self.diff_button.changed.connect(lambda *_: self.difference())
        self.csv_button.changed.connect(lambda *_: self.export_csv())
        self.residual_button.changed.connect(lambda *_: self.residual())
        self.run_denoisers.changed.connect(lambda *_: self._on_run_clicked())
        self.denoisers.changed.connect(lambda *_: self.show_params())
        self.source.changed.connect(self._on_source)
        self._link = ViewerLink(self.native, on_close=self._stop_job)
        ev = viewer.layers.events
        for e in (ev.inserted, ev.removed, ev.reordered):
            self._link.connect(e, self._on_layers)
        self._set_table_view()
        self._pick_source()
        self.show_params()
        fit_width(self)

    def _set_table_view(self) -> None:
        """Cells show their text (wrapped, elided in the middle if still too long, full text
        as tooltip) instead of cutting it at the end."""
        from qtpy.QtCore import Qt

        view = self.table.native
        view.setWordWrap(True)
        view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        view.horizontalHeader().setStretchLastSection(True)

    def _fit_cells(self) -> None:
        view = self.table.native
        for r in range(view.rowCount()):
            for c in range(view.columnCount()):
                item = view.item(r, c)
                if item is not None:
                    item.setToolTip(item.text())
        for c, name in enumerate(COLUMNS[:view.columnCount()]):  # empty columns hidden
            view.setColumnHidden(c, c > 0 and bool(self.rows)
                                 and all(r.get(name, "") == "" for r in self.rows))
        view.resizeColumnsToContents()
        for c in range(view.columnCount()):  # long names wrap: PSNR and SSIM stay in view
            view.setColumnWidth(c, min(view.columnWidth(c), 150 if c == 0 else 110))
        view.resizeRowsToContents()

    def _on_layers(self, *_: Any) -> None:
        self.reset_choices()
        self._pick_source()

    def _on_source(self, *_: Any) -> None:
        if not self._picking:
            self._source_chosen = True

    _picking = False

    def _pick_source(self) -> None:
        """Default source: the selected image layer if it is not a result, else the last
        visible input layer (a hidden clean reference is never the default)."""
        if self._source_chosen and self.source.value is not None:
            return
        images = [lay for lay in self._viewer.layers if isinstance(lay, napari.layers.Image)]
        inputs = [lay for lay in images if META_KEY not in lay.metadata
                  and "napari_restore_difference" not in lay.metadata]
        active = self._viewer.layers.selection.active
        pick = active if active in inputs else next(
            (lay for lay in reversed(inputs) if lay.visible), inputs[-1] if inputs else None)
        if pick is not None and pick is not self.source.value:
            self._picking = True
            try:
                self.source.value = pick
            finally:
                self._picking = False

    def show_params(self) -> str:
        """Show which parameters "Compare denoisers" will use (remembered from each panel)."""
        names = list(self.denoisers.value)
        text = (params_summary(names) if names else "choose denoisers above")
        self.params_label.value = text
        self.params_label.tooltip = ("Each denoiser runs with the parameters its own panel "
                                     "remembers (the defaults if never used):\n" + text)
        return text

    def _selected(self) -> list[Any]:
        chosen = list(self.layers_widget.value)
        if not chosen:
            chosen = [lay for lay in self._viewer.layers
                      if isinstance(lay, napari.layers.Image) and META_KEY in lay.metadata]
        return chosen

    def update_table(self) -> Any:
        """Compute the table in a worker (progress in the activity dock; the button becomes
        Stop; Stop keeps the previous table); returns the job, None when none started."""
        if self.table_job is not None:
            return self.table_job
        try:
            items = gather_rows(self._selected(), self.reference.value, self.source.value,
                                self._viewer.layers)
        except (TypeError, ValueError) as exc:
            self._table_error(exc)
            return None
        self.update_button.text = "Stop"
        before = str(self.status.value).split(" · table:")[0]  # e.g. a denoisers run's outcome
        self._status_before = "" if before.startswith("table") else before
        self.status.value = f"computing the table of {len(items)} layers…"
        self.table_job = start_job(
            lambda cancel: table_rows(items, cancel), f"Compare table ({len(items)} layers)",
            on_progress=self._on_table_progress, on_returned=self._show_rows,
            on_error=self._table_error, on_finished=self._on_table_finished,
            alive=lambda: self._alive)
        return self.table_job

    def _on_update_clicked(self) -> None:
        if self.table_job is None:
            self.update_table()
        elif not self.table_job.stopping:
            self.table_job.stop()
            self.update_button.text = "Stopping…"

    def _on_table_progress(self, p: Progress) -> None:
        self.status.value = f"table: {p.done}/{p.total} layers · {self.table_job.elapsed:.1f} s"

    def _table_error(self, exc: BaseException) -> None:
        self.status.value = f"table failed: {exc}"
        show_error(f"Compare: {type(exc).__name__}: {exc}")

    def _on_table_finished(self, job: Any) -> None:
        self.table_job = None
        self.update_button.text = "Update table"
        if job.outcome == "stopped":
            self.status.value = "table stopped: the previous table is kept"

    def _show_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.table.value = {"data": [[_cell_text(r[c]) for c in COLUMNS] for r in rows],
                            "index": list(range(1, len(rows) + 1)), "columns": COLUMNS}
        self._fit_cells()
        keep = self._status_before
        self.status.value = f"{keep} · table: {len(rows)} rows" if keep else \
            f"table: {len(rows)} rows"

    _status_before = ""

    def _stop_job(self) -> None:
        for job in (self.job, self.table_job):
            if job is not None:
                job.stop()

    def grid_view(self) -> None:
        """Grid mode with the compared layers (and the reference) visible, contrast linked."""
        chosen = self._selected()
        ref = self.reference.value
        shown = chosen + ([ref] if ref is not None and ref not in chosen else [])
        for lay in self._viewer.layers:
            lay.visible = lay in shown
        viewer_grid(self._viewer).enabled = True
        plain = [lay for lay in shown if not lay.rgb]
        if len(plain) > 1:
            from napari.experimental import link_layers

            base = ref if ref in plain else plain[0]
            for lay in plain:
                lay.contrast_limits = base.contrast_limits
            try:
                link_layers(plain, ("contrast_limits", "gamma"))
            except ValueError:  # already linked
                pass
        self._viewer.reset_view()

    def difference(self) -> Any:
        """Add A − B (first two selected layers; or the first against the reference)."""
        chosen = self._selected()
        a = chosen[0] if chosen else None
        b = chosen[1] if len(chosen) > 1 else self.reference.value
        if a is None or b is None or a is b:
            show_error("Difference: select two layers (or one and a reference).")
            return None
        da, db = np.asarray(a.data, dtype=np.float32), np.asarray(b.data, dtype=np.float32)
        if da.shape != db.shape:
            ref = aligned_reference(a, b)
            if ref is None:
                show_error(f"Difference: shapes {da.shape} and {db.shape} differ.")
                return None
            db = ref.astype(np.float32)
        diff = da - db
        if a.rgb:
            diff = diff.mean(axis=-1)
        lim = float(np.abs(diff).max()) or 1.0
        return self._viewer.add_image(
            diff, name=f"{a.name} − {b.name}", colormap="PiYG", contrast_limits=(-lim, lim),
            scale=a.scale, translate=a.translate,
            metadata={"napari_restore_difference": {"a": a.name, "b": b.name}})

    def residual(self) -> Any:
        """Add the residual (source − result, the method noise) of the first selected result,
        in the source's units, on a diverging colour map."""
        from .. import noref

        chosen = [lay for lay in self._selected() if "sweep" not in _meta(lay)]
        layer = chosen[0] if chosen else None
        src_layer = source_of(layer, self._viewer.layers, self.source.value) if layer else None
        src = aligned_reference(layer, src_layer) if src_layer is not None else None
        if layer is None or src is None:
            show_error("Residual: select a result layer whose source layer (same shape, or "
                       "the region it was computed on) is in the viewer.")
            return None
        cax = -1 if layer.rgb else None
        resid = np.asarray(noref.method_noise(src, np.asarray(layer.data), channel_axis=cax),
                           np.float32)
        if layer.rgb:
            resid = resid[..., :3].mean(axis=-1)
        lim = float(np.abs(resid).max()) or 1.0
        return self._viewer.add_image(
            resid, name=f"residual {src_layer.name} − {layer.name}", colormap="PiYG",
            contrast_limits=(-lim, lim), scale=layer.scale[-resid.ndim:] if layer.rgb
            else layer.scale, translate=layer.translate,
            metadata={"napari_restore_difference": {"a": src_layer.name, "b": layer.name,
                                                    "kind": "residual"}})

    def export_csv(self, path: str | Path | None = None) -> Path | None:
        if not self.rows:  # the table is computed in a worker: never here, blocking
            show_error("Export: update the table first (Update table).")
            return None
        if path is None:  # pragma: no cover - dialog
            from qtpy.QtWidgets import QFileDialog

            chosen, _ = QFileDialog.getSaveFileName(None, "Export table", "compare.csv", "CSV (*.csv)")
            if not chosen:
                return None
            path = chosen
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        show_info(f"Wrote {path}")
        return path

    def compare_denoisers(self) -> Any:
        """Run the chosen processors on the source's visible field of view; grid view after."""
        from ._targets import select_target

        layer = self.source.value
        names = list(self.denoisers.value)
        if layer is None or not names or self.worker is not None:
            show_error("Compare denoisers: choose a source layer and at least one denoiser.")
            return None
        target = select_target(self._viewer, layer, "view")
        snap = snapshot(layer, target)
        self.show_params()
        cax = -1 if layer.rgb else None
        self.progress.value = 0
        self.run_denoisers.text = "Stop"
        self.job = start_job(
            lambda cancel: compare_job(names, target.data, cax, cancel, target.value_range),
            f"Compare {len(names)} denoisers on {layer.name}",
            on_progress=self._on_progress,
            on_returned=lambda out: self._show_denoisers(snap, cax, out),
            on_error=lambda e: show_error(f"Compare denoisers: {type(e).__name__}: {e}"),
            on_finished=self._on_finished, alive=lambda: self._alive)
        self.worker = self.job.worker
        return self.worker

    def _on_run_clicked(self) -> None:
        if self.job is None:
            self.compare_denoisers()
        elif not self.job.stopping:
            self.job.stop()
            self.run_denoisers.text = "Stopping…"

    def _on_progress(self, p: Progress) -> None:
        self.progress.value = int(round(p.fraction * STEPS))
        self.status.value = f"{p.done}/{p.total} runs · {self.job.elapsed:.1f} s"

    def _on_finished(self, job: Any) -> None:
        self.worker = self.job = None
        self.run_denoisers.text = "Compare denoisers on view"
        if job.outcome == "stopped":
            self.status.value = f"stopped · {self.status.value}"
            if self.table_job is not None:  # the finished runs' table: it keeps the outcome
                self._status_before = f"stopped · {self._status_before}"

    def _show_denoisers(self, snap: dict, cax: int | None, out: list) -> None:
        if not out:
            self.status.value = "stopped before the first run finished"
            return
        self.progress.value = STEPS
        added = []
        for spec, values, res, seconds in out:
            added += add_results(self._viewer, snap, spec, values, cax, res, seconds)
        self.layers_widget.reset_choices()
        self.layers_widget.value = added
        self.status.value = f"{len(added)} results on {snap['name']}"
        self.grid_view()
        self.update_table()
