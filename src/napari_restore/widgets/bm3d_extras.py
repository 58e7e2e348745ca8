"""Extras of the BM3D / BM4D panels: "Estimate σ", array inputs from layers, what the noise
model resolved to, a warm worker.

The button measures the noise of the selected layer's *current* plane (the current volume
for BM4D) as the processors do when σ is on auto — with the noise model on "auto", the same
white/correlated decision (:mod:`napari_restore.processors.noise_model`): the wavelet MAD for
white noise, the flat-block level for correlated noise — and fills the σ widget with it, so
users see the value "auto" would use and can adjust it.

Array inputs cannot be spec parameters (they do not fit in a recipe), so the extras add a
layer picker for them: BM3D/BM4D denoise get a "PSD layer" (the power spectrum or noise
kernel), shown only while the noise model is "psd", BM3D deblur a "PSF" (Gaussian from the
parameters, or a PSF layer). A run hook binds the chosen layer's data to the spec of each run
(``with_arrays``, in the image's own units as ``psd=`` of the functions); the result layer's
name ends with ``psd=<layer>`` / ``psf=<layer>`` and its metadata holds
``napari_restore_arrays = {"psd": "<layer>"}`` — the recipe (``napari_restore``) records
``noise_model="psd"`` but not the array.

When the noise model is "auto", the status line says what it chose for the run ("white" or
"correlated", and the σ it measured), from the ``resolved`` entry the run records in the
result layer's ``metadata["napari_restore"]``.

Building the panel also starts one idle worker process in the background
(:func:`napari_restore._isolate.prewarm`), so the first Run does not pay the process start.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from magicgui.widgets import Label, PushButton

from .._arrays import to_working, value_scale
from ._targets import layer_value_range


def current_plane(viewer: Any, layer: Any, plane_ndim: int = 2) -> np.ndarray:
    """The plane (or volume) of ``layer`` shown at the viewer's current position, as an array.

    Leading axes are indexed by the viewer's current point (in data coordinates); the last
    ``plane_ndim`` spatial axes (and an RGB axis) are kept whole.
    """
    data = layer.data
    if isinstance(data, list):  # multiscale: the full-resolution level
        data = data[0]
    spatial = layer.ndim  # excludes the RGB axis
    lead = spatial - plane_ndim
    idx: tuple[int, ...] = ()
    if lead > 0:
        point = layer.world_to_data(viewer.dims.point)
        idx = tuple(
            int(np.clip(np.round(point[i]), 0, data.shape[i] - 1)) for i in range(lead)
        )
    return np.asarray(data[idx])


def estimate_sigma_for(viewer: Any, layer: Any, plane_ndim: int = 2) -> float:
    """Noise σ of the current plane of ``layer``, in the layer's own units (grey levels or
    data values): the value "auto" would use."""
    from ..processors.noise import estimate_noise_sigma

    work, scale, cax = _working_plane(viewer, layer, plane_ndim)
    sigma = float(estimate_noise_sigma(work, channel_axis=cax))
    return float(scale.param_from_working(sigma))


def _working_plane(viewer: Any, layer: Any, plane_ndim: int) -> tuple[np.ndarray, Any, Any]:
    """``(working plane, its value scale, channel axis)`` of the current plane of ``layer``
    (colour channels without alpha), as the processors see it."""
    plane = current_plane(viewer, layer, plane_ndim)
    scale = value_scale(plane, layer_value_range(layer))
    work = to_working(plane, scale, np.float64)
    rgb = bool(getattr(layer, "rgb", False))
    return (work[..., :3] if rgb else work), scale, (-1 if rgb else None)


def estimate_noise_for(viewer: Any, layer: Any, plane_ndim: int = 2) -> tuple[str, float]:
    """``(kind, σ)`` of the current plane of ``layer`` as ``noise_model="auto"`` measures it:
    kind "white" (σ = wavelet MAD) or "correlated" (σ = flat-block level), σ in the layer's
    own units."""
    from ..processors.noise_model import measure_noise

    work, scale, cax = _working_plane(viewer, layer, plane_ndim)
    est = measure_noise(work, channel_axis=cax)
    sigma = est.sigma if est.correlated else est.mad_sigma
    return ("correlated" if est.correlated else "white"), float(scale.param_from_working(sigma))


def noise_text(resolved: dict[str, Any], unit: str = "") -> str:
    """``"noise: correlated (measured spectrum), σ ≈ 20.3 grey levels"`` from a run's
    resolved values; "" when the run chose nothing."""
    kind = resolved.get("noise_model")
    if kind is None:
        return ""
    kinds = kind if isinstance(kind, list) else [kind]
    if len(set(kinds)) > 1:
        text = (f"noise: {kinds.count('correlated')} of {len(kinds)} planes correlated, "
                "the others white")
    elif kinds[0] == "correlated":
        text = "noise: correlated (measured spectrum)"
    else:
        text = "noise: white"
    sigma = resolved.get("sigma")
    if isinstance(sigma, int | float):
        text += f", σ ≈ {sigma:.4g}" + (f" {unit}" if unit else "")
    return text


def build(panel: Any) -> SimpleNamespace:
    """Add the measured σ and the "Estimate σ" button under σ of a BM3D/BM4D panel (and the
    array input); returns the extra widgets: ``estimate_button``, ``estimate_label`` and
    ``psd_layer_widget`` / ``psf_layer_widget`` where the processor has one."""
    from .. import _isolate

    auto_noise = "noise_model" in panel.param_widgets
    button = PushButton(text="Estimate σ", name="estimate_sigma",
                        tooltip="Measure the noise of the current plane and put it into σ: "
                                "the value 'auto' would use (with the noise model on auto: "
                                "white or correlated, as the run decides)." if auto_noise else
                                "Measure the noise of the current plane (wavelet MAD) and put "
                                "it into σ: the value 'auto' would use.")
    result = Label(value="", name="sigma_estimate", label="measured",
                   tooltip="The noise σ measured on the current plane of the chosen layer.")

    def measure(layer: Any) -> tuple[str, float]:
        if auto_noise and panel.param_widgets["noise_model"].value == "auto":
            return estimate_noise_for(panel.viewer, layer, panel.spec.plane_ndim)
        return "", estimate_sigma_for(panel.viewer, layer, panel.spec.plane_ndim)

    def show(layer: Any, kind: str, sigma: float) -> None:
        result.value = (f"{layer.name}: σ ≈ {sigma:.3g} {_unit(layer)}"
                        + (f" ({kind})" if kind else ""))

    def on_click(*_: Any) -> None:
        from napari.utils.notifications import show_warning

        layer = panel.layer_widget.value
        if layer is None:
            show_warning(f"{panel.spec.title}: choose an image layer first.")
            return
        try:
            kind, sigma = measure(layer)
        except (TypeError, ValueError) as exc:
            show_warning(f"{panel.spec.title}: cannot estimate σ: {exc}")
            return
        panel.param_widgets["sigma"].value = float(f"{sigma:.4g}")
        show(layer, kind, sigma)

    def on_layer(*_: Any) -> None:
        """The label follows the chosen layer: measured in the background (σ is untouched)."""
        from ._runner import start_job

        layer = panel.layer_widget.value
        if layer is None:
            result.value = ""
            return
        if panel.spec.plane_ndim == 3:  # a volume takes seconds to minutes: on request only
            result.value = f"{layer.name}: press Estimate σ to measure"
            return
        result.value = f"{layer.name}: measuring…"

        def done(value: tuple[str, float]) -> None:
            if panel.layer_widget.value is layer:  # not a layer chosen meanwhile
                show(layer, *value)

        def failed(exc: BaseException) -> None:
            if panel.layer_widget.value is layer:
                result.value = f"{layer.name}: σ not measurable ({exc})"

        start_job(lambda _cancel: measure(layer), f"{panel.spec.title}: noise of {layer.name}",
                  on_returned=done, on_error=failed, alive=lambda: panel.alive, activity=False)

    button.changed.connect(on_click)
    panel.layer_widget.changed.connect(on_layer)
    panel.add_section(result, after=panel.param_widgets["sigma"])
    panel.add_section(button, after=result)
    extras = SimpleNamespace(estimate_button=button, estimate_label=result,
                             refresh_estimate=on_layer)
    on_layer()
    if panel.spec.name in ARRAY_INPUTS:
        arg = ARRAY_INPUTS[panel.spec.name][0]
        setattr(extras, f"{arg}_layer_widget",
                _add_array_input(panel, *ARRAY_INPUTS[panel.spec.name]))
    if auto_noise:
        panel.events.results.connect(lambda layers: _show_resolved(panel, layers))
    _isolate.prewarm(preload=("numpy", "scipy.fft", "bm3d"))
    return extras


def _unit(layer: Any) -> str:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return "grey levels" if np.dtype(data.dtype).kind in "iu" else "data units"


def _show_resolved(panel: Any, layers: list) -> None:
    """Append what the noise model resolved to (from the result's recipe) to the status."""
    from ._layers import META_KEY

    if not layers:
        return
    resolved = layers[0].metadata.get(META_KEY, {}).get("resolved") or {}
    dtype = layers[0].metadata.get(META_KEY, {}).get("source_dtype")
    unit = "" if dtype is None else ("grey levels" if np.dtype(dtype).kind in "iu" else
                                     "data units")
    text = noise_text(resolved, unit)
    if text:
        panel.status.value = f"{panel.status.value} · {text}"


#: spec name -> (argument, label, text for "no layer", tooltip)
ARRAY_INPUTS = {
    "bm3d_denoise": (
        "psd", "PSD layer", "choose a layer…",
        "Correlated noise given by a layer (used when the noise model is 'psd'): its power "
        "spectrum (same height and width as the image) or a small noise kernel (the noise is "
        "white noise convolved with it; σ, if set, gives the level). In the image's own units, "
        "as psd= of bm3d_denoise.",
    ),
    "bm4d_denoise": (
        "psd", "PSD layer", "choose a layer…",
        "Correlated noise given by a layer (used when the noise model is 'psd'): its 3-D "
        "power spectrum (the volume's shape) or a small 3-D noise kernel (σ, if set, gives "
        "the level). In the volume's own units, as psd= of bm4d_denoise.",
    ),
    "bm3d_deblur": (
        "psf", "PSF", "Gaussian (size, σ above)",
        "The blur: a Gaussian built from the blur size and blur σ above, or a PSF layer "
        "(2-D, finite, positive sum; normalised to 1).",
    ),
}


#: The picker's value when no layer is chosen (None would not emit ``changed`` in magicgui).
NO_LAYER = "none"


def _layer_array(layer: Any) -> np.ndarray:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def _add_array_input(panel: Any, arg: str, label: str, none_text: str, tooltip: str) -> Any:
    """A layer picker for an array argument, bound to the spec of every run by a run hook;
    returns the picker."""
    import napari
    from magicgui.widgets import ComboBox

    from ..processors import bm3d as bm3d_mod

    check = bm3d_mod.check_psd if arg == "psd" else bm3d_mod.check_psf
    if panel.spec.name == "bm4d_denoise":
        check = _check_volume_psd
    model = panel.param_widgets.get("noise_model") if arg == "psd" else None

    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        return [(none_text, NO_LAYER)] + [
            (lay.name, lay) for lay in panel.viewer.layers
            if isinstance(lay, napari.layers.Image) and not lay.rgb
        ]

    combo = ComboBox(name=f"{arg}_layer", label=label, choices=choices, value=NO_LAYER,
                     tooltip=tooltip)
    events = panel.viewer.layers.events
    for ev in (events.inserted, events.removed, events.reordered):
        panel.connect_viewer(ev, lambda *_: combo.reset_choices())
    bound: dict[str, Any] = {"layer": None}  # the layer the last run hook bound

    def chosen() -> Any:
        layer = combo.value
        return None if layer is None or isinstance(layer, str) else layer

    def bind(spec: Any) -> Any:
        """The run hook: ``spec`` with the chosen layer's array bound (read at every run:
        the layer's data may have changed), or ``spec`` itself when no array applies."""
        bound["layer"] = None
        if model is not None and model.value != "psd":
            return spec
        layer = chosen()
        if layer is None:
            if model is not None:
                raise ValueError("noise model 'psd' needs a PSD layer: choose the layer "
                                 "holding the power spectrum or noise kernel under "
                                 f"'{label}', or set the noise model to auto")
            return spec
        arr = check(_layer_array(layer))
        units = {arg: _psd_power(arr, panel, spec)} if arg == "psd" else None
        bound["layer"] = layer
        return bm3d_mod.with_arrays(spec, units=units, **{arg: arr})

    def on_change(*_: Any) -> None:
        if model is not None:
            combo.visible = model.value == "psd"
        if chosen() is not None and (model is None or model.value == "psd"):
            _safe_bind(panel, lambda: bind(panel.spec))  # a bad layer is reported at once

    panel.add_run_hook(bind)
    combo.changed.connect(on_change)
    if model is not None:
        model.changed.connect(on_change)

    def tag_results(layers: list) -> None:
        layer = bound["layer"]
        if layer is None:
            return
        for out in layers:
            out.metadata["napari_restore_arrays"] = {arg: layer.name}
            out.name = f"{out.name} {arg}={layer.name}"

    panel.events.results.connect(tag_results)
    if model is not None:  # right under the noise model, shown only for "psd"
        panel.add_section(combo, after=model)
        combo.visible = model.value == "psd"
    else:  # under the Gaussian's parameters, which it replaces
        panel.add_section(combo, after=panel.param_widgets["psf_sigma"])
    return combo


def _check_volume_psd(psd: Any) -> np.ndarray:
    from ..processors.bm3d import _real_array

    arr = _real_array(psd, "psd")
    if arr.ndim not in (2, 3):
        raise ValueError(f"psd has shape {arr.shape}; expected a 3-D power spectrum or a 3-D "
                         "(or 2-D) noise kernel")
    return arr


def _psd_power(arr: np.ndarray, panel: Any, spec: Any) -> int:
    """2 for a full power spectrum (the image's plane or volume shape), 1 for a kernel."""
    layer = panel.layer_widget.value
    if layer is None:
        return 1
    shape = tuple(_layer_array(layer).shape)
    if getattr(layer, "rgb", False):
        shape = shape[:-1]
    n = spec.plane_ndim
    return 2 if tuple(arr.shape[:n]) == shape[-n:] else 1


def _safe_bind(panel: Any, bind: Any) -> bool:
    from napari.utils.notifications import show_error

    try:
        bind()
    except (TypeError, ValueError) as exc:
        show_error(f"{panel.spec.title}: {exc}")
        return False
    return True
