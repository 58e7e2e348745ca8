"""BM3D denoising (grey, colour, correlated noise), BM3D deblurring and BM4D volume denoising.

Thin wrappers around the reference implementations (the ``bm3d`` and ``bm4d`` packages of
Tampere University): on the same working array they return exactly what the library returns
(``tests/test_bm3d.py``). The upstream bugs of bm3d 4.0.3 / bm4d 4.2.5 are handled in
:mod:`napari_restore._compat`, each with its detector test (see ``docs/compatibility.md``); no
profile is silently replaced.

The libraries are imported inside the plane functions, and the specs set ``isolate=True``:
panel and batch runs call the library in a worker process that Stop terminates
(:mod:`napari_restore._isolate`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from .. import _compat
from .._arrays import Resolved, _as_array, check_memory, normalize_channel_axis
from . import deblur_boundary
from .noise import estimate_noise_sigma
from .noise_model import kernel_psd, measure_noise, noise_kind, noise_model_param
from .registry import TILE, Param, ProcessorSpec, register, with_arrays

PROFILES = ("np", "refilter", "vn", "vn_old", "high", "deb", "lc")
BM4D_PROFILES = ("np", "refilter", "lc")
BM4D_LC = frozenset({"lc"})  # profiles without the in-plane fallback for thin volumes
COLORSPACES = ("opp", "YCbCr")

#: Largest block side (hard-thresholding, Wiener) of each bm3d profile: planes must be at
#: least this large (``tests/test_bm3d.py`` checks the table against the library).
BLOCK_SIZE = {"np": 8, "refilter": 8, "vn": 11, "vn_old": 12, "high": 8, "deb": 8, "lc": 8}
#: Profiles with residual re-filtering (``denoise_residual``): see ``_compat.refilter_sigma``.
REFILTER = frozenset({"refilter"})

# Below this sigma (working units: a fraction of the image's span) a plane counts as noise-free.
_NOISE_FREE = 1e-6
#: Deblurring needs some regularisation: sigma is at least this (≈ 0.26 grey levels of 8 bits).
DEBLUR_MIN_SIGMA = 1e-3

_REFS_BM3D = (
    "Dabov, Foi, Katkovnik & Egiazarian, 'Image denoising by sparse 3-D transform-domain "
    "collaborative filtering', IEEE TIP 16(8), 2007.",
    "Mäkinen, Azzari & Foi, 'Collaborative filtering of correlated noise: exact "
    "transform-domain variance for improved shrinkage and patch matching', IEEE TIP 29, 2020.",
)

_SIGMA_DOC = (
    "Noise standard deviation in the image's own units: grey levels for integer images (25 "
    "for uint8 noise of 25 grey levels), values for float images; empty = estimate per plane "
    "(wavelet MAD)."
)


_NOISE_MODEL_DOC = (
    "auto = with σ on auto, measure each plane's noise and use white noise or, for "
    "correlated noise, its measured power spectrum; a σ you set is white noise of that level "
    "(as bm3d.bm3d); white = white noise of std σ; "
    "psd = the power spectrum or noise kernel given as psd (a layer in the panel); "
    "poisson-gaussian = shot plus read noise (fluorescence, EM, low light): the model is "
    "estimated from the image (once per stack), the image goes through the generalised "
    "Anscombe transform, is denoised at σ = 1 and comes back through the exact unbiased inverse."
)


def _check_block(shape: tuple[int, ...], profile: str) -> None:
    """Planes must hold the profile's largest block, and more than one block position: bm3d
    4.0.3 crashes (segfault) on a plane exactly one block in size (found by the deep
    property run; ``tests/test_bm3d.py`` keeps the boundary)."""
    need = BLOCK_SIZE[profile]
    h, w = shape[:2]
    if min(h, w) < need or (h == need and w == need):
        raise ValueError(
            f"image is too small for BM3D profile {profile!r}: its planes are {h}x{w} pixels; "
            f"the profile's {need}x{need} blocks need planes of at least {need}x{need} pixels "
            f"that are larger along one axis ({need}x{need + 1} or more)"
        )


def bm3d_plane(
    plane: np.ndarray,
    *,
    sigma: float | None,
    profile: str,
    colorspace: str,
    threads: int = 1,
    noise_model: str = "auto",
    psd: np.ndarray | None = None,
) -> Generator[Any, None, np.ndarray]:
    """BM3D on one working plane ``(H, W)`` or colour plane ``(H, W, 3)``.

    A generator: it first yields a :class:`~napari_restore._arrays.Resolved` payload saying
    what an automatic choice resolved to (``noise_model`` "white"/"correlated", an estimated
    ``sigma``), then returns the result. ``noise_model`` is "auto", "white" or "psd"
    (:mod:`.noise_model`); ``psd`` (working units) is a power spectrum shaped like the plane,
    or a smaller noise kernel (see :func:`plane_psd`).
    """
    _check_block(plane.shape, profile)
    bm3d = _compat.bm3d_module()
    colour = plane.ndim == 3
    noise, resolved = _plane_noise(
        plane, noise_model=noise_model, sigma=sigma, psd=psd, colour=colour,
        library_shape=plane.shape[:2], refilter=profile in REFILTER,
        user_psd=lambda p, s: plane_psd(p, plane.shape, s))
    if resolved:
        yield Resolved(resolved)
    if noise is None:
        return plane.copy()  # nothing to remove
    pro = _compat.bm3d_profile(profile, threads)
    with _compat.BM4D_LOCK:  # the C library is not re-entrant (see _compat)
        if colour:
            return _compat.bm3d_rgb(plane, noise, pro, colorspace=colorspace)
        return bm3d.bm3d(plane, noise, pro)


#: A power spectrum may imply noise up to this many spans of the image (sigma's own limit).
MAX_PSD_SIGMA = 1.0


def _check_noise_power(full: np.ndarray, colour: bool) -> np.ndarray:
    """The full PSD (working units), refused when its noise exceeds the image's span."""
    n = full.size // (3 if colour and full.ndim == 3 else 1)
    with np.errstate(over="ignore", invalid="ignore"):
        sigma = float(np.sqrt(np.mean(full) / n)) if np.isfinite(full).all() else np.inf
    if not sigma <= MAX_PSD_SIGMA:
        raise ValueError(
            f"psd implies noise with a standard deviation of {sigma:.3g} × the image's span; "
            f"at most {MAX_PSD_SIGMA:g} × the span is allowed (is psd in the image's units?)")
    return full


def _plane_noise(plane: np.ndarray, *, noise_model: str, sigma: float | None,
                 psd: np.ndarray | None, colour: bool, library_shape: tuple[int, ...],
                 refilter: bool, user_psd: Any, to_library: Any = None,
                 use_measured_psd: bool = True,
                 ) -> tuple[Any, dict[str, Any]]:
    """The noise argument for bm3d/bm4d (None: the plane is noise-free) and what was resolved.

    "auto" with ``sigma=None`` measures the plane (:func:`.noise_model.measure_noise`): white
    noise gets the wavelet-MAD σ, correlated noise the measured power spectrum. A given
    ``sigma`` is white noise of that level, exactly as ``bm3d.bm3d(z, sigma)`` (the raw
    library's result in the image's units); correlated noise of a known level and shape goes
    through ``psd=``. ``to_library`` reorders a measured PSD's axes.
    ``use_measured_psd=False`` (volumes): correlated noise is reported but denoised as white
    noise of the wavelet-MAD level, since the measured volume level is not reliable yet (on
    edge-dense volumes it reads 2.9–3.8× too high, which made the result worse than the
    input); the report says to give ``psd=``.
    """
    kind = noise_kind(noise_model, psd is not None)
    if kind == "psd":
        return _check_noise_power(user_psd(psd, sigma), colour), {}
    resolved: dict[str, Any] = {}
    if kind == "auto" and sigma is not None:
        kind = "white"
    if kind == "auto":
        est = measure_noise(plane, channel_axis=-1 if colour else None)
        resolved["noise_model"] = "correlated" if est.correlated else "white"
        if est.correlated and not use_measured_psd:
            resolved["noise_model"] = "white"
            resolved["noise_note"] = ("correlated noise measured; denoised as white noise: "
                                      "give psd= (its kernel or power spectrum) for it")
        elif est.correlated:
            if sigma is None:
                resolved["sigma"] = est.sigma
            if (est.sigma if sigma is None else sigma) < _NOISE_FREE:
                return None, resolved
            full = est.to_psd(plane.shape[:-1] if colour else plane.shape, sigma)
            return (full if to_library is None else to_library(full)), resolved
        if sigma is None:
            sigma = est.mad_sigma
            resolved["sigma"] = sigma
    elif sigma is None:
        sigma = estimate_noise_sigma(plane, channel_axis=-1 if colour else None)
        resolved["sigma"] = sigma
    if sigma < _NOISE_FREE:
        return None, resolved
    return _compat.refilter_sigma(sigma, library_shape, refilter), resolved


def deblur_plane(
    plane: np.ndarray,
    *,
    psf_size: tuple[int, int],
    psf_sigma: float,
    sigma: float | None,
    profile: str,
    boundary: str = "extend",
    clip: bool = True,
    threads: int = 1,
    psf: np.ndarray | None = None,
    clip_low: float | None = None,
    clip_high: float | None = None,
) -> np.ndarray:
    """BM3D deblurring of one greyscale working plane ``(H, W)``.

    ``boundary="periodic"`` is the raw ``bm3d.bm3d_deblurring`` call, which takes the plane
    as periodic; "extend" deblurs the plane extended past its edges by
    :func:`.deblur_boundary.extend_for_deblurring` and crops the result (for linearly blurred
    images), with the library's two stages (:func:`_deblur_stages`) and a first-stage
    regularisation scaled to the plane's signal power (:func:`.deblur_boundary.ri_scale`). A constant plane is
    returned unchanged (a blurred constant is that constant). With ``clip``, the result is
    clipped to ``[clip_low, clip_high]`` (working units; the boundary passes the input's
    value range, see :func:`_deblur_prepare`); a bound that is None is not applied.
    """
    _check_block(plane.shape, profile)
    bm3d = _compat.bm3d_module()
    if psf is None:
        psf = gaussian_psf(psf_size, psf_sigma)
    if psf.shape[0] > plane.shape[0] or psf.shape[1] > plane.shape[1]:
        raise ValueError(
            f"the PSF ({psf.shape[0]}x{psf.shape[1]}) is larger than the image plane "
            f"({plane.shape[0]}x{plane.shape[1]}); use a smaller psf_size or psf"
        )
    if boundary not in deblur_boundary.BOUNDARIES:
        raise ValueError(f"boundary={boundary!r} is not one of {deblur_boundary.BOUNDARIES}")
    if plane.min() == plane.max():
        # bm3d_deblurring fails on an all-zero plane (its Wiener pilot is 0: "array must not
        # contain infs or NaNs") and returns a constant slightly off; the answer is known.
        return plane.copy()
    if sigma is None:
        sigma = estimate_noise_sigma(plane)
    sigma = max(float(sigma), DEBLUR_MIN_SIGMA)
    pro = _compat.bm3d_profile(profile, threads)
    if boundary == "periodic":
        noise = _compat.deblur_sigma(sigma, plane.shape)
        with _compat.BM4D_LOCK:
            out = np.asarray(bm3d.bm3d_deblurring(plane, noise, psf, pro))
    else:
        psf = _centre_even_psf(psf)
        extended, inner, scale = deblur_boundary.extend_for_deblurring(plane, psf, sigma)
        noise = _compat.deblur_sigma(sigma, extended.shape)
        with _compat.BM4D_LOCK:
            out = _deblur_stages(bm3d, extended, noise, psf, pro, ri_scale=scale)
        out = np.asarray(out)[inner].copy()
    if clip and clip_low is not None:
        np.maximum(out, float(clip_low), out=out)
    if clip and clip_high is not None:
        np.minimum(out, float(clip_high), out=out)
    return out


def _centre_even_psf(psf: np.ndarray) -> np.ndarray:
    """``psf`` with its centre at index ``n // 2`` on every axis, as scipy.ndimage, scikit-image
    and MATLAB's conv2/psf2otf place it. bm3d puts the centre at ``np.round((n - 1) / 2)``,
    which rounds halves to even: ``n // 2`` for sides 4, 8, 12, but ``n // 2 - 1`` for sides
    2, 6, 10, so an image blurred with a 6×6 PSF deblurred one pixel off (3× the error). A
    zero row/column appended to those sides moves the centre to ``n // 2`` (the PSF's values
    stay where they are); other sides are untouched."""
    pad = [(0, 1 if n % 4 == 2 else 0) for n in psf.shape]
    return np.pad(psf, pad) if any(after for _, after in pad) else psf


#: ``bm3d.bm3d_deblurring``'s regularisation of its two stages (bm3d 4.0.x).
_ALPHA_RI = 4e-4
_ALPHA_RWI = 5e-3


def _deblur_stages(bm3d: Any, z: np.ndarray, psd: np.ndarray, psf: np.ndarray, profile: Any,
                   ri_scale: float = 1.0) -> np.ndarray:
    """``bm3d.bm3d_deblurring(z, psd, psf, profile)`` for a 2-D ``z`` and its (M, N) PSD, with
    the first stage's regularisation ``α_RI · psd`` times ``ri_scale`` at every frequency but
    zero (the mean is always well determined). ``ri_scale=1`` is the library's call bit for
    bit (``tests/test_deblur_boundary.py`` checks it): the same operations in the same order.
    """
    from scipy.fftpack import fft2, ifft2

    eps = 2.2204e-16  # the library's EPS
    psd3 = np.atleast_3d(psd)
    z3 = np.atleast_3d(z)
    big_v = np.zeros(z3.shape[0:2])
    big_v[0:psf.shape[0], 0:psf.shape[1]] = psf
    big_v = np.roll(big_v, -np.array(np.round([(psf.shape[0] - 1) / 2,
                                               (psf.shape[1] - 1) / 2]), dtype=int), axis=(0, 1))
    fft_v = np.atleast_3d(fft2(big_v, axes=(0, 1)))
    alpha = _ALPHA_RI
    if ri_scale != 1.0:
        alpha = np.full(psd3.shape, _ALPHA_RI * float(ri_scale))
        alpha[0, 0] = _ALPHA_RI
    regularized_inverse = np.conj(fft_v) / ((np.abs(fft_v) ** 2) + alpha * psd3 + eps)
    z_ri = np.real(ifft2(fft2(z3, axes=(0, 1)) * regularized_inverse, axes=(0, 1)))
    psd_ri = psd3 * abs(regularized_inverse) ** 2
    y_hat = bm3d.bm3d(z_ri, psd_ri, profile, stage_arg=bm3d.BM3DStages.HARD_THRESHOLDING)
    wiener_pilot = np.atleast_3d(abs(fft2(y_hat, axes=(0, 1))))
    regularized_wiener_inverse = (np.conj(fft_v) * wiener_pilot ** 2) / (
        wiener_pilot ** 2 * (np.abs(fft_v) ** 2) + _ALPHA_RWI * psd3 + eps)
    z_rwi = np.real(ifft2(fft2(z3, axes=(0, 1)) * regularized_wiener_inverse, axes=(0, 1)))
    psd_rwi = psd3 * np.abs(regularized_wiener_inverse) ** 2
    return bm3d.bm3d(z_rwi, psd_rwi, profile, stage_arg=y_hat)


def _deblur_prepare(params: dict, image: Any) -> dict:
    """With ``clip`` on: the input's value range in its own units (``clip_low``,
    ``clip_high``; None = that side open) for the plane function; the run reports it beside
    the parameters. Integers: the dtype's range. Floats inside [0, 1]: [0, 1]. Other
    non-negative floats (counts, intensities): [0, ∞). Floats with negative values: not
    clipped. Never the image's own minimum and maximum: deblurring restores the contrast that
    the blur took, so the sharp image reaches beyond the blurred one's extremes (clipping a
    benchmark's crops there cost up to 0.8 dB); a range that the truth is known to lie in is
    clipped to, and only that (clipping to it never increases any pixel's error)."""
    if not params.get("clip"):
        return params
    from .._arrays import value_scale

    scale = value_scale(image, offset=False)
    if scale.dtype.kind in "iu":  # the dtype's range, also for int32/int64, which the
        info = np.iinfo(scale.dtype)  # boundary scales by their values' range
        low, high = float(info.min), float(info.max)
    elif (scale.low, scale.high) == (0.0, 1.0):
        low, high = float(scale.low), float(scale.high)
    elif scale.low >= 0.0:
        low, high = 0.0, None
    else:
        return params
    return {**params, "clip_low": low, "clip_high": high}


#: Volumes (Z, H, W) of exactly one bm4d block: bm4d 4.2.5 segfaults on them (_check_volume).
_BM4D_ONE_BLOCK_3D = (5, 5, 5)
_BM4D_ONE_BLOCK_2D = (1, 8, 8)


def _check_volume(shape: tuple[int, ...], profile: str) -> None:
    """Refuse the volumes bm4d 4.2.5 cannot take, before it is called.

    bm4d's blocks are 5x5x5; with fewer than 5 slices the "np"/"refilter" profiles fall back
    to in-plane 8x8 blocks of one slice ("lc" has no fallback). Smaller volumes are refused
    (bm4d would raise "Image cannot be smaller than block size!"). A volume that holds
    exactly one block and nothing more — (5, 5, 5), or (1, 8, 8) with the in-plane fallback —
    crashes bm4d (segfault), in every profile that selects that block: the only crashing
    shapes among depth 1–7 × sides 4–12 × three profiles, each probed in a child process
    (``tests/test_bm4d_shapes.py`` keeps the boundary; ``docs/compatibility.md``)."""
    d, h, w = shape
    if d < 5 and profile not in BM4D_LC:
        if min(h, w) < 8:
            raise ValueError(
                f"volume of shape {tuple(shape)} is too small for BM4D: with fewer than 5 "
                "slices it needs at least 8x8 pixels per slice (at least 5 pixels along every "
                "axis otherwise)")
        if (d, h, w) == _BM4D_ONE_BLOCK_2D:
            raise ValueError(
                f"volume of shape {tuple(shape)} is exactly one BM4D block (one 8x8 slice), "
                "which crashes bm4d 4.2.5: it needs a second slice or a 9th pixel along "
                "a slice axis ((2, 8, 8) or (1, 8, 9) work)")
        return
    if min(shape) < 5 or (d, h, w) == _BM4D_ONE_BLOCK_3D:
        extra = f" (profile {profile!r} needs at least 5 slices)" if d < 5 else ""
        raise ValueError(
            f"volume of shape {tuple(shape)} is too small for BM4D{extra}: it needs at least "
            "5 pixels along every axis and more than 5 along one of them")


def bm4d_plane(volume: np.ndarray, *, sigma: float | None, profile: str,
               threads: int = 1, noise_model: str = "auto",
               psd: np.ndarray | None = None) -> Generator[Any, None, np.ndarray]:
    """BM4D on one working volume ``(Z, H, W)``.

    bm4d takes its depth axis last (it falls back to in-plane 8×8 blocks when that axis is
    shorter than 5), so the volume is passed as ``(H, W, Z)``. Like :func:`bm3d_plane` a
    generator that yields what "auto" resolved to; ``psd`` is a 3-D power spectrum shaped
    like the volume or a smaller noise kernel (see :func:`volume_psd`).
    """
    _check_volume(volume.shape, profile)
    z = np.moveaxis(volume, 0, -1)
    bm4d = _compat.bm4d_module()
    from .._arrays import contiguous

    z = contiguous(z)
    noise, resolved = _plane_noise(
        volume, noise_model=noise_model, sigma=sigma, psd=psd, colour=False,
        library_shape=z.shape, refilter=profile in REFILTER,
        user_psd=lambda p, s: np.moveaxis(volume_psd(p, volume.shape, s), 0, -1),
        to_library=lambda full: np.moveaxis(full, 0, -1), use_measured_psd=False)
    if resolved:
        yield Resolved(resolved)
    if noise is None:
        return volume.copy()
    with _compat.BM4D_LOCK:
        out = bm4d.bm4d(z, noise, _compat.bm4d_profile(profile, threads, z))
    return np.moveaxis(np.asarray(out), -1, 0)


def gaussian_psf(size: tuple[int, int], sigma: float) -> np.ndarray:
    """``bm3d.gaussian_kernel(size, sigma)``: a (rows, cols) Gaussian PSF summing to 1."""
    bm3d = _compat.bm3d_module()
    return np.asarray(bm3d.gaussian_kernel(tuple(int(s) for s in size), float(sigma)))


# -- tiles (napari_restore._tiles) -----------------------------------------------------------

#: Half the search window of every bm3d profile (39 px; 25 for "lc"), for the tile halo.
SEARCH_RADIUS = {"lc": 12}
#: Tile halo of BM4D (its 5-voxel blocks plus half its 11-voxel search window, rounded up).
BM4D_HALO = 16


def bm3d_footprint(params: dict[str, Any], plane_shape: tuple[int, ...]) -> int:
    """Tile halo: the largest block plus half the search window (27 px for "np")."""
    profile = params.get("profile", "np")
    return BLOCK_SIZE[profile] + SEARCH_RADIUS.get(profile, 19)


def bm4d_footprint(params: dict[str, Any], plane_shape: tuple[int, ...]) -> int:
    return BM4D_HALO


def bm3d_tile_params(plane: np.ndarray, params: dict[str, Any],
                     window: tuple[int, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The noise of the whole plane for all its tiles (working units), and what it resolved.

    "auto" with σ on auto measures the whole plane once: white noise becomes ``noise_model=
    "white"`` with its σ; correlated noise becomes ``noise_model="psd"`` with the measured
    spectrum sampled for the tiles' shape. A full-plane ``psd`` cannot serve tiles of
    another shape (give its noise kernel instead).
    """
    out, resolved = dict(params), {}
    volume = plane.ndim == 3 and params.get("colorspace") is None
    colour = plane.ndim == 3 and not volume
    psd = out.get("psd")
    kind = noise_kind(out.get("noise_model", "auto"), psd is not None)
    if kind == "psd":
        full = plane.shape[1:] if volume else plane.shape[:2]
        if np.ndim(psd) >= 2 and tuple(np.shape(psd)[-2:] if volume else np.shape(psd)[:2]) == tuple(full):
            raise ValueError(
                "psd is a power spectrum of the whole plane, which tiles of another shape "
                "cannot use: give the noise kernel as psd, or run with tile=None")
        return out, resolved
    if out.get("sigma") is not None:
        return out, resolved
    if kind == "auto":
        est = measure_noise(plane, channel_axis=-1 if colour else None)
        if est.correlated and not volume and est.sigma < _NOISE_FREE:
            resolved.update(noise_model="correlated", sigma=est.sigma)
            out.update(noise_model="white", sigma=0.0)
            return out, resolved
        if est.correlated and not volume:
            resolved.update(noise_model="correlated", sigma=est.sigma)
            out.update(noise_model="psd", psd=est.to_psd(tuple(window)), sigma=None)
            return out, resolved
        resolved["noise_model"] = "white"
        if est.correlated:
            resolved["noise_note"] = ("correlated noise measured; denoised as white noise: "
                                      "give psd= (its kernel or power spectrum) for it")
        out.update(noise_model="white", sigma=est.mad_sigma)
        resolved["sigma"] = est.mad_sigma
        return out, resolved
    out["sigma"] = resolved["sigma"] = estimate_noise_sigma(
        plane, channel_axis=-1 if colour else None)
    return out, resolved


# -- specs ----------------------------------------------------------------------------------

_PROFILE_DOC = (
    "bm3d profile: np = normal, refilter = with residual re-filtering, vn / vn_old = very "
    "noisy, high = high quality, deb = for deblurring, lc = low complexity (fast)."
)

_THREADS_DOC = (
    "Library threads. 1 (default) gives bit-reproducible results, so recipes replay exactly; "
    "0 = all cores (faster; bm3d/bm4d then document that results may vary very slightly)."
)

BM3D_DENOISE = register(
    ProcessorSpec(
        name="bm3d_denoise",
        title="BM3D denoise",
        plane_func=bm3d_plane,
        input_kind="rgb",
        min_size=8,
        work_dtype=np.float64,
        offset=False,  # bm3d/bm4d are not offset-invariant: see ValueScale
        detect_bits=True,
        isolate=True,
        footprint=bm3d_footprint,
        tile_params=bm3d_tile_params,
        summary=(
            "Block-matching and 3-D collaborative filtering (BM3D) for additive Gaussian noise, "
            "white or spatially correlated: the noise model 'auto' measures each plane's noise "
            "spectrum and tells them apart, or give the power spectrum. Colour images are "
            "filtered jointly in a luminance-chrominance space. Sigma is estimated per plane "
            "when left on auto."
        ),
        references=_REFS_BM3D,
        params=(
            Param("sigma", float, None, _SIGMA_DOC, min=0.0, max=1.0, optional=True, key=True,
                  step=0.005, label="σ", intensity=1),
            noise_model_param(_NOISE_MODEL_DOC),
            Param("profile", str, "np", _PROFILE_DOC, choices=PROFILES, key=True),
            Param("colorspace", str, "opp",
                  "Colour transform for RGB images: opponent (opp) or YCbCr.",
                  choices=COLORSPACES),
            Param("threads", int, 1, _THREADS_DOC, min=0, max=256),
            TILE,
        ),
    )
)

_BOUNDARY_DOC = (
    "How the image continues past its edges: extend = mirror it and fill the margin with the "
    "smoothest continuation the blur could have produced (for ordinary photographs, blurred by "
    "linear convolution); periodic = the raw library (the image wraps around: only for images "
    "blurred by circular convolution; elsewhere the borders ring)."
)

_CLIP_DOC = (
    "Clip the result to the input's value range: the dtype's range for integer images, "
    "[0, 1] for float images inside it, ≥ 0 for other non-negative float images; float "
    "images with negative values are not clipped. Off = keep the overshoot of the inverse "
    "(integers always saturate)."
)

BM3D_DEBLUR = register(
    ProcessorSpec(
        name="bm3d_deblur",
        title="BM3D deblur",
        plane_func=deblur_plane,
        input_kind="plane2d",
        min_size=8,
        work_dtype=np.float64,
        offset=False,  # bm3d/bm4d are not offset-invariant: see ValueScale
        # The library's regularisation (alpha, the sigma floor) assumes a signal spanning the
        # working range: 12-bit data in uint16 map 0-4095 to [0, 1], as the same counts in a
        # float image do, not to 1/16 of it (which cost up to 2 dB against float input).
        detect_bits=True,
        isolate=True,
        summary=(
            "BM3D deblurring (regularised inverse + BM3D, then regularised Wiener inverse + "
            "BM3D) of an image blurred by a known PSF: a Gaussian of the given size and width, "
            "or your own PSF array (Python API). Colour channels are deblurred one by one."
        ),
        references=(
            "Dabov, Foi, Katkovnik & Egiazarian, 'Image restoration by sparse 3D "
            "transform-domain collaborative filtering', Proc. SPIE 6812, 2008.",
            *_REFS_BM3D[1:],
        ),
        params=(
            Param("psf_size", tuple, (9, 9), "Gaussian PSF size (rows, cols) in pixels.",
                  min=1, max=255, key=True, label="psf"),
            Param("psf_sigma", float, 2.0, "Gaussian PSF standard deviation (pixels).",
                  min=0.05, max=100.0, step=0.1, key=True, label="psfσ"),
            Param("sigma", float, None,
                  _SIGMA_DOC + f" 0 and anything below {DEBLUR_MIN_SIGMA:g} × the image's span "
                  "count as that much (the inverse needs regularisation).",
                  min=0.0, max=1.0, optional=True, key=True, step=0.005, label="σ",
                  intensity=1),
            Param("profile", str, "np", _PROFILE_DOC, choices=PROFILES),
            Param("boundary", str, "extend", _BOUNDARY_DOC, choices=deblur_boundary.BOUNDARIES),
            Param("clip", bool, True, _CLIP_DOC),
            Param("threads", int, 1, _THREADS_DOC, min=0, max=256),
        ),
        prepare=_deblur_prepare,
        prepared_units=(("clip_low", 1), ("clip_high", 1)),
    )
)

BM4D_DENOISE = register(
    ProcessorSpec(
        name="bm4d_denoise",
        title="BM4D denoise",
        plane_func=bm4d_plane,
        input_kind="volume3d",
        min_size=1,  # bm4d_plane checks: 5 along every axis, or 8x8 slices when Z < 5
        work_dtype=np.float64,
        offset=False,  # bm3d/bm4d are not offset-invariant: see ValueScale
        detect_bits=True,  # as bm3d_denoise: 12-bit data in uint16 on 0-4095
        isolate=True,
        footprint=bm4d_footprint,
        tile_params=bm3d_tile_params,
        summary=(
            "BM4D: block matching and collaborative filtering of 3-D blocks, for volumes "
            "(Z, Y, X) with additive Gaussian noise, white or correlated (the noise model "
            "'auto' measures each volume's 3-D noise spectrum). A 4-D layer is denoised one "
            "time point at a time. Sigma is estimated per volume when left on auto."
        ),
        references=(
            "Maggioni, Katkovnik, Egiazarian & Foi, 'Nonlocal transform-domain filter for "
            "volumetric data denoising and reconstruction', IEEE TIP 22(1), 2013.",
            _REFS_BM3D[1],
        ),
        params=(
            Param("sigma", float, None, _SIGMA_DOC.replace("per plane", "per volume"),
                  min=0.0, max=1.0, optional=True, key=True, step=0.005, label="σ",
                  intensity=1),
            noise_model_param(_NOISE_MODEL_DOC.replace("plane", "volume")),
            Param("profile", str, "np",
                  "bm4d profile: np = normal, refilter = with residual re-filtering, "
                  "lc = low complexity (fast).", choices=BM4D_PROFILES, key=True),
            Param("threads", int, 1, _THREADS_DOC, min=0, max=256),
            TILE,
        ),
    )
)


# -- array arguments (not spec parameters: they cannot go in a recipe) -----------------------

def _plane_shape(image: Any, channel_axis: int | None, name: str = "image") -> tuple[int, int]:
    arr = _as_array(image, name)
    cax = normalize_channel_axis(channel_axis, arr.ndim)
    spatial = [s for i, s in enumerate(arr.shape) if i != cax]
    if len(spatial) < 2:
        raise ValueError(f"{name} must have at least 2 spatial dimensions; got shape {arr.shape}")
    return int(spatial[-2]), int(spatial[-1])


def _real_array(value: Any, name: str) -> np.ndarray:
    arr = _as_array(value, name)  # ragged lists, None: a clear error naming it
    check_memory(tuple(np.shape(arr)), np.float64, 1, name=name)  # before any copy is made
    arr = np.asarray(arr)
    if arr.dtype == object or arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; only finite values are allowed")
    return arr


def kernel_to_psd(kernel: Any, shape: tuple[int, int], sigma: float | None = None) -> np.ndarray:
    """Power spectrum (bm3d's convention) of white noise convolved with ``kernel``.

    ``|FFT2(kernel zero-padded to shape)|² · H · W`` — the form bm3d's own examples use, so
    that white noise of standard deviation ``s`` (``kernel = [[s]]``) gives ``s² · H · W``
    everywhere. With ``sigma``, the kernel is first rescaled to unit energy times ``sigma``
    (the noise then has standard deviation ``sigma``); otherwise it is used as it is (noise =
    unit white noise convolved with ``kernel``).
    """
    k = _real_array(kernel, "psd")
    if sigma is not None:
        top = float(np.abs(k).max())
        k = k / top if top > 0 else k  # rescaled below anyway: no overflow in k**2
        energy = float(np.sqrt(np.sum(k**2)))
        if energy == 0:
            raise ValueError("psd (a noise kernel) is all zeros")
        k = k / energy * float(sigma)
    h, w = shape
    return np.abs(np.fft.fft2(k, s=(h, w))) ** 2 * (h * w)


def check_psd(psd: Any) -> np.ndarray:
    """``psd`` as a float64 array: real, finite, 2-D (or (H, W, 3)), not all zeros."""
    arr = _real_array(psd, "psd")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(
            f"psd has shape {arr.shape}; expected a 2-D power spectrum or noise kernel "
            "(or an (H, W, 3) power spectrum for colour)"
        )
    if not (arr != 0).any():
        raise ValueError("psd is all zeros")
    return arr


def plane_psd(psd: np.ndarray, shape: tuple[int, ...], sigma: float | None) -> np.ndarray:
    """The full power spectrum for a plane of ``shape`` from ``psd`` (full PSD or kernel).

    A ``psd`` shaped like the plane ``(H, W)`` (or ``(H, W, 3)`` for a colour plane) is the
    power spectrum itself; a smaller 2-D array is a noise kernel (:func:`kernel_to_psd`).
    """
    hw = tuple(shape[:2])
    colour = len(shape) == 3
    if psd.shape[:2] == hw and (psd.ndim == 2 or (colour and psd.ndim == 3)):
        if sigma is not None:
            raise ValueError(
                "give either sigma or a full power spectrum psd, not both (a full PSD already "
                "holds the noise level; sigma is only used to scale a small noise kernel)"
            )
        if (psd < 0).any():
            raise ValueError("psd (a power spectrum) must not be negative")
        return psd
    if psd.ndim == 2 and psd.shape[0] <= hw[0] and psd.shape[1] <= hw[1]:
        return kernel_to_psd(psd, hw, sigma)
    raise ValueError(
        f"psd has shape {psd.shape}; expected a power spectrum of the plane's shape {hw}"
        + (f" or {hw + (3,)}" if colour else "")
        + ", or a 2-D noise kernel smaller than the plane"
    )


def _resolve_psd(psd: Any, image: Any, channel_axis: int | None, sigma: float | None) -> np.ndarray:
    """Validate ``psd`` up front against the image's planes (same rules as in the plane)."""
    arr = check_psd(psd)
    shape = _plane_shape(image, channel_axis) + ((3,) if channel_axis is not None else ())
    plane_psd(arr, shape, sigma)  # raises with a clear message
    return arr


def volume_psd(psd: np.ndarray, shape: tuple[int, ...], sigma: float | None) -> np.ndarray:
    """The full 3-D power spectrum ``(Z, H, W)`` for a volume of ``shape`` from ``psd``.

    A ``psd`` shaped like the volume is the power spectrum (bm3d's convention: white noise of
    std ``s`` is ``s² · Z · H · W`` everywhere); a smaller 3-D array is a noise kernel, and a
    2-D one an in-plane kernel (the noise is white noise convolved with it).
    """
    shape = tuple(int(s) for s in shape)
    if psd.shape == shape:
        if sigma is not None:
            raise ValueError(
                "give either sigma or a full power spectrum psd, not both (a full PSD already "
                "holds the noise level; sigma is only used to scale a small noise kernel)")
        if (psd < 0).any():
            raise ValueError("psd (a power spectrum) must not be negative")
        return psd
    kernel = psd[None] if psd.ndim == 2 else psd
    if kernel.ndim == 3 and all(k <= n for k, n in zip(kernel.shape, shape, strict=True)):
        return kernel_psd(kernel, shape, sigma)
    raise ValueError(
        f"psd has shape {psd.shape}; expected a power spectrum of the volume's shape {shape}, "
        "or a 3-D (or 2-D, in-plane) noise kernel no larger than the volume")


def _resolve_volume_psd(psd: Any, volume: Any, sigma: float | None) -> tuple[np.ndarray, int]:
    """``psd`` validated against the volumes of ``volume``; with its intensity power."""
    arr = _real_array(psd, "psd")
    if arr.ndim not in (2, 3):
        raise ValueError(f"psd has shape {arr.shape}; expected a 3-D power spectrum or a 3-D "
                         "(or 2-D) noise kernel")
    if not (arr != 0).any():
        raise ValueError("psd is all zeros")
    vol = _as_array(volume, "volume")
    if vol.ndim < 3:
        raise ValueError(f"volume must have at least 3 dimensions; got shape {vol.shape}")
    shape = tuple(int(s) for s in vol.shape[-3:])
    volume_psd(arr, shape, sigma)  # raises with a clear message
    return arr, 2 if arr.shape == shape else 1


def check_psf(psf: Any) -> np.ndarray:
    """``psf`` validated (2-D, finite, positive sum) and normalised to sum 1."""
    arr = _real_array(psf, "psf")
    if arr.ndim != 2:
        raise ValueError(f"psf must be a 2-D array; got shape {arr.shape}")
    top = float(np.abs(arr).max())
    arr = arr / top if top > 0 else arr  # normalised below anyway: no overflow in the sum
    total = float(arr.sum())
    if not total > 1e-12:
        raise ValueError(f"psf must have a positive sum (it is normalised to 1); its sum is {total:g}")
    return arr / total


def _resolve_psf(psf: Any, image: Any, channel_axis: int | None) -> np.ndarray:
    arr = check_psf(psf)
    shape = _plane_shape(image, channel_axis)
    if arr.shape[0] > shape[0] or arr.shape[1] > shape[1]:
        raise ValueError(f"psf of shape {arr.shape} is larger than the image plane {shape}")
    return arr


def psd_power(psd: np.ndarray, image: Any, channel_axis: int | None) -> int:
    """The intensity power of a ``psd`` argument: 2 for a power spectrum (a variance per
    frequency), 1 for a noise kernel (an amplitude: noise = unit white noise ⊛ kernel)."""
    full = _plane_shape(image, channel_axis)
    return 2 if psd.shape[:2] == full else 1


# -- public functions -----------------------------------------------------------------------

def bm3d_denoise(
    image: Any,
    sigma: float | None = None,
    *,
    noise_model: str = "auto",
    profile: str = "np",
    psd: Any = None,
    channel_axis: int | None = None,
    colorspace: str = "opp",
    threads: int = 1,
    tile: Any = "off",
) -> np.ndarray:
    """Denoise with BM3D (white or correlated Gaussian noise; grey, colour or nD stacks).

    Parameters
    ----------
    image : ndarray
        2-D image, RGB/RGBA image (with ``channel_axis``) or nD stack of either (plane by
        plane); any real dtype and any strides. Not modified.
    sigma : float or None
        Noise standard deviation in the image's own units: grey levels for integer images,
        values for float images (the units napari's contrast limits show, and those
        ``bm3d.bm3d`` takes). ``None`` estimates it per plane: the wavelet MAD for white
        noise, the flat-block noise level for correlated noise; with a full power spectrum
        ``psd`` it must be None (the spectrum holds the level).
    noise_model : {"auto", "white", "psd", "poisson-gaussian"} or NoiseModel
        "auto" (default) measures each plane's noise spectrum on flat blocks and decides
        between white and correlated Gaussian noise; correlated noise is then denoised with
        the measured power spectrum (per channel for colour), scaled to ``sigma`` when it is
        given. "white" is white noise of standard deviation ``sigma``. "psd" uses ``psd``
        (``psd`` given with "auto" means "psd"). "poisson-gaussian" is shot plus read noise
        ``var = a·E + b``: the model is estimated once from the whole input
        (:func:`~napari_restore.processors.noise_pg.estimate_noise_model`), or given as a
        :class:`~napari_restore.processors.noise_pg.NoiseModel` in the image's units; the
        image is denoised through the generalised Anscombe transform at σ = 1 and the exact
        unbiased inverse (:mod:`napari_restore.processors.vst`; ``sigma`` must be None). What "auto" chose is reported as a
        :class:`~napari_restore._arrays.Resolved` progress payload (the panel shows it and
        records it in the result layer's ``metadata["napari_restore"]["resolved"]``). See
        :mod:`napari_restore.processors.noise_model` for the measurement and its limits.
    profile : {"np", "refilter", "vn", "vn_old", "high", "deb", "lc"}
        bm3d parameter profile; each one really runs (see ``docs/compatibility.md`` for how
        "refilter" with a scalar sigma and "lc" are made to work).
    psd : ndarray, optional
        Correlated noise, in the image's own units: either its power
        spectrum, shaped like one plane ``(H, W)`` (or ``(H, W, 3)`` for colour) in bm3d's
        convention (white noise of std ``s`` is ``s² · H · W`` everywhere), or a small 2-D noise
        kernel (the noise is white noise convolved with it; see :func:`kernel_to_psd`; with
        ``sigma`` the kernel only gives the shape and ``sigma`` the level).
    channel_axis : int or None
        Colour axis of an RGB/RGBA image (alpha passes through); None for greyscale.
    colorspace : {"opp", "YCbCr"}
        Colour transform used by ``bm3d_rgb``.
    threads : int
        Library threads: 1 (default) is bit-reproducible; 0 uses all cores (faster, results
        may vary very slightly between runs).
    tile : None, "off", "auto" or (rows, cols)
        Overlapping tiles, blended, run on all cores in worker processes (the same bits for
        any number of workers): "auto" cuts planes into strips about 512 rows high (at most
        about 2048 px wide), (rows, cols)
        gives the tile size. None/"off" runs whole planes (the raw library's result; tiled
        anyway only when a plane cannot fit: see ``docs/large-images.md``). Planes of a
        stack run in parallel either way.

    Returns
    -------
    ndarray
        Denoised image, same shape and dtype as ``image``.

    References
    ----------
    .. [1] Dabov, Foi, Katkovnik & Egiazarian, IEEE TIP 16(8), 2007.
    .. [2] Mäkinen, Azzari & Foi, IEEE TIP 29, 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import bm3d_denoise
    >>> rng = np.random.default_rng(0)
    >>> noisy = (120 + rng.normal(0, 25, (32, 32))).clip(0, 255).astype(np.uint8)
    >>> bm3d_denoise(noisy, 25).dtype  # σ in grey levels
    dtype('uint8')
    """
    params = BM3D_DENOISE.validate_params(
        {"sigma": sigma, "noise_model": noise_model, "profile": profile,
         "colorspace": colorspace, "threads": threads, "tile": tile}
    )
    noise_kind(params["noise_model"], psd is not None)  # "psd" needs psd, "white" refuses it
    spec = BM3D_DENOISE
    if psd is not None:
        arr = _resolve_psd(psd, image, channel_axis, params["sigma"])
        spec = with_arrays(spec, units={"psd": psd_power(arr, image, channel_axis)}, psd=arr)
    return spec.apply(image, channel_axis=channel_axis, **params)


def bm3d_deblur(
    image: Any,
    psf: Any = None,
    *,
    psf_size: tuple[int, int] = (9, 9),
    psf_sigma: float = 2.0,
    sigma: float | None = None,
    profile: str = "np",
    boundary: str = "extend",
    clip: bool = True,
    channel_axis: int | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Deblur (and denoise) with BM3D, given the blur's point-spread function.

    Parameters
    ----------
    image : ndarray
        Blurred, noisy 2-D image, RGB/RGBA image (channels are deblurred one by one) or nD
        stack; any real dtype. Not modified.
    psf : ndarray, optional
        Your own PSF: 2-D, finite, with a positive sum (it is normalised to sum 1), no larger
        than a plane. When ``None``, a Gaussian PSF ``bm3d.gaussian_kernel(psf_size,
        psf_sigma)`` is used. With ``boundary="extend"`` the centre of an even side ``n`` is
        index ``n // 2`` (as in ``scipy.ndimage.convolve`` and MATLAB's ``conv2``);
        "periodic" keeps the library's ``np.round((n - 1) / 2)`` (``n // 2 - 1`` for sides 2,
        6, 10, ...).
    psf_size : (int, int)
        Gaussian PSF size (rows, cols).
    psf_sigma : float
        Gaussian PSF standard deviation in pixels.
    sigma : float or None
        Noise standard deviation in the image's own units (grey levels for integer images,
        values for float images); ``None`` estimates it per plane. The inverse needs some
        regularisation: 0, and any σ below ``1e-3`` × the image's span (0.255 grey levels of
        uint8; 4.1 of 12-bit data in uint16, whose span is the bit depth they use, 0–4095;
        0.001 for a float image in [0, 1]), is taken as ``1e-3`` × the span.
    profile : str
        bm3d profile (as in :func:`bm3d_denoise`).
    boundary : {"extend", "periodic"}
        How the image continues past its edges. bm3d deblurs in the Fourier domain, which
        treats the image as periodic; an ordinary photograph was blurred by linear
        convolution of a larger scene, so its opposite edges do not meet and the borders
        ring. "extend" (default) pads each plane by at least the PSF's size on every side,
        fills the margin with the smoothest continuation the blur could have produced
        (starting from a mirror image: see :mod:`napari_restore.processors.deblur_boundary`),
        deblurs the padded plane and crops it; the PSF is used as given. "periodic" is the
        raw ``bm3d.bm3d_deblurring`` call: use it for images blurred by circular convolution.
        With "extend", the first stage's regularisation is scaled up for images whose
        signal is weaker than a typical photograph's (smooth, low-contrast or dim ones:
        :func:`napari_restore.processors.deblur_boundary.ri_scale`).
    clip : bool
        True (default): the result is clipped to the input's value range, as scikit-image's
        deconvolutions clip theirs to their nominal range: the dtype's range for integer
        images (they always saturate), [0, 1] for float images inside [0, 1] (judged on the
        whole stack), ≥ 0 for other non-negative float images (counts); float images with
        negative values are not clipped. Never to the blurred image's own maximum: the sharp
        image rises above it (see ``docs/processors/bm3d_deblur.md``). False keeps what the
        inverse gives: overshoot at edges and, on an input that is not a blurred image (white
        noise, σ=0), values far outside the input's range.
    channel_axis : int or None
        Colour axis of an RGB/RGBA image; None for greyscale.
    threads : int
        Library threads (1 = bit-reproducible, 0 = all cores).

    Returns
    -------
    ndarray
        Deblurred image, same shape and dtype as ``image``; with ``clip``, inside the
        input's value range. A constant plane (all pixels
        equal, e.g. all zeros) is returned unchanged: blurring does not change a constant,
        so it is its own deblurred image (bm3d itself fails on an all-zero plane).

    Notes
    -----
    "extend" costs the padded area (a 256² plane with a 9×9 PSF becomes 288², about 27 %
    more) plus up to 100 FFT pairs for the margin (200 when it is completed again for a weak
    signal). Figures on linearly blurred scenes are in
    ``docs/processors/bm3d_deblur.md`` (``benchmarks/bench_deblur_boundary.py``).

    References
    ----------
    .. [1] Dabov, Foi, Katkovnik & Egiazarian, Proc. SPIE 6812, 2008.
    """
    params = BM3D_DEBLUR.validate_params(
        {"psf_size": psf_size, "psf_sigma": psf_sigma, "sigma": sigma, "profile": profile,
         "boundary": boundary, "clip": clip, "threads": threads}
    )
    spec = BM3D_DEBLUR
    if psf is not None:
        spec = with_arrays(spec, psf=_resolve_psf(psf, image, channel_axis))
    return spec.apply(image, channel_axis=channel_axis, **params)


def bm4d_denoise(volume: Any, sigma: float | None = None, *, noise_model: str = "auto",
                 profile: str = "np", psd: Any = None, threads: int = 1,
                 tile: Any = "off") -> np.ndarray:
    """Denoise a 3-D volume ``(Z, Y, X)`` with BM4D; a 4-D stack runs per time point.

    Parameters
    ----------
    volume : ndarray
        3-D (or nD, the last three axes being a volume) array of any real dtype. Not modified.
    sigma : float or None
        Noise standard deviation in the volume's own units (grey levels for integer data,
        values for float data); ``None`` estimates it per volume (3-D wavelet MAD for white
        noise, the flat-block level for correlated noise).
    noise_model : {"auto", "white", "psd", "poisson-gaussian"} or NoiseModel
        As in :func:`bm3d_denoise`, in 3-D: "auto" measures each volume's 3-D noise spectrum
        (8×16×16 blocks) and uses it for correlated noise; "psd" uses ``psd``.
    profile : {"np", "refilter", "lc"}
        bm4d parameter profile.
    psd : ndarray, optional
        Correlated noise, in the volume's own units: its 3-D power spectrum shaped like one
        volume ``(Z, Y, X)`` (bm3d's convention: white noise of std ``s`` is
        ``s² · Z · Y · X`` everywhere), or a 3-D (or 2-D, in-plane) noise kernel no larger
        than a volume (with ``sigma`` the kernel gives the shape, ``sigma`` the level).
    threads : int
        Library threads (1 = bit-reproducible, 0 = all cores).
    tile : None, "off", "auto" or (rows, cols)
        Overlapping tiles over the in-plane axes (Y, X), as in :func:`bm3d_denoise`.

    Returns
    -------
    ndarray
        Denoised volume, same shape and dtype.

    References
    ----------
    .. [1] Maggioni, Katkovnik, Egiazarian & Foi, IEEE TIP 22(1), 2013.
    """
    params = BM4D_DENOISE.validate_params(
        {"sigma": sigma, "noise_model": noise_model, "profile": profile, "threads": threads,
         "tile": tile})
    noise_kind(params["noise_model"], psd is not None)
    spec = BM4D_DENOISE
    if psd is not None:
        arr, power = _resolve_volume_psd(psd, volume, params["sigma"])
        spec = with_arrays(spec, units={"psd": power}, psd=arr)
    return spec.apply(volume, **params)
