"""Extra of every panel whose processor :mod:`~napari_restore.calibration` supports: "Suggest".

The button calibrates the panel's tuned parameters (``calibration.DEFAULT_PARAMS``, or
``DEFAULT_PARAMS_PG`` with a Poisson–Gaussian noise model) on the chosen layer without any
reference: :func:`~napari_restore.calibration.iter_calibrate` runs in a worker (progress in
the panel and the activity dock; the button turns into **Stop**). By default it works on the
current slice (volume) and the core picks the representative region
(:func:`~napari_restore.calibration.default_region`); "visible field of view" calibrates on
what is on screen. The other parameters of the panel are held fixed.

When it finishes, the panel shows the self-supervised loss curve (a heat map for two
parameters) with the chosen point marked, sets the tuned parameters to the best point and,
when "add the best result" is ticked, adds the best result (of the same slice / view) as a
layer whose metadata is its recipe (and ``metadata["napari_restore_calibration"]``: the loss, grid and region).
Stop adds no layer and leaves the parameters as they were.

Composed through the panel's public hooks only (``add_section``, ``report``, ``status``,
``set_params``, ``target``, ``run_spec``); registered in :mod:`._extras`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, PushButton

from .. import calibration as cal_mod
from ._plots import draw_later, plot_canvas
from ._section import Section

#: Metadata key of a Suggest result's calibration (beside its recipe, which stays loadable).
CALIBRATION_KEY = "napari_restore_calibration"
#: Where the calibration works: label -> panel target mode (None: the current slice or
#: volume, with the core's representative region).
REGIONS = {
    "representative region": None,
    "visible field of view": "view",
}


def supported(name: str) -> bool:
    """Whether calibration supports processor ``name`` (it has default tuned parameters and
    is not in ``calibration.NOT_CALIBRATED``)."""
    return name in cal_mod.DEFAULT_PARAMS and name not in cal_mod.NOT_CALIBRATED


def tuned_names(name: str, noise_model: Any) -> tuple[str, ...]:
    """The parameters Suggest tunes for ``name`` under ``noise_model``."""
    pg = isinstance(noise_model, str) and noise_model.startswith("poisson-gaussian") or (
        hasattr(noise_model, "gain") and hasattr(noise_model, "bias"))
    table = cal_mod.DEFAULT_PARAMS_PG if pg else cal_mod.DEFAULT_PARAMS
    return tuple(table.get(name, cal_mod.DEFAULT_PARAMS.get(name, ())))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


#: Labelled ticks of a log-scaled parameter axis (plain numbers, no minor labels: matplotlib's
#: default labels every minor tick "2×10¹ 3×10¹ …" when the grid spans about one decade).
LOG_TICKS = 5


def _log_ticks(ax: Any, lo: float, hi: float) -> None:
    """About :data:`LOG_TICKS` ticks spread evenly in log over [lo, hi], at values rounded
    to two significant digits, labelled as plain numbers."""
    from matplotlib.ticker import NullLocator

    ticks = sorted({float(f"{v:.2g}") for v in np.geomspace(lo, hi, LOG_TICKS)})
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])


def draw_calibration(ax: Any, result: cal_mod.Calibration, fig: Any = None) -> None:
    """The loss curve (one parameter) or heat map (two) of ``result`` on ``ax``, with the
    chosen point marked."""
    ax.clear()
    for extra in list(getattr(ax, "_napari_restore_colorbars", [])):
        extra.remove()
    ax._napari_restore_colorbars = []
    names = list(result.grid)
    best = {n: result.grid[n][i] for n, i in zip(names, result.best_index, strict=True)}
    if len(names) == 1:
        name = names[0]
        values, losses = result.curve(name)
        ok = np.isfinite(losses)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        x = np.asarray(values, float) if numeric else np.arange(len(values))
        ax.plot(x[ok], losses[ok], "o-", ms=3, lw=1, label="self-supervised loss")
        bx = x[result.best_index[0]]
        ax.plot([bx], [result.best_loss], "r*", ms=10, label=f"best {name}={_fmt(best[name])}")
        if numeric and np.all(x > 0) and x.max() / x.min() > 4:
            ax.set_xscale("log")
            _log_ticks(ax, float(x.min()), float(x.max()))
        if not numeric:
            ax.set_xticks(x, [str(v) for v in values])
        ax.set_xlabel(name, fontsize=7)
        ax.set_ylabel("self-supervised loss", fontsize=7)
        ax.legend(fontsize=6)
    else:
        a, b = names[:2]
        losses = np.asarray(result.losses, float)
        if losses.ndim > 2:  # more parameters: the slice through the best of the others
            idx = tuple(slice(None) if k < 2 else i for k, i in enumerate(result.best_index))
            losses = losses[idx]
        im = ax.imshow(losses, origin="lower", aspect="auto", cmap="viridis")
        ax.plot([result.best_index[1]], [result.best_index[0]], "r*", ms=10)
        ax.set_yticks(range(len(result.grid[a])), [_fmt(v) for v in result.grid[a]], fontsize=5)
        ax.set_xticks(range(len(result.grid[b])), [_fmt(v) for v in result.grid[b]], fontsize=5)
        ax.set_ylabel(a, fontsize=7)
        ax.set_xlabel(b, fontsize=7)
        if fig is not None:
            ax._napari_restore_colorbars.append(fig.colorbar(im, ax=ax, label="loss"))
    shown = ", ".join(f"{n}={_fmt(v)}" for n, v in best.items())
    ax.set_title(f"best {shown} · {result.evaluations} candidates · {result.seconds:.1f} s",
                 fontsize=7)
    ax.tick_params(labelsize=6)


def build(panel: Any) -> SimpleNamespace | None:
    """Add "Suggest", its options and plot to ``panel`` when calibration supports its
    processor; returns the widgets and state."""
    if not supported(panel.spec.name):
        return None
    button = PushButton(text="Suggest", name="suggest",
                        tooltip="Calibrate the main parameter(s) on the chosen layer without a "
                                "reference (self-supervised J-invariant loss), plot the loss, "
                                "and set the panel to the best point. Stop leaves the panel "
                                "unchanged.")
    region = ComboBox(choices=list(REGIONS), value="representative region",
                      name="suggest_region", label="suggest on",
                      tooltip="representative region: the core picks one on the current "
                              "slice; visible field of view: what is on screen.")
    add_layer = CheckBox(text="add the best result", value=False, name="suggest_add_layer",
                         tooltip="Also add the best result as a layer (its recipe in metadata).")
    row = Container(widgets=[button, add_layer], layout="horizontal", labels=False,
                    name="suggest_row", label="calibrate")
    row.margins = (0, 0, 0, 0)
    canvas, fig = plot_canvas()
    ax = fig.add_subplot(1, 1, 1)
    plot = Section("Suggest: loss", [], expanded=True, name="suggest_plot",
                   tooltip="Self-supervised loss of each candidate; the star is the best.")
    plot.add_native(canvas)
    #: ``grid``/``search`` let a script (or a test) pass a grid to iter_calibrate.
    state = SimpleNamespace(job=None, result=None, layers=[], grid=None, search="auto",
                            outcome=None)

    def idle() -> None:
        button.text = "Suggest"
        state.job = None

    def finished(job: Any) -> None:
        state.outcome = job.outcome
        if job.outcome == "stopped":
            panel.status.value = "Suggest stopped: parameters unchanged"
        idle()

    def returned(value: Any) -> None:
        job = state.job
        if job is not None and job.cancel.is_set():
            return  # stopped at the very end: keep the promise (nothing changes)
        result, extra, source, layer_name = value
        state.result = result
        tuned = {n: result.best_params[n] for n in result.grid}
        try:
            panel.set_params(tuned)
        except (TypeError, ValueError) as exc:
            panel.status.value = f"Suggest: {exc}"
            return
        draw_calibration(ax, result, fig)
        plot.native.setVisible(True)
        draw_later(canvas)
        text = ", ".join(f"{n}={_fmt(v)}" for n, v in tuned.items())
        panel.status.value = (f"suggested {text} on {layer_name} (loss {result.best_loss:.4g}, "
                              f"{result.evaluations} candidates, {result.seconds:.1f} s)")
        if extra is not None:
            from ._layers import add_results

            out, values, seconds, resolved = extra
            layers = add_results(panel.viewer, source, panel.spec, values,
                                 source.get("channel_axis"), out, seconds, resolved)
            for lay in layers:
                lay.metadata[CALIBRATION_KEY] = {
                    "best_loss": float(result.best_loss),
                    "grid": {n: [float(v) if isinstance(v, (int, float)) else str(v)
                                 for v in vs] for n, vs in result.grid.items()},
                    "region": [[list(map(int, ab)) for ab in box] for box in result.region],
                    "stride": int(result.stride), "masking": result.masking,
                }
            state.layers = layers

    def failed(exc: BaseException) -> None:
        panel.status.value = f"Suggest: {exc}"
        from napari.utils.notifications import show_error

        show_error(f"{panel.spec.title} Suggest: {exc}")

    def suggest(*_: Any) -> Any:
        if state.job is not None:  # the button is "Stop"
            state.job.stop()
            return None
        from napari.utils.notifications import show_error, show_warning

        from ._jobs import run_job
        from ._layers import snapshot
        from ._runner import start_job

        layer = panel.layer_widget.value
        if layer is None:
            show_warning(f"{panel.spec.title}: choose an image layer first.")
            return None
        mode = REGIONS[region.value] or ("volume" if panel.spec.plane_ndim == 3 else "slice")
        try:
            spec = panel.run_spec()
            params = spec.validate_params(panel.params)
            target = panel.target(layer, mode)
        except (TypeError, ValueError) as exc:
            show_error(f"{panel.spec.title}: {exc}")
            return None
        noise_model = params.pop("noise_model", None)
        tuned = tuned_names(spec.name, noise_model)
        if state.grid:
            tuned = tuple(dict.fromkeys([*tuned, *state.grid]))
        fixed = {k: v for k, v in params.items() if k not in tuned}
        if tuned_names(spec.name, noise_model) != tuned_names(spec.name, None):
            fixed.pop("sigma", None)  # Poisson–Gaussian: σ is fixed by the transform
        channel_axis = -1 if layer.rgb else None
        source = {**snapshot(layer, target), "channel_axis": channel_axis}
        data = np.asarray(target.data)
        want_layer = bool(add_layer.value)
        grid = state.grid or None
        kwargs = {"grid": grid} if grid else {"params": tuned}

        def work(cancel: Any) -> Any:
            result = yield from cal_mod.iter_calibrate(
                data, spec.name, fixed=fixed, noise_model=noise_model,
                channel_axis=channel_axis, search=state.search, cancel=cancel, **kwargs)
            extra = None
            if want_layer:
                extra = yield from run_job(spec, data, channel_axis, result.best_params, cancel,
                                           target.value_range)
            return result, extra, source, layer.name

        button.text = "Stop"
        state.outcome = "running"
        panel.status.value = f"Suggest: calibrating on {layer.name} ({target.description})…"
        state.job = start_job(work, f"{panel.spec.title}: Suggest on {layer.name}",
                              on_progress=lambda item: panel.report(item, state.job),
                              on_returned=returned, on_error=failed, on_finished=finished,
                              alive=lambda: panel.alive)
        return state.job

    button.changed.connect(suggest)
    first = next(iter(tuned_names(panel.spec.name, None)), None)
    after = panel.param_widgets.get(first) if first in panel.param_widgets else None
    bm3d = panel.extras.get("bm3d_extras")  # below "Estimate σ", when the panel has it
    after = getattr(bm3d, "estimate_button", None) or after
    panel.add_section(row, after=after)
    panel.add_section(region, after=row)
    panel.add_section(plot, after=region)
    plot.native.setVisible(False)  # the loss plot appears with the first suggestion
    return SimpleNamespace(button=button, region=region, add_layer=add_layer, canvas=canvas,
                           plot=plot,
                           figure=fig, axes=ax, state=state, suggest=suggest)
