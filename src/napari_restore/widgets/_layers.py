"""Result layers: unique names, source geometry, and the recipe in ``metadata``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..processors.registry import Output, ProcessorSpec

META_KEY = "napari_restore"


def unique_name(existing: set[str] | Any, base: str) -> str:
    """``base`` if unused, else ``base #2``, ``base #3``, … (never replaces a layer)."""
    names = {getattr(layer, "name", layer) for layer in existing}
    if base not in names:
        return base
    k = 2
    while f"{base} #{k}" in names:
        k += 1
    return f"{base} #{k}"


def result_name(source: str, spec: ProcessorSpec, params: dict[str, Any], output: str = "") -> str:
    key = spec.key_text(params)
    inner = f"{spec.name} {key}".strip()
    suffix = f" {output}" if output else ""
    return f"{source} [{inner}]{suffix}"


def jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def result_metadata(
    spec: ProcessorSpec, params: dict[str, Any], source: str, channel_axis: int | None,
    seconds: float, **extra: Any,
) -> dict[str, Any]:
    """``{"napari_restore": recipe + provenance}``; ``extra`` keys (target, output, sweep…)
    are added when not None."""
    from .. import __version__

    from ..recipes import FORMAT

    meta = {
        "format": FORMAT,
        "processor": spec.name,
        "params": jsonable(params),
        "channel_axis": channel_axis,
        "source": source,
        "version": __version__,
        "seconds": round(float(seconds), 4),
    }
    meta.update({k: jsonable(v) for k, v in extra.items() if v is not None})
    return {META_KEY: meta}


def display_kwargs(output: Output, source: dict[str, Any]) -> dict[str, Any]:
    """How a result layer of ``output`` is shown (``add_image`` keywords).

    An output that keeps the source's intensity scale (a denoised image) gets the source's
    contrast limits, so source and result compare at the same settings. Any other (contrast
    enhancement, a grain residual) gets napari's own limits for its own data: the source's
    limits would saturate it (e.g. LB-CLAHE on dim 12-bit data in uint16). RGB layers have
    no contrast limits to carry.
    """
    if source["rgb"]:
        return {}
    kwargs: dict[str, Any] = {}
    if output.keeps_scale and source.get("contrast_limits") is not None:
        kwargs["contrast_limits"] = source["contrast_limits"]
    if output.kind == "residual":
        kwargs["colormap"] = "gray"
    return kwargs


def add_results(viewer: Any, source: dict[str, Any], spec: ProcessorSpec, params: dict[str, Any],
                channel_axis: int | None, result: Any, seconds: float,
                resolved: dict[str, Any] | None = None) -> list[Any]:
    """Add the result(s) of one run as new image layers; return them.

    ``source`` is a snapshot taken when the run started (name, scale, translate, rgb,
    contrast limits), so a source layer deleted meanwhile does not matter.
    """
    outs = result if isinstance(result, tuple) else (result,)
    layers = []
    for output, data in zip(spec.outputs, outs, strict=True):
        label = output.name if len(spec.outputs) > 1 else ""
        name = unique_name(viewer.layers, result_name(source["name"], spec, params, label))
        kwargs: dict[str, Any] = {
            "name": name,
            "scale": source["scale"],
            "translate": source["translate"],
            "rgb": source["rgb"],
            "metadata": result_metadata(
                spec, params, source["name"], channel_axis, seconds,
                target=source.get("target"), output=label or None,
                resolved=resolved or None, source_dtype=source.get("dtype"),
            ),
        }
        kwargs.update(display_kwargs(output, source))
        layers.append(viewer.add_image(data, **kwargs))
    return layers


def snapshot(layer: Any, target: Any = None) -> dict[str, Any]:
    """What a result needs to know of its source, taken on the main thread at start.

    With a :class:`~._targets.Target` (slice / field of view), the result is placed where
    that part of the source is.
    """
    snap = {
        "name": layer.name,
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "rgb": bool(layer.rgb),
        "dtype": str(np.dtype(layer.data.dtype)),
        "contrast_limits": tuple(layer.contrast_limits) if not layer.rgb else None,
        "target": None,
    }
    if target is not None:
        snap["scale"], snap["translate"] = target.scale, target.translate
        if target.index or target.origin:
            snap["target"] = {"index": list(target.index), "origin": list(target.origin),
                              "description": target.description}
    return snap
