"""Extras of the BM3D / BM4D panels: "Estimate σ", array inputs from layers, a warm worker.

The button measures the noise of the selected layer's *current* plane (the current volume
for BM4D) with the same wavelet-MAD estimate the processors use when σ is on auto, and fills
the σ widget with it, so users see the value "auto" would use and can adjust it.

Array inputs cannot be spec parameters (they do not fit in a recipe), so the extras add a
layer picker for them: BM3D denoise gets a "noise model" (white, or the PSD / noise kernel in
a layer), BM3D deblur a "PSF" (Gaussian from the parameters, or a PSF layer). The chosen
layer's data is bound to the panel's spec for the run (``bm3d.with_arrays``); the result
layer's name ends with ``psd=<layer>`` / ``psf=<layer>`` and its metadata holds
``napari_restore_arrays = {"psd": "<layer>"}`` — the recipe itself (``napari_restore``) stays
a plain white-noise / Gaussian-PSF recipe, since the array is not in it.

Building the panel also starts one idle worker process in the background
(:func:`napari_restore._isolate.prewarm`), so the first Run does not pay the process start.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import Container, Label, PushButton

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

    plane = current_plane(viewer, layer, plane_ndim)
    scale = value_scale(plane, layer_value_range(layer))
    work = to_working(plane, scale, np.float64)
    rgb = bool(getattr(layer, "rgb", False))
    if rgb:
        work = work[..., :3]
    sigma = float(estimate_noise_sigma(work, channel_axis=-1 if rgb else None))
    return float(scale.param_from_working(sigma))


def build(panel: Any) -> Container:
    """Add the "Estimate σ" row under the parameters of a BM3D/BM4D panel."""
    from .. import _isolate

    button = PushButton(text="Estimate σ", name="estimate_sigma",
                        tooltip="Measure the noise of the current plane (wavelet MAD) and put "
                                "it into σ: the value 'auto' would use.")
    result = Label(value="", name="sigma_estimate")
    row = Container(widgets=[button, result], layout="horizontal", labels=False,
                    name="estimate_row", label="noise")
    row.margins = (0, 0, 0, 0)

    def on_click(*_: Any) -> None:
        from napari.utils.notifications import show_warning

        layer = panel.layer_widget.value
        if layer is None:
            show_warning(f"{panel.spec.title}: choose an image layer first.")
            return
        try:
            sigma = estimate_sigma_for(panel.viewer, layer, panel.spec.plane_ndim)
        except (TypeError, ValueError) as exc:
            show_warning(f"{panel.spec.title}: cannot estimate σ: {exc}")
            return
        panel.param_widgets["sigma"].value = float(f"{sigma:.4g}")
        unit = "grey levels" if np.dtype(layer.data.dtype).kind in "iu" else "data units"
        result.value = f"σ ≈ {sigma:.4g} {unit}"

    button.changed.connect(on_click)
    sigma_widget = panel.param_widgets["sigma"]
    panel.insert(panel.index(sigma_widget) + 1, row)
    panel.estimate_button = button
    panel.estimate_label = result
    if panel.spec.name in ARRAY_INPUTS:
        _add_array_input(panel, *ARRAY_INPUTS[panel.spec.name])
    _isolate.prewarm(preload=("numpy", "scipy.fft", "bm3d"))
    return row


#: spec name -> (argument, label, text for "no layer", tooltip)
ARRAY_INPUTS = {
    "bm3d_denoise": (
        "psd", "noise model", "white noise (σ)",
        "White noise of standard deviation σ, or correlated noise given by a layer: its power "
        "spectrum (same height and width as the image) or a small noise kernel (the noise is "
        "white noise convolved with it; σ, if set, gives the level). Values in fractions of "
        "the image's value range.",
    ),
    "bm3d_deblur": (
        "psf", "PSF", "Gaussian (psf, psfσ)",
        "The blur: a Gaussian built from the psf size and psfσ above, or a PSF layer (2-D, "
        "finite, positive sum; normalised to 1).",
    ),
}


#: The picker's value when no layer is chosen (None would not emit ``changed`` in magicgui).
NO_LAYER = "none"


def _layer_array(layer: Any) -> np.ndarray:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def _add_array_input(panel: Any, arg: str, label: str, none_text: str, tooltip: str) -> None:
    """A layer picker for an array argument, bound to the panel's spec at every run."""
    import napari
    from magicgui.widgets import ComboBox

    from ..processors import bm3d as bm3d_mod

    base = panel.spec
    check = bm3d_mod.check_psd if arg == "psd" else bm3d_mod.check_psf

    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        return [(none_text, NO_LAYER)] + [
            (lay.name, lay) for lay in panel.viewer.layers
            if isinstance(lay, napari.layers.Image) and not lay.rgb
        ]

    combo = ComboBox(name=f"{arg}_layer", label=label, choices=choices, value=NO_LAYER,
                     tooltip=tooltip)
    events = panel.viewer.layers.events
    for ev in (events.inserted, events.removed, events.reordered):
        ev.connect(lambda *_: combo.reset_choices())

    def bind(*_: Any) -> None:
        """Point the panel at the base spec, or at a copy with the layer's array bound."""
        layer = combo.value
        if layer is None or layer is NO_LAYER or layer == NO_LAYER:
            panel.spec = base
            return
        panel.spec = bm3d_mod.with_arrays(base, **{arg: check(_layer_array(layer))})

    combo.changed.connect(lambda *_: _safe_bind(panel, bind))
    start = panel.start

    def start_with_array() -> Any:
        if not _safe_bind(panel, bind):  # re-read the layer: its data may have changed
            return None
        return start()

    panel.start = start_with_array

    def tag_results(layers: list) -> None:
        layer = combo.value
        if panel.spec is base or isinstance(layer, str) or layer is None:
            return
        for out in layers:
            out.metadata["napari_restore_arrays"] = {arg: layer.name}
            out.name = f"{out.name} {arg}={layer.name}"

    panel.events.results.connect(tag_results)
    last_param = max(panel.index(w) for w in panel.param_widgets.values())
    panel.insert(last_param + 1, combo)
    setattr(panel, f"{arg}_layer_widget", combo)


def _safe_bind(panel: Any, bind: Any) -> bool:
    from napari.utils.notifications import show_error

    try:
        bind()
    except (TypeError, ValueError) as exc:
        show_error(f"{panel.spec.title}: {exc}")
        return False
    return True
