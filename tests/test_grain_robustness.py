"""Robustness of the film-grain processors and AV1 film-grain tables on the inputs people
bring: small images, odd dtypes, malformed tables (each test guards a fixed bug)."""

import numpy as np
import pytest

from napari_restore import analyze_grain, synthesize_grain


def _grainy(n: int, sigma: float = 0.03, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + sigma * rng.standard_normal((n, n)), 0.0, 1.0)


@pytest.mark.parametrize("n", [32, 40])
def test_small_image_keeps_its_grain_level(n):
    # 32-47 px images have one or two flat blocks, fewer than an NLF bin needed: the NLF
    # came out as one point of sigma 0, so synthesis (and denoising) saw no grain at all
    img = _grainy(n)
    prof = analyze_grain(img)
    assert prof.nlf_sigma[0][0] == pytest.approx(0.03, rel=0.2)
    assert synthesize_grain((n, n), prof, luminance=img, seed=1).std() == pytest.approx(
        0.03, rel=0.3)


def test_uint8_profile_on_int32_image_keeps_grey_levels_as_on_floats():
    # int32 images are scaled by their values' range, like floats: a profile measured on a
    # uint8 scan keeps its grain in grey levels on both (it took the int32 image's span)
    rng = np.random.default_rng(1)
    flat = np.full((64, 64), 0.5)
    prof = analyze_grain(np.rint(255 * (flat + 0.03 * rng.standard_normal(flat.shape)))
                         .astype(np.uint8))
    ramp = np.linspace(1000.0, 3000.0, 64)[None, :].repeat(64, 0)
    as_float = synthesize_grain((64, 64), prof, luminance=ramp.astype(np.float32), seed=2)
    as_int32 = synthesize_grain((64, 64), prof, luminance=ramp.astype(np.int32), seed=2)
    assert as_float.std() == pytest.approx(0.03 * 255, rel=0.25)
    assert as_int32.std() == pytest.approx(as_float.std(), rel=0.02)


def test_av1_synthesis_of_one_channel_shape():
    # (H, W, 1) is accepted for a grey profile; method="av1" failed inside a matmul
    prof = analyze_grain(_grainy(64))
    grain = synthesize_grain((40, 48, 1), prof, seed=3, method="av1")
    assert grain.shape == (40, 48, 1)
    assert grain.std() > 0.01
    np.testing.assert_array_equal(grain[..., 0],
                                  synthesize_grain((40, 48), prof, seed=3, method="av1"))


def test_apply_av1_grain_takes_the_tables_text(tmp_path):
    # to_av1_table returns the table's text; passing it was read as a file name (OSError)
    from napari_restore import apply_av1_grain

    text = analyze_grain(_grainy(64)).to_av1_table(tmp_path / "g.tbl")
    y = np.full((32, 32), 100, np.uint8)
    u = np.full((16, 16), 128, np.uint8)
    from_text = apply_av1_grain(y, u, u, text)
    from_file = apply_av1_grain(y, u, u, tmp_path / "g.tbl")
    for a, b in zip(from_text, from_file):
        np.testing.assert_array_equal(a, b)
    assert from_text[0].std() > 0


def test_av1_table_bad_matrix_names_the_parameter(tmp_path):
    from napari_restore import GrainProfile

    analyze_grain(_grainy(64)).to_av1_table(tmp_path / "g.tbl")
    with pytest.raises(ValueError, match="matrix"):
        GrainProfile.from_av1_table(tmp_path / "g.tbl", matrix=("a", "b"))


@pytest.mark.parametrize("field, value", [
    ("scaling_points_y", ((0, 1, 2),)), ("scaling_points_y", None),
    ("ar_coeffs_y", ("a",) * 24), ("ar_coeffs_y", (1.5,) * 24)])
def test_av1_params_with_malformed_sequences_name_the_field(field, value):
    # were "too many values to unpack", "NoneType has no len()", "invalid literal for
    # int()", or (floats) accepted and written as '1.5', which no reader takes
    from napari_restore.processors.grain_av1 import Av1GrainParams

    with pytest.raises(ValueError, match=field):
        Av1GrainParams(**{field: value})


def test_av1_params_from_lists_are_usable():
    # lists made the frozen parameters unhashable: importing them failed in a cache
    from napari_restore.processors.grain_av1 import (
        Av1GrainParams, format_table, params_to_profile, parse_table, Av1GrainTable,
        Av1GrainSegment)

    p = Av1GrainParams(scaling_points_y=[[0, 20], [np.int64(255), 30]],
                       ar_coeffs_y=list(np.zeros(24, np.int16)))
    assert params_to_profile(p).channels == 1
    text = format_table(Av1GrainTable((Av1GrainSegment(0, 10, p),)))
    assert parse_table(text).segments[0].params == p


def test_stack_table_takes_numpy_frames_and_refuses_collapsed_times():
    from napari_restore.processors.grain_av1 import parse_table, stack_table

    prof = analyze_grain(_grainy(64))
    table = stack_table([(prof, np.int64(0), np.int64(10)), (prof, 10, 20)], fps=25)
    assert parse_table(table.format()).segments[1].start_time == 4_000_000
    # at fps 1e12 frames 0..10 both fall on time 0: an entry 'E 0 0' no reader takes
    with pytest.raises(ValueError, match="fps"):
        stack_table([(prof, 0, 10)], fps=1e12)
    with pytest.raises(ValueError, match="fps"):
        stack_table([(prof, 0, 10)], fps=True)


def test_av1_export_step_in_the_message_is_the_scaling_step(tmp_path):
    # at 10 bits a scaling position is 4 codes (1/255.75 of the range), not 1/1023
    from napari_restore import GrainProfile

    d = analyze_grain(_grainy(64)).to_dict()
    d.update(nlf_intensity=[0.499, 0.5009], nlf_sigma=[[0.03, 0.03]], nlf_luma=[0.03, 0.03],
             nlf_chroma=[0.0, 0.0], nlf_count=[4, 4])
    with pytest.raises(ValueError, match=r"one step is 1/255\.75 of the range"):
        GrainProfile.from_dict(d).to_av1_table(tmp_path / "g.tbl", bit_depth=10)


def test_12_bit_data_in_uint16_measured_as_the_same_counts_in_floats():
    # 12-bit scans in uint16 were measured on 0-65535: 3 % grain of the 12-bit range read as
    # "minimal_grain", the NLF collapsed to one bin and synthesis on the 12-bit luminance
    # was 16x too strong
    from napari_restore import restore_film_grain

    rng = np.random.default_rng(4)
    ramp = np.linspace(0.3, 0.7, 64)[None, :].repeat(64, 0)
    counts = np.rint(4095 * np.clip(ramp + 0.03 * rng.standard_normal(ramp.shape), 0, 1))
    u16, f32 = counts.astype(np.uint16), counts.astype(np.float32)
    p16, pf = analyze_grain(u16), analyze_grain(f32)
    assert p16.grain_type == pf.grain_type == "digital_noise"
    assert len(p16.nlf_intensity) >= 3
    s16 = synthesize_grain((64, 64), p16, luminance=u16, seed=1)
    sf = synthesize_grain((64, 64), pf, luminance=f32, seed=1)
    assert s16.std() == pytest.approx(0.03 * 4095, rel=0.2)
    assert s16.std() == pytest.approx(sf.std(), rel=0.1)
    _, g16, r16 = restore_film_grain(u16, denoiser="wavelet")
    _, gf, _ = restore_film_grain(f32, denoiser="wavelet")
    assert g16.std() == pytest.approx(gf.std(), rel=0.1)
    assert r16.max() <= 4095


def test_profile_of_data_far_from_zero_is_usable_on_its_image():
    # int64 counts near 2**62: mapping the NLF intensities onto the image's own scale lost
    # them to float64 rounding ("nlf_intensity must be strictly increasing")
    rng = np.random.default_rng(5)
    ramp = np.linspace(0.3, 0.7, 64)[None, :].repeat(64, 0)
    img = (2**62 + np.rint(4000 * (ramp + 0.03 * rng.standard_normal(ramp.shape)))).astype(
        np.int64)
    prof = analyze_grain(img)
    assert len(prof.nlf_intensity) >= 3
    grain = synthesize_grain(img.shape, prof, luminance=img, seed=1)
    # (float64 steps are 1024 counts there, so the measured level is that of the rounding;
    # the synthesis must give the profile's own level back on the image's scale)
    span = prof.value_range[1] - prof.value_range[0]
    assert grain.std() == pytest.approx(prof.sigma * span, rel=0.2)


@pytest.mark.parametrize("bit_depth", [10, 12])
def test_clipped_highlights_export_at_high_bit_depth(tmp_path, bit_depth):
    # flat blocks of saturated white give an NLF point at intensity 1, code 2^bd - 1: at 10
    # and 12 bits it was refused as "outside the table's range [0, 1]"
    from napari_restore import GrainProfile

    img = _grainy(64)
    img[:, 32:] = 1.0
    prof = analyze_grain((img * 65535).round().astype(np.uint16))
    assert prof.nlf_intensity[-1] == pytest.approx(1.0)
    prof.to_av1_table(tmp_path / "g.tbl", bit_depth=bit_depth)
    back = GrainProfile.from_av1_table(tmp_path / "g.tbl", bit_depth=bit_depth)
    assert back.nlf_intensity[-1] == pytest.approx(1.0, abs=0.005)


def test_apply_av1_grain_fits_a_profile_when_asked():
    # the refusal says "pass fit=True": apply_av1_grain takes it for a profile
    from napari_restore import GrainProfile
    from napari_restore.processors.grain_av1_synth import apply_av1_grain

    d = analyze_grain(_grainy(64)).to_dict()
    d.update(nlf_intensity=[0.499, 0.5009], nlf_sigma=[[0.03, 0.03]], nlf_luma=[0.03, 0.03],
             nlf_chroma=[0.0, 0.0], nlf_count=[4, 4])
    prof = GrainProfile.from_dict(d)
    y = np.full((32, 32), 512, np.uint16)
    with pytest.raises(ValueError, match="fit=True"):
        apply_av1_grain(y, None, None, prof, bit_depth=10)
    with pytest.warns(UserWarning):
        out, _, _ = apply_av1_grain(y, None, None, prof, bit_depth=10, fit=True)
    assert out.shape == y.shape and out.std() > 0
