"""The generalised Anscombe transform (GAT) and the one wrapper that puts it around a denoiser.

For Poisson–Gaussian noise ``var(z) = a·E[z] + b`` (:class:`~.noise_pg.NoiseModel`, in the
image's units) the GAT

    f(z) = (2 / a) · √max(a·z + 3/8·a² + b, 0)

makes the noise approximately Gaussian of unit variance. A Gaussian denoiser then runs at
σ = 1 on ``f(z)``, and the result ``D`` goes back through the **exact unbiased inverse**
(Mäkitalo & Foi 2013) in its closed-form approximation; in the normalised units
``y = z / a`` (``s = b / a²``)

    I(D) = D²/4 + √(3/2)/4 · D⁻¹ − 11/8 · D⁻² + 5/8 · √(3/2) · D⁻³ − 1/8 − s,

and ``x = a · I(D)``. The plain algebraic inverse ``(D/2)² − 3/8 − s`` ignores that
``E[f(z)] ≠ f(E[z])`` and darkens low-count regions (``algebraic_inverse``, kept for
comparison). Below ``D_MIN`` (where the closed form turns back up) the inverse is held at
its value there. A model of kind "gaussian" needs no transform: the denoiser runs with
white noise of σ = √bias.

:func:`iter_apply_vst` is the single place that does this, for every processor with a
``noise_model`` parameter (the registry calls it when that parameter is Poisson–Gaussian):
the transform happens in the image's own units, on the whole input, before the array
boundary; the denoiser runs through the boundary on the transformed float image with
``noise_model="white"`` and ``sigma=1``; the inverse maps back, and the result returns in the
input's dtype. With "poisson-gaussian" and no model, the model is estimated once from the
whole input (one camera for a stack) and reported as ``resolved["noise_model"]``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Generator
from typing import Any

import numpy as np

from .noise_pg import NoiseModel, as_model, check_model_for, estimate_noise_model

#: The named choice that asks for a Poisson–Gaussian model estimated from the input.
POISSON_GAUSSIAN = "poisson-gaussian"

_C1 = 0.25 * math.sqrt(1.5)
_C2 = 0.625 * math.sqrt(1.5)


def _closed_form(d: np.ndarray) -> np.ndarray:
    return d * d / 4.0 + _C1 / d - 1.375 / (d * d) + _C2 / (d * d * d) - 0.125


def _argmin() -> float:
    grid = np.linspace(0.3, 2.0, 170001)
    return float(grid[np.argmin(_closed_form(grid))])


#: Below this value of D the closed form decreases no further (it turns up again): the
#: inverse is held at its value there (D ≈ 0.838; the exact inverse maps 2√(3/8) ≈ 1.22 to 0).
D_MIN = _argmin()


def _params(model: NoiseModel) -> tuple[float, float]:
    if model.gain <= 0:
        raise ValueError("the generalised Anscombe transform needs a gain > 0; a Gaussian "
                         "model (gain 0) is denoised as white noise of σ = √bias")
    return model.gain, model.bias / model.gain**2


def gat(z: Any, model: NoiseModel) -> np.ndarray:
    """The forward transform ``(2/a)·√max(a·z + 3/8·a² + b, 0)`` (float64, a new array)."""
    a, s = _params(model)
    y = np.asarray(z, dtype=np.float64) / a
    return 2.0 * np.sqrt(np.maximum(y + 0.375 + s, 0.0))


def exact_unbiased_inverse(d: Any, model: NoiseModel) -> np.ndarray:
    """The closed-form approximation of the exact unbiased inverse of :func:`gat`."""
    a, s = _params(model)
    dd = np.maximum(np.asarray(d, dtype=np.float64), D_MIN)
    return a * (_closed_form(dd) - s)


def algebraic_inverse(d: Any, model: NoiseModel) -> np.ndarray:
    """The algebraic inverse ``a·((D/2)² − 3/8 − b/a²)`` (biased at low counts)."""
    a, s = _params(model)
    dd = np.maximum(np.asarray(d, dtype=np.float64), 0.0)
    return a * (dd * dd / 4.0 - 0.375 - s)


def asymptotic_inverse(d: Any, model: NoiseModel) -> np.ndarray:
    """The asymptotically unbiased inverse ``a·(D²/4 − 1/8 − b/a²)``."""
    a, s = _params(model)
    dd = np.maximum(np.asarray(d, dtype=np.float64), 0.0)
    return a * (dd * dd / 4.0 - 0.125 - s)


# -- the wrapper -----------------------------------------------------------------------------

def _model_for(arr: Any, values: dict[str, Any], channel_axis: int | None,
               resolved: dict[str, Any] | None) -> NoiseModel | None:
    """The model of a run (given, or estimated from the whole input); None: fall back to
    white noise (an image the model cannot be measured on, with a warning)."""
    given = as_model(values["noise_model"])
    if given is not None:
        check_model_for(given, arr, channel_axis=channel_axis)
        return given
    try:
        model = estimate_noise_model(arr, channel_axis=channel_axis)
    except ValueError as exc:
        warnings.warn(f"noise_model='poisson-gaussian': {exc}; falling back to white Gaussian "
                      "noise", stacklevel=4)
        if resolved is not None:
            resolved["noise_model"] = "white"
            resolved["noise_note"] = f"no Poisson–Gaussian model: {exc}"
        return None
    if resolved is not None:
        resolved["noise_model"] = model.to_param()
    return model


def iter_apply_vst(spec: Any, arr: Any, values: dict[str, Any], *, channel_axis: int | None,
                   cancel: Any, value_range: tuple[float, float] | None,
                   resolved: dict[str, Any] | None, **options: Any) -> Generator[Any, None, Any]:
    """Run ``spec`` for Poisson–Gaussian noise: GAT → denoise at σ = 1 → exact inverse.

    ``values`` are the validated parameters, with ``noise_model`` "poisson-gaussian" or a
    model's parameter form. A given ``sigma`` is refused (the transform sets the noise
    level). Progress and cancellation are those of the inner run; ``options`` (e.g.
    ``workers``) pass to it unchanged.
    """
    if values.get("sigma") is not None:
        raise ValueError(f"sigma={values['sigma']:g} was given with a Poisson–Gaussian noise "
                         "model; leave sigma empty: the transform makes the noise level 1")
    model = _model_for(arr, values, channel_axis, resolved)
    inner = dict(values)
    if model is None or model.kind == "gaussian":
        inner["noise_model"] = "white"
        if model is not None:
            inner["sigma"] = math.sqrt(model.bias)
            if resolved is not None:
                resolved["sigma"] = inner["sigma"]
        return (yield from spec.iter_apply(arr, channel_axis=channel_axis, cancel=cancel,
                                           value_range=value_range, resolved=resolved,
                                           **options, **inner))
    data = np.asarray(arr)
    dtype = np.dtype(data.dtype)
    alpha = None
    if channel_axis is not None and data.shape[channel_axis] == 4:
        alpha = np.take(data, [3], axis=channel_axis)
    f = gat(data, model)
    inner.update(noise_model="white", sigma=1.0)
    sub: dict[str, Any] = {}
    fr = None
    if value_range is not None:  # a part of a stack: the transformed stack's range
        lo, hi = gat(np.asarray(value_range, dtype=np.float64), model)
        fr = (float(lo), float(hi))
    den = yield from spec.iter_apply(f, channel_axis=channel_axis, cancel=cancel,
                                     value_range=fr, resolved=sub, **options, **inner)
    if resolved is not None:
        resolved.update({k: v for k, v in sub.items() if k not in ("sigma", "noise_model")})
    out = exact_unbiased_inverse(den, model)
    if alpha is not None:
        idx = [slice(None)] * data.ndim
        idx[channel_axis] = slice(3, 4)
        out[tuple(idx)] = alpha
    return _to_dtype(out, dtype)


def _to_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float64 values in the image's units as ``dtype`` (integers rounded and clipped, floats
    saturating at the dtype's largest finite value)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    top = float(np.finfo(dtype).max)
    return np.clip(x, -top, top).astype(dtype)
