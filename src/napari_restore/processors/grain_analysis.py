"""Film-grain analysis on flat regions: NLF, power spectrum, grain size, mono/colour, AR model.

Method (after the AV1 film-grain model, libaom ``noise_model.c``; our own code). The numbers
live in the named constants below; this text names them rather than repeating their values.

1. **Flat blocks.** The image (the luma, i.e. the channel mean, for colour) is cut into
   ``BLOCK``-sized square blocks (half-overlapping on small images). In each block a
   polynomial of order ``DETREND_ORDER`` is fitted by least squares and removed; what remains
   is grain plus texture. A block is *flat* when (a) the structure tensor of the lightly
   smoothed block is not oriented (coherence ``(λ1-λ2)/(λ1+λ2) < COHERENCE_MAX``: edges and
   lines are oriented, grain is not) and (b) its residual variance is at most *k* × the lower
   envelope of the blocks of similar brightness: the ``ENVELOPE_QUANTILE`` quantile in each of
   ``N_BINS`` intensity bins, allowed to change by at most ``ENVELOPE_STEP`` (in std) from one
   bin to the next, since texture only ever adds variance to the grain's. *k* comes from the
   spread of grain-only block variances at a first size estimate (see ``analyze_working``).
2. **Grain correlation.** The residuals of the flat blocks, each normalised to unit variance,
   give the grain autocorrelation (FFT, unbiased by overlap counts). Removing the fitted
   polynomial lowers every lag by about the same amount; that offset is read off the outer
   quarter of the lag window and added back, which also gives the factor that corrects the
   measured variances for the detrending.
3. **NLF.** Per flat block: mean luma intensity and grain variance (corrected for the
   detrending, see 4); every one of the ``N_BINS`` intensity bins with at least
   ``MIN_BLOCKS_PER_BIN`` flat blocks gives one point of the piecewise-linear scaling function
   (as AV1): (mean intensity of its blocks, median grain std).
4. **Grain size** ``grain_size_px``: σ_c (pixels) of the Gaussian filter whose filtered
   white noise has the same correlation as the grain. The statistic is the local correlation
   area ``Σ_{|d|≤AREA_RADIUS} (ρ(d) − ρ̄_ring)``, measured from the mean correlation on the
   ring ``AREA_RING`` (which cancels slowly varying content and the detrending bias); it is
   mapped to σ_c by a calibration of this very estimator on Gaussian-filtered white noise of
   known σ_c (fixed seed), which also gives the factor that corrects block variances for the
   detrending.
5. **Whiteness.** Image content leaking into the flat blocks inflates the correlation area
   (white noise on a detailed photo read as film grain). A second, content-robust test
   (:func:`_hf_statistic`) compares the highest frequencies with the middle ones in the
   ``HF_BLOCK``-sized blocks with the least content; when it finds white noise (calibrated
   σ_c below ``SIZE_DIGITAL``, carrying at least ``HF_LEVEL`` of the variance), the grain is
   white: its size is the smaller of the two estimates and its AR model is white.
6. **Mono/colour.** Mean correlation between the channels' grains in the flat blocks; below
   0.5 the grain is "colour" (independent dye layers), else "mono".
7. **AR model** (lag 3, 24 coefficients as AV1) by the Yule–Walker equations of that
   autocorrelation; its spectrum is the grain's PSD for BM3D and synthesis.
8. **Periodicity.** The masked, normalised autocorrelation of the high-passed grain over the
   flat area (up to a 512×512 crop); its largest value outside the central lobe is
   ``periodic_peak``.

The class (:func:`classify`) follows from the grain std in the flattest quarter of the flat
blocks (``MINIMAL_SIGMA``), ``periodic_peak`` (``PERIODIC_PEAK``) and the size
(``SIZE_DIGITAL``, ``SIZE_FINE``, ``SIZE_MEDIUM``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .._arrays import SingleImage, companion_image, single_image
from .grain_profile import GrainProfile, ar_offsets

BLOCK = 32
N_BINS = 14
MIN_BLOCKS_PER_BIN = 2
MAX_STAT_BLOCKS = 384
COHERENCE_MAX = 0.35
ENVELOPE_QUANTILE = 0.25
ENVELOPE_STEP = 1.3
DETREND_ORDER = 2
AREA_RADIUS = 8.0
AREA_RING = (10.0, 13.0)
# whiteness test (digital noise vs grain), see _hf_statistic
HF_BLOCK = 16
HF_MAX_BLOCKS = 4096
HF_SELECT = 0.25
HF_QUANTILE = 0.75
HF_LOW = 0.22  # cycles/pixel
HF_MID = (0.30, 0.45)
HF_HIGH = 0.55
HF_LEVEL = 0.25  # white noise must carry at least this share of the cleanest blocks' variance
PERIODIC_FINE_SIGMA = 0.6  # high-pass (px) of the periodicity test for white grain

# Class boundaries (documented in docs/processors/restore_film_grain.md).
MINIMAL_SIGMA = 0.005  # grain std below 0.5 % of the value range
PERIODIC_PEAK = 0.4
SIZE_DIGITAL = 0.4
SIZE_FINE = 1.0
SIZE_MEDIUM = 2.0


# -- working-array helpers --------------------------------------------------------------------

def working_image(image: Any, channel_axis: int | None, name: str = "image",
                  scale: Any = None) -> SingleImage:
    """One 2-D (or colour) image through the single-image boundary (float64 working array).

    ``scale`` (the scale of the image this one belongs with, e.g. for a denoised version) is
    used when this image has the same dtype; otherwise its own dtype's scale applies.
    """
    # detect_bits: 12-bit data in uint16 are measured on 0-4095, as restore_film_grain and
    # bm3d do (on 0-65535 their grain was "minimal" and the NLF one bin)
    return single_image(image, channel_axis=channel_axis, name=name, min_size=32, scale=scale,
                        detect_bits=True,
                        work_dtype=np.float64)


def _channels(work: np.ndarray) -> np.ndarray:
    """(C, H, W) view of a working plane."""
    return work[None] if work.ndim == 2 else np.moveaxis(work, -1, 0)


@functools.lru_cache(maxsize=4)
def _plane_basis(b: int) -> np.ndarray:
    """Orthonormal basis (b², k) of the low-order polynomial removed from each block."""
    y, x = np.mgrid[0:b, 0:b].astype(np.float64)
    x = (x.ravel() - x.mean()) / b
    y = (y.ravel() - y.mean()) / b
    cols = [np.ones(b * b), x, y]
    if DETREND_ORDER >= 2:
        cols += [x * x, x * y, y * y]
    q, _ = np.linalg.qr(np.stack(cols, axis=1))
    return q


def _block_view(img: np.ndarray, b: int, stride: int) -> np.ndarray:
    win = np.lib.stride_tricks.sliding_window_view(img, (b, b))[::stride, ::stride]
    return win.reshape(-1, b * b)


def _detrend(blocks: np.ndarray, q: np.ndarray) -> np.ndarray:
    return blocks - (blocks @ q) @ q.T


def _measure(norm: np.ndarray, b: int) -> tuple[np.ndarray, float]:
    """(offset-corrected correlation ρ, measured correlation area) of normalised residuals."""
    cov, _ = _correct_offset(_autocorr(norm, b))
    rho = cov / max(cov[b // 2, b // 2], 1e-20)
    hh = b // 2
    yy, xx = np.mgrid[-hh:hh + 1, -hh:hh + 1]
    r = np.hypot(yy, xx)
    ring = float(rho[(r >= AREA_RING[0]) & (r <= AREA_RING[1])].mean())
    return rho, float((rho[r <= AREA_RADIUS] - ring).sum())


@functools.lru_cache(maxsize=4)
def _calibration(b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Calibrate the block estimator on Gaussian-filtered white noise of known σ_c.

    Returns ``(sigma_c, measured_area, variance_factor, rho_bias)``: what the estimator
    measures for each σ_c, the factor from detrended-block variance to true variance, and the
    correlation the detrending removes at each lag (true − measured). Deterministic (fixed
    seed); about 0.3 s once per block size.
    """
    from scipy import ndimage

    rng = np.random.default_rng(12345)
    q = _plane_basis(b)
    n = 16 * b
    white = rng.standard_normal((n, n))
    sig = np.array([0.0, 0.3, 0.45, 0.6, 0.8, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0])
    area = np.empty_like(sig)
    factor = np.empty_like(sig)
    hh = b // 2
    bias = np.empty((len(sig), b + 1, b + 1))
    for i, s in enumerate(sig):
        f = ndimage.gaussian_filter(white, s, mode="wrap") if s > 0 else white
        f = f / f.std()
        res = _detrend(_block_view(f, b, b), q)
        v = res.var(axis=1)
        factor[i] = 1.0 / np.median(v)
        rho, area[i] = _measure((res / np.sqrt(v)[:, None]).reshape(-1, b, b), b)
        full = np.fft.fftshift(np.fft.irfft2(np.abs(np.fft.rfft2(f)) ** 2, s=(n, n)))
        full = full[n // 2 - hh:n // 2 + hh + 1, n // 2 - hh:n // 2 + hh + 1]
        bias[i] = full / full[hh, hh] - rho
    area = np.maximum.accumulate(area)  # monotone for the inverse look-up
    return sig, area, factor, bias


def rho_correction(size: float, b: int = BLOCK) -> np.ndarray:
    """Correlation removed by the detrending, for grain of ``size`` (calibrated; add it)."""
    sig, _, _, bias = _calibration(b)
    i = int(np.clip(np.searchsorted(sig, size) - 1, 0, len(sig) - 2))
    t = float(np.clip((size - sig[i]) / (sig[i + 1] - sig[i]), 0.0, 1.0))
    return (1 - t) * bias[i] + t * bias[i + 1]


def size_from_area(area: float, b: int = BLOCK) -> float:
    """``grain_size_px`` from a measured correlation area (see module docstring)."""
    sig, table, _, _ = _calibration(b)
    return float(np.interp(area, table, sig))


def variance_factor(size: float, b: int = BLOCK) -> float:
    """Detrended-block variance -> grain variance, for grain of ``size`` (calibrated)."""
    sig, _, factor, _ = _calibration(b)
    return float(np.interp(size, sig, factor))


# -- whiteness (digital noise or grain?) --------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _hf_masks(b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(Hann window, low, mid, high frequency masks) of a ``b``×``b`` block's half spectrum."""
    w1 = np.hanning(b)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(b), np.fft.rfftfreq(b), indexing="ij"))
    low = (f > 0) & (f < HF_LOW)
    mid = (f >= HF_MID[0]) & (f <= HF_MID[1])
    return np.outer(w1, w1), low, mid, f >= HF_HIGH


def _hf_statistic(plane: np.ndarray) -> tuple[float, float] | None:
    """How white the noise of ``plane`` is: ``(ratio, level)``, or None.

    ``ratio`` is the high/mid band power ratio (largest for white noise, falling fast with
    the grain size; see :func:`_hf_calibration`), ``level`` the high band's power relative to
    the block variance (the share of the variance a white component carries, times the
    calibrated level of pure white noise): a faint white floor under coarse grain has a white
    high band but a low level.

    Small detrended blocks, each normalised to unit variance; the fraction ``HF_SELECT`` of
    them with the least power below ``HF_LOW`` (the least image content) are kept, and the
    ``ratio`` is the ``HF_QUANTILE`` quantile of their power ratio ``|f| >= HF_HIGH`` over
    ``HF_MID``. Content only ever adds power at the lower of the two bands (natural images'
    spectra fall with frequency), so it lowers a block's ratio; an upper quantile of the
    cleanest blocks is what content leaks into least (the same quantile gives ``level``).
    ``None`` when fewer than 4 blocks vary.
    """
    b = HF_BLOCK
    h, w = plane.shape
    if min(h, w) < b:
        return None
    positions = (h - b + 1) * (w - b + 1)
    stride = max(b // 2, int(np.ceil(np.sqrt(positions / HF_MAX_BLOCKS))))
    res = _detrend(_block_view(plane, b, stride), _plane_basis(b))
    var = res.var(axis=1)
    ok = var > 1e-12
    if ok.sum() < 4:
        return None
    win, low, mid, high = _hf_masks(b)
    norm = (res[ok] / np.sqrt(var[ok])[:, None]).reshape(-1, b, b)
    p = np.abs(np.fft.rfft2((norm * win).astype(np.float32))) ** 2
    low_frac = p[:, low].sum(axis=1) / np.maximum(p.sum(axis=(1, 2)), 1e-30)
    ratio = p[:, high].mean(axis=1) / np.maximum(p[:, mid].mean(axis=1), 1e-30)
    level = p[:, high].mean(axis=1) / np.sum(win**2)
    keep = np.argsort(low_frac, kind="stable")[:max(4, int(np.ceil(HF_SELECT * len(ratio))))]
    return (float(np.quantile(ratio[keep], HF_QUANTILE)),
            float(np.quantile(level[keep], HF_QUANTILE)))


@functools.lru_cache(maxsize=1)
def _hf_calibration() -> tuple[np.ndarray, np.ndarray, float]:
    """``(sigma_c, ratio, white_level)``: :func:`_hf_statistic` on Gaussian-filtered white
    noise of known σ_c (fixed seed): its ratio for each σ_c (made non-increasing) and the
    level of pure white noise. Deterministic; computed once."""
    from scipy import ndimage

    rng = np.random.default_rng(12345)
    white = rng.standard_normal((24 * HF_BLOCK, 24 * HF_BLOCK))
    sig = np.array([0.0, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.8, 1.0])
    stats = [_hf_statistic(ndimage.gaussian_filter(white, s, mode="wrap") if s > 0 else white)
             for s in sig]
    return sig, np.minimum.accumulate([r for r, _ in stats]), stats[0][1]


def size_from_hf(stat: float) -> float:
    """σ_c of Gaussian-filtered white noise with whiteness statistic ``stat`` (calibrated;
    resolves sizes up to about 0.6 px, enough to tell digital noise from grain)."""
    sig, table, _ = _hf_calibration()
    return float(np.interp(stat, table[::-1], sig[::-1]))


# -- flat blocks ------------------------------------------------------------------------------

def _structure_coherence(luma: np.ndarray, b: int, stride: int) -> np.ndarray:
    from scipy import ndimage

    sm = ndimage.gaussian_filter(luma, 1.5)
    gy, gx = np.gradient(sm)
    jxx = _block_view(gx * gx, b, stride).mean(axis=1)
    jyy = _block_view(gy * gy, b, stride).mean(axis=1)
    jxy = _block_view(gx * gy, b, stride).mean(axis=1)
    tr = jxx + jyy
    return np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / np.maximum(tr, 1e-20)


def _select_flat(means: np.ndarray, var: np.ndarray, coherence: np.ndarray,
                 var_factor: float = 1.6) -> np.ndarray:
    """Flat blocks: not oriented, and variance near the lower envelope of their brightness."""
    n = len(means)
    ok = coherence < COHERENCE_MAX
    if ok.sum() < max(4, n // 20):  # nothing isotropic (e.g. a constant image): use all blocks
        ok = np.ones(n, bool)
    idx = np.clip((means * N_BINS).astype(int), 0, N_BINS - 1)
    env = np.full(N_BINS, np.inf)
    for k in range(N_BINS):
        sel = ok & (idx == k)
        if sel.sum() >= 3:
            env[k] = np.quantile(var[sel], ENVELOPE_QUANTILE)
    if not np.isfinite(env).any():
        return ok
    # the grain strength changes smoothly with intensity: at most ENVELOPE_STEP (in std) from
    # one bin to the next, so a bin holding only texture is capped by its neighbours
    step = ENVELOPE_STEP**2
    for _ in range(N_BINS):
        env[1:] = np.minimum(env[1:], env[:-1] * step)
        env[:-1] = np.minimum(env[:-1], env[1:] * step)
    return ok & (var <= var_factor * env[idx] + 1e-12)


def _bins(m: np.ndarray) -> list[np.ndarray]:
    """Flat blocks of each intensity bin that holds enough of them (bins of width 1/14); all
    of them as one bin when no bin does."""
    idx = np.clip((m * N_BINS).astype(int), 0, N_BINS - 1)
    out = [np.flatnonzero(idx == k) for k in range(N_BINS)
           if (idx == k).sum() >= MIN_BLOCKS_PER_BIN]
    if not out and len(m):  # too few flat blocks for any bin (images under ~48 px): one bin
        out = [np.arange(len(m))]
    return out


def _binned(bins: list[np.ndarray], v: np.ndarray) -> np.ndarray:
    """Grain std per bin: the median of the blocks' variances (robust to a textured block)."""
    return np.array([np.sqrt(max(float(np.median(v[sel])), 0.0)) for sel in bins])


# -- correlation ------------------------------------------------------------------------------

def _autocorr(res: np.ndarray, b: int) -> np.ndarray:
    """Mean autocovariance of (n, b, b) residual blocks, lags -b/2..b/2 (unbiased)."""
    n2 = 2 * b
    f = np.fft.rfft2(res, s=(n2, n2))
    ac = np.fft.irfft2((np.abs(f) ** 2).mean(axis=0), s=(n2, n2))
    ac = np.fft.fftshift(ac)
    lags = np.arange(-b, b)
    overlap = (b - np.abs(lags))[:, None] * (b - np.abs(lags))[None, :]
    ac = ac / np.maximum(overlap, 1)
    c = b  # zero lag index
    h = b // 2
    return ac[c - h:c + h + 1, c - h:c + h + 1]


def _correct_offset(ac: np.ndarray) -> tuple[np.ndarray, float]:
    """Remove the detrending offset (read off the tail); return (autocov, variance factor)."""
    h = ac.shape[0] // 2
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    r = np.hypot(yy, xx)
    tail = (r >= 0.75 * h) & (r <= h)
    offset = float(ac[tail].mean())
    c = ac - offset
    factor = c[h, h] / max(ac[h, h], 1e-20)
    return c, float(factor)


def _yule_walker(rho: np.ndarray) -> tuple[np.ndarray, float]:
    h = rho.shape[0] // 2
    offs = ar_offsets()

    def r(d: tuple[int, int]) -> float:
        return float(rho[h + d[0], h + d[1]])

    n = len(offs)
    mat = np.empty((n, n))
    for i, a in enumerate(offs):
        for j, bb in enumerate(offs):
            mat[i, j] = r((a[0] - bb[0], a[1] - bb[1]))
    vec = np.array([r(d) for d in offs])
    coeffs = np.linalg.solve(mat + 1e-3 * np.eye(n), vec)
    resid = float(max(1.0 - coeffs @ vec, 1e-4))
    return coeffs, resid


def _radial_spectrum(res: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    w1 = np.hanning(b)
    win = np.outer(w1, w1)
    p = (np.abs(np.fft.fft2(res * win)) ** 2).mean(axis=0) / np.sum(win**2)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(b), np.fft.fftfreq(b), indexing="ij"))
    nb = b // 2
    idx = np.clip(np.rint(f * b).astype(int), 0, nb)
    power = np.bincount(idx.ravel(), p.ravel(), nb + 1) / np.maximum(
        np.bincount(idx.ravel(), minlength=nb + 1), 1)
    power = power / max(power.sum(), 1e-20)
    return np.arange(nb + 1) / b, power


def _periodic_peak(luma: np.ndarray, mask: np.ndarray, size: float,
                   fine: bool = False) -> float:
    """Largest autocorrelation of the high-passed flat area outside the central lobe.

    The high-pass removes a Gaussian blur of ``max(3, 2 × size)`` px; for white grain
    (``fine``) one of ``PERIODIC_FINE_SIGMA`` px, keeping only the finest scales, where a
    repeated white grain still repeats but periodic image content (bricks, tiles) has little
    power.
    """
    from scipy import ndimage

    h, w = luma.shape
    ch, cw = min(h, 512), min(w, 512)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    lum = luma[y0:y0 + ch, x0:x0 + cw]
    m = mask[y0:y0 + ch, x0:x0 + cw].astype(np.float64)
    if m.sum() < 0.05 * m.size:
        return 0.0
    cutoff = PERIODIC_FINE_SIGMA if fine else max(3.0, 2.0 * size)
    hp = (lum - ndimage.gaussian_filter(lum, cutoff)) * m
    fr = np.fft.rfft2(hp)
    fm = np.fft.rfft2(m)
    num = np.fft.irfft2(np.abs(fr) ** 2, s=(ch, cw))
    den = np.fft.irfft2(np.abs(fm) ** 2, s=(ch, cw))
    valid = den > 0.25 * den[0, 0]
    rho = np.where(valid, num / np.maximum(den, 1e-9), 0.0) / max(num[0, 0] / den[0, 0], 1e-20)
    yy = np.minimum(np.arange(ch), ch - np.arange(ch))[:, None]
    xx = np.minimum(np.arange(cw), cw - np.arange(cw))[None, :]
    lobe = np.hypot(yy, xx) <= max(4.0, 3.0 * size + 2.0)
    rho[lobe] = 0.0
    return float(max(rho.max(), 0.0))


# -- the analysis -----------------------------------------------------------------------------

def classify(sigma: float, size: float, periodic_peak: float) -> str:
    """Grain class from the grain strength (std in the flattest quarter of the flat blocks),
    the grain size and the periodicity peak."""
    if sigma < MINIMAL_SIGMA:
        return "minimal_grain"
    if periodic_peak > PERIODIC_PEAK:
        return "simulated_regular"
    if size < SIZE_DIGITAL:
        return "digital_noise"
    if size < SIZE_FINE:
        return "fine_film_grain"
    if size < SIZE_MEDIUM:
        return "medium_film_grain"
    return "coarse_film_grain"


def analyze_working(work: np.ndarray, denoised: np.ndarray | None = None) -> GrainProfile:
    """Analyse a working image ``(H, W)`` or ``(H, W, 3)`` in [0, 1] (see module docstring)."""
    chans = _channels(work)
    nc = chans.shape[0]
    luma = chans.mean(axis=0)
    h, w = luma.shape
    b = min(BLOCK, h, w)
    b -= b % 2
    stride = b if ((h // b) * (w // b)) >= 256 else max(b // 2, 1)
    q = _plane_basis(b)

    if denoised is not None:
        dch = _channels(denoised)
        grain = chans - dch
        content = dch.mean(axis=0)
        lb = _block_view(content, b, stride)
        means = lb.mean(axis=1)
        cvar = _detrend(lb, q).var(axis=1)
        gl = _detrend(_block_view(grain.mean(axis=0), b, stride), q)
        var = gl.var(axis=1)
        flat = cvar <= 0.25 * np.maximum(var, 1e-12)
        if flat.sum() < 4:
            flat = np.ones(len(means), bool)
        src = grain
        mean_src = dch
    else:
        lb = _block_view(luma, b, stride)
        means = lb.mean(axis=1)
        gl = _detrend(lb, q)
        var = gl.var(axis=1)
        coh = _structure_coherence(luma, b, stride)
        flat = _select_flat(means, var, coh)
        # second pass: the spread of block variances of pure grain depends on its size
        # (fewer independent grains per block for coarse grain); tighten or widen the
        # tolerance to 1 + 2.5 × that spread, from a first size estimate
        first = np.flatnonzero(flat)
        if len(first) >= 4:
            fres = gl[first[np.linspace(0, len(first) - 1, min(len(first), MAX_STAT_BLOCKS)).astype(int)]]
            fv = fres.var(axis=1)
            ok = fv > 1e-12
            if ok.any():
                _, area0 = _measure((fres[ok] / np.sqrt(fv[ok])[:, None]).reshape(-1, b, b), b)
                s0 = size_from_area(area0, b)
                dof = b * b / max(1.0, 4 * np.pi * s0**2)
                factor0 = float(np.clip(1.0 + 2.5 * np.sqrt(2.0 / dof), 1.25, 2.5))
                flat = _select_flat(means, var, coh, factor0)
        src = chans
        mean_src = chans
    fidx = np.flatnonzero(flat)

    # per-channel detrended residuals of the flat blocks
    res_c = np.stack([_detrend(_block_view(src[c], b, stride)[fidx], q) for c in range(nc)])
    mean_c = np.stack([_block_view(mean_src[c], b, stride)[fidx].mean(axis=1) for c in range(nc)])
    var_c = res_c.var(axis=2)  # (C, nflat)

    # correlation structure from the flat blocks' residuals, each normalised to unit
    # variance (at most MAX_STAT_BLOCKS of them, evenly spread)
    sub = np.arange(len(fidx))
    if len(sub) > MAX_STAT_BLOCKS:
        sub = sub[np.linspace(0, len(sub) - 1, MAX_STAT_BLOCKS).astype(int)]
    norm = res_c[:, sub] / np.sqrt(np.maximum(var_c[:, sub], 1e-20))[..., None]
    norm = norm.reshape(-1, b, b)
    strong = var_c[:, sub].ravel() > 1e-12
    # whiteness of the grain (content-robust, see _hf_statistic): image content leaking into
    # the flat blocks inflates the correlation area, never the high-frequency whiteness
    hf = _hf_statistic(luma if denoised is None else grain.mean(axis=0))
    size_hf = size_from_hf(hf[0]) if hf is not None else np.inf
    white = size_hf < SIZE_DIGITAL and hf[1] >= HF_LEVEL * _hf_calibration()[2]
    if strong.sum() >= 1:
        rho, area = _measure(norm[strong], b)
        size = size_from_area(area, b)
        if white:  # digital noise: what correlation the blocks show is content
            size = min(size, size_hf)
            rho = np.zeros_like(rho)
            rho[b // 2, b // 2] = 1.0
        factor = variance_factor(size, b)
        if not white:
            rho = rho + rho_correction(size, b)
        coeffs, resid = _yule_walker(rho)
        freq, power = _radial_spectrum(norm[strong], b)
    else:  # no variance at all (a constant image)
        factor, size, resid = 1.0, 0.0, 1.0
        coeffs = np.zeros(len(ar_offsets()))
        freq, power = _radial_spectrum(np.zeros((1, b, b)), b)
        power = np.full_like(freq, 1.0 / len(freq))

    gvar_c = var_c * factor
    lmean = mean_c.mean(axis=0)
    bins = _bins(lmean)
    if bins:
        centres = np.array([lmean[sel].mean() for sel in bins])
        count = np.array([len(sel) for sel in bins])
        nlf = [_binned(bins, gvar_c[c]) for c in range(nc)]
    else:  # no flat block at all: one point, no grain
        centres, count = np.array([0.5]), np.array([0])
        nlf = [np.zeros(1) for _ in range(nc)]
    luma_res = res_c.mean(axis=0)
    luma_var = luma_res.var(axis=1) * factor
    nlf_luma = _binned(bins, luma_var) if bins else np.zeros(1)
    if nc > 1:
        chroma_var = ((res_c - luma_res[None]) ** 2).mean(axis=(0, 2)) * factor
        nlf_chroma = _binned(bins, chroma_var) if bins else np.zeros(1)
        pairs = [(0, 1), (0, 2), (1, 2)]
        corr = float(np.mean([
            np.sum(res_c[i] * res_c[j]) / np.sqrt(max(np.sum(res_c[i] ** 2) * np.sum(res_c[j] ** 2), 1e-30))
            for i, j in pairs]))
        ratio = float(np.sqrt(np.median(chroma_var) / max(np.median(luma_var), 1e-20))) if len(fidx) else 0.0
    else:
        nlf_chroma = np.zeros(len(centres))
        corr, ratio = 1.0, 0.0
    if len(fidx):
        per_block = gvar_c.mean(axis=0)
        sigma = float(np.sqrt(np.median(per_block)))
        # "minimal" is judged on the flattest quarter: a clean photo has some truly flat area
        floor = float(np.sqrt(np.quantile(per_block, 0.25)))
    else:
        sigma = floor = 0.0

    # flat-area mask (for the periodicity test and the reported fraction)
    mask = np.zeros((h, w), bool)
    nx = (w - b) // stride + 1
    for k in fidx:
        y, x = divmod(int(k), nx)
        mask[y * stride:y * stride + b, x * stride:x * stride + b] = True
    base = luma if denoised is None else luma - content + content.mean()
    peak = _periodic_peak(base, mask, size, fine=white) if floor >= MINIMAL_SIGMA else 0.0
    gtype = classify(floor, size, peak)
    return GrainProfile(
        channels=nc,
        nlf_intensity=tuple(float(c) for c in centres),
        nlf_sigma=tuple(tuple(float(v) for v in s) for s in nlf),
        nlf_luma=tuple(float(v) for v in nlf_luma),
        nlf_chroma=tuple(float(v) for v in nlf_chroma),
        nlf_count=tuple(int(c) for c in count),
        spectrum_freq=tuple(float(f) for f in freq),
        spectrum_power=tuple(float(p) for p in power),
        grain_size_px=float(size),
        sigma=sigma,
        colour=bool(nc > 1 and corr < 0.5),
        channel_correlation=float(np.clip(corr, -1.0, 1.0)),
        chroma_luma_ratio=ratio,
        ar_coeffs=tuple(float(a) for a in coeffs),
        ar_residual=float(resid),
        periodic_peak=peak,
        flat_fraction=float(mask.mean()),
        grain_type=gtype,
    )


def analyze_grain(image: Any, *, channel_axis: int | None = None,
                  denoised: Any = None) -> GrainProfile:
    """Measure film grain: NLF, power spectrum, grain size, mono/colour, AR model, class.

    Parameters
    ----------
    image : ndarray
        One 2-D image, or a colour image with ``channel_axis`` (RGB/RGBA; alpha ignored). Any
        real dtype and strides; not modified. Values are measured as fractions of the value
        range (integers: the dtype's range, or the bit depth unsigned data use, e.g. 0-4095 for
        12-bit data in uint16; floats: their own range, or [0, 1] if inside it).
    channel_axis : int or None
        Colour axis, or None for greyscale.
    denoised : ndarray, optional
        A clean estimate of ``image`` (same shape). When given, the grain is
        ``image - denoised`` and flat blocks are those where ``denoised`` has little texture;
        otherwise statistics come from flat blocks of ``image`` itself.

    Returns
    -------
    GrainProfile

    Notes
    -----
    Statistics come from flat 32×32 blocks only (see :mod:`.grain_analysis` and
    ``docs/processors/restore_film_grain.md``), after the AV1 film-grain model.

    References
    ----------
    .. [1] Norkin & Birkbeck, "Film grain synthesis for AV1 video codec", DCC 2018.
    .. [2] libaom ``aom_dsp/noise_model.c``.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import analyze_grain
    >>> rng = np.random.default_rng(0)
    >>> img = np.clip(0.5 + 0.03 * rng.standard_normal((128, 128)), 0, 1)
    >>> analyze_grain(img).grain_type
    'digital_noise'
    """
    img = working_image(image, channel_axis)
    den = None
    if denoised is not None:  # in the image's units; refused when not on its scale
        den = companion_image(denoised, img, channel_axis=channel_axis, min_size=32,
                              work_dtype=np.float64)
    return analyze_working(img.work, den).with_scale(img.scale)


def detect_grain_type(image: Any, *, channel_axis: int | None = None) -> str:
    """The grain class of ``image``: one of :data:`~.grain_profile.GRAIN_TYPES`.

    "minimal_grain": grain std below 0.5 % of the value range; "simulated_regular": a periodic
    or tiled grain (autocorrelation above 0.4 outside the central lobe); otherwise by
    ``grain_size_px`` (σ_c of the equivalent Gaussian-filtered white noise):
    < 0.4 "digital_noise", 0.4–1 "fine_film_grain", 1–2 "medium_film_grain",
    > 2 "coarse_film_grain".
    """
    return analyze_grain(image, channel_axis=channel_axis).grain_type

