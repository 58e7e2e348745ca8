"""Extra of every panel whose noise model offers "poisson-gaussian": "Estimate noise model".

The button estimates ``var(z) = a·E[z] + b`` (:func:`~napari_restore.estimate_noise_model`)
on the chosen layer — the whole layer, once, as a run does — in a worker, plots the fitted
level-set points (local variance against local mean) with the fitted line in the panel, and
puts the parameters in the panel's status line. When the gain is significant and the noise
model is not Poisson–Gaussian yet, the status suggests "poisson-gaussian"; it does not switch
by itself.

After a run with a Poisson–Gaussian model, the status line shows the model the run used and
the result layer's name ends with it (``… pg a=3.9 b=-379]``); the model itself is in the
layer's recipe (``metadata["napari_restore"]``: ``params`` or ``resolved["noise_model"]``).

Composed through the panel's public hooks only (``add_section``, ``events.results``,
``status``); registered in :mod:`._extras`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from magicgui.widgets import Label, PushButton

from ..processors.noise_pg import NoiseModel, as_model, estimate_noise_model
from ._plots import draw_later, plot_canvas

PG = "poisson-gaussian"


#: Above this relative standard error of the gain, the status says the gain is uncertain.
UNCERTAIN_GAIN = 0.15


def model_text(model: NoiseModel, unit: str = "", *, short: bool = False) -> str:
    """``"poisson-gaussian a=3.88±0.05, b=-379 (grey levels)"`` / ``"gaussian σ=4.5"``; a gain
    known to no better than ``UNCERTAIN_GAIN`` says so (a narrow intensity range).
    ``short``: for a plot's title (``"a=1.51±0.34, b=-41.63 · a uncertain (±22 %)"``)."""
    if model.kind == "gaussian":
        return f"gaussian σ={np.sqrt(model.bias):.3g}" + (f" {unit}" if unit else "")
    se = f"±{model.gain_se:.2g}" if model.gain_se > 0 else ""
    text = f"a={model.gain:.3g}{se}, b={model.bias:.4g}"
    uncertain = model.gain_rse > UNCERTAIN_GAIN
    if short:
        return text + (f" · a uncertain (±{100 * model.gain_rse:.0f} %)" if uncertain else "")
    text = f"{PG} {text}" + (f" ({unit})" if unit else "")
    if uncertain:
        text += (f" · a uncertain (±{100 * model.gain_rse:.0f} %: the image's intensities "
                 "span too narrow a range)")
    return text


def _layer_data(layer: Any) -> Any:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return data


def estimate_for(layer: Any) -> NoiseModel:
    """The model of ``layer`` as a run estimates it (the whole layer, one model)."""
    return estimate_noise_model(np.asarray(_layer_data(layer)),
                                channel_axis=-1 if getattr(layer, "rgb", False) else None)


def _unit(layer: Any) -> str:
    return "grey levels" if np.dtype(_layer_data(layer).dtype).kind in "iu" else "data units"


def draw_model(ax: Any, model: NoiseModel, unit: str) -> None:
    """The level-set points and the fitted line on ``ax``."""
    ax.clear()
    pts = np.array(model.points) if model.points else np.zeros((0, 3))
    if len(pts):
        ax.scatter(pts[:, 0], pts[:, 1], s=6 + 30 * pts[:, 2] / pts[:, 2].max(), label="level sets")
        x = np.linspace(pts[:, 0].min(), pts[:, 0].max(), 32)
        ax.plot(x, model.variance(x) if model.gain else np.full_like(x, model.bias), "C1",
                label="fit")
    ax.set_xlabel(f"local mean ({unit})", fontsize=7)
    ax.set_ylabel("local variance", fontsize=7)
    ax.set_title(model_text(model, short=True), fontsize=7)
    ax.tick_params(labelsize=6)


def build(panel: Any) -> SimpleNamespace | None:
    """Add the "Estimate noise model" button, its plot and label to ``panel`` (when its
    ``noise_model`` offers "poisson-gaussian"); returns the widgets."""
    widget = panel.param_widgets.get("noise_model")
    if widget is None or PG not in list(getattr(widget, "choices", ())):
        return None
    button = PushButton(text="Estimate noise model", name="estimate_noise_model",
                        tooltip="Estimate Poisson–Gaussian noise var = a·E + b on the whole "
                                "chosen layer (as noise model 'poisson-gaussian' does), plot "
                                "local variance against local mean with the fitted line.")
    label = Label(value="", name="noise_model_estimate", label="model",
                  tooltip="The noise model estimated on the chosen layer (image's units).")
    canvas, fig = plot_canvas()
    ax = fig.add_subplot(1, 1, 1)
    state = SimpleNamespace(model=None)

    def shown(layer: Any, model: NoiseModel) -> None:
        state.model = model
        canvas.setVisible(True)
        unit = _unit(layer)
        label.value = f"{layer.name}: {model_text(model)}"
        draw_model(ax, model, unit)
        draw_later(canvas)
        text = f"noise model of {layer.name}: {model_text(model, unit)}"
        if model.kind == PG and widget.value != PG:
            text += " · the gain is significant: try noise model 'poisson-gaussian'"
        panel.status.value = text

    def on_click(*_: Any) -> None:
        from napari.utils.notifications import show_warning

        from ._runner import start_job

        layer = panel.layer_widget.value
        if layer is None:
            show_warning(f"{panel.spec.title}: choose an image layer first.")
            return
        label.visible = True
        label.value = f"{layer.name}: estimating…"

        def failed(exc: BaseException) -> None:
            label.value = f"{layer.name}: no model ({exc})"
            panel.status.value = f"noise model of {layer.name}: {exc}"

        state.job = start_job(lambda _cancel: estimate_for(layer),
                              f"{panel.spec.title}: noise model of {layer.name}",
                              on_returned=lambda m: shown(layer, m), on_error=failed,
                              alive=lambda: panel.alive, activity=False)

    button.changed.connect(on_click)
    sigma_extra = panel.extras.get("bm3d_extras")  # "Estimate σ", when the panel has it
    after = getattr(sigma_extra, "estimate_button", None) or widget
    panel.add_section(button, after=after)
    panel.add_section(label, after=button)
    panel.add_section(canvas)
    label.visible = False  # the label and the plot appear with the first estimate
    canvas.setVisible(False)
    panel.events.results.connect(lambda layers: _tag_results(panel, layers))
    return SimpleNamespace(button=button, label=label, canvas=canvas, figure=fig, axes=ax,
                           state=state, estimate=on_click)


def used_model(meta: dict[str, Any]) -> NoiseModel | None:
    """The Poisson–Gaussian model a run used, from its recipe (``params`` or ``resolved``)."""
    for value in (meta.get("resolved", {}).get("noise_model"),
                  meta.get("params", {}).get("noise_model")):
        try:
            model = as_model(value)
        except ValueError:
            model = None
        if model is not None:
            return model
    return None


def _tag_results(panel: Any, layers: list) -> None:
    """Status line and result names show the Poisson–Gaussian model a run used."""
    from ._layers import META_KEY

    if not layers:
        return
    meta = layers[0].metadata.get(META_KEY, {})
    model = used_model(meta)
    if model is None:
        return
    short = f"pg a={model.gain:.3g} b={model.bias:.4g}"
    for layer in layers:
        name = layer.name
        if name.endswith("]") and short not in name:
            layer.name = f"{name[:-1]} {short}]"
    panel.status.value = f"{panel.status.value} · noise: {model_text(model)}"
