"""AV1 film-grain tables: libaom's ``filmgrn1`` text format, and the mapping to and from a
:class:`~.grain_profile.GrainProfile`.

The format (libaom ``aom_dsp/grain_table.c``, also written by grav1synth and read by
``aomenc --film-grain-table``)::

    filmgrn1
    E <start> <end> <apply_grain> <random_seed> <update_parameters>
    \\tp <ar_coeff_lag> <ar_coeff_shift> <grain_scale_shift> <scaling_shift>
       <chroma_scaling_from_luma> <overlap_flag> <cb_mult> <cb_luma_mult> <cb_offset>
       <cr_mult> <cr_luma_mult> <cr_offset>
    \\tsY <n> <x0> <y0> ...          (n <= 14 points)
    \\tsCb <n> <x0> <y0> ...         (n <= 10)
    \\tsCr <n> <x0> <y0> ...         (n <= 10)
    \\tcY <2·lag·(lag+1) coefficients>
    \\tcCb <2·lag·(lag+1) + 1 coefficients>   (the last one weighs the co-sited luma grain)
    \\tcCr <2·lag·(lag+1) + 1 coefficients>

one ``E`` entry per time segment (times in 1/10 000 000 s; the parameter lines only when
``update_parameters`` is 1). The ranges are those of the AV1 bitstream (spec 5.9.30): points
and scalings 0–255 with increasing x, coefficients −128–127, shifts 6–9 / 0–3 / 8–11,
multipliers 0–255, offsets 0–511. The format has no field for ``clip_to_restricted_range``
(aomenc signals 0) nor for the bit depth (the video's).

**The mapping** (documented with figures in ``docs/av1-film-grain.md``). A profile's
amplitudes are fractions of its recorded range; the table's integers are codes of a
``bit_depth`` video whose code range spans that range (full range: 0 ↔ 0, 2^bd − 1 ↔ 1;
limited: 16·2^(bd−8) ↔ 0, 235·2^(bd−8) ↔ 1 for luma). The spec adds to a sample of
intensity index x the noise ``Round2(ScalingLut[x] · g, scaling_shift)``, where g is a
sample of the AR-filtered grain template, so grain of standard deviation σ (codes) needs

    scaling y = σ · 2^scaling_shift / S,

S being the standard deviation of the template samples the blocks are cut from (measured on
the spec's own generator over :data:`SIM_SEEDS`; it depends on the AR coefficients, the bit
depth and ``grain_scale_shift``). Colour profiles go to Y/Cb/Cr with a matrix (BT.709 by
default): the per-point RGB covariance (the profile's per-channel σ, equal pairwise
correlation ``channel_correlation``) becomes σ_Y, σ_Cb, σ_Cr per point, and the luma–chroma
correlations set the chroma planes' 25th AR coefficient (the weight of the co-sited luma
grain).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _jsonio

MAGIC = "filmgrn1"
#: Largest table file read (bytes); larger files are refused before anything is read.
MAX_TABLE_BYTES = 1_000_000
#: Largest table text a profile carries (for byte-identical re-export).
MAX_PROFILE_TABLE_CHARS = 200_000
#: ``end`` of the one segment that covers a whole clip.
END_OF_TIME = 2**63 - 1
#: libaom's time unit: 1/10 000 000 s.
TICKS_PER_SECOND = 10_000_000
DEFAULT_SEED = 7391
#: Seeds of the grain templates whose statistics define the mapping (fixed: the mapping is
#: a deterministic function of the table; 0xB524 and 0x49D8 are avoided as they zero a
#: chroma generator).
SIM_SEEDS = (1, 4099, 7391, 12345, 23456, 34567, 45678, 56789, 60000, 65535, 31337, 2718)
#: A template clipped on more than this fraction of its samples gets a larger
#: ``grain_scale_shift``.
MAX_CLIPPED = 0.001
#: Kr, Kb of the RGB → Y'CbCr matrices.
MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114), "bt2020": (0.2627, 0.0593)}
SUBSAMPLING = {"420": (1, 1), "422": (1, 0), "444": (0, 0)}
#: Correlation target tolerance when choosing the chroma planes' luma coefficient.
CORR_TOLERANCE = 0.02

_P_FIELDS = ("ar_coeff_lag", "ar_coeff_shift", "grain_scale_shift", "scaling_shift",
             "chroma_scaling_from_luma", "overlap_flag", "cb_mult", "cb_luma_mult",
             "cb_offset", "cr_mult", "cr_luma_mult", "cr_offset")
_P_RANGES = {"ar_coeff_lag": (0, 3), "ar_coeff_shift": (6, 9), "grain_scale_shift": (0, 3),
             "scaling_shift": (8, 11), "chroma_scaling_from_luma": (0, 1),
             "overlap_flag": (0, 1), "cb_mult": (0, 255), "cb_luma_mult": (0, 255),
             "cb_offset": (0, 511), "cr_mult": (0, 255), "cr_luma_mult": (0, 255),
             "cr_offset": (0, 511)}
_MAX_POINTS = {"y": 14, "cb": 10, "cr": 10}


@dataclass(frozen=True)
class Av1GrainParams:
    """The film-grain parameters of one table entry (names as in the AV1 spec / libaom).

    Scaling points are ``((x, y), ...)``; AR coefficients are the signed integers (the
    bitstream's ``ar_coeffs_*_plus_128`` minus 128). ``clip_to_restricted_range`` is not part
    of the table format (aomenc signals 0); it is kept here for synthesis.
    """

    apply_grain: int = 1
    update_parameters: int = 1
    random_seed: int = DEFAULT_SEED
    ar_coeff_lag: int = 3
    ar_coeff_shift: int = 7
    grain_scale_shift: int = 0
    scaling_shift: int = 8
    chroma_scaling_from_luma: int = 0
    overlap_flag: int = 1
    cb_mult: int = 0
    cb_luma_mult: int = 0
    cb_offset: int = 0
    cr_mult: int = 0
    cr_luma_mult: int = 0
    cr_offset: int = 0
    scaling_points_y: tuple[tuple[int, int], ...] = ()
    scaling_points_cb: tuple[tuple[int, int], ...] = ()
    scaling_points_cr: tuple[tuple[int, int], ...] = ()
    ar_coeffs_y: tuple[int, ...] = (0,) * 24
    ar_coeffs_cb: tuple[int, ...] = (0,) * 25
    ar_coeffs_cr: tuple[int, ...] = (0,) * 25
    clip_to_restricted_range: int = 0

    def __post_init__(self) -> None:
        for plane in ("y", "cb", "cr"):  # tuples of Python ints (hashable, written as such)
            for name, pairs in ((f"scaling_points_{plane}", True), (f"ar_coeffs_{plane}", False)):
                value = _int_seq(getattr(self, name), pairs)
                if value is None:
                    what = "(x, y) pairs of integers" if pairs else "integers"
                    raise ValueError(f"invalid AV1 film-grain parameters: {name} must be a "
                                     f"sequence of {what}; got {getattr(self, name)!r:.60}")
                object.__setattr__(self, name, value)
        problems = _check_params(self)
        if problems:
            raise ValueError("invalid AV1 film-grain parameters: " + "; ".join(problems))

    @property
    def has_chroma(self) -> bool:
        return bool(self.chroma_scaling_from_luma or self.scaling_points_cb
                    or self.scaling_points_cr)


def _int_seq(value: Any, pairs: bool) -> tuple | None:
    """``value`` as a tuple of Python ints (or of ``(x, y)`` pairs of them); None when it is
    not one (floats, booleans, strings and ragged pairs are not)."""
    def one(v: Any) -> int:
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer):
            raise TypeError
        return int(v)

    try:
        items = tuple(value)
        if pairs:
            out = tuple(tuple(pt) for pt in items)
            if any(len(pt) != 2 for pt in out):
                return None
            return tuple((one(x), one(y)) for x, y in out)
        return tuple(one(v) for v in items)
    except TypeError:
        return None


def _check_params(p: Av1GrainParams) -> list[str]:
    out = []
    for name, (lo, hi) in _P_RANGES.items():
        v = getattr(p, name)
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not lo <= v <= hi:
            out.append(f"{name}={v!r} (allowed {lo}..{hi})")
    for name, lo, hi in (("apply_grain", 0, 1), ("update_parameters", 0, 1),
                         ("random_seed", 0, 65535), ("clip_to_restricted_range", 0, 1)):
        v = getattr(p, name)
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not lo <= v <= hi:
            out.append(f"{name}={v!r} (allowed {lo}..{hi})")
    for plane, most in _MAX_POINTS.items():
        pts = getattr(p, f"scaling_points_{plane}")
        if len(pts) > most:
            out.append(f"scaling_points_{plane} has {len(pts)} points (at most {most})")
        xs = [int(x) for x, _ in pts]
        if any(not 0 <= int(v) <= 255 for pt in pts for v in pt):
            out.append(f"scaling_points_{plane} has values outside 0..255")
        if any(b <= a for a, b in zip(xs, xs[1:])):
            out.append(f"scaling_points_{plane} x values are not increasing")
    if p.chroma_scaling_from_luma and (p.scaling_points_cb or p.scaling_points_cr):
        out.append("chroma_scaling_from_luma=1 with chroma scaling points (AV1 allows none)")
    lag = p.ar_coeff_lag if isinstance(p.ar_coeff_lag, int | np.integer) else 3
    n = 2 * lag * (lag + 1)
    for plane, count in (("y", n), ("cb", n + 1), ("cr", n + 1)):
        c = getattr(p, f"ar_coeffs_{plane}")
        if len(c) != count:
            out.append(f"ar_coeffs_{plane} has {len(c)} coefficients (lag {lag} needs {count})")
        if any(not -128 <= int(v) <= 127 for v in c):
            out.append(f"ar_coeffs_{plane} has values outside -128..127")
    return out


@dataclass(frozen=True)
class Av1GrainSegment:
    """One ``E`` entry: parameters for ``start <= t < end`` (1/10 000 000 s)."""

    start_time: int
    end_time: int
    params: Av1GrainParams


@dataclass(frozen=True)
class Av1GrainTable:
    """A parsed ``filmgrn1`` table."""

    segments: tuple[Av1GrainSegment, ...]

    def first(self) -> Av1GrainParams:
        """The parameters of the first entry that carries them (``ValueError`` if none)."""
        for seg in self.segments:
            if seg.params.apply_grain and seg.params.update_parameters:
                return seg.params
        raise ValueError("the AV1 film-grain table has no entry that applies grain with "
                         "parameters (every entry has apply_grain or update_parameters 0)")

    def params_at(self, time: int) -> Av1GrainParams | None:
        """The entry's parameters for time stamp ``time`` (None outside every segment)."""
        for seg in self.segments:
            if seg.start_time <= time < seg.end_time:
                return seg.params
        return None

    def format(self) -> str:
        return format_table(self)


# -- text -------------------------------------------------------------------------------------

def format_table(table: Av1GrainTable) -> str:
    """The table in libaom's exact text layout (``aom_film_grain_table_write``)."""
    out = [MAGIC + "\n"]
    for seg in table.segments:
        p = seg.params
        out.append(f"E {seg.start_time} {seg.end_time} {p.apply_grain} {p.random_seed} "
                   f"{p.update_parameters}\n")
        if not p.update_parameters:
            continue
        out.append("\tp " + " ".join(str(getattr(p, f)) for f in _P_FIELDS) + "\n")
        out.append(f"\tsY {len(p.scaling_points_y)} "
                   + "".join(f" {x} {y}" for x, y in p.scaling_points_y) + "\n")
        for name, pts in (("Cb", p.scaling_points_cb), ("Cr", p.scaling_points_cr)):
            out.append(f"\ts{name} {len(pts)}" + "".join(f" {x} {y}" for x, y in pts) + "\n")
        for name, c in (("Y", p.ar_coeffs_y), ("Cb", p.ar_coeffs_cb), ("Cr", p.ar_coeffs_cr)):
            out.append(f"\tc{name}" + "".join(f" {v}" for v in c) + "\n")
    return "".join(out)


_INT = re.compile(r"[+-]?\d{1,20}\Z")


class _Lines:
    """Numbered non-blank lines of a table, with errors that name the line and field."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = [(i + 1, ln.split()) for i, ln in enumerate(text.split("\n"))]
        self.lines = [(n, t) for n, t in self.lines if t]
        self.pos = 0

    def error(self, line: int | None, field: str, problem: str) -> ValueError:
        where = f"line {line}, " if line is not None else ""
        return ValueError(f"AV1 film-grain table {self.source}: {where}{field}: {problem}")

    def peek(self) -> tuple[int, list[str]] | None:
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def take(self, key: str, field: str, last_line: int) -> tuple[int, list[str]]:
        item = self.peek()
        if item is None:
            raise self.error(last_line, field, f"missing line '{key} …' after this line "
                             "(the file ends early)")
        n, toks = item
        if toks[0] != key:
            raise self.error(n, field, f"expected a line starting with '{key}', got "
                             f"'{toks[0][:20]}' (a line is missing or out of order)")
        self.pos += 1
        return n, toks[1:]

    def ints(self, line: int, toks: list[str], names: list[str]) -> list[int]:
        out = []
        for tok, name in zip(toks, names):
            if not _INT.match(tok):
                raise self.error(line, name, f"expected an integer, got '{tok[:20]}'")
            out.append(int(tok))
        return out


def _check_ascii(data: bytes, source: str) -> str:
    bad = re.search(rb"[^\t\n\r\x20-\x7e]", data)
    if bad is not None:
        at = bad.start()
        line = data.count(b"\n", 0, at) + 1
        col = at - (data.rfind(b"\n", 0, at) + 1) + 1
        raise ValueError(f"AV1 film-grain table {source}: line {line}, column {col}: "
                         f"non-ASCII or control byte 0x{data[at]:02X} (the format is ASCII text)")
    return data.decode("ascii")


def parse_table(text: str | bytes, source: str = "(text)") -> Av1GrainTable:
    """Parse and validate a ``filmgrn1`` table; any fault is a ``ValueError`` naming the line
    and field."""
    if isinstance(text, str):
        data = text.encode("utf-8", "surrogatepass")
    elif isinstance(text, bytes | bytearray):
        data = bytes(text)
    else:
        raise TypeError(f"an AV1 film-grain table must be str or bytes; got {type(text).__name__}")
    if len(data) > MAX_TABLE_BYTES:
        raise ValueError(f"AV1 film-grain table {source}: larger than {MAX_TABLE_BYTES} bytes")
    txt = _check_ascii(data, source).replace("\r\n", "\n")
    rd = _Lines(txt, source)
    head = rd.peek()
    if head is None or head[1] != [MAGIC]:
        got = "an empty file" if head is None else f"'{' '.join(head[1])[:30]}'"
        raise rd.error(1 if head is None else head[0], "header",
                       f"expected '{MAGIC}' (a libaom film-grain table), got {got}")
    rd.pos = 1
    segments = []
    last = head[0]
    while rd.peek() is not None:
        segments.append(_parse_entry(rd))
        last = rd.lines[rd.pos - 1][0]
    if not segments:
        raise rd.error(last, "entries", "the table has no 'E' entry")
    return Av1GrainTable(tuple(segments))


def _parse_entry(rd: _Lines) -> Av1GrainSegment:
    n, toks = rd.take("E", "entry", 0)
    names = ["start_time", "end_time", "apply_grain", "random_seed", "update_parameters"]
    if len(toks) != 5:
        raise rd.error(n, "entry", f"'E' needs 5 numbers ({', '.join(names)}); got {len(toks)}")
    start, end, apply, seed, update = rd.ints(n, toks, names)
    for name, v, lo, hi in (("start_time", start, 0, END_OF_TIME),
                            ("end_time", end, 0, END_OF_TIME), ("apply_grain", apply, 0, 1),
                            ("random_seed", seed, 0, 65535), ("update_parameters", update, 0, 1)):
        if not lo <= v <= hi:
            raise rd.error(n, name, f"{v} is outside {lo}..{hi}")
    if end <= start:
        raise rd.error(n, "end_time", f"{end} must be greater than start_time {start}")
    if not update:
        return Av1GrainSegment(start, end, Av1GrainParams(
            apply_grain=apply, update_parameters=0, random_seed=seed, ar_coeff_lag=0,
            ar_coeffs_y=(), ar_coeffs_cb=(0,), ar_coeffs_cr=(0,)))
    pn, pt = rd.take("p", "params", n)
    if len(pt) != 12:
        raise rd.error(pn, "params", f"'p' needs 12 numbers ({', '.join(_P_FIELDS)}); "
                       f"got {len(pt)}")
    vals = dict(zip(_P_FIELDS, rd.ints(pn, pt, list(_P_FIELDS))))
    for name, (lo, hi) in _P_RANGES.items():
        if not lo <= vals[name] <= hi:
            raise rd.error(pn, name, f"{vals[name]} is outside {lo}..{hi}")
    points = {}
    last = pn
    for plane, key in (("y", "sY"), ("cb", "sCb"), ("cr", "sCr")):
        ln, st = rd.take(key, f"scaling_points_{plane}", last)
        last = ln
        if not st:
            raise rd.error(ln, f"num_{plane}_points", "missing the number of points")
        (count,) = rd.ints(ln, st[:1], [f"num_{plane}_points"])
        most = _MAX_POINTS[plane]
        if not 0 <= count <= most:
            raise rd.error(ln, f"num_{plane}_points", f"{count} is outside 0..{most}")
        if len(st) - 1 != 2 * count:
            raise rd.error(ln, f"scaling_points_{plane}",
                           f"{count} points need {2 * count} numbers; got {len(st) - 1}")
        nums = rd.ints(ln, st[1:], [f"scaling_points_{plane}[{i // 2}] {'xy'[i % 2]}"
                                    for i in range(2 * count)])
        pts = tuple((nums[2 * i], nums[2 * i + 1]) for i in range(count))
        for i, (x, y) in enumerate(pts):
            for axis, v in (("x", x), ("y", y)):
                if not 0 <= v <= 255:
                    raise rd.error(ln, f"scaling_points_{plane}[{i}] {axis}",
                                   f"{v} is outside 0..255")
            if i and x <= pts[i - 1][0]:
                raise rd.error(ln, f"scaling_points_{plane}[{i}] x",
                               f"{x} is not greater than the previous point's {pts[i - 1][0]} "
                               "(points must be in increasing order)")
        points[plane] = pts
    if vals["chroma_scaling_from_luma"] and (points["cb"] or points["cr"]):
        raise rd.error(pn, "chroma_scaling_from_luma",
                       "is 1 but the table gives chroma scaling points (AV1 allows none then)")
    lag = vals["ar_coeff_lag"]
    nc = 2 * lag * (lag + 1)
    coeffs = {}
    for plane, key, count in (("y", "cY", nc), ("cb", "cCb", nc + 1), ("cr", "cCr", nc + 1)):
        ln, ct = rd.take(key, f"ar_coeffs_{plane}", last)
        last = ln
        if len(ct) != count:
            raise rd.error(ln, f"ar_coeffs_{plane}",
                           f"ar_coeff_lag {lag} needs {count} coefficients; got {len(ct)}")
        c = rd.ints(ln, ct, [f"ar_coeffs_{plane}[{i}]" for i in range(count)])
        for i, v in enumerate(c):
            if not -128 <= v <= 127:
                raise rd.error(ln, f"ar_coeffs_{plane}[{i}]", f"{v} is outside -128..127")
        coeffs[plane] = tuple(c)
    params = Av1GrainParams(
        apply_grain=apply, update_parameters=1, random_seed=seed, **vals,
        scaling_points_y=points["y"], scaling_points_cb=points["cb"],
        scaling_points_cr=points["cr"], ar_coeffs_y=coeffs["y"], ar_coeffs_cb=coeffs["cb"],
        ar_coeffs_cr=coeffs["cr"])
    return Av1GrainSegment(start, end, params)


def read_table(path: str | Path) -> Av1GrainTable:
    """Read a ``filmgrn1`` file (a regular file of at most :data:`MAX_TABLE_BYTES`, checked
    before reading)."""
    data = _jsonio.read_bytes(path, "AV1 film-grain table", MAX_TABLE_BYTES)
    return parse_table(data, str(path))


def write_table(path: str | Path, table: Av1GrainTable) -> None:
    Path(path).write_text(format_table(table), encoding="ascii", newline="\n")


# -- colour -----------------------------------------------------------------------------------

def rgb_to_ycbcr_matrix(matrix: Any = "bt709") -> np.ndarray:
    """The 3×3 matrix taking R'G'B' (fractions of the range) to Y' and the colour
    differences Cb, Cr (in [-0.5, 0.5]); ``matrix`` is a name of :data:`MATRICES` or
    ``(Kr, Kb)``."""
    if isinstance(matrix, str):
        if matrix.lower() not in MATRICES:
            raise ValueError(f"matrix={matrix!r} is not one of {', '.join(MATRICES)} "
                             "(or give (Kr, Kb))")
        kr, kb = MATRICES[matrix.lower()]
    else:
        try:
            kr, kb = (float(v) for v in matrix)
        except (TypeError, ValueError):
            raise ValueError(f"matrix must be a name ({', '.join(MATRICES)}) or (Kr, Kb); "
                             f"got {matrix!r:.60}") from None
        if not (0 < kr < 1 and 0 < kb < 1 and kr + kb < 1):
            raise ValueError(f"matrix (Kr, Kb) = ({kr}, {kb}) must have 0 < Kr, Kb and "
                             "Kr + Kb < 1")
    kg = 1.0 - kr - kb
    return np.array([[kr, kg, kb],
                     [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                     [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])


@dataclass(frozen=True)
class CodeScale:
    """How a profile's fractions of its range map to the codes of a ``bit_depth`` video."""

    bit_depth: int = 8
    limited: bool = False

    @property
    def luma_span(self) -> float:
        top = float((1 << self.bit_depth) - 1)
        return 219.0 * (1 << (self.bit_depth - 8)) if self.limited else top

    @property
    def chroma_span(self) -> float:
        top = float((1 << self.bit_depth) - 1)
        return 224.0 * (1 << (self.bit_depth - 8)) if self.limited else top

    def x_of(self, intensity: Any) -> np.ndarray:
        """Scaling-function position (the 8-bit index, ``code >> (bd - 8)``) of intensities."""
        i = np.asarray(intensity, dtype=np.float64)
        if self.limited:
            return 16.0 + 219.0 * i
        return i * ((1 << self.bit_depth) - 1) / (1 << (self.bit_depth - 8))

    def intensity_of(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.limited:
            return (x - 16.0) / 219.0
        return x * (1 << (self.bit_depth - 8)) / ((1 << self.bit_depth) - 1)


def _check_choice(name: str, value: Any, allowed: Any) -> Any:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")
    return value


def _scale_of(bit_depth: Any, video_range: Any) -> CodeScale:
    if isinstance(bit_depth, bool) or bit_depth not in (8, 10, 12):
        raise ValueError(f"bit_depth must be 8, 10 or 12; got {bit_depth!r}")
    _check_choice("video_range", video_range, ("full", "limited"))
    return CodeScale(int(bit_depth), video_range == "limited")


# -- template statistics ----------------------------------------------------------------------

@dataclass(frozen=True)
class TemplateStats:
    """Statistics of the spec's grain templates for one parameter set (over SIM_SEEDS)."""

    luma_std: float
    luma_clipped: float
    cb_std: float
    cr_std: float
    cb_luma_corr: float  # pixel-level correlation of chroma grain with co-sited luma grain
    cr_luma_corr: float
    cb_cr_corr: float
    white_var: float  # variance of the unfiltered template samples
    luma_acf: tuple[tuple[float, ...], ...]  # normalised autocorrelation, lags -8..8


def _sim_key(p: Av1GrainParams, bit_depth: int, sub: tuple[int, int], chroma: bool) -> tuple:
    return (p.ar_coeff_lag, p.ar_coeff_shift, p.grain_scale_shift, tuple(p.ar_coeffs_y),
            tuple(p.ar_coeffs_cb) if chroma else (), tuple(p.ar_coeffs_cr) if chroma else (),
            bit_depth, sub, chroma)


def template_stats(p: Av1GrainParams, bit_depth: int = 8, sub: tuple[int, int] = (1, 1),
                   chroma: bool = True) -> TemplateStats:
    """:class:`TemplateStats` of ``p``'s templates: the regions the 32×32 blocks are cut
    from, generated by the spec's process for every seed of :data:`SIM_SEEDS`."""
    return _template_stats(_sim_key(p, bit_depth, sub, chroma))


@functools.lru_cache(maxsize=128)
def _template_stats(key: tuple) -> TemplateStats:
    lag, shift, gss, cy, ccb, ccr, bd, sub, chroma = key
    luma_std, clipped, white_var, acf = _luma_stats(lag, shift, gss, cy, bd)
    s_cb = s_cr = r1 = r2 = r3 = 0.0
    if chroma:
        sums = np.zeros(6)
        for seed in SIM_SEEDS:
            c1, c2, lbar = _chroma_regions(seed, lag, shift, gss, cy, ccb, ccr, bd, sub)
            sums += [float((c1 ** 2).mean()), float((c2 ** 2).mean()),
                     float((c1 * lbar).mean()), float((c2 * lbar).mean()),
                     float((c1 * c2).mean()), 1.0]
        v1, v2, x1, x2, x12 = sums[:5] / sums[5]
        s_cb, s_cr = math.sqrt(v1), math.sqrt(v2)

        def corr(c: float, a: float, b: float) -> float:
            return float(c / (a * b)) if a > 0 and b > 0 else 0.0

        r1, r2, r3 = corr(x1, s_cb, luma_std), corr(x2, s_cr, luma_std), corr(x12, s_cb, s_cr)
    return TemplateStats(luma_std, clipped, s_cb, s_cr, r1, r2, r3, white_var, acf)


def _regions(sub: tuple[int, int]) -> tuple[slice, slice]:
    """The chroma template region the blocks are cut from (rows, columns)."""
    sx, sy = sub
    return slice(6, 38) if sy else slice(9, 73), slice(6, 38) if sx else slice(9, 73)


def _cosited(luma: np.ndarray, sub: tuple[int, int]) -> np.ndarray:
    """The mean luma grain over each chroma sample's co-sited luma samples (the chroma
    template's region)."""
    sx, sy = sub
    rs, cs = _regions(sub)
    rows = ((np.arange(rs.start, rs.stop) - 3) << sy) + 3
    cols = ((np.arange(cs.start, cs.stop) - 3) << sx) + 3
    acc = np.zeros((len(rows), len(cols)))
    for a in range(sy + 1):
        for b in range(sx + 1):
            acc += luma[np.ix_(rows + a, cols + b)]
    return acc / ((sy + 1) * (sx + 1))


@functools.lru_cache(maxsize=64)
def _luma_stats(lag: int, shift: int, gss: int, cy: tuple, bd: int
                ) -> tuple[float, float, float, tuple]:
    """(std, clipped fraction, white-noise variance, autocorrelation lags -8..8) of the luma
    template region the blocks are cut from, over :data:`SIM_SEEDS`."""
    from . import grain_av1_synth as syn
    from ._av1_gaussian import GAUSSIAN_SEQUENCE

    gmin, gmax = syn.grain_bounds(bd)
    sq = clipped = 0.0
    acf = np.zeros((17, 17))
    for seed in SIM_SEEDS:
        reg = _luma_template(seed, lag, shift, gss, cy, bd)[9:73, 9:73].astype(np.float64)
        sq += float((reg ** 2).mean())
        clipped += float(((reg <= gmin) | (reg >= gmax)).mean())
        f = np.fft.rfft2(reg - reg.mean(), s=(128, 128))
        acf += np.fft.fftshift(np.fft.irfft2(np.abs(f) ** 2, s=(128, 128)))[56:73, 56:73]
    n = len(SIM_SEEDS)
    acf = acf / acf[8, 8] if acf[8, 8] > 0 else np.zeros_like(acf)
    white = syn._round2(GAUSSIAN_SEQUENCE, 12 - bd + gss).astype(np.float64)
    return (math.sqrt(sq / n), clipped / n, float(np.mean(white ** 2)),
            tuple(tuple(float(v) for v in row) for row in acf))


def _chroma_regions(seed: int, lag: int, shift: int, gss: int, cy: tuple, ccb: tuple,
                    ccr: tuple, bd: int, sub: tuple[int, int]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Cb region, Cr region, co-sited mean luma) of one seed's templates (float)."""
    from . import grain_av1_synth as syn

    prm = _Sim(random_seed=seed, ar_coeff_lag=lag, ar_coeff_shift=shift, grain_scale_shift=gss,
               ar_coeffs_y=cy, ar_coeffs_cb=ccb, ar_coeffs_cr=ccr)
    luma = _luma_template(seed, lag, shift, gss, cy, bd)
    _, cb, cr = syn.generate_templates(prm, bd, sub[0], sub[1], planes=(True, True, True),
                                       luma=luma)
    rs, cs = _regions(sub)
    return (cb[rs, cs].astype(np.float64), cr[rs, cs].astype(np.float64),
            _cosited(luma.astype(np.float64), sub))


@functools.lru_cache(maxsize=256)
def _luma_template(seed: int, lag: int, shift: int, gss: int, cy: tuple, bd: int) -> np.ndarray:
    from . import grain_av1_synth as syn

    prm = _Sim(random_seed=seed, ar_coeff_lag=lag, ar_coeff_shift=shift, grain_scale_shift=gss,
               ar_coeffs_y=cy, ar_coeffs_cb=(0,), ar_coeffs_cr=(0,))
    luma = syn.generate_templates(prm, bd, 1, 1, planes=(True, False, False))[0]
    luma.setflags(write=False)
    return luma


@dataclass(frozen=True)
class _Sim:
    """The fields :func:`grain_av1_synth.generate_templates` reads, for statistics runs."""

    random_seed: int
    ar_coeff_lag: int
    ar_coeff_shift: int
    grain_scale_shift: int
    ar_coeffs_y: tuple[int, ...]
    ar_coeffs_cb: tuple[int, ...]
    ar_coeffs_cr: tuple[int, ...]
    chroma_scaling_from_luma: int = 0
    scaling_points_y: tuple = ((0, 1),)
    scaling_points_cb: tuple = ((0, 1),)
    scaling_points_cr: tuple = ((0, 1),)


# -- AR coefficients --------------------------------------------------------------------------

def _lag3_positions() -> list[tuple[int, int]]:
    from .grain_profile import ar_offsets

    return ar_offsets(3)


def _to_lag3(coeffs: Any, lag: int) -> list[float]:
    """Coefficients of lag ``lag`` (spec order) at the lag-3 positions (zeros elsewhere)."""
    from . import grain_av1_synth as syn

    pos = syn._positions(lag)
    table = dict(zip(pos, coeffs))
    return [float(table.get(d, 0.0)) for d in _lag3_positions()]


def _yule_walker(acf: np.ndarray, c: int) -> np.ndarray:
    """Lag-3 AR coefficients (spec order) for the autocorrelation ``acf`` (centre ``c``)."""
    offs = _lag3_positions()
    n = len(offs)
    mat = np.empty((n, n))
    for i, a in enumerate(offs):
        for j, b in enumerate(offs):
            mat[i, j] = acf[c + a[0] - b[0], c + a[1] - b[1]]
    vec = np.array([acf[c + d[0], c + d[1]] for d in offs])
    return np.linalg.solve(mat + 1e-3 * np.eye(n), vec)


def _acf_of_spectrum(spec: np.ndarray) -> np.ndarray:
    acf = np.fft.fftshift(np.fft.ifft2(spec).real)
    return acf / acf[spec.shape[0] // 2, spec.shape[1] // 2]


def _model_coeffs(profile: Any, notes: list[tuple[str, str]], bit_depth: int = 8) -> np.ndarray:
    """The lag-3 AR coefficients for the luma template.

    A measured profile (a 17-point spectrum, grain of ``grain_av1_fit.MIN_SIZE`` to
    ``MAX_SIZE`` px, not read from a table): integers fitted on the decoder's own templates
    to the profile's spectrum and grain size (:func:`.grain_av1_fit.fit_luma_coeffs`).
    Otherwise the profile's own, unless its grain size limits its spectrum
    (``GrainProfile.unit_spectrum``): then the Yule–Walker fit of that limited spectrum. A
    note says what changed."""
    from . import grain_av1_fit as F
    from .grain_profile import ar_spectrum

    a = np.asarray(profile.ar_coeffs, dtype=np.float64)
    size = float(profile.grain_size_px)
    if (F.MIN_SIZE <= size <= F.MAX_SIZE and len(profile.spectrum_power) == 17
            and not getattr(profile, "av1_table", None)):
        shift = next((s for s in (9, 8, 7) if np.all(np.abs(np.rint(a * (1 << s))) <= 120)), 6)
        q, got = F.fit_luma_coeffs(profile, shift, bit_depth=bit_depth, max_clipped=MAX_CLIPPED)
        fit = q / float(1 << shift)
        notes.append(("adapted", (
            f"AR coefficients refitted to the spectrum limited by the grain size "
            f"({size:.2f} px): fitted at ar_coeff_shift {shift} on the decoder's templates to "
            f"the profile's spectrum and grain size (they measure {got['size']:.2f} px, "
            f"spectrum correlation {got['spectrum_corr']:.3f}); largest change "
            f"{float(np.max(np.abs(fit - a))):.3f}")))
        return fit
    raw = ar_spectrum(a, (64, 64))
    capped = ar_spectrum(a, (64, 64), size=profile.grain_size_px)
    if float(np.max(np.abs(capped / raw - 1.0))) <= 1e-3:
        return a
    fit = _yule_walker(_acf_of_spectrum(capped), 32)
    notes.append(("adapted", (
        f"AR coefficients refitted to the spectrum limited by the grain size "
        f"({profile.grain_size_px:.2f} px), as the profile's own synthesis limits it; "
        f"largest change {float(np.max(np.abs(fit - a))):.3f}")))
    return fit


def _chroma_coeffs(luma_coeffs: np.ndarray, size: float, sub: tuple[int, int]) -> np.ndarray:
    """AR coefficients of the chroma grain at the chroma resolution: the luma grain's
    spectrum averaged over the subsampling cell and decimated (Yule–Walker fit)."""
    from .grain_profile import ar_spectrum

    sx, sy = sub
    if not (sx or sy):
        return luma_coeffs
    n = 128
    spec = np.array(ar_spectrum(luma_coeffs, (n, n), size=size))
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.fftfreq(n)[None, :]
    box = np.ones((n, n), dtype=np.complex128)
    if sy:
        box *= (1 + np.exp(2j * np.pi * fy)) / 2
    if sx:
        box *= (1 + np.exp(2j * np.pi * fx)) / 2
    acf = _acf_of_spectrum(spec * np.abs(box) ** 2)
    c = n // 2
    ys = c + (np.arange(-8, 9) << sy)
    xs = c + (np.arange(-8, 9) << sx)
    dec = acf[np.ix_(ys, xs)]
    return _yule_walker(dec / dec[8, 8], 8)


def _quantise(values: np.ndarray, shift: int) -> np.ndarray:
    return np.rint(np.asarray(values) * (1 << shift)).astype(np.int64)


# -- profile → table --------------------------------------------------------------------------

def _ycc_covariances(profile: Any, m: np.ndarray) -> np.ndarray:
    """Per NLF point the Y'CbCr covariance (3×3, fractions of the range) of a colour
    profile: per-channel σ with equal pairwise correlation ``channel_correlation``."""
    s = np.asarray(profile.nlf_sigma, dtype=np.float64).T  # (k, 3)
    rho = float(np.clip(profile.channel_correlation, -0.5, 1.0))
    r = np.full((3, 3), rho)
    np.fill_diagonal(r, 1.0)
    cov = s[:, :, None] * r[None] * s[:, None, :]
    return m[None] @ cov @ m.T[None]


def _pick_points(xs: np.ndarray, ys: np.ndarray, most: int) -> np.ndarray:
    """Indices of at most ``most`` points (both ends kept) whose piecewise-linear function is
    closest to all of them: the point that matters least is dropped, repeatedly."""
    keep = list(range(len(xs)))
    while len(keep) > most:
        errs = []
        for j in range(1, len(keep) - 1):
            trial = keep[:j] + keep[j + 1:]
            errs.append(float(np.max(np.abs(np.interp(xs, xs[trial], ys[trial]) - ys))))
        keep.pop(1 + int(np.argmin(errs)))
    return np.asarray(keep)


def profile_to_params(profile: Any, *, bit_depth: int = 8, seed: int = DEFAULT_SEED,
                      matrix: Any = "bt709", video_range: str = "full",
                      subsampling: str = "420", overlap: bool = True, fit: bool = False,
                      report: list | None = None) -> Av1GrainParams:
    """The AV1 film-grain parameters that represent ``profile`` (see the module docstring).

    What a table cannot carry is refused with a ``ValueError`` naming it (σ beyond the
    largest scaling, AR coefficients outside [-2, 2), intensities outside the range,
    intensities closer than one step of the scaling function), or — with ``fit=True`` —
    fitted, with a warning saying what changed. Always fitted, with a warning: more than 10
    chroma points (chroma keeps the 10 that matter most), a grain-size-limited spectrum (the
    AR is refitted to it) and a template that would clip (a larger ``grain_scale_shift``).
    ``report``: a list that receives ``(kind, text)`` for each change ("fitted": what
    ``fit=True`` changed, "adapted": the automatic ones) instead of warnings.
    """
    scale = _scale_of(bit_depth, video_range)
    sub = SUBSAMPLING[_check_choice("subsampling", subsampling, tuple(SUBSAMPLING))]
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 1 <= seed <= 65535:
        raise ValueError(f"seed must be an integer in 1..65535 (AV1's 16-bit random_seed; 0 "
                         f"would make the luma grain constant); got {seed!r}")
    notes: list[tuple[str, str]] = []
    refused: list[str] = []
    colour = profile.channels == 3
    m = rgb_to_ycbcr_matrix(matrix)
    inten = np.asarray(profile.nlf_intensity, dtype=np.float64)
    if colour:
        cov = _ycc_covariances(profile, m)
        sig_y = np.sqrt(np.maximum(cov[:, 0, 0], 0.0))
        sig_c = np.sqrt(np.maximum(cov[:, (1, 2), (1, 2)], 0.0))  # (k, 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            r_ycc = cov[:, 0, 1:] / (sig_y[:, None] * sig_c)
        valid = np.isfinite(r_ycc) & (sig_y[:, None] > 0) & (sig_c > 0)
        target = [float(np.mean(r_ycc[valid[:, j], j])) if valid[:, j].any() else 0.0
                  for j in range(2)]
    else:
        sig_y = np.asarray(profile.nlf_sigma[0], dtype=np.float64)
        sig_c = np.zeros((len(inten), 2))
        target = [0.0, 0.0]
    # -- positions of the scaling points
    xf = scale.x_of(inten)
    # full range above 8 bits: intensity 1 is code 2^bd - 1, index 255.75 (10 bits): in range
    outside = (xf < -0.5) | (xf > max(255.5, float(scale.x_of(1.0)) + 0.5))
    if outside.any():
        msg = (f"NLF intensities {', '.join(f'{v:.3g}' for v in inten[outside])} lie outside "
               f"the table's range [0, 1] of the profile's value range")
        if fit:
            notes.append(("fitted", msg + "; moved to its ends"))
        else:
            refused.append(msg)
    xs = np.clip(np.rint(xf), 0, 255).astype(np.int64)
    dup = np.flatnonzero(np.diff(xs) <= 0)
    if len(dup):
        msg = (f"NLF intensities {inten[dup[0]]:.4g} and {inten[dup[0] + 1]:.4g} fall on the "
               f"same scaling position {xs[dup[0]]} (one step is "
               f"1/{scale.luma_span / (1 << (scale.bit_depth - 8)):g} of "
               "the range)")
        if not fit:
            refused.append(msg)
        else:
            notes.append(("fitted", msg + "; merged"))
            keep_x, groups = np.unique(xs, return_inverse=True)
            def merge(v: np.ndarray) -> np.ndarray:
                return np.sqrt(np.bincount(groups, v ** 2) / np.bincount(groups))
            sig_y = merge(sig_y)
            sig_c = np.stack([merge(sig_c[:, 0]), merge(sig_c[:, 1])], axis=1)
            xs = keep_x
    # -- AR coefficients and their shift
    a = _model_coeffs(profile, notes, scale.bit_depth)
    ac = _chroma_coeffs(a, profile.grain_size_px, sub) if colour else np.zeros(24)
    big = float(np.max(np.abs(np.concatenate([a, ac]))))
    shifts = [s for s in (9, 8, 7, 6) if np.all(np.abs(_quantise(np.concatenate([a, ac]), s))
                                                <= 127)]
    if not shifts:
        msg = f"AR coefficients reach {big:.3g}, outside AV1's range [-2, 1.984]"
        if fit:
            notes.append(("fitted", msg + "; clipped"))
        else:
            refused.append(msg)
        shifts = [6]
    if refused:
        raise ValueError("this grain profile cannot be written as an AV1 film-grain table: "
                         + "; ".join(refused) + " (pass fit=True to fit it, with a warning)")

    def build(shift: int, gss: int, ss: int = 8, k: tuple[int, int] = (0, 0),
              pts: Any = ((), (), ())) -> Av1GrainParams:
        qy = tuple(int(v) for v in np.clip(_quantise(a, shift), -128, 127))
        qc = tuple(int(v) for v in np.clip(_quantise(ac, shift), -128, 127))
        chroma_on = colour and bool(pts[1])
        return Av1GrainParams(
            random_seed=int(seed), ar_coeff_lag=3, ar_coeff_shift=shift,
            grain_scale_shift=gss, scaling_shift=ss, overlap_flag=int(bool(overlap)),
            cb_mult=128 if chroma_on else 0, cb_luma_mult=192 if chroma_on else 0,
            cb_offset=256 if chroma_on else 0, cr_mult=128 if chroma_on else 0,
            cr_luma_mult=192 if chroma_on else 0, cr_offset=256 if chroma_on else 0,
            scaling_points_y=pts[0], scaling_points_cb=pts[1], scaling_points_cr=pts[2],
            ar_coeffs_y=qy, ar_coeffs_cb=qc + (int(k[0]),) if colour else (0,) * 25,
            ar_coeffs_cr=qc + (int(k[1]),) if colour else (0,) * 25)

    shift = shifts[0]
    # -- grain_scale_shift: the smallest that keeps the luma template from clipping
    gss = 0
    for gss in range(4):
        st = template_stats(build(shift, gss), scale.bit_depth, sub, chroma=False)
        if st.luma_clipped <= MAX_CLIPPED:
            break
    if gss:
        notes.append(("adapted", (f"grain_scale_shift {gss}: with less, the AR filter's "
                                  "grain template would clip")))
    # -- chroma: the luma coefficient that gives the profile's luma–chroma correlation
    has_c = colour and float(np.max(sig_c)) * scale.chroma_span >= 0.25
    k = (0, 0)
    if has_c:
        k, shift = _choose_luma_coeff(build, target, shift, shifts, gss, scale.bit_depth, sub,
                                      notes)
    st = template_stats(build(shift, gss, k=k), scale.bit_depth, sub, chroma=has_c)
    sy_codes = sig_y * scale.luma_span
    sc_codes = sig_c * scale.chroma_span
    # -- scaling_shift: the largest (finest steps) that keeps every scaling <= 255
    need = [sy_codes / st.luma_std]
    if has_c:
        need += [sc_codes[:, 0] / st.cb_std, sc_codes[:, 1] / st.cr_std]
    peak = max(float(np.max(v)) for v in need)
    ss = next((s for s in (11, 10, 9, 8) if peak * (1 << s) <= 255.5), None)
    if ss is None:
        ss = 8
        lines = []
        for vals, std, span, plane in zip(need, (st.luma_std, st.cb_std, st.cr_std),
                                          (scale.luma_span, scale.chroma_span, scale.chroma_span),
                                          ("Y", "Cb", "Cr")):
            over = np.flatnonzero(vals * 256 > 255.5)
            if len(over):
                cap = 255 * std / 256
                at = over[np.argmax(vals[over])]
                lines.append(f"{plane} σ of {float(vals[at] * std):.3g} codes "
                             f"({float(vals[at] * std / span):.4g} of the range) at intensity "
                             f"{float(scale.intensity_of(xs[min(at, len(xs) - 1)])):.3g} exceeds "
                             f"the most a table carries for this grain at {scale.bit_depth} "
                             f"bits: {cap:.3g} codes ({cap / span:.4g} of the range)")
        if not fit:
            raise ValueError("this grain profile cannot be written as an AV1 film-grain table: "
                             + "; ".join(lines) + " (pass fit=True to clip it, with a warning)")
        notes.append(("fitted", "; ".join(lines) + ": clipped to the largest scaling (255)"))
    ysc = np.clip(np.rint(need[0] * (1 << ss)), 0, 255).astype(int)
    pts_y = tuple((int(x), int(y)) for x, y in zip(xs, ysc))
    pts_cb: tuple = ()
    pts_cr: tuple = ()
    if has_c:
        idx = np.arange(len(xs))
        if len(xs) > 10:
            ref = np.sqrt(need[1] ** 2 + need[2] ** 2)
            idx = _pick_points(xs.astype(float), ref, 10)
            err = max(float(np.max(np.abs(np.interp(xs, xs[idx], v[idx]) - v)))
                      / max(float(v.max()), 1e-12) for v in need[1:])
            notes.append(("adapted", (
                f"chroma scaling keeps 10 of the {len(xs)} NLF points (AV1's limit); "
                f"largest change {100 * err:.1f} % of the chroma σ")))
        cb = np.clip(np.rint(need[1][idx] * (1 << ss)), 0, 255).astype(int)
        cr = np.clip(np.rint(need[2][idx] * (1 << ss)), 0, 255).astype(int)
        pts_cb = tuple((int(x), int(y)) for x, y in zip(xs[idx], cb))
        pts_cr = tuple((int(x), int(y)) for x, y in zip(xs[idx], cr))
    params = build(shift, gss, ss, k, (pts_y, pts_cb, pts_cr))
    if report is not None:
        report.extend(notes)
    else:
        for _kind, note in notes:
            warnings.warn(f"AV1 film-grain export: {note}", UserWarning, stacklevel=3)
    return params


def _ar_response(inp: np.ndarray, coeffs: Any, shift: int) -> np.ndarray:
    """The (real-valued) response of the lag-3 AR filter of ``coeffs`` / 2^shift to the
    input ``inp`` over the filtered region (rows 3.., columns 3..W-4), zero elsewhere."""
    from . import grain_av1_synth as syn

    h, w = inp.shape
    out = np.zeros((h, w))
    a = [float(c) / (1 << shift) for c in coeffs]
    pos = syn._positions(3)
    above = [(dr, dc, c) for (dr, dc), c in zip(pos, a) if dr < 0 and c]
    left = {dc: c for (dr, dc), c in zip(pos, a) if dr == 0}
    c3, c2, c1 = (left.get(k, 0.0) for k in (-3, -2, -1))
    for y in range(3, h):
        acc = inp[y, 3:w - 3].astype(np.float64)
        for dr, dc, c in above:
            acc = acc + c * out[y + dr, 3 + dc:w - 3 + dc]
        row = out[y].tolist()
        vals = acc.tolist()
        p3, p2, p1 = row[0], row[1], row[2]
        for x in range(3, w - 3):
            v = vals[x - 3] + c3 * p3 + c2 * p2 + c1 * p1
            row[x] = v
            p3, p2, p1 = p2, p1, v
        out[y] = row
    return out


def _choose_luma_coeff(build: Any, target: list[float], shift: int, shifts: list[int], gss: int,
                       bit_depth: int, sub: tuple[int, int], notes: list[tuple[str, str]]
                       ) -> tuple[tuple[int, int], int]:
    """The chroma planes' 25th coefficients (Cb, Cr) whose templates correlate with the luma
    grain as ``target`` says, at the largest ``ar_coeff_shift`` that reaches it (a smaller
    shift allows a larger weight).

    The chroma template is nearly linear in that weight t = k / 2^shift: C ≈ C0 + t·C1, with
    C0 the template of weight 0 and C1 the AR filter's response to the co-sited luma grain.
    The model gives the best k on the whole grid at once; the spec's own templates then
    decide between k − 1, k and k + 1.
    """
    from . import grain_av1_synth as syn

    def exact(ks: tuple[int, int], s: int) -> tuple[float, float]:
        st = template_stats(build(s, gss, k=ks), bit_depth, sub, chroma=True)
        return st.cb_luma_corr, st.cr_luma_corr

    best: tuple[tuple[int, int], int, float] | None = None
    cshape = syn.chroma_template_shape(*sub)
    rs, cs = _regions(sub)
    for s in [v for v in (9, 8, 7, 6) if v <= shift]:
        base = build(s, gss, k=(0, 0))
        lag, cy = base.ar_coeff_lag, tuple(base.ar_coeffs_y)
        sums = np.zeros((2, 5))
        sq_l = 0.0
        for seed in SIM_SEEDS:
            c_cb, c_cr, lbar = _chroma_regions(seed, lag, s, gss, cy, tuple(base.ar_coeffs_cb),
                                               tuple(base.ar_coeffs_cr), bit_depth, sub)
            luma = _luma_template(seed, lag, s, gss, cy, bit_depth)
            resp = _ar_response(syn._luma_average(luma, cshape, *sub).astype(np.float64),
                                base.ar_coeffs_cb[:24], s)[rs, cs]
            for j, c0 in enumerate((c_cb, c_cr)):
                sums[j] += [(c0 * c0).mean(), (c0 * resp).mean(), (resp * resp).mean(),
                            (c0 * lbar).mean(), (resp * lbar).mean()]
            sq_l += 1.0
        sums /= sq_l
        sl = _luma_stats(lag, s, gss, cy, bit_depth)[0]
        t = np.arange(-128, 128) / (1 << s)
        ks = []
        for j in range(2):
            v00, v01, v11, x0, x1 = sums[j]
            var = np.maximum(v00 + 2 * t * v01 + t * t * v11, 1e-12)
            model = (x0 + t * x1) / (np.sqrt(var) * sl)
            ks.append(int(np.argmin(np.abs(model - target[j]))) - 128)
        def near(j: int, d: int) -> int:
            return int(np.clip(ks[j] + d, -128, 127))

        trial = {d: exact((near(0, d), near(1, d)), s) for d in (-1, 0, 1)}
        pick = [min((abs(trial[d][j] - target[j]), near(j, d)) for d in trial)
                for j in range(2)]
        ks_best = (pick[0][1], pick[1][1])
        got = exact(ks_best, s)
        err = max(abs(got[0] - target[0]), abs(got[1] - target[1]))
        if best is None or err < best[2] - 1e-9:
            best = (ks_best, s, err)
        if err <= CORR_TOLERANCE:
            break
    ks_best, s, err = best
    if s != shift:
        notes.append(("adapted", (f"ar_coeff_shift {s} (coarser AR steps) to reach the "
                                  "luma–chroma correlation")))
    if err > CORR_TOLERANCE:
        notes.append(("adapted", (f"the luma–chroma correlation is off by {err:.2f} (AV1's "
                                  "luma weight cannot reach the profile's)")))
    return ks_best, s


# -- table → profile --------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _gauss_area_table() -> tuple[np.ndarray, np.ndarray]:
    """Correlation area within the analysis radius of Gaussian-filtered white noise, vs σ."""
    from .grain_analysis import AREA_RADIUS

    sig = np.linspace(0.0, 8.0, 161)
    r = int(AREA_RADIUS)
    d = np.arange(-r, r + 1)
    mask = np.hypot(d[:, None], d[None, :]) <= AREA_RADIUS
    areas = []
    for s in sig:
        if s < 1e-3:
            areas.append(1.0)
            continue
        half = int(4 * s + 0.5) + r + 1
        x = np.arange(-half, half + 1)
        g = np.exp(-0.5 * (x / s) ** 2)
        ac = np.correlate(g, g, mode="full")
        ac = ac / ac[len(ac) // 2]
        c = len(ac) // 2
        r1 = ac[c - r:c + r + 1]
        areas.append(float((np.outer(r1, r1) * mask).sum()))
    return np.asarray(areas), sig


def _size_from_acf(acf: np.ndarray) -> float:
    from .grain_analysis import AREA_RADIUS

    r = int(AREA_RADIUS)
    c = acf.shape[0] // 2
    d = np.arange(-r, r + 1)
    mask = np.hypot(d[:, None], d[None, :]) <= AREA_RADIUS
    area = float((acf[c - r:c + r + 1, c - r:c + r + 1] * mask).sum())
    areas, sig = _gauss_area_table()
    return float(np.clip(np.interp(area, areas, sig), 0.0, 64.0))


def _radial_spectrum(acf: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Radial power spectrum (17 points, cycles/pixel, sum 1) from the autocorrelation."""
    b = 32
    pad = np.zeros((b, b))
    c = acf.shape[0] // 2
    for dy in range(-8, 9):
        for dx in range(-8, 9):
            pad[dy % b, dx % b] = acf[c + dy, c + dx]
    p = np.maximum(np.fft.fft2(pad).real, 0.0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(b), np.fft.fftfreq(b), indexing="ij"))
    nb = b // 2
    idx = np.clip(np.rint(f * b).astype(int), 0, nb)
    power = np.bincount(idx.ravel(), p.ravel(), nb + 1) / np.maximum(
        np.bincount(idx.ravel(), minlength=nb + 1), 1)
    power = power / max(float(power.sum()), 1e-20)
    return tuple(float(v) for v in np.arange(nb + 1) / b), tuple(float(v) for v in power)


def _chroma_sigma_at(params: Av1GrainParams, plane: str, xs: np.ndarray) -> np.ndarray:
    """The chroma plane's scaling (8-bit LUT value) at luma positions ``xs``, at neutral
    chroma (Cb = Cr = 128): what ``merged`` indexes when the chroma is grey."""
    from . import grain_av1_synth as syn

    if params.chroma_scaling_from_luma:
        return syn.scaling_lut(params.scaling_points_y)[xs].astype(np.float64)
    pts = getattr(params, f"scaling_points_{plane}")
    if not pts:
        return np.zeros(len(xs))
    mult = getattr(params, f"{plane}_mult") - 128
    lmult = getattr(params, f"{plane}_luma_mult") - 128
    off = getattr(params, f"{plane}_offset") - 256
    merged = np.clip(((xs * lmult + 128 * mult) >> 6) + off, 0, 255)
    return syn.scaling_lut(pts)[merged].astype(np.float64)


def _solve_rgb(var: np.ndarray, m: np.ndarray, rho: float, x0: np.ndarray | None = None
               ) -> tuple[np.ndarray, float]:
    """(σ per point and channel ≥ 0 (k, 3), largest relative residual): the equal-correlation
    (``rho``) RGB grain whose Y'CbCr variances through ``m`` are ``var`` (k, 3). Damped
    Gauss–Newton on all points at once from ``x0`` (default: the ρ = 0 solution); the
    equations are quadratic, so a start picks one of their roots."""
    r = np.full((3, 3), rho)
    np.fill_diagonal(r, 1.0)
    scale = np.maximum(var.max(axis=1, keepdims=True), 1e-30)
    v = var / scale
    if x0 is None:
        s = np.sqrt(np.maximum(np.linalg.lstsq(m ** 2, v.T, rcond=None)[0].T, 0.0)) + 1e-3
    else:
        s = np.maximum(x0 / np.sqrt(scale), 0.0) + 1e-9
    quad = m[:, :, None] * r[None] * m[:, None, :]  # v_a = s' Q_a s
    eye = 1e-12 * np.eye(3)
    for _ in range(60):
        qs = np.einsum("akl,pl->pak", quad, s)
        f = np.einsum("pak,pk->pa", qs, s) - v
        if float(np.max(np.abs(f))) < 1e-13:
            break
        jac = 2.0 * qs
        step = np.linalg.solve(np.einsum("pai,paj->pij", jac, jac) + eye,
                               np.einsum("pai,pa->pi", jac, f)[..., None])[..., 0]
        s_new = np.maximum(s - step, 0.0)
        moved = float(np.max(np.abs(s_new - s)))
        s = s_new
        if moved < 1e-10:  # converged, or stuck on a bound (no exact root from here)
            break
    f = np.einsum("akl,pk,pl->pa", quad, s, s) - v
    out = s * np.sqrt(scale)
    out[var.max(axis=1) <= 0] = 0.0
    return out, float(np.max(np.abs(f)))


def _rgb_from_ycc(var: np.ndarray, r_target: tuple[float, float], m: np.ndarray
                  ) -> tuple[np.ndarray, float]:
    """(σ per point and channel (k, 3), ρ): the colour profile whose Y'CbCr variances are
    ``var`` (k, 3) and whose luma–chroma correlations best match ``r_target``.

    ρ is searched on a grid (then refined); at each ρ the variance equations are solved from
    several starts (their roots differ) and the root that best gives the correlations wins.
    """
    from scipy.optimize import minimize_scalar

    sd = np.sqrt(np.maximum(var, 0.0))

    def corr_error(s: np.ndarray, rho: float) -> float:
        r = np.full((3, 3), rho)
        np.fill_diagonal(r, 1.0)
        cov = np.einsum("ak,pkl,bl->pab", m, s[:, :, None] * r[None] * s[:, None, :], m)
        d = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
        errs = [cov[i, 0, j] / (d[i, 0] * d[i, j]) - r_target[j - 1]
                for i in range(len(s)) for j in (1, 2) if d[i, 0] > 0 and d[i, j] > 0]
        return float(np.mean(np.square(errs))) if errs else 0.0

    def best_root(rho: float, starts: list) -> tuple[float, np.ndarray]:
        found = []
        for x0 in starts:
            s, res = _solve_rgb(var, m, rho, x0)
            if res < 1e-6:
                found.append((corr_error(s, rho), s))
        if not found:  # no exact root: the least-squares one
            s, _ = _solve_rgb(var, m, rho)
            found.append((corr_error(s, rho) + 1.0, s))
        return min(found, key=lambda t: t[0])

    mono = np.repeat(sd[:, :1], 3, axis=1)
    best = None
    prev = None
    for rho in np.linspace(-0.5, 1.0, 16):
        err, s = best_root(float(rho), [None, mono, prev])
        prev = s
        if best is None or err < best[0]:
            best = (err, float(rho), s)
    _, rho0, s0 = best
    res = minimize_scalar(lambda rho: best_root(rho, [s0, None])[0],
                          bounds=(max(-0.5, rho0 - 0.05), min(1.0, rho0 + 0.05)),
                          method="bounded", options={"xatol": 1e-7})
    rho = float(res.x)
    err, s = best_root(rho, [s0, None])
    if err > best[0]:
        return s0, rho0
    return s, rho


def params_to_profile(params: Av1GrainParams, *, bit_depth: int = 8, matrix: Any = "bt709",
                      video_range: str = "full", subsampling: str = "420",
                      channels: int | None = None, table_text: str | None = None) -> Any:
    """The :class:`~.grain_profile.GrainProfile` of one table entry (see the module
    docstring); ``channels`` None: 3 when the entry has chroma grain, else 1."""
    rgb_to_ycbcr_matrix(matrix)  # a clear error for a bad matrix before it is used as a key
    key = matrix if isinstance(matrix, str) else tuple(float(v) for v in matrix)
    if channels is None:
        channels = 3 if params.has_chroma else 1
    prof = _params_to_profile(params, bit_depth, key, video_range, subsampling, channels)
    return dataclasses.replace(prof, av1_table=table_text) if table_text else prof


@functools.lru_cache(maxsize=32)
def _params_to_profile(params: Av1GrainParams, bit_depth: int, matrix: Any, video_range: str,
                       subsampling: str, channels: int | None) -> Any:
    from .grain_analysis import classify
    from .grain_profile import GrainProfile

    scale = _scale_of(bit_depth, video_range)
    sub = SUBSAMPLING[_check_choice("subsampling", subsampling, tuple(SUBSAMPLING))]
    m = rgb_to_ycbcr_matrix(matrix)
    if channels is None:
        channels = 3 if params.has_chroma else 1
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None; got {channels!r}")
    chroma = channels == 3 and params.has_chroma
    full_y = tuple(params.ar_coeffs_y)
    st = template_stats(params, scale.bit_depth, sub, chroma=chroma)
    denom = float(1 << params.scaling_shift)
    if params.scaling_points_y:
        xs = np.array([x for x, _ in params.scaling_points_y])
        ys = np.array([y for _, y in params.scaling_points_y], dtype=np.float64)
    else:
        src = params.scaling_points_cb or params.scaling_points_cr
        xs = np.array([x for x, _ in src]) if src else np.array([128])
        ys = np.zeros(len(xs))
    sig_y = ys * st.luma_std / denom / scale.luma_span
    inten = tuple(float(v) for v in scale.intensity_of(xs))
    k = len(xs)
    if channels == 3:
        if chroma:
            sig_cb = _chroma_sigma_at(params, "cb", xs) * st.cb_std / denom / scale.chroma_span
            sig_cr = _chroma_sigma_at(params, "cr", xs) * st.cr_std / denom / scale.chroma_span
            var = np.stack([sig_y ** 2, sig_cb ** 2, sig_cr ** 2], axis=1)
            s, rho = _rgb_from_ycc(var, (st.cb_luma_corr, st.cr_luma_corr), m)
        else:  # mono grain: the same grain in every channel
            s, rho = np.repeat(sig_y[:, None], 3, axis=1), 1.0
        r = np.full((3, 3), rho)
        np.fill_diagonal(r, 1.0)
        covs = s[:, :, None] * r[None] * s[:, None, :]
        lv = covs.sum(axis=(1, 2)) / 9.0
        proj = np.eye(3) - 1.0 / 3.0
        cv = np.array([np.trace(proj @ c @ proj) / 3.0 for c in covs])
        nlf_sigma = tuple(tuple(float(v) for v in s[:, c]) for c in range(3))
        nlf_luma = tuple(float(v) for v in np.sqrt(np.maximum(lv, 0)))
        nlf_chroma = tuple(float(v) for v in np.sqrt(np.maximum(cv, 0)))
        ratio = float(np.sqrt(np.median(cv) / max(float(np.median(lv)), 1e-20)))
        allsig = s
    else:
        rho, ratio = 1.0, 0.0
        nlf_sigma = (tuple(float(v) for v in sig_y),)
        nlf_luma = nlf_sigma[0]
        nlf_chroma = (0.0,) * k
        allsig = sig_y[:, None]
    acf = np.asarray(st.luma_acf)
    size = _size_from_acf(acf)
    freq, power = _radial_spectrum(acf)
    per_point = np.sqrt(np.mean(np.asarray(allsig) ** 2, axis=1))
    gtype = classify(float(np.quantile(per_point, 0.25)), size, 0.0)
    sigma = float(np.sqrt(np.mean(np.asarray(allsig) ** 2)))
    lag3 = _to_lag3(np.asarray(full_y, dtype=np.float64) / (1 << params.ar_coeff_shift),
                    params.ar_coeff_lag)
    resid = float(np.clip(st.white_var / max(st.luma_std ** 2, 1e-20), 0.0, 1e5))
    return GrainProfile(
        channels=channels, nlf_intensity=inten, nlf_sigma=nlf_sigma, nlf_luma=nlf_luma,
        nlf_chroma=nlf_chroma, nlf_count=(1,) * k, spectrum_freq=freq, spectrum_power=power,
        grain_size_px=size, sigma=sigma, colour=bool(channels == 3 and rho < 0.5),
        channel_correlation=float(np.clip(rho, -1.0, 1.0)), chroma_luma_ratio=ratio,
        ar_coeffs=tuple(lag3), ar_residual=resid, periodic_peak=0.0, flat_fraction=1.0,
        grain_type=gtype, dtype="uint8" if scale.bit_depth == 8 else "uint16",
        value_range=(0.0, float((1 << scale.bit_depth) - 1)))


# -- the public entry points ------------------------------------------------------------------

#: Fields that a table determines (compared to decide whether a carried table still holds).
_STAT_FIELDS = ("channels", "nlf_intensity", "nlf_sigma", "ar_coeffs", "channel_correlation")


def _same_statistics(a: Any, b: Any) -> bool:
    for name in _STAT_FIELDS:
        va, vb = getattr(a, name), getattr(b, name)
        if np.shape(va) != np.shape(vb) or not np.allclose(va, vb, rtol=1e-9, atol=1e-12):
            return False
    return True


def _carried_table(profile: Any, options: dict[str, Any]) -> Av1GrainTable | None:
    """The table the profile came from, if its statistics still are that table's."""
    text = getattr(profile, "av1_table", None)
    if not text:
        return None
    table = parse_table(text, "(carried by the profile)")
    try:
        again = params_to_profile(table.first(), channels=profile.channels, **options)
    except ValueError:
        return None
    return table if _same_statistics(again, profile) else None


def profile_table(profile: Any, *, bit_depth: int = 8, seed: int | None = None,
                  matrix: Any = "bt709", video_range: str = "full", subsampling: str = "420",
                  overlap: bool = True, fit: bool = False) -> tuple[Av1GrainTable, str]:
    """(table, text) for ``profile``: the table it was read from when it still describes it
    (so table → profile → table is byte-identical), else one segment covering the whole clip."""
    from .grain_profile import GrainProfile

    if not isinstance(profile, GrainProfile):
        raise TypeError(f"profile must be a GrainProfile; got {type(profile).__name__}")
    opts = {"bit_depth": bit_depth, "matrix": matrix, "video_range": video_range,
            "subsampling": subsampling}
    carried = _carried_table(profile, opts)
    if carried is not None:
        if seed is None or all(s.params.random_seed == seed for s in carried.segments):
            return carried, profile.av1_table
        table = Av1GrainTable(tuple(dataclasses.replace(
            s, params=dataclasses.replace(s.params, random_seed=int(seed)))
            for s in carried.segments))
        return table, format_table(table)
    params = profile_to_params(profile, bit_depth=bit_depth,
                               seed=DEFAULT_SEED if seed is None else seed, matrix=matrix,
                               video_range=video_range, subsampling=subsampling,
                               overlap=overlap, fit=fit)
    table = Av1GrainTable((Av1GrainSegment(0, END_OF_TIME, params),))
    return table, format_table(table)


def stack_table(segments: Any, *, fps: float = 24.0, **options: Any) -> Av1GrainTable:
    """One table entry per frame range: ``segments`` is ``[(profile, first_frame,
    end_frame), ...]`` (end exclusive) of a clip at ``fps`` frames per second; the entry
    times are those ``aomenc`` gives the frames (1/10 000 000 s)."""
    if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and math.isfinite(fps)
                                     and fps > 0):
        raise ValueError(f"fps must be a positive number; got {fps!r}")
    out = []
    last_end = 0
    for i, item in enumerate(segments):
        try:
            profile, first, end = item
        except (TypeError, ValueError):
            raise ValueError(f"segments[{i}] must be (profile, first_frame, end_frame)") from None
        if not (isinstance(first, numbers.Integral) and isinstance(end, numbers.Integral)
                and not isinstance(first, bool | np.bool_) and not isinstance(end, bool | np.bool_)
                and 0 <= first < end):
            raise ValueError(f"segments[{i}]: frames must be integers with 0 <= first < end; "
                             f"got ({first!r}, {end!r})")
        if first < last_end:
            raise ValueError(f"segments[{i}] starts at frame {first}, before the previous "
                             f"segment ends ({last_end})")
        last_end = end
        params = profile_table(profile, **options)[0].first()
        first, end = int(first), int(end)
        t0 = math.floor(first * TICKS_PER_SECOND / fps)
        t1 = math.floor(end * TICKS_PER_SECOND / fps)
        if t1 <= t0 or t1 > END_OF_TIME:
            raise ValueError(f"segments[{i}]: frames {first}..{end} at fps={fps:g} have no "
                             f"time stamps of their own in the table (1/{TICKS_PER_SECOND} s "
                             f"steps, at most {END_OF_TIME}); use a lower fps or fewer frames")
        out.append(Av1GrainSegment(t0, t1, params))
    if not out:
        raise ValueError("segments is empty; give at least one (profile, first, end)")
    return Av1GrainTable(tuple(out))


def to_av1_table(profile: Any, path: str | Path, **options: Any) -> str:
    """Write ``profile`` as a ``filmgrn1`` table to ``path``; returns the text written."""
    _table, text = profile_table(profile, **options)
    Path(path).write_text(text, encoding="ascii", newline="\n")
    return text


def from_av1_table(path: str | Path, *, bit_depth: int = 8, matrix: Any = "bt709",
                   video_range: str = "full", subsampling: str = "420",
                   channels: int | None = None) -> Any:
    """The profile of a table file's first entry with grain parameters (it carries the
    table's text, so that writing it again gives the same bytes)."""
    data = _jsonio.read_bytes(path, "AV1 film-grain table", MAX_TABLE_BYTES)
    table = parse_table(data, str(path))
    text = data.decode("ascii")
    return params_to_profile(table.first(), bit_depth=bit_depth, matrix=matrix,
                             video_range=video_range, subsampling=subsampling,
                             channels=channels,
                             table_text=text if len(text) <= MAX_PROFILE_TABLE_CHARS else
                             format_table(Av1GrainTable((table.segments[0],))))


def check_carried_text(text: Any) -> str:
    """Validation of ``GrainProfile.av1_table`` (a table's text, or None)."""
    if not isinstance(text, str):
        raise ValueError(f"grain profile field 'av1_table' must be the text of an AV1 "
                         f"film-grain table or null; got {type(text).__name__}")
    if len(text) > MAX_PROFILE_TABLE_CHARS:
        raise ValueError(f"grain profile field 'av1_table' is longer than "
                         f"{MAX_PROFILE_TABLE_CHARS} characters")
    parse_table(text, "(grain profile field 'av1_table')")
    return text


def save_av1_table(profile: Any, path: str | Path, **options: Any) -> str:
    """The Film grain panel's **Save AV1 table…**: write ``profile``'s table to ``path``
    (``.tbl`` added when the name has no suffix) and return the message for the user,
    naming every change the export made. ``ValueError`` for what cannot be saved."""
    if profile is None:
        raise ValueError("analyse a grainy layer first (or load a grain profile)")
    target = Path(path)
    if not target.name or target.is_dir():
        raise ValueError(f"choose a file name for the AV1 table (got {str(path)!r})")
    if not target.suffix:
        target = target.with_suffix(".tbl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        to_av1_table(profile, target, **options)
    notes = [str(w.message).removeprefix("AV1 film-grain export: ") for w in caught
             if issubclass(w.category, UserWarning)]
    msg = f"AV1 film-grain table saved to {target}"
    return msg + (" (" + "; ".join(notes) + ")" if notes else "")
