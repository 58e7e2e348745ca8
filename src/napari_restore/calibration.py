"""Self-supervised calibration: choose a denoiser's parameters without a clean reference.

J-invariant masking as in Noise2Self (Batson & Royer 2019) and scikit-image's
``denoise_invariant``/``calibrate_denoiser``: the pixels on a stride grid are replaced by the
mean of their 2·d nearest neighbours, the processor runs on that masked image through the
registry (``get_processor(name).apply``, the same path as the panels and recipes), and the
loss is the mean squared difference between the noisy and the predicted values *on the
masked pixels only*. A prediction that never saw a pixel cannot copy its noise, so for
pixel-wise independent noise the loss is the true MSE plus the (constant) noise variance
and ranks candidates as the true MSE does. ``approximate_loss=False`` covers every offset of
the grid (``stride**d`` masks, each pixel predicted once), ``True`` one mask, "auto" every
offset for the cheap classic NLM (batched: :class:`_NLMJob`) and wavelet, one mask otherwise.
By default (on white Gaussian noise) BM3D, BM4D and the classic denoisers are scored
without a mask, by recorrupted pairs (``masking="recorrupt"``, :data:`RECORRUPT`): the run
sees the image with more noise added and is scored against the image with that noise
subtracted, on every pixel away from clipped values; with a Poisson–Gaussian model the
added noise follows the model's variance (:data:`RECORRUPT_PG`). The masked losses stay for
correlated noise, TV with a Poisson–Gaussian model, and on request (``masking="interpolate"``
is scikit-image's).

Speed: calibration runs on a representative region (tiles that cover the image's intensity
range) unless given one; candidates are searched coarse to fine on the grid (evaluate every
few values, then halve the step around the minimum) instead of everywhere; the jobs of one
search level (candidates × tiles × masks) run in parallel worker processes. The executor is
one small class (:class:`_Executor`) so that a shared worker pool can replace it.

Pure numpy: no napari, Qt or magicgui. :func:`iter_calibrate` is a progress generator (a
widget wraps it in a worker; ``cancel`` stops it); :func:`calibrate` drains it.
"""

from __future__ import annotations

import itertools
import math
import numbers
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._arrays import (CancelLike, Cancelled, Progress, _is_cancelled, check_cancel, check_image,
                      finite_range, ranged, run_to_completion, value_scale, wide_integer,
                      working_params)
from .processors.registry import ProcessorSpec, get_processor

__all__ = [
    "Calibration",
    "CalibrationStep",
    "DEFAULT_PARAMS",
    "NOT_CALIBRATED",
    "calibrate",
    "default_grid",
    "default_region",
    "iter_calibrate",
    "self_supervised_loss",
]

#: Spacing of the masking grid (pixels), as scikit-image's default.
STRIDE = 4
#: Planes up to this many pixels (volumes: voxels) are calibrated whole; larger ones on tiles.
REGION_PIXELS = 256 * 256
REGION_VOXELS = 64 * 64 * 64
#: Side of a calibration tile (pixels) and number of tiles, for planes and for volumes.
TILE, TILES = 128, 4
TILE_3D, TILES_3D = 48, 4
#: Default grid of an intensity parameter: the estimated noise σ times these factors
#: (0.25× to 4×, six steps per octave: 25 values), clipped to the parameter's range.
SIGMA_FACTORS = tuple(float(2.0 ** (k / 6.0)) for k in range(-12, 13))
#: The search refines around this many local minima of an ordered axis (the best first).
LOCAL_MINIMA = 2
#: Below this σ (a fraction of the image's span) the region counts as noise-free.
NOISE_FREE = 1e-6
#: The coarse level of the search evaluates about this many values of an ordered axis.
COARSE_POINTS = 5
#: ``search="auto"`` evaluates every candidate of a grid up to this size when the grid is
#: yours or the processor is in :data:`CHEAP` (the exact minimum on the grid, as
#: scikit-image's ``calibrate_denoiser``), else searches coarse to fine.
FULL_GRID = 25
CHEAP = frozenset({"classic_denoise"})
#: ``approximate_loss="auto"`` covers every mask offset for these (processor, method) pairs
#: — cheap runs (the batched non-local means, wavelet) whose single-mask loss was too noisy
#: on small regions (docs/tuning-without-reference.md) — and uses one mask for the others.
ALL_OFFSETS = frozenset({("classic_denoise", "nl_means"), ("classic_denoise", "wavelet")})
SEARCHES = ("auto", "refine", "full")

#: How masked pixels are filled: "interpolate" = the mean of their 2·d axis neighbours
#: (scikit-image's ``denoise_invariant``); "interpolate+noise" = that mean plus independent
#: Gaussian noise that brings their mean squared distance from the clean image back to the
#: noise variance (σ̂², or the Poisson–Gaussian model's; :func:`_refill_std`: the mean keeps
#: only 1/(2·d) of the noise, and errs on texture), so the processor sees the masked pixels
#: as far off as the others. "auto": the second for the processors in :data:`NOISE_REFILL`,
#: whose result depends on every pixel's noise matching σ (BM3D's thresholds: with the plain
#: mean its calibrated σ was 0.7 dB below the best on camera at σ = 25, and it ranked an
#: under-smoothing σ as if it interpolated) and for classic wavelet and non-local means
#: (:data:`NOISE_REFILL_METHODS`), the first for TV (scikit-image's loss; see
#: docs/tuning-without-reference.md).
MASKINGS = ("auto", "interpolate", "interpolate+noise", "recorrupt")
NOISE_REFILL = frozenset({"bm3d_denoise", "bm4d_denoise"})
#: "recorrupt" (Pang et al. 2021, *Recorrupted-to-Recorrupted*): no pixel is masked. Each run
#: sees ``y + α·σ̂·z`` and is scored against ``y − σ̂·z/α`` (``z`` white, unit): for Gaussian
#: noise of std σ̂ the two noises are independent, so the loss is the true MSE of the run at
#: the noise level σ̂·√(1 + α²) plus a constant (σ̂²/α² is taken off: the loss reads as the
#: MSE plus σ̂², as the masked loss does); the candidate's σ is scaled by √(1 + α²) to match.
#: Every pixel is scored and the run is the processor itself, not a masked variant of it,
#: whose best σ sits above the real one's (the masked pixel cannot use its own value). "auto"
#: uses it for the processors in :data:`RECORRUPT` on white Gaussian noise and for those
#: in :data:`RECORRUPT_PG` with a Poisson–Gaussian model (a tile whose noise measures
#: correlated, or the other Poisson–Gaussian cases: the masked loss). Measured on
#: 128² crops (8 images; docs/tuning-without-reference.md): for the classic denoisers it
#: chose within 0.5 dB of the best σ in 23/24 (NLM), 24/24 (TV), 24/24 (wavelet) cases,
#: against 23, 23 and 22 with the masked losses, and ranked NLM σ-sweeps ≥ 0.9 in 8/8
#: (masked: 7/8, coins 0.86).
RECORRUPT = frozenset({"bm3d_denoise", "bm4d_denoise", "classic_denoise"})
RECORRUPT_ALPHA = 0.5
#: With a Poisson–Gaussian model (``noise_model="poisson-gaussian"`` or a ``NoiseModel``)
#: "auto" recorrupts with the model's variance: ``z`` of std √(a·m + b) at each value's
#: local mean ``m`` (3×3; its mean is the clean value's variance, the model being linear),
#: and the run is given the model with gain and bias times 1 + α², the variance of
#: ``y + α·z``. That is for these (processor, method) pairs; TV keeps the masked loss (with
#: the recorruption it chose too strong a weight: 21/24 within 0.5 dB; the run on the
#: noisier ``y + α·z`` wants more smoothing than the image itself). A model measured as
#: Gaussian where Poisson–Gaussian noise was asked for may hide a gain the image is too
#: small to show (brick's 64² crop at 20 photons, gain 4: σ 10.3, the gain below the 2
#: standard errors the estimator needs), and recorrupting signal-dependent noise with one σ
#: ranks wrongly (1.5 dB off there; the line: 0.0 dB): the recorrupting noise then
#: follows the line through the model's fitted level-set points, significant or not (its
#: level where the slope comes out negative), while the run keeps the Gaussian model it
#: would get. On the 8 images of
#: 128² at 10/30/100 photons (gain 4, read noise 3, offset 100) the chosen strength was
#: within 0.5 dB of the best in 24/24 cases (NLM, wavelet; masked loss: 22 and 23) and
#: BM3D's profile within 0.3 dB in 24/24 (docs/tuning-without-reference.md).
RECORRUPT_PG = frozenset({("bm3d_denoise", None), ("bm4d_denoise", None),
                          ("classic_denoise", "nl_means"), ("classic_denoise", "wavelet")})
#: Noise draws of "recorrupt" with ``approximate_loss=False``. With True (what "auto" means
#: for BM3D, BM4D and classic TV) one draw per ``REGION_PIXELS`` (volumes: ``REGION_VOXELS``) of the tiles, at
#: most as many: a region smaller than the default one (a 128² image) gets more draws, to
#: the precision and the cost of a full region, since the loss's noise falls with the
#: number of values scored (on 128² crops one draw ranked brick's BM3D sweep 0.89 and chose
#: 0.34 dB below its best; four: 0.96 and 0.05 dB).
RECORRUPT_DRAWS = 4
#: Clipped data (uint8 ``clip(x + n, 0, 255)``, a saturated detector): where the clean value
#: is near a clipped extreme the noise is not the Gaussian of std σ̂ the recorruption
#: assumes (``y`` is pushed inside, ``y ± σ̂·z`` are no longer an independent pair), and
#: those pixels ranked σ-sweeps wrongly (BM3D on coffee, 16 % of its values clipped:
#: Spearman 0.79, 1.00 without them). "recorrupt" scores only the values whose local mean
#: (5×5, per channel) lies at least ``SCORE_MARGIN``·σ̂ inside a clipped extreme
#: (:func:`~.processors.noise.clipped_extremes`: clipping there is below 1 %); the runs
#: still see the whole tile. A tile with fewer than ``SCORE_MIN_FRACTION`` of its values
#: left is scored on all of them. The masked losses score every masked pixel (for
#: non-local means leaving the clipped ones out changed no ranking but chelsea's, for the
#: worse: 0.96 → 0.89).
SCORE_MARGIN = 2.5
SCORE_MIN_FRACTION = 0.05
#: ... and classic wavelet (BayesShrink): with the plain mean its calibrated σ was far too
#: low on colour crops (astronaut σ = 15: 5.3 instead of 14.9, 2.4 dB), the quiet masked
#: pixels passing through a weak threshold; and non-local means: with the plain mean the
#: masked run is better than the real one at weak smoothing (the quiet masked pixel is
#: averaged, the real one keeps its noise), so its loss ranked a σ-sweep's under-smoothed
#: results too well (Spearman ≥ 0.9 on 4/8 images, 7/8 with the refill, accuracy unchanged:
#: docs/tuning-without-reference.md, Figures). TV keeps the plain mean (with the refill its
#: choices were within 0.5 dB of the best in 18/24 cases instead of 23/24).
NOISE_REFILL_METHODS = frozenset({("classic_denoise", "wavelet"), ("classic_denoise", "nl_means")})
#: Seed of the refill noise (with the tile and mask offset): every candidate sees the same.
MASK_SEED = 16

#: The parameters ``params=None`` tunes, per processor.
DEFAULT_PARAMS: dict[str, tuple[str, ...]] = {
    "classic_denoise": ("sigma",),
    "bm3d_denoise": ("sigma",),
    "bm4d_denoise": ("sigma",),
    "restore_film_grain": ("denoiser",),
}
#: ... and with Poisson–Gaussian noise, where σ is fixed by the variance-stabilising
#: transform (σ = 1 there; the processors refuse a σ): classic's smoothing strength, BM3D's
#: and BM4D's profile.
DEFAULT_PARAMS_PG: dict[str, tuple[str, ...]] = {
    "classic_denoise": ("strength",),
    "bm3d_denoise": ("profile",),
    "bm4d_denoise": ("profile",),
}
#: Default grid of a unitless multiplier (classic's ``strength``): these factors of 1.
STRENGTH_FACTORS = SIGMA_FACTORS
#: Default candidates of discrete parameters (others: all their choices).
DISCRETE_GRIDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("bm3d_denoise", "profile"): ("np", "refilter", "vn", "high"),
}
#: Processors this kind of calibration does not apply to, and why.
NOT_CALIBRATED: dict[str, str] = {
    "deep_image_prior": (
        "Deep Image Prior is not calibrated by J-invariant masking: its early stopping (the "
        "running variance of its estimates) plays that role; tune iterations there"),
    "lb_clahe": (
        "LB-CLAHE is a contrast enhancement, not a denoiser: its result is not a prediction "
        "of the input's values, so a self-supervised loss does not measure its quality"),
    "bm3d_deblur": (
        "BM3D deblurring estimates the unblurred image, not the blurred input, so the "
        "masked loss against the input does not measure its quality; calibrate sigma with "
        "bm3d_denoise on the blurred image instead"),
}


# -- the result -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationStep:
    """Progress payload: one candidate finished (``Progress.info`` of :func:`iter_calibrate`)."""

    params: dict[str, Any]
    loss: float
    index: tuple[int, ...]
    level: int


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` found.

    Attributes
    ----------
    processor : str
        Registry name.
    best_params : dict
        Keyword arguments for the processor's function: the tuned values (in the image's
        own units) plus the fixed ones you gave.
    best_loss : float
        Self-supervised loss of the best candidate (image units squared).
    grid : dict
        The candidates of each tuned parameter (axes of :attr:`losses`, in this order).
    losses : ndarray
        Loss of every candidate, shaped like the grid; NaN where the coarse-to-fine search
        did not need to evaluate a candidate (``search="full"`` evaluates all).
    best_index : tuple of int
        Position of the best candidate in :attr:`losses`.
    seconds : float
        Wall time of the calibration.
    evaluations : int
        Candidates evaluated.
    recipe : Recipe
        The processor with the best parameters, replayable on the image.
    noise_sigma : float
        Noise σ estimated on the region (image units), from which default grids derive.
    region : tuple
        The boxes (one ``(start, stop)`` pair per spatial axis) calibrated on.
    stride : int
    approximate_loss : bool
    masking : str
        The loss that ran ("interpolate", "interpolate+noise" or "recorrupt"; "auto"
        resolved).
    fixed : dict
        Parameters held fixed (yours, plus ``noise_model`` when given).
    search : str
        The search that ran ("refine" or "full"; "auto" resolved).
    """

    processor: str
    best_params: dict[str, Any]
    best_loss: float
    grid: dict[str, tuple[Any, ...]]
    losses: np.ndarray
    best_index: tuple[int, ...]
    seconds: float
    evaluations: int
    recipe: Any
    noise_sigma: float
    region: tuple[tuple[tuple[int, int], ...], ...]
    stride: int = STRIDE
    approximate_loss: bool = True
    masking: str = "interpolate"
    fixed: dict[str, Any] = field(default_factory=dict)
    search: str = "refine"

    def candidates(self) -> list[tuple[dict[str, Any], float]]:
        """Every evaluated candidate as ``(params, loss)``, in grid order."""
        names = list(self.grid)
        out = []
        for idx in zip(*np.nonzero(np.isfinite(self.losses)), strict=True):
            params = {n: self.grid[n][i] for n, i in zip(names, idx, strict=True)}
            out.append((params, float(self.losses[tuple(idx)])))
        return out

    def curve(self, name: str | None = None) -> tuple[tuple[Any, ...], np.ndarray]:
        """``(values, losses)`` along one tuned parameter, the others at their best value
        (the loss curve to plot; NaN where the search skipped a value)."""
        names = list(self.grid)
        if name is None:
            if len(names) != 1:
                raise ValueError(f"curve() needs name= for a grid of {len(names)} parameters "
                                 f"({', '.join(names)})")
            name = names[0]
        if name not in self.grid:
            raise ValueError(f"{name!r} is not a calibrated parameter; it tuned "
                             f"{', '.join(names)}")
        axis = names.index(name)
        index = list(self.best_index)
        index[axis] = slice(None)
        return self.grid[name], np.array(self.losses[tuple(index)])


# -- validation -------------------------------------------------------------------------------

def _spec(processor: Any) -> ProcessorSpec:
    spec = get_processor(processor)
    if spec.name in NOT_CALIBRATED:
        raise ValueError(f"processor {spec.name!r} cannot be calibrated: "
                         f"{NOT_CALIBRATED[spec.name]}")
    return spec


def _names(spec: ProcessorSpec) -> str:
    return ", ".join(p.name for p in spec.params)


def _poisson_gaussian(noise_model: Any) -> bool:
    if isinstance(noise_model, str):
        return noise_model.startswith("poisson-gaussian")
    return noise_model is not None and hasattr(noise_model, "gain") and hasattr(noise_model, "bias")


def _tuned_names(spec: ProcessorSpec, params: Any, grid: Mapping[str, Any] | None,
                 noise_model: Any = None) -> list[str]:
    known = {p.name for p in spec.params}
    if params is None:
        defaults = DEFAULT_PARAMS_PG if _poisson_gaussian(noise_model) else DEFAULT_PARAMS
        names = list(grid) if grid else list(defaults.get(spec.name, ()))
        if not names:
            raise ValueError(f"{spec.name} has no default parameters to calibrate; give "
                             f"params= and grid= (its parameters: {_names(spec)})")
    else:
        if isinstance(params, str):
            params = (params,)
        if not isinstance(params, Iterable) or isinstance(params, Mapping):
            raise TypeError(f"params must be a sequence of parameter names of {spec.name}; "
                            f"got {type(params).__name__}")
        names = list(params)
        if not names:
            raise ValueError(f"params is empty; name at least one parameter of {spec.name} "
                             f"to calibrate ({_names(spec)})")
        for g in grid or ():
            if g not in names:
                names.append(g)
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"params must name parameters as strings; got {n!r:.40}")
        if n not in known:
            raise ValueError(f"{spec.name} has no parameter {n!r}; its parameters: "
                             f"{_names(spec)}")
    if len(set(names)) != len(names):
        raise ValueError(f"params names a parameter twice: {names}")
    return names


def _check_values(spec: ProcessorSpec, name: str, values: Any) -> tuple[Any, ...]:
    """The candidates of ``name``: validated, without duplicates, numbers ascending."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"grid[{name!r}] must be a sequence of candidate values; got "
                        f"{values!r:.60}")
    vals = list(np.asarray(values).ravel()) if isinstance(values, np.ndarray) else list(values)
    if not vals:
        raise ValueError(f"grid[{name!r}] is empty; give at least 2 candidate values")
    param = spec.param(name)
    try:
        out = [param.validate(v.item() if isinstance(v, np.generic) else v) for v in vals]
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"grid[{name!r}]: {exc}") from None
    if len(set(out)) != len(out):
        raise ValueError(f"grid[{name!r}] holds a value twice: {out}")
    if len(out) < 2:
        raise ValueError(f"grid[{name!r}] has one candidate ({out[0]!r}); calibration compares "
                         f"at least 2: give more values, or pass {name}={out[0]!r} in fixed=")
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in out):
        out.sort()
    return tuple(out)


def _roi_boxes(roi: Any, spatial: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]] | None:
    """``roi`` as boxes of (start, stop) per spatial axis; None: automatic."""
    if roi is None:
        return None
    if isinstance(roi, str):
        if roi != "all":
            raise ValueError(f"roi={roi!r:.40} is not understood; give None (automatic), "
                             "'all' (the whole image) or one (start, stop) pair or slice per "
                             "spatial axis")
        return [tuple((0, s) for s in spatial)]
    if isinstance(roi, np.ndarray):  # ambiguous: napari's corner_pixels is (2, ndim)
        raise TypeError(f"roi as a NumPy array is not accepted (is it (start, stop) per axis, "
                        f"or napari's (2, ndim) corners?); give a tuple of one (start, stop) "
                        f"pair or slice per spatial axis, e.g. roi=((0, 128), (64, 192)); got "
                        f"an array of shape {roi.shape}")
    if not isinstance(roi, Sequence) or len(roi) != len(spatial):
        raise ValueError(f"roi must give one (start, stop) pair or slice per spatial axis "
                         f"({len(spatial)} for an image of spatial shape {spatial}); got "
                         f"{roi!r:.80}")
    box = []
    for axis, (item, size) in enumerate(zip(roi, spatial, strict=True)):
        if isinstance(item, slice):
            if item.step not in (None, 1):
                raise ValueError(f"roi axis {axis}: slices with a step are not supported")
            start, stop = item.start, item.stop
        elif isinstance(item, Sequence) and len(item) == 2:
            start, stop = item
        elif isinstance(item, np.ndarray) and item.shape == (2,):  # e.g. np.array([0, 128])
            start, stop = item.tolist()
        else:
            raise ValueError(f"roi axis {axis} must be a (start, stop) pair or a slice; got "
                             f"{item!r:.40}")
        start = 0 if start is None else start
        stop = size if stop is None else stop
        for v in (start, stop):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"roi axis {axis}: bounds must be integers; got {v!r:.40}")
        start, stop = int(start), int(stop)
        if not 0 <= start < stop <= size:
            raise ValueError(f"roi axis {axis} is ({start}, {stop}): outside the image, whose "
                             f"spatial shape is {spatial}; need 0 <= start < stop <= {size}")
        box.append((start, stop))
    return [tuple(box)]


# -- region -----------------------------------------------------------------------------------

def default_region(data: np.ndarray, spatial_ndim: int = 2, *, max_pixels: int | None = None,
                   tile: int | None = None, tiles: int | None = None,
                   ) -> list[tuple[tuple[int, int], ...]]:
    """The boxes calibration uses when no ``roi`` is given.

    A plane of at most :data:`REGION_PIXELS` pixels (a volume of :data:`REGION_VOXELS`) is
    used whole. A larger one is cut into non-overlapping tiles of :data:`TILE` pixels
    (:data:`TILE_3D` for volumes); the tiles are sorted by their mean intensity (channel
    mean for colour) and :data:`TILES` of them are taken at evenly spaced ranks (the
    1/8, 3/8, 5/8 and 7/8 quantiles for four tiles), so the region covers the image's
    intensity range. Constant tiles (saturated borders) are left out when others remain.
    """
    spatial = tuple(data.shape[:spatial_ndim])
    volume = spatial_ndim == 3
    max_pixels = max_pixels or (REGION_VOXELS if volume else REGION_PIXELS)
    tile = tile or (TILE_3D if volume else TILE)
    tiles = tiles or (TILES_3D if volume else TILES)
    if math.prod(spatial) <= max_pixels:
        return [tuple((0, s) for s in spatial)]
    sides = [min(tile, s) for s in spatial]
    starts = [sorted({*range(0, s - t + 1, t), s - t}) for s, t in zip(spatial, sides, strict=True)]
    luma = data.mean(axis=-1) if data.ndim > spatial_ndim else data
    boxes, means, flat = [], [], []
    for corner in itertools.product(*starts):
        box = tuple((c, c + t) for c, t in zip(corner, sides, strict=True))
        part = luma[tuple(slice(a, b, 4) for a, b in box)]  # every 4th pixel: enough for a mean
        boxes.append(box)
        means.append(float(part.mean()))
        flat.append(float(part.max()) == float(part.min()))
    keep = [i for i in range(len(boxes)) if not flat[i]] or list(range(len(boxes)))
    keep.sort(key=lambda i: (means[i], boxes[i]))
    n = len(keep)
    ranks = sorted({min(n - 1, int((k + 0.5) * n / tiles)) for k in range(tiles)})
    return [boxes[keep[r]] for r in ranks]


# -- masking ----------------------------------------------------------------------------------

def _interpolate(data: np.ndarray, spatial_ndim: int) -> np.ndarray:
    """Each pixel replaced by the mean of its 2·d axis neighbours (mirror at the borders),
    channels separately: scikit-image's ``_interpolate_image``."""
    from scipy import ndimage

    kernel = ndimage.generate_binary_structure(spatial_ndim, 1).astype(data.dtype)
    kernel.ravel()[kernel.size // 2] = 0
    kernel /= kernel.sum()
    if data.ndim == spatial_ndim:
        return ndimage.convolve(data, kernel, mode="mirror")
    out = np.empty_like(data)
    for c in range(data.shape[-1]):
        out[..., c] = ndimage.convolve(data[..., c], kernel, mode="mirror")
    return out


def _mask(spatial_ndim: int, offset: int, stride: int) -> tuple[slice, ...]:
    """The ``offset``-th of the ``stride**d`` interleaved grids (scikit-image's order)."""
    phases = np.unravel_index(offset, (stride,) * spatial_ndim)
    return tuple(slice(int(p), None, stride) for p in phases)


@dataclass(frozen=True)
class _Job:
    """One processor run on one masked tile (picklable: it runs in a worker process)."""

    processor: str
    masked: np.ndarray
    mask: tuple[slice, ...]
    params: dict[str, Any]
    channel_axis: int | None
    value_range: tuple[float, float] | None
    select: Any = None  # "recorrupt": of the values at ``mask`` (raveled), those scored


@dataclass(frozen=True)
class _NLMJob:
    """Every candidate of scikit-image's fast non-local means (classic ``nl_means``) on one
    masked tile at once (picklable). ``h`` and ``var`` are per candidate, in image units;
    ``copy`` marks candidates whose σ is below the noise-free level (the plane function
    returns its input unchanged there)."""

    masked: np.ndarray
    mask: tuple[slice, ...]
    h: tuple[float, ...]
    var: tuple[float, ...]
    copy: tuple[bool, ...]
    patch_size: int
    patch_distance: int


def _fast_exp(y: np.ndarray) -> np.ndarray:
    """scikit-image's ``fast_exp`` (Schraudolph's approximation: the high word of a double
    built from ``1512775·y + 1072632447``, the low word zero), bit for bit."""
    hi = (1512775.0 * y + 1072632447.0).astype(np.int32)  # C's cast truncates toward zero
    return (hi.astype(np.int64) << 32).view(np.float64)


#: scikit-image's DISTANCE_CUTOFF: patch distances above it get weight 0.
_NLM_CUTOFF = 5.0


def _nlm_predict(job: _NLMJob, cancel: CancelLike = None) -> np.ndarray:
    """The predictions of ``denoise_nl_means(masked, h=h_k, sigma=sqrt(var_k), patch_size,
    patch_distance, fast_mode=True)`` at the masked pixels only, for every candidate k:
    shape (K, masked pixels[, channels]).

    The same sums as scikit-image's ``_fast_nl_means_denoising_2d`` (Darbon et al.'s shift
    loop; its patch is the 2o×2o box ``(r-o, r+o]`` of the integral image, normalised by
    ``s²``; the weights are its ``fast_exp``), evaluated only where the loss needs them: for
    each shift ``t`` the squared-difference image and its integral image are computed once
    and shared by all candidates (σ only moves the distances by a constant), and the weights
    of a masked pixel ``p`` as the reference (``p`` vs ``p + t``) and as the target
    (``p - t`` vs ``p``) are read at ``p`` and ``p - t``. Equal to the library's result to
    ~1e-7 of the span (tests/test_calibration.py)."""
    x = job.masked if job.masked.ndim == 3 else job.masked[..., None]
    n_ch = x.shape[-1]
    s = job.patch_size + (job.patch_size % 2 == 0)
    o, d = s // 2, job.patch_distance
    pad = o + d + 1
    padded = np.pad(x.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    rows = np.arange(x.shape[0])[job.mask[0]] + pad
    cols = np.arange(x.shape[1])[job.mask[1]] + pad
    rr, cc = (a.ravel() for a in np.meshgrid(rows, cols, indexing="ij"))
    var = np.asarray(job.var, np.float64)[:, None]
    h = np.asarray(job.h, np.float64)[:, None]
    sub = n_ch * 2.0 * var * (2 * o) ** 2  # the integral image's "- 2·var" per box pixel
    den = np.where(h > 0, n_ch * h * h * s * s, 1.0)  # h = 0: a copied candidate (below)
    k = len(job.h)
    num = np.zeros((k, rr.size, n_ch))
    wsum = np.zeros((k, rr.size))
    n_row, n_col = padded.shape[:2]
    diff2 = np.zeros((n_row, n_col))
    integral = np.zeros((n_row + 1, n_col + 1))

    def box(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return (integral[r + o + 1, c + o + 1] - integral[r - o + 1, c + o + 1]
                - integral[r + o + 1, c - o + 1] + integral[r - o + 1, c - o + 1])

    def add(dist: np.ndarray, values: np.ndarray) -> None:
        dist = np.maximum(dist[None, :] - sub, 0.0) / den
        w = np.where(dist > _NLM_CUTOFF, 0.0, _fast_exp(-np.minimum(dist, _NLM_CUTOFF)))
        wsum[...] += w
        num[...] += w[..., None] * values[None]

    for t_row in range(-d, d + 1):
        check_cancel(cancel)
        for t_col in range(0, d + 1):
            if t_col == 0 and t_row < 0:  # (-r, 0) is (r, 0) seen from the other end
                continue
            r0, r1 = max(0, -t_row), min(n_row, n_row - t_row)
            diff2[...] = 0.0
            delta = padded[r0:r1, :n_col - t_col] - padded[r0 + t_row:r1 + t_row, t_col:]
            diff2[r0:r1, :n_col - t_col] = np.einsum("ijc,ijc->ij", delta, delta)
            np.cumsum(diff2, axis=0, out=integral[1:, 1:])
            np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
            add(box(rr, cc), padded[rr + t_row, cc + t_col])
            if t_row or t_col:
                add(box(rr - t_row, cc - t_col), padded[rr - t_row, cc - t_col])
    out = num / wsum[..., None]
    if any(job.copy):
        out[np.asarray(job.copy)] = x[job.mask].reshape(-1, n_ch)[None]
    return out if job.masked.ndim == 3 else out[..., 0]


def _run_job(job: _Job | _NLMJob, cancel: CancelLike = None) -> np.ndarray:
    """The processor's prediction of the masked pixels (first output, float64; for an
    :class:`_NLMJob` every candidate's, stacked), raveled to the scored values when a
    :class:`_Job` has a ``select``."""
    if isinstance(job, _NLMJob):
        return _nlm_predict(job, cancel)
    spec = get_processor(job.processor)
    out = spec.apply(job.masked, channel_axis=job.channel_axis, value_range=job.value_range,
                     cancel=cancel, **job.params)
    if isinstance(out, tuple):
        out = out[0]
    pred = np.asarray(out, dtype=np.float64)[job.mask]
    return pred if job.select is None else pred.ravel()[job.select]


class _Executor:
    """Runs jobs, in worker processes when ``workers > 1`` (:mod:`._isolate`'s warm spawn
    workers, one per thread of a small thread pool), else in this process.

    ``run(jobs)`` yields ``(index, prediction)`` as jobs finish; cancel stops every running
    job within a fraction of a second (its worker is terminated) and raises
    :class:`Cancelled`. The first job error is re-raised after the others are stopped.
    """

    def __init__(self, workers: int, cancel: CancelLike) -> None:
        self.workers = workers
        self.cancel = cancel

    def run(self, jobs: Sequence[_Job]) -> Generator[tuple[int, np.ndarray], None, None]:
        if self.workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                if _is_cancelled(self.cancel):
                    raise Cancelled("calibration stopped")
                yield i, _run_job(job, self.cancel)
            return
        yield from self._parallel(jobs)

    def _parallel(self, jobs: Sequence[_Job]) -> Generator[tuple[int, np.ndarray], None, None]:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        from ._arrays import drain
        from ._isolate import run_isolated

        abort = threading.Event()

        def stop() -> bool:
            return abort.is_set() or _is_cancelled(self.cancel)

        def one(job: _Job) -> np.ndarray:
            if stop():
                raise Cancelled("calibration stopped")
            return drain(run_isolated(_run_job, job, stop))

        pool = ThreadPoolExecutor(min(self.workers, len(jobs)),
                                  thread_name_prefix="napari-restore-calibrate")
        futures = {pool.submit(one, job): i for i, job in enumerate(jobs)}
        pending = set(futures)
        try:
            while pending:
                if _is_cancelled(self.cancel):
                    raise Cancelled("calibration stopped")
                done, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=futures.__getitem__):
                    err = fut.exception()
                    if err is not None and not isinstance(err, Cancelled):
                        raise err
                    if err is not None:
                        raise Cancelled("calibration stopped")
                    yield futures[fut], fut.result()
        finally:
            abort.set()
            pool.shutdown(wait=True, cancel_futures=True)


def _default_workers() -> int:
    from ._parallel import workers

    return workers()


# -- grids ------------------------------------------------------------------------------------

def _g4(value: float) -> float:
    return float(f"{value:.4g}")


def default_grid(spec: ProcessorSpec, name: str, noise_sigma: float, span: float) -> tuple[Any, ...]:
    """Default candidates of ``name``: an intensity parameter gets the estimated noise σ
    (image units) times :data:`SIGMA_FACTORS`, within its allowed range (``span`` = the
    image's span); a discrete parameter its choices (or :data:`DISCRETE_GRIDS`)."""
    param = spec.param(name)
    if param.type is str:
        return DISCRETE_GRIDS.get((spec.name, name), param.choices or ())
    if param.type is bool:
        return (False, True)
    if param.intensity == 1 and param.type is float:
        if not noise_sigma > NOISE_FREE * span:
            raise ValueError(f"no noise was measured in the region (estimated σ = 0), so no "
                             f"default grid for {name} can be derived; give grid={{{name!r}: "
                             "[...]} in the image's units")
        lo = 0.0 if param.min is None else param.min * span
        hi = math.inf if param.max is None else param.max * span
        vals = sorted({_g4(min(max(noise_sigma * f, lo), hi)) for f in SIGMA_FACTORS})
        vals = [v for v in vals if v > 0] or vals
        return tuple(vals)
    if name == "strength" and param.type is float:
        lo = -math.inf if param.min is None else param.min
        hi = math.inf if param.max is None else param.max
        return tuple(sorted({_g4(min(max(f, lo), hi)) for f in STRENGTH_FACTORS}))
    raise ValueError(f"{spec.name}'s parameter {name!r} has no default grid; give grid="
                     f"{{{name!r}: [...]}}")


# -- search -----------------------------------------------------------------------------------

def _ordered(values: tuple[Any, ...]) -> bool:
    return len(values) >= 3 and all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                    for v in values)


def _coarse_step(n: int) -> int:
    if n <= COARSE_POINTS:
        return 1
    return max(1, 2 ** round(math.log2((n - 1) / (COARSE_POINTS - 1))))


class _Search:
    """Coarse-to-fine search over a grid: discrete axes are enumerated; on ordered numeric
    axes every ``step``-th value is evaluated, then the step halves around the current best
    of each discrete combination until the best has its ±1 neighbours evaluated (a local
    minimum on the grid). ``full=True`` evaluates everything."""

    def __init__(self, grid: dict[str, tuple[Any, ...]], full: bool) -> None:
        self.sizes = [len(v) for v in grid.values()]
        self.ordered = [(not full) and _ordered(v) for v in grid.values()]
        self.steps = [_coarse_step(n) if o else 1 for n, o in zip(self.sizes, self.ordered, strict=True)]
        self.losses = np.full(self.sizes, np.nan)
        self.level = 0

    def first(self) -> list[tuple[int, ...]]:
        axes = []
        for n, o, s in zip(self.sizes, self.ordered, self.steps, strict=True):
            axes.append(sorted({*range(0, n, s), n - 1}) if o else list(range(n)))
        return list(itertools.product(*axes))

    def _combos(self) -> Iterable[tuple[int, ...]]:
        return itertools.product(*[[0] if o else range(n)
                                   for n, o in zip(self.sizes, self.ordered, strict=True)])

    def next(self) -> list[tuple[int, ...]]:
        """Candidates of the next level (empty: done)."""
        if not any(self.ordered):
            return []
        self.level += 1
        self.steps = [max(1, s // 2) for s in self.steps]
        new: set[tuple[int, ...]] = set()
        for combo in self._combos():
            sub = tuple(slice(None) if o else c for o, c in zip(self.ordered, combo, strict=True))
            part = self.losses[sub]
            if not np.isfinite(part).any():
                continue
            for local in self._minima(part):
                it = iter(local)
                best = [next(it) if o else c for o, c in zip(self.ordered, combo, strict=True)]
                around = []
                for i, (o, s, n) in enumerate(zip(self.ordered, self.steps, self.sizes,
                                                  strict=True)):
                    around.append(sorted({min(n - 1, max(0, best[i] + d)) for d in (-s, 0, s)})
                                  if o else [best[i]])
                for idx in itertools.product(*around):
                    if not np.isfinite(self.losses[idx]):
                        new.add(idx)
        return sorted(new)

    @staticmethod
    def _minima(part: np.ndarray) -> list[tuple[int, ...]]:
        """Where to refine: the best point and, on one ordered axis, the next-best local
        minimum of the evaluated points (an uneven loss curve — small images, wavelet
        levels — can hide the global minimum next to a local one)."""
        best = np.unravel_index(int(np.nanargmin(part)), part.shape)
        if part.ndim != 1:
            return [tuple(int(i) for i in best)]
        idx = np.flatnonzero(np.isfinite(part))
        vals = part[idx]
        minima = [int(idx[k]) for k in range(len(idx))
                  if (k == 0 or vals[k] < vals[k - 1]) and (k == len(idx) - 1 or vals[k] < vals[k + 1])]
        minima.sort(key=lambda i: part[i])
        return [(i,) for i in minima[:LOCAL_MINIMA]] or [(int(best[0]),)]


# -- the engine -------------------------------------------------------------------------------

@dataclass
class _Setup:
    spec: ProcessorSpec
    tiles: list[tuple[np.ndarray, np.ndarray]]  # (data, interp) in the image's units
    boxes: list[tuple[tuple[int, int], ...]]
    spatial_ndim: int
    channel_axis: int | None
    value_range: tuple[float, float] | None
    span: float
    noise_sigma: float
    stride: int
    offsets: tuple[int, ...]
    refill: list[float]  # σ̂ the masked pixels are refilled to, per tile (0: none; _refill_std)
    masking: str  # "recorrupt": ``refill`` is each tile's σ̂ of the recorruption
    model: Any = None  # a Poisson–Gaussian NoiseModel: the refill follows its variance
    scale: Any = None  # the image's ValueScale (intensity parameters' range and units)
    source: Any = None  # the caller's image: ``spec.prepare`` resolves "auto" choices on it
    scored: list[Any] | None = None  # "recorrupt": per tile, the values scored (None: all)
    # "recorrupt" with a Poisson–Gaussian model: per tile, the recorrupting noise's std at
    # each value (the model's at the local mean; see _model_std), else None (σ̂ everywhere)
    stds: list[Any] | None = None


def _approximate(spec: ProcessorSpec, approximate_loss: Any, methods: Iterable[Any]) -> Any:
    """``approximate_loss`` with "auto" resolved: False (every offset) when every candidate
    method is in :data:`ALL_OFFSETS`, else True (one mask)."""
    if isinstance(approximate_loss, str):
        if approximate_loss != "auto":
            raise ValueError(f"approximate_loss={approximate_loss!r:.40} is not allowed; give "
                             "True (one mask), False (every offset) or 'auto'")
        methods = list(methods)
        return not (methods and all((spec.name, m) in ALL_OFFSETS for m in methods))
    return approximate_loss


def _methods(spec: ProcessorSpec, fixed: Mapping[str, Any], grid: Mapping[str, Any],
             tuned: Iterable[str]) -> list[Any]:
    """The ``method`` values the candidates will have (None for processors without one)."""
    if "method" not in {p.name for p in spec.params}:
        return [None]
    if "method" in grid:
        return list(grid["method"])
    if "method" in tuned:
        return list(spec.param("method").choices or ())
    return [fixed.get("method", spec.param("method").default)]


def _masked_default(spec: ProcessorSpec, methods: Iterable[Any] = (None,)) -> str:
    """The masked loss "auto" means where recorrupted pairs do not apply."""
    methods = list(methods) or [None]
    refill = spec.name in NOISE_REFILL or all((spec.name, m) in NOISE_REFILL_METHODS
                                              for m in methods)
    return "interpolate+noise" if refill else "interpolate"


def _masking(spec: ProcessorSpec, masking: Any, methods: Iterable[Any] = (None,)) -> str:
    if not isinstance(masking, str) or masking not in MASKINGS:
        raise ValueError(f"masking={masking!r:.40} is not allowed; choose one of "
                         f"{', '.join(repr(m) for m in MASKINGS)}")
    if masking == "auto":
        if spec.name in RECORRUPT:
            return "recorrupt"  # _prepare falls back to the masked loss where it must
        return _masked_default(spec, methods)
    if masking == "recorrupt" and "sigma" not in {p.name for p in spec.params}:
        raise ValueError(f"masking='recorrupt' needs a processor with a noise level sigma; "
                         f"{spec.name} has none: use 'interpolate' or 'interpolate+noise'")
    return masking


def _white_tiles(tiles: list[tuple[np.ndarray, np.ndarray]], spatial_ndim: int) -> bool:
    """Whether every tile's noise measures white (:func:`~.processors.noise_model.measure_noise`,
    the decision of ``noise_model="auto"``)."""
    from .processors.noise_model import measure_noise

    for data, _ in tiles:
        cax = -1 if data.ndim > spatial_ndim else None
        if measure_noise(data, channel_axis=cax).correlated:
            return False
    return True


def _prepare(image: Any, spec: ProcessorSpec, *, roi: Any, channel_axis: Any, stride: Any,
             approximate_loss: Any, masking: Any = "auto", noise_model: Any = None,
             methods: Iterable[Any] = (None,)) -> _Setup:
    asked = masking
    methods = tuple(methods)
    masking = _masking(spec, masking, methods)
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride < 2:
        raise ValueError(f"stride must be an integer >= 2; got {stride!r:.40}")
    stride = int(stride)
    if not isinstance(approximate_loss, bool | np.bool_):
        raise TypeError(f"approximate_loss must be True or False; got {approximate_loss!r:.40}")
    arr, cax = check_image(image, channel_axis=channel_axis, plane_ndim=spec.plane_ndim)
    spatial_ndim = arr.ndim - (cax is not None)
    if spatial_ndim != spec.plane_ndim:
        what = "volume (Z, Y, X)" if spec.plane_ndim == 3 else "plane (H, W)"
        colour = [a for a in (-1, 0) if arr.shape[a] in (3, 4)] \
            if cax is None and spec.input_kind == "rgb" and arr.ndim == spec.plane_ndim + 1 else []
        hint = (f"; if it is a colour image, give channel_axis={colour[0]}" if colour else "")
        raise ValueError(f"calibrate takes one {what}{' plus its colour axis' if cax is not None else ''}; "
                         f"image has shape {tuple(arr.shape)}: pass one plane of the stack "
                         f"(e.g. image[k]), the one shown in the viewer{hint}")
    if cax is not None and spec.input_kind == "volume3d":
        raise ValueError(f"{spec.name} takes volumes without a colour axis; give "
                         "channel_axis=None")
    data = np.asarray(arr)
    if cax is not None:
        data = np.moveaxis(data, cax, -1)[..., :3]  # alpha passes through processors: no loss
    dtype = np.dtype(arr.dtype)
    # values stay in the image's units, in float64 whatever the dtype: the same counts as
    # uint8 or float give the same losses to float64 rounding (in float32 tiles near-equal
    # losses of neighbouring candidates, 1e-4 apart, swapped between the two)
    carrier = np.float64
    if dtype.kind in "iu" and not wide_integer(dtype):
        info = np.iinfo(dtype)
        high = float(info.max)
        if spec.detect_bits:  # 12-bit data in uint16: the tiles scaled by 0-4095, as a run is
            high = float(value_scale(arr, detect_bits=True).high)
        value_range: tuple[float, float] | None = (float(info.min), high)
    else:  # scaled by its values' range: the masked (float) tiles by the whole image's
        value_range = finite_range(arr)
    scale = value_scale(arr, value_range if ranged(dtype) else None,
                        detect_bits=spec.detect_bits)
    spatial = tuple(data.shape[:spatial_ndim])
    boxes = _roi_boxes(roi, spatial)
    if boxes is None:
        boxes = default_region(data, spatial_ndim)
    where = "roi" if roi is not None else "image"
    for box in boxes:
        sides = tuple(b - a for a, b in box)
        if min(sides) < 2 * stride:
            raise ValueError(f"{where} is too small for stride={stride}: the region is "
                             f"{'x'.join(map(str, sides))} pixels; masking needs at least "
                             f"{2 * stride} pixels along every axis (give a larger region or "
                             "a smaller stride)")
    from .processors.noise import estimate_noise_sigma, estimate_noise_sigma_unclipped

    model = None
    if _poisson_gaussian(noise_model):
        # estimated once on the whole image, as a run on it does, and given to every job
        from .processors.noise_pg import as_model, estimate_noise_model

        model = as_model(noise_model)
        if model is None:
            model = estimate_noise_model(arr, channel_axis=cax)
    if masking == "recorrupt" and asked == "auto" and (
            noise_model == "psd"  # correlated noise, by the caller
            or (model is not None and not _recorrupts_model(spec, methods))):
        masking = _masked_default(spec, methods)
    # the recorruption's σ̂ is measured away from clipped intensities (a uint8 image's dark or
    # saturated areas shrink the noise: the plain MAD reads 21 for 25 on a camera crop)
    estimate = estimate_noise_sigma_unclipped if masking == "recorrupt" else estimate_noise_sigma
    tiles, sigmas = [], []
    for box in boxes:
        part = np.array(data[tuple(slice(a, b) for a, b in box)], dtype=carrier)
        tiles.append((part, _interpolate(part, spatial_ndim)))
        sigmas.append(estimate(part, channel_axis=-1 if part.ndim > spatial_ndim else None))
    if masking == "recorrupt" and asked == "auto" and (
            not min(sigmas) > NOISE_FREE * scale.span
            or (noise_model != "white" and not _white_tiles(tiles, spatial_ndim))):
        # correlated noise (or none measured): the masked loss (BM3D's with the noise refill)
        masking = _masked_default(spec, methods)
        sigmas = [estimate_noise_sigma(t, channel_axis=-1 if t.ndim > spatial_ndim else None)
                  for t, _ in tiles]
    n_masks = stride ** spatial_ndim
    offsets = (n_masks // 2,) if approximate_loss else tuple(range(n_masks))
    if masking == "recorrupt":  # draws of the recorrupting noise
        offsets = tuple(range(_draws(tiles, spatial_ndim) if approximate_loss
                              else RECORRUPT_DRAWS))
    # the noise std the refill is measured against, per tile (0: no refill; see _refill)
    refill = [s if masking in ("interpolate+noise", "recorrupt") else 0.0 for s in sigmas]
    if masking == "recorrupt" and model is None:  # white noise: see _recorrupt_sigma
        refill = [_recorrupt_sigma(part, spatial_ndim, s)
                  for (part, _), s in zip(tiles, sigmas, strict=True)]
    if model is not None and masking == "interpolate+noise":  # the model's std at each pixel
        refill = [1.0] * len(tiles)
    scored = stds = None
    if masking == "recorrupt":
        if model is not None:  # the model's std, per value; its mean level for the margin
            line = _level_line(model)
            stds = [_model_std(line, part, spatial_ndim) for part, _ in tiles]
            refill = [float(np.sqrt(np.mean(np.square(s)))) for s in stds]
        scored = [_scored(part, s, spatial_ndim) for (part, _), s in zip(tiles, refill,
                                                                         strict=True)]
    return _Setup(spec, tiles, boxes, spatial_ndim, -1 if cax is not None else None,
                  value_range, scale.span, float(np.median(sigmas)), stride, offsets, refill, masking, model,
                  scale, arr, scored, stds)


def _recorrupt_sigma(part: np.ndarray, spatial_ndim: int, mad: float) -> float:
    """The std σ̂ of the white recorrupting noise on one tile: the mean of two estimates
    that err in different ways, the wavelet MAD measured away from clipped values (``mad``)
    and the noise model's (:func:`~.processors.noise_pg.estimate_noise_model`: the mean
    square of the 2×2 Haar details on the tile's smooth windows); the MAD alone where the
    tile has no smooth windows.

    A σ̂ below the image's σ correlates the run's noise with the target's (covariance
    σ² − σ̂²) and the loss then favours weaker denoising (by about 2(σ² − σ̂²) times the
    run's divergence); a σ̂ above it, stronger denoising. The MAD keeps 37 % of a mean
    square's efficiency and reads dense texture as noise (coins σ 15: +12 %); the smooth
    windows' mean square is efficient where the image is smooth but takes in fine texture
    that passes as smooth (chelsea's fur: +3–6 %). On the benchmark's 128² crops (32 cases
    of one seed set, σ 15–40) the MAD's RMS error was 3.9 %, the smooth windows' 2.1 %, the
    mean's 2.5 %; over three seed sets, NLM within 0.5 dB of the best σ in 71/72 (MAD;
    moon σ 40, 0.65 dB), 72/72 and 72/72, and NLM σ-sweeps ranked ≥ 0.9 in 22/24, 20/24
    and 22/24 (chelsea, whose fur the smooth windows read as noise).
    """
    import warnings

    from .processors.noise_pg import estimate_noise_model

    try:
        with warnings.catch_warnings():  # (a negative gain falls back to Gaussian: fine here)
            warnings.simplefilter("ignore")
            found = estimate_noise_model(part, channel_axis=-1 if part.ndim > spatial_ndim
                                         else None)
    except ValueError:  # no smooth region (texture), or too small
        return mad
    if found.kind == "gaussian":
        smooth = math.sqrt(found.bias)
    else:  # a gain where white noise was assumed: the noise's mean variance over the tile
        smooth = float(np.sqrt(np.mean(np.maximum(found.variance(part), 0.0))))
    return 0.5 * (mad + smooth)


def _recorrupts_model(spec: ProcessorSpec, methods: Iterable[Any]) -> bool:
    """Whether "auto" recorrupts with a Poisson–Gaussian model: every candidate method is
    in :data:`RECORRUPT_PG`."""
    return all((spec.name, m) in RECORRUPT_PG for m in methods)


def _level_line(model: Any) -> tuple[float, float]:
    """(a, b) of the variance ``a·m + b`` the recorrupting noise follows: the model's, or
    for a model measured as Gaussian the weighted line through its fitted level-set points
    (see :data:`RECORRUPT_PG`; its mean level when the slope comes out negative)."""
    pts = np.array(model.points, float).reshape(-1, 3)
    if model.gain > 0 or len(pts) < 2 or np.ptp(pts[:, 0]) <= 0:
        return float(model.gain), float(model.bias)
    x, y, n = pts[:, 0], pts[:, 1], pts[:, 2]
    w = n / np.maximum(y, 1e-300) ** 2  # a variance's standard error is ∝ itself
    x0 = float(np.average(x, weights=w))
    a = float(np.sum(w * (x - x0) * y) / np.sum(w * (x - x0) ** 2))
    level = float(np.average(y, weights=w))
    return (a, level - a * x0) if a > 0 else (0.0, level)


def _model_std(line: tuple[float, float], data: np.ndarray, spatial_ndim: int) -> np.ndarray:
    """Std of the variance ``a·m + b`` (``line``) at each value of a tile, ``m`` its local
    mean (3×3, per channel): on average the clean value's variance, the line being linear
    in the mean (0 where the variance is not positive)."""
    from scipy import ndimage

    size = (3,) * spatial_ndim + (1,) * (data.ndim - spatial_ndim)
    level = ndimage.uniform_filter(data, size, mode="nearest")
    return np.sqrt(np.maximum(line[0] * level + line[1], 0.0))


def _scaled_model(model: Any, factor: float) -> Any:
    """``model`` with its variance multiplied by ``factor`` (what a recorrupted run sees)."""
    import dataclasses

    return dataclasses.replace(model, gain=model.gain * factor, bias=model.bias * factor,
                               points=(), residual=0.0)


def _check_range(setup: _Setup, params: Mapping[str, Any], prefix: str = "") -> None:
    """``ValueError`` for an intensity parameter outside its range for this image, in the
    image's own units (the boundary's message): the batched non-local means never reaches
    the boundary, so its candidates are checked here, before any work."""
    spec = setup.spec
    units = {n: p for n, p in spec.units.items() if params.get(n) is not None}
    if not units or setup.scale is None:
        return
    try:
        working_params(params, units, setup.scale, spec.bounds)
    except ValueError as exc:
        raise ValueError(f"{prefix}{exc}") from None


def _refill_std(setup: _Setup, sigma: float, guess: np.ndarray, noisy: np.ndarray) -> Any:
    """Std of the noise added to the interpolated masked pixels (``"interpolate+noise"``):
    what brings their mean squared distance from the clean image back to the noise variance
    ``v`` (σ², or the Poisson–Gaussian model's at each pixel), so that the processor sees
    them as far off as the pixels they replace. The interpolation's own error counts: since
    E(guess − noisy)² = E(guess − clean)² + v, the variance added is (2 − e²/v̄)·v with e² the
    mean squared guess − noisy difference (v̄ its mean of v); for an exact interpolation of
    2·d neighbours that is (1 − 1/(2·d))·v, the noise variance their mean keeps out. On
    texture the interpolation errs and less noise is added (none once it errs by σ)."""
    guess = guess.astype(np.float64)
    if setup.model is not None:  # signal-dependent: the model's variance at each pixel
        var: Any = np.maximum(setup.model.variance(guess), 0.0)
        mean_var = float(np.mean(var))
    else:
        var = mean_var = sigma * sigma
    if not mean_var > 0:
        return 0.0
    e2 = float(np.mean((guess - noisy.astype(np.float64)) ** 2))
    return np.sqrt(max(0.0, 2.0 - e2 / mean_var) * var)


def _jobs(setup: _Setup, params: dict[str, Any]) -> list[tuple[_Job, np.ndarray]]:
    """The runs of one candidate, each with the noisy values it predicts."""
    if setup.masking == "recorrupt":
        return _recorrupted_jobs(setup, params)
    out = []
    for t, ((data, interp), refill) in enumerate(zip(setup.tiles, setup.refill, strict=True)):
        for off in setup.offsets:
            mask = _mask(setup.spatial_ndim, off, setup.stride)
            masked = data.copy()
            masked[mask] = interp[mask]
            if refill > 0:  # the same noise for every candidate (seeded by tile and offset)
                rng = np.random.default_rng((MASK_SEED, t, off))
                noise = rng.normal(0.0, 1.0, masked[mask].shape) * _refill_std(
                    setup, refill, interp[mask], data[mask])
                masked[mask] += noise.astype(masked.dtype)
            run = params
            if setup.spec.prepare is not None and setup.source is not None \
                    and setup.model is None and not setup.spec.prepared_units:
                # input-dependent choices resolved on the caller's image, as its replay does
                # (classic's bit_depth "auto" is 8 bits for uint8, not the float tiles' 16)
                full = setup.spec.validate_params(run)
                if not _poisson_gaussian(full.get("noise_model")):  # (the VST runs on floats)
                    prepared = setup.spec.prepare(dict(full), setup.source)
                    run = {**run, **{k: v for k, v in prepared.items() if full.get(k) != v}}
            if setup.model is not None and isinstance(run.get("noise_model"), str):
                run = {**run, "noise_model": setup.model}
            job = _Job(setup.spec.name, masked, mask, run, setup.channel_axis,
                       setup.value_range)
            out.append((job, data[mask]))
    return out


def _recorrupted_jobs(setup: _Setup, params: dict[str, Any]) -> list[tuple[_Job, np.ndarray]]:
    """The runs of one candidate under ``masking="recorrupt"`` (see :data:`RECORRUPT`), each
    with the values it is scored against: ``y − σ̂·z/α`` on every pixel of the tile."""
    alpha = RECORRUPT_ALPHA
    run = dict(params)
    if run.get("sigma") is not None:  # the run sees noise √(1 + α²) times stronger
        run["sigma"] = float(run["sigma"]) * math.sqrt(1.0 + alpha * alpha)
    if setup.model is not None:  # ... and a Poisson–Gaussian variance 1 + α² times larger
        run["noise_model"] = _scaled_model(setup.model, 1.0 + alpha * alpha)
    whole = (slice(None),) * setup.spatial_ndim
    scored = setup.scored or [None] * len(setup.tiles)
    stds = setup.stds or setup.refill
    out = []
    for t, ((data, _), sigma, keep) in enumerate(zip(setup.tiles, stds, scored, strict=True)):
        for draw in setup.offsets:
            rng = np.random.default_rng((MASK_SEED, t, draw, 1))  # the same for every candidate
            z = rng.normal(0.0, 1.0, data.shape) * sigma
            select = None if keep is None else keep.ravel()
            job = _Job(setup.spec.name, data + alpha * z, whole, run, setup.channel_axis,
                       setup.value_range, select)
            out.append((job, _selected(data - z / alpha, select)))
    return out


def _draws(tiles: list[tuple[np.ndarray, np.ndarray]], spatial_ndim: int) -> int:
    """Draws of "recorrupt" with ``approximate_loss=True`` (see :data:`RECORRUPT_DRAWS`)."""
    full = REGION_VOXELS if spatial_ndim == 3 else REGION_PIXELS
    pixels = sum(math.prod(data.shape[:spatial_ndim]) for data, _ in tiles)
    return int(min(RECORRUPT_DRAWS, max(1, math.ceil(full / max(pixels, 1) - 1e-9))))


def _selected(values: np.ndarray, select: Any) -> np.ndarray:
    return values if select is None else values.ravel()[select]


def _scored(data: np.ndarray, sigma: float, spatial_ndim: int) -> np.ndarray | None:
    """The values of a tile that "recorrupt" scores (see :data:`SCORE_MARGIN`), or None for
    all of them (nothing clipped, or too little left)."""
    from scipy import ndimage

    from .processors.noise import clipped_extremes

    lo, hi = clipped_extremes(data)
    if lo is None and hi is None:
        return None
    size = (5,) * spatial_ndim + (1,) * (data.ndim - spatial_ndim)
    level = ndimage.uniform_filter(data, size, mode="nearest")
    keep = np.ones(data.shape, bool)
    if lo is not None:
        keep &= level >= lo + SCORE_MARGIN * sigma
    if hi is not None:
        keep &= level <= hi - SCORE_MARGIN * sigma
    if keep.sum() < SCORE_MIN_FRACTION * keep.size or keep.all():
        return None
    return keep


def _loss_offset(setup: _Setup) -> float:
    """What the scoring values' extra noise adds to the loss: 0, or for ``"recorrupt"`` the
    pixel-weighted mean of σ̂²/α² (taken off, so that the loss reads as MSE + σ̂²)."""
    if setup.masking != "recorrupt":
        return 0.0
    scored = setup.scored or [None] * len(setup.tiles)
    stds = setup.stds or [None] * len(setup.tiles)
    sizes, var = [], []
    for (data, _), keep, sigma, std in zip(setup.tiles, scored, setup.refill, stds, strict=True):
        sizes.append(data.size if keep is None else int(keep.sum()))
        if std is None:
            var.append(sigma * sigma)
        else:  # the model's variance, averaged over the values scored
            var.append(float(np.mean(np.square(std if keep is None else std[keep]))))
    sizes_arr = np.array(sizes, float)
    return float(np.sum(sizes_arr * np.array(var)) / np.sum(sizes_arr) / RECORRUPT_ALPHA**2)


#: classic_denoise parameters the batched non-local means (:class:`_NLMJob`) reproduces,
#: with the values it accepts (None: any); any other value runs through the registry.
_NLM_PARAMS = {"method": ("nl_means",), "sigma": None, "strength": None, "patch_size": None,
               "patch_distance": None, "bit_depth": None, "noise_model": ("auto", "white"),
               "tile": ("off", "auto")}


def _nlm_candidates(setup: _Setup, candidates: list[dict[str, Any]]) -> bool:
    """Whether every candidate is classic ``nl_means`` on white noise with a given σ, on
    planes small enough to run untiled: then :class:`_NLMJob` evaluates them together."""
    if setup.spec.name != "classic_denoise" or setup.spatial_ndim != 2 or setup.model is not None \
            or setup.masking == "recorrupt":  # (the recorrupted runs are the library's own)
        return False
    if max(max(b - a for a, b in box) for box in setup.boxes) > 1024:
        return False
    groups = set()
    for params in candidates:
        full = {p.name: p.default for p in setup.spec.params}
        full.update(params)
        for name, value in full.items():
            allowed = _NLM_PARAMS.get(name, ())
            if allowed is not None and value not in allowed:
                return False
        if full["sigma"] is None:  # estimated per (masked) plane: the registry's path
            return False
        groups.add((int(full["patch_size"]), int(full["patch_distance"])))
    return len(groups) == 1


def _batched_jobs(setup: _Setup, candidates: list[dict[str, Any]],
                  ) -> list[tuple[_NLMJob, list[int], np.ndarray]]:
    """One :class:`_NLMJob` per tile and mask offset for all candidates (NLM is invariant
    to the affine the boundary applies, so it runs in image units: h and σ scale with the
    data)."""
    from .processors.classic import _NOISE_FREE

    h, var, copy = [], [], []
    for params in candidates:
        full = {p.name: p.default for p in setup.spec.params}
        full.update(params)
        sigma, strength = float(full["sigma"]), float(full["strength"])
        h.append(0.8 * sigma * strength)
        var.append(sigma * sigma)
        copy.append(sigma / setup.span < _NOISE_FREE)
    patch, dist = int(full["patch_size"]), int(full["patch_distance"])
    owners = list(range(len(candidates)))
    out = []
    for job, target in _jobs(setup, candidates[0]):
        out.append((_NLMJob(job.masked, job.mask, tuple(h), tuple(var), tuple(copy), patch,
                            dist), owners, target))
    return out


def _evaluate(setup: _Setup, candidates: list[dict[str, Any]], executor: _Executor,
              on_done: Callable[[int, float], Any], counter: list[int], total: Callable[[], int],
              ) -> Generator[Progress, None, list[float]]:
    """Losses of ``candidates`` (mean squared error on the masked pixels, image units²)."""
    jobs: list[Any] = []
    owners: list[list[int]] = []
    targets = []
    if _nlm_candidates(setup, candidates):
        # split the candidates so that every worker has a share when there are few jobs
        runs = _batched_jobs(setup, candidates)
        parts = max(1, min(len(candidates), -(-executor.workers // len(runs))))
        for job, who, target in runs:
            for part in np.array_split(np.arange(len(who)), parts):
                if part.size:
                    jobs.append(_NLMJob(job.masked, job.mask,
                                        *(tuple(getattr(job, f)[i] for i in part)
                                          for f in ("h", "var", "copy")),
                                        job.patch_size, job.patch_distance))
                    owners.append([who[i] for i in part])
                    targets.append(target)
    else:
        for c, params in enumerate(candidates):
            for job, target in _jobs(setup, params):
                jobs.append(job)
                owners.append([c])
                targets.append(target)
    sse = np.zeros(len(candidates))
    count = np.zeros(len(candidates))
    offset = _loss_offset(setup)
    left = np.zeros(len(candidates), int)
    parts: list[dict[int, float]] = [{} for _ in candidates]
    for who in owners:
        left[who] += 1
    for i, pred in executor.run(jobs):
        if isinstance(jobs[i], _Job):
            pred = pred[None]
        target = targets[i].astype(np.float64).ravel()
        for c, p in zip(owners[i], pred, strict=True):
            diff = target - p.ravel()
            parts[c][i] = float(np.sum(diff * diff))
            count[c] += diff.size
            left[c] -= 1
            counter[0] += 1
            info = None
            if left[c] == 0:  # summed in job order: the same loss whatever finished first
                sse[c] = math.fsum(parts[c][j] for j in sorted(parts[c]))
                info = on_done(c, sse[c] / count[c] - offset)
            tot = max(total(), counter[0])
            yield Progress(counter[0], tot, counter[0] / tot, info)
    return list(sse / count - offset)


def _fixed_params(spec: ProcessorSpec, fixed: Any, tuned: list[str], noise_model: Any) -> dict[str, Any]:
    if fixed is None:
        fixed = {}
    if not isinstance(fixed, Mapping):
        raise TypeError(f"fixed must be a mapping of {spec.name}'s parameter names to values; "
                        f"got {type(fixed).__name__}")
    fixed = dict(fixed)
    if noise_model is not None:
        if "noise_model" not in {p.name for p in spec.params}:
            raise ValueError(f"{spec.name} does not take noise_model (its parameters: "
                             f"{_names(spec)}); leave noise_model=None")
        if "noise_model" in fixed and fixed["noise_model"] != noise_model:
            raise ValueError("noise_model is given twice, with different values (noise_model= "
                             "and fixed['noise_model'])")
        fixed["noise_model"] = noise_model
    both = sorted(set(fixed) & set(tuned))
    if both:
        raise ValueError(f"{', '.join(both)} is both tuned (params/grid) and fixed; give it "
                         "in one of them")
    spec.validate_params(fixed)  # unknown names and bad values, with the spec's messages
    return fixed


def iter_calibrate(
    image: Any,
    processor: str,
    *,
    params: Sequence[str] | str | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    roi: Any = None,
    channel_axis: int | None = None,
    noise_model: Any = None,
    stride: int = STRIDE,
    approximate_loss: bool | str = "auto",
    masking: str = "auto",
    search: str = "auto",
    workers: int | None = None,
    cancel: CancelLike = None,
) -> Generator[Progress, None, Calibration]:
    """:func:`calibrate` as a generator: yields :class:`~napari_restore.Progress` (``info`` is
    a :class:`CalibrationStep` when a candidate's loss is known) and returns the
    :class:`Calibration`. A widget runs it in a worker; setting ``cancel`` raises
    :class:`~napari_restore.Cancelled` and leaves nothing behind."""
    from . import __version__
    from .recipes import Recipe

    t0 = time.perf_counter()
    check_cancel(cancel)
    spec = _spec(processor)
    if grid is not None and not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a mapping of parameter names to candidate values; got "
                        f"{type(grid).__name__}")
    if grid is not None and len(grid) == 0:
        raise ValueError("grid is empty; give candidate values for at least one parameter "
                         "(or grid=None for the default grid)")
    if search not in SEARCHES:
        raise ValueError(f"search={search!r:.40} is not allowed; choose one of "
                         f"{', '.join(repr(m) for m in SEARCHES)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer or None; got {workers!r:.40}")
    tuned = _tuned_names(spec, params, grid, noise_model)
    fixed = _fixed_params(spec, fixed, tuned, noise_model)
    user_grid = {n: _check_values(spec, n, v) for n, v in (grid or {}).items()}
    methods = _methods(spec, fixed, user_grid, tuned)
    approximate_loss = _approximate(spec, approximate_loss, methods)
    setup = _prepare(image, spec, roi=roi, channel_axis=channel_axis, stride=stride,
                     approximate_loss=approximate_loss, masking=masking, methods=methods,
                     noise_model=fixed.get("noise_model"))
    axes: dict[str, tuple[Any, ...]] = {}
    for n in tuned:
        axes[n] = user_grid[n] if n in user_grid else _check_values(
            spec, n, default_grid(spec, n, setup.noise_sigma, setup.span))
    # every candidate in range for this image, before any work (the boundary's message)
    _check_range(setup, fixed, "fixed: ")
    for n in tuned:
        for v in axes[n]:
            _check_range(setup, {n: v}, f"grid[{n!r}]: ")
    names = list(axes)
    if search == "auto":
        size = math.prod(len(v) for v in axes.values())
        first = {**fixed, **{n: v[0] for n, v in axes.items()}}
        cheap = spec.name in CHEAP or _nlm_candidates(setup, [first])
        search = "full" if size <= FULL_GRID and (cheap or set(user_grid) == set(axes)) \
            else "refine"
    searcher = _Search(axes, full=search == "full")
    executor = _Executor(_default_workers() if workers is None else int(workers), cancel)
    per_candidate = len(setup.tiles) * len(setup.offsets)
    planned = [0]
    counter = [0]
    evaluated = 0

    def params_at(idx: tuple[int, ...]) -> dict[str, Any]:
        return {**fixed, **{n: axes[n][i] for n, i in zip(names, idx, strict=True)}}

    batch = searcher.first()
    while batch:
        if _is_cancelled(cancel):
            raise Cancelled("calibration stopped")
        # this level, and two candidates per combination for each halving still to come
        combos = len(list(searcher._combos())) if any(searcher.ordered) else 0
        halvings = int(math.log2(max(searcher.steps + [1])))
        planned[0] = counter[0] + (len(batch) + 2 * combos * halvings) * per_candidate
        cands = [params_at(idx) for idx in batch]

        def on_done(c: int, loss: float, batch: list = batch) -> CalibrationStep:
            searcher.losses[batch[c]] = loss
            return CalibrationStep({n: axes[n][i] for n, i in zip(names, batch[c], strict=True)},
                                   float(loss), batch[c], searcher.level)

        losses = yield from _evaluate(setup, cands, executor, on_done, counter, lambda: planned[0])
        for idx, loss in zip(batch, losses, strict=True):
            searcher.losses[idx] = loss
        evaluated += len(batch)
        batch = searcher.next()
    yield Progress(counter[0], counter[0], 1.0, None)
    losses_arr = searcher.losses
    best = tuple(int(i) for i in np.unravel_index(int(np.nanargmin(losses_arr)), losses_arr.shape))
    tuned_best = {n: axes[n][i] for n, i in zip(names, best, strict=True)}
    best_params = {**fixed, **tuned_best}
    recipe = Recipe(processor=spec.name, params=best_params, channel_axis=channel_axis,
                    version=__version__, source_dtype=np.dtype(_dtype_of(image)).name)
    losses_arr.setflags(write=False)
    return Calibration(
        processor=spec.name, best_params=best_params, best_loss=float(losses_arr[best]),
        grid=axes, losses=losses_arr, best_index=best, seconds=time.perf_counter() - t0,
        evaluations=evaluated, recipe=recipe, noise_sigma=setup.noise_sigma,
        region=tuple(setup.boxes), stride=setup.stride, approximate_loss=bool(approximate_loss),
        masking=setup.masking, fixed=fixed, search=search)


def _dtype_of(image: Any) -> np.dtype:
    return np.dtype(image.dtype) if hasattr(image, "dtype") else np.asarray(image).dtype


def calibrate(
    image: Any,
    processor: str,
    *,
    params: Sequence[str] | str | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    roi: Any = None,
    channel_axis: int | None = None,
    noise_model: Any = None,
    stride: int = STRIDE,
    approximate_loss: bool | str = "auto",
    masking: str = "auto",
    search: str = "auto",
    workers: int | None = None,
    cancel: CancelLike = None,
    progress: Callable[[Progress], None] | None = None,
) -> Calibration:
    """Choose a processor's parameters by a self-supervised (J-invariant) loss, without a
    clean reference.

    Parameters
    ----------
    image : ndarray
        One noisy plane ``(H, W)``, colour plane (with ``channel_axis``), or a volume for
        ``bm4d_denoise``; any real dtype. Not modified.
    processor : str
        Registry name: ``"classic_denoise"``, ``"bm3d_denoise"``, ``"bm4d_denoise"``,
        ``"restore_film_grain"`` (or any registered processor, with ``params`` and ``grid``).
    params : sequence of str, optional
        Parameters to tune. None: :data:`DEFAULT_PARAMS` (σ of classic, BM3D and BM4D; the
        film-grain denoiser), plus any named in ``grid``. Add ``"profile"`` for BM3D/BM4D
        to search the profile as a discrete axis.
    grid : dict, optional
        Candidate values per tuned parameter, in the image's own units (grey levels for
        integer images, values for float images). Default: the noise σ estimated on the
        region times 0.25 to 4 (:data:`SIGMA_FACTORS`) for intensity parameters; the
        choices of discrete ones.
    fixed : dict, optional
        The processor's other parameters (e.g. ``{"method": "tv_chambolle"}``).
    roi : None, "all", or one (start, stop) pair / slice per spatial axis
        The region to calibrate on. None: the whole image if it has at most
        :data:`REGION_PIXELS` pixels, else tiles covering its intensity range
        (:func:`default_region`); "all": the whole image, however large.
    channel_axis : int or None
        Colour axis (RGB/RGBA; alpha is ignored).
    noise_model : optional
        Passed to processors that take ``noise_model`` (BM3D, BM4D, and the others once
        they do); a ``ValueError`` for one that does not.
    stride : int
        Spacing of the masking grid.
    approximate_loss : bool or "auto"
        True: one mask (offset ``stride**d // 2``, scikit-image's default). False: every
        offset, so that every pixel is predicted once. "auto" (default): every offset for
        the cheap runs of :data:`ALL_OFFSETS` (classic non-local means and wavelet), one
        mask for the others.
    masking : {"auto", "interpolate", "interpolate+noise", "recorrupt"}
        How the loss hides each pixel's own noise (:data:`MASKINGS`): masked pixels filled
        with the mean of their neighbours (scikit-image's ``calibrate_denoiser``), or with
        that mean plus noise restoring the estimated noise level; or no mask, the run seeing
        the image with added noise and scored against the image with that noise subtracted
        (:data:`RECORRUPT`; white Gaussian noise, or a Poisson–Gaussian model's variance:
        :data:`RECORRUPT_PG`). "auto": "recorrupt" for BM3D/BM4D and the classic denoisers
        on white noise, and with a Poisson–Gaussian model for all but TV; on correlated
        noise the masked loss, "interpolate+noise" for BM3D/BM4D and classic wavelet and
        non-local means, "interpolate" for TV (also TV's with a Poisson–Gaussian model).
    search : {"auto", "refine", "full"}
        "refine": coarse to fine on ordered axes (every few values, then around the minimum;
        finds a local minimum on the grid). "full": every candidate. "auto" (default):
        "full" when the grid has at most :data:`FULL_GRID` candidates and either you gave
        the grid or the processor is cheap (:data:`CHEAP`: the classic denoisers, whose
        non-local means candidates are evaluated together), else "refine".
    workers : int, optional
        Parallel worker processes (None: the usable CPUs, at most 8; 1: in this process).
    cancel : threading.Event or callable, optional
        Stops the calibration (raises :class:`~napari_restore.Cancelled`), also in the middle
        of a library call.
    progress : callable, optional
        Receives :class:`~napari_restore.Progress`; ``info`` is a :class:`CalibrationStep`
        when a candidate's loss is known.

    Returns
    -------
    Calibration

    Notes
    -----
    The loss of a candidate is ``mean((y[J] - f(y_J)[J])²)`` over the masked pixels ``J``
    (and colour channels) of every tile, where ``y_J`` is ``y`` with the pixels of ``J``
    replaced by the mean of their axis neighbours and ``f`` the processor with the
    candidate's parameters. For noise independent from pixel to pixel this is the true MSE
    of ``f(y_J)`` on ``J`` plus the noise variance [1]_. Spatially correlated noise (film
    grain, interpolated data) leaks through the neighbours and biases it towards weaker
    smoothing.

    References
    ----------
    .. [1] Batson & Royer, "Noise2Self: Blind Denoising by Self-Supervision", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import calibrate
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0, 200, 64), (64, 1))
    >>> noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    >>> cal = calibrate(noisy, "classic_denoise", fixed={"method": "wavelet"}, workers=1)
    >>> sorted(cal.best_params)
    ['method', 'sigma']
    """
    return run_to_completion(iter_calibrate(
        image, processor, params=params, grid=grid, fixed=fixed, roi=roi,
        channel_axis=channel_axis, noise_model=noise_model, stride=stride,
        approximate_loss=approximate_loss, masking=masking, search=search, workers=workers,
        cancel=cancel,
    ), progress)


def self_supervised_loss(
    image: Any,
    processor: Any,
    params: Mapping[str, Any] | None = None,
    *,
    roi: Any = None,
    channel_axis: int | None = None,
    stride: int = STRIDE,
    approximate_loss: bool | str = "auto",
    masking: str = "auto",
    workers: int | None = 1,
    cancel: CancelLike = None,
) -> float:
    """The self-supervised loss of one parameter set (image units²): the quantity
    :func:`calibrate` minimises, for a sweep slice or a result layer's recipe.

    ``processor`` is a registry name (with ``params``) or a :class:`~napari_restore.Recipe`.
    """
    from .recipes import Recipe

    if isinstance(processor, Recipe):
        if params is not None:
            raise ValueError("give params= or a Recipe, not both")
        processor.check_input(image)  # as apply_recipe: the same units, or a clear error
        params = processor.params
        if channel_axis is None:
            channel_axis = processor.channel_axis
        processor = processor.processor
    spec = _spec(processor)
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping of {spec.name}'s parameter names to values "
                        f"(e.g. {{'sigma': 20.0}}); got {type(params).__name__}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer or None; got {workers!r:.40}")
    values = dict(params or {})
    spec.validate_params(values)
    check_cancel(cancel)
    methods = _methods(spec, values, {}, ())
    approximate_loss = _approximate(spec, approximate_loss, methods)
    setup = _prepare(image, spec, roi=roi, channel_axis=channel_axis, stride=stride,
                     approximate_loss=approximate_loss, masking=masking, methods=methods,
                     noise_model=values.get("noise_model"))
    _check_range(setup, values)
    executor = _Executor(_default_workers() if workers is None else int(workers), cancel)
    gen = _evaluate(setup, [values], executor, lambda c, loss: None, [0], lambda: 0)
    return float(run_to_completion(gen)[0])
