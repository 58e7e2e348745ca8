"""AV1 film-grain synthesis exactly as the AV1 specification defines it (section 7.18.3).

Integer arithmetic throughout, so that a frame gets, bit for bit, the grain a conforming
decoder adds (``tests/test_av1_codec.py`` compares with ``aomdec``):

1. the 16-bit linear-feedback shift register of 7.18.3.2 (``get_random_number``), seeded
   with ``random_seed``;
2. 73×82 luma and (subsampled) chroma templates of white noise from the spec's 2048-entry
   ``Gaussian_Sequence``, filtered by the causal auto-regressive (AR) filter of lag
   ``ar_coeff_lag`` (chroma with a 25th coefficient on the co-sited luma grain), 7.18.3.3;
3. the 256-entry scaling look-up tables from the piecewise-linear scaling points, 7.18.3.4;
4. 32×32 luma blocks (16×16 chroma in 4:2:0) cut from the templates at per-block random
   offsets, blended over their 2-sample overlaps when ``overlap_flag`` is set, scaled by the
   look-up of each sample's intensity and ``scaling_shift``, added and clipped, 7.18.3.5.

The AR filter runs over the small templates in a loop (its recursion is sequential along a
row); everything per frame — the block gather, the overlap blends, the scaling and the
clipping — is vectorised numpy. The pseudo-random register has a period of 65535, so its
whole cycle is tabulated once and any run of draws is a slice of it.

Our own code, written from the specification text; libaom's ``grain_synthesis.c`` was read
to cross-check conventions (both agree with the spec).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._av1_gaussian import GAUSSIAN_SEQUENCE

#: Luma template size (rows, columns), AV1 spec 7.18.3.3.
LUMA_TEMPLATE = (73, 82)
_PERIOD = 65535  # the shift register's cycle (every non-zero 16-bit state)
#: What libaom's encoder adds to ``random_seed`` for each following frame (0 becomes 7391).
SEED_STEP = 3381
SEED_AFTER_ZERO = 7391


# -- random numbers ---------------------------------------------------------------------------

@functools.cache
def _cycle() -> tuple[np.ndarray, np.ndarray]:
    """The register's states along its cycle from state 1, and each state's position."""
    states = []
    r = 1
    for _ in range(_PERIOD):
        states.append(r)
        bit = (r ^ (r >> 1) ^ (r >> 3) ^ (r >> 12)) & 1
        r = (r >> 1) | (bit << 15)
    arr = np.asarray(states, dtype=np.int32)
    index = np.zeros(1 << 16, dtype=np.int64)
    index[arr] = np.arange(_PERIOD)
    arr.setflags(write=False)
    index.setflags(write=False)
    return arr, index


def random_numbers(register: int, n: int, bits: int) -> np.ndarray:
    """``n`` successive ``get_random_number(bits)`` results from ``RandomRegister = register``
    (AV1 spec 7.18.3.2): each call shifts the register once and returns its top ``bits``."""
    register = int(register) & 0xFFFF
    if register == 0:  # the all-zero state is a fixed point of the register
        return np.zeros(n, dtype=np.int32)
    states, index = _cycle()
    k = (index[register] + 1 + np.arange(n)) % _PERIOD
    return states[k] >> (16 - bits)


def frame_seed(seed: int, frame: int) -> int:
    """The ``random_seed`` libaom's encoder signals for the ``frame``-th shown frame of a
    table segment that starts with ``seed`` (it adds 3381 per frame; 0 becomes 7391)."""
    s = int(seed) & 0xFFFF
    for _ in range(int(frame)):
        s = (s + SEED_STEP) & 0xFFFF
        if s == 0:
            s = SEED_AFTER_ZERO
    return s


# -- integer helpers --------------------------------------------------------------------------

def _round2(x: Any, n: int) -> Any:
    """Round2 of the spec: ``(x + 2^(n-1)) >> n`` with an arithmetic shift."""
    if n == 0:
        return x
    return (x + (1 << (n - 1))) >> n


def _positions(lag: int) -> list[tuple[int, int]]:
    """(deltaRow, deltaCol) of the AR coefficients in the spec's order (raster, stopping
    before the current sample)."""
    return [(dr, dc) for dr in range(-lag, 1) for dc in range(-lag, lag + 1)
            if dr < 0 or dc < 0]


def _ar_filter(grain: np.ndarray, coeffs: Any, lag: int, shift: int, gmin: int, gmax: int,
               extra: np.ndarray | None = None, extra_coeff: int = 0) -> None:
    """In place: the AR filter of 7.18.3.3 over rows 3.. and columns 3..W-4 of ``grain``.

    ``extra`` (same shape) is the co-sited luma grain of a chroma template, weighted by
    ``extra_coeff`` (the 25th chroma coefficient). The contribution of the rows above and of
    the luma term is vectorised per row; the left neighbours are a sequential recursion.
    """
    hgt, wid = grain.shape
    pos = _positions(lag)
    above = [(dr, dc, int(c)) for (dr, dc), c in zip(pos, coeffs) if dr < 0 and c != 0]
    left = [(dc, int(c)) for (dr, dc), c in zip(pos, coeffs) if dr == 0 and c != 0]
    x0, x1 = 3, wid - 3
    half = 1 << (shift - 1)
    g = grain.astype(np.int64)
    for y in range(3, hgt):
        s = np.zeros(x1 - x0, dtype=np.int64)
        for dr, dc, c in above:
            s += c * g[y + dr, x0 + dc:x1 + dc]
        if extra is not None and extra_coeff:
            s += extra_coeff * extra[y, x0:x1]
        row = g[y].tolist()
        sl = s.tolist()
        if left:
            lc = dict(left)
            c3, c2, c1 = lc.get(-3, 0), lc.get(-2, 0), lc.get(-1, 0)
            a3, a2, a1 = row[x0 - 3], row[x0 - 2], row[x0 - 1]
            for x in range(x0, x1):
                v = row[x] + ((sl[x - x0] + c3 * a3 + c2 * a2 + c1 * a1 + half) >> shift)
                v = gmin if v < gmin else gmax if v > gmax else v
                row[x] = v
                a3, a2, a1 = a2, a1, v
        else:
            for x in range(x0, x1):
                v = row[x] + ((sl[x - x0] + half) >> shift)
                row[x] = gmin if v < gmin else gmax if v > gmax else v
        g[y] = row
    grain[...] = g


def grain_bounds(bit_depth: int) -> tuple[int, int]:
    """(GrainMin, GrainMax) of the spec for ``bit_depth``."""
    centre = 128 << (bit_depth - 8)
    return -centre, (256 << (bit_depth - 8)) - 1 - centre


def _white(register: int, shape: tuple[int, int], shift: int, active: bool) -> np.ndarray:
    if not active:
        return np.zeros(shape, dtype=np.int32)
    idx = random_numbers(register, shape[0] * shape[1], 11)
    return _round2(GAUSSIAN_SEQUENCE[idx], shift).reshape(shape).astype(np.int32)


def chroma_template_shape(sub_x: int, sub_y: int) -> tuple[int, int]:
    return (38 if sub_y else 73), (44 if sub_x else 82)


def _luma_average(luma: np.ndarray, shape: tuple[int, int], sub_x: int, sub_y: int) -> np.ndarray:
    """The co-sited luma grain of each chroma template sample (Round2 of the sum)."""
    hc, wc = shape
    out = np.zeros(shape, dtype=np.int64)
    ys = ((np.arange(3, hc) - 3) << sub_y) + 3
    xs = ((np.arange(3, wc - 3) - 3) << sub_x) + 3
    acc = np.zeros((len(ys), len(xs)), dtype=np.int64)
    for i in range(sub_y + 1):
        for j in range(sub_x + 1):
            acc += luma[np.ix_(ys + i, xs + j)]
    out[3:, 3:wc - 3] = _round2(acc, sub_x + sub_y)
    return out


def generate_templates(params: Any, bit_depth: int = 8, sub_x: int = 1, sub_y: int = 1,
                       planes: tuple[bool, bool, bool] | None = None,
                       luma: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The luma, Cb and Cr grain templates (AV1 spec 7.18.3.3) as int32 arrays.

    ``planes`` limits the work to the templates that are used (default: those the
    parameters apply grain to); the others are returned as zeros. ``luma``: the luma
    template of these parameters, if already computed.
    """
    gmin, gmax = grain_bounds(bit_depth)
    shift = 12 - bit_depth + params.grain_scale_shift
    ar_shift = params.ar_coeff_shift
    lag = params.ar_coeff_lag
    csfl = bool(params.chroma_scaling_from_luma)
    has_y = len(params.scaling_points_y) > 0
    has_cb = len(params.scaling_points_cb) > 0 or csfl
    has_cr = len(params.scaling_points_cr) > 0 or csfl
    if planes is not None:
        has_cb, has_cr = has_cb and planes[1], has_cr and planes[2]
    if luma is None:
        luma = _white(params.random_seed, LUMA_TEMPLATE, shift, has_y)
        if has_y:
            _ar_filter(luma, params.ar_coeffs_y, lag, ar_shift, gmin, gmax)
    cshape = chroma_template_shape(sub_x, sub_y)
    seed = params.random_seed
    cb = _white(seed ^ 0xB524, cshape, shift, has_cb)
    cr = _white(seed ^ 0x49D8, cshape, shift, has_cr)
    n = 2 * lag * (lag + 1)
    avg = _luma_average(luma, cshape, sub_x, sub_y) if has_y else None
    for tmpl, on, coeffs in ((cb, has_cb, params.ar_coeffs_cb), (cr, has_cr, params.ar_coeffs_cr)):
        if on:
            _ar_filter(tmpl, coeffs[:n], lag, ar_shift, gmin, gmax, avg,
                       int(coeffs[n]) if has_y else 0)
    return luma, cb, cr


# -- scaling ----------------------------------------------------------------------------------

def scaling_lut(points: Any) -> np.ndarray:
    """The 256-entry ScalingLut of 7.18.3.4 for scaling points ``[(x, y), ...]``."""
    lut = np.zeros(256, dtype=np.int32)
    pts = [(int(x), int(y)) for x, y in points]
    if not pts:
        return lut
    lut[:pts[0][0]] = pts[0][1]
    for (xa, ya), (xb, yb) in zip(pts, pts[1:]):
        dx, dy = xb - xa, yb - ya
        delta = dy * ((65536 + (dx >> 1)) // dx)
        x = np.arange(dx, dtype=np.int64)
        lut[xa:xb] = ya + ((x * delta + 32768) >> 16)
    lut[pts[-1][0]:] = pts[-1][1]
    return lut


def _scale_lut(lut: np.ndarray, index: np.ndarray, bit_depth: int) -> np.ndarray:
    if bit_depth == 8:
        return lut[index]
    shift = bit_depth - 8
    x = index >> shift
    rem = index - (x << shift)
    start = lut[x]
    end = lut[np.minimum(x + 1, 255)]
    out = start + _round2((end - start) * rem, shift)
    return np.where(x == 255, start, out)


# -- the noise image --------------------------------------------------------------------------

def _blend(old: np.ndarray, new: np.ndarray, w_old: int, w_new: int, gmin: int, gmax: int
           ) -> np.ndarray:
    return np.clip(_round2(old * w_old + new * w_new, 5), gmin, gmax)


def block_offsets(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 32×32 block (stripe, block) the template offsets (offsetY, offsetX) of 7.18.3.5."""
    n_stripes = len(range(0, (height + 1) // 2, 16))
    n_blocks = len(range(0, (width + 1) // 2, 16))
    oy = np.empty((n_stripes, n_blocks), dtype=np.int64)
    ox = np.empty_like(oy)
    for s in range(n_stripes):
        reg = int(seed) & 0xFFFF
        reg ^= ((s * 37 + 178) & 255) << 8
        reg ^= (s * 173 + 105) & 255
        r = random_numbers(reg, n_blocks, 8)
        ox[s] = r >> 4
        oy[s] = r & 15
    return oy, ox


def _gather(template: np.ndarray, off_y: np.ndarray, off_x: np.ndarray, r0: int, nrows: int,
            c0: int, ncols: int) -> np.ndarray:
    """``template[off_y + r0 + i, off_x + c0 + j]`` per block, shaped (stripes, i, blocks, j):
    one copy of contiguous template rows, already in the frame's memory order."""
    rows = np.lib.stride_tricks.sliding_window_view(template, ncols, axis=1)
    i = np.arange(r0, r0 + nrows)
    return rows[off_y[:, None, :] + i[None, :, None], (off_x + c0)[:, None, :]]


def _weights(ov: int) -> tuple[tuple[int, int], ...]:
    return ((27, 17), (17, 27)) if ov == 2 else ((23, 22),)


def noise_plane(template: np.ndarray, oy: np.ndarray, ox: np.ndarray, height: int, width: int,
                sub_x: int, sub_y: int, overlap: bool, bit_depth: int) -> np.ndarray:
    """One plane of the spec's ``noiseImage`` (blocks, horizontal then vertical blending).

    ``height``, ``width``: the luma frame size; the plane is ``((h + sub_y) >> sub_y,
    (w + sub_x) >> sub_x)``.
    """
    gmin, gmax = grain_bounds(bit_depth)
    n_s, n_b = oy.shape
    by, bx = 32 >> sub_y, 32 >> sub_x  # block size in this plane
    ov_y, ov_x = (34 >> sub_y) - by, (34 >> sub_x) - bx  # overlap: 2 samples, 1 subsampled
    off_y = (6 + oy) if sub_y else (9 + 2 * oy)
    off_x = (6 + ox) if sub_x else (9 + 2 * ox)

    def rows(sel: slice, r0: int, nrows: int) -> np.ndarray:
        """Rows r0.. of each block of the stripes ``sel``, blended with the block to the
        left (its columns bx.., which the spec writes first and this block overwrites)."""
        oys, oxs = off_y[sel], off_x[sel]
        g = _gather(template, oys, oxs, r0, nrows, 0, bx)
        if overlap and n_b > 1:
            old = _gather(template, oys[:, :-1], oxs[:, :-1], r0, nrows, bx, ov_x)
            for j, (wo, wn) in enumerate(_weights(ov_x)):
                g[:, :, 1:, j] = _blend(old[..., j], g[:, :, 1:, j], wo, wn, gmin, gmax)
        return g

    main = rows(slice(None), 0, by)
    if overlap and n_s > 1:
        below = rows(slice(0, n_s - 1), by, ov_y)  # each stripe's rows under its 32
        for i, (wo, wn) in enumerate(_weights(ov_y)):
            main[1:, i] = _blend(below[:, i], main[1:, i], wo, wn, gmin, gmax)
    out = main.reshape(n_s * by, n_b * bx)
    ph, pw = (height + sub_y) >> sub_y, (width + sub_x) >> sub_x
    return out[:ph, :pw]


def noise_images(params: Any, height: int, width: int, *, bit_depth: int = 8, sub_x: int = 1,
                 sub_y: int = 1, chroma: bool = True) -> tuple[np.ndarray, Any, Any]:
    """The spec's ``noiseImage`` for each plane (int32; None for a plane without grain)."""
    csfl = bool(params.chroma_scaling_from_luma)
    want = (len(params.scaling_points_y) > 0,
            chroma and (len(params.scaling_points_cb) > 0 or csfl),
            chroma and (len(params.scaling_points_cr) > 0 or csfl))
    templates = generate_templates(params, bit_depth, sub_x, sub_y, planes=want)
    oy, ox = block_offsets(params.random_seed, height, width)
    out = []
    for k, (tmpl, on) in enumerate(zip(templates, want)):
        if not on:
            out.append(None)
            continue
        sx, sy = (0, 0) if k == 0 else (sub_x, sub_y)
        out.append(noise_plane(tmpl, oy, ox, height, width, sx, sy,
                               bool(params.overlap_flag), bit_depth))
    return out[0], out[1], out[2]


# -- adding the noise -------------------------------------------------------------------------

def _check_plane(a: Any, name: str, bit_depth: int, shape: tuple[int, int] | None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 2-D integer array (a plane of {bit_depth}-bit "
                         f"samples); got {arr.dtype} of shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}; for this luma plane it must be {shape}")
    top = (1 << bit_depth) - 1
    info = np.iinfo(arr.dtype)
    if arr.size and (info.min < 0 or info.max > top) and (
            int(arr.min()) < 0 or int(arr.max()) > top):
        raise ValueError(f"{name} holds values outside [0, {top}] "
                         f"(the range of {bit_depth}-bit samples)")
    return arr if arr.dtype.itemsize <= 2 else arr.astype(np.int32)


def _add_scaled(orig: np.ndarray, noise: np.ndarray, scale: np.ndarray, half: int, shift: int,
                lo: int | None, hi: int) -> np.ndarray:
    """``Clip3(lo, hi, orig + Round2(scale * noise, shift))``, in place on ``scale`` (only
    the noise ``Round2(scale * noise, shift)`` when ``lo`` is None)."""
    scale *= noise
    scale += half
    scale >>= shift
    if lo is None:
        return scale
    scale += orig
    np.clip(scale, lo, hi, out=scale)
    return scale


def add_grain_planes(params: Any, y: Any, u: Any = None, v: Any = None, *, bit_depth: int = 8,
                     clip_to_restricted_range: bool = False, mc_identity: bool = False,
                     noise_only: bool = False) -> tuple[np.ndarray, Any, Any]:
    """The film-grain synthesis process of the AV1 spec (7.18.3) on one frame.

    ``y``: the luma plane ``(h, w)``; ``u``, ``v``: the chroma planes (4:2:0, 4:2:2 or 4:4:4,
    inferred from their shape), or None for a monochrome frame. Returns new planes of the
    input dtype (the inputs are not modified) — or, with ``noise_only``, the spec's integer
    ``noise`` of each plane (int32, before it is added and clipped; zeros for a plane
    without grain).
    """
    if bit_depth not in (8, 10, 12):
        raise ValueError(f"bit_depth must be 8, 10 or 12; got {bit_depth!r}")
    yy = _check_plane(y, "y", bit_depth, None)
    h, w = yy.shape
    if h < 1 or w < 1:
        raise ValueError(f"y must not be empty; got shape {yy.shape}")
    if (u is None) != (v is None):
        raise ValueError("give both chroma planes u and v, or neither (monochrome)")
    sub_x = sub_y = 1
    if u is not None:
        ushape = np.shape(u)
        for sx in (0, 1):
            for sy in (0, 1):
                if tuple(ushape) == ((h + sy) >> sy, (w + sx) >> sx) and not (sy and not sx):
                    sub_x, sub_y = sx, sy
        cshape = ((h + sub_y) >> sub_y, (w + sub_x) >> sub_x)
        uu = _check_plane(u, "u", bit_depth, cshape)
        vv = _check_plane(v, "v", bit_depth, cshape)
    n_cb, n_cr = len(params.scaling_points_cb), len(params.scaling_points_cr)
    csfl = bool(params.chroma_scaling_from_luma)
    if u is not None and sub_x and sub_y and not csfl and (n_cb == 0) != (n_cr == 0):
        raise ValueError("in 4:2:0, AV1 film grain applies to both chroma planes or neither: "
                         f"the table has {n_cb} Cb and {n_cr} Cr scaling points")
    if u is not None and sub_x and sub_y and n_cb and not params.scaling_points_y:
        raise ValueError("in 4:2:0, AV1 carries chroma grain only with luma scaling points: "
                         "the table has chroma points but no luma point (aomenc aborts on it)")
    out_dtype = np.dtype(np.int32) if noise_only else np.asarray(y).dtype
    if noise_only and not params.apply_grain:
        return (np.zeros(yy.shape, np.int32), None if u is None else np.zeros(uu.shape, np.int32),
                None if v is None else np.zeros(vv.shape, np.int32))
    if not params.apply_grain:
        return (np.array(y, copy=True), None if u is None else np.array(u, copy=True),
                None if v is None else np.array(v, copy=True))
    ny, ncb, ncr = noise_images(params, h, w, bit_depth=bit_depth, sub_x=sub_x, sub_y=sub_y,
                                chroma=u is not None)
    top = (256 << (bit_depth - 8)) - 1
    if clip_to_restricted_range:
        lo = 16 << (bit_depth - 8)
        max_luma = 235 << (bit_depth - 8)
        max_chroma = max_luma if mc_identity else 240 << (bit_depth - 8)
    else:
        lo, max_luma, max_chroma = 0, top, top
    if noise_only:
        lo = None
    ss = params.scaling_shift
    half = 1 << (ss - 1)
    out_u = out_v = None
    if u is not None:
        hc, wc = uu.shape
        rows = yy[::2][:hc] if sub_y else yy
        if sub_x:
            left = rows[:, ::2][:, :wc]
            right = rows[:, 1::2]
            if right.shape[1] < wc:  # odd width: the last sample pairs with itself
                right = np.concatenate([right, rows[:, -1:]], axis=1)
            avg = left.astype(np.int32) + right
            avg += 1
            avg >>= 1
        else:
            avg = rows.astype(np.int32)
        planes = []
        for orig, noise, pts, mult, lmult, off in (
                (uu, ncb, params.scaling_points_cb, params.cb_mult, params.cb_luma_mult,
                 params.cb_offset),
                (vv, ncr, params.scaling_points_cr, params.cr_mult, params.cr_luma_mult,
                 params.cr_offset)):
            if noise is None:
                planes.append(np.zeros(orig.shape, np.int32) if noise_only else orig)
                continue
            lut = scaling_lut(params.scaling_points_y if csfl else pts)
            if csfl:
                merged = avg
            else:
                merged = avg * (lmult - 128) + orig.astype(np.int32) * (mult - 128)
                merged >>= 6
                merged += (off - 256) << (bit_depth - 8)
                np.clip(merged, 0, top, out=merged)
            planes.append(_add_scaled(orig, noise, _scale_lut(lut, merged, bit_depth), half, ss,
                                      lo, max_chroma))
        out_u, out_v = (p.astype(out_dtype) for p in planes)
    if ny is not None:
        lut = scaling_lut(params.scaling_points_y)
        out_y = _add_scaled(yy, ny, _scale_lut(lut, yy, bit_depth), half, ss, lo,
                            max_luma).astype(out_dtype)
    else:
        out_y = np.zeros(yy.shape, np.int32) if noise_only else np.array(y, copy=True)
    return out_y, out_u, out_v


# -- entry points -----------------------------------------------------------------------------

def av1_seed(seed: int) -> int:
    """AV1's 16-bit ``random_seed`` for a synthesis seed: its low 16 bits, 0 read as 7391
    (the all-zero register would repeat one sample; libaom's encoder makes the same swap)."""
    s = int(seed) & 0xFFFF
    return s if s else SEED_AFTER_ZERO


def synthesize_av1(shape: tuple[int, ...], profile: Any, luminance: np.ndarray | None,
                   seed: int) -> np.ndarray:
    """Grain in working units (fractions of the range) by the AV1 process, for a plane
    ``(H, W)`` or a colour image ``(H, W, 3)`` (Y'CbCr 4:4:4, BT.709, full range).

    The profile becomes AV1 parameters (:func:`.grain_av1.profile_to_params`, fitted where a
    table cannot carry it, with a warning); ``luminance`` (working units, or None for each
    channel's reference σ everywhere) is quantised to the codes the scaling function reads:
    8-bit for profiles of uint8 images, 10-bit otherwise.
    """
    import dataclasses
    import warnings

    from .grain_av1 import profile_to_params, rgb_to_ycbcr_matrix

    if len(shape) == 3 and shape[2] == 1:  # one channel: the grey process, kept 3-D
        lum1 = luminance if luminance is None or np.ndim(luminance) == 2 else luminance[..., 0]
        return synthesize_av1(tuple(shape[:2]), profile, lum1, seed)[..., None]
    colour = len(shape) == 3
    bd = 8 if profile.dtype == "uint8" else 10
    top = (1 << bd) - 1
    if luminance is None:
        ref = profile.channel_sigma()
        profile = dataclasses.replace(
            profile, nlf_intensity=(0.5,), nlf_sigma=tuple((float(v),) for v in ref),
            nlf_luma=(float(np.sqrt(np.mean(ref ** 2))),), nlf_chroma=(0.0,), nlf_count=(1,),
            av1_table=None)
        luminance = np.full(shape, 0.5, np.float32)
    report: list[tuple[str, str]] = []
    params = profile_to_params(profile, bit_depth=bd, seed=av1_seed(seed),
                               subsampling="444", fit=True, report=report)
    for kind, note in report:
        if kind == "fitted":
            warnings.warn(f"AV1 grain synthesis: {note}", UserWarning, stacklevel=4)
    lum = np.asarray(luminance, dtype=np.float64)
    if colour:
        m = rgb_to_ycbcr_matrix("bt709")
        ycc = lum[..., :3] @ m.T
        codes = np.rint(ycc * top + np.array([0.0, 1 << (bd - 1), 1 << (bd - 1)]))
        codes = np.clip(codes, 0, top).astype(np.uint16)
        ny, nu, nv = add_grain_planes(params, codes[..., 0], codes[..., 1], codes[..., 2],
                                      bit_depth=bd, noise_only=True)
        noise = np.stack([ny, nu, nv], axis=-1).astype(np.float64) / top
        return (noise @ np.linalg.inv(m).T).astype(np.float32)
    codes = np.clip(np.rint(lum * top), 0, top).astype(np.uint16)
    ny = add_grain_planes(params, codes, bit_depth=bd, noise_only=True)[0]
    return (ny / top).astype(np.float32)


def apply_av1_grain(y: Any, u: Any, v: Any, table: Any, *, bit_depth: int = 8,
                    frame: int = 0, clip_to_restricted_range: bool = False,
                    mc_identity: bool = False, fit: bool = False) -> tuple[np.ndarray, Any, Any]:
    """Add AV1 film grain to one decoded frame, exactly as a conforming decoder does.

    Parameters
    ----------
    y, u, v : ndarray
        The frame's planes as integer codes (``y`` ``(h, w)``; ``u``, ``v`` 4:2:0
        ``((h+1)//2, (w+1)//2)``, 4:2:2 or 4:4:4, or both None for monochrome). Not modified.
    table : path, str, Av1GrainTable, Av1GrainParams or GrainProfile
        The film grain: a ``filmgrn1`` file or its text, a parsed table (its first entry with
        parameters), parameters, or a profile (exported as :meth:`GrainProfile.to_av1_table`
        would, at ``bit_depth``).
    bit_depth : int
        8, 10 or 12 (the planes' codes).
    frame : int
        Index of the frame in its segment: the seed advances as libaom's encoder advances
        it (3381 per frame), so frame k of an ``aomenc`` encode gets its grain.
    clip_to_restricted_range, mc_identity : bool
        The bitstream's clipping flags (aomenc signals 0 with a table).
    fit : bool
        For a profile: what a table cannot hold is fitted with a warning instead of refused,
        as :meth:`GrainProfile.to_av1_table` ``(fit=True)`` does.

    Returns
    -------
    (y, u, v)
        New planes with grain (``u``, ``v`` None for monochrome).
    """
    import dataclasses

    from .grain_av1 import Av1GrainParams, Av1GrainTable, parse_table, profile_table, read_table
    from .grain_profile import GrainProfile

    if isinstance(table, Av1GrainParams):
        params = table
    elif isinstance(table, Av1GrainTable):
        params = table.first()
    elif isinstance(table, GrainProfile):
        params = profile_table(table, bit_depth=bit_depth, fit=bool(fit))[0].first()
    elif isinstance(table, str | bytes) and ("\n" if isinstance(table, str) else b"\n") in table:
        params = parse_table(table).first()  # a table's text (what to_av1_table returns)
    elif isinstance(table, str | bytes) or hasattr(table, "__fspath__"):
        params = read_table(table).first()
    else:
        raise TypeError("table must be a path, an Av1GrainTable, Av1GrainParams or a "
                        f"GrainProfile; got {type(table).__name__}")
    if isinstance(frame, bool) or not isinstance(frame, int | np.integer) or frame < 0:
        raise ValueError(f"frame must be a non-negative integer; got {frame!r}")
    if frame:
        params = dataclasses.replace(params, random_seed=frame_seed(params.random_seed, frame))
    return add_grain_planes(params, y, u, v, bit_depth=bit_depth,
                            clip_to_restricted_range=bool(clip_to_restricted_range),
                            mc_identity=bool(mc_identity))
