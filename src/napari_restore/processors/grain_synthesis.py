"""Film-grain synthesis from a :class:`~.grain_profile.GrainProfile` (AV1 model).

Grain = (Gaussian white noise filtered by the profile's AR lag-3 model) × (the profile's
piecewise-linear scaling function of the local intensity). The AR filter is applied in the
Fourier domain (its exact stationary response, with periodic boundaries) rather than by the
raster recursion of AV1, which is equivalent in distribution and fast on whole 4K frames.

Colour: mono grain is one field added to every channel (each scaled by its own NLF);
independent (colour) grain draws a field per channel; in between, the fields are mixed so
that the channels' grains have the profile's ``channel_correlation``.
"""

from __future__ import annotations

import math
import numbers

from typing import Any

import numpy as np

from .._arrays import check_memory, from_working, single_image
from .grain_profile import GrainProfile, ar_spectrum


def _check_profile(profile: Any) -> GrainProfile:
    if isinstance(profile, GrainProfile):
        return profile
    if isinstance(profile, dict):
        return GrainProfile.from_dict(profile)
    if isinstance(profile, str):
        return GrainProfile.from_json(profile)
    raise TypeError(f"profile must be a GrainProfile (or its dict/JSON); got {type(profile).__name__}")


def unit_fields(shape: tuple[int, int], profile: GrainProfile, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """``n`` independent unit-variance grain fields ``(n, H, W)`` (float32) with the AR spectrum."""
    import scipy.fft as sfft

    h, w = shape
    amp = np.sqrt(ar_spectrum(profile.ar_coeffs, (h, w), half=True,
                              size=profile.grain_size_px)).astype(np.float32)
    out = np.empty((n, h, w), np.float32)
    for i in range(n):
        white = rng.standard_normal((h, w), dtype=np.float32)
        f = sfft.rfft2(white, workers=-1)
        f *= amp
        out[i] = sfft.irfft2(f, s=(h, w), workers=-1)
    return out


def synthesize_working(shape: tuple[int, ...], profile: GrainProfile,
                       luminance: np.ndarray | None, seed: int) -> np.ndarray:
    """Grain in working units for a plane ``(H, W)`` or ``(H, W, C)``; ``luminance`` in [0, 1]."""
    h, w = shape[:2]
    nc = 1 if len(shape) == 2 else shape[2]
    rng = np.random.default_rng(seed)
    rho = float(np.clip(profile.channel_correlation, 0.0, 1.0)) if profile.channels > 1 else 1.0
    if nc == 1 or rho >= 0.95:
        fields = unit_fields((h, w), profile, 1, rng)
        fields = np.broadcast_to(fields, (nc, h, w))
    elif rho <= 0.05:
        fields = unit_fields((h, w), profile, nc, rng)
    else:
        f = unit_fields((h, w), profile, nc + 1, rng)
        fields = np.sqrt(rho) * f[:1] + np.sqrt(1.0 - rho) * f[1:]
    ref = profile.channel_sigma()
    out = np.empty((h, w, nc), np.float32)
    lut = None
    if luminance is not None:
        lum = luminance if luminance.ndim == 2 else luminance.mean(axis=-1, dtype=np.float32)
        lut = _lut_index(lum.astype(np.float32, copy=False))
    for c in range(nc):
        pc = c if profile.channels == nc else 0
        if lut is None:
            np.multiply(fields[c], np.float32(ref[pc]), out=out[..., c])
        else:
            np.multiply(fields[c], _scaling(lut, profile.nlf_intensity, profile.nlf_sigma[pc]),
                        out=out[..., c])
    return out[..., 0] if len(shape) == 2 else out


_LUT = 1024


def _lut_index(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.clip(lum * np.float32(_LUT), 0.0, float(_LUT))
    i0 = idx.astype(np.int32)
    np.minimum(i0, _LUT - 1, out=i0)
    return i0, idx - i0


def _scaling(lut: tuple[np.ndarray, np.ndarray], xs: Any, ys: Any) -> np.ndarray:
    """The piecewise-linear scaling function, through a 1025-entry table (as AV1's LUT)."""
    i0, t = lut
    table = np.interp(np.linspace(0.0, 1.0, _LUT + 1), xs, ys).astype(np.float32)
    lo = table[i0]
    return lo + (table[i0 + 1] - lo) * t


def synthesize_grain(shape: Any, profile: Any, *, luminance: Any = None, seed: int = 0,
                     channel_axis: int | None = None, method: str = "spectral") -> np.ndarray:
    """New film grain with a profile's AR spectrum and noise-level function.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` for a greyscale profile, ``(H, W, 3)`` for a colour one (the channel
        count must match the profile's; a mismatch is a ``ValueError``).
    profile : GrainProfile or dict or JSON str
        Measured statistics (:func:`analyze_grain`).
    luminance : ndarray, optional
        The clean image the grain is for (shape ``(H, W)`` or ``(H, W, C)`` with
        ``channel_axis``): the grain strength follows the profile's NLF at its luma. Without
        it, each channel's reference sigma is used everywhere.
    seed : int
        Random seed; the same seed gives the same grain.
    channel_axis : int or None
        Colour axis of ``luminance``.
    method : {"spectral", "av1"}
        "spectral" (default, for any data): Gaussian noise shaped by the profile's AR
        spectrum in the Fourier domain. "av1": the normative AV1 film-grain synthesis (spec
        7.18.3) of the profile's AV1 parameters (``GrainProfile.to_av1_table``): 32×32 blocks
        of an AR-filtered template, integer scaling — the grain a video decoder adds, on 8-bit
        codes for uint8 images and 10-bit codes otherwise; colour in BT.709 Y'CbCr 4:4:4. AV1
        seeds are 16-bit: ``seed`` modulo 65536 (0 is AV1's 7391).

    Returns
    -------
    ndarray
        Signed grain of ``shape``, float32, in fractions of the value range — or, with
        ``luminance``, in ``luminance``'s own units (add it to ``luminance``).

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import analyze_grain, synthesize_grain
    >>> rng = np.random.default_rng(0)
    >>> prof = analyze_grain(np.clip(0.5 + 0.03 * rng.standard_normal((128, 128)), 0, 1))
    >>> synthesize_grain((64, 64), prof, seed=1).shape
    (64, 64)
    """
    profile = _check_profile(profile)
    if method not in ("spectral", "av1"):
        raise ValueError(f"method={method!r} is not one of 'spectral', 'av1'")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer; got {seed!r}")
    if isinstance(shape, str | bytes) or not hasattr(shape, "__len__") or np.ndim(shape) != 1:
        raise TypeError(f"shape must be a tuple of ints; got {shape!r:.60}")
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be (H, W) or (H, W, C); got {len(shape)} entries")
    if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool | np.bool_)
               for s in shape):
        raise TypeError(f"shape must hold integers (no floats or booleans); got {tuple(shape)!r:.80}")
    shape = tuple(int(s) for s in shape)
    if min(shape) < 1:
        raise ValueError(f"shape must have positive sizes; got {shape}")
    check_memory(shape, np.float32, 1, plane_bytes=math.prod(shape) * 8, name="shape")
    nc = 1 if len(shape) == 2 else shape[2]
    if nc != profile.channels:
        raise ValueError(
            f"shape {shape} has {nc} channel(s) but the grain profile was measured on "
            f"{profile.channels}; pass a shape with {profile.channels} channel(s)"
        )
    synth = synthesize_working
    if method == "av1":
        from .grain_av1_synth import synthesize_av1 as synth
    if luminance is None:
        return synth(shape, profile, None, int(seed))
    img = single_image(luminance, name="luminance", channel_axis=channel_axis,
                       detect_bits=True)  # on the scale analyze_grain measures it
    if tuple(img.work.shape[:2]) != shape[:2]:
        raise ValueError(
            f"luminance has spatial shape {tuple(img.work.shape[:2])}; it must match shape "
            f"{shape[:2]}")
    grain = synth(shape, profile.for_scale(img.scale), img.work, int(seed))
    return from_working(grain, img.scale, residual=True).astype(np.float32)
