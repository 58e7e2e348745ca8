"""Film grain (issue #6): analysis, classes, synthesis, preservation, restore, bad input.

Synthetic ground truth on clean scikit-image photos: Gaussian-filtered white noise of known
correlation σ_c, normalised to unit std, scaled by a known intensity-dependent amplitude
``AMP * (0.5 + clean)`` and added (same field on every channel = mono, one per channel =
colour). Fixed seeds, crops ≤ 256².
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from napari_restore import (
    GrainProfile,
    analyze_grain,
    detect_grain_type,
    extract_grain,
    preserve_grain,
    restore_film_grain,
    synthesize_grain,
)
from napari_restore.processors.grain_profile import GRAIN_TYPES

AMP = 0.04


def field(shape, sigma_c, rng):
    f = rng.standard_normal(shape)
    if sigma_c > 0:
        f = ndimage.gaussian_filter(f, sigma_c)
    return f / f.std()


def true_nlf(intensity):
    return AMP * (0.5 + np.asarray(intensity))


def grainy(clean, sigma_c, *, colour=False, seed=0, amp=AMP):
    """clean (float in [0, 1]) + grain of correlation σ_c with the amplitude curve."""
    rng = np.random.default_rng(seed)
    lum = clean if clean.ndim == 2 else clean.mean(axis=-1)
    a = amp * (0.5 + lum)
    if clean.ndim == 2:
        g = a * field(clean.shape, sigma_c, rng)
    elif colour:
        g = a[..., None] * np.stack([field(lum.shape, sigma_c, rng) for _ in range(3)], -1)
    else:
        g = (a * field(lum.shape, sigma_c, rng))[..., None]
    return np.clip(clean + g, 0.0, 1.0)


@pytest.fixture(scope="module")
def cam():
    return data.camera()[:200, :200] / 255.0  # sky, a dark coat and a few edges


@pytest.fixture(scope="module")
def coffee():
    return data.coffee()[:160, :200] / 255.0


# -- analysis ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backdrop():
    """Greyscale astronaut crop: the plain backdrop and the suit (flat areas at 4 levels)."""
    return data.astronaut()[:200, 312:].mean(axis=-1) / 255.0


@pytest.mark.parametrize("sigma_c,seed", [(0.7, 0), (1.0, 1), (1.5, 2), (2.0, 0), (3.0, 1)])
def test_nlf_recovered_within_15_percent(backdrop, sigma_c, seed):
    prof = analyze_grain(grainy(backdrop, sigma_c, seed=seed))
    count = np.array(prof.nlf_count)
    enough = count >= 5  # bins with enough flat area: ≥ 5 flat (half-overlapping) 32² blocks
    assert enough.sum() >= 3
    est = np.array(prof.nlf_sigma[0])[enough]
    truth = true_nlf(np.array(prof.nlf_intensity)[enough])
    np.testing.assert_array_less(np.abs(est / truth - 1.0), 0.15)


def test_grain_size_within_25_percent_and_ordered(cam):
    sizes = {}
    for sigma_c in (0.5, 0.7, 1.0, 1.5, 2.0, 3.0):
        sizes[sigma_c] = analyze_grain(grainy(cam, sigma_c, seed=1)).grain_size_px
        assert abs(sizes[sigma_c] / sigma_c - 1.0) <= 0.25, (sigma_c, sizes[sigma_c])
    assert sizes[0.5] < sizes[0.7] < sizes[1.0] < sizes[1.5] < sizes[2.0] < sizes[3.0]


def test_mono_and_colour_detected(coffee):
    mono = analyze_grain(grainy(coffee, 1.0, colour=False), channel_axis=-1)
    col = analyze_grain(grainy(coffee, 1.0, colour=True), channel_axis=-1)
    assert not mono.colour and mono.channel_correlation > 0.8 and mono.chroma_luma_ratio < 0.3
    assert col.colour and col.channel_correlation < 0.3 and col.chroma_luma_ratio > 1.0
    assert mono.channels == col.channels == 3


def tiled_plate(shape, tile, seed=0):
    t = field((tile, tile), 1.0, np.random.default_rng(seed))
    reps = (-(-shape[0] // tile), -(-shape[1] // tile))
    return np.tile(t, reps)[: shape[0], : shape[1]]


def test_all_six_classes(cam):
    rng = np.random.default_rng(3)
    white = np.clip(0.5 + 0.05 * rng.standard_normal((200, 200)), 0, 1)
    examples = {
        "minimal_grain": cam,
        "digital_noise": white,
        "fine_film_grain": grainy(cam, 0.7, seed=2),
        "medium_film_grain": grainy(cam, 1.5, seed=2),
        "coarse_film_grain": grainy(cam, 3.0, seed=2),
        "simulated_regular": np.clip(cam + 0.05 * tiled_plate(cam.shape, 40), 0, 1),
    }
    assert set(examples) == set(GRAIN_TYPES)
    for expected, img in examples.items():
        assert detect_grain_type(img) == expected


def test_input_untouched_and_dtypes(cam):
    img = (grainy(cam, 1.0) * 65535).astype(np.uint16)
    before = img.copy()
    p16 = analyze_grain(img)
    p64 = analyze_grain(img / 65535.0)
    np.testing.assert_array_equal(img, before)
    np.testing.assert_allclose(p16.nlf_sigma, p64.nlf_sigma, rtol=1e-3)


# -- profile ----------------------------------------------------------------------------------

def test_profile_json_round_trip_and_schema(cam, tmp_path):
    prof = analyze_grain(grainy(cam, 1.5))
    again = GrainProfile.from_json(prof.to_json())
    assert again == prof
    prof.save(tmp_path / "g.json")
    assert GrainProfile.load(tmp_path / "g.json") == prof
    bad = prof.to_dict()
    bad["grain_type"] = "wobbly"
    with pytest.raises(ValueError, match="grain_type"):
        GrainProfile.from_dict(bad)
    bad = prof.to_dict()
    del bad["ar_coeffs"]
    with pytest.raises(ValueError, match="missing field"):
        GrainProfile.from_dict(bad)
    bad = prof.to_dict()
    bad["nlf_sigma"] = [[float("nan")] * len(prof.nlf_intensity)]
    with pytest.raises(ValueError, match="nlf_sigma"):
        GrainProfile.from_json(json.dumps(bad))
    with pytest.raises(ValueError, match="not valid JSON"):
        GrainProfile.from_json("{not json")


def _with(text_dict, field_name, raw):
    """JSON of ``text_dict`` with ``field_name``'s value replaced by the raw JSON ``raw``."""
    d = dict(text_dict)
    d[field_name] = "@@"
    return json.dumps(d).replace('"@@"', raw)


HOSTILE_VALUES = ["1" + "0" * 400, "1e400", "-1e400", "NaN", "Infinity", "-1e308", "1e300",
                  "true", "null", '"3"', "[]", "{}", "[[[[1]]]]",
                  "[" * 500 + "]" * 500, '{"a":' * 500 + "1" + "}" * 500,  # deep, yet parses
                  "[" + "0," * 200_000 + "0]", '"' + "x" * 100_000 + '"']  # huge, under 1 MB
SCALARS = ["grain_size_px", "sigma", "channel_correlation", "chroma_luma_ratio", "ar_residual",
           "periodic_peak", "flat_fraction", "channels", "colour", "grain_type", "version"]
LISTS = ["nlf_intensity", "nlf_sigma", "nlf_luma", "nlf_chroma", "nlf_count", "spectrum_freq",
         "spectrum_power", "ar_coeffs"]


@pytest.fixture(scope="module")
def profile_dict(cam):
    return analyze_grain(grainy(cam, 1.5)).to_dict()


@pytest.mark.parametrize("field_name", SCALARS + LISTS)
def test_hostile_profile_json_is_a_clear_error(profile_dict, field_name):
    """Wrong types, huge numbers, NaN tokens and nesting in every field: ValueError naming it."""
    for raw in HOSTILE_VALUES + ["[1e400]", "[" + "1" * 500 + "]", "[true]", '["x"]']:
        text = _with(profile_dict, field_name, raw)
        try:
            GrainProfile.from_json(text)
        except ValueError as exc:
            assert "grain profile" in str(exc), (field_name, raw, exc)
            assert len(str(exc)) < 300, (field_name, raw[:20], len(str(exc)))
            continue
        # the only values a field may take are the ones it really can hold
        assert field_name == "colour" and raw == "true", (field_name, raw)


@pytest.mark.parametrize("text,words", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ("[1, 2]", "must be a JSON object"), ("null", "must be a JSON object"),
    ('"profile"', "must be a JSON object"), ("3", "must be a JSON object"),
    ("{not json", "not valid JSON"), ("", "not valid JSON"),
    ("[" + "0," * 600_000 + "0]", "at most 1000000"),
])
def test_malformed_profile_documents(text, words):
    with pytest.raises(ValueError, match=words):
        GrainProfile.from_json(text)


@pytest.mark.parametrize("field_name", SCALARS[:-1] + LISTS)
def test_profile_missing_field_is_named(profile_dict, field_name):
    d = {k: v for k, v in profile_dict.items() if k != field_name}
    with pytest.raises(ValueError, match=f"missing field.*{field_name}"):
        GrainProfile.from_json(json.dumps(d))


@pytest.mark.parametrize("field_name", ["spectrum_freq", "ar_coeffs", "nlf_intensity", "nlf_count",
                                        "nlf_sigma"])
def test_profile_huge_array_is_rejected_by_its_length(profile_dict, field_name):
    import time

    huge = [[0.0] * 10**6] if field_name == "nlf_sigma" else [0] * 10**6
    t = time.perf_counter()
    with pytest.raises(ValueError, match=field_name):
        GrainProfile.from_dict({**profile_dict, field_name: huge})
    assert time.perf_counter() - t < 0.5  # by its length, not element by element


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage\x89PNG", bytes(range(256)) * 40,
                                     "{}".encode("utf-16"), b"", b"\x00" * 64])
def test_profile_file_that_is_not_json_text(tmp_path, content):
    path = tmp_path / "g.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not UTF-8|not valid JSON|must be a JSON object"):
        GrainProfile.load(path)


def test_profile_unknown_missing_and_oversized_fields(profile_dict, tmp_path):
    with pytest.raises(ValueError, match="unknown field.*__class__"):
        GrainProfile.from_dict({**profile_dict, "__class__": "os.system"})
    bad = dict(profile_dict)
    bad["spectrum_freq"] = [0.1] * 5000
    bad["spectrum_power"] = [0.0] * 5000
    with pytest.raises(ValueError, match="spectrum_freq.*at most 1024"):
        GrainProfile.from_dict(bad)
    with pytest.raises(ValueError, match="nlf_count"):
        GrainProfile.from_dict({**profile_dict, "nlf_count": [10**13] * len(profile_dict["nlf_count"])})
    binary = tmp_path / "g.json"
    binary.write_bytes(b"\xff\xfe\x00garbage\x89PNG")
    with pytest.raises(ValueError, match="not UTF-8"):
        GrainProfile.load(binary)


@pytest.fixture(scope="module")
def colour_profile_dict(coffee):
    return analyze_grain(grainy(coffee[:96, :96], 1.5, colour=True), channel_axis=-1).to_dict()


def _at_edges(d, pattern):
    """``d`` with every number at the low/high end of its range (or alternating between them)."""
    from napari_restore.processors.grain_profile import RANGES

    d = dict(d)
    for name, (lo, hi) in RANGES.items():
        def pick(i, lo=lo, hi=hi):
            return {"low": lo, "high": hi, "alternating": (lo, hi)[i % 2]}[pattern]
        if name == "nlf_intensity":  # must increase: span the whole range
            k = len(d[name])
            d[name] = [lo] if k == 1 else [lo + (hi - lo) * i / (k - 1) for i in range(k)]
        elif name == "nlf_sigma":
            d[name] = [[pick(i) for i in range(len(r))] for r in d[name]]
        elif isinstance(d[name], list):
            d[name] = [pick(i) for i in range(len(d[name]))]
        else:
            d[name] = pick(0)
    return d


@pytest.mark.parametrize("size", [None, 0.0, 0.5])
@pytest.mark.parametrize("edge", ["low", "high", "alternating"])
@pytest.mark.parametrize("kind", ["grey", "colour"])
def test_profile_at_the_edge_of_every_range_synthesises_finite_grain(
        profile_dict, colour_profile_dict, kind, edge, size):
    """Whatever validates keeps synthesis, the PSD and regraining finite (no numpy warning)."""
    d = _at_edges(profile_dict if kind == "grey" else colour_profile_dict, edge)
    if size is not None:  # the range's edge is the default; also white and fine grain
        d["grain_size_px"] = size
    prof = GrainProfile.from_json(json.dumps(d))
    shape = (32, 32) if kind == "grey" else (32, 32, 3)
    cax = None if kind == "grey" else -1
    img = np.clip(0.5 + 0.05 * np.random.default_rng(0).standard_normal(shape), 0, 1)
    with np.errstate(all="raise"):
        outs = [synthesize_grain(shape, prof, seed=3),
                synthesize_grain(shape, prof, seed=3, luminance=img, channel_axis=cax),
                prof.to_psd(shape)]
        outs += [preserve_grain(img, 0.9 * img, profile=prof, mode=m, channel_axis=cax)
                 for m in ("adaptive", "resynthesize")]
    assert outs[0].shape == shape
    for out in outs:
        assert np.isfinite(out).all()


def _blobs():
    g = ndimage.gaussian_filter(np.random.default_rng(1).standard_normal((96, 96)), 10)
    return np.clip(0.5 + 0.05 * g / g.std(), 0, 1)


def _sinusoid():
    yy, xx = np.indices((32, 32))
    return 0.5 + 0.4 * np.sin(1.0 * xx + 0.9 * yy)


def _anti_correlated_chroma():
    n = 0.05 * np.random.default_rng(0).standard_normal((64, 64))
    return np.stack([0.5 + n, 0.5 - n, np.full_like(n, 0.5)], axis=-1)


ODD_IMAGES = {  # each made analyze_grain itself raise ValueError with the first, narrower ranges
    "checkerboard": lambda: (np.indices((96, 96)).sum(0) % 2).astype(float),  # periodic_peak > 1
    "large_blobs": _blobs,  # periodic_peak 1.04
    "sinusoid": _sinusoid,  # |ar_coeffs| 52 (autocorrelation not positive definite)
    "anti_correlated_chroma": _anti_correlated_chroma,  # no luma grain: chroma/luma 4e8
}


@pytest.mark.parametrize("name", sorted(ODD_IMAGES))
def test_analysis_of_odd_images_gives_a_profile_that_round_trips(name):
    """The ranges include what the analysis measures on legitimate but odd images."""
    img = ODD_IMAGES[name]()
    prof = analyze_grain(img, channel_axis=-1 if img.ndim == 3 else None)
    assert GrainProfile.from_json(prof.to_json()) == prof
    shape = img.shape[:2] + ((3,) if img.ndim == 3 else ())
    with np.errstate(all="raise"):
        assert np.isfinite(synthesize_grain(shape, prof, seed=0)).all()
def test_to_psd_matches_grain_level_and_shape(cam):
    prof = analyze_grain(grainy(cam, 2.0))
    psd = prof.to_psd((64, 80))
    assert psd.shape == (64, 80) and (psd > 0).all()
    # bm3d convention: mean(psd) / (H W) is the variance
    assert np.isclose(psd.mean() / (64 * 80), np.mean(prof.channel_sigma() ** 2), rtol=1e-6)
    # correlated grain: power concentrated at low frequencies
    assert psd[0, 0] > 10 * psd[32, 40]
    with pytest.raises(ValueError, match="channels"):
        prof.to_psd((64, 80, 3))


def test_psd_shape_matches_true_grain_spectrum(cam):
    """The PSD handed to BM3D has the shape of the true (Gaussian-filtered) grain spectrum."""
    h = w = 160
    for sigma_c in (1.0, 3.0):
        prof = analyze_grain(grainy(cam[:h, :w], sigma_c, seed=4))
        imp = np.zeros((h, w))
        imp[0, 0] = 1.0
        kern = ndimage.gaussian_filter(imp, sigma_c, mode="wrap")
        true = np.abs(np.fft.fft2(kern)) ** 2
        true /= true.mean()
        unit = prof.unit_spectrum((h, w))
        assert np.corrcoef(unit.ravel(), true.ravel())[0, 1] >= 0.85
        assert 0.6 <= unit.max() / true.max() <= 1.6  # no spurious power at frequency 0


# -- synthesis --------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma_c", [1.5, 3.0])
def test_synthesis_reanalysed_matches_profile(cam, sigma_c):
    prof = analyze_grain(grainy(cam, sigma_c))
    base = np.full((200, 200), 0.5)
    grain = synthesize_grain(base.shape, prof, luminance=base, seed=7)
    again = analyze_grain(base + grain)
    level = prof.sigma_at(0.5)
    assert abs(again.sigma_at(0.5) / level - 1.0) <= 0.15
    corr = np.corrcoef(prof.spectrum_power, again.spectrum_power)[0, 1]
    assert corr >= 0.95
    assert abs(again.grain_size_px / prof.grain_size_px - 1.0) <= 0.25


def test_synthesis_follows_nlf_and_seeds(cam):
    prof = analyze_grain(grainy(cam, 1.0))
    ramp = np.tile(np.linspace(0.1, 0.9, 256), (256, 1))
    grain = synthesize_grain(ramp.shape, prof, luminance=ramp, seed=1)
    for lo, hi in ((0, 64), (192, 256)):
        want = float(np.sqrt(np.mean(prof.sigma_at(ramp[:, lo:hi]) ** 2)))
        assert abs(grain[:, lo:hi].std() / want - 1.0) < 0.1
    np.testing.assert_array_equal(grain, synthesize_grain(ramp.shape, prof, luminance=ramp, seed=1))
    other = synthesize_grain(ramp.shape, prof, luminance=ramp, seed=2)
    assert abs(np.corrcoef(grain.ravel(), other.ravel())[0, 1]) < 0.05


def test_synthesis_colour_and_mono(coffee):
    col = analyze_grain(grainy(coffee, 1.0, colour=True), channel_axis=-1)
    mono = analyze_grain(grainy(coffee, 1.0, colour=False), channel_axis=-1)
    gc = synthesize_grain((96, 96, 3), col, seed=0)
    gm = synthesize_grain((96, 96, 3), mono, seed=0)
    assert abs(np.corrcoef(gc[..., 0].ravel(), gc[..., 1].ravel())[0, 1]) < 0.2
    assert np.corrcoef(gm[..., 0].ravel(), gm[..., 1].ravel())[0, 1] > 0.95


# -- preservation and the pipeline ------------------------------------------------------------

def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, float) - b) ** 2))


@pytest.mark.parametrize("mode", ["adaptive", "resynthesize"])
def test_preserve_keeps_grain_nlf(cam, mode):
    noisy = grainy(cam, 1.5)
    den = restore_film_grain(noisy, denoiser="wavelet")[0]
    out = preserve_grain(noisy, den, strength=1.0, mode=mode)
    p_in, p_out = analyze_grain(noisy), analyze_grain(out)
    both = (np.array(p_out.nlf_count) >= 10)
    assert both.sum() >= 1
    ref = np.interp(np.array(p_out.nlf_intensity)[both], p_in.nlf_intensity, p_in.nlf_sigma[0])
    np.testing.assert_array_less(np.abs(np.array(p_out.nlf_sigma[0])[both] / ref - 1), 0.15)
    zero = preserve_grain(noisy, den, strength=0.0, mode=mode)
    np.testing.assert_allclose(zero, np.clip(den, 0, 1), atol=1e-6)


def test_resynthesised_grain_has_the_scans_size_and_spectrum(cam):
    """restore_film_grain(mode="resynthesize") draws the scan's grain, not the residual
    image − denoised (finer: the denoiser leaves the coarse part of the grain; it gave
    0.3–0.4 px and spectrum correlation 0.15–0.45 for this 1.15 px grain), at the level
    the denoiser removed: the regrained image has the scan's NLF."""
    scan = grainy(cam, 1.15)
    ref = analyze_grain(scan)
    den, _, reg = restore_film_grain(scan, denoiser="wavelet", mode="resynthesize")
    new = analyze_grain(reg, denoised=den)  # the resynthesised grain
    assert abs(new.grain_size_px / ref.grain_size_px - 1) <= 0.15, (new.grain_size_px,
                                                                   ref.grain_size_px)
    assert np.corrcoef(ref.spectrum_power, new.spectrum_power)[0, 1] >= 0.9
    out = analyze_grain(reg)  # the regrained image: the grain left in den plus the new
    errs = [s / float(ref.sigma_at(i)) - 1 for i, s, c in
            zip(out.nlf_intensity, out.nlf_sigma[0], out.nlf_count) if c >= 4]
    assert errs and max(map(abs, errs)) <= 0.10, errs


def test_restore_three_outputs_denoised_beats_noisy(cam):
    noisy = (grainy(cam, 1.0) * 255).round().astype(np.uint8)
    den, grain, reg = restore_film_grain(noisy)  # BM3D with the measured PSD
    assert den.dtype == reg.dtype == np.uint8 and grain.dtype == np.float32
    np.testing.assert_allclose(noisy.astype(np.float32), den.astype(np.float32) + grain, atol=0.6)
    assert _psnr(den / 255.0, cam) > _psnr(noisy / 255.0, cam) + 3.0
    wav = restore_film_grain(noisy, denoiser="wavelet")[0]
    assert _psnr(wav / 255.0, cam) > _psnr(noisy / 255.0, cam)
    np.testing.assert_allclose(extract_grain(noisy, den), noisy.astype(np.float32) - den, atol=1e-3)


def test_bm3d_with_measured_psd_beats_white_on_coarse_grain(cam):
    clean = cam[:160, :160]
    noisy = grainy(clean, 3.0, amp=0.05, seed=4)
    psd_den = restore_film_grain(noisy, denoiser="bm3d", strength=0.0)[0]
    white_den = restore_film_grain(noisy, denoiser="bm3d_white", strength=0.0)[0]
    p_noisy, p_psd, p_white = _psnr(noisy, clean), _psnr(psd_den, clean), _psnr(white_den, clean)
    assert p_psd > p_noisy
    assert p_psd >= p_white + 1.0, (p_psd, p_white)


def test_restore_colour_rgba_alpha_passthrough(coffee):
    img = grainy(coffee[:96, :96], 1.0)
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 0.25)], -1).astype(np.float32)
    den, grain, reg = restore_film_grain(rgba, denoiser="wavelet", channel_axis=-1)
    assert den.shape == rgba.shape
    np.testing.assert_array_equal(den[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(grain[..., 3], 0)


# -- bad input --------------------------------------------------------------------------------

def test_constant_image_is_minimal():
    assert detect_grain_type(np.full((64, 64), 0.3)) == "minimal_grain"
    prof = analyze_grain(np.zeros((64, 64, 3), np.uint8), channel_axis=-1)
    assert prof.grain_type == "minimal_grain" and prof.sigma == 0.0
    den, grain, reg = restore_film_grain(np.full((64, 64), 100, np.uint8))
    assert (den == 100).all() and (grain == 0).all()


def test_bad_input_errors(cam):
    bad = cam.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        analyze_grain(bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        restore_film_grain(bad)
    prof = analyze_grain(grainy(cam, 1.0))
    with pytest.raises(ValueError, match="channel"):
        synthesize_grain((32, 32, 3), prof)
    rgb = np.stack([cam] * 3, -1)
    with pytest.raises(ValueError, match="channel"):
        preserve_grain(rgb, rgb, profile=prof, channel_axis=-1)
    with pytest.raises(ValueError, match="must match"):
        preserve_grain(cam, cam[:100])
    with pytest.raises(ValueError, match="denoiser"):
        restore_film_grain(cam, denoiser="magic")
    with pytest.raises(ValueError, match="strength"):
        preserve_grain(cam, cam, strength=-1.0)
    with pytest.raises(TypeError, match="profile"):
        synthesize_grain((8, 8), "not a profile".encode())
    with pytest.raises(ValueError, match="single 2-D image"):
        analyze_grain(np.zeros((2, 64, 64)))


# -- panel ------------------------------------------------------------------------------------

@pytest.mark.gui
def test_panel_analyse_restore_grid_and_synthesise(make_napari_viewer, qtbot, cam, tmp_path):
    from napari_restore._compat import viewer_grid

    viewer = make_napari_viewer()
    noisy = grainy(cam, 1.5).astype(np.float32)
    viewer.add_image(cam.astype(np.float32), name="clean")
    src = viewer.add_image(noisy, name="grainy")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Film grain")
    extras = panel.extras["restore_film_grain"]
    panel.layer_widget.value = src
    viewer.layers.selection.active = src
    extras.analyse()
    qtbot.waitUntil(lambda: extras.worker is None and not extras._pending and not extras._timer.isActive(), timeout=30_000)
    assert extras.profile_layer == "grainy"
    assert extras.profile.grain_type == "medium_film_grain"
    assert "medium film grain" in extras.summary.value
    # the analysis follows the panel's own layer choice, never the viewer's selection
    viewer.layers.selection.active = viewer.layers["clean"]
    qtbot.wait(400)  # longer than the analysis debounce
    assert not extras._timer.isActive() and extras.worker is None
    assert extras.profile_layer == "grainy"
    panel.layer_widget.value = viewer.layers["clean"]
    qtbot.waitUntil(lambda: extras.profile_layer == "clean" and extras.worker is None
                    and not extras._timer.isActive(), timeout=30_000)
    assert extras.profile.grain_type == "minimal_grain"
    panel.layer_widget.value = src
    qtbot.waitUntil(lambda: extras.profile_layer == "grainy" and extras.worker is None
                    and not extras._timer.isActive(), timeout=30_000)
    assert extras.ax_nlf.lines and extras.ax_psd.lines  # both plots drawn
    # restore: three named layers, grid view, flip
    panel.set_params({"denoiser": "wavelet"})
    panel.target_widget.value = "layer"
    n = len(viewer.layers)
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
    assert len(viewer.layers) == n + 3
    names = [lay.name for lay in viewer.layers[-3:]]
    assert [nm.rsplit(" ", 1)[-1] for nm in names] == ["denoised", "grain", "regrained"]
    assert all(nm.startswith("grainy [restore_film_grain wavelet") for nm in names)
    viewer.layers.selection.active = viewer.layers[-1]  # a result becomes selected
    qtbot.wait(400)
    assert extras.profile_layer == "restore run"  # the run's own profile, not the result's
    extras.grid.value = True
    assert viewer_grid(viewer).enabled and not viewer.layers["clean"].visible
    extras.flip()
    assert not viewer_grid(viewer).enabled
    assert [lay.visible for lay in viewer.layers[-3:]] == [True, False, False]
    extras.flip()
    assert [lay.visible for lay in viewer.layers[-3:]] == [False, True, False]
    # synthesise onto the clean layer from the analysis, and from a saved profile
    qtbot.waitUntil(lambda: extras.worker is None and not extras._pending and not extras._timer.isActive(), timeout=30_000)
    extras.synth_target.value = viewer.layers["clean"]
    out = extras.synthesise()
    assert out is not None and out.data.shape == cam.shape
    added = out.data - cam
    assert abs(added.std() / np.sqrt(np.mean(extras.profile.sigma_at(cam) ** 2)) - 1) < 0.2
    extras.save_file.value = tmp_path / "p.json"
    extras.save_profile()
    assert GrainProfile.load(tmp_path / "p.json") == extras.profile
    extras.synth_source.value = "file"
    extras.load_file.value = tmp_path / "p.json"
    extras.synth_seed.value = 5
    out2 = extras.synthesise()
    assert out2 is not None and not np.array_equal(out2.data, out.data)
    extras.wait()  # no analysis left running


def test_denoised_of_another_dtype_is_scaled_by_its_own(cam):
    noisy = (grainy(cam, 1.0) * 255).round().astype(np.uint8)
    den8 = restore_film_grain(noisy, denoiser="wavelet", strength=0.0)[0]
    den_f = den8 / 255.0
    np.testing.assert_allclose(extract_grain(noisy, den_f), extract_grain(noisy, den8), atol=1e-3)
    np.testing.assert_array_equal(preserve_grain(noisy, den_f), preserve_grain(noisy, den8))
