"""No-reference measures of a denoised result, against its noisy source (no clean image).

What the Compare panel shows when no reference layer is chosen. With ``y`` the noisy source,
``x̂`` a result and ``r = y − x̂`` the *method noise* (what the processor removed):

* **self-supervised loss** — the J-invariant loss of the result's recipe on the source
  (:func:`napari_restore.calibration.self_supervised_loss`): lower is better; it ranks the
  parameters of one processor as the true MSE does.
* **noise left** — the wavelet-MAD noise σ of ``x̂`` (image units): the noise the result
  still holds (it also reads fine texture as noise, so it never reaches 0 on textured images).
* **structure score** — how much image structure the removed part carries: the Pearson
  correlation, over the pixels, of the residual's local energy ``E = G_s * Σ_c r_c²`` with
  the source's local gradient magnitude ``S = √(G_s * Σ_c |∇(G_{s/2} * y_c)|²)`` (``G_s`` a
  Gaussian of s = :data:`STRUCTURE_SIGMA` pixels). Pure noise removed gives a residual whose
  energy does not follow the edges and texture (score ≈ 0); over-smoothing removes them,
  and their energy sits where the gradients are (score towards 1). ``S`` is the source's,
  so every result of one source is scored against the same map: with the result's own
  gradient, an over-smoothed result that wiped out fine texture (a cat's fur) no longer
  showed it, and scored lower than the best result. ``E`` is measured on one half of the
  checkerboard of pixels and ``S`` on the other (both at half resolution), so that the
  noise in ``S`` is independent of the noise the residual removed (on the same pixels,
  removing exactly the noise of a smooth image scored 0.45). A border of ``3·s`` pixels is
  left out.
* **residual whiteness** — ``lag1``: the mean of the residual's normalised lag-1
  autocorrelations along each spatial axis (0 for white noise; structure or removed
  low-frequency content make it positive); ``flatness``: the spectral flatness (geometric
  over arithmetic mean, without the zero frequency) of the residual's Welch spectrum
  (mean periodogram of :data:`WELCH_SEGMENT`-pixel segments, channels averaged): near 1 for
  white noise, lower when the residual is coloured.

Images pass through the single-image boundary (:func:`~napari_restore._arrays.single_image`);
the result is read on the source's scale (:func:`~napari_restore._arrays.companion_image`).
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._arrays import SingleImage, companion_image, single_image

__all__ = [
    "NoReference",
    "STRUCTURE_SIGMA",
    "WELCH_SEGMENT",
    "lag1_autocorrelation",
    "method_noise",
    "noise_left",
    "noref_metrics",
    "spectral_flatness",
    "structure_score",
]

#: Width (pixels) of the Gaussian of the structure score's local energy and gradients.
STRUCTURE_SIGMA = 2.0
#: Segment side (pixels) of the residual's Welch spectrum.
WELCH_SEGMENT = 32


def _pair(image: Any, result: Any, channel_axis: int | None) -> tuple[SingleImage, np.ndarray]:
    src = single_image(image, channel_axis=channel_axis, spatial_ndim=None,
                       work_dtype=np.float64, name="image")
    res = companion_image(result, src, channel_axis=channel_axis, name="result",
                          work_dtype=np.float64, spatial_ndim=None)
    return src, res


def _spatial(work: np.ndarray, colour: bool) -> int:
    return work.ndim - (1 if colour else 0)


def method_noise(image: Any, result: Any, *, channel_axis: int | None = None) -> np.ndarray:
    """The residual ``image − result`` in the image's own units (float; alpha is 0)."""
    src, res = _pair(image, result, channel_axis)
    return src.back(src.work - res, residual=True)


def noise_left(result: Any, *, channel_axis: int | None = None) -> float:
    """Noise σ still in ``result`` (wavelet MAD, image units): :func:`~.metrics.noise_sigma`."""
    from .metrics import noise_sigma

    return noise_sigma(result, channel_axis=channel_axis)


def _phases(x: np.ndarray, nd: int, parity: int) -> np.ndarray:
    """The mean of the 2×…×2 polyphase components of ``x`` (spatial axes cropped to even
    lengths) whose offsets sum to ``parity`` (mod 2): a half-resolution image made of one
    half of the pixels, the checkerboard's black or white squares."""
    x = x[tuple(slice(0, (n // 2) * 2) for n in x.shape[:nd])]
    parts = [x[tuple(slice(o, None, 2) for o in off)]
             for off in itertools.product((0, 1), repeat=nd) if sum(off) % 2 == parity]
    return np.mean(parts, axis=0)


def _structure(resid: np.ndarray, source: np.ndarray, colour: bool, sigma: float) -> float:
    from scipy import ndimage

    nd = _spatial(source, colour)
    if min(source.shape[:nd]) < 4:  # half resolution, then np.gradient: two pixels
        raise ValueError(f"the structure score needs at least 4 pixels along every spatial "
                         f"axis; the image's spatial shape is {source.shape[:nd]}")
    # the residual's energy on one half of the checkerboard, the source's structure on the
    # other: their noises are independent (on one set of pixels the residual's noise energy
    # would follow the source's own noise gradients), and the structure map is the same for
    # every result of the source
    half = (sigma / 2.0,) * nd + ((0.0,) if colour else ())
    energy = ndimage.gaussian_filter(_phases(resid * resid, nd, 1), half)
    smooth = ndimage.gaussian_filter(_phases(source, nd, 0), tuple(s / 2.0 for s in half))
    grad2 = sum(np.square(np.gradient(smooth, axis=a)) for a in range(nd))
    grad2 = ndimage.gaussian_filter(grad2, half)
    if colour:
        energy, grad2 = energy.sum(axis=-1), grad2.sum(axis=-1)
    grad = np.sqrt(grad2)
    b = math.ceil(1.5 * sigma)  # 3·s pixels of the full image
    inner = tuple(slice(b, n - b) if n > 2 * b + 2 else slice(None) for n in grad.shape)
    e, g = energy[inner].ravel(), grad[inner].ravel()
    es, gs = e.std(), g.std()
    if es == 0.0 or gs == 0.0:
        return 0.0
    return float(np.mean((e - e.mean()) * (g - g.mean())) / (es * gs))


def structure_score(image: Any, result: Any, *, channel_axis: int | None = None,
                    sigma: float = STRUCTURE_SIGMA) -> float:
    """Correlation of the removed part's local energy with the source's local gradient
    magnitude (see the module docstring): ≈ 0 when only noise was removed, towards 1 when
    edges and texture were. 0.0 when either map is constant."""
    if isinstance(sigma, bool | np.bool_) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma must be a positive number of pixels; got {sigma!r:.40}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number of pixels; got {sigma!r:.40}")
    src, res = _pair(image, result, channel_axis)
    return _structure(src.work - res, src.work, channel_axis is not None, float(sigma))


def _channels(x: np.ndarray, colour: bool) -> list[np.ndarray]:
    return [x[..., c] for c in range(x.shape[-1])] if colour else [x]


def lag1_autocorrelation(residual: Any, *, channel_axis: int | None = None) -> float:
    """Mean normalised lag-1 autocorrelation of ``residual`` along its spatial axes
    (channels averaged): 0 for white noise, positive for smooth (coloured) content."""
    work = single_image(residual, channel_axis=channel_axis, spatial_ndim=None,
                        work_dtype=np.float64, name="residual").work
    return _lag1(work, channel_axis is not None)


def _lag1(work: np.ndarray, colour: bool) -> float:
    vals = []
    for ch in _channels(work, colour):
        x = ch - ch.mean()
        var = float(np.mean(x * x))
        if var == 0.0:
            continue
        for a in range(x.ndim):
            n = x.shape[a]
            if n < 2:
                continue
            lo = np.take(x, range(n - 1), axis=a)
            hi = np.take(x, range(1, n), axis=a)
            vals.append(float(np.mean(lo * hi)) / var)
    return float(np.mean(vals)) if vals else 0.0


def spectral_flatness(residual: Any, *, channel_axis: int | None = None,
                      segment: int = WELCH_SEGMENT) -> float:
    """Spectral flatness of the residual's Welch spectrum (see the module docstring): near
    1 for white noise, lower for coloured residuals; 1.0 for a constant residual."""
    if isinstance(segment, bool | np.bool_) or not isinstance(segment, numbers.Integral):
        raise TypeError(f"segment must be an integer of at least 4 pixels; got {segment!r:.40}")
    if segment < 4:
        raise ValueError(f"segment must be an integer of at least 4 pixels; got {segment!r:.40}")
    segment = int(segment)
    work = single_image(residual, channel_axis=channel_axis, spatial_ndim=None,
                        work_dtype=np.float64, name="residual").work
    return _flatness(work, channel_axis is not None, segment)


def _flatness(work: np.ndarray, colour: bool, segment: int) -> float:
    spectra = []
    for ch in _channels(work, colour):
        seg = tuple(min(segment, s) for s in ch.shape)
        counts = [s // t for s, t in zip(ch.shape, seg, strict=True)]
        crop = ch[tuple(slice(0, c * t) for c, t in zip(counts, seg, strict=True))]
        shape = []
        for c, t in zip(counts, seg, strict=True):
            shape += [c, t]
        blocks = crop.reshape(shape)
        nd = ch.ndim
        blocks = blocks.transpose([2 * i for i in range(nd)] + [2 * i + 1 for i in range(nd)])
        blocks = blocks.reshape((-1,) + seg)
        blocks = blocks - blocks.mean(axis=tuple(range(1, nd + 1)), keepdims=True)
        power = np.abs(np.fft.fftn(blocks, axes=tuple(range(1, nd + 1)))) ** 2
        spectra.append(power.mean(axis=0))
    spec = np.mean(spectra, axis=0).ravel()[1:]  # without the zero frequency
    if spec.size == 0:  # one pixel: no frequency but zero
        raise ValueError(f"the spectral flatness needs at least 2 pixels along a spatial axis; "
                         f"the residual's spatial shape is {work.shape[:_spatial(work, colour)]}")
    mean = float(spec.mean())
    if mean <= 0.0:
        return 1.0
    tiny = mean * 1e-12
    return float(np.exp(np.mean(np.log(np.maximum(spec, tiny)))) / mean)


@dataclass(frozen=True)
class NoReference:
    """The no-reference columns of one result (see the module docstring).

    ``loss`` is None unless a recipe was given (it reruns the processor on masked input).
    """

    noise_left: float
    structure: float
    lag1: float
    flatness: float
    residual_std: float
    loss: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {"loss": self.loss, "noise_left": self.noise_left, "structure": self.structure,
                "lag1": self.lag1, "flatness": self.flatness, "residual_std": self.residual_std}


def noref_metrics(image: Any, result: Any, *, channel_axis: int | None = None,
                  recipe: Any = None, roi: Any = None, cancel: Any = None) -> NoReference:
    """Every no-reference measure of ``result`` against its noisy source ``image``.

    ``recipe`` (the result layer's :class:`~napari_restore.Recipe`, or its metadata dict):
    also the self-supervised loss of that recipe on ``image`` (``roi`` as for
    :func:`~napari_restore.calibrate`; default: the same representative region).
    """
    from .processors.noise import estimate_noise_sigma

    src, res = _pair(image, result, channel_axis)
    colour = channel_axis is not None
    resid = src.work - res
    loss = None
    if recipe is not None:
        from .calibration import self_supervised_loss
        from .recipes import Recipe

        rec = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe)
        loss = self_supervised_loss(image, rec, roi=roi, channel_axis=channel_axis,
                                    cancel=cancel)
    left = estimate_noise_sigma(res, channel_axis=-1 if colour else None)
    return NoReference(
        noise_left=float(src.scale.param_from_working(left)),
        structure=_structure(resid, src.work, colour, STRUCTURE_SIGMA),
        lag1=_lag1(resid, colour),
        flatness=_flatness(resid, colour, WELCH_SEGMENT),
        residual_std=float(src.scale.param_from_working(float(resid.std()))),
        loss=loss,
    )
