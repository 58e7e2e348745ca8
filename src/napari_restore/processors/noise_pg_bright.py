"""Level sets on small bright objects, for a noise model the smooth windows cannot pin down.

Fluorescence images of puncta, beads or thin filaments hold their signal in objects a few
pixels wide. No window of :mod:`.noise_pg` (8×8 pixels) on them is smooth, so its level
sets cover only the background, the gain is not significant and the model comes out
Gaussian: the transform is then skipped where it matters most (beads at 10–20 photons:
2.8–4.9 dB below plain BM3D with its best σ).

Such objects are blurred by the optics: their signal barely reaches the finest diagonal Haar
detail ``(z00 − z01 − z10 + z11)/2`` of a 2×2 block, and what does reach it varies slowly
from block to block. Here every block above the smooth level sets gets

- a selecting value, the mean of its four neighbouring blocks' means (their noise is
  independent of the block's own: binning on it does not bias the level sets, as in
  :mod:`.noise_pg`), and the block's own mean as the measured mean;
- a noise variance ``d² − d·d̄``: its diagonal detail squared, less the product with the
  mean diagonal detail of its four neighbours. The neighbours' noise is independent, so
  the product's expectation is the signal part that the block shares with them: what a
  smooth signal adds to ``d²`` is taken out.

Texture is not smooth at the block scale and would pass as noise. It shows as a correlation
between neighbouring details (for pure noise: 0, with a spread of ``CORR_SD / √N`` over
``N`` blocks, measured on Gaussian and Poisson noise): all the bright blocks together must
show none beyond ``CORR_T`` spreads, and a level set whose correlation is more than
``SIGNAL_SHARE`` of its variance (and ``CORR_T`` spreads) is left out. The caller
(:func:`.noise_pg._estimate`) refits the line on both sets of points and keeps the result
only when the gain is significant and the variance at the brightest points is at least
``RISE`` times that at the smooth regions' median: a strongly signal-dependent noise, where
the transform pays. Pure Gaussian noise on textured images (brick, rocket, coffee; 17 images
× 5 σ × float/uint8) found Gaussian before stays so.
"""

from __future__ import annotations

import math

import numpy as np

from .noise_pg import haar_blocks

#: Level sets of the bright blocks (equal counts) and the blocks each needs.
BINS = 12
MIN_BLOCKS = 96
#: A level set is left out when its neighbour correlation exceeds this share of its variance.
SIGNAL_SHARE = 0.1
#: ... and this many spreads; the bright blocks together may not exceed it either way.
CORR_T = 3.0
#: Spread of the neighbour correlation over the variance, times √(blocks), on pure noise
#: (Gaussian: 0.659, Poisson of mean 2: 0.683, 200 planes of 256²).
CORR_SD = 0.7
#: The refitted model is kept when its variance at the brightest points is at least this
#: many times that at the smooth regions' median.
RISE = 2.0


def _four(x: np.ndarray) -> np.ndarray:
    """Mean of the four edge neighbours, for the interior of ``x``."""
    return (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:]) / 4.0


def bright_points(plane: np.ndarray, above: float) -> list[tuple[float, float, int]]:
    """Level-set points ``(mean, noise variance, blocks)`` of the 2×2 blocks of ``plane``
    (float64, data units) whose neighbours' mean is above ``above``; none when there are too
    few such blocks or they show texture (see the module docstring)."""
    z = np.asarray(plane, dtype=np.float64)
    if min(z.shape) < 6:
        return []
    mean, diag, _, _, clip = haar_blocks(z, float(z.min()), float(z.max()))
    ok = ~(clip[1:-1, 1:-1] | (_four(clip.astype(np.float64)) > 0))
    select = _four(mean)[ok]
    own, det, near = mean[1:-1, 1:-1][ok], diag[1:-1, 1:-1][ok], _four(diag)[ok]
    keep = select > above
    if int(keep.sum()) < MIN_BLOCKS:
        return []
    select, own, det, near = select[keep], own[keep], det[keep], near[keep]
    raw_all = float(np.mean(det * det))
    if not raw_all > 0:
        return []
    if abs(float(np.mean(det * near))) > CORR_T * CORR_SD * raw_all / math.sqrt(det.size):
        return []  # texture among the bright blocks: their details are not noise
    k = int(min(BINS, det.size // MIN_BLOCKS))
    edges = np.quantile(select, np.linspace(0.0, 1.0, k + 1))
    idx = np.clip(np.searchsorted(edges, select, side="right") - 1, 0, k - 1)
    points = []
    for i in range(k):
        s = idx == i
        n = int(s.sum())
        if n < MIN_BLOCKS // 2:
            continue
        raw = float(np.mean(det[s] ** 2))
        shared = float(np.mean(det[s] * near[s]))
        if shared > max(SIGNAL_SHARE * raw, CORR_T * CORR_SD * raw / math.sqrt(n)):
            continue  # a smooth signal large enough to matter in this level set
        var = raw - shared
        if var > 0:
            points.append((float(np.mean(own[s])), var, n))
    return points
