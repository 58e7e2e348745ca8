"""The luma AR coefficients of an AV1 film-grain table, fitted to a measured grain profile.

A profile's own AR model (Yule–Walker on its measured correlation, lags up to 3) is a poor
description of coarse grain for the AV1 decoder: beyond lag 3 it extrapolates (a bump in the
correlation at lags 5–7 for 1 px grain), its near-unit-root poles make it very sensitive to the
table's quantisation of the coefficients to steps of 2^−ar_coeff_shift (rounding alone
turned 1.55 px grain into 2.0 px), and the decoder does not run the AR process to a
stationary state: it filters one 73×82 template from a white border and cuts the 32×32
blocks from rows and columns 9–72. So the coefficients are fitted, as integers at the
table's ``ar_coeff_shift``, to what the *analysis* measures on the decoder's grain:

1. **Goals**: the profile's measured radial spectrum (``spectrum_power``, 17 points) and grain
   size (``grain_size_px``) — the statistics the analysis of the decoded grain reports.
2. **Model**: for integer coefficients q, the correlation of the AR process (an FFT of
   ``1 / |1 − Σ q_k 2^−shift e^{iω·d_k}|²`` on a 128×128 grid) gives, linearly, the
   spectrum the analysis would measure on detrended, Hann-windowed 32×32 blocks
   (:func:`_spectrum_map`, exact for a stationary process), and the correlation area that
   its size estimator reads (the sum within ``AREA_RADIUS`` minus the ``AREA_RING`` mean,
   mapped to σ_c by the same statistic of Gaussian-filtered noise). A coordinate descent
   over the integers (±1 steps) minimises the squared spectrum error (relative) plus the
   squared log size ratio.
3. **The decoder's templates**: for the coefficients found, the spec's templates for
   :data:`FIT_SEEDS` (batched, bit-exact, :func:`luma_templates`) are cut into the 32×32
   crops the decoder uses, and the analysis's own estimators (detrending, correlation area,
   radial spectrum) measure them. The model's goals are corrected by the ratio of what was
   measured to the profile's (damped), and the fit repeated: :data:`FIT_ITERATIONS` rounds;
   the coefficients whose templates measure closest to the profile are kept.

About 1–2 s per export. Used by :func:`.grain_av1.profile_to_params` for measured profiles
(17-point spectrum, not read from a table) of grain from :data:`MIN_SIZE` to
:data:`MAX_SIZE` px (finer grain is white enough for its own AR model; larger sizes are
beyond what the analysis measures).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

FIT_SEEDS = tuple(range(101, 101 + 64 * 997, 997))  # 64 fixed template seeds
FIT_ITERATIONS = 5
DAMPING = 0.8  # how much of the measured error each round corrects (in the log)
MIN_SIZE = 0.5  # px: below this the profile's own AR model is kept
MAX_SIZE = 5.0  # px: the analysis's largest calibrated size (beyond: a hand-made profile)
_N = 128  # FFT grid of the AR process's correlation
_SWEEPS = 10
# the decoder's block offsets (offsetY, offsetX: 0..15, × 2 samples) sampled per template
_OFFSETS = ((0, 0), (0, 15), (15, 0), (15, 15), (5, 5), (5, 10), (10, 5), (10, 10))


# -- the decoder's templates ------------------------------------------------------------------

def luma_templates(seeds: Any, shift: int, gss: int, coeffs: Any, bit_depth: int = 8
                   ) -> np.ndarray:
    """The spec's luma grain templates (B, 73, 82) int64 for each seed of ``seeds`` (lag 3):
    the same integers as :func:`.grain_av1_synth.generate_templates`, all seeds at once."""
    from . import grain_av1_synth as syn

    gmin, gmax = syn.grain_bounds(bit_depth)
    g = np.stack([syn._white(int(s), syn.LUMA_TEMPLATE, 12 - bit_depth + gss, True)
                  for s in seeds]).astype(np.int64)
    nb, hgt, wid = g.shape
    pos = syn._positions(3)
    above = [(dr, dc, int(c)) for (dr, dc), c in zip(pos, coeffs) if dr < 0 and c != 0]
    lc = {dc: int(c) for (dr, dc), c in zip(pos, coeffs) if dr == 0}
    c3, c2, c1 = lc.get(-3, 0), lc.get(-2, 0), lc.get(-1, 0)
    x0, x1 = 3, wid - 3
    half = 1 << (shift - 1)
    cols = range(x0, x1)
    for y in range(3, hgt):
        s = np.zeros((nb, x1 - x0), dtype=np.int64)
        for dr, dc, c in above:
            s += c * g[:, y + dr, x0 + dc:x1 + dc]
        row = g[:, y]
        if not (c1 or c2 or c3):
            row[:, x0:x1] = np.clip(row[:, x0:x1] + ((s + half) >> shift), gmin, gmax)
            continue
        s += half
        new = row.copy()
        for x in cols:  # without clipping first (the usual case), ...
            new[:, x] += (s[:, x - x0] + c3 * new[:, x - 3] + c2 * new[:, x - 2]
                          + c1 * new[:, x - 1]) >> shift
        if new.min() < gmin or new.max() > gmax:  # ... with it where a value reached a bound
            new = row.copy()
            for x in cols:
                v = new[:, x] + ((s[:, x - x0] + c3 * new[:, x - 3] + c2 * new[:, x - 2]
                                  + c1 * new[:, x - 1]) >> shift)
                new[:, x] = np.minimum(np.maximum(v, gmin), gmax)
        g[:, y] = new
    return g


def clipped_fraction(templates: np.ndarray, bit_depth: int = 8) -> float:
    """Share of the blocks' region (rows and columns 9–72) at the grain bounds."""
    from . import grain_av1_synth as syn

    gmin, gmax = syn.grain_bounds(bit_depth)
    reg = templates[:, 9:73, 9:73]
    return float(((reg <= gmin) | (reg >= gmax)).mean())


def crop_statistics(templates: np.ndarray) -> tuple[float, np.ndarray]:
    """(grain size, radial spectrum) the analysis measures on the 32×32 crops the decoder
    cuts from ``templates`` (its own detrending, correlation area and spectrum)."""
    from . import grain_analysis as G

    t = templates.astype(np.float64)
    crops = np.stack([t[:, 9 + 2 * a:41 + 2 * a, 9 + 2 * b:41 + 2 * b]
                      for a, b in _OFFSETS], axis=1).reshape(-1, 32 * 32)
    res = G._detrend(crops, G._plane_basis(32))
    v = res.var(axis=1)
    ok = v > 1e-12
    norm = (res[ok] / np.sqrt(v[ok])[:, None]).reshape(-1, 32, 32)
    if not len(norm):
        return 0.0, np.full(17, 1 / 17)
    _, area = G._measure(norm, 32)
    _, spec = G._radial_spectrum(norm, 32)
    return G.size_from_area(area, 32), spec


# -- the model: AR coefficients -> what the analysis measures ---------------------------------

@functools.lru_cache(maxsize=1)
def _basis() -> np.ndarray:
    """e^{iω·d_k} of the 24 lag-3 positions on the half FFT grid (24, N, N/2 + 1)."""
    from .grain_profile import ar_offsets

    fy = np.fft.fftfreq(_N)[:, None]
    fx = np.fft.rfftfreq(_N)[None, :]
    return np.stack([np.exp(2j * np.pi * (fy * dy + fx * dx)) for dy, dx in ar_offsets(3)])


def _correlation(denominator: np.ndarray) -> np.ndarray:
    """Normalised correlation, lags −31..31, of the AR process with this denominator."""
    spec = 1.0 / np.maximum(np.abs(denominator) ** 2, 1e-6)
    acf = np.fft.fftshift(np.fft.irfft2(spec, s=(_N, _N)))
    c = _N // 2
    return acf[c - 31:c + 32, c - 31:c + 32] / acf[c, c]


@functools.lru_cache(maxsize=1)
def _spectrum_map() -> np.ndarray:
    """L (17, 63, 63): the radial spectrum the analysis expects on detrended, Hann-windowed
    32×32 blocks of a stationary process of correlation ρ is Σ_d L[k, d] ρ(d) (before its
    normalisation to sum 1). Row f of G = DFT · window · detrending is a 32×32 image over
    the block's input samples; L[k] sums the autocorrelations of the rows in bin k."""
    from .grain_analysis import _plane_basis

    b = 32
    q = _plane_basis(b)
    m = np.hanning(b)
    win = np.outer(m, m).ravel()
    op = win[:, None] * (np.eye(b * b) - q @ q.T)  # output sample <- input sample
    g = np.fft.fft2(op.reshape(b, b, b * b), axes=(0, 1)).reshape(b * b, b, b)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(b), np.fft.fftfreq(b), indexing="ij")).ravel()
    idx = np.clip(np.rint(f * b).astype(int), 0, b // 2)
    power = np.abs(np.fft.fft2(g, s=(2 * b, 2 * b))) ** 2
    out = np.zeros((b // 2 + 1, 2 * b, 2 * b))
    for k in range(b // 2 + 1):
        sel = idx == k
        out[k] = np.fft.fftshift(np.fft.ifft2(power[sel].sum(axis=0)).real) / sel.sum()
    # lag d of sum_i g_i conj(g_(i+d)) sits at index b - d after the shift; ρ is symmetric
    return out[:, 1:, 1:][:, ::-1, ::-1]


def _ring_masks() -> tuple[np.ndarray, np.ndarray]:
    from .grain_analysis import AREA_RADIUS, AREA_RING

    d = np.arange(-31, 32)
    r = np.hypot(d[:, None], d[None, :])
    return r <= AREA_RADIUS, (r >= AREA_RING[0]) & (r <= AREA_RING[1])


def _area(rho: np.ndarray) -> float:
    inside, ring = _ring_masks()
    return float((rho[inside] - rho[ring].mean()).sum())


@functools.lru_cache(maxsize=1)
def _gauss_areas() -> tuple[np.ndarray, np.ndarray]:
    """(σ_c, area statistic) of Gaussian-filtered white noise (ndimage's kernel, truncated
    at 4 σ), for the model's size."""
    sig = np.linspace(0.05, 6.0, 239)
    areas = []
    d = np.arange(-31, 32)
    for s in sig:
        half = int(4 * s + 0.5)
        x = np.arange(-half, half + 1)
        k = np.exp(-0.5 * (x / s) ** 2)
        ac = np.correlate(k, k, mode="full")
        ac /= ac.max()
        c = len(ac) // 2
        r1 = np.array([ac[c + v] if abs(v) <= c else 0.0 for v in d])
        areas.append(_area(np.outer(r1, r1)))
    return sig, np.maximum.accumulate(np.asarray(areas))


def _model_size(rho: np.ndarray) -> float:
    sig, areas = _gauss_areas()
    return float(np.interp(_area(rho), areas, sig))


def _model_spectrum(rho: np.ndarray) -> np.ndarray:
    p = np.tensordot(_spectrum_map(), rho, 2)
    return p / max(float(p.sum()), 1e-20)


def _integer_fit(goal_spec: np.ndarray, goal_size: float, shift: int, start: np.ndarray
                 ) -> np.ndarray:
    """Integer coefficients at ``shift`` whose model spectrum and size are closest to the
    goals: coordinate descent in ±1 steps from ``start`` (rounded)."""
    basis = _basis()
    step = 1.0 / (1 << shift)
    q = np.clip(np.rint(np.asarray(start, dtype=np.float64) * (1 << shift)), -128, 127)
    den = 1 - np.tensordot(q * step, basis, 1)
    norm = float((goal_spec ** 2).sum())

    def cost(d: np.ndarray) -> float:
        rho = _correlation(d)
        p = _model_spectrum(rho)
        size = max(_model_size(rho), 1e-3)
        return float(((p - goal_spec) ** 2).sum() / norm) + float(np.log(size / goal_size)) ** 2

    best = cost(den)
    for _ in range(_SWEEPS):
        improved = False
        for k in range(len(q)):
            for sgn in (1, -1):
                while -128 <= q[k] + sgn <= 127:
                    trial = den - sgn * step * basis[k]
                    c = cost(trial)
                    if c >= best - 1e-12:
                        break
                    best, den, q[k], improved = c, trial, q[k] + sgn, True
        if not improved:
            break
    return q.astype(np.int64)


# -- the fit ----------------------------------------------------------------------------------

def _score(spec: np.ndarray, size: float, goal_spec: np.ndarray, goal_size: float) -> float:
    return (float(((spec - goal_spec) ** 2).sum() / (goal_spec ** 2).sum())
            + float(np.log(max(size, 1e-3) / goal_size)) ** 2)


def choose_gss(q: Any, shift: int, bit_depth: int, max_clipped: float,
               seeds: Any = FIT_SEEDS) -> tuple[int, np.ndarray]:
    """The smallest ``grain_scale_shift`` whose templates (for ``seeds``) clip at most
    ``max_clipped`` of the blocks' region, and those templates. The templates of shift 3 are
    made first; a smaller shift scales them by 2^(3 − shift) (up to rounding and clipping),
    which says where to start."""
    t3 = luma_templates(seeds, shift, 3, q, bit_depth)
    if clipped_fraction(t3, bit_depth) > max_clipped:
        return 3, t3
    gss = 3
    for g in (2, 1, 0):
        if clipped_fraction(t3 * (1 << (3 - g)), bit_depth) > max_clipped:
            break
        gss = g
    if gss == 3:
        return 3, t3
    t = luma_templates(seeds, shift, gss, q, bit_depth)
    while gss < 3 and clipped_fraction(t, bit_depth) > max_clipped:
        gss += 1
        t = luma_templates(seeds, shift, gss, q, bit_depth)
    return gss, t


def fit_luma_coeffs(profile: Any, shift: int, *, bit_depth: int = 8,
                    max_clipped: float = 0.001) -> tuple[np.ndarray, dict[str, float]]:
    """Integer lag-3 luma coefficients at ``ar_coeff_shift`` ``shift`` whose decoder
    templates the analysis measures closest to ``profile`` (module docstring), and
    ``{"size": ..., "spectrum_corr": ...}``: what the analysis measures on those templates'
    crops (over :data:`FIT_SEEDS`)."""
    goal_spec = np.asarray(profile.spectrum_power, dtype=np.float64)
    goal_spec = goal_spec / max(float(goal_spec.sum()), 1e-20)
    goal_size = float(profile.grain_size_px)
    spec_t, size_t = goal_spec.copy(), goal_size
    start = np.asarray(profile.ar_coeffs, dtype=np.float64)
    best: tuple[float, np.ndarray, float, np.ndarray] | None = None
    tried: set[tuple[int, ...]] = set()
    for _ in range(FIT_ITERATIONS):
        q = _integer_fit(spec_t, size_t, shift, start)
        key = tuple(int(v) for v in q)
        if key not in tried:
            tried.add(key)
            _, tmpl = choose_gss(q, shift, bit_depth, max_clipped)
            size, spec = crop_statistics(tmpl)
            score = _score(spec, size, goal_spec, goal_size)
            if best is None or score < best[0]:
                best = (score, q, size, spec)
        # correct the model's goals by what the decoder's templates gave (damped)
        spec_t = spec_t * (goal_spec / np.maximum(spec, 1e-9)) ** DAMPING
        spec_t = spec_t / spec_t.sum()
        size_t = size_t * (goal_size / max(size, 1e-3)) ** DAMPING
        start = q / float(1 << shift)
    _, q, size, spec = best
    corr = float(np.corrcoef(spec, goal_spec)[0, 1]) if np.std(goal_spec) > 0 else 1.0
    return q, {"size": float(size), "spectrum_corr": corr}
