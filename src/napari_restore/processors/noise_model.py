"""Noise models of the BM3D/BM4D processors, and what ``noise_model="auto"`` measures.

The one ``noise_model=`` parameter takes "auto" (the default), "white" or "psd" (with a
``psd=`` array); :func:`noise_kind` checks a value and tells which of them a run uses, so a
later value ("poisson-gaussian", a noise-model object) is added in one place.

"auto" measures the noise spectrum of each plane (or volume) in working units
(:func:`measure_noise`) and decides between white and correlated Gaussian noise:

1. **Flat blocks.** The plane is cut into half-overlapping 16×16 blocks (8×16×16 for a
   volume; smaller for small planes); blocks with clipped pixels (at the plane's minimum or
   maximum) are left out. A mean-plus-linear trend is removed from each block. The flattest
   blocks are kept: those whose residual variance is at most the level that the quietest
   quarter of the blocks implies (corrected for the spread of a pure-noise block variance,
   whose degrees of freedom follow from the measured spectrum) plus ``FLAT_SPREAD`` of its
   standard deviations. Small blocks find flat patches between the texture of textured
   images (32×32 blocks overestimate the noise there by 1.3–1.7×; see
   ``benchmarks/bench_noise_model.py``).
2. **Spectrum.** The mean periodogram of the Hann-windowed residuals, per channel. The
   windowing and the detrending blur and lower it near zero frequency; their exact effect on
   a spectrum is a known linear operator, so the spectrum on a grid twice as fine is found
   by Richardson–Lucy deconvolution (non-negative; ``RL_ITERATIONS``). For a volume the
   grid is the block's own and the operator is applied on it.
3. **Decision.** Texture in the flat blocks adds power at low frequencies, so the decision
   looks only at the high frequencies (``max |f| ≥ 0.25`` cycles per pixel), cut into cells
   by direction and radius. White noise is flat there; the kernels of correlated noise
   (blur, lines, interpolation) are not. The noise is correlated when the weakest cell has
   less than ``FLATNESS_MIN`` of the strongest cell's power (anisotropic or mildly low-pass
   noise), or when the flat blocks' noise variance is more than ``VARIANCE_RATIO_MAX`` times
   the wavelet-MAD one (strongly low-pass noise, which the finest wavelet band hardly sees;
   for white noise the two agree, texture raises the ratio to 2–8 on textured images).

Volumes are decided by the variance ratio alone (``VOLUME_RATIO_MAX``): 3-D blocks of
8×16×16 voxels are rarely free of edges (a 64³ ``binary_blobs`` volume has none), which
breaks the flatness test, while strongly low-pass 3-D noise (the usual correlated noise of
reconstructions and interpolated stacks) still stands out by a factor of 50–300
(edge-dense volumes at low noise reach 25). Mildly correlated or anisotropic noise in a
volume is therefore treated as white; give it as ``psd=``.

White noise keeps the wavelet-MAD σ used since the beginning (so a white-noise run equals
``noise_model="white"``); correlated noise gets the measured spectrum as a full power
spectrum in bm3d's convention (``|FFT|² · H · W``: white noise of std ``s`` is ``s² · H · W``
everywhere), per channel for colour (``(H, W, 3)``, channels independent, as ``bm3d_rgb``
takes it) and in 3-D for volumes.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .registry import Param

#: The values of ``noise_model=``; a :class:`~.noise_pg.NoiseModel` (or its parameter form,
#: ``"poisson-gaussian(gain=…, bias=…)"``) is accepted too. "poisson-gaussian" runs the
#: processor through the variance-stabilising transform (:mod:`.vst`).
NOISE_MODELS = ("auto", "white", "psd", "poisson-gaussian")

#: Block side (pixels) of the flat-block measurement, and the smallest block used.
BLOCK = 16
MIN_BLOCK = 8
#: Fewer usable blocks than this: every unclipped block is used.
MIN_BLOCKS = 8
#: Largest number of block values held at once (blocks × pixels × channels): large planes
#: use a wider stride instead (64 MB in float64).
MAX_VALUES = 8 << 20
#: Blocks with more than this fraction of pixels at the plane's minimum or maximum are
#: clipped: their noise is not Gaussian any more.
CLIPPED_MAX = 0.01
#: The quietest quarter of the blocks sets the noise level of the flat-block selection.
FLAT_QUANTILE = 0.25
#: Flat blocks: variance up to that level + this many standard deviations of a noise block.
FLAT_SPREAD = 2.5
#: Below this variance (working units: std 1e-6 of the span) a plane counts as noise-free.
NOISE_FREE_VARIANCE = 1e-12
#: Richardson–Lucy iterations of the spectrum deconvolution.
RL_ITERATIONS = 50
#: Largest deconvolution operator (entries); beyond it the grid is the block's own.
MAX_OPERATOR = 1 << 22
#: The high frequencies (cycles/pixel, largest component) where the decision looks.
HIGH_FREQUENCY = 0.25
#: Radius splitting the high frequencies into an inner and an outer band.
OUTER_BAND = 0.375
#: White: the weakest high-frequency cell has at least this fraction of the strongest's
#: power, and the flat-block variance is at most VARIANCE_RATIO_MAX × the wavelet-MAD one.
FLATNESS_MIN = 0.25
VARIANCE_RATIO_MAX = 12.0
#: Volumes: correlated only when the flat-block variance is more than this × the 3-D
#: wavelet-MAD one (strongly low-pass noise); the flatness test is not used in 3-D.
VOLUME_RATIO_MAX = 40.0


def noise_kind(noise_model: Any, psd_given: bool) -> str:
    """The noise model a run uses: "white", "psd" or "auto" (to be measured per plane).

    ``psd=`` with "auto" means "psd" (as before the parameter existed); "psd" without it, and
    "white" with it, are errors.
    """
    from .noise_pg import NoiseModel

    if isinstance(noise_model, NoiseModel) or (
            isinstance(noise_model, str) and noise_model.startswith("poisson-gaussian(")):
        noise_model = "poisson-gaussian"
    if not isinstance(noise_model, str):
        raise TypeError(f"noise_model must be one of {', '.join(map(repr, NOISE_MODELS))} "
                        f"or a NoiseModel; got {type(noise_model).__name__}")
    if noise_model not in NOISE_MODELS:
        raise ValueError(f"noise_model={noise_model!r} is not allowed; choose one of "
                         f"{', '.join(map(repr, NOISE_MODELS))}")
    if noise_model == "psd" and not psd_given:
        raise ValueError("noise_model='psd' needs psd=: the noise's power spectrum (shaped like "
                         "one plane) or a small noise kernel; or use noise_model='auto' to "
                         "measure it")
    if noise_model == "poisson-gaussian" and psd_given:
        raise ValueError("psd= was given with a Poisson–Gaussian noise model; the transform "
                         "makes the noise white: leave psd out, or use noise_model='psd'")
    if noise_model == "white" and psd_given:
        raise ValueError("psd= was given with noise_model='white'; use noise_model='psd' (or "
                         "'auto') to use the psd, or leave psd out for white noise")
    return "psd" if psd_given else noise_model


@dataclass(frozen=True)
class NoiseModelParam(Param):
    """The ``noise_model`` parameter: one of its named choices, or a Poisson–Gaussian
    :class:`~.noise_pg.NoiseModel`, kept in its exact parameter form (a string, so that
    recipes, layer metadata and worker processes carry it as they carry any choice)."""

    def validate(self, value: Any) -> Any:
        from .noise_pg import NoiseModel, as_model

        if isinstance(value, NoiseModel) or (
                isinstance(value, str) and value.startswith("poisson-gaussian(")):
            try:
                return as_model(value).to_param()  # type: ignore[union-attr]
            except (TypeError, ValueError) as exc:
                text = str(exc)
                raise ValueError(text if text.startswith(self.name) else
                                 f"{self.name}: {text}") from None
        return super().validate(value)

    def range_text(self) -> str:
        return super().range_text() + ", or a NoiseModel(gain, bias) in the image's units"


def noise_model_param(doc: str, choices: tuple[str, ...] = NOISE_MODELS) -> NoiseModelParam:
    """The ``noise_model`` parameter of a denoiser (BM3D, BM4D, classic, film grain)."""
    return NoiseModelParam("noise_model", str, "auto", doc, choices=choices, label="noise model")


@dataclass(frozen=True)
class NoiseEstimate:
    """The noise measured on one working plane or volume by :func:`measure_noise`.

    Attributes
    ----------
    spectrum : ndarray
        ``(C, *grid)``: per channel, the noise power on a periodic frequency grid (FFT
        order), as a density whose mean is the noise variance (working units).
    correlated : bool
        The decision: True for correlated noise, False for white.
    flatness : float
        Weakest / strongest high-frequency cell (1 for white noise).
    mad_sigma : float
        The wavelet-MAD σ (what white noise uses; working units).
    variance_ratio : float
        Flat-block noise variance / ``mad_sigma²`` (about 1 for white noise).
    blocks : int
        Flat blocks measured.
    """

    spectrum: np.ndarray
    correlated: bool
    flatness: float
    mad_sigma: float
    variance_ratio: float
    blocks: int

    @property
    def sigma(self) -> float:
        """Noise standard deviation (working units; the channels' RMS)."""
        return float(np.sqrt(max(float(np.mean(self.spectrum)), 0.0)))

    def to_psd(self, shape: tuple[int, ...], sigma: float | None = None) -> np.ndarray:
        """The full power spectrum for an array of spatial ``shape``, in bm3d's convention.

        ``(*shape)`` for one channel, ``(*shape, C)`` for several. With ``sigma``, every
        channel is scaled to that standard deviation (the measurement gives the shape only).
        """
        shape = tuple(int(s) for s in shape)
        chans = []
        for spec in self.spectrum:
            full = _resample(spec, shape)
            mean = float(full.mean())
            if sigma is not None:
                full = full * (float(sigma) ** 2 / mean) if mean > 0 else np.full(
                    shape, float(sigma) ** 2)
            chans.append(full * float(np.prod(shape)))
        return chans[0] if len(chans) == 1 else np.stack(chans, axis=-1)


def measure_noise(work: np.ndarray, *, channel_axis: int | None = None) -> NoiseEstimate:
    """Measure the noise spectrum of a working plane or volume and decide white/correlated.

    Parameters
    ----------
    work : ndarray
        A working plane ``(H, W)``, a colour plane (with ``channel_axis``) or a volume
        ``(Z, H, W)``, float.
    channel_axis : int or None
        Colour axis of ``work``; None for one channel.

    Returns
    -------
    NoiseEstimate
    """
    arr = np.asarray(work, dtype=np.float64)
    chans = arr[None] if channel_axis is None else np.moveaxis(arr, channel_axis, 0)
    spatial = chans.shape[1:]
    b = _block_shape(spatial)
    blocks, clipped = _blocks(chans, b)
    n = int(np.prod(b))
    q = _trend_basis(b)
    res = blocks - (blocks @ q) @ q.T  # (C, N, n)
    var = res.var(axis=2).mean(axis=0)  # (N,)
    ok = ~clipped
    if ok.sum() < MIN_BLOCKS:
        ok = np.ones(len(var), bool)
    window = _window(b)
    low = np.quantile(var[ok], FLAT_QUANTILE)
    sel = ok & (var <= low)
    if sel.sum() < min(MIN_BLOCKS, ok.sum()):
        sel = ok
    # second pass: the quietest quarter implies a noise level (a block variance of pure noise
    # has `dof` degrees of freedom, measured from the spectrum); keep every block up to that
    # level plus FLAT_SPREAD of its standard deviations
    dof = _dof(_periodogram(res[:, sel], window).mean(axis=0), n)
    from scipy import stats

    level = low / max(float(stats.chi2.ppf(FLAT_QUANTILE, dof)) / dof, 1e-6)
    second = ok & (var <= level * (1.0 + FLAT_SPREAD * np.sqrt(2.0 / dof)))
    if second.sum() >= sel.sum():
        sel = second
    measured = _periodogram(res[:, sel], window)  # (C, n) over the block's frequency bins
    spectrum = np.stack([_deconvolve(s, b) for s in measured])
    from .noise import estimate_noise_sigma

    mad = float(np.mean([estimate_noise_sigma(c) for c in chans]))
    mean = spectrum.mean(axis=tuple(range(1, spectrum.ndim)))
    if not (mean > NOISE_FREE_VARIANCE).any():  # no noise at all (a constant plane)
        return NoiseEstimate(np.zeros_like(spectrum), False, 1.0, mad, 1.0, int(sel.sum()))
    unit = np.mean([s / m for s, m in zip(spectrum, mean, strict=True) if m > 0], axis=0)
    flatness = _flatness(unit)
    ratio = float(mean.mean()) / max(mad**2, 1e-30)
    if len(spatial) == 3:  # volumes: few flat 3-D blocks, edges everywhere (see docstring)
        correlated = ratio > VOLUME_RATIO_MAX
    else:
        correlated = flatness < FLATNESS_MIN or ratio > VARIANCE_RATIO_MAX
    return NoiseEstimate(spectrum, bool(correlated), flatness, mad, ratio, int(sel.sum()))


def kernel_psd(kernel: np.ndarray, shape: tuple[int, ...], sigma: float | None = None) -> np.ndarray:
    """``|FFTn(kernel zero-padded to shape)|² · prod(shape)`` (bm3d's convention, any ndim).

    With ``sigma`` the kernel is first scaled to unit energy times ``sigma``.
    """
    k = np.asarray(kernel, dtype=np.float64)
    if sigma is not None:
        top = float(np.abs(k).max()) if k.size else 0.0
        k = k / top if top > 0 else k  # rescaled below anyway: no overflow in k**2
        energy = float(np.sqrt(np.sum(k**2)))
        if energy == 0:
            raise ValueError("psd (a noise kernel) is all zeros")
        k = k / energy * float(sigma)
    return np.abs(np.fft.fftn(k, s=shape)) ** 2 * float(np.prod(shape))


# -- blocks -----------------------------------------------------------------------------------

def _block_shape(spatial: tuple[int, ...]) -> tuple[int, ...]:
    """BLOCK along each axis (half of it along a volume's depth, which keeps the
    deconvolution small), halved down to MIN_BLOCK until at least 16 blocks fit."""
    scale = 1
    while BLOCK // (2 * scale) >= MIN_BLOCK and np.prod(
            [max(s // max(BLOCK // (2 * scale), 1) - 1, 1) for s in spatial]) < 16:
        scale *= 2
    sizes = [BLOCK // scale] * len(spatial)
    if len(spatial) == 3:
        sizes[0] = max(BLOCK // (2 * scale), 2)
    # an axis of one pixel (a volume of one slice) is a block of one pixel along it
    return tuple(max(min(2, s), min(b, s - s % 2)) for b, s in zip(sizes, spatial, strict=True))


def _blocks(chans: np.ndarray, b: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Half-overlapping blocks ``(C, N, prod(b))`` (a wider stride on large planes) and which
    of them hold clipped pixels."""
    spatial = chans.shape[1:]
    stride = [max(s // 2, 1) for s in b]
    count = int(np.prod([(n - s) // st + 1 for n, s, st in zip(spatial, b, stride, strict=True)]))
    per = int(np.prod(b)) * chans.shape[0]
    while count * per > MAX_VALUES:
        stride = [st * 2 for st in stride]
        count = int(np.prod([(n - s) // st + 1 for n, s, st in zip(spatial, b, stride, strict=True)]))
    axes = tuple(range(1, chans.ndim))
    view = np.lib.stride_tricks.sliding_window_view(chans, b, axis=axes)
    view = view[(slice(None),) + tuple(slice(None, None, st) for st in stride)]
    blocks = view.reshape(chans.shape[0], -1, int(np.prod(b)))
    lo, hi = chans.min(), chans.max()
    at_edge = ((blocks <= lo) | (blocks >= hi)).mean(axis=2).max(axis=0)
    return blocks, at_edge > CLIPPED_MAX


@functools.lru_cache(maxsize=8)
def _trend_basis(b: tuple[int, ...]) -> np.ndarray:
    """Orthonormal basis ``(n, 1 + ndim)`` of the mean-plus-linear trend removed per block."""
    grids = np.meshgrid(*[(np.arange(s) - (s - 1) / 2) / s for s in b], indexing="ij")
    cols = [np.ones(int(np.prod(b)))] + [g.ravel() for g, s in zip(grids, b) if s > 1]
    q, _ = np.linalg.qr(np.stack(cols, axis=1))
    return q


@functools.lru_cache(maxsize=8)
def _window(b: tuple[int, ...]) -> np.ndarray:
    """Separable Hann window (no zero end points)."""
    w = np.ones(b)
    for ax, s in enumerate(b):
        shape = [1] * len(b)
        shape[ax] = s
        w = w * np.hanning(s + 2)[1:-1].reshape(shape)
    return w


def _periodogram(res: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean periodogram ``(C, n)`` of windowed residual blocks ``(C, N, n)``."""
    c, n_blocks = res.shape[:2]
    b = window.shape
    if n_blocks == 0:
        return np.zeros((c, int(np.prod(b))))
    blocks = res.reshape(c, n_blocks, *b) * window
    axes = tuple(range(2, 2 + len(b)))
    power = np.abs(np.fft.fftn(blocks, axes=axes)) ** 2
    return power.mean(axis=1).reshape(c, -1) / float(np.sum(window**2))


def _dof(periodogram: np.ndarray, n: int) -> float:
    """Degrees of freedom of a block's sample variance for noise with this spectrum."""
    p = np.asarray(periodogram, dtype=np.float64)
    ms = float(np.mean(p**2))
    if ms <= 0:
        return float(n)
    return float(np.clip(n * float(np.mean(p)) ** 2 / ms, 2.0, n))


# -- deconvolution ----------------------------------------------------------------------------

def _fine_grid(b: tuple[int, ...]) -> tuple[int, ...]:
    fine = tuple(2 * s for s in b)
    if int(np.prod(b)) * int(np.prod(fine)) > MAX_OPERATOR:
        return b
    return fine


@functools.lru_cache(maxsize=8)
def _operator(b: tuple[int, ...], grid: tuple[int, ...]) -> np.ndarray:
    """``K[f, f']``: the expected block periodogram at bin ``f`` for unit power at ``f'``.

    Exact for the detrending and the window of :func:`measure_noise` (the expected
    periodogram of a spectrum ``P`` on ``grid`` is ``K @ P``).
    """
    q = _trend_basis(b)
    w = _window(b).ravel()
    pos = np.meshgrid(*[np.arange(s) for s in b], indexing="ij")
    freq = np.meshgrid(*[np.arange(m) / m for m in grid], indexing="ij")
    phase = sum(np.multiply.outer(f.ravel(), x.ravel()) for f, x in zip(freq, pos, strict=True))
    waves = np.exp(2j * np.pi * phase)  # (m, n)
    waves -= (waves @ q) @ q.T
    waves *= w
    spec = np.fft.fftn(waves.reshape(-1, *b), axes=tuple(range(1, len(b) + 1)))
    m = waves.shape[0]
    return (np.abs(spec.reshape(m, -1)) ** 2).T / (m * float(np.sum(w**2)))


def _deconvolve(measured: np.ndarray, b: tuple[int, ...]) -> np.ndarray:
    """The spectrum on the fine grid whose expected periodogram is ``measured`` (RL)."""
    grid = _fine_grid(b)
    k = _operator(b, grid)
    rows = k.sum(axis=1)
    good = rows > 1e-3 * rows.max()  # the zero-frequency bin is removed by the detrending
    k, s = k[good], np.maximum(measured[good], 0.0)
    if not s.any():
        return np.zeros(grid)
    norm = np.maximum(k.sum(axis=0), 1e-30)
    p = np.full(k.shape[1], float(s.mean() / max(rows[good].mean(), 1e-30)))
    for _ in range(RL_ITERATIONS):
        p *= (k.T @ (s / np.maximum(k @ p, 1e-30))) / norm
    return p.reshape(grid)


def _resample(spec: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A periodic spectrum on its grid, linearly interpolated onto the FFT grid of ``shape``."""
    out = spec
    for axis, n in enumerate(shape):
        m = out.shape[axis]
        pos = np.arange(n) * (m / n)
        i0 = np.floor(pos).astype(int) % m
        t = pos - np.floor(pos)
        mat = np.zeros((n, m))
        mat[np.arange(n), i0] += 1 - t
        mat[np.arange(n), (i0 + 1) % m] += t
        out = np.moveaxis(np.tensordot(mat, np.moveaxis(out, axis, 0), axes=1), 0, axis)
    return np.maximum(out, 0.0)


# -- decision ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _cells(grid: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Masks of the high-frequency cells: direction (the nearest neighbourhood direction,
    ±f counted once) × inner/outer band."""
    d = len(grid)
    freq = np.stack([f.ravel() for f in np.meshgrid(*[np.fft.fftfreq(m) for m in grid],
                                                     indexing="ij")], axis=1)
    radius = np.linalg.norm(freq, axis=1)
    high = np.abs(freq).max(axis=1) >= HIGH_FREQUENCY
    dirs = [np.array(v, float) / np.linalg.norm(v) for v in itertools.product((-1, 0, 1), repeat=d)
            if any(v) and v[next(i for i, x in enumerate(v) if x)] > 0]
    unit = freq / np.maximum(radius[:, None], 1e-12)
    nearest = np.argmax(np.abs(unit @ np.array(dirs).T), axis=1)
    outer = radius >= OUTER_BAND
    cells = []
    for i in range(len(dirs)):
        for band in (False, True):
            mask = high & (nearest == i) & (outer == band)
            if mask.sum() >= 2:
                cells.append(mask.reshape(grid))
    return tuple(cells)


def _flatness(unit: np.ndarray) -> float:
    """Weakest / strongest high-frequency cell of a spectrum (see the module docstring)."""
    power = np.array([unit[c].mean() for c in _cells(unit.shape)])
    return float(power.min() / power.max()) if power.max() > 0 else 1.0
