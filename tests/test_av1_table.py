"""AV1 film-grain tables (libaom ``filmgrn1``): reading, writing, refusing malformed tables,
and the GrainProfile <-> table mapping (round trips field by field, byte-identical re-export)."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

import numpy as np
import pytest

from napari_restore import GrainProfile, preserve_grain, synthesize_grain
from napari_restore.processors import grain_av1 as A

# A colour table in libaom's exact layout (aom_film_grain_table_write): note the two spaces
# after the luma count, chroma x positions unlike the luma ones and non-neutral multipliers.
LIBAOM = (
    "filmgrn1\n"
    "E 0 9223372036854775807 1 47 1\n"
    "\tp 3 6 1 8 0 1 150 100 300 90 210 200\n"
    "\tsY 4  0 120 60 250 150 30 255 200\n"
    "\tsCb 3 0 200 128 10 255 255\n"
    "\tsCr 2 20 100 230 180\n"
    "\tcY 4 -3 2 1 -5 6 2 0 3 -1 8 2 -1 5 12 3 -2 4 1 9 20 -3 15 22\n"
    "\tcCb 1 0 0 2 0 1 0 0 0 3 0 0 1 4 0 0 0 2 0 5 0 1 6 10 100\n"
    "\tcCr 0 0 1 0 0 0 0 0 2 0 0 0 3 0 0 1 0 0 0 0 4 0 5 8 -115\n"
)
# grav1synth's test table (lag 0: no luma coefficient, one chroma coefficient each).
GRAV1SYNTH = (
    "filmgrn1\n"
    "E 0 26460000000 1 7391 1\n"
    "\tp 0 6 0 8 0 1 0 0 0 0 0 0\n"
    "\tsY 14  0 26 20 7 39 5 59 4 78 4 98 4 118 4 137 4 157 4 177 4 196 4 216 4 235 4 255 4\n"
    "\tsCb 0\n"
    "\tsCr 0\n"
    "\tcY\n"
    "\tcCb 0\n"
    "\tcCr 0\n"
)
# Two segments, the second keeping the parameters (update_parameters 0).
SEGMENTS = (
    "filmgrn1\n"
    "E 0 4000000 1 1234 1\n"
    "\tp 1 7 0 11 0 0 0 0 0 0 0 0\n"
    "\tsY 2  10 40 200 80\n"
    "\tsCb 0\n"
    "\tsCr 0\n"
    "\tcY 3 -1 4 20\n"
    "\tcCb 0 0 0 0 0\n"
    "\tcCr 0 0 0 0 0\n"
    "E 4000000 8000000 1 999 0\n"
)


def profile(channels=1, k=6, sigma=0.01, rho=0.3, ar=None, size=64.0, slope=0.5):
    """A valid profile built by hand (no analysis): σ rising with intensity."""
    inten = tuple(float(v) for v in np.linspace(0.12, 0.88, k))
    base = np.array([sigma * (1 + slope * (i - 0.5)) for i in inten])
    gains = (1.0,) if channels == 1 else (1.0, 0.8, 1.25)
    rows = tuple(tuple(float(v) for v in base * g) for g in gains)
    coeffs = ar if ar is not None else np.zeros(24)
    if ar is None:
        coeffs[21:] = (0.05, -0.1, 0.35)  # left neighbours
        coeffs[10] = 0.3  # above
    return GrainProfile(
        channels=channels, nlf_intensity=inten, nlf_sigma=rows,
        nlf_luma=tuple(float(v) for v in np.mean(rows, axis=0)),
        nlf_chroma=(0.0,) * k if channels == 1 else tuple(float(v) for v in 0.3 * base),
        nlf_count=(20,) * k, spectrum_freq=tuple(np.arange(17) / 32),
        spectrum_power=tuple(np.full(17, 1 / 17)), grain_size_px=size, sigma=sigma,
        colour=channels == 3 and rho < 0.5, channel_correlation=1.0 if channels == 1 else rho,
        chroma_luma_ratio=0.0 if channels == 1 else 0.5, ar_coeffs=tuple(float(c) for c in coeffs),
        ar_residual=0.5, periodic_peak=0.0, flat_fraction=0.5, grain_type="fine_film_grain",
        dtype="uint8", value_range=(0.0, 255.0))


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


# -- the text format ------------------------------------------------------------------------

@pytest.mark.parametrize("text", [LIBAOM, GRAV1SYNTH, SEGMENTS], ids=["libaom", "grav1synth", "segments"])
def test_tables_parse_and_format_byte_identically(text):
    table = A.parse_table(text)
    assert A.format_table(table) == text


def test_parsed_values_and_tolerant_whitespace():
    t = A.parse_table(LIBAOM).first()
    assert (t.random_seed, t.ar_coeff_lag, t.ar_coeff_shift, t.grain_scale_shift,
            t.scaling_shift) == (47, 3, 6, 1, 8)
    assert t.scaling_points_cb == ((0, 200), (128, 10), (255, 255))
    assert t.ar_coeffs_cr[-1] == -115 and len(t.ar_coeffs_cb) == 25 and len(t.ar_coeffs_y) == 24
    # CRLF, extra spaces and blank lines read the same
    messy = LIBAOM.replace("\n", "  \r\n").replace("\tp ", "\t p  ").replace("E 0", "\nE  0")
    messy = messy.replace("\t p", "p")
    assert A.parse_table(messy) == A.parse_table(LIBAOM)
    seg = A.parse_table(SEGMENTS)
    assert seg.params_at(5_000_000).update_parameters == 0
    assert seg.params_at(10**8) is None
    assert len(A.parse_table(GRAV1SYNTH).first().ar_coeffs_y) == 0


def _broken(old: str, new: str, base: str = LIBAOM) -> str:
    assert old in base
    return base.replace(old, new, 1)


@pytest.mark.parametrize("text, where", [
    # wrong counts
    (_broken("sY 4  0 120 60 250 150 30 255 200", "sY 4  0 120 60 250 150 30"), r"line 4, scaling_points_y: 4 points need 8 numbers; got 6"),
    (_broken("\tp 3 6 1 8 0 1 150", "\tp 3 6 1 8 0 150"), r"line 3, params: 'p' needs 12 numbers"),
    (_broken("\tcY 4 -3 2 1", "\tcY -3 2 1"), r"line 7, ar_coeffs_y: ar_coeff_lag 3 needs 24 coefficients; got 23"),
    (_broken("\tcCb 1 0 0", "\tcCb 0 0"), r"line 8, ar_coeffs_cb: ar_coeff_lag 3 needs 25"),
    (_broken("E 0 9223372036854775807 1 47 1", "E 0 1 47 1"), r"line 2, entry: 'E' needs 5 numbers"),
    (_broken("sY 4  0 120", "sY 15  0 120"), r"line 4, num_y_points: 15 is outside 0..14"),
    (_broken("sCb 3 0 200", "sCb 11 0 200"), r"line 5, num_cb_points: 11 is outside 0..10"),
    # scaling points out of order or beyond 255
    (_broken("sY 4  0 120 60 250", "sY 4  0 120 0 250"), r"line 4, scaling_points_y\[1\] x: 0 is not greater"),
    (_broken("sCr 2 20 100 230 180", "sCr 2 20 100 256 180"), r"line 6, scaling_points_cr\[1\] x: 256 is outside 0..255"),
    (_broken("sCb 3 0 200 128 10", "sCb 3 0 300 128 10"), r"line 5, scaling_points_cb\[0\] y: 300 is outside 0..255"),
    # lag above 3, other parameters out of range
    (_broken("\tp 3 6 1 8", "\tp 4 6 1 8"), r"line 3, ar_coeff_lag: 4 is outside 0..3"),
    (_broken("\tp 3 6 1 8", "\tp 3 5 1 8"), r"line 3, ar_coeff_shift: 5 is outside 6..9"),
    (_broken("\tp 3 6 1 8", "\tp 3 6 1 12"), r"line 3, scaling_shift: 12 is outside 8..11"),
    (_broken("150 100 300 90", "150 100 512 90"), r"line 3, cb_offset: 512 is outside 0..511"),
    (_broken("E 0 9223372036854775807 1 47 1", "E 0 9223372036854775807 1 65536 1"), r"line 2, random_seed: 65536"),
    (_broken("E 0 9223372036854775807", "E 50 50"), r"line 2, end_time: 50 must be greater"),
    # AR coefficients out of range, not integers
    (_broken("\tcY 4 -3 2 1", "\tcY 4 -3 2 128"), r"line 7, ar_coeffs_y\[3\]: 128 is outside -128..127"),
    (_broken("\tcCr 0 0 1", "\tcCr 0 0 -129"), r"line 9, ar_coeffs_cr\[2\]: -129 is outside"),
    (_broken("\tcY 4 -3", "\tcY 4.5 -3"), r"line 7, ar_coeffs_y\[0\]: expected an integer, got '4.5'"),
    # missing lines
    (LIBAOM.rsplit("\tcCr", 1)[0], r"line 8, ar_coeffs_cr: missing line 'cCr …'"),
    (_broken("\tsCb 3 0 200 128 10 255 255\n", ""), r"line 5, scaling_points_cb: expected a line starting with 'sCb', got 'sCr'"),
    (_broken("\tp 3 6 1 8 0 1 150 100 300 90 210 200\n", ""), r"line 3, params: expected a line starting with 'p'"),
    ("filmgrn1\n", r"line 1, entries: the table has no 'E' entry"),
    ("", r"line 1, header: expected 'filmgrn1'"),
    ("filmgrn2\nE 0 1 1 1 0\n", r"line 1, header: expected 'filmgrn1'"),
    # non-ASCII bytes
    (_broken("\tsCr 2", "\tsCr\u00e9 2"), r"line 6, column 5: non-ASCII or control byte 0xC3"),
    (_broken("\tcY 4", "\tcY\x00 4"), r"line 7, column 4: non-ASCII or control byte 0x00"),
    # AV1 forbids chroma points with chroma_scaling_from_luma
    (_broken("\tp 3 6 1 8 0 1", "\tp 3 6 1 8 1 1"), r"line 3, chroma_scaling_from_luma: is 1 but"),
])
def test_malformed_tables_name_line_and_field(text, where, tmp_path):
    with pytest.raises(ValueError, match=where):
        A.parse_table(text)
    path = tmp_path / "bad.tbl"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(ValueError, match=where):
        GrainProfile.from_av1_table(path)


def test_huge_and_non_regular_files_are_refused_before_reading(tmp_path, monkeypatch):
    big = tmp_path / "big.tbl"
    with open(big, "wb") as f:  # 10 MB, sparse: nothing to read
        f.truncate(10 * 1024 * 1024)
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    with pytest.raises(ValueError, match="larger than 1000000 bytes"):
        GrainProfile.from_av1_table(big)
    assert reads == []  # refused on its size, before any read
    with pytest.raises(ValueError, match="a directory"):
        GrainProfile.from_av1_table(tmp_path)
    fifo = tmp_path / "fifo.tbl"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        GrainProfile.from_av1_table(fifo)
    with pytest.raises(FileNotFoundError):
        GrainProfile.from_av1_table(tmp_path / "missing.tbl")


# -- profile -> table -> profile ------------------------------------------------------------

def _quanta(params, bit_depth=8):
    st = A.template_stats(params, bit_depth, (1, 1), chroma=params.has_chroma)
    span = (1 << bit_depth) - 1
    d = 1 << params.scaling_shift
    return st.luma_std / d / span, st.cb_std / d / span, st.cr_std / d / span


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_grey_profile_round_trip_field_by_field(tmp_path, bit_depth):
    p = profile(sigma=0.012)
    text = p.to_av1_table(tmp_path / "p.tbl", bit_depth=bit_depth, seed=1234)
    params = A.parse_table(text).first()
    q = GrainProfile.from_av1_table(tmp_path / "p.tbl", bit_depth=bit_depth)
    step = (1 << (bit_depth - 8)) / ((1 << bit_depth) - 1)
    assert q.channels == 1 and len(q.nlf_intensity) == len(p.nlf_intensity)
    assert np.max(np.abs(np.subtract(q.nlf_intensity, p.nlf_intensity))) <= step / 2 + 1e-12
    qy = _quanta(params, bit_depth)[0]
    assert np.max(np.abs(np.subtract(q.nlf_sigma[0], p.nlf_sigma[0]))) <= qy / 2 + 1e-12
    assert np.max(np.abs(np.subtract(q.nlf_luma, p.nlf_luma))) <= qy / 2 + 1e-12
    quantum = 1.0 / (1 << params.ar_coeff_shift)
    assert np.max(np.abs(np.subtract(q.ar_coeffs, p.ar_coeffs))) <= quantum / 2 + 1e-12
    assert params.random_seed == 1234 and params.ar_coeff_lag == 3 and params.overlap_flag == 1
    assert params.scaling_shift == 11  # the finest steps that still fit
    assert q.dtype == ("uint8" if bit_depth == 8 else "uint16")
    assert q.av1_table == text


def test_colour_profile_round_trip_field_by_field(tmp_path):
    p = profile(channels=3, rho=0.3, sigma=0.012)
    text = quiet(p.to_av1_table, tmp_path / "c.tbl")
    params = A.parse_table(text).first()
    assert params.has_chroma and params.cb_luma_mult == 192 and params.cb_mult == 128
    q = GrainProfile.from_av1_table(tmp_path / "c.tbl")
    assert q.channels == 3
    m = A.rgb_to_ycbcr_matrix("bt709")
    cp, cq = A._ycc_covariances(p, m), A._ycc_covariances(q, m)
    # Y, Cb and Cr σ: what the table carries, to its precision
    for j, quantum in enumerate(_quanta(params)):
        err = np.abs(np.sqrt(cq[:, j, j]) - np.sqrt(cp[:, j, j]))
        assert err.max() <= quantum / 2 * 1.05 + 1e-9, (j, err.max(), quantum)
    # the luma–chroma correlations (the chroma planes' luma coefficient) and the channels'
    assert abs(q.channel_correlation - p.channel_correlation) < 0.02
    assert np.max(np.abs(np.subtract(q.nlf_sigma, p.nlf_sigma)) / np.asarray(p.nlf_sigma)) < 0.02
    assert np.max(np.abs(np.subtract(q.nlf_intensity, p.nlf_intensity))) <= 0.5 / 255 + 1e-12
    assert q.colour == p.colour


def test_mono_grain_in_a_colour_profile_has_no_chroma_grain(tmp_path):
    p = profile(channels=3, rho=1.0)
    p = dataclasses.replace(p, nlf_sigma=(p.nlf_sigma[0],) * 3)
    params = A.parse_table(p.to_av1_table(tmp_path / "m.tbl")).first()
    assert not params.has_chroma
    assert GrainProfile.from_av1_table(tmp_path / "m.tbl").channels == 1
    q = GrainProfile.from_av1_table(tmp_path / "m.tbl", channels=3)
    assert q.channels == 3 and q.channel_correlation == 1.0
    assert np.allclose(q.nlf_sigma[0], q.nlf_sigma[2])


# -- table -> profile -> table --------------------------------------------------------------

@pytest.mark.parametrize("text", [LIBAOM, GRAV1SYNTH, SEGMENTS], ids=["libaom", "grav1synth", "segments"])
def test_table_profile_table_is_byte_identical(text, tmp_path):
    src = tmp_path / "in.tbl"
    src.write_text(text)
    q = GrainProfile.from_av1_table(src)
    assert q.to_av1_table(tmp_path / "out.tbl") == text
    assert (tmp_path / "out.tbl").read_bytes() == text.encode()
    # through the profile's JSON, and through a nominal change of scale (uint8 -> uint16)
    again = GrainProfile.from_json(q.to_json())
    assert again == q and again.to_av1_table(tmp_path / "j.tbl") == text
    from napari_restore._arrays import value_scale

    scaled = q.for_scale(value_scale(np.zeros((2, 2), np.uint16)))
    assert scaled.to_av1_table(tmp_path / "s.tbl") == text


def test_an_edited_profile_writes_its_own_table(tmp_path):
    src = tmp_path / "in.tbl"
    src.write_text(SEGMENTS)
    q = GrainProfile.from_av1_table(src)
    doubled = dataclasses.replace(q, nlf_sigma=(tuple(2 * v for v in q.nlf_sigma[0]),))
    text = quiet(doubled.to_av1_table, tmp_path / "d.tbl", fit=True)
    assert text != SEGMENTS
    r = GrainProfile.from_av1_table(tmp_path / "d.tbl")
    assert np.allclose(r.nlf_sigma[0], doubled.nlf_sigma[0], rtol=0.03)
    # a seed of its own rewrites only the seeds
    reseeded = q.to_av1_table(tmp_path / "r.tbl", seed=5)
    assert reseeded == SEGMENTS.replace(" 1234 1\n", " 5 1\n").replace(" 999 0", " 5 0")


def test_profile_json_without_a_table_is_unchanged():
    p = profile()
    assert "av1_table" not in p.to_dict()
    d = p.to_dict()
    d["av1_table"] = "filmgrn1\nE 0 1 1 1 7\n"
    with pytest.raises(ValueError, match="av1_table.*line 2, update_parameters: 7"):
        GrainProfile.from_dict(d)
    d["av1_table"] = 5
    with pytest.raises(ValueError, match="av1_table"):
        GrainProfile.from_dict(d)


# -- what a table cannot carry --------------------------------------------------------------

def test_grain_beyond_the_8_bit_scale_is_refused_or_fitted(tmp_path):
    p = profile(sigma=0.25)  # 64 grey levels
    with pytest.raises(ValueError, match=r"Y σ of .* codes .* at intensity 0\.878 exceeds .* at 8 bits: 35\.9 codes"):
        p.to_av1_table(tmp_path / "x.tbl")
    assert not (tmp_path / "x.tbl").exists()
    with pytest.warns(UserWarning, match="clipped to the largest scaling"):
        text = p.to_av1_table(tmp_path / "x.tbl", fit=True)
    params = A.parse_table(text).first()
    assert params.scaling_shift == 8 and max(y for _, y in params.scaling_points_y) == 255


def test_ar_coefficients_and_close_intensities_are_refused_or_fitted(tmp_path):
    ar = np.zeros(24)
    ar[23] = 2.5
    p = profile(ar=ar)
    with pytest.raises(ValueError, match=r"AR coefficients reach 2\.5, outside AV1's range"):
        p.to_av1_table(tmp_path / "a.tbl")
    with pytest.warns(UserWarning) as caught:
        params = A.parse_table(p.to_av1_table(tmp_path / "a.tbl", fit=True)).first()
    said = [str(w.message) for w in caught]
    assert any("AR coefficients reach 2.5" in m and "clipped" in m for m in said), said
    assert any("grain_scale_shift 3" in m for m in said)  # the clipped AR's template clips
    assert params.ar_coeffs_y[23] == 127 and params.ar_coeff_shift == 6
    close = dataclasses.replace(profile(k=2), nlf_intensity=(0.5, 0.501))
    with pytest.raises(ValueError, match=r"0\.5 and 0\.501 fall on the same scaling position 128"):
        close.to_av1_table(tmp_path / "c.tbl")
    with pytest.warns(UserWarning, match="merged"):
        params = A.parse_table(close.to_av1_table(tmp_path / "c.tbl", fit=True)).first()
    assert len(params.scaling_points_y) == 1


def test_automatic_adaptations_say_what_changed(tmp_path):
    # 14 colour points: chroma keeps 10
    with pytest.warns(UserWarning, match="chroma scaling keeps 10 of the 14 NLF points"):
        text = profile(channels=3, k=14).to_av1_table(tmp_path / "c.tbl")
    params = A.parse_table(text).first()
    assert len(params.scaling_points_y) == 14 and len(params.scaling_points_cb) == 10
    # a spectrum limited by the grain size: the AR is refitted to it
    with pytest.warns(UserWarning, match="refitted to the spectrum limited by the grain size"):
        profile(size=0.3).to_av1_table(tmp_path / "s.tbl")


def test_bad_options_are_refused(tmp_path):
    p = profile()
    for kw, match in (({"seed": 0}, "seed must be an integer in 1..65535"),
                      ({"seed": 70000}, "seed"), ({"bit_depth": 9}, "bit_depth must be 8, 10 or 12"),
                      ({"matrix": "bt999"}, "matrix='bt999' is not one of"),
                      ({"video_range": "tv"}, "video_range"), ({"subsampling": "411"}, "subsampling")):
        with pytest.raises(ValueError, match=match):
            p.to_av1_table(tmp_path / "x.tbl", **kw)
    with pytest.raises(TypeError, match="GrainProfile"):
        A.to_av1_table({"channels": 1}, tmp_path / "x.tbl")


def test_limited_range_and_other_matrices(tmp_path):
    p = profile(channels=3)
    full = A.parse_table(quiet(p.to_av1_table, tmp_path / "f.tbl")).first()
    lim = A.parse_table(quiet(p.to_av1_table, tmp_path / "l.tbl", video_range="limited")).first()
    assert lim.scaling_points_y[0][0] == round(16 + 219 * p.nlf_intensity[0])
    assert full.scaling_points_y[0][0] == round(255 * p.nlf_intensity[0])
    q = GrainProfile.from_av1_table(tmp_path / "l.tbl", video_range="limited")
    assert np.allclose(q.nlf_sigma, p.nlf_sigma, rtol=0.03)
    b601 = quiet(p.to_av1_table, tmp_path / "b.tbl", matrix="bt601")
    assert b601 != (tmp_path / "f.tbl").read_text()
    q601 = GrainProfile.from_av1_table(tmp_path / "b.tbl", matrix=(0.299, 0.114))
    assert np.allclose(q601.nlf_sigma, p.nlf_sigma, rtol=0.03)


def test_stack_table_one_segment_per_frame_range():
    a, b = profile(sigma=0.01), profile(sigma=0.02)
    table = A.stack_table([(a, 0, 10), (b, 10, 25)], fps=25, seed=99)
    assert [(s.start_time, s.end_time) for s in table.segments] == [(0, 4_000_000),
                                                                   (4_000_000, 10_000_000)]
    pa, pb = table.segments[0].params, table.segments[1].params
    ya = max(y for _, y in pa.scaling_points_y) / 2**pa.scaling_shift
    yb = max(y for _, y in pb.scaling_points_y) / 2**pb.scaling_shift
    assert yb == pytest.approx(2 * ya, rel=0.02)
    text = table.format()
    assert text.count("\nE ") == 2 and A.parse_table(text) == table
    with pytest.raises(ValueError, match=r"segments\[1\] starts at frame 5"):
        A.stack_table([(a, 0, 10), (b, 5, 25)])
    with pytest.raises(ValueError, match="fps"):
        A.stack_table([(a, 0, 10)], fps=0)


def test_imported_profiles_work_for_synthesis_and_regrain(tmp_path):
    src = tmp_path / "in.tbl"
    src.write_text(LIBAOM)
    q = GrainProfile.from_av1_table(src)
    assert q.channels == 3 and q.grain_type in ("digital_noise", "fine_film_grain",
                                                "medium_film_grain", "coarse_film_grain",
                                                "minimal_grain")
    rng = np.random.default_rng(0)
    clean = np.clip(0.5 + 0.1 * rng.standard_normal((64, 64, 3)), 0, 1).astype(np.float32)
    for method in ("spectral", "av1"):
        g = quiet(synthesize_grain, (64, 64, 3), q, luminance=clean, channel_axis=-1,
                  method=method)
        assert g.shape == (64, 64, 3) and np.isfinite(g).all() and g.std() > 0
    out = preserve_grain(clean, clean, mode="resynthesize", profile=q, channel_axis=-1)
    assert out.shape == clean.shape and not np.array_equal(out, clean)
    json.loads(q.to_json())  # the profile (with its table) is plain JSON
