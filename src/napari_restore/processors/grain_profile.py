"""`GrainProfile`: the measured statistics of a film grain, serialisable to JSON.

All amplitudes are in working units: fractions of the value range of the image it was
measured on (a grain of 2.55 grey levels on uint8 data has ``sigma = 0.01``), and the profile
records that scale (``dtype``, ``value_range``): :meth:`GrainProfile.for_scale` converts it for
an image of another dtype or range. Between images with a nominal range (integers: their
dtype's; floats inside [0, 1]) grain keeps its fraction of the range, so a profile measured on
an 8-bit scan regrains the 16-bit scan of the same film; for float data in its own units
(counts) it keeps its size in those units. The model follows the AV1 film-grain model
(libaom ``noise_model.c``): a causal auto-regressive (AR) spatial filter of lag 3 and a
piecewise-linear scaling function (up to 14 points) of grain strength versus intensity.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _jsonio

GRAIN_TYPES = (
    "minimal_grain",
    "digital_noise",
    "fine_film_grain",
    "medium_film_grain",
    "coarse_film_grain",
    "simulated_regular",
)
AR_LAG = 3
SCHEMA_VERSION = 2
#: Versions read: 1 had no recorded scale (taken as a nominal [0, 1] range).
READ_VERSIONS = (1, 2)


def ar_offsets(lag: int = AR_LAG) -> list[tuple[int, int]]:
    """Causal neighbourhood of the AR model, as (dy, dx) offsets of the *predictors*.

    Raster order as in AV1: the ``lag`` rows above (``2*lag + 1`` columns each) and the
    ``lag`` pixels to the left on the current row: 24 coefficients for lag 3.
    """
    offs = [(dy, dx) for dy in range(-lag, 0) for dx in range(-lag, lag + 1)]
    offs += [(0, dx) for dx in range(-lag, 0)]
    return offs


def correlation_area(size: float) -> float:
    """Σ_d ρ(d) of white noise filtered by a discrete Gaussian of σ = ``size`` (1 for white):
    the power at frequency 0 of that grain at unit variance."""
    if size < 1e-3:
        return 1.0
    r = int(4.0 * size + 0.5)
    x = np.arange(-r, r + 1)
    g = np.exp(-0.5 * (x / size) ** 2)
    g /= g.sum()
    return float((1.0 / np.sum(g**2)) ** 2)


def ar_spectrum(coeffs: Any, shape: tuple[int, int], *, half: bool = False,
                size: float | None = None) -> np.ndarray:
    """Power spectrum shape ``1 / |1 - Σ a_k e^{iω·d_k}|²`` of the AR filter on an FFT grid,
    normalised to mean 1 over the full grid (so a unit-variance grain has this spectrum).

    ``half=True`` returns only the ``rfft2`` half ``(H, W // 2 + 1)``. With ``size`` (the
    grain size), the spectrum is limited to the correlation area of grain of that size: the
    power of unit-variance grain at frequency 0 *is* its correlation area, which the
    calibrated size measures well, whereas a lag-3 AR fit of coarse grain is nearly singular
    at frequency 0 and would add large-scale mottle.
    """
    cap = None if size is None else correlation_area(float(size))
    return _ar_spectrum(tuple(float(a) for a in coeffs), (int(shape[0]), int(shape[1])), half,
                        cap)


@functools.lru_cache(maxsize=8)
def _ar_spectrum(coeffs: tuple[float, ...], shape: tuple[int, int], half: bool,
                 cap: float | None = None) -> np.ndarray:
    h, w = shape
    fy = np.fft.fftfreq(h)
    fx = np.fft.fftfreq(w)
    if half:
        fx = fx[: w // 2 + 1].copy()
        fx[-1] = abs(fx[-1])
    denom = np.ones((h, len(fx)), dtype=np.complex128)
    offs = ar_offsets()
    for dy in sorted({d[0] for d in offs}):
        row = np.zeros(len(fx), np.complex128)
        for ak, (oy, ox) in zip(coeffs, offs, strict=True):
            if oy == dy and ak != 0.0:
                row += ak * np.exp(2j * np.pi * fx * ox)
        if row.any():
            denom -= np.exp(2j * np.pi * fy * dy)[:, None] * row[None, :]
    spec = 1.0 / np.maximum(np.abs(denom) ** 2, 1e-6)
    if half:
        # mean over the full grid from the half grid (columns 1..W/2-ish count twice)
        weight = np.full(len(fx), 2.0)
        weight[0] = 1.0
        if w % 2 == 0:
            weight[-1] = 1.0

        def mean_of(x: np.ndarray) -> float:
            return float((x.sum(axis=0) * weight).sum() / (h * w))
    else:
        def mean_of(x: np.ndarray) -> float:
            return float(x.mean())
    out = spec / mean_of(spec)
    if cap is not None:
        for _ in range(4):  # clip, renormalise, repeat: converges in a few steps
            out = np.minimum(out, cap)
            out = out / mean_of(out)
    out.setflags(write=False)
    return out


#: Accepted ranges of a profile's numbers. They comfortably include every profile
#: ``analyze_grain`` produces (measured over white to strongly correlated grain, grey and
#: colour, from flat to pure-noise images) and keep synthesis finite and cheap for anything
#: that validates (``tests/test_grain.py`` synthesises a profile at the edge of every range).
#: Three are wide because the analysis really produces such values on legitimate images:
#: ``ar_coeffs`` (and ``ar_residual``) reach ~±1e3 (~2.5) on tiny or purely periodic images,
#: whose measured autocorrelation is not positive definite, so the ridge-regularised fit is
#: ill-conditioned; the spectrum is floored at 1e-6 and capped by ``grain_size_px``, so any
#: coefficient up to 1e5 still synthesises finite grain. ``chroma_luma_ratio`` is chroma over
#: luma std with the luma floored at 1e-10: ~1e9 for anti-correlated channel grain (≤ ~4e10
#: by construction); ``periodic_peak`` is an overlap-normalised autocorrelation, < 4 by
#: construction (≈1 on checkerboards and tiled overlays). Neither is used by synthesis.
#: Intensities and amplitudes are fractions of the recorded range; a profile converted for
#: another image's range (:meth:`GrainProfile.for_scale`) may reach beyond it, up to
#: :data:`MAX_FRACTION` times.
MAX_FRACTION = 1e6
RANGES: dict[str, tuple[float, float]] = {
    "nlf_intensity": (-MAX_FRACTION, MAX_FRACTION), "nlf_sigma": (0.0, MAX_FRACTION),
    "nlf_luma": (0.0, MAX_FRACTION), "nlf_chroma": (0.0, MAX_FRACTION),
    "spectrum_freq": (0.0, 1.0), "spectrum_power": (0.0, 1.0),
    "ar_coeffs": (-1e5, 1e5), "grain_size_px": (0.0, 64.0), "sigma": (0.0, MAX_FRACTION),
    "channel_correlation": (-1.0, 1.0), "chroma_luma_ratio": (0.0, 1e11),
    "ar_residual": (0.0, 1e5), "periodic_peak": (0.0, 4.0), "flat_fraction": (0.0, 1.0),
}
MAX_SPECTRUM = 1024  # radial spectrum points (analysis writes 17)
MAX_COUNT = 10**12  # flat blocks per NLF point


def _number(v: Any, name: str) -> float:
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
        raise ValueError(f"grain profile field {name!r} must contain only numbers; got {v!r:.40}")
    try:
        out = float(v)
    except OverflowError:  # a 400-digit integer
        out = math.inf
    if not math.isfinite(out):
        raise ValueError(f"grain profile field {name!r} contains NaN or infinite values")
    lo, hi = RANGES.get(name, (-math.inf, math.inf))
    if not lo <= out <= hi:
        raise ValueError(f"grain profile field {name!r} has {out!r} outside its range [{lo:g}, {hi:g}]")
    return out


def _floats(value: Any, name: str, n: int | None = None, max_len: int = MAX_SPECTRUM) -> tuple[float, ...]:
    if isinstance(value, str | bytes | dict) or not isinstance(value, list | tuple | np.ndarray):
        raise ValueError(f"grain profile field {name!r} must be a list of numbers; got {value!r:.60}")
    if n is not None and len(value) != n:
        raise ValueError(f"grain profile field {name!r} must have {n} entries; got {len(value)}")
    if len(value) > max_len:
        raise ValueError(f"grain profile field {name!r} has {len(value)} entries; at most {max_len}")
    return tuple(_number(v, name) for v in value)


@dataclass(frozen=True)
class GrainProfile:
    """Measured film-grain statistics (frozen; round-trips through JSON).

    Attributes
    ----------
    channels : int
        1 for greyscale images, 3 for colour.
    nlf_intensity : tuple of float
        Luma intensities (in [0, 1], increasing) of the noise-level function: the points of
        the piecewise-linear scaling function (at most 14); constant beyond the ends.
    nlf_sigma : tuple of tuple of float
        Grain standard deviation at each ``nlf_intensity``, per channel (``channels`` rows).
    nlf_luma, nlf_chroma : tuple of float
        NLF of the luma grain (channel mean) and of the chroma grain (rms of each channel's
        deviation from the luma grain); equal to ``nlf_sigma[0]`` and zeros for greyscale.
    nlf_count : tuple of int
        Flat blocks that measured each point (0 only for the single point of a profile
        measured without any flat block).
    spectrum_freq, spectrum_power : tuple of float
        Radially averaged power spectrum of the (unit-variance) grain, frequencies in cycles
        per pixel, power normalised to sum 1.
    grain_size_px : float
        Correlation length: the σ (pixels) of the Gaussian filter that, applied to white
        noise, gives a grain with the same correlation area ``Σ_d ρ(d)`` (0 for white noise).
    sigma : float
        Overall grain standard deviation (flat-area weighted mean over channels).
    colour : bool
        True for independent grain per channel (dye layers), False for mono grain.
    channel_correlation : float
        Mean correlation coefficient between channel grains (1 mono, 0 independent).
    chroma_luma_ratio : float
        Standard deviation of the chroma grain over that of the luma grain (0 for mono,
        √2 for independent equal-strength channels).
    ar_coeffs : tuple of float
        AR lag-3 coefficients (24, in :func:`ar_offsets` order) of the normalised grain.
    ar_residual : float
        Variance of the AR innovation for unit-variance grain (1 − explained).
    periodic_peak : float
        Largest grain autocorrelation outside the central lobe (tiled/periodic overlays).
    flat_fraction : float
        Fraction of the image in the flat blocks the statistics were measured on.
    grain_type : str
        One of :data:`GRAIN_TYPES`.
    av1_table : str or None
        The text of the AV1 film-grain table the profile was read from
        (:meth:`from_av1_table`); :meth:`to_av1_table` writes it again unchanged while the
        profile's statistics are still that table's.
    """

    channels: int
    nlf_intensity: tuple[float, ...]
    nlf_sigma: tuple[tuple[float, ...], ...]
    nlf_luma: tuple[float, ...]
    nlf_chroma: tuple[float, ...]
    nlf_count: tuple[int, ...]
    spectrum_freq: tuple[float, ...]
    spectrum_power: tuple[float, ...]
    grain_size_px: float
    sigma: float
    colour: bool
    channel_correlation: float
    chroma_luma_ratio: float
    ar_coeffs: tuple[float, ...]
    ar_residual: float
    periodic_peak: float
    flat_fraction: float
    grain_type: str
    version: int = field(default=SCHEMA_VERSION)
    dtype: str | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    av1_table: str | None = None  # the AV1 film-grain table this profile was read from

    def __post_init__(self) -> None:
        _validate(asdict(self))

    # -- scale --------------------------------------------------------------------------
    @property
    def nominal(self) -> bool:
        """Measured on an image with a nominal range: an integer dtype, or floats in [0, 1]
        (or of unknown dtype: profiles of version 1)."""
        if self.dtype is None:
            return True
        from .._arrays import wide_integer  # 32/64-bit integers: scaled by their values' range

        dtype = np.dtype(self.dtype)
        return (dtype.kind in "iu" and not wide_integer(dtype)) or tuple(self.value_range) == (0.0, 1.0)

    def with_scale(self, scale: Any) -> GrainProfile:
        """This profile, recording that it was measured in the working units of ``scale``
        (the array boundary calls it on profiles a plane function reports)."""
        import dataclasses

        return dataclasses.replace(self, dtype=scale.dtype.name,
                                   value_range=(float(scale.low), float(scale.high)))

    def for_scale(self, scale: Any) -> GrainProfile:
        """This profile in the working units of an image of ``scale``
        (:class:`~napari_restore._arrays.ValueScale`).

        Nominal to nominal (e.g. uint8 to uint16): amplitudes keep their fraction of the
        range. Otherwise the grain keeps its size in data units (a grain of 12 counts stays
        12 counts), and the NLF's intensities are mapped through both affines.
        """
        import dataclasses

        # 32/64-bit integers are scaled by their values' range (scale.by_values), as floats
        target_nominal = (scale.dtype.kind in "iu" and not getattr(scale, "by_values", False)
                          or scale.identity)
        lo, hi = (float(v) for v in self.value_range)
        if self.nominal and target_nominal:
            return dataclasses.replace(self, dtype=scale.dtype.name,
                                       value_range=(float(scale.low), float(scale.high)))
        span, tspan = hi - lo, float(scale.span)
        factor = span / tspan
        amp = lambda values: tuple(float(v) * factor for v in values)  # noqa: E731
        shift = lo - float(scale.origin)  # first: exact for nearby origins (data near 2**62)
        inten = tuple((float(v) * span + shift) / tspan for v in self.nlf_intensity)
        return dataclasses.replace(
            self, nlf_intensity=inten, nlf_sigma=tuple(amp(r) for r in self.nlf_sigma),
            nlf_luma=amp(self.nlf_luma), nlf_chroma=amp(self.nlf_chroma),
            sigma=float(self.sigma) * factor, dtype=scale.dtype.name,
            value_range=(float(scale.low), float(scale.high)))

    # -- derived ------------------------------------------------------------------------
    def channel_sigma(self) -> np.ndarray:
        """Reference standard deviation per channel (count-weighted mean of the NLF)."""
        s = np.asarray(self.nlf_sigma, dtype=np.float64)
        w = np.asarray(self.nlf_count, dtype=np.float64)
        if w.sum() == 0:
            return s.mean(axis=1)
        return np.sqrt((s**2 * w).sum(axis=1) / w.sum())

    def sigma_at(self, intensity: Any, channel: int = 0) -> np.ndarray:
        """Grain standard deviation at ``intensity`` (the piecewise-linear scaling function)."""
        return np.interp(intensity, self.nlf_intensity, self.nlf_sigma[channel])

    def unit_spectrum(self, shape: tuple[int, int]) -> np.ndarray:
        """Grain power spectrum on an FFT grid of ``shape``, mean 1 (AR lag-3 model, limited
        at low frequencies to the correlation area of ``grain_size_px``)."""
        return ar_spectrum(self.ar_coeffs, shape, size=self.grain_size_px)

    def to_psd(self, shape: tuple[int, ...], sigma: float | None = None) -> np.ndarray:
        """Correlated-noise power spectrum for BM3D (``bm3d_denoise(psd=...)``), working units.

        ``shape`` is one plane ``(H, W)`` or, for a colour profile, ``(H, W, 3)``. bm3d's
        convention: white noise of standard deviation ``s`` has ``s² · H · W`` everywhere.
        The level is ``sigma`` when given, else each channel's reference sigma.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 3) or min(shape[:2]) < 1:
            raise ValueError(f"shape must be (H, W) or (H, W, 3); got {shape}")
        if len(shape) == 3 and shape[2] != self.channels:
            raise ValueError(
                f"shape {shape} has {shape[2]} channels but the grain profile has {self.channels}"
            )
        h, w = shape[:2]
        unit = np.array(self.unit_spectrum((h, w))) * (h * w)
        levels = self.channel_sigma() if sigma is None else np.full(self.channels, float(sigma))
        if len(shape) == 2:
            level = float(np.sqrt(np.mean(levels**2)))
            return unit * level**2
        return np.stack([unit * float(s) ** 2 for s in levels], axis=-1)

    # -- AV1 film-grain tables (libaom ``filmgrn1``; see :mod:`.grain_av1`) ---------------
    def to_av1_table(self, path: str | Path, *, bit_depth: int = 8, seed: int | None = None,
                     matrix: Any = "bt709", video_range: str = "full",
                     subsampling: str = "420", overlap: bool = True, fit: bool = False) -> str:
        """Write this profile as an AV1 film-grain table (``aomenc --film-grain-table``);
        returns the text written. See :func:`.grain_av1.profile_to_params` for the mapping
        and for what is refused (or, with ``fit=True``, fitted with a warning)."""
        from .grain_av1 import to_av1_table

        return to_av1_table(self, path, bit_depth=bit_depth, seed=seed, matrix=matrix,
                            video_range=video_range, subsampling=subsampling, overlap=overlap,
                            fit=fit)

    @classmethod
    def from_av1_table(cls, path: str | Path, *, bit_depth: int = 8, matrix: Any = "bt709",
                       video_range: str = "full", subsampling: str = "420",
                       channels: int | None = None) -> GrainProfile:
        """Read an AV1 film-grain table (libaom, grav1synth, ours); a malformed one is a
        ``ValueError`` naming the line and field."""
        from .grain_av1 import from_av1_table

        return from_av1_table(path, bit_depth=bit_depth, matrix=matrix,
                              video_range=video_range, subsampling=subsampling,
                              channels=channels)

    # -- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nlf_sigma"] = [list(r) for r in self.nlf_sigma]
        if d["av1_table"] is None:  # absent unless read from a table (older readers)
            del d["av1_table"]
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Any) -> GrainProfile:
        """Build a profile from parsed JSON, validating every field (``ValueError``)."""
        if not isinstance(data, dict):
            raise ValueError(f"a grain profile must be a JSON object; got {type(data).__name__}")
        clean = _validate(dict(data))
        return cls(**clean)

    @classmethod
    def from_json(cls, text: str | bytes) -> GrainProfile:
        """Parse and validate a profile; malformed or hostile JSON raises ``ValueError``."""
        return cls.from_dict(_jsonio.parse(text, "grain profile"))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> GrainProfile:
        return cls.from_json(_jsonio.read_text(path, "grain profile"))


_FIELDS = [f for f in GrainProfile.__dataclass_fields__]


def _validate(d: dict[str, Any]) -> dict[str, Any]:
    """Schema check of a profile's fields; returns them coerced to the dataclass's types."""
    missing = [f for f in _FIELDS
               if f not in d and f not in ("version", "dtype", "value_range", "av1_table")]
    if missing:
        raise ValueError(f"grain profile is missing field(s): {', '.join(missing)}")
    unknown = sorted(set(d) - set(_FIELDS))
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ValueError(f"grain profile has unknown field(s): "
                         f"{', '.join(repr(k)[:60] for k in unknown[:5])}{more}")
    version = d.get("version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version not in READ_VERSIONS:
        raise ValueError(f"grain profile version {version!r:.60} is not supported (expected {SCHEMA_VERSION})")
    dtype = d.get("dtype")
    if dtype is not None:
        try:
            kind = np.dtype(dtype).kind if isinstance(dtype, str) and len(dtype) < 16 else ""
        except TypeError:
            kind = ""
        if kind not in ("i", "u", "f"):
            raise ValueError(f"grain profile field 'dtype' must name an integer or float dtype; "
                             f"got {dtype!r:.60}")
        dtype = np.dtype(dtype).name
    vrange = _floats(d.get("value_range", (0.0, 1.0)), "value_range", 2)
    if not (math.isfinite(vrange[1] - vrange[0]) and vrange[1] > vrange[0]):
        raise ValueError(f"grain profile field 'value_range' must be (low, high) with low < high; "
                         f"got {vrange}")
    channels = d["channels"]
    if isinstance(channels, bool) or not isinstance(channels, int | np.integer) or channels not in (1, 3):
        raise ValueError(f"grain profile field 'channels' must be 1 or 3; got {channels!r:.60}")
    inten = _floats(d["nlf_intensity"], "nlf_intensity")
    k = len(inten)
    if not 1 <= k <= 14:
        raise ValueError(f"grain profile NLF must have 1 to 14 points; got {k}")
    if any(b <= a for a, b in zip(inten, inten[1:])):
        raise ValueError("grain profile field 'nlf_intensity' must be strictly increasing")
    rows = d["nlf_sigma"]
    if not isinstance(rows, list | tuple | np.ndarray) or len(rows) != channels:
        raise ValueError(f"grain profile field 'nlf_sigma' must have one row per channel ({channels})")
    sig = tuple(_floats(r, "nlf_sigma", k) for r in rows)
    luma = _floats(d["nlf_luma"], "nlf_luma", k)
    chroma = _floats(d["nlf_chroma"], "nlf_chroma", k)
    count = d["nlf_count"]
    if not isinstance(count, list | tuple | np.ndarray) or len(count) != k:
        raise ValueError(f"grain profile field 'nlf_count' must have {k} entries")
    if not all(isinstance(c, int | np.integer) and not isinstance(c, bool) and 0 <= c <= MAX_COUNT
               for c in count):
        raise ValueError(f"grain profile field 'nlf_count' must hold integers in [0, {MAX_COUNT}]")
    freq = _floats(d["spectrum_freq"], "spectrum_freq")
    power = _floats(d["spectrum_power"], "spectrum_power", len(freq))
    ar = _floats(d["ar_coeffs"], "ar_coeffs", len(ar_offsets()))
    scalars = {}
    for name in ("grain_size_px", "sigma", "channel_correlation", "chroma_luma_ratio",
                 "ar_residual", "periodic_peak", "flat_fraction"):
        scalars[name] = _number(d[name], name)
    if not isinstance(d["colour"], bool | np.bool_):
        raise ValueError(f"grain profile field 'colour' must be true or false; got {d['colour']!r:.60}")
    if not isinstance(d["grain_type"], str) or d["grain_type"] not in GRAIN_TYPES:
        raise ValueError(
            f"grain profile field 'grain_type'={d['grain_type']!r:.60} is not one of {', '.join(GRAIN_TYPES)}"
        )
    return {
        "channels": int(channels), "nlf_intensity": inten, "nlf_sigma": sig, "nlf_luma": luma,
        "nlf_chroma": chroma, "nlf_count": tuple(int(c) for c in count), "spectrum_freq": freq,
        "spectrum_power": power, "ar_coeffs": ar, "colour": bool(d["colour"]),
        "grain_type": str(d["grain_type"]), "version": SCHEMA_VERSION, **scalars,
        "dtype": dtype, "value_range": vrange, "av1_table": _av1_text(d.get("av1_table")),
    }


def _av1_text(text: Any) -> str | None:
    if text is None:
        return None
    from .grain_av1 import check_carried_text

    return check_carried_text(text)
