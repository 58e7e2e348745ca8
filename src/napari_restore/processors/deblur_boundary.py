"""Boundaries for FFT deblurring: extend a plane so that its periodic wrap fits the blur.

``bm3d.bm3d_deblurring`` inverts the blur in the Fourier domain, i.e. it treats the plane as
one period of a periodic image blurred by *circular* convolution. A real photograph was blurred
by ordinary (linear) convolution of a larger scene: its opposite edges do not match, and the
inverse filter turns the jump at the wrap into ringing along every border.

:func:`extend` pads the plane on every side by at least one PSF support and fills the padding
with the continuation that best looks like a blurred image: starting from a mirror extension,
it minimises the energy that the blur could not have produced (a masked Tikhonov problem with a
gradient penalty, :func:`complete`), over the whole torus, so the wrap is continuous and smooth
as well. The observed pixels are kept exactly; the PSF is not changed. The caller deblurs the
extended plane and crops it back with the returned slices.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as _fft

BOUNDARIES = ("extend", "periodic")

#: Padding on each side, at least this many pixels (and at least the PSF's size on that axis);
#: the padded size is then rounded up to a fast FFT length.
MIN_PAD = 8
#: Regularisation of the completion (gradient penalty), per unit of noise σ in working units,
#: clipped to this range. In exploratory runs (160² camera, coins, astronaut, text crops,
#: σ = 0.005–0.02) 3e-4 to 3e-3 worked alike and 1e-4 rang at the borders; the benchmark
#: ``benchmarks/bench_deblur_boundary.py`` checks the value chosen here.
ALPHA_PER_SIGMA = 0.1
ALPHA_RANGE = (1e-4, 1e-2)
#: Conjugate-gradient iterations of the completion (each: one real FFT and one inverse).
MAX_ITER = 100
#: Relative residual at which the completion stops early.
TOL = 1e-6

#: The first stage of ``bm3d.bm3d_deblurring`` is the Tikhonov inverse
#: ``conj(V) / (|V|² + α·PSD)`` with a fixed α = 4e-4: a Wiener filter that assumes one signal
#: power for every image, whatever its contrast. An image whose signal is weaker (smooth, low
#: contrast, or dim in its working range: 12-bit data in uint16) is under-regularised and the
#: inverse passes noise that the BM3D stages cannot remove. :func:`ri_scale` measures the
#: signal power per pixel where the PSF passes ``BAND`` of the power (|V|² in that range, where
#: the blurred signal is well above the noise) and scales α by ``REFERENCE_POWER`` / that power
#: (Wiener: regularisation ∝ noise power / signal power), never below 1 (the library's own α)
#: and at most ``MAX_RI_SCALE``; the mean (zero frequency) keeps the library's α. The margin's
#: completion (``ALPHA_PER_SIGMA``, the same flat-signal assumption) is scaled by the same
#: factor (:func:`extend_for_deblurring`): without that, the moon crops' border bands lost up
#: to 0.5 dB against the library's α while the whole image gained 0.7 dB. The reference
#: is a typical photograph's power in working units: camera, astronaut, coins and brick
#: measure 0.09–0.14 (PSFs (9, 9) and (5, 21), σ = 2.5 px), so they keep the library's α; moon
#: measures 0.003–0.007 and text 0.045–0.06 (``benchmarks/bench_deblur_boundary.py``).
BAND = (0.1, 0.5)
REFERENCE_POWER = 0.08
MAX_RI_SCALE = 256.0


def pad_widths(shape: tuple[int, int], psf_shape: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """``((top, bottom), (left, right))`` padding for a plane of ``shape`` and a PSF.

    Each axis grows by at least ``max(psf size, MIN_PAD)`` on both sides, then to the next
    fast FFT length (the extra goes half before, half after).
    """
    widths = []
    for n, k in zip(shape, psf_shape, strict=True):
        total = _fft.next_fast_len(int(n) + 2 * max(int(k), MIN_PAD), real=True)
        before = (total - int(n)) // 2
        widths.append((before, total - int(n) - before))
    return tuple(widths)


def psf_otf(psf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Real FFT of ``psf`` zero-padded to ``shape`` and centred exactly as
    ``bm3d.bm3d_deblurring`` centres it (its centre ``round((size - 1) / 2)`` at the origin)."""
    big = np.zeros(shape)
    big[: psf.shape[0], : psf.shape[1]] = psf
    shift = -np.round([(psf.shape[0] - 1) / 2, (psf.shape[1] - 1) / 2]).astype(int)
    big = np.roll(big, tuple(shift), axis=(0, 1))
    return _fft.rfft2(big)


def completion_alpha(sigma: float, scale: float = 1.0) -> float:
    """The completion's regularisation for noise ``sigma`` (working units), times ``scale``
    (:func:`ri_scale`: an image with less signal than a photograph needs more), clipped to
    ``ALPHA_RANGE``."""
    lo, hi = ALPHA_RANGE
    return float(np.clip(ALPHA_PER_SIGMA * float(sigma) * float(scale), lo, hi))


def complete(extended: np.ndarray, inner: tuple[slice, slice], otf: np.ndarray, alpha: float,
             max_iter: int = MAX_ITER, tol: float = TOL) -> np.ndarray:
    """Refill ``extended`` outside ``inner`` with its most blur-like periodic continuation.

    Minimises ``Σ_f a(f) |Z(f)|²`` over the pixels outside ``inner`` (those inside stay as they
    are), with ``a = α|D|² / (|V|² + α|D|²)``, ``V`` the PSF's transfer function and ``|D|²``
    the discrete Laplacian's symbol: the energy of ``Z`` that the blur would have removed,
    i.e. ``Z`` minus its re-blurred gradient-regularised deconvolution. Equivalently, the
    padding is the blurred continuation of the masked Tikhonov deconvolution
    ``argmin_x |M(v * x) - y|² + α|∇x|²``. Solved by conjugate gradients starting from
    ``extended``; returns a new array.
    """
    h, w = extended.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    d2 = 4.0 * np.sin(np.pi * fy) ** 2 + 4.0 * np.sin(np.pi * fx) ** 2
    v2 = np.abs(otf) ** 2
    weight = alpha * d2 / np.maximum(v2 + alpha * d2, np.finfo(float).tiny)
    outside = np.ones((h, w), dtype=bool)
    outside[inner] = False
    z = np.array(extended, dtype=np.float64)
    full = np.zeros((h, w))

    def apply(u: np.ndarray) -> np.ndarray:  # the weighted energy's Hessian on the margin
        full[outside] = u
        return _fft.irfft2(_fft.rfft2(full) * weight, s=(h, w))[outside]

    u = z[outside]
    r = -_fft.irfft2(_fft.rfft2(z) * weight, s=(h, w))[outside]  # minus the gradient
    p = r.copy()
    rr = float(np.sum(r * r))  # (BLAS dot threads badly on a busy machine)
    stop = tol**2 * rr
    for _ in range(max_iter):
        if rr <= stop or rr == 0.0:
            break
        ap = apply(p)
        pap = float(np.sum(p * ap))
        if pap <= 0.0:
            break
        step = rr / pap
        u += step * p
        r -= step * ap
        rr_new = float(np.sum(r * r))
        p *= rr_new / rr
        p += r
        rr = rr_new
    z[outside] = u
    return z


def extend(plane: np.ndarray, psf: np.ndarray, sigma: float,
           scale: float = 1.0) -> tuple[np.ndarray, tuple[slice, slice]]:
    """``plane`` (H, W) extended for FFT deblurring with ``psf``, and the slices of ``plane``.

    Mirror padding (:func:`pad_widths`), then :func:`complete` with the regularisation
    :func:`completion_alpha` of the noise ``sigma`` (working units) and ``scale``.
    """
    widths = pad_widths(plane.shape[:2], psf.shape)
    start = np.pad(np.asarray(plane, dtype=np.float64), widths, mode="symmetric")
    inner = tuple(slice(b, b + n) for (b, _), n in zip(widths, plane.shape[:2], strict=True))
    otf = psf_otf(psf, start.shape)
    return complete(start, inner, otf, completion_alpha(sigma, scale)), inner


def extend_for_deblurring(plane: np.ndarray, psf: np.ndarray,
                          sigma: float) -> tuple[np.ndarray, tuple[slice, slice], float]:
    """:func:`extend`, then :func:`ri_scale` measured on that extension; where it is above
    1, the margin is completed again with its regularisation scaled by it as well (the
    completion is the same kind of Tikhonov problem: a weak signal's margin needs as much
    more). Returns the extended plane, the slices of ``plane`` and the factor."""
    extended, inner = extend(plane, psf, sigma)
    scale = ri_scale(extended, psf, sigma)
    if scale > 1.0:
        extended, inner = extend(plane, psf, sigma, scale)
    return extended, inner, scale


def signal_power(extended: np.ndarray, otf: np.ndarray, sigma: float) -> float:
    """The unblurred signal's power per pixel of a periodic ``extended`` plane, where the
    PSF's power transfer ``|otf|²`` lies in ``BAND``: ``mean((|Z|² − noise power) / |V|²)``
    over those frequencies, divided by the number of pixels (working units squared).
    ``otf`` is :func:`psf_otf` of the plane's shape; 0 when no frequency is in the band."""
    h, w = extended.shape
    z2 = np.abs(_fft.rfft2(extended - extended.mean())) ** 2
    v2 = np.abs(otf) ** 2
    band = (v2 > BAND[0]) & (v2 < BAND[1])
    if not band.any():
        return 0.0
    noise = float(sigma) ** 2 * h * w
    return float(np.mean(np.maximum(z2[band] - noise, 0.0) / v2[band]) / (h * w))


def ri_scale(extended: np.ndarray, psf: np.ndarray, sigma: float) -> float:
    """The factor on the library's regularisation of its first (regularised-inverse) stage,
    for the periodic plane ``extended``: ``REFERENCE_POWER / signal_power``, clipped to
    ``[1, MAX_RI_SCALE]`` (see ``REFERENCE_POWER``); 1 when no frequency falls in the band."""
    otf = psf_otf(psf, extended.shape)
    if not ((np.abs(otf) ** 2 > BAND[0]) & (np.abs(otf) ** 2 < BAND[1])).any():
        return 1.0
    power = signal_power(extended, otf, sigma)
    if power <= REFERENCE_POWER / MAX_RI_SCALE:
        return MAX_RI_SCALE
    return float(np.clip(REFERENCE_POWER / power, 1.0, MAX_RI_SCALE))
