"""Overlapping tiles (napari_restore._tiles): geometry, weights, validation, whole-plane
parameters, the default-tiling rule, recipes. Seams on 1024² images: benchmarks/bench_tiles.py."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import _tiles, classic_denoise
from napari_restore.processors import get_processor


def _noisy(shape=(160, 176), sigma=0.08, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = 0.5 + 0.3 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    return (clean + rng.normal(0, sigma, shape)).astype(np.float32), clean


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


@pytest.mark.parametrize("length,window,halo", [(1024, 300, 27), (500, 75, 27), (161, 68, 24),
                                                (1000, 540, 27), (97, 40, 8)])
def test_weights_cover_every_pixel_once_and_ignore_each_window_edge_halo(length, window, halo):
    grid = _tiles.grid_for((window, window), (length, length), halo)
    assert grid is not None and grid.window == (window, window)
    starts = grid.starts[0]
    assert starts[0] == 0 and starts[-1] + window == length
    overlaps = [starts[k] + window - starts[k + 1] for k in range(len(starts) - 1)]
    assert min(overlaps) >= _tiles.overlap(halo) - 1
    weights = grid.weights()[0]
    total = np.zeros(length)
    for s, w in zip(starts, weights, strict=True):
        assert w.shape == (window,) and (w >= 0).all() and (w <= 1).all()
        total[s:s + window] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    for k, (s, w) in enumerate(zip(starts, weights, strict=True)):
        if k > 0:  # an interior edge: no weight within the halo of it
            assert not w[:halo].any()
        if k < len(starts) - 1:
            assert not w[window - halo:].any()
    assert weights[0][0] == 1 and weights[-1][-1] == 1  # plane borders: full weight


def test_auto_cuts_a_1024_plane_into_two_strips_and_a_wide_plane_into_columns_too():
    grid = _tiles.grid_for("auto", (1024, 1024), 27)
    assert grid.count == 2
    assert grid.window == (-(-(1024 + _tiles.overlap(27)) // 2), 1024)
    wide = _tiles.grid_for("auto", (600, 5000), 27)  # 2 strips, each cut into 3 columns
    assert wide.count == 6 and wide.window[1] == -(-(5000 + 2 * _tiles.overlap(27)) // 3)
    assert _tiles.grid_for("auto", (300, 500), 27) is None  # one window: untiled


@pytest.mark.parametrize("tile,err,match", [
    ("big", ValueError, "'off'.*'auto'"), (5, TypeError, "pair"), ((1, 2, 3), ValueError, "2 entries"),
    ((0, 64), ValueError, ">= 1"), ((64.5, 64), TypeError, "integers"), (True, TypeError, "pair"),
])
def test_bad_tile_values_are_refused_naming_tile(tile, err, match):
    with pytest.raises(err, match=match):
        classic_denoise(np.zeros((32, 32), np.float32), tile=tile)


def test_a_tile_below_the_footprint_is_refused_with_the_smallest_allowed():
    image, _ = _noisy()
    least = _tiles.min_tile(get_processor("bm3d_denoise").footprint({"profile": "np"}, ()))
    with pytest.raises(ValueError, match=rf"footprint.*at least {least} px"):
        get_processor("bm3d_denoise").apply(image, sigma=0.08, tile=(least - 1, 150))


def test_a_tile_larger_than_the_plane_is_cut_and_reported_and_whole_is_untiled():
    image, _ = _noisy((96, 96))
    spec = get_processor("classic_denoise")
    resolved: dict = {}
    out = spec.apply(image, method="tv_chambolle", sigma=0.08, tile=(500, 500), resolved=resolved)
    assert resolved["tile"] is None  # the correction: one tile = the whole plane, untiled
    assert np.array_equal(out, spec.apply(image, method="tv_chambolle", sigma=0.08))
    resolved = {}
    spec.apply(image, method="tv_chambolle", sigma=0.08, tile=(500, 70), resolved=resolved)
    assert resolved["tile"] == (96, 70) and resolved["tiles"] == 4  # ceil((96 - 60) / (70 - 60))


def test_clahe_is_not_tileable():
    assert get_processor("lb_clahe").footprint is None
    with pytest.raises(ValueError, match="lb_clahe cannot run in tiles"):
        get_processor("lb_clahe").apply(np.zeros((64, 64), np.uint8), tile="auto")


def test_sigma_is_estimated_once_on_the_whole_plane_for_every_tile():
    image, _ = _noisy()
    spec = get_processor("classic_denoise")
    resolved: dict = {}
    auto = spec.apply(image, method="tv_chambolle", tile=(80, 80), resolved=resolved)
    whole: dict = {}
    spec.apply(image, method="tv_chambolle", resolved=whole)
    assert resolved["sigma"] == pytest.approx(whole["sigma"], rel=1e-6)  # one value, not per tile
    given = spec.apply(image, method="tv_chambolle", sigma=resolved["sigma"], tile=(80, 80))
    assert np.array_equal(auto, given)


def test_bm3d_auto_noise_is_resolved_on_the_whole_plane():
    image, _ = _noisy((160, 160))
    spec = get_processor("bm3d_denoise")
    resolved: dict = {}
    tiled = spec.apply(image, tile=(120, 120), resolved=resolved)
    whole: dict = {}
    spec.apply(image, resolved=whole)
    assert resolved["noise_model"] == whole["noise_model"] == "white"
    assert resolved["sigma"] == pytest.approx(whole["sigma"], rel=1e-9)
    assert resolved["tiles"] == 4  # ceil((160 - 67) / (120 - 67)) per axis
    assert np.array_equal(tiled, spec.apply(image, sigma=float(whole["sigma"]),
                                            noise_model="white", tile=(120, 120)))


def test_tiled_tv_is_close_to_untiled():
    image, clean = _noisy((200, 200))
    spec = get_processor("classic_denoise")
    whole = spec.apply(image, method="tv_chambolle", sigma=0.08)
    resolved: dict = {}
    tiled = spec.apply(image, method="tv_chambolle", sigma=0.08, tile=(90, 90), resolved=resolved)
    assert resolved["tiles"] == 25  # really tiled
    # every tile runs the plane's iteration count: beyond the halo it is the untiled result
    assert abs(_psnr(tiled, clean) - _psnr(whole, clean)) < 0.05
    assert np.abs(tiled - whole).max() < 1e-4


def test_needs_tiling_is_a_function_of_shape_dtype_and_processor_only(monkeypatch):
    from napari_restore import _arrays

    bm3d = get_processor("bm3d_denoise")
    params = bm3d.defaults()
    small, huge = (4096, 4096), (16384, 16384)
    answers = [_tiles.needs_tiling(bm3d, s, np.uint16, params) for s in (small, huge)]
    monkeypatch.setattr(_arrays, "available_memory", lambda: 1 << 20)  # free memory: no say
    assert [_tiles.needs_tiling(bm3d, s, np.uint16, params) for s in (small, huge)] == answers
    assert answers == [False, True]
    assert not _tiles.needs_tiling(get_processor("lb_clahe"), huge, np.uint16,
                                   get_processor("lb_clahe").defaults())
    dip = get_processor("deep_image_prior")
    assert _tiles.needs_tiling(dip, (4096, 4096), np.uint8, dip.defaults())
    assert not _tiles.needs_tiling(dip, (512, 512), np.uint8, dip.defaults())


def test_a_plane_that_cannot_fit_untiled_is_tiled_by_default_and_says_so(monkeypatch):
    image, _ = _noisy((200, 200))
    spec = get_processor("classic_denoise")
    monkeypatch.setattr(_tiles, "UNTILED_BYTES", 1000)  # every plane "cannot fit"
    monkeypatch.setattr(_tiles, "AUTO_WINDOW", (100, 100))
    resolved: dict = {}
    out = spec.apply(image, method="tv_chambolle", sigma=0.08, resolved=resolved)
    assert "tiled by default" in resolved["tile_reason"] and resolved["tiles"] == 4
    assert np.array_equal(out, spec.apply(image, method="tv_chambolle", sigma=0.08, tile="auto"))


def test_tile_is_recorded_in_recipes_and_replays_bit_identically(tmp_path):
    from napari_restore.recipes import Recipe, apply_recipe

    image, _ = _noisy((150, 150))
    recipe = Recipe("classic_denoise", {"method": "nl_means", "tile": [90, 90]})
    assert recipe.params["tile"] == (90, 90)
    path = recipe.save(tmp_path / "r.json")
    again = Recipe.load(path)
    assert again.params["tile"] == (90, 90)
    a = apply_recipe(again, image)
    assert np.array_equal(a, classic_denoise(image, method="nl_means", tile=(90, 90)))
    assert np.array_equal(a, apply_recipe(Recipe.load(path), image))
    assert Recipe("classic_denoise", {}).params["tile"] == "off"


def test_tiled_colour_and_volume_planes():
    rng = np.random.default_rng(1)
    rgb = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    out = classic_denoise(rgb, method="tv_chambolle", sigma=20, channel_axis=-1, tile=(96, 70))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    whole = classic_denoise(rgb, method="tv_chambolle", sigma=20, channel_axis=-1)
    assert np.abs(out.astype(int) - whole).max() <= 40


def test_tv_runs_a_fixed_iteration_count():
    """TV is Chambolle's projection for exactly TV_ITERATIONS iterations (no early stop):
    the same bits as scikit-image's call with eps=0, and not those of its default rule."""
    from skimage.restoration import denoise_tv_chambolle

    from napari_restore.processors.classic import TV_ITERATIONS, classic_plane

    image = np.random.default_rng(2).random((97, 131)).astype(np.float32)
    kw = dict(method="tv_chambolle", strength=1.0, patch_size=5, patch_distance=6,
              bit_depth="16")
    ours = classic_plane(image, sigma=0.1, **kw)
    assert np.array_equal(ours, denoise_tv_chambolle(image, weight=0.1, eps=0.0,
                                                     max_num_iter=TV_ITERATIONS))
    assert not np.array_equal(ours, denoise_tv_chambolle(image, weight=0.1))


def test_tv_result_varies_smoothly_with_the_weight():
    """Along a weight sweep the PSNR of TV rises to one peak and falls (unimodal, to
    0.02 dB). scikit-image's default stopping
    rule, which stopped after 4-36 iterations at a count that jumps with the weight, gave
    26.53 dB between 27.77 and 27.08 on this rocket crop (and a 1.2 dB wrong calibration)."""
    from skimage import data

    from napari_restore import classic_denoise

    clean = data.rocket()[...].astype(np.float64)
    h, w = clean.shape[:2]
    clean = clean[(h - 128) // 2:(h - 128) // 2 + 128, (w - 128) // 2:(w - 128) // 2 + 128]
    rng = np.random.default_rng(72)
    noisy = np.clip(clean + rng.normal(0.0, 40.0, clean.shape), 0, 255).astype(np.uint8)
    weights = 25.0 * 1.123 ** np.arange(10)
    psnr = []
    for s in weights:
        out = classic_denoise(noisy, method="tv_chambolle", sigma=float(s), channel_axis=-1)
        psnr.append(10 * np.log10(255.0**2 / np.mean((out.astype(np.float64) - clean) ** 2)))
    steps = np.diff(psnr)
    peak = int(np.argmax(psnr))
    assert (steps[:peak] > -0.02).all() and (steps[peak:] < 0.02).all(), np.round(psnr, 2)


def test_cli_tile_option_runs_tiled_and_records_it(tmp_path, capsys):
    import json

    from napari_restore.cli import main
    from napari_restore.recipes import Recipe

    image, _ = _noisy((150, 150))
    Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 0.08}).save(tmp_path / "r.json")
    np.save(tmp_path / "a.npy", image)
    assert main(["apply", str(tmp_path / "r.json"), str(tmp_path / "a.npy"), "-o",
                 str(tmp_path / "out"), "--tile", "80x80"]) == 0
    out = np.load(tmp_path / "out" / "a.npy")
    assert np.array_equal(out, classic_denoise(image, method="tv_chambolle", sigma=0.08,
                                               tile=(80, 80)))
    side = json.loads((tmp_path / "out" / "a.npy.json").read_text())
    assert side["recipe"]["params"]["tile"] == [80, 80]
    Recipe("lb_clahe", {}).save(tmp_path / "c.json")
    assert main(["apply", str(tmp_path / "c.json"), str(tmp_path / "a.npy"), "-o",
                 str(tmp_path / "o2"), "--tile", "auto"]) == 2
    assert "cannot run in tiles" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["apply", str(tmp_path / "r.json"), "a.npy", "-o", "x", "--tile", "big"])
