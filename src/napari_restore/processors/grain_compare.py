"""Grain compared across layers: each grain's NLF and spectrum, and a distance for each pair.

A *grain* is a signed array in the units of the image it belongs to (``extract_grain``'s
output, ``image − denoised``, a synthesised grain). Each one is measured by the film-grain
analysis (:func:`.grain_analysis.analyze_working` on ``content + grain`` with the content as
the clean estimate: flat blocks of the content, NLF, radial spectrum, grain size, channel
correlation), so the numbers are exactly those the Film grain panel shows for a profile.

With the image the grain belongs to, the NLF is grain σ against the content's intensity. The
content is whichever of ``image`` and ``image − grain`` has the less fine-scale energy: the
grain is part of a grainy image (a scan and its extracted grain, a regrained result and the
grain added to it), or independent of a clean one (a clean image and the grain synthesised for
it), and removing independent grain from an image only ever adds energy. Without an image a
grain has one NLF level, taken to hold at every intensity.

All curves are reported in the data units of the comparison (see ``docs/units.md``): those of
the first image given (grey levels for an integer image, values for a float one), or the
grains' own values when no image is given. A grain without an image is read in those units;
a measurement on an image of another dtype is converted as a profile is when it regrains such
an image (:meth:`.GrainProfile.for_scale`: an 8-bit and a 16-bit scan of one film compare by
their fraction of the range, float data in its own units keeps its size in those units).

Distances of a pair (A, B), B measured against A:

- ``nlf_rel_error``: RMS of ``σ_B(x) / σ_A(x) − 1`` over the NLF points of either inside the
  intensity range of the other (weighted by the flat blocks behind each point), over every
  channel; ``nlf_max_error`` the largest ``|σ_B / σ_A − 1|`` there, ``nlf_ratio`` the mean
  ``σ_B / σ_A`` (B stronger > 1).
- ``spectrum_corr``: Pearson correlation of the radial power spectra (the same statistic as
  the grain and codec tests).
- ``size_ratio``: ``grain_size_px`` of B over A's (2 = B's grain is twice as coarse).
- ``channel_corr_diff``: B's mean inter-channel grain correlation minus A's (colour grain;
  None for greyscale).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._arrays import (
    Cancelled,
    Progress,
    ValueScale,
    _is_cancelled,
    check_cancel,
    single_image,
)
from .grain_analysis import BLOCK, analyze_working, working_image
from .grain_profile import GrainProfile

#: Smallest grain side (pixels): one analysis block.
MIN_SIZE = BLOCK
#: A grain whose mean is larger than this many standard deviations is an image, not a grain.
MAX_MEAN_IN_STD = 1.0
#: The comparison's scale when no image is given: the grains' own values.
OWN_VALUES = ValueScale(np.dtype(np.float64), 0.0, 1.0)
#: The intensity (working units) a grain without an image is measured at.
NO_IMAGE_LEVEL = 0.5


@dataclass(frozen=True)
class GrainCurves:
    """One grain's measured curves, in the comparison's data units.

    Attributes
    ----------
    name : str
    profile : GrainProfile
        The full measurement, converted to the comparison's scale.
    intensity : ndarray (K,)
        NLF intensities (data units); one point for a grain without an image.
    sigma : ndarray (C, K)
        Grain standard deviation at each intensity, per channel (data units).
    freq, power : ndarray
        Radial power spectrum of the unit-variance grain (cycles/pixel; power sums to 1).
    grain_size_px : float
    channel_correlation : float or None
        Mean correlation between the channels' grains (None for greyscale).
    has_image : bool
        False for a grain measured without its image (its NLF holds at every intensity).
    """

    name: str
    profile: GrainProfile
    intensity: np.ndarray
    sigma: np.ndarray
    freq: np.ndarray
    power: np.ndarray
    grain_size_px: float
    channel_correlation: float | None
    has_image: bool

    @property
    def channels(self) -> int:
        return int(self.profile.channels)


@dataclass(frozen=True)
class GrainDistance:
    """The distances of grain ``b`` measured against grain ``a`` (see the module docstring)."""

    a: str
    b: str
    nlf_rel_error: float
    nlf_max_error: float
    nlf_ratio: float
    nlf_points: int
    spectrum_corr: float
    size_ratio: float
    channel_corr_diff: float | None


#: Columns of :meth:`GrainComparison.table` (short: they sit in a narrow dock).
COLUMNS = ("A", "B", "NLF err", "NLF ×", "spec ρ", "size ×", "Δ chan ρ")


@dataclass(frozen=True)
class GrainComparison:
    """The curves of every grain and the distances of every pair (i < j: B = j against A = i).

    ``unit`` names the data units of the curves ("grey levels" or "data units").
    """

    curves: tuple[GrainCurves, ...]
    distances: tuple[GrainDistance, ...]
    unit: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.curves)

    def distance(self, a: str, b: str) -> GrainDistance:
        """The distance of ``b`` against ``a`` (names), in either order of the table."""
        for d in self.distances:
            if (d.a, d.b) == (a, b):
                return d
        for d in self.distances:
            if (d.a, d.b) == (b, a):
                return grain_distance(self.curves[self.names.index(a)],
                                      self.curves[self.names.index(b)])
        raise KeyError(f"no pair ({a!r}, {b!r}); grains are {', '.join(map(repr, self.names))}")

    def table(self, digits: int = 3) -> list[dict[str, Any]]:
        """One row per pair, keyed by :data:`COLUMNS` (numbers rounded to ``digits``)."""
        def num(v: float | None) -> Any:
            if v is None:
                return "—"
            if not math.isfinite(v):
                return str(v)
            return round(float(v), digits)

        return [{"A": d.a, "B": d.b, "NLF err": num(d.nlf_rel_error), "NLF ×": num(d.nlf_ratio),
                 "spec ρ": num(d.spectrum_corr), "size ×": num(d.size_ratio),
                 "Δ chan ρ": num(d.channel_corr_diff)} for d in self.distances]


# -- one grain ----------------------------------------------------------------------------------

def _fine_energy(work: np.ndarray) -> float:
    """Mean squared first difference of the luma (fine-scale energy)."""
    luma = work if work.ndim == 2 else work.mean(axis=-1)
    return float(np.mean(np.diff(luma, axis=0) ** 2) + np.mean(np.diff(luma, axis=1) ** 2))


def _check_grain_values(g: np.ndarray, name: str, scale: ValueScale) -> None:
    std = float(g.std())
    if std <= 1e-12 * max(1.0, float(np.abs(g).max())):
        raise ValueError(f"{name} has no variance (a constant layer is not a grain); pass a "
                         "grain: image − clean estimate, or a synthesised grain")
    mean = float(g.mean())
    if abs(mean) > MAX_MEAN_IN_STD * std:
        def units(v: float) -> str:
            return f"{scale.param_from_working(v):.4g}"

        raise ValueError(
            f"{name} is not a grain: its mean ({units(mean)}) is larger than its standard "
            f"deviation ({units(std)}); pass the grain (image − clean estimate, signed), not "
            "an image")


def grain_curves(grain: Any, image: Any = None, *, channel_axis: int | None = None,
                 name: str = "grain", scale: ValueScale | None = None,
                 what: tuple[str, str] | None = None) -> GrainCurves:
    """Measure one grain: its NLF (against ``image``'s intensities) and spectrum.

    Parameters
    ----------
    grain : ndarray or GrainProfile
        Signed grain, 2-D or colour with ``channel_axis`` (at least 32×32), in the units of
        ``image`` (or of ``scale`` without an image). A ``GrainProfile`` is taken as
        measured.
    image : ndarray, optional
        The image the grain belongs to (same shape): a grainy one the grain is part of, or
        the clean one it is for (see the module docstring).
    channel_axis : int or None
        Colour axis of ``grain`` and ``image``.
    name : str
        Its label, also used in error messages.
    scale : ValueScale, optional
        The comparison's scale (default: ``image``'s, else the grain's own values).
    what : (str, str), optional
        How errors name the grain and its image (default ``name`` and "image of ``name``").

    Returns
    -------
    GrainCurves
    """
    gname, iname = what or (name, f"image of {name}")
    if isinstance(grain, GrainProfile):
        if image is not None:
            raise ValueError(f"{gname} is a measured grain profile; {iname} must be None")
        prof = grain if scale is None else grain.for_scale(scale)
        return _curves(prof, name, scale or _profile_scale(prof), True)
    if image is None:
        scale = OWN_VALUES if scale is None else scale
        g = single_image(grain, channel_axis=channel_axis, name=gname, min_size=MIN_SIZE,
                         scale=OWN_VALUES, any_dtype=True, work_dtype=np.float64).work
        g = scale.param_to_working(g)
        _check_grain_values(g, gname, scale)
        content = np.full_like(g, NO_IMAGE_LEVEL)
        prof = analyze_working(content + g, content).with_scale(scale)
        return _curves(prof, name, scale, False)
    img = working_image(image, channel_axis, name=iname)
    if tuple(np.shape(grain)) != img.shape:
        raise ValueError(f"{gname} has shape {tuple(np.shape(grain))}; it must match the shape "
                         f"of {iname}, {img.shape}")
    g = single_image(grain, channel_axis=channel_axis, name=gname, min_size=MIN_SIZE,
                     scale=OWN_VALUES, any_dtype=True, work_dtype=np.float64).work
    g = img.scale.param_to_working(g)  # the image's units -> its working scale
    _check_grain_values(g, gname, img.scale)
    without = img.work - g
    if _fine_energy(without) <= _fine_energy(img.work):  # the grain is part of the image
        content, grainy = without, img.work
    else:  # a clean image and a grain for it
        content, grainy = img.work, img.work + g
    prof = analyze_working(grainy, content).with_scale(img.scale)
    if scale is not None:
        prof = prof.for_scale(scale)
    return _curves(prof, name, scale or img.scale, True)


def _profile_scale(prof: GrainProfile) -> ValueScale:
    lo, hi = prof.value_range
    return ValueScale(np.dtype(prof.dtype or "float64"), float(lo), float(hi))


def _curves(prof: GrainProfile, name: str, scale: ValueScale, has_image: bool) -> GrainCurves:
    span, origin = float(scale.span), float(scale.origin)
    inten = np.asarray(prof.nlf_intensity, np.float64) * span + origin
    sigma = np.asarray(prof.nlf_sigma, np.float64) * span
    for a in (inten, sigma):
        a.setflags(write=False)
    freq = np.asarray(prof.spectrum_freq, np.float64)
    power = np.asarray(prof.spectrum_power, np.float64)
    cc = float(prof.channel_correlation) if prof.channels > 1 else None
    return GrainCurves(name, prof, inten, sigma, freq, power, float(prof.grain_size_px), cc,
                       has_image)


# -- a pair ---------------------------------------------------------------------------------------

def _range(c: GrainCurves) -> tuple[float, float]:
    if not c.has_image:
        return -math.inf, math.inf
    return float(c.intensity[0]), float(c.intensity[-1])


def _sigma_at(c: GrainCurves, x: np.ndarray) -> np.ndarray:
    """(C, len(x)) σ of ``c`` at intensities ``x`` (constant beyond its ends)."""
    return np.stack([np.interp(x, c.intensity, row) for row in c.sigma])


def grain_distance(a: GrainCurves, b: GrainCurves) -> GrainDistance:
    """The distances of grain ``b`` against grain ``a`` (see the module docstring).

    Both must be greyscale or both colour (``ValueError`` otherwise).
    """
    for which, c in (("a", a), ("b", b)):
        if not isinstance(c, GrainCurves):
            raise TypeError(f"{which} must be GrainCurves (from grain_curves); got "
                            f"{type(c).__name__}")
    if a.channels != b.channels:
        raise ValueError(f"grains {a.name!r} ({a.channels} channel(s)) and {b.name!r} "
                         f"({b.channels}) cannot be compared: both must be greyscale or both "
                         "colour")
    # NLF: the points of each inside the other's intensity range (all, when none overlap)
    (alo, ahi), (blo, bhi) = _range(a), _range(b)
    xs, ws = [], []
    for c, lo, hi in ((a, blo, bhi), (b, alo, ahi)):
        inside = (c.intensity >= lo) & (c.intensity <= hi)
        xs.append(c.intensity[inside])
        ws.append(np.maximum(np.asarray(c.profile.nlf_count, np.float64)[inside], 1.0))
    if not sum(len(x) for x in xs):
        xs = [a.intensity, b.intensity]
        ws = [np.maximum(np.asarray(c.profile.nlf_count, np.float64), 1.0) for c in (a, b)]
    x, w = np.concatenate(xs), np.concatenate(ws)
    sa, sb = _sigma_at(a, x), _sigma_at(b, x)
    tiny = 1e-12 * max(1.0, float(np.abs(a.sigma).max()), float(np.abs(b.sigma).max()))
    ratio = sb / np.maximum(sa, tiny)
    rel = ratio - 1.0
    weights = np.broadcast_to(w, rel.shape)
    rms = float(np.sqrt(np.sum(weights * rel**2) / np.sum(weights)))
    # spectra on A's frequencies
    pb = b.power if np.array_equal(a.freq, b.freq) else np.interp(a.freq, b.freq, b.power)
    if np.array_equal(a.power, pb):
        corr = 1.0
    elif np.std(a.power) == 0 or np.std(pb) == 0:
        corr = math.nan
    else:
        corr = float(np.clip(np.corrcoef(a.power, pb)[0, 1], -1.0, 1.0))
    if a.grain_size_px > 0:
        size = b.grain_size_px / a.grain_size_px
    else:
        size = 1.0 if b.grain_size_px == 0 else math.inf
    cdiff = None
    if a.channel_correlation is not None and b.channel_correlation is not None:
        cdiff = b.channel_correlation - a.channel_correlation
    return GrainDistance(a.name, b.name, rms, float(np.abs(rel).max()),
                         float(np.average(ratio, weights=weights)), len(x), corr,
                         float(size), cdiff)


# -- many grains ----------------------------------------------------------------------------------

def _entries(grains: Any, images: Any, names: Any) -> tuple[list[Any], list[Any], list[str]]:
    if isinstance(grains, Mapping):
        if names is not None:
            raise ValueError("names must be None when grains is a mapping (its keys are the names)")
        names = [str(k) for k in grains]
        grains = list(grains.values())
    elif isinstance(grains, np.ndarray) or not isinstance(grains, Iterable) or \
            isinstance(grains, str | bytes):
        raise TypeError("grains must be a list (or a name -> grain mapping) of two or more "
                        f"grain arrays; got {type(grains).__name__}")
    grains = list(grains)
    if len(grains) < 2:
        raise ValueError(f"grains must hold at least two grains to compare; got {len(grains)}")
    if images is None:
        images = [None] * len(grains)
    elif isinstance(images, np.ndarray) or not isinstance(images, Iterable) or \
            isinstance(images, str | bytes):
        raise TypeError(f"images must be a list (one image or None per grain); got "
                        f"{type(images).__name__}")
    images = list(images)
    if len(images) != len(grains):
        raise ValueError(f"images must have one entry (an image or None) per grain: "
                         f"{len(grains)}; got {len(images)}")
    if names is None:
        names = [f"grain {k + 1}" for k in range(len(grains))]
    elif isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise TypeError(f"names must be a list of strings; got {type(names).__name__}")
    names = list(names)
    if len(names) != len(grains) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"names must be {len(grains)} non-empty strings (one per grain); "
                         f"got {names!r:.120}")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"names must be unique; {dup!r} appears more than once")
    return grains, images, names


def iter_compare_grains(grains: Any, *, images: Any = None, names: Any = None,
                        channel_axis: int | None = None, cancel: Any = None,
                        ) -> Generator[Progress, None, GrainComparison]:
    """:func:`compare_grains` as a generator: yields a :class:`~._arrays.Progress` after each
    grain is measured (``cancel`` is checked between grains: ``Cancelled``), returns the
    :class:`GrainComparison`."""
    cancel = check_cancel(cancel)
    grains, images, names = _entries(grains, images, names)
    first = next((k for k, im in enumerate(images) if im is not None), None)
    if first is None:
        scale = OWN_VALUES
    else:
        scale = working_image(images[first], channel_axis, name=f"images[{first}]").scale
    n = len(grains)
    curves: list[GrainCurves] = []
    for k, (g, im, name) in enumerate(zip(grains, images, names, strict=True)):
        if _is_cancelled(cancel):
            raise Cancelled()
        c = grain_curves(g, im, channel_axis=channel_axis, name=name, scale=scale,
                         what=(f"grains[{k}] ({name!r})", f"images[{k}]"))
        if curves and c.channels != curves[0].channels:
            raise ValueError(
                f"grains must be all greyscale or all colour: grains[0] ({curves[0].name!r}) "
                f"has {curves[0].channels} channel(s), grains[{k}] ({name!r}) {c.channels}")
        curves.append(c)
        yield Progress(k + 1, n, (k + 1) / n)
    pairs = tuple(grain_distance(curves[i], curves[j]) for i in range(n) for j in range(i + 1, n))
    return GrainComparison(tuple(curves), pairs, scale.unit)


def compare_grains(grains: Any, *, images: Any = None, names: Any = None,
                   channel_axis: int | None = None, cancel: Any = None) -> GrainComparison:
    """Compare two or more grains: NLF curves, power spectra and a distance for each pair.

    Parameters
    ----------
    grains : list of ndarray (or GrainProfile), or mapping name -> ndarray
        The grains (signed, 2-D or colour with ``channel_axis``, at least 32×32), e.g. a
        scan's grain, the extracted grain, the resynthesised grain, a reference stock's
        grain. All greyscale or all colour. Not modified.
    images : list, optional
        For each grain, the image it belongs to (same shape) or None; gives the NLF its
        intensities (see the module docstring).
    names : list of str, optional
        Labels (default "grain 1", "grain 2", …); unique.
    channel_axis : int or None
        Colour axis of every grain and image.
    cancel : threading.Event or callable, optional
        Checked between grains.

    Returns
    -------
    GrainComparison
        ``curves`` (in the data units of the first image given, else the grains' own
        values) and ``distances`` for each pair ``i < j`` (``j`` against ``i``).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> fine = ndimage.gaussian_filter(rng.standard_normal((128, 128)), 1.0)
    >>> coarse = ndimage.gaussian_filter(rng.standard_normal((128, 128)), 2.0)
    >>> cmp = compare_grains([fine, coarse], names=["fine", "coarse"])
    >>> d = cmp.distance("fine", "coarse")
    >>> 1.6 < d.size_ratio < 2.4
    True
    """
    gen = iter_compare_grains(grains, images=images, names=names, channel_axis=channel_axis,
                              cancel=cancel)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
