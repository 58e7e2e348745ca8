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
