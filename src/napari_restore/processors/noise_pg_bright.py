"""Level sets on small bright objects, for a noise model the smooth windows cannot pin down.

Fluorescence images of puncta, beads or thin filaments hold their signal in objects a few
pixels wide. No window of :mod:`.noise_pg` (8×8 pixels) on them is smooth, so its level
sets cover only the background (and the objects' flanks, whose curvature the windows' Haar
details pick up as noise): the gain is not significant, or poorly determined and too high,
and the transform is skipped or misfitted where it matters most (beads at 10–20 photons:
2.8–4.9 dB below plain BM3D with its best σ; 128² filaments at 10–200 photons: the gain
+17…+97 %).

Such objects are blurred by the optics: their signal barely reaches a high-order difference
of the pixels. At every pixel,

- the noise is measured by ``L = [1 −2 1]ᵀ·[1 −2 1] / 6`` on its 3×3 neighbourhood, the
  second difference across rows of the second difference across columns. It is zero on any
  signal linear along the rows or along the columns (gradients, ramps, planes) and its
  response to a smooth signal grows as the fourth power of the frequency (a 2×2 Haar
  detail's as the second). Its noise variance is the mean of the 3×3 pixels' variances
  weighted by ``k²`` (``[1 4 1; 4 16 4; 1 4 1] / 36``), so the point measured is the same
  weighted mean of the pixels: ``(Σ k²·z, E[L²])`` is on the line ``a·E + b`` wherever the
  signal varies;
- what the signal still adds is taken out by a second scale: ``L₂``, the same difference
  with a spacing of 2 pixels, has the same noise variance and ``R2 = 2⁸`` times the response
  (in power) to a smooth signal, so ``(E[L₂²] − E[L²]) / (R2 − 1)`` is the signal part of
  ``E[L²]`` (at the brightest level set of Gaussian spots of σ 2 px at 200 photons, the
  signal was 39 % of ``E[L²]``). A level set where that
  part exceeds ``SIGNAL_SHARE`` of the total is left out (the ratio is only asymptotic);
- the pixel is selected (binned) by the mean of the 24 pixels of the 7×7 ring around it
  (their noise is independent of ``L``'s and ``L₂``'s: binning on it does not bias the level
  sets, as in :mod:`.noise_pg`).

Overlapping 3×3 neighbourhoods share noise: the values of ``L²`` over ``N`` pixels carry
the information of ``N / RHO2`` independent ones (``RHO2``: the sum of the squared
correlations of ``L``'s noise over the shifts), fewer where the level set mixes pixels of
unequal variance (the count is scaled by ``2·mean(L²)² / var(L²)``, 1 for one variance):
these are the counts the line is fitted with.

Texture is not smooth at the pixel scale and would pass as noise. It shows as a correlation
between ``L`` and ``L̄``, the mean ``L`` of the four non-overlapping 3×3 neighbourhoods
3 pixels away (independent noise: for pure noise 0, with a spread of ``CORR_SD / √N`` over
``N`` independent values, measured on Gaussian and Poisson noise). All the bright pixels
together may not show a positive one beyond ``CORR_T`` spreads (texture's, and a smooth
signal's; a negative one is the objects' own fine structure, which alternates in sign around
thin lines and spots), and a level set whose correlation of either sign is more than
``SIGNAL_SHARE`` of its variance and ``CORR_T`` spreads is left out. The caller
(:func:`.noise_pg._with_bright_objects`) refits the line and keeps the result only when the
gain is significant, the variance at the brightest points is at least ``RISE`` times that at
the smooth regions' median (a strongly signal-dependent noise, where the transform pays),
and — for a Poisson–Gaussian model of the smooth regions — the gain's standard error falls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Level sets of the bright pixels (equal counts) and the independent values each needs.
BINS = 12
MIN_VALUES = 96
#: A level set is left out when its signal part (second scale) or its neighbour correlation
#: exceeds this share of its variance.
SIGNAL_SHARE = 0.1
#: ... (the correlation: and this many spreads); the bright pixels together may not exceed
#: this many spreads of positive correlation.
CORR_T = 3.0
#: Spread of the neighbour correlation over the variance, times √(independent values), on
#: pure noise (Gaussian: 0.733, Poisson of mean 2: 0.740, of mean 0.3 with read noise: 0.702;
#: 200 planes of 128²).
CORR_SD = 0.75
#: The refitted model is kept when its variance at the brightest points is at least this
#: many times that at the smooth regions' median.
RISE = 2.0
#: Power ratio of ``L₂`` (spacing 2) to ``L`` on a smooth signal: (2²)² per axis pair, squared.
R2 = 256.0

#: The 3×3 noise measure (unit noise gain: the sum of its squares is 1) ...
_L = np.outer([1.0, -2.0, 1.0], [1.0, -2.0, 1.0]) / 6.0
#: ... the weights of the pixels' variances in its variance (they sum to 1) ...
_W = _L * _L
#: ... the same at a spacing of 2 pixels (5×5) ...
_L2 = np.zeros((5, 5))
_L2[::2, ::2] = _L
#: ... and the sum of the squared correlations of its noise over all shifts (stride 1).
RHO2 = float(np.sum(np.square(np.correlate([1.0, -2.0, 1.0], [1.0, -2.0, 1.0], "full")
                              / 6.0)) ** 2)
#: Pixels this close to the plane's border or to a clipped pixel (saturation, the data's
#: minimum) are left out: the ring (3), the neighbours' 3×3 (3 + 1).
_REACH = 4


def _ring() -> np.ndarray:
    ring = np.ones((7, 7))
    ring[1:-1, 1:-1] = 0.0
    return ring / ring.sum()


def _measures(plane: np.ndarray, above: float) -> tuple[np.ndarray, ...]:
    """Per usable pixel of one plane whose ring mean is above ``above``: its ring mean, its
    ``k²``-weighted mean, ``L``, ``L̄`` and ``L₂``."""
    from scipy import ndimage

    z = np.asarray(plane, dtype=np.float64)
    r = _REACH
    if z.ndim != 2 or min(z.shape) < 2 * r + 4:
        return (np.empty(0),) * 5
    select = ndimage.correlate(z, _ring(), mode="nearest")
    keep = np.zeros(z.shape, bool)
    keep[r:-r, r:-r] = select[r:-r, r:-r] > above
    clip = (z == z.min()) | (z == z.max())
    if clip.any():
        keep &= ~ndimage.maximum_filter(clip, 2 * r + 1, mode="constant", cval=False)
    det = ndimage.correlate(z, _L, mode="nearest")
    near = np.zeros_like(det)
    h, w = det.shape
    near[r:-r, r:-r] = (det[r - 3:h - r - 3, r:-r] + det[r + 3:h - r + 3, r:-r]
                        + det[r:-r, r - 3:w - r - 3] + det[r:-r, r + 3:w - r + 3]) / 4.0
    return (select[keep], ndimage.correlate(z, _W, mode="nearest")[keep], det[keep],
            near[keep], ndimage.correlate(z, _L2, mode="nearest")[keep])


def bright_points(planes: Sequence[np.ndarray] | np.ndarray,
                  above: float) -> list[tuple[float, float, float]]:
    """Level-set points ``(mean, noise variance, independent values)`` of the pixels of
    ``planes`` (2-D arrays in data units: one image, or the planes of a stack, pooled) whose
    ring mean is above ``above``; none when there are too few such pixels or they show
    texture (see the module docstring)."""
    if isinstance(planes, np.ndarray) and planes.ndim == 2:
        planes = [planes]
    parts = [_measures(p, above) for p in planes]
    select, own, det, near, det2 = (np.concatenate([q[i] for q in parts]) for i in range(5))
    count = det.size
    if count / RHO2 < MIN_VALUES:
        return []
    raw_all = float(np.mean(det * det))
    if not raw_all > 0:
        return []
    if float(np.mean(det * near)) > CORR_T * CORR_SD * raw_all / math.sqrt(count / RHO2):
        # texture among the bright pixels (a smooth correlation: positive); the objects' own
        # fine structure alternates in sign around thin lines and spots, and is left to the
        # level sets' two-sided check
        return []
    k = int(min(BINS, count / RHO2 // MIN_VALUES))
    edges = np.quantile(select, np.linspace(0.0, 1.0, k + 1))
    idx = np.clip(np.searchsorted(edges, select, side="right") - 1, 0, k - 1)
    points = []
    for i in range(k):
        s = idx == i
        n = float(s.sum()) / RHO2
        if n < MIN_VALUES // 2:
            continue
        sq = det[s] ** 2
        raw = float(np.mean(sq))
        shared = float(np.mean(det[s] * near[s]))
        if abs(shared) > max(SIGNAL_SHARE * raw, CORR_T * CORR_SD * raw / math.sqrt(n)):
            continue  # texture, or a signal shared with the neighbours, in this level set
        signal = (float(np.mean(det2[s] ** 2)) - raw) / (R2 - 1.0)
        if signal > SIGNAL_SHARE * raw:
            continue  # the objects' own signal is too large a part of L² here
        var = raw - max(signal, 0.0)
        spread = float(np.var(sq))
        if var > 0:
            if spread > 0:  # unequal variances in the level set: fewer values' worth
                n = min(n, n * 2.0 * raw * raw / spread)
            points.append((float(np.mean(own[s])), var, n))
    return points
