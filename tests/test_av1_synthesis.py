"""AV1 film-grain synthesis (spec 7.18.3): the vectorised implementation against a plain
transliteration of the spec's pseudo-code, and the public entry points
(``apply_av1_grain``, ``synthesize_grain(method="av1")``)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from napari_restore import GrainProfile, apply_av1_grain, synthesize_grain
from napari_restore.processors import grain_av1 as A
from napari_restore.processors import grain_av1_synth as S
from napari_restore.processors._av1_gaussian import GAUSSIAN_SEQUENCE

# -- the spec, line by line (slow; small frames only) ----------------------------------------


class SpecGrain:
    """AV1 spec 7.18.3.2–7.18.3.5, transliterated (scalar loops, no numpy tricks)."""

    def __init__(self, p, bit_depth, sub_x, sub_y, mono=False):
        self.p, self.bd, self.sx, self.sy, self.mono = p, bit_depth, sub_x, sub_y, mono
        self.reg = p.random_seed
        centre = 128 << (bit_depth - 8)
        self.gmin, self.gmax = -centre, (256 << (bit_depth - 8)) - 1 - centre

    def rand(self, bits):
        r = self.reg
        bit = ((r >> 0) ^ (r >> 1) ^ (r >> 3) ^ (r >> 12)) & 1
        r = (r >> 1) | (bit << 15)
        self.reg = r
        return (r >> (16 - bits)) & ((1 << bits) - 1)

    @staticmethod
    def round2(x, n):
        return x if n == 0 else (x + (1 << (n - 1))) >> n

    def clip3(self, lo, hi, x):
        return lo if x < lo else hi if x > hi else x

    def generate(self):
        p = self.p
        shift = 12 - self.bd + p.grain_scale_shift
        L = [[0] * 82 for _ in range(73)]
        for y in range(73):
            for x in range(82):
                g = GAUSSIAN_SEQUENCE[self.rand(11)] if p.scaling_points_y else 0
                L[y][x] = self.round2(int(g), shift)
        lag, ashift = p.ar_coeff_lag, p.ar_coeff_shift
        for y in range(3, 73):
            for x in range(3, 82 - 3):
                s = pos = 0
                for dr in range(-lag, 1):
                    for dc in range(-lag, lag + 1):
                        if dr == 0 and dc == 0:
                            break
                        s += L[y + dr][x + dc] * p.ar_coeffs_y[pos]
                        pos += 1
                L[y][x] = self.clip3(self.gmin, self.gmax, L[y][x] + self.round2(s, ashift))
        self.L = L
        cw, ch = (44 if self.sx else 82), (38 if self.sy else 73)
        csfl = p.chroma_scaling_from_luma
        planes = []
        for xor, npts in ((0xB524, len(p.scaling_points_cb)), (0x49D8, len(p.scaling_points_cr))):
            self.reg = p.random_seed ^ xor
            C = [[0] * cw for _ in range(ch)]
            for y in range(ch):
                for x in range(cw):
                    g = GAUSSIAN_SEQUENCE[self.rand(11)] if (npts or csfl) else 0
                    C[y][x] = self.round2(int(g), shift)
            planes.append(C)
        cb, cr = planes
        for y in range(3, ch):
            for x in range(3, cw - 3):
                s0 = s1 = pos = 0
                for dr in range(-lag, 1):
                    for dc in range(-lag, lag + 1):
                        c0, c1 = p.ar_coeffs_cb[pos], p.ar_coeffs_cr[pos]
                        if dr == 0 and dc == 0:
                            if p.scaling_points_y:
                                luma = 0
                                lx, ly = ((x - 3) << self.sx) + 3, ((y - 3) << self.sy) + 3
                                for i in range(self.sy + 1):
                                    for j in range(self.sx + 1):
                                        luma += L[ly + i][lx + j]
                                luma = self.round2(luma, self.sx + self.sy)
                                s0 += luma * c0
                                s1 += luma * c1
                            break
                        s0 += cb[y + dr][x + dc] * c0
                        s1 += cr[y + dr][x + dc] * c1
                        pos += 1
                cb[y][x] = self.clip3(self.gmin, self.gmax, cb[y][x] + self.round2(s0, ashift))
                cr[y][x] = self.clip3(self.gmin, self.gmax, cr[y][x] + self.round2(s1, ashift))
        self.cb, self.cr = cb, cr

    def lut(self, pts):
        lut = [0] * 256
        if not pts:
            return lut
        for x in range(pts[0][0]):
            lut[x] = pts[0][1]
        for i in range(len(pts) - 1):
            dy, dx = pts[i + 1][1] - pts[i][1], pts[i + 1][0] - pts[i][0]
            delta = dy * ((65536 + (dx >> 1)) // dx)
            for x in range(dx):
                lut[pts[i][0] + x] = pts[i][1] + ((x * delta + 32768) >> 16)
        for x in range(pts[-1][0], 256):
            lut[x] = pts[-1][1]
        return lut

    def scale_lut(self, lut, index):
        shift = self.bd - 8
        x = index >> shift
        rem = index - (x << shift)
        if self.bd == 8 or x == 255:
            return lut[x]
        return lut[x] + self.round2((lut[x + 1] - lut[x]) * rem, shift)

    def add_noise(self, Y, U, V, clip=False, mc_identity=False):
        p, sx, sy, bd = self.p, self.sx, self.sy, self.bd
        h, w = len(Y), len(Y[0])
        nplanes = 1 if self.mono else 3
        stripes = {}
        luma_num = 0
        for y in range(0, (h + 1) // 2, 16):
            self.reg = p.random_seed
            self.reg ^= ((luma_num * 37 + 178) & 255) << 8
            self.reg ^= (luma_num * 173 + 105) & 255
            for x in range(0, (w + 1) // 2, 16):
                r = self.rand(8)
                ox, oy = r >> 4, r & 15
                for plane in range(nplanes):
                    psx, psy = (sx, sy) if plane else (0, 0)
                    pox = 6 + ox if psx else 9 + ox * 2
                    poy = 6 + oy if psy else 9 + oy * 2
                    src = (self.L, self.cb, self.cr)[plane]
                    for i in range(34 >> psy):
                        for j in range(34 >> psx):
                            g = src[poy + i][pox + j]
                            key = (luma_num, plane, i)
                            row = stripes.setdefault(key, {})
                            if psx == 0:
                                if j < 2 and p.overlap_flag and x > 0:
                                    old = row[x * 2 + j]
                                    g = old * 27 + g * 17 if j == 0 else old * 17 + g * 27
                                    g = self.clip3(self.gmin, self.gmax, self.round2(g, 5))
                                row[x * 2 + j] = g
                            else:
                                if j == 0 and p.overlap_flag and x > 0:
                                    old = row[x + j]
                                    g = self.clip3(self.gmin, self.gmax,
                                                   self.round2(old * 23 + g * 22, 5))
                                row[x + j] = g
            luma_num += 1
        noise = []
        for plane in range(nplanes):
            psx, psy = (sx, sy) if plane else (0, 0)
            img = []
            for y in range((h + psy) >> psy):
                ln = y >> (5 - psy)
                i = y - (ln << (5 - psy))
                out = []
                for x in range((w + psx) >> psx):
                    g = stripes[(ln, plane, i)][x]
                    if psy == 0:
                        if i < 2 and ln > 0 and p.overlap_flag:
                            old = stripes[(ln - 1, plane, i + 32)][x]
                            g = old * 27 + g * 17 if i == 0 else old * 17 + g * 27
                            g = self.clip3(self.gmin, self.gmax, self.round2(g, 5))
                    elif i < 1 and ln > 0 and p.overlap_flag:
                        old = stripes[(ln - 1, plane, i + 16)][x]
                        g = self.clip3(self.gmin, self.gmax, self.round2(old * 23 + g * 22, 5))
                    out.append(g)
                img.append(out)
            noise.append(img)
        csfl = p.chroma_scaling_from_luma
        luts = [self.lut(p.scaling_points_y),
                self.lut(p.scaling_points_y if csfl else p.scaling_points_cb),
                self.lut(p.scaling_points_y if csfl else p.scaling_points_cr)]
        if clip:
            lo, max_l = 16 << (bd - 8), 235 << (bd - 8)
            max_c = max_l if mc_identity else 240 << (bd - 8)
        else:
            lo, max_l = 0, (256 << (bd - 8)) - 1
            max_c = max_l
        top = (1 << bd) - 1
        ss = p.scaling_shift
        Y2 = [row[:] for row in Y]
        if not self.mono:
            U2, V2 = [row[:] for row in U], [row[:] for row in V]
            for y in range((h + sy) >> sy):
                for x in range((w + sx) >> sx):
                    lx, ly = x << sx, y << sy
                    nx = min(lx + 1, w - 1)
                    avg = self.round2(Y[ly][lx] + Y[ly][nx], 1) if sx else Y[ly][lx]
                    for out, orig_p, npts, mult, lmult, off, k in (
                            (U2, U, p.scaling_points_cb, p.cb_mult, p.cb_luma_mult, p.cb_offset, 1),
                            (V2, V, p.scaling_points_cr, p.cr_mult, p.cr_luma_mult, p.cr_offset, 2)):
                        if not (npts or csfl):
                            continue
                        orig = orig_p[y][x]
                        if csfl:
                            merged = avg
                        else:
                            comb = avg * (lmult - 128) + orig * (mult - 128)
                            merged = self.clip3(0, top, (comb >> 6) + ((off - 256) << (bd - 8)))
                        nz = self.round2(self.scale_lut(luts[k], merged) * noise[k][y][x], ss)
                        out[y][x] = self.clip3(lo, max_c, orig + nz)
        for y in range(h):
            for x in range(w):
                nz = self.round2(self.scale_lut(luts[0], Y[y][x]) * noise[0][y][x], ss)
                if p.scaling_points_y:
                    Y2[y][x] = self.clip3(lo, max_l, Y[y][x] + nz)
        if self.mono:
            return Y2, None, None
        return Y2, U2, V2


PARAMS = A.Av1GrainParams(
    random_seed=47, ar_coeff_lag=3, ar_coeff_shift=6, grain_scale_shift=1, scaling_shift=8,
    overlap_flag=1, cb_mult=150, cb_luma_mult=100, cb_offset=300, cr_mult=90, cr_luma_mult=210,
    cr_offset=200, scaling_points_y=((0, 120), (60, 250), (150, 30), (255, 200)),
    scaling_points_cb=((0, 200), (128, 10), (255, 255)), scaling_points_cr=((20, 100), (230, 180)),
    ar_coeffs_y=(4, -3, 2, 1, -5, 6, 2, 0, 3, -1, 8, 2, -1, 5, 12, 3, -2, 4, 1, 9, 20, -3, 15, 22),
    ar_coeffs_cb=(1, 0, 0, 2, 0, 1, 0, 0, 0, 3, 0, 0, 1, 4, 0, 0, 0, 2, 0, 5, 0, 1, 6, 10, 100),
    ar_coeffs_cr=(0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 1, 0, 0, 0, 0, 4, 0, 5, 8, -115))


def frame(h, w, sub_x, sub_y, bit_depth, seed=0):
    rng = np.random.default_rng(seed)
    top = (1 << bit_depth) - 1
    ramp = np.linspace(0, top, w)[None, :] + np.linspace(-top / 8, top / 8, h)[:, None]
    y = np.clip(ramp + rng.integers(-8, 9, (h, w)), 0, top).astype(np.uint16)
    cs = ((h + sub_y) >> sub_y, (w + sub_x) >> sub_x)
    u = rng.integers(0, top + 1, cs).astype(np.uint16)
    v = np.clip(top - u.astype(int) + rng.integers(-20, 21, cs), 0, top).astype(np.uint16)
    return y, u, v


CASES = [
    # (h, w, sub_x, sub_y, bit_depth, changes)
    (70, 38, 1, 1, 8, {}),
    (33, 45, 1, 1, 8, {"overlap_flag": 0}),
    (40, 70, 0, 0, 8, {"ar_coeff_lag": 2, "ar_coeffs_y": PARAMS.ar_coeffs_y[:12],
                       "ar_coeffs_cb": PARAMS.ar_coeffs_cb[:13], "ar_coeffs_cr": PARAMS.ar_coeffs_cr[:13]}),
    (36, 40, 1, 0, 10, {"chroma_scaling_from_luma": 1, "scaling_points_cb": (),
                        "scaling_points_cr": (), "scaling_shift": 11}),
    (34, 34, 0, 0, 10, {"scaling_points_y": (), "grain_scale_shift": 0}),
]


@pytest.mark.parametrize("h, w, sub_x, sub_y, bit_depth, changes", CASES)
def test_vectorised_synthesis_equals_the_spec_pseudo_code(h, w, sub_x, sub_y, bit_depth, changes):
    p = dataclasses.replace(PARAMS, **changes)
    y, u, v = frame(h, w, sub_x, sub_y, bit_depth)
    ref = SpecGrain(p, bit_depth, sub_x, sub_y)
    ref.generate()
    want = ref.add_noise(y.tolist(), u.tolist(), v.tolist())
    got = S.add_grain_planes(p, y, u, v, bit_depth=bit_depth)
    for g, r in zip(got, want):
        assert np.array_equal(g, np.array(r)), "differs from the spec"
    # the templates themselves
    lt, cb, cr = S.generate_templates(p, bit_depth, sub_x, sub_y, planes=(True, True, True))
    assert np.array_equal(lt, np.array(ref.L)) or not p.scaling_points_y
    assert np.array_equal(cb, np.array(ref.cb)) and np.array_equal(cr, np.array(ref.cr))


def test_restricted_range_clipping_and_monochrome_equal_the_spec():
    y, u, v = frame(40, 50, 1, 1, 8, seed=3)
    for mc in (False, True):
        ref = SpecGrain(PARAMS, 8, 1, 1)
        ref.generate()
        want = ref.add_noise(y.tolist(), u.tolist(), v.tolist(), clip=True, mc_identity=mc)
        got = S.add_grain_planes(PARAMS, y, u, v, clip_to_restricted_range=True, mc_identity=mc)
        assert all(np.array_equal(g, np.array(r)) for g, r in zip(got, want))
        assert got[0].min() >= 16 and got[0].max() <= 235
    ref = SpecGrain(PARAMS, 8, 1, 1, mono=True)
    ref.generate()
    want = ref.add_noise(y.tolist(), None, None)
    got = S.add_grain_planes(PARAMS, y)
    assert np.array_equal(got[0], np.array(want[0])) and got[1] is None


def test_gaussian_sequence_and_random_generator():
    g = GAUSSIAN_SEQUENCE
    assert len(g) == 2048 and g.min() >= -2048 and g.max() <= 2047 and np.all(g % 4 == 0)
    assert abs(g.std() - 512) < 5 and abs(g.mean()) < 5
    assert list(g[:8]) == [56, 568, -180, 172, 124, -84, 172, -64]
    for reg in (1, 47, 0xB524 ^ 7391, 65535):
        ref = SpecGrain(dataclasses.replace(PARAMS, random_seed=reg), 8, 1, 1)
        for bits in (8, 11):
            ref.reg = reg
            want = [ref.rand(bits) for _ in range(300)]
            assert list(S.random_numbers(reg, 300, bits)) == want
    assert not S.random_numbers(0, 10, 11).any()
    # libaom's per-frame seeds: +3381, and 0 becomes 7391
    assert S.frame_seed(7391, 0) == 7391 and S.frame_seed(7391, 1) == 10772
    assert S.frame_seed(65536 - 3381, 1) == 7391
    assert S.av1_seed(0) == 7391 and S.av1_seed(65536 + 5) == 5


def test_scaling_lut_matches_the_spec():
    ref = SpecGrain(PARAMS, 8, 1, 1)
    for pts in (PARAMS.scaling_points_y, ((5, 0), (6, 255)), ((128, 17),), ()):
        assert list(S.scaling_lut(pts)) == ref.lut(list(pts))


def test_apply_av1_grain_entry_point(tmp_path):
    y, u, v = frame(48, 64, 1, 1, 8)
    y8, u8, v8 = (a.astype(np.uint8) for a in (y, u, v))
    copies = [a.copy() for a in (y8, u8, v8)]
    path = tmp_path / "t.tbl"
    table = A.Av1GrainTable((A.Av1GrainSegment(0, A.END_OF_TIME, PARAMS),))
    A.write_table(path, table)
    out = apply_av1_grain(y8, u8, v8, path)
    assert all(np.array_equal(a, b) for a, b in zip((y8, u8, v8), copies))  # not modified
    assert all(o.dtype == np.uint8 for o in out)
    same = apply_av1_grain(y8, u8, v8, table)
    assert all(np.array_equal(a, b) for a, b in zip(out, same))
    later = apply_av1_grain(y8, u8, v8, PARAMS, frame=2)
    seeded = S.add_grain_planes(dataclasses.replace(PARAMS, random_seed=S.frame_seed(47, 2)),
                                y8, u8, v8)
    assert all(np.array_equal(a, b) for a, b in zip(later, seeded))
    assert not np.array_equal(later[0], out[0])
    off = apply_av1_grain(y8, u8, v8, dataclasses.replace(PARAMS, apply_grain=0))
    assert all(np.array_equal(a, b) for a, b in zip(off, (y8, u8, v8)))
    with pytest.raises(ValueError, match="both chroma planes"):
        apply_av1_grain(y8, u8, None, PARAMS)
    with pytest.raises(ValueError, match=r"u has shape \(10, 10\)"):
        apply_av1_grain(y8, u8[:10, :10], v8[:10, :10], PARAMS)
    with pytest.raises(ValueError, match=r"outside \[0, 255\]"):
        apply_av1_grain(y.astype(np.uint16) + 300, u, v, PARAMS)
    with pytest.raises(ValueError, match="2-D integer array"):
        apply_av1_grain(y8.astype(np.float32), u8, v8, PARAMS)
    with pytest.raises(ValueError, match="frame must be"):
        apply_av1_grain(y8, u8, v8, PARAMS, frame=-1)
    with pytest.raises(ValueError, match="both chroma planes or neither"):
        apply_av1_grain(y8, u8, v8, dataclasses.replace(PARAMS, scaling_points_cr=()))
    with pytest.raises(ValueError, match="chroma grain only with luma scaling points"):
        apply_av1_grain(y8, u8, v8, dataclasses.replace(PARAMS, scaling_points_y=()))
    with pytest.raises(TypeError, match="table must be"):
        apply_av1_grain(y8, u8, v8, 5)
    with pytest.raises(ValueError, match="bit_depth"):
        apply_av1_grain(y8, u8, v8, PARAMS, bit_depth=9)


def _grey_profile(sigma=0.02, size=64.0):
    k = 5
    inten = tuple(float(v) for v in np.linspace(0.15, 0.85, k))
    s = tuple(float(sigma * (0.7 + 0.6 * i)) for i in inten)
    ar = np.zeros(24)
    ar[23], ar[17] = 0.4, 0.3
    return GrainProfile(
        channels=1, nlf_intensity=inten, nlf_sigma=(s,), nlf_luma=s, nlf_chroma=(0.0,) * k,
        nlf_count=(10,) * k, spectrum_freq=tuple(np.arange(17) / 32),
        spectrum_power=tuple(np.full(17, 1 / 17)), grain_size_px=size, sigma=sigma,
        colour=False, channel_correlation=1.0, chroma_luma_ratio=0.0,
        ar_coeffs=tuple(float(a) for a in ar), ar_residual=0.5, periodic_peak=0.0,
        flat_fraction=0.5, grain_type="fine_film_grain", dtype="uint8", value_range=(0.0, 255.0))


def test_synthesize_grain_av1_on_uint8_is_the_decoders_grain():
    p = _grey_profile()
    rng = np.random.default_rng(1)
    lum = np.clip(np.linspace(20, 230, 96)[None, :] + rng.normal(0, 3, (80, 96)), 0, 255)
    lum = lum.astype(np.uint8)
    grain = synthesize_grain(lum.shape, p, luminance=lum, seed=7391, method="av1")
    regrained = np.clip(np.rint(lum + grain), 0, 255).astype(np.uint8)
    params = A.profile_table(p, bit_depth=8, seed=7391)[0].first()
    assert np.array_equal(regrained, apply_av1_grain(lum, None, None, params)[0])
    assert np.allclose(grain, np.rint(grain))  # whole grey levels, as the decoder adds
    # the grain follows the profile's NLF
    expected = p.sigma_at(lum / 255.0) * 255
    assert abs(grain.std() / np.sqrt(np.mean(expected ** 2)) - 1) < 0.1
    # another seed, another grain; the same seed, the same grain
    assert not np.array_equal(grain, synthesize_grain(lum.shape, p, luminance=lum, seed=1,
                                                      method="av1"))
    assert np.array_equal(grain, synthesize_grain(lum.shape, p, luminance=lum, seed=7391,
                                                  method="av1"))


def test_synthesize_grain_av1_on_float_and_colour_data():
    p = _grey_profile(sigma=0.03)
    g = synthesize_grain((128, 160), p, seed=3, method="av1")  # no luminance: reference σ
    assert g.dtype == np.float32 and g.shape == (128, 160)
    assert abs(g.std() / float(p.channel_sigma()[0]) - 1) < 0.1
    flt = np.tile(np.linspace(0.1, 0.9, 160, dtype=np.float32), (128, 1))
    gf = synthesize_grain(flt.shape, p, luminance=flt, seed=3, method="av1")
    assert abs(gf.std() / np.sqrt(np.mean(p.sigma_at(flt) ** 2)) - 1) < 0.1
    assert np.allclose(gf * 1023, np.rint(gf * 1023), atol=1e-3)  # 10-bit codes
    # float data in counts: an 8-bit profile keeps its size in data units (7.65 counts), and
    # its NLF (at 38..217 counts) lies below these data: the export says so
    counts = np.full((128, 160), 1000.0, np.float32) + np.linspace(0, 3000, 160)[None, :]
    with pytest.warns(UserWarning) as caught:
        gc = synthesize_grain(counts.shape, p, luminance=counts, seed=3, method="av1")
    said = " ".join(str(w.message) for w in caught)
    assert "outside the table's range" in said and "merged" in said
    rms = float(np.sqrt(np.mean(np.square(p.nlf_sigma[0])))) * 255
    assert abs(gc.std() / rms - 1) < 0.1
    # colour: three channels with the profile's correlation
    rows = (p.nlf_sigma[0], tuple(0.8 * v for v in p.nlf_sigma[0]),
            tuple(1.2 * v for v in p.nlf_sigma[0]))
    pc = dataclasses.replace(p, channels=3, nlf_sigma=rows, channel_correlation=0.4,
                             colour=True, nlf_chroma=tuple(0.3 * v for v in p.nlf_luma))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gcol = synthesize_grain((128, 160, 3), pc, seed=5, method="av1")
    stds = gcol.reshape(-1, 3).std(axis=0)
    ref = pc.channel_sigma()
    assert np.all(np.abs(stds / ref - 1) < 0.2), (stds, ref)
    cc = np.corrcoef(gcol.reshape(-1, 3).T)
    mean_corr = (cc[0, 1] + cc[0, 2] + cc[1, 2]) / 3
    assert abs(mean_corr - 0.4) < 0.15, mean_corr


def test_default_synthesis_is_unchanged_and_bad_method_is_refused():
    p = _grey_profile()
    a = synthesize_grain((32, 32), p, seed=2)
    b = synthesize_grain((32, 32), p, seed=2, method="spectral")
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="method='fourier' is not one of 'spectral', 'av1'"):
        synthesize_grain((32, 32), p, method="fourier")
