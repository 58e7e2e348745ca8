"""Grain compared across layers (processors/grain_compare.py): NLF curves, spectra, pairwise
distances; identical grains, coarser grain, uint16 vs float, colour, bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import ndimage

from napari_restore._arrays import Cancelled
from napari_restore.processors.grain_analysis import analyze_grain
from napari_restore.processors.grain_compare import (
    COLUMNS,
    compare_grains,
    grain_curves,
    grain_distance,
    iter_compare_grains,
)


def field(size: float, shape=(128, 128), seed=0) -> np.ndarray:
    """Unit-variance Gaussian-filtered white noise of σ_c = ``size`` px."""
    f = np.random.default_rng(seed).standard_normal(shape)
    if size > 0:
        f = ndimage.gaussian_filter(f, size, mode="wrap")
    return f / f.std()


def clean_image(shape=(128, 128)) -> np.ndarray:
    """A smooth image in [0.1, 0.9] (a ramp with a bump): flat enough everywhere."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]] / np.array(shape).reshape(2, 1, 1)
    return 0.1 + 0.7 * x + 0.1 * np.exp(-((y - 0.5) ** 2) * 8)


def nlf_grain(clean: np.ndarray, size: float = 1.0, seed: int = 0) -> np.ndarray:
    """Grain whose strength follows the intensity: 0.02 · (0.5 + clean)."""
    return 0.02 * (0.5 + clean) * field(size, clean.shape, seed)


# -- identical and different grains -------------------------------------------------------------

def test_identical_grains_have_zero_distance():
    clean = clean_image()
    g = nlf_grain(clean)
    cmp = compare_grains([g, g.copy()], images=[clean + g, clean + g], names=["a", "b"])
    d = cmp.distance("a", "b")
    assert d.nlf_rel_error == 0.0 and d.nlf_max_error == 0.0
    assert d.nlf_ratio == pytest.approx(1.0, abs=1e-12)
    assert d.spectrum_corr == pytest.approx(1.0, abs=1e-12)
    assert d.size_ratio == pytest.approx(1.0, abs=1e-12)
    assert d.channel_corr_diff is None  # greyscale
    assert d.nlf_points >= 8  # the NLF was measured across the intensities
    row = cmp.table()[0]
    assert list(row) == list(COLUMNS) and row["NLF err"] == 0.0 and row["Δ chan ρ"] == "—"


def test_a_grain_and_its_clean_image_or_its_grainy_image_give_the_same_curves():
    """The image a grain belongs to may be the grainy one (grain is part of it) or the clean
    one (the grain is for it): the content is found either way."""
    clean = clean_image()
    g = nlf_grain(clean)
    on_grainy = grain_curves(g, clean + g)
    on_clean = grain_curves(g, clean)
    np.testing.assert_allclose(on_grainy.intensity, on_clean.intensity, rtol=1e-12)
    np.testing.assert_allclose(on_grainy.sigma, on_clean.sigma, rtol=1e-12)
    # the NLF follows the intensity: 0.02 · (0.5 + x), within 10 %
    want = 0.02 * (0.5 + on_clean.intensity)
    np.testing.assert_allclose(on_clean.sigma[0], want, rtol=0.10)


@pytest.mark.parametrize("sizes", [(1.0, 2.0), (1.5, 3.0)])
def test_a_coarser_grain_has_the_size_ratio_of_the_filters(sizes):
    fine, coarse = field(sizes[0], seed=1), field(sizes[1], seed=2)
    cmp = compare_grains({"fine": fine, "coarse": coarse})
    d = cmp.distance("fine", "coarse")
    assert d.size_ratio == pytest.approx(sizes[1] / sizes[0], rel=0.15)
    back = cmp.distance("coarse", "fine")  # the other order: the inverse
    assert back.size_ratio == pytest.approx(1 / d.size_ratio, rel=1e-9)
    assert d.spectrum_corr < 0.97  # the spectra differ
    assert d.nlf_rel_error < 0.1  # same level (unit variance)
    same = compare_grains([fine, field(sizes[0], seed=3)]).distances[0]
    assert same.spectrum_corr > 0.98 and same.size_ratio == pytest.approx(1.0, rel=0.1)


def test_a_stronger_grain_has_the_nlf_ratio():
    clean = clean_image()
    g = nlf_grain(clean)
    d = compare_grains([g, 2 * g], images=[clean, clean]).distances[0]
    assert d.nlf_ratio == pytest.approx(2.0, rel=1e-6)
    assert d.nlf_rel_error == pytest.approx(1.0, rel=1e-6)
    assert d.size_ratio == pytest.approx(1.0, abs=1e-9) and d.spectrum_corr > 0.999999


# -- units -----------------------------------------------------------------------------------------

def test_uint16_and_float_images_of_one_grain_give_consistent_results():
    clean = clean_image()
    g = nlf_grain(clean)
    img_f = clean + g
    img_u = np.rint(img_f * 65535).astype(np.uint16)
    g_u = img_u.astype(np.float64) - np.rint(clean * 65535)  # grain in uint16 grey levels
    g_f = g_u / 65535  # the same grain in values of the float image
    inputs = [img_u.copy(), g_u.copy(), img_f.copy(), g_f.copy()]
    in_u16 = compare_grains([g_u, g_f], images=[img_u, img_f], names=["u16", "float"])
    in_float = compare_grains([g_f, g_u], images=[img_f, img_u], names=["float", "u16"])
    for got, want in zip((img_u, g_u, img_f, g_f), inputs, strict=True):
        np.testing.assert_array_equal(got, want)  # inputs untouched
    assert in_u16.unit == "grey levels" and in_float.unit == "data units"
    d = in_u16.distance("u16", "float")
    assert d.nlf_rel_error < 1e-3 and d.spectrum_corr > 0.9999 and abs(d.size_ratio - 1) < 1e-3
    # curves in the first image's units: uint16 grey levels, or values of the float image
    u, f = in_u16.curves[0], in_float.curves[0]
    np.testing.assert_allclose(u.sigma / 65535, f.sigma, rtol=1e-3)
    np.testing.assert_allclose(u.intensity / 65535, f.intensity, rtol=1e-3)
    assert 0.02 * 65535 * 0.5 < float(u.sigma.min()) and float(u.sigma.max()) < 0.02 * 65535 * 1.5
    # the float grain converted into uint16 grey levels
    np.testing.assert_allclose(in_u16.curves[1].sigma, u.sigma, rtol=2e-3)


def test_a_grain_without_its_image_is_in_the_comparisons_units():
    clean = clean_image()
    g = nlf_grain(clean)
    img_u8 = np.clip(np.rint((clean + g) * 255), 0, 255).astype(np.uint8)
    g_u8 = img_u8.astype(np.float64) - clean * 255  # grey levels
    cmp = compare_grains([g_u8, g_u8], images=[img_u8, None], names=["with", "alone"])
    alone = cmp.curves[1]
    assert not alone.has_image and alone.intensity.shape == (1,)
    # one level (grey levels, its overall σ) held at every intensity
    assert float(alone.sigma[0, 0]) == pytest.approx(float(g_u8.std()), rel=0.15)
    d = cmp.distances[0]
    assert d.nlf_points == len(cmp.curves[0].intensity) + 1
    assert d.size_ratio == pytest.approx(1.0, rel=0.05) and d.spectrum_corr > 0.99


def test_a_measured_profile_compares_with_a_grain():
    clean = clean_image()
    g = nlf_grain(clean)
    prof = analyze_grain(clean + g, denoised=clean)
    d = compare_grains([g, prof], images=[clean, None]).distances[0]
    assert d.nlf_rel_error < 1e-9 and d.size_ratio == pytest.approx(1.0, abs=1e-9)


# -- colour ----------------------------------------------------------------------------------------

def test_colour_grain_channel_correlation_difference():
    clean = np.stack([clean_image()] * 3, axis=-1)
    mono = np.stack([field(1.0, seed=4)] * 3, axis=-1) * 0.02
    indep = np.stack([field(1.0, seed=s) for s in (5, 6, 7)], axis=-1) * 0.02
    cmp = compare_grains([mono, indep, mono], images=[clean, clean, clean], channel_axis=-1,
                         names=["mono", "colour", "mono again"])
    d = cmp.distance("mono", "colour")
    assert d.channel_corr_diff == pytest.approx(-1.0, abs=0.1)
    assert cmp.distance("mono", "mono again").channel_corr_diff == 0.0
    assert d.nlf_rel_error < 0.1 and d.size_ratio == pytest.approx(1.0, rel=0.1)
    assert cmp.curves[0].sigma.shape[0] == 3
    # channel first works the same
    first = compare_grains([np.moveaxis(mono, -1, 0), np.moveaxis(indep, -1, 0)],
                           images=[np.moveaxis(clean, -1, 0)] * 2, channel_axis=0)
    assert first.distances[0].channel_corr_diff == pytest.approx(d.channel_corr_diff, abs=1e-9)


# -- progress, cancel, bad input -----------------------------------------------------------------

def test_progress_and_cancel():
    grains = [field(1.0, seed=s) for s in range(3)]
    gen = iter_compare_grains(grains)
    fractions = []
    while True:
        try:
            fractions.append(next(gen).fraction)
        except StopIteration as stop:
            result = stop.value
            break
    assert fractions == pytest.approx([1 / 3, 2 / 3, 1.0]) and len(result.distances) == 3
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        compare_grains(grains, cancel=stop)


def test_bad_input_is_refused_naming_the_parameter():
    g = field(1.0)
    clean = clean_image()
    with pytest.raises(ValueError, match="grains must hold at least two"):
        compare_grains([g])
    with pytest.raises(TypeError, match="grains must be a list"):
        compare_grains(np.stack([g, g]))
    with pytest.raises(ValueError, match="images must have one entry"):
        compare_grains([g, g], images=[clean])
    with pytest.raises(ValueError, match=r"grains\[1\] \('grain 2'\) has shape \(64, 64\).*must match.*images\[1\]"):
        compare_grains([g, g[:64, :64]], images=[clean, clean])
    with pytest.raises(ValueError, match=r"grains\[1\] .*not a grain"):
        compare_grains([g, clean], names=["grain 1", "grain 2"])  # an image, not a grain
    with pytest.raises(ValueError, match=r"grains\[0\] .*has no variance"):
        compare_grains([np.zeros((64, 64)), g], names=["grain 1", "grain 2"])
    with pytest.raises(ValueError, match=r"grains\[1\]"):
        compare_grains([g, g[:16, :16]], names=["grain 1", "grain 2"])  # smaller than a block
    bad = g.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compare_grains([g, bad])
    with pytest.raises(ValueError, match="names must be unique"):
        compare_grains([g, g], names=["x", "x"])
    with pytest.raises(ValueError, match="names must be 2 non-empty strings"):
        compare_grains([g, g], names=["x"])
    colour = grain_curves(np.stack([g] * 3, axis=-1), channel_axis=-1, name="colour")
    with pytest.raises(ValueError, match="both must be greyscale or both colour"):
        grain_distance(grain_curves(g), colour)
    with pytest.raises(ValueError, match="all greyscale or all colour"):
        compare_grains([g, colour.profile])
    with pytest.raises(ValueError, match=r"grains\[1\].*profile; images\[1\] must be None"):
        compare_grains([g, colour.profile], images=[None, clean])
    a = grain_curves(g)
    with pytest.raises(TypeError, match="b must be GrainCurves"):
        grain_distance(a, g)
