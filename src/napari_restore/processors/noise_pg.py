"""Poisson–Gaussian noise: the model ``var(z) = a·E[z] + b`` and its estimation from one image.

Fluorescence, EM and low-light camera images carry photon shot noise (Poisson, variance
proportional to the signal) plus read noise (Gaussian): with a gain of ``a`` counts per
photon, a dark level (offset) ``p0`` and read noise ``σ_r`` counts,
``var(z) = a·E[z] + b`` with ``b = σ_r² − a·p0`` (signed). :func:`estimate_noise_model`
measures ``a`` and ``b`` from a single image, after Foi et al. (2008):

1. **Local pairs.** The image is cut into 2×2 blocks. Each block gives a block mean and its
   three Haar details, diagonal ``(z00 − z01 − z10 + z11)/2``, horizontal and vertical; each
   has the noise variance of the block as variance. The blocks form a checkerboard of two
   halves, A and B. Around each block, a window of ``WINDOW``×``WINDOW`` blocks gives, per
   half, a local mean ``M`` (of its block means) and a local noise variance ``v`` (mean square
   of the diagonal details, which a linear or a pure quadratic signal does not reach; the
   horizontal and vertical ones about their least-squares plane in the window, which
   removes a gradient and its linear change, i.e. a quadratic signal): the window's mean
   of ``a·E + b`` is ``a·M + b``, so the pairs stay on the model's line even where the
   signal varies inside the window.
2. **Select on one half, measure on the other.** Each window is used twice, once selected and
   binned by half A and measured by half B, once the other way round. The noise of the
   measuring half is independent of the selection, so the level sets' mean of ``M`` is the
   mean of ``E`` (binning on a noisy mean would spread a flat background's points along
   the axis — regression dilution — and flatten the fit), and their mean of ``v`` is
   ``a·E + b``, also for the skewed noise of a few photons (the skew couples a half's own
   mean and variance).
3. **Smooth windows.** A window is smooth when its block means vary no more than noise
   does about their least-squares plane (shading is no reason to leave a window out: it
   keeps the pairs on the line, and admitting it widens the intensity range the fit sees),
   or — when the windows so chosen show texture (``SHADING_T``) — about their mean: their
   residual variance, against the variance the noise gives a 4-pixel mean (first
   from the selecting half's detail energy, then — twice — from the model of the previous
   fit), is at most ``1 + SMOOTH_SPREAD`` standard deviations of a pure-noise window's; and,
   once a model is fitted, the selecting half's noise variance is at most ``1 +
   DETAIL_SPREAD`` standard deviations above the model's. Edges and texture are left out;
   so are windows touching pixels at the data's minimum or maximum (clipping).
4. **Level sets and robust fit.** The smooth windows are grouped by the selecting half's
   ``M`` into intervals: ``BINS`` equal-count and ``BINS`` equal-step intervals together
   (resolution where the windows are; sparse bright objects get points of their own),
   neighbouring sparse intervals merged until each holds ``MIN_PER_BIN`` windows. ``a`` and
   ``b`` are fitted by iteratively reweighted least squares (each point weighted by its count
   over the square of its predicted variance, as a sample variance's spread is), dropping
   points beyond ``OUTLIER`` standard errors once.

5. **Texture check.** White noise gives the diagonal and the horizontal/vertical details the
   same variance; texture that passed as smooth puts more in the horizontal/vertical ones.
   When, on the smooth windows (each in units of its predicted variance, so that the few
   brightest windows of sparse objects do not outweigh the rest), the diagonal details
   carry less than ``ISOTROPY`` of their variance (and ``ISO_T`` standard errors below 1),
   the image is refused as one without smooth regions (a fine texture at high
   signal-to-noise, e.g. grass) rather than fitted.

A model whose signal-dependent part is negligible (the variance changes by less than
``GAUSSIAN_SPREAD`` across the smooth regions' intensities, or ``a`` is not significant) is
``kind="gaussian"``: ``gain = 0`` and ``bias`` is the (constant) noise variance. A clearly
negative gain falls back to that with a warning. A constant image, or one without smooth
regions, is a ``ValueError`` — never a NaN model.

6. **Small bright objects.** A model measured on the smooth regions that is Gaussian, or
   whose gain is uncertain (``UNCERTAIN``), or that has few smooth windows above the
   background (``SPARSE``), is checked on the pixels above the smooth regions' median plus one
   noise std (:mod:`.noise_pg_bright`: beads, puncta and thin filaments leave no smooth window
   on them, so the level sets cover the background and the objects' flanks): a 3×3
   fourth-order difference of the pixels, which a blurred object's signal barely reaches,
   gives level sets there, unless they show texture; they replace the smooth windows' above
   that threshold, and the refitted line is kept when its gain is significant, its variance
   rises at least ``RISE`` times and (for a Poisson–Gaussian model) its gain's standard
   error falls.

All values are in the image's own units (grey levels for integer images, values for float
images): the estimate is made on the data values in float64, so integer data and float data
holding the same counts give the same model.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Side (in 2×2 blocks) of the window whose block means give the local expected value.
WINDOW = 4
#: A window is smooth when the variance of its block means is at most 1 + this many
#: standard deviations of a noise window's ...
SMOOTH_SPREAD = 1.0
#: ... and (once a model is fitted) its selecting half's detail variance at most 1 + this
#: many standard deviations above the model's.
DETAIL_SPREAD = 1.0
#: Parameters of the plane that the horizontal/vertical details (and, for the smoothness
#: test, the block means) are measured about in a window: mean and two slopes.
PLANE = 3
#: Intervals of the local expected value (level sets: equal counts and equal steps, merged)
#: and the windows each needs.
BINS = 30
MIN_PER_BIN = 24
#: At least this many smooth blocks are needed for a model.
MIN_BLOCKS = 200
#: Fit points beyond this many standard errors are dropped (one pass).
OUTLIER = 4.0
#: "gaussian" when a·(the 1st–99th percentile spread of the local means) is below this
#: fraction of the variance at the smooth regions' median, or the gain is below GAIN_T
#: standard errors.
GAUSSIAN_SPREAD = 0.05
GAIN_T = 2.0
#: A gain below −NEGATIVE_T standard errors (and a spread beyond GAUSSIAN_SPREAD) is reported.
NEGATIVE_T = 3.0
#: White noise gives the diagonal and the horizontal/vertical Haar details the same variance;
#: texture (spatially correlated signal) puts more in the horizontal/vertical ones. Below this
#: ratio (diagonal over horizontal/vertical, on the smooth windows; and ISO_T standard errors
#: below 1) the "noise" measured is largely signal: the image is refused as without smooth
#: regions (grass at peak 20–200 photons: 0.53–0.81, 5.8–15 standard errors below 1;
#: natural images at 256² — camera, coins, moon, chelsea, text, page — 0.91–1.02, at most
#: 3.2 standard errors below 1; fluorescence crops of 64–128²: 0.86–1.14, at most 1.8).
ISOTROPY = 0.87
ISO_T = 4.0
#: Shaded windows (block means on a plane) are admitted as smooth only while the smooth
#: windows show no texture: when the isotropy ratio is more than this many standard errors
#: below 1, smoothness is judged again on the block means' plain variance. The plane also
#: absorbs texture's coarse part (brick: ``a`` +78…+285 % with the plane, +3…+33 % without),
#: while shading carries the intensity range that pins ``a`` (moon blurred by 3 px, peak
#: 200, seeds 40–47: 7.5 % RMS with the plane, 17.2 % without).
SHADING_T = 2.0
#: Largest number of pixels read for one estimate (planes of a large stack are subsampled).
MAX_PIXELS = 1 << 23
#: A Poisson–Gaussian fit whose gain has a standard error above this fraction of it is also
#: checked on the bright objects (step 6): sparse objects leave the smooth windows little
#: intensity range (128² filaments at 10 photons: 13–16 %, and +18…+32 % off) ...
UNCERTAIN = 0.1
#: ... and so is one with fewer than this fraction of its smooth windows above the bright
#: threshold: the smooth regions are a sparse image's background and its objects' flanks,
#: whose curvature biases the gain however many windows there are (256² filaments at 10–20
#: photons: +12…+17 % with a standard error under 10 %). Natural images with bright smooth
#: regions keep 7–45 % of their windows there at 20–200 photons (camera, coins, astronaut,
#: chelsea; coins 30–43 %, whose bright pixels hold texture and edges that bias the refit);
#: those that keep fewer (moon, text, camera at 5 photons) are guarded by ``RISE`` and the
#: standard error test: none of the floors' or the validation's models changed.
SPARSE = 0.1

KINDS = ("poisson-gaussian", "gaussian")
_PARAM = re.compile(r"^poisson-gaussian\(gain=([^,()]+), bias=([^,()]+)\)$")


@dataclass(frozen=True)
class NoiseModel:
    """Poisson–Gaussian noise ``var(z) = gain·E[z] + bias``, in the image's own units.

    Attributes
    ----------
    gain : float
        ``a``: variance per unit of signal (counts per photon for a camera in counts);
        0 for Gaussian noise. Never negative.
    bias : float
        ``b``: the variance the model extrapolates to ``E[z] = 0``; signed (a dark level
        ``p0`` makes it ``σ_read² − a·p0``, often negative).
    kind : {"poisson-gaussian", "gaussian"}
        "gaussian" when the gain is negligible (``gain == 0``; ``bias`` is the variance).
    points : tuple of (mean, variance, count)
        The level-set points the model was fitted to (empty for a hand-given model).
    residual : float
        RMS relative deviation of the fitted points from the model (NaN-free; 0 if none).
    dtype : str or None
        dtype of the image it was measured on (information: the units of gain and bias).
    gain_se, bias_se : float
        Standard errors of the fitted ``a`` and ``b`` (from the fit's covariance, scaled
        by its misfit); 0 for a hand-given model. A large ``gain_se / gain`` says that
        the image does not pin the gain down: its intensities span too narrow a range
        for the variance's change to stand out of the measurement noise (see the
        "Noise models" docs page). For a "gaussian" model, ``gain_se`` is the error of the
        gain that was found negligible, and ``bias_se`` that of the constant variance.
    """

    gain: float
    bias: float
    kind: str = "poisson-gaussian"
    points: tuple[tuple[float, float, int], ...] = field(default=(), compare=False)
    residual: float = field(default=0.0, compare=False)
    dtype: str | None = field(default=None, compare=False)
    gain_se: float = field(default=0.0, compare=False)
    bias_se: float = field(default=0.0, compare=False)

    def __post_init__(self) -> None:
        for name in ("gain", "bias"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(f"NoiseModel {name} must be a number; got {value!r:.40}")
            if not math.isfinite(float(value)):
                raise ValueError(f"NoiseModel {name} must be finite; got {value!r:.40}")
            object.__setattr__(self, name, float(value))
        if self.gain < 0:
            raise ValueError(f"NoiseModel gain={self.gain:.6g} is negative; the gain (variance "
                             "per unit of signal) must be >= 0, in the image's own units")
        if self.kind not in KINDS:
            raise ValueError(f"NoiseModel kind={self.kind!r} is not one of {KINDS}")
        if self.kind == "gaussian" and self.gain != 0:
            raise ValueError("a NoiseModel of kind 'gaussian' has gain 0")
        if self.gain == 0 and self.bias <= 0:
            raise ValueError(f"NoiseModel bias={self.bias:.6g} with gain 0 gives no positive "
                             "noise variance; bias must be > 0 (the noise variance)")
        if self.gain == 0 and self.kind != "gaussian":
            object.__setattr__(self, "kind", "gaussian")
        pts = []
        for p in self.points:
            try:
                m, v, n = p
                pt = (float(m), float(v), int(n))
            except (TypeError, ValueError):
                raise ValueError("NoiseModel points must be (mean, variance, count) numbers; "
                                 f"got {p!r:.60}") from None
            if not (math.isfinite(pt[0]) and math.isfinite(pt[1])):
                raise ValueError(f"NoiseModel points must be finite; got {p!r:.60}")
            pts.append(pt)
        object.__setattr__(self, "points", tuple(pts))
        for name in ("residual", "gain_se", "bias_se"):
            res = getattr(self, name)
            if isinstance(res, bool) or not isinstance(res, int | float | np.number):
                raise TypeError(f"NoiseModel {name} must be a number; got {res!r:.40}")
            if not (math.isfinite(float(res)) and float(res) >= 0):
                raise ValueError(f"NoiseModel {name} must be finite and >= 0; got {res!r:.40}")
            object.__setattr__(self, name, float(res))
        if self.dtype is not None:
            try:
                object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
            except TypeError:
                raise TypeError("NoiseModel dtype must be None or a dtype name such as "
                                f"'uint16'; got {self.dtype!r:.40}") from None

    # -- the model ---------------------------------------------------------------------
    def variance(self, mean: Any) -> Any:
        """``gain·mean + bias`` (a float for a number, an array for an array)."""
        if np.ndim(mean) == 0:
            return self.gain * float(mean) + self.bias
        return self.gain * np.asarray(mean, dtype=np.float64) + self.bias

    def std(self, mean: Any) -> Any:
        """The noise standard deviation ``√max(gain·mean + bias, 0)``."""
        return np.sqrt(np.maximum(self.variance(mean), 0.0))

    @property
    def zero_point(self) -> float:
        """The value where the model's variance is zero (``-bias / gain``; -inf if gain 0)."""
        return -self.bias / self.gain if self.gain > 0 else -math.inf

    def check_range(self, low: float, high: float, name: str = "noise_model") -> None:
        """Refuse a model whose variance is negative at ``low`` or not positive at ``high``
        (the image's median and maximum: see :func:`check_model_for`). A variance of 0 at
        the median is pure Poisson counts, mostly zeros: ``NoiseModel(1, 0)`` at median 0."""
        for where, value in (("median", low), ("maximum", high)):
            var = self.variance(value)
            if not (var >= 0 if where == "median" else var > 0):
                raise ValueError(
                    f"{name}: the model's variance gain·E + bias = {self.gain:.6g}·"
                    f"{value:.6g} + {self.bias:.6g} = {var:.6g} is not positive at the "
                    f"image's {where} ({value:.6g}); gain and bias must be in the image's "
                    "own units (grey levels for integer images, values for float images)")

    @property
    def gain_rse(self) -> float:
        """``gain_se / gain``: the gain's relative standard error (0 if unknown or gain 0)."""
        return self.gain_se / self.gain if self.gain > 0 else 0.0

    def describe(self) -> str:
        """``"a=2.51 b=-253"`` (short, for status lines and layer names)."""
        if self.kind == "gaussian":
            return f"gaussian σ={math.sqrt(self.bias):.3g}"
        return f"a={self.gain:.3g} b={self.bias:.3g}"

    # -- the parameter form (recipes) ---------------------------------------------------
    def to_param(self) -> str:
        """The exact, JSON-safe form a ``noise_model=`` parameter (and a recipe) stores:
        ``"poisson-gaussian(gain=2.5, bias=-13.25)"`` (floats written exactly)."""
        return f"poisson-gaussian(gain={self.gain!r}, bias={self.bias!r})"

    @classmethod
    def from_param(cls, text: str) -> NoiseModel:
        """The model of a :meth:`to_param` string (``ValueError`` naming noise_model)."""
        match = _PARAM.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"noise_model={text!r:.80} is not a noise model; expected "
                             "'poisson-gaussian(gain=<a>, bias=<b>)'")
        try:
            gain, bias = float(match.group(1)), float(match.group(2))
        except ValueError:
            raise ValueError(f"noise_model={text!r:.80}: gain and bias must be numbers") from None
        try:
            return cls(gain, bias)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"noise_model: {exc}") from None

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"gain": self.gain, "bias": self.bias, "kind": self.kind,
                "points": [list(p) for p in self.points], "residual": self.residual,
                "dtype": self.dtype, "gain_se": self.gain_se, "bias_se": self.bias_se}

    @classmethod
    def from_dict(cls, data: Any) -> NoiseModel:
        if not isinstance(data, dict):
            raise TypeError(f"a NoiseModel must be a JSON object; got {type(data).__name__}")
        unknown = sorted(set(data) - {"gain", "bias", "kind", "points", "residual", "dtype",
                                   "gain_se", "bias_se"})
        if unknown:
            raise ValueError(f"NoiseModel has unknown key(s) {', '.join(map(repr, unknown))}")
        points = data.get("points", [])
        if not isinstance(points, list) or not all(
                isinstance(p, list | tuple) and len(p) == 3 for p in points):
            raise ValueError("NoiseModel points must be a list of [mean, variance, count]")
        return cls(gain=data.get("gain"), bias=data.get("bias"),
                   kind=data.get("kind", "poisson-gaussian"), points=tuple(map(tuple, points)),
                   residual=data.get("residual", 0.0), dtype=data.get("dtype"),
                   gain_se=data.get("gain_se", 0.0), bias_se=data.get("bias_se", 0.0))

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> NoiseModel:
        from .._jsonio import parse

        return cls.from_dict(parse(text, "noise model"))


def as_model(value: Any) -> NoiseModel | None:
    """A :class:`NoiseModel` from a model or its :meth:`~NoiseModel.to_param` string; None
    for anything else (the named choices "auto", "white", …)."""
    if isinstance(value, NoiseModel):
        return value
    if isinstance(value, str) and value.startswith("poisson-gaussian("):
        return NoiseModel.from_param(value)
    return None


# -- estimation ---------------------------------------------------------------------------

def estimate_noise_model(image: Any, *, channel_axis: int | None = None,
                         per_plane: bool = False) -> NoiseModel | list[NoiseModel]:
    """Estimate Poisson–Gaussian noise ``var(z) = a·E[z] + b`` from one image (or stack).

    Parameters
    ----------
    image : array-like
        2-D image, colour image (with ``channel_axis``; the channels share one model, as
        one camera's) or nD stack whose last two axes are the planes; any real dtype. Not
        modified. Data with a dark level (offset) is fine: it shows as a negative ``b``.
    channel_axis : int or None
        Colour axis; None for greyscale.
    per_plane : bool
        False (default): one model for the whole stack (one camera), from all its planes
        (up to ``MAX_PIXELS`` pixels, planes evenly subsampled). True: a list with one
        model per plane (leading axes flattened, in C order).

    Returns
    -------
    NoiseModel or list of NoiseModel
        In the image's own units (grey levels for integer data, values for float data).

    Raises
    ------
    ValueError
        For a constant image, or one without enough smooth regions to fit the model (also
        when the regions that pass as smooth are texture: see ``ISOTROPY``).

    References
    ----------
    .. [1] Foi, Trimeche, Katkovnik & Egiazarian, 'Practical Poissonian-Gaussian noise
       modeling and fitting for single-image raw-data', IEEE TIP 17(10), 2008.
    """
    from .._arrays import as_image, check_image

    arr = as_image(image)
    arr, cax = check_image(arr, channel_axis=channel_axis, plane_ndim=2, min_size=1,
                           check_finite=True)
    if cax is None:
        groups = np.asarray(arr)
        h, w = groups.shape[-2:]
        groups = groups.reshape((-1, 1, h, w))
    else:  # colour: the channels of a plane share one model (alpha is not image data)
        moved = np.moveaxis(np.asarray(arr), cax, -1)[..., :3]
        h, w = moved.shape[-3:-1]
        groups = np.moveaxis(moved, -1, -3).reshape((-1, moved.shape[-1], h, w))
    if h < 2 * WINDOW + 2 or w < 2 * WINDOW + 2:
        raise ValueError(f"image planes of {h}x{w} pixels are too small to estimate a noise "
                         f"model; at least {2 * WINDOW + 2}x{2 * WINDOW + 2} are needed")
    dtype = np.dtype(arr.dtype).name
    if per_plane:
        models = []
        for i, g in enumerate(groups):
            try:
                models.append(_estimate(list(g), dtype))
            except ValueError as exc:  # say which plane (leading axes flattened, C order)
                raise ValueError(f"plane {i} of {len(groups)} (leading axes flattened in C "
                                 f"order): {exc}") from None
        return models
    planes = groups.reshape((-1, h, w))
    n = planes.shape[0]
    keep = max(1, min(n, MAX_PIXELS // (h * w)))
    index = np.unique(np.linspace(0, n - 1, keep).round().astype(int))
    return _estimate([planes[i] for i in index], dtype)


def _estimate(planes: Sequence[Any], dtype: str | None) -> NoiseModel:
    stats = [_block_stats(np.asarray(p, dtype=np.float64)) for p in planes]
    lo = min(s["low"] for s in stats)
    hi = max(s["high"] for s in stats)
    if not hi > lo:
        raise ValueError(f"the image is constant ({lo:.6g}): it has no noise to model")
    scalars = ("low", "high", "inside", "clipped")
    # local means about the data's minimum: a·M + b of means near 1e12 (a large offset)
    # cancels in float64, and windows at the smoothness thresholds flipped
    for s in stats:
        s["MA"], s["MB"] = s["MA"] + (s["low"] - lo), s["MB"] + (s["low"] - lo)
    st = {k: np.concatenate([s[k] for s in stats]) for k in stats[0] if k not in scalars}
    if st["n"].size < MIN_BLOCKS:
        inside = sum(s["inside"] for s in stats)
        clipped = sum(s["clipped"] for s in stats)
        note = ""
        if inside >= MIN_BLOCKS > inside - clipped:  # why: clipping (e.g. counts with 0s)
            note = (f"; {100.0 * clipped / inside:.0f} % of the windows touch pixels at the "
                    f"data's minimum ({lo:.6g}) or maximum ({hi:.6g}), which are left out as "
                    "clipped (saturation, or counts with many zeros)")
        raise ValueError(_no_smooth(st["n"].size) + note)
    if not ((st["vA"] > 0) | (st["vB"] > 0)).any():
        raise ValueError("the image has no measurable noise (every fine-scale detail is "
                         "zero): no noise model can be fitted")
    model, fit, m, ratio, ratio_se = _select_and_fit(st, "Vp", dof=WINDOW * WINDOW - 3)
    if 1.0 - ratio > SHADING_T * ratio_se:  # texture among the windows: no shading allowance
        model, fit, m, ratio, ratio_se = _select_and_fit(st, "Vm", dof=WINDOW * WINDOW - 1)
    if ratio < ISOTROPY and 1.0 - ratio > ISO_T * ratio_se:
        raise ValueError(
            f"no smooth region to measure the noise on: on the {m.size} windows that pass as "
            f"smooth, the diagonal fine-scale details carry {ratio:.2f} of the horizontal/"
            f"vertical ones' variance (white noise: 1, below {ISOTROPY}: texture taken for "
            "noise, e.g. an in-focus image of fine texture at high signal-to-noise); give the "
            "noise model by hand (NoiseModel(gain, bias)) or use noise_model='white'")
    lo_x, hi_x = np.percentile(np.concatenate([st["MA"], st["MB"]]), [1, 99])
    fit.spread = max(fit.spread, float(hi_x - lo_x))
    # back to the data's values (the fit's means are about its minimum lo)
    fit.points[:, 0] += lo
    fit.median += lo
    if isinstance(model, _Raw):
        model = _Raw(model.gain, model.bias - model.gain * lo)
    result = _decide(model, fit, dtype)
    if result.points:
        above = _bright_threshold(result, fit)
        if (result.kind == "gaussian" or result.gain_se > UNCERTAIN * result.gain
                or _few_smooth_above(result, above)):
            result = _with_bright_objects(planes, result, fit, above, dtype)
    return result


def _bright_threshold(found: NoiseModel, fit: _Fit) -> float:
    """Step 6 looks above the smooth regions' median plus one noise standard deviation."""
    return fit.median + math.sqrt(max(float(found.variance(fit.median)), 0.0))


def _few_smooth_above(found: NoiseModel, above: float) -> bool:
    """Whether fewer than ``SPARSE`` of the smooth windows lie above the bright threshold
    ``above``: the smooth regions are the background of sparse objects (and their flanks)."""
    pts = np.asarray(found.points, dtype=np.float64)
    return float(pts[pts[:, 0] > above, 2].sum()) < SPARSE * float(pts[:, 2].sum())


def _with_bright_objects(planes: Sequence[Any], found: NoiseModel, fit: _Fit, above: float,
                         dtype: str | None) -> NoiseModel:
    """A Gaussian model, or a Poisson–Gaussian one with an uncertain gain or few smooth windows
    above the bright threshold (``UNCERTAIN``, ``SPARSE``), measured on the smooth regions,
    checked on the pixels above them (small bright objects, see :mod:`.noise_pg_bright`):
    above ``above`` (:func:`_bright_threshold`) the bright pixels' level sets replace the
    smooth windows' (on the objects' flanks those carry the curvature as noise), and the line
    is refitted. The refit is kept
    when its gain is significant, its variance rises at least ``RISE`` times, and (for a
    Poisson–Gaussian ``found``) its gain's standard error is smaller; else ``found``."""
    from .noise_pg_bright import RISE, bright_points

    own = [p for p in found.points if p[0] <= above]
    extra = bright_points(planes, above)
    if not extra or not own:
        return found
    pts = np.array(own + extra, dtype=np.float64)
    a, b, cov, residual = _line_fit(pts[:, 0], pts[:, 1], pts[:, 2])
    se = math.sqrt(max(float(cov[0, 0]), 0.0))
    at_median = a * fit.median + b
    top = a * float(pts[:, 0].max()) + b
    if not (a > 0 and se > 0 and a / se >= GAIN_T and at_median > 0
            and top >= RISE * at_median):
        return found
    if found.kind != "gaussian" and not se < found.gain_se:
        return found
    return NoiseModel(a, b, points=tuple(map(tuple, pts.tolist())), residual=residual,
                      dtype=dtype, gain_se=se, bias_se=math.sqrt(max(float(cov[1, 1]), 0.0)))


def _select_and_fit(st: dict[str, np.ndarray], spread: str,
                    dof: int) -> tuple[Any, _Fit, np.ndarray, float, float]:
    """Smooth windows by the block means' variance ``st[spread]`` (``dof`` degrees of
    freedom), fitted: pass 1 judges smoothness against the window's own detail energy, then
    (twice) against the model of the previous fit, which also bounds the detail energy of
    the selecting half. Returns the model, the fit, the measured means and the isotropy ratio
    and its standard error (see :func:`_pairs`)."""
    limit = 1.0 + SMOOTH_SPREAD * math.sqrt(2.0 / dof)  # of a noise window's spread
    model: Any = None
    for _ in range(3):
        s, m, d2, ratio, ratio_se = _pairs(st, model, limit, spread)
        model, fit = _fit(s, m, d2)
    return model, fit, m, ratio, ratio_se


def _pairs(st: dict[str, np.ndarray], model: Any, limit: float,
           spread: str = "Vm") -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """The smooth windows' (selection mean, measured mean, measured variance), both halves
    of the checkerboard taking each role once; the measuring halves' ratio of diagonal to
    horizontal/vertical detail variance (1 for white noise) and its standard error (each
    block counted in up to WINDOW² windows: the distinct details are about 1/WINDOW² of
    the windows' sums)."""
    sel, xs, ys = [], [], []
    diag = hv = 0.0
    n_diag = n_hv = 0.0
    for one, other in (("A", "B"), ("B", "A")):
        m = st["M" + one]
        if model is None:
            pred = st["v" + one]
            smooth = pred > 0
        else:
            pred = model.variance(m) if model.gain > 0 else np.full(m.shape, model.bias)
            sd = np.sqrt(2.0 / np.maximum(3.0 * st["n"] - 2.0 * PLANE, 1.0))
            smooth = (pred > 0) & (st["v" + one] <= (1.0 + DETAIL_SPREAD * sd) * pred)
        smooth &= st[spread] <= limit * np.maximum(pred, 0.0) / 4.0
        sel.append(m[smooth])
        xs.append(st["M" + other][smooth])
        ys.append(st["v" + other][smooth])
        n = st["n"][smooth]
        # each window's details in units of its predicted variance: raw sums are dominated
        # by the few brightest windows (sparse objects), and the count-based standard error
        # below would understate the ratio's spread (fluorescence crops: 0.67–1.25)
        unit = 1.0 / pred[smooth]
        diag += float((st["d" + other][smooth] * unit).sum())
        hv += float((st["h" + other][smooth] * unit).sum())
        n_diag += float(n.sum())
        n_hv += float((2.0 * n - 2.0 * PLANE).sum())
    ratio = (diag / n_diag) / (hv / n_hv) if diag > 0 and hv > 0 else 1.0
    k2 = WINDOW * WINDOW
    se = ratio * math.sqrt(2.0 * k2 / max(n_diag, 1.0) + 2.0 * k2 / max(n_hv, 1.0))
    return np.concatenate(sel), np.concatenate(xs), np.concatenate(ys), ratio, se


def _no_smooth(n: int) -> str:
    return (f"no smooth region to measure the noise on: {n} smooth 2x2 blocks found, at least "
            f"{MIN_BLOCKS} are needed (an image of texture and edges only, or one too "
            "small); give the noise model by hand (NoiseModel(gain, bias)) or use "
            "noise_model='white'")


def _block_stats(z: np.ndarray) -> dict[str, Any]:
    """Per window of ``WINDOW``×``WINDOW`` 2×2 blocks (windows fully inside the plane and free
    of clipped pixels only): the variance of all its block means ``Vm`` and their residual
    variance about the window's least-squares plane ``Vp``, and for each half of the
    checkerboard of blocks (``A``, ``B``) the mean of its block means ``M*`` (about the data's
    minimum) and its noise variance ``v*`` from the three Haar details (diagonal: mean
    square; horizontal and vertical: residual about their plane in the window, which removes
    a gradient and its linear change)."""
    from scipy import ndimage

    low, high = float(z.min()), float(z.max())
    mean, diag, hor, ver, clip = _haar_blocks(z, low, high)
    bad = ndimage.maximum_filter(clip, WINDOW, mode="constant", cval=True) if clip.any() else clip
    r = WINDOW // 2
    inside = np.zeros(mean.shape, bool)
    inside[r: mean.shape[0] - r, r: mean.shape[1] - r] = True
    ok = inside & ~bad
    k2 = WINDOW * WINDOW
    n_inside, n_clipped = int(inside.sum()), int((inside & bad).sum())

    def wsum(x: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(x, WINDOW, mode="reflect")[ok] * k2

    def corr(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:  # aligned with wsum
        return ndimage.correlate(x, kernel, mode="reflect")[ok]

    out: dict[str, Any] = {"low": low, "high": high, "inside": n_inside, "clipped": n_clipped}
    # the block means' variance about the data's minimum (a variance does not depend on it):
    # s2 − s1²/k2 of values near 1e9 cancels in float64 (data with a large offset)
    centred = mean - low
    s1, s2 = wsum(centred), wsum(centred * centred)
    # about the window's plane (a linear shading changes the mean of a·E + b linearly: the
    # window's pairs stay on the line, so a gradient is no reason to leave a window out)
    rx = _ramp()
    sx, sy = corr(centred, rx), corr(centred, rx.T)
    r2 = float(np.sum(rx * rx))
    out["Vm"] = np.maximum(s2 - s1 * s1 / k2, 0.0) / (k2 - 1)
    out["Vp"] = np.maximum(s2 - s1 * s1 / k2 - (sx * sx + sy * sy) / r2, 0.0) / (k2 - 3)
    ii, jj = np.indices(mean.shape)
    checker = (ii + jj) % 2 == 0
    for half, mask in (("A", checker), ("B", ~checker)):
        f = mask.astype(np.float64)
        n = wsum(f)
        e_diag = wsum(diag * diag * f)
        inv = _plane_gram(f, wsum, corr)
        e_hv = _about_plane(hor, f, inv, wsum, corr) + _about_plane(ver, f, inv, wsum, corr)
        energy = e_diag + e_hv
        out["d" + half], out["h" + half] = e_diag, e_hv
        out["M" + half] = wsum(centred * f) / n  # about the plane's minimum (see _estimate)
        out["v" + half] = np.maximum(energy, 0.0) / (3.0 * n - 2.0 * PLANE)
        out["n"] = n
    return out


def _haar_blocks(z: np.ndarray, low: float,
                high: float) -> tuple[np.ndarray, ...]:
    """The 2×2 blocks of the plane ``z`` (an odd last row/column dropped): their mean, their
    diagonal, horizontal and vertical Haar details (each with the block's noise variance as
    its variance), and whether the block touches ``low`` or ``high`` (clipping)."""
    h, w = (z.shape[0] // 2) * 2, (z.shape[1] // 2) * 2
    z = z[:h, :w]
    a, b, c, d = z[0::2, 0::2], z[0::2, 1::2], z[1::2, 0::2], z[1::2, 1::2]
    clip = ((z == low) | (z == high)).reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))
    return ((a + b + c + d) / 4.0, (a - b - c + d) / 2.0, (a + b - c - d) / 2.0,
            (a - b + c - d) / 2.0, clip)


def _ramp() -> np.ndarray:
    """The window's column coordinate about its centre (its transpose: the row's), aligned
    with ``ndimage.uniform_filter(·, WINDOW)``."""
    ramp = np.arange(WINDOW) - (WINDOW - 1) / 2.0
    return np.broadcast_to(ramp, (WINDOW, WINDOW))


def _plane_gram(f: np.ndarray, wsum: Any, corr: Any) -> np.ndarray:
    """Per window, the inverse ``(N, 3, 3)`` of the Gram matrix of (1, column, row) over the
    blocks of one half (``f``: 1 on its blocks), by the adjugate (symmetric 3×3)."""
    rx = _ramp()
    ry = rx.T
    g00, g01, g02 = wsum(f), corr(f, rx), corr(f, ry)
    g11, g22, g12 = corr(f, rx * rx), corr(f, ry * ry), corr(f, rx * ry)
    c00 = g11 * g22 - g12 * g12
    c01 = g02 * g12 - g01 * g22
    c02 = g01 * g12 - g02 * g11
    c11 = g00 * g22 - g02 * g02
    c12 = g01 * g02 - g00 * g12
    c22 = g00 * g11 - g01 * g01
    det = g00 * c00 + g01 * c01 + g02 * c02
    inv = np.stack([c00, c01, c02, c01, c11, c12, c02, c12, c22], axis=1).reshape(-1, 3, 3)
    return inv / det[:, None, None]


def _about_plane(x: np.ndarray, f: np.ndarray, inv: np.ndarray, wsum: Any,
                 corr: Any) -> np.ndarray:
    """Per window, the residual sum of squares of the details ``x`` of one half (``f``: 1 on
    its blocks) about their least-squares plane in the window (``PLANE`` parameters; ``inv``
    from :func:`_plane_gram`)."""
    rx = _ramp()
    xf = x * f
    r = np.stack([wsum(xf), corr(xf, rx), corr(xf, rx.T)], axis=1)
    return np.maximum(wsum(x * xf) - np.einsum("ni,nij,nj->n", r, inv, r), 0.0)


@dataclass
class _Fit:
    points: np.ndarray  # (K, 3): mean, variance, count
    cov: np.ndarray  # (2, 2) of (a, b)
    spread: float  # the intensity spread the variance changes over (see _estimate)
    median: float
    residual: float
    const: float  # the weighted constant fit (the Gaussian model's variance)


def _fit(s: np.ndarray, m: np.ndarray,
         d2: np.ndarray) -> tuple[NoiseModel | _Gauss, _Fit]:
    """Fit ``d2 ≈ a·E + b`` on level sets of the selecting half's means ``s``; each level
    set's point is the mean of the other half's means ``m`` and variances ``d2``."""
    if m.size < MIN_BLOCKS:
        raise ValueError(_no_smooth(int(m.size)))
    # level sets: equal counts (resolution where the windows are) and equal steps (sparse
    # bright objects get points of their own). Binning on the selecting half does not bias
    # the other half's means: their noise is independent of the selection.
    x_lo, x_hi = float(s.min()), float(s.max())
    edges = np.unique(np.concatenate([np.quantile(s, np.linspace(0, 1, BINS + 1)),
                                      np.linspace(x_lo, x_hi, BINS + 1)]))
    nb = max(len(edges) - 1, 1)
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, nb - 1)
    # sparse neighbouring intervals are merged until each holds MIN_PER_BIN windows (the
    # mean of a·E + b over a group is a·mean(E) + b: merging keeps the points on the line)
    per = np.bincount(idx, minlength=nb)
    group = np.zeros(nb, int)
    g, held = 0, 0
    for i in range(nb):
        group[i] = g
        held += per[i]
        if held >= MIN_PER_BIN:
            g, held = g + 1, 0
    if held and g > 0:
        group[group == g] = g - 1  # a short tail joins the last full group
    nb = int(group.max()) + 1
    idx = group[idx]
    counts = np.bincount(idx, minlength=nb).astype(float)
    sx = np.bincount(idx, m, minlength=nb)
    sy = np.bincount(idx, d2, minlength=nb)
    good = counts >= MIN_PER_BIN
    if not good.any():
        raise ValueError(_no_smooth(int(m.size)))
    n = counts[good]
    x = sx[good] / n
    y = sy[good] / n
    pts = np.stack([x, y, n], axis=1)
    x05, xmed, x95 = np.percentile(m, [5, 50, 95])
    const = float(np.sum(n * y / np.maximum(y, 1e-300) ** 2) /
                  np.sum(n / np.maximum(y, 1e-300) ** 2)) if (y > 0).any() else 0.0
    if len(x) < 2 or np.ptp(x) <= 0:
        g = _Gauss(float(np.sum(n * y) / np.sum(n)))
        return g, _Fit(pts, np.zeros((2, 2)), float(x95 - x05), float(xmed), 0.0, g.bias)
    a, b, cov, residual = _line_fit(x, y, n)
    model: NoiseModel | _Gauss = _Raw(a, b)
    return model, _Fit(pts, cov, float(x95 - x05), float(xmed), residual, const)


def _line_fit(x: np.ndarray, y: np.ndarray,
              n: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """``y ≈ a·x + b`` on level-set points (mean ``x``, variance ``y``, count ``n``) by
    iteratively reweighted least squares (weights ``n / (2·pred²)``, a sample variance's
    spread), one pass dropping points beyond ``OUTLIER`` standard errors. Returns ``a``,
    ``b``, their covariance (scaled by the misfit) and the RMS relative residual."""
    keep = np.ones(len(x), bool)
    a, b = 0.0, float(np.mean(y))
    cov = np.zeros((2, 2))
    # the means' column about their smallest, in units of a power of two near their largest
    # distance from it, so the normal equations' conditioning depends neither on the data's
    # units nor on its offset: values of 1e9 (or 1e-12, or 1e12 ± 100) made ata numerically
    # rank 1 and gave a Gaussian model
    x0 = float(np.min(x))
    unit = float(np.ldexp(1.0, int(np.frexp(np.max(x - x0))[1])))
    xs = (x - x0) / unit
    bc = b  # the variance at x0
    for it in range(8):
        pred = np.maximum(a * (x - x0) + bc, 1e-12 * max(float(np.max(y)), 1e-300))
        wts = n / (2.0 * pred**2)
        A = np.stack([xs, np.ones_like(x)], axis=1)
        wk = wts * keep
        ata = A.T @ (A * wk[:, None])
        if np.linalg.matrix_rank(ata) < 2:
            break
        sol = np.linalg.solve(ata, A.T @ (wk * y))
        a, bc = float(sol[0]) / unit, float(sol[1])
        b = bc - a * x0
        z = (y - (a * (x - x0) + bc)) * np.sqrt(wts)
        dof = max(int(keep.sum()) - 2, 1)
        chi = float(np.sum((z[keep]) ** 2)) / dof
        back = np.array([[1.0 / unit, 0.0], [-x0 / unit, 1.0]])  # (a, b) from the solution
        cov = back @ np.linalg.inv(ata) @ back.T * max(chi, 1.0)
        if it == 4 and keep.sum() > 4:  # one robust pass: drop far outliers
            keep = np.abs(z) <= OUTLIER * math.sqrt(max(chi, 1.0))
            if keep.sum() < 2:
                keep[:] = True
    pred = a * (x - x0) + bc
    rel = (y - pred) / np.maximum(np.abs(pred), 1e-300)
    residual = float(np.sqrt(np.sum(n * rel**2) / np.sum(n)))
    return a, b, cov, residual


@dataclass(frozen=True)
class _Raw:
    """A fitted (a, b) not yet checked (a may be negative)."""

    gain: float
    bias: float

    def variance(self, mean: Any) -> Any:
        return self.gain * mean + self.bias


@dataclass(frozen=True)
class _Gauss:
    bias: float
    gain: float = 0.0

    def variance(self, mean: Any) -> Any:
        return np.full(np.shape(mean), self.bias) if np.ndim(mean) else self.bias


def _decide(model: Any, fit: _Fit, dtype: str | None) -> NoiseModel:
    """The final model: Poisson–Gaussian, or Gaussian when the gain is negligible."""
    pts = tuple(map(tuple, fit.points.tolist()))
    a, b = model.gain, model.bias
    se = bias_se = 0.0
    if isinstance(model, _Raw):
        se = math.sqrt(max(float(fit.cov[0, 0]), 0.0))
        bias_se = math.sqrt(max(float(fit.cov[1, 1]), 0.0))
        at_median = a * fit.median + b
        # (a == 0 with no error estimate: no signal dependence; inf·0 would be NaN)
        effect = a * fit.spread / at_median if at_median > 0 else math.copysign(
            math.inf, a) if a else 0.0
        t = a / se if se > 0 else math.copysign(math.inf, a) if a else 0.0
        if a > 0 and t >= GAIN_T and effect >= GAUSSIAN_SPREAD and at_median > 0:
            return NoiseModel(a, b, points=pts, residual=fit.residual, dtype=dtype,
                              gain_se=se, bias_se=bias_se)
        if a < 0 and t <= -NEGATIVE_T and -effect >= GAUSSIAN_SPREAD:
            warnings.warn(
                f"the noise model's fitted gain is negative (a={a:.3g}, {-t:.1f} standard "
                "errors below 0: the noise falls with the signal, e.g. through clipping or "
                "earlier processing); falling back to white Gaussian noise", stacklevel=3)
    var = fit.const if fit.const > 0 else float(np.max(fit.points[:, 1]))
    if not var > 0:
        raise ValueError("the image has no measurable noise on its smooth regions: no noise "
                         "model can be fitted")
    rel = (fit.points[:, 1] - var) / var
    n = fit.points[:, 2]
    residual = float(np.sqrt(np.sum(n * rel**2) / np.sum(n)))
    # the constant's error: a sample variance's spread (2·var²/count) over the points,
    # scaled by their misfit as the line's covariance is
    chi = float(np.sum(n * rel**2 / 2.0)) / max(len(n) - 1, 1)
    var_se = var * math.sqrt(2.0 * max(chi, 1.0) / float(np.sum(n)))
    return NoiseModel(0.0, var, kind="gaussian", points=pts, residual=residual, dtype=dtype,
                      gain_se=se, bias_se=var_se)


def check_model_for(model: NoiseModel, image: Any, *, channel_axis: int | None = None,
                    name: str = "noise_model") -> None:
    """Refuse a (hand-given) model whose variance is not positive over the image's range:
    negative at its median, or not positive at its maximum. Values darker than the model's zero point (read
    noise puts a few counts below the dark level) are where the transform clamps to 0."""
    arr = np.asarray(image)
    if channel_axis is not None and arr.ndim >= 3:
        arr = np.moveaxis(arr, channel_axis, -1)[..., : min(3, arr.shape[channel_axis])]
    vals = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
    if vals.size == 0:
        return
    model.check_range(float(np.median(vals)), float(np.max(vals)), name)
