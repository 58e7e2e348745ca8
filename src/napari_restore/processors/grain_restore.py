"""Grain-preserving restoration: extract grain, denoise with its PSD, put grain back.

``restore_film_grain`` is a registered processor with three outputs (denoised, grain,
regrained); ``extract_grain`` and ``preserve_grain`` are the pieces as public functions.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from .._arrays import companion_image, drain
from .grain_analysis import analyze_working, working_image
from .grain_profile import GrainProfile
from .grain_synthesis import _check_profile, synthesize_working
from .noise_model import noise_model_param
from .registry import Output, Param, ProcessorSpec, register

DENOISERS = ("bm3d", "bm3d_white", "wavelet", "nl_means", "tv_chambolle")
MODES = ("adaptive", "resynthesize")
_NOISE_FREE = 1e-6


def _luma(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 2 else x.mean(axis=-1)


def effective_sigma(plane: np.ndarray, profile: GrainProfile) -> np.ndarray:
    """Per-channel grain std averaged over the image's intensities: sqrt(mean NLF(luma)²)."""
    lum = _luma(plane)
    return np.array([
        float(np.sqrt(np.mean(profile.sigma_at(lum, c) ** 2))) for c in range(profile.channels)
    ])


def denoise_working(plane: np.ndarray, profile: GrainProfile, denoiser: str) -> np.ndarray:
    """Denoise a working plane for its measured grain.

    "bm3d" uses the grain's power spectrum (``profile.to_psd``) as correlated noise;
    "bm3d_white" the same level as white noise. Mono grain on a colour image is removed from
    the luma (channel mean) only, since it has no chroma; colour grain channel by channel.
    """
    sig = effective_sigma(plane, profile)
    if float(sig.max()) < _NOISE_FREE:
        return plane.copy()
    colour = plane.ndim == 3
    if colour and not profile.colour:
        lum = _luma(plane)
        den = denoise_working(lum, _grey(profile), denoiser)
        return np.clip(plane - lum[..., None] + den[..., None], 0.0, 1.0)
    h, w = plane.shape[:2]
    if denoiser in ("bm3d", "bm3d_white"):
        from .bm3d import bm3d_plane

        # kernels call kernels: BM3D's plane function on this working plane (the whole grain
        # plane runs in a worker process that Stop ends: the spec has isolate=True)
        if denoiser == "bm3d_white":
            return drain(bm3d_plane(plane, sigma=float(np.sqrt(np.mean(sig**2))),
                                    profile="np", colorspace="opp", noise_model="white"))
        unit = profile.unit_spectrum((h, w)) * (h * w)
        psd = unit * float(sig[0]) ** 2 if not colour else np.stack(
            [unit * float(s) ** 2 for s in sig], axis=-1)
        return drain(bm3d_plane(plane, sigma=None, profile="np", colorspace="opp", psd=psd))
    from .classic import classic_plane

    # classic methods assume white noise: the level is the grain std (correlated grain is
    # under-smoothed; that is what the PSD-aware BM3D is for)
    return classic_plane(plane, method=denoiser, sigma=float(np.sqrt(np.mean(sig**2))),
                         strength=1.0, patch_size=5, patch_distance=6, bit_depth="16")


def _grey(profile: GrainProfile) -> GrainProfile:
    """The luma part of a colour profile, as a greyscale profile."""
    import dataclasses

    return dataclasses.replace(
        profile, channels=1, nlf_sigma=(profile.nlf_luma,), colour=False,
        channel_correlation=1.0, chroma_luma_ratio=0.0,
        nlf_chroma=tuple(0.0 for _ in profile.nlf_luma),
    )


def resynthesis_profile(blind: GrainProfile, den: np.ndarray) -> GrainProfile:
    """The profile that resynthesised grain is drawn from: the scan's own (``blind``, measured
    on the grainy image) — its spectrum, grain size, AR model and colour — with its NLF lowered
    by the grain the denoiser left in ``den`` (measured on ``den`` the same way), so that the
    regrained image carries the scan's grain level: σ² = σ_scan² − σ_left² at each NLF point
    (at least a quarter of σ_scan; the same factor for every channel, as luma).

    Not the grain ``image − denoised``: a denoiser removes the fine part of the grain and
    leaves the coarse part, so that residual is much finer than the scan's grain (measured:
    0.3–0.4 px for 1.15–1.5 px grain, spectrum correlation 0.1–0.4) and weaker (its NLF
    14 % low on the regrained image, against 3–6 % with the left grain subtracted and
    2–18 % high with the scan's NLF unchanged).
    """
    import dataclasses

    left = analyze_working(den)
    x = np.asarray(blind.nlf_intensity, dtype=np.float64)
    scan = np.asarray(blind.nlf_luma, dtype=np.float64)
    kept = np.interp(x, left.nlf_intensity, left.nlf_luma)  # zeros without flat blocks
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(scan > 0, (kept / np.where(scan > 0, scan, 1.0)) ** 2, 0.0)
    factor = np.sqrt(np.clip(1.0 - share, 1.0 / 16.0, 1.0))

    def scaled(values: Any) -> tuple[float, ...]:
        return tuple(float(v) for v in np.asarray(values, dtype=np.float64) * factor)

    return dataclasses.replace(
        blind, nlf_sigma=tuple(scaled(row) for row in blind.nlf_sigma),
        nlf_luma=scaled(blind.nlf_luma), nlf_chroma=scaled(blind.nlf_chroma),
        sigma=float(blind.sigma * np.sqrt(np.mean(factor ** 2))))


def preserve_working(plane: np.ndarray, den: np.ndarray, profile: GrainProfile, *,
                     strength: float, mode: str, seed: int) -> np.ndarray:
    """Regrained working plane (see :func:`preserve_grain`)."""
    from scipy import ndimage

    if mode == "resynthesize":
        grain = synthesize_working(den.shape, profile, den, seed)
        return np.clip(den + strength * grain, 0.0, 1.0)
    # adaptive: the grain band of the residual, attenuated where it holds more than grain
    resid = plane - den
    spatial = (3.0, 3.0) + ((0.0,) if resid.ndim == 3 else ())
    band_sigma = max(4.0, 4.0 * profile.grain_size_px)
    low = ndimage.gaussian_filter(resid, (band_sigma, band_sigma) + spatial[2:])
    band = resid - low
    lum = _luma(den)
    nc = 1 if plane.ndim == 2 else plane.shape[2]
    expected = np.stack([profile.sigma_at(lum, c if profile.channels == nc else 0)
                         for c in range(nc)], axis=-1)
    if plane.ndim == 2:
        expected = expected[..., 0]
    local = np.sqrt(ndimage.gaussian_filter(band**2, spatial))
    weight = np.clip(1.5 * expected / np.maximum(local, 1e-6), 0.0, 1.0)
    return np.clip(den + strength * weight * band, 0.0, 1.0)


def restore_grain_plane(plane: np.ndarray, *, denoiser: str, strength: float, mode: str,
                        seed: int, noise_model: str = "auto",
                        ) -> Generator[Any, None, tuple[np.ndarray, ...]]:
    """Plane function: (denoised, grain, regrained) of one working plane.

    Yields sub-progress and, as a payload, the measured :class:`GrainProfile`. The grain is
    always measured here (``noise_model`` "auto"); a Poisson–Gaussian model never reaches
    the plane: the registry runs this on the stabilised image (:mod:`.vst`).
    """
    profile = analyze_working(plane)
    yield profile
    yield 0.15
    den = np.clip(denoise_working(plane, profile, denoiser), 0.0, 1.0).astype(plane.dtype)
    yield 0.8
    grain = plane - den
    # resynthesis: the scan's grain (spectrum, size) at the level the denoiser removed
    kept = resynthesis_profile(profile, den) if mode == "resynthesize" else profile
    regrained = preserve_working(plane, den, kept, strength=strength, mode=mode, seed=seed)
    yield 1.0
    return den, grain.astype(plane.dtype), regrained.astype(plane.dtype)


RESTORE_FILM_GRAIN = register(
    ProcessorSpec(
        name="restore_film_grain",
        title="Film grain",
        plane_func=restore_grain_plane,
        input_kind="rgb",
        min_size=32,
        default_target="slice",
        detect_bits=True,  # 12-bit data in uint16 on 0-4095, as analyze_grain measures them
        isolate=True,  # BM3D inside: Stop ends the worker process mid-call
        outputs=(Output("denoised", keeps_scale=True), Output("grain", kind="residual", keeps_scale=False),
                 Output("regrained", keeps_scale=True)),
        summary=(
            "Measure the film grain on flat regions (AV1 model: noise-level function, AR lag-3 "
            "spectrum, grain size, mono/colour), denoise with the grain's own power spectrum "
            "(BM3D) and put the grain back, either the original grain band weighted by "
            "luminance and texture, or newly synthesised grain with the measured statistics."
        ),
        references=(
            "Norkin & Birkbeck, 'Film grain synthesis for AV1 video codec', DCC 2018.",
            "libaom aom_dsp/noise_model.c (flat-block finder, AR noise model, scaling function).",
            "Mäkinen, Azzari & Foi, 'Collaborative filtering of correlated noise: exact "
            "transform-domain variance for improved shrinkage and patch matching', IEEE TIP 29, 2020.",
        ),
        params=(
            Param("denoiser", str, "bm3d",
                  "Clean-image estimate: BM3D with the grain's power spectrum, BM3D with white "
                  "noise of the same level, or a classic method at the grain's level.",
                  choices=DENOISERS, key=True),
            Param("strength", float, 1.0,
                  "Grain put back: 0 = denoised only, 1 = as measured.",
                  min=0.0, max=2.0, step=0.05, key=True),
            Param("mode", str, "adaptive",
                  "adaptive = re-add the residual's grain band, weighted by luminance and "
                  "texture; resynthesize = add new grain synthesised from the measured profile.",
                  choices=MODES, key=True),
            Param("seed", int, 0, "Random seed of the resynthesised grain.", min=0,
                  max=2**31 - 1),
            noise_model_param(
                "auto = the grain as measured on flat regions; poisson-gaussian = shot plus "
                "read noise (estimated from the image, once per stack): the grain is measured "
                "and removed after the generalised Anscombe transform, the denoised image "
                "comes back through the exact unbiased inverse, the grain layer is image − "
                "denoised in the image's units.",
                choices=("auto", "poisson-gaussian")),
        ),
    )
)


def restore_film_grain(
    image: Any,
    *,
    denoiser: str = "bm3d",
    strength: float = 1.0,
    mode: str = "adaptive",
    seed: int = 0,
    channel_axis: int | None = None,
    noise_model: Any = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grain-preserving denoising: ``(denoised, grain, regrained)``.

    Per plane: :func:`analyze_grain` on flat regions; denoising for that grain (with
    ``"bm3d"``, BM3D with the grain's measured power spectrum ``profile.to_psd``, not white
    noise); ``grain = image - denoised``; ``regrained`` = :func:`preserve_grain`.

    Parameters
    ----------
    image : ndarray
        2-D image, RGB/RGBA image (with ``channel_axis``) or nD stack of either; any real
        dtype and strides. Not modified. Planes must be at least 32×32.
    denoiser : {"bm3d", "bm3d_white", "wavelet", "nl_means", "tv_chambolle"}
    strength : float
        Grain put back (0–2).
    mode : {"adaptive", "resynthesize"}
    seed : int
        Seed of resynthesised grain.
    channel_axis : int or None
        Colour axis (alpha passes through), None for greyscale.
    noise_model : {"auto", "poisson-gaussian"} or NoiseModel
        "auto": the grain as measured. "poisson-gaussian" (estimated from the image, once per
        stack) or a :class:`~napari_restore.processors.noise_pg.NoiseModel` in the image's
        units: the whole step runs on the generalised Anscombe transform of the image;
        ``denoised`` comes back through the exact unbiased inverse, ``grain`` is
        ``image − denoised`` and ``regrained`` is ``denoised`` plus the grain put back (its
        transformed part through the algebraic inverse). See ``docs/noise-models.md``.

    Returns
    -------
    denoised, grain, regrained : ndarray
        ``denoised`` and ``regrained`` with the input's dtype; ``grain`` signed float.

    References
    ----------
    .. [1] Norkin & Birkbeck, DCC 2018. .. [2] Mäkinen, Azzari & Foi, IEEE TIP 29, 2020.
    """
    return RESTORE_FILM_GRAIN.apply(image, channel_axis=channel_axis, denoiser=denoiser,
                                    strength=strength, mode=mode, seed=seed,
                                    noise_model=noise_model)


def extract_grain(image: Any, denoised: Any = None, *, denoiser: str = "bm3d",
                  channel_axis: int | None = None) -> np.ndarray:
    """The grain layer ``image - clean estimate`` (signed float, in the image's units).

    ``denoised`` is the clean estimate when given; otherwise the image is denoised for its
    measured grain with ``denoiser`` (see :func:`restore_film_grain`).
    """
    RESTORE_FILM_GRAIN.param("denoiser").validate(denoiser)
    img = working_image(image, channel_axis)
    if denoised is None:
        den = denoise_working(img.work, analyze_working(img.work), denoiser)
    else:
        den = _denoised(denoised, img, channel_axis)
    return img.back(img.work - den, residual=True)


def _denoised(denoised: Any, img: Any, channel_axis: int | None) -> np.ndarray:
    """The clean estimate of ``img`` on its working scale (same shape, the image's units)."""
    return companion_image(denoised, img, channel_axis=channel_axis, min_size=32,
                           work_dtype=np.float64)


def preserve_grain(image: Any, denoised: Any, *, strength: float = 1.0, mode: str = "adaptive",
                   profile: Any = None, seed: int = 0,
                   channel_axis: int | None = None) -> np.ndarray:
    """Put grain back on a denoised image.

    Parameters
    ----------
    image : ndarray
        The grainy original (2-D, or colour with ``channel_axis``). Not modified.
    denoised : ndarray
        Its clean estimate, same shape.
    strength : float
        Grain amount (0–2); 1 = as measured.
    mode : {"adaptive", "resynthesize"}
        "adaptive" re-adds the grain band of the residual ``image - denoised`` (its part finer
        than 4× the grain size), weighted per pixel by ``min(1, 1.5 · NLF(luma) / local std)``
        so that edges and texture the denoiser removed are not put back; "resynthesize" adds
        new grain (:func:`synthesize_grain`) with the profile's statistics.
    profile : GrainProfile, optional
        Grain statistics. By default, for "adaptive", measured on ``image - denoised``; for
        "resynthesize", the grain of ``image`` itself (its spectrum and size: the residual
        of a denoiser is finer than the grain, whose coarse part it leaves) with its NLF
        lowered by the grain left in ``denoised`` (:func:`resynthesis_profile`).
    seed : int
        Seed of resynthesised grain.
    channel_axis : int or None
        Colour axis.

    Returns
    -------
    ndarray
        The regrained image, the input's dtype and value range.
    """
    strength = RESTORE_FILM_GRAIN.param("strength").validate(strength)
    mode = RESTORE_FILM_GRAIN.param("mode").validate(mode)
    seed = RESTORE_FILM_GRAIN.param("seed").validate(seed)
    img = working_image(image, channel_axis)
    den = _denoised(denoised, img, channel_axis)
    if profile is not None:
        prof = _check_profile(profile).for_scale(img.scale)
    elif mode == "resynthesize":  # the scan's grain, less what the denoiser left
        prof = resynthesis_profile(analyze_working(img.work), den)
    else:
        prof = analyze_working(img.work, den)
    nc = 1 if img.work.ndim == 2 else img.work.shape[2]
    if prof.channels != nc:
        raise ValueError(
            f"the grain profile has {prof.channels} channel(s) but the image has {nc}"
        )
    out = preserve_working(img.work, den, prof, strength=strength, mode=mode, seed=seed)
    return img.back(out)
