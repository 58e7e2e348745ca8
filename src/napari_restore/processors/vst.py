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
    # the input checks of the inner run first (NaN, too small): an image the run refuses
    # gets that error, not a "falling back to white noise" warning before it
    from .._arrays import check_image

    check_image(arr, channel_axis=channel_axis, plane_ndim=getattr(spec, "plane_ndim", 2),
                min_size=getattr(spec, "min_size", 1), check_finite=True)
    model = _model_for(arr, values, channel_axis, resolved)
    inner = dict(values)
    if model is None or model.kind == "gaussian":
        _to_inner(spec, inner, stabilised=False,
                  sigma=None if model is None else math.sqrt(model.bias))
        if model is not None and inner.get("sigma") is not None and resolved is not None:
            resolved["sigma"] = inner["sigma"]
        if model is None:
            return (yield from spec.iter_apply(arr, channel_axis=channel_axis, cancel=cancel,
                                               value_range=value_range, resolved=resolved,
                                               **options, **inner))
        # as the transformed runs: in float64 data units, scaled by the values' range (the
        # whole's, for a part), so that the same counts give the same result in any dtype
        # (12-bit counts in uint16 were divided by 4095, the same counts as float by their
        # span: BM3D's block matching then chose other blocks, up to 5 counts apart)
        data = np.asarray(arr)
        dtype = np.dtype(data.dtype)
        vr = value_range if value_range is not None else (float(data.min()), float(data.max()))
        try:
            den = yield from spec.iter_apply(data.astype(np.float64), channel_axis=channel_axis,
                                             cancel=cancel, value_range=vr, resolved=resolved,
                                             **options, **inner)
        except ValueError as exc:  # the σ the model set, refused: name the model, not sigma
            if not str(exc).startswith("sigma="):
                raise
            raise ValueError(f"noise_model: the model {model.describe()} sets sigma = √bias "
                             f"= {math.sqrt(model.bias):.6g}; {exc}") from None
        outputs = tuple(getattr(spec, "outputs", ()) or ())
        if len(outputs) <= 1:
            return _image_back(np.array(den, np.float64), data, dtype, channel_axis)
        return tuple(_image_back(np.array(d, np.float64), data, dtype, channel_axis,
                                 residual=o.kind == "residual")
                     for o, d in zip(outputs, den, strict=True))
    data = np.asarray(arr)
    dtype = np.dtype(data.dtype)
    f = gat(data, model)
    _to_inner(spec, inner, stabilised=True)
    sub: dict[str, Any] = {}
    fr = None
    if value_range is not None:  # a part of a stack: the transformed stack's range
        lo, hi = gat(np.asarray(value_range, dtype=np.float64), model)
        fr = (float(lo), float(hi))
    f_lo, f_hi = fr if fr is not None else (float(f.min()), float(f.max()))
    _check_level(spec, 1.0, f_hi - f_lo, model, data)
    # f far from 0 against its unit noise (a gain that is tiny against the bias: f ≈ 2√(b/a²)
    # + z/√b) would lose the noise to the float32 working precision (NoiseModel(1e-9, 9) on
    # 16-bit data returned values up to 21340 for an input of 90–204): the inner run gets f
    # shifted to start at SHIFT_TO, and its image outputs are shifted back before the inverse
    shift = f_lo - SHIFT_TO if f_lo > SHIFT_ABOVE else 0.0
    if shift:
        f -= shift
        fr = None if fr is None else (fr[0] - shift, fr[1] - shift)
    den = yield from spec.iter_apply(f, channel_axis=channel_axis, cancel=cancel,
                                     value_range=fr, resolved=sub, **options, **inner)
    if resolved is not None:
        resolved.update({k: v for k, v in sub.items() if k not in ("sigma", "noise_model")})
    outputs = tuple(getattr(spec, "outputs", ()) or ())
    if len(outputs) <= 1:
        return _image_back(exact_unbiased_inverse(np.asarray(den, np.float64) + shift, model),
                           data, dtype, channel_axis)
    if shift:
        den = tuple(np.asarray(d, np.float64) + shift if o.kind == "image" else d
                    for o, d in zip(outputs, den, strict=False))
    return tuple(_outputs_back(outputs, den, data, model, dtype, channel_axis))


#: The transformed image is shifted (by a constant, undone before the inverse) when its
#: minimum is above SHIFT_ABOVE, to start at SHIFT_TO (float32 keeps 1/2000 of the unit
#: noise there). Models of real cameras give f below ~2√(photons + read noise²) and are
#: never shifted.
SHIFT_ABOVE = 4096.0
SHIFT_TO = 64.0


def _check_level(spec: Any, level: float, span: float, model: NoiseModel,
                 data: np.ndarray) -> None:
    """Refuse a model whose noise level (σ = 1 on the transformed image, √bias for a
    Gaussian model) is beyond what the processor's σ allows for this image (the image's
    whole range where it has no σ): the error names ``noise_model``, not the σ the user did
    not give, and is in the image's units."""
    names = {p.name for p in getattr(spec, "params", ())}
    top = getattr(spec.param("sigma"), "max", None) if "sigma" in names else 1.0
    if top is None or span <= 0 or level <= top * span:  # (a constant image runs as before)
        return
    vals = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    med = float(np.median(vals))
    raise ValueError(
        f"noise_model: the model {model.describe()} gives a noise std of "
        f"{float(model.std(med)):.6g} at the image's median ({med:.6g}), more than its whole "
        f"range ({float(np.min(vals)):.6g} to {float(np.max(vals)):.6g}); gain and bias must "
        "be in the image's own units (grey levels for integer images, values for float "
        "images), or use noise_model='poisson-gaussian' to estimate them")


def _to_inner(spec: Any, inner: dict[str, Any], *, stabilised: bool,
              sigma: float | None = None) -> None:
    """The inner run's noise parameters: white noise where the spec has that choice (else
    its default, e.g. film grain's own measurement on the now stationary noise), and σ = 1
    on the transformed image (or ``sigma``) where the spec has a σ."""
    names = {p.name for p in getattr(spec, "params", ())}
    param = spec.param("noise_model") if "noise_model" in names else None
    choices = tuple(getattr(param, "choices", None) or ())
    inner["noise_model"] = "white" if "white" in choices or param is None else param.default
    if "sigma" in names:
        inner["sigma"] = 1.0 if stabilised else sigma
    else:
        inner.pop("sigma", None)


def _image_back(out: np.ndarray, data: np.ndarray, dtype: np.dtype,
                channel_axis: int | None, *, residual: bool = False) -> np.ndarray:
    """A float64 output in the image's units as the run's result: alpha passes through (a
    residual's alpha is 0); images in the input's dtype, residuals signed float (float32
    for integer input, as the array boundary returns them)."""
    if channel_axis is not None and data.shape[channel_axis] == 4:
        idx = [slice(None)] * data.ndim
        idx[channel_axis] = slice(3, 4)
        out[tuple(idx)] = 0.0 if residual else np.take(data, [3], axis=channel_axis)
    if residual:
        return _to_dtype(out, dtype if dtype.kind == "f" else np.dtype(np.float32))
    return _to_dtype(out, dtype)


def _outputs_back(outputs: tuple[Any, ...], den: Any, data: np.ndarray, model: NoiseModel,
                  dtype: np.dtype, channel_axis: int | None) -> Generator[np.ndarray, None, None]:
    """The outputs of a multi-output run (e.g. film grain: denoised, grain, regrained) back in
    the image's units, by their :class:`~.registry.Output` kind:

    - the first ``"image"`` output is the clean estimate: the exact unbiased inverse;
    - a later ``"image"`` output is that estimate plus what it adds to it (e.g. grain put
      back): the added part holds noise, whose inverse is the algebraic one (it maps f(z) back
      to z exactly), so ``estimate + alg(out) − alg(estimate)``; a full put-back gives z back;
    - a ``"residual"`` output is recomputed in data units as ``input − estimate``.
    """
    if len(den) != len(outputs):
        raise RuntimeError(f"the run returned {len(den)} outputs for {len(outputs)} declared")
    kinds = [o.kind for o in outputs]
    if "image" not in kinds:
        raise RuntimeError("a Poisson–Gaussian run needs an image output to invert")
    first = kinds.index("image")
    est_d = np.asarray(den[first], dtype=np.float64)
    est = exact_unbiased_inverse(est_d, model)
    for i, (o, d) in enumerate(zip(outputs, den, strict=True)):
        if i == first:
            yield _image_back(est.copy(), data, dtype, channel_axis)
        elif o.kind == "residual":
            x = data.astype(np.float64) - est
            yield _image_back(x, data, dtype, channel_axis, residual=True)
        else:
            x = est + (algebraic_inverse(d, model) - algebraic_inverse(est_d, model))
            yield _image_back(x, data, dtype, channel_axis)


def _to_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float64 values in the image's units as ``dtype`` (integers rounded and clipped, floats
    saturating at the dtype's largest finite value)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    top = float(np.finfo(dtype).max)
    return np.clip(x, -top, top).astype(dtype)
