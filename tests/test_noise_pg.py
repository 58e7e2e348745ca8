"""Poisson–Gaussian noise model: estimation floors (reduced), units, bad input, JSON.

The multi-image sweep of the floors is ``benchmarks/bench_poisson_gaussian.py``; here a
smaller grid on the same generator (fixed seeds) with the same thresholds.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from napari_restore import NoiseModel, estimate_noise_model
from napari_restore._sample_data import fluorescence_clean, poisson_gaussian

A_FLOOR, STD_FLOOR, B_FLOOR = 0.15, 0.10, 0.25


def _clean(name: str, size: int = 256) -> np.ndarray:
    from skimage import data, transform

    if name == "fluorescence":
        return fluorescence_clean(size, seed=1)
    img = getattr(data, name)().astype(np.float64)
    img = transform.resize(img, (size, size), anti_aliasing=True)
    return (img - img.min()) / (img.max() - img.min())


# (peak photons, gain counts/photon, read noise counts, offset counts): the ranges
CASES = [(5, 1, 1, 0), (20, 5, 3, 100), (200, 20, 10, 500), (50, 2, 10, 0), (20, 10, 5, 300)]


def _errors(model: NoiseModel, expected: np.ndarray, gain: float, read: float,
            offset: float) -> tuple[float, float, float | None]:
    b = read**2 - gain * offset
    p5, p95 = np.percentile(expected, [5, 95])
    grid = np.linspace(p5, p95, 64)
    std_err = float(np.max(np.abs(model.std(grid) / np.sqrt(gain * grid + b) - 1)))
    at_median = gain * float(np.median(expected)) + b
    b_err = abs(model.bias / b - 1) if read**2 >= 0.2 * at_median else None
    return abs(model.gain / gain - 1), std_err, b_err


def _sweep(name: str, seed: int = 3):
    clean = _clean(name)
    for peak, gain, read, offset in CASES:
        expected, noisy = poisson_gaussian(clean, peak=peak, gain=gain, read=read,
                                           offset=offset, seed=seed)
        model = estimate_noise_model(noisy)
        yield (name, peak, gain, read, offset, model.describe()), model, _errors(
            model, expected, gain, read, offset)


@pytest.mark.parametrize("name", ["camera", "coins", "fluorescence"])
def test_predicted_std_floor(name):
    """√(a·E + b) within 10 % of the truth over the 5th–95th percentiles (all images)."""
    for case, model, (_, std_err, _) in _sweep(name):
        assert model.kind == "poisson-gaussian", case
        assert std_err <= STD_FLOOR, (case, std_err)


@pytest.mark.parametrize("name", [
    "camera",
    "fluorescence",
    # coins: a = 2.54 for 2 (+27 %) at peak 50, read noise 10 (seed 3): the bright coins'
    # engraving passes the smoothness tests and adds ~8–11 % of the noise variance in the
    # brightest fifth of the smooth windows (benchmarks/bench_poisson_gaussian.py)
    pytest.param("coins", marks=pytest.mark.xfail(
        strict=True, reason="a floor not met on coins (+27 % at peak 50, read 10)")),
])
def test_gain_and_bias_floors(name):
    """a within 15 %; b within 25 % where the read noise is ≥ 20 % of the variance."""
    for case, _, (a_err, _, b_err) in _sweep(name):
        assert a_err <= A_FLOOR, (case, a_err)
        if b_err is not None:
            assert b_err <= B_FLOOR, (case, b_err)


def test_the_gain_standard_error_measures_the_error_of_the_gain():
    """On images without fine texture (blurred), the reported gain_se covers the actual
    error of a (its RMS about the truth over 8 noise seeds: scatter and the misfit's
    systematic part) and overstates it by at most 3× (it is computed as if overlapping
    windows were independent, then scaled by the misfit). Measured (2026-12-03): se / RMS
    error 1.35 (moon: sd 3.4 %, mean −6.9 %), 1.64 (camera), 1.47 (fluorescence)."""
    from scipy import ndimage

    for name, (peak, gain, read, offset) in [("moon", (200, 1, 1, 0)),
                                             ("camera", (50, 2, 10, 0)),
                                             ("fluorescence", (20, 5, 3, 100))]:
        clean = ndimage.gaussian_filter(_clean(name), 0 if name == "fluorescence" else 3)
        gains, ses = [], []
        for seed in range(8):
            _, noisy = poisson_gaussian(clean, peak=peak, gain=gain, read=read,
                                        offset=offset, seed=40 + seed)
            model = estimate_noise_model(noisy)
            gains.append(model.gain)
            ses.append(model.gain_se)
        rmse = float(np.sqrt(np.mean((np.asarray(gains) - gain) ** 2)))
        se = float(np.mean(ses))
        assert 0.8 * rmse <= se <= 3.0 * rmse, (name, rmse, se)


def test_shading_does_not_cost_smooth_windows():
    """Moon blurred by 3 px (shaded crater walls, no texture), peak 200, 8 noise seeds: the
    smoothness test measures the block means about their plane (the windows chosen show no
    texture), so the shaded windows, which carry the intensity range that pins a, are kept.
    Measuring them about their mean left them out: a's RMS error was 17.2 % (worst 30 %);
    now 7.5 % (worst 10.7 %)."""
    from scipy import ndimage

    clean = ndimage.gaussian_filter(_clean("moon"), 3)
    errs = []
    for seed in range(8):
        _, noisy = poisson_gaussian(clean, peak=200, gain=1, read=1, offset=0, seed=40 + seed)
        errs.append(estimate_noise_model(noisy).gain - 1.0)
    assert float(np.sqrt(np.mean(np.square(errs)))) <= 0.10, errs
    assert float(np.max(np.abs(errs))) <= A_FLOOR, errs


@pytest.mark.parametrize("case", [(20, 5, 3, 100), (50, 2, 10, 0), (20, 10, 5, 300)])
def test_texture_gets_no_shading_allowance(case):
    """Brick (texture everywhere, 256²), seeds 3 and 4: a plane fitted to a window's block
    means also absorbs the texture's coarse part, so with the shading allowance textured
    windows passed as smooth and the predicted std erred by 25–50 % (a +78…+285 %). The
    isotropy ratio of the windows chosen shows the texture and smoothness is judged on the
    plain variance instead: 1.4–7.2 % here."""
    peak, gain, read, offset = case
    for seed in (3, 4):
        expected, noisy = poisson_gaussian(_clean("brick"), peak=peak, gain=gain, read=read,
                                           offset=offset, seed=seed)
        _, std_err, _ = _errors(estimate_noise_model(noisy), expected, gain, read, offset)
        assert std_err <= STD_FLOOR, (seed, std_err)


def test_fluorescence_crops_are_not_taken_for_texture():
    """Sparse objects on a dark background, 108 crops of 64–128² at peaks 5, 20 and 50: the texture
    check weighs each window by its predicted variance. Summed raw, the few brightest
    windows outweighed the rest: the ratio spread over 0.67–1.25 (its standard error said
    ±0.04) and a 64² crop at peak 20 was refused as texture (5.1 standard errors)."""
    from napari_restore.processors import noise_pg

    worst = 0.0
    for size in (64, 96, 128):
        for seed in range(4):
            full = fluorescence_clean(256, seed)
            for k, (y, x) in enumerate([(0, 0), (64, 64), (128, 32)]):
                for peak in (5, 20, 50):
                    _, z = poisson_gaussian(full[y:y + size, x:x + size], peak=peak, gain=4,
                                            read=3, offset=100, seed=seed * 10 + k)
                    estimate_noise_model(z)  # no ValueError (a crop of background only
                    # may be called Gaussian: its variance hardly changes)
                    st = noise_pg._block_stats(z.astype(float))
                    limit = 1.0 + noise_pg.SMOOTH_SPREAD * math.sqrt(2.0 / 13.0)
                    fitted = None
                    for _ in range(3):
                        s, m, d2, ratio, se = noise_pg._pairs(st, fitted, limit)
                        fitted, _fit = noise_pg._fit(s, m, d2)
                    worst = max(worst, (1.0 - ratio) / se)
    assert worst <= 3.0, worst


def test_a_narrow_intensity_range_reports_an_uncertain_gain():
    """Moon at 256² spans 0.39–0.49 of its peak (5th–95th percentiles): the variance changes
    by ~20 % across it, and the smooth windows do not pin a to 15 % (its spread over seeds is
    11.5 % at peak 200 even without texture, 17.5 % with it). The model says so; camera's
    gain is known to 3 %."""
    from napari_restore.widgets.noise_pg_extras import model_text

    _, noisy = poisson_gaussian(_clean("moon"), peak=200, gain=1, read=1, offset=0, seed=5)
    moon = estimate_noise_model(noisy)
    assert moon.gain_rse > 0.15
    assert "a uncertain" in model_text(moon)
    _, noisy = poisson_gaussian(_clean("camera"), peak=200, gain=1, read=1, offset=0, seed=5)
    camera = estimate_noise_model(noisy)
    assert 0 < camera.gain_rse < 0.03 and camera.bias_se > 0
    assert "uncertain" not in model_text(camera) and "±" in model_text(camera)
    assert NoiseModel(2.0, 5.0).gain_se == 0.0  # a hand-given model: unknown
    with pytest.raises(ValueError, match="gain_se must be finite and >= 0"):
        NoiseModel(2.0, 5.0, gain_se=-1.0)


def test_dark_background_does_not_flatten_the_fit():
    """Peak 5, gain 1, read 1 on sparse objects: the background (0.15 photons) holds most
    smooth windows. Binned on their own noisy means, its level sets spread along the axis
    at one variance and flatten the fit (a was 0.81 for 1 on the second seed); binned on one
    half of the blocks and measured on the other, they stay at the background's mean."""
    clean = fluorescence_clean(256, seed=1)
    for seed in range(3):
        expected, noisy = poisson_gaussian(clean, peak=5, gain=1, read=1, offset=0, seed=seed)
        model = estimate_noise_model(noisy)
        a_err, std_err, b_err = _errors(model, expected, 1, 1, 0)
        assert a_err <= A_FLOOR and std_err <= STD_FLOOR, (seed, model)
        assert b_err is not None and b_err <= B_FLOOR, (seed, model)


def test_fluorescence_sample_model():
    from napari_restore._sample_data import (
        FLUO_GAIN,
        FLUO_OFFSET,
        FLUO_READ,
        fluorescence,
    )

    clean, noisy = fluorescence()
    model = estimate_noise_model(noisy)
    a_err, std_err, _ = _errors(model, clean.astype(float), FLUO_GAIN, FLUO_READ, FLUO_OFFSET)
    assert a_err <= A_FLOOR and std_err <= STD_FLOOR, model
    assert model.bias < 0  # the dark level shows as a negative b


def test_integer_and_float_data_give_the_same_model():
    _, counts = poisson_gaussian(_clean("camera"), peak=20, gain=5, read=3,
                                        offset=100, dtype=np.uint16)
    as_float = counts.astype(np.float32)
    m_int, m_float = estimate_noise_model(counts), estimate_noise_model(as_float)
    assert m_int == m_float
    assert m_int.points == m_float.points
    assert counts.dtype == np.uint16 and m_int.dtype == "uint16"


def test_pure_gaussian_noise_is_kind_gaussian():
    rng = np.random.default_rng(0)
    clean = _clean("camera") * 200 + 20
    model = estimate_noise_model(clean + rng.normal(0, 5, clean.shape))
    assert model.kind == "gaussian" and model.gain == 0
    assert abs(math.sqrt(model.bias) / 5 - 1) < 0.1


def test_stack_is_estimated_once_or_per_plane():
    clean = _clean("coins", 128)
    planes = [poisson_gaussian(clean, peak=20, gain=g, read=3, offset=100, seed=i)[1]
              for i, g in enumerate((4, 4, 4))]
    stack = np.stack(planes)
    one = estimate_noise_model(stack)
    assert isinstance(one, NoiseModel)
    per = estimate_noise_model(stack, per_plane=True)
    assert isinstance(per, list) and len(per) == 3
    # pooled over the planes, the stack model uses more points than any one plane
    assert sum(p[2] for p in one.points) > max(sum(p[2] for p in m.points) for m in per)
    assert abs(one.gain / 4 - 1) < A_FLOOR


def test_colour_channels_share_one_model():
    clean = _clean("coins", 128)
    rgb = np.stack([poisson_gaussian(clean, peak=20, gain=4, read=3, offset=100, seed=i)[1]
                    for i in range(3)], axis=-1)
    model = estimate_noise_model(rgb, channel_axis=-1)
    assert abs(model.gain / 4 - 1) < A_FLOOR


def test_constant_image_is_a_clear_error():
    with pytest.raises(ValueError, match="constant"):
        estimate_noise_model(np.full((64, 64), 7, np.uint16))


def test_fine_texture_is_refused_not_a_wrong_model():
    """grass at high signal-to-noise has no flat region: its "smooth" windows are texture that
    the smoothness test lets through, and the fit was a wrong model (√(a·E + b) 25–170 % off,
    seed 3). Refusing (naming the reason) or a model within the floor is allowed."""
    clean = _clean("grass")
    for peak, gain, read, offset in [(20, 5, 3, 100), (50, 2, 10, 0), (200, 20, 10, 500)]:
        expected, noisy = poisson_gaussian(clean, peak=peak, gain=gain, read=read,
                                           offset=offset, seed=3)
        try:
            model = estimate_noise_model(noisy)
        except ValueError as exc:
            assert "no smooth region" in str(exc) and "texture" in str(exc), exc
            continue
        _, std_err, _ = _errors(model, expected, gain, read, offset)
        assert std_err <= STD_FLOOR, ((peak, gain, read, offset), model, std_err)


def test_no_smooth_region_is_a_clear_error():
    rng = np.random.default_rng(1)
    squares = rng.integers(0, 2, (32, 32)).repeat(3, 0).repeat(3, 1) * 1000.0
    with pytest.raises(ValueError, match="no smooth region"):
        estimate_noise_model(squares + rng.normal(0, 1, squares.shape))


def test_negative_gain_falls_back_to_white_with_a_warning():
    rng = np.random.default_rng(2)
    clean = _clean("camera") * 100 + 10  # noise falls with the signal
    noisy = clean + rng.normal(0, 1, clean.shape) * np.sqrt(120 - clean)
    with pytest.warns(UserWarning, match="negative.*falling back to white"):
        model = estimate_noise_model(noisy)
    assert model.kind == "gaussian" and model.bias > 0 and math.isfinite(model.bias)


def test_hand_given_model_is_checked():
    with pytest.raises(ValueError, match="gain"):
        NoiseModel(-1.0, 4.0)
    with pytest.raises(ValueError, match="bias"):
        NoiseModel(0.0, -1.0)
    with pytest.raises(ValueError, match="finite"):
        NoiseModel(float("nan"), 1.0)
    with pytest.raises(TypeError, match="gain"):
        NoiseModel("2", 1.0)


def test_json_round_trip_is_exact():
    _, noisy = poisson_gaussian(_clean("coins", 128), peak=20, gain=3, read=2, offset=50)
    model = estimate_noise_model(noisy)
    back = NoiseModel.from_json(model.to_json())
    assert back == model and back.points == model.points and back.residual == model.residual
    assert (back.gain_se, back.bias_se) == (model.gain_se, model.bias_se) and model.gain_se > 0
    assert back.gain == model.gain and back.bias == model.bias  # bit for bit
    assert NoiseModel.from_param(model.to_param()) == model
    assert json.loads(json.dumps(model.to_param())) == model.to_param()
    with pytest.raises(ValueError, match="noise_model"):
        NoiseModel.from_param("poisson-gaussian(gain=x, bias=1)")


def test_variance_and_never_nan():
    model = NoiseModel(2.0, -50.0)
    assert model.variance(100) == 150.0
    np.testing.assert_allclose(model.variance(np.array([25.0, 100.0])), [0.0, 150.0])
    assert model.zero_point == 25.0
    assert np.isfinite(model.std(np.array([0.0, 10.0]))).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, noisy = poisson_gaussian(_clean("camera", 128), peak=5, gain=1, read=1, offset=0)
        m = estimate_noise_model(noisy)
    assert all(math.isfinite(v) for v in (m.gain, m.bias, m.residual))
