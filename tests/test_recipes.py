from __future__ import annotations

import json

import numpy as np
import pytest

from napari_restore import Recipe, apply_recipe, classic_denoise


def test_round_trip_json(tmp_path):
    r = Recipe("classic_denoise", {"method": "wavelet", "sigma": 0.05})
    path = r.save(tmp_path / "r.json")
    r2 = Recipe.load(path)
    assert r2 == r
    assert r2.params["strength"] == 1.0  # defaults filled in
    assert json.loads(path.read_text())["format"] == "napari-restore-recipe/1"


def test_apply_recipe_equals_direct_call(camera_pair):
    _, noisy = camera_pair
    r = Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 0.08})
    np.testing.assert_array_equal(
        apply_recipe(r, noisy), classic_denoise(noisy, method="tv_chambolle", sigma=0.08)
    )
    np.testing.assert_array_equal(apply_recipe(r.to_dict(), noisy), apply_recipe(r, noisy))


@pytest.mark.parametrize(
    "data,exc,words",
    [
        ({"processor": "nope"}, ValueError, "unknown processor"),
        ({"processor": "classic_denoise", "params": {"sigma": -1}}, ValueError, "sigma"),
        ({"processor": "classic_denoise", "params": {"bogus": 1}}, TypeError, "bogus"),
        ({"processor": "classic_denoise", "evil": "__import__('os')"}, ValueError, "unknown key"),
        ({"processor": "classic_denoise", "params": [1, 2]}, TypeError, "params must be a mapping"),
        ({"params": {}}, ValueError, "processor"),
        ([1, 2], TypeError, "JSON object"),
        ({"processor": "classic_denoise", "format": "other/9"}, ValueError, "format"),
    ],
)
def test_bad_recipes_are_rejected(data, exc, words):
    with pytest.raises(exc, match=words):
        Recipe.from_dict(data)


def test_malformed_json():
    with pytest.raises(ValueError, match="not valid JSON"):
        Recipe.from_json("{processor:")
    with pytest.raises(ValueError, match="not valid JSON"):
        Recipe.from_json("[" * 100000 + "]" * 100000)


HOSTILE = ["1" + "0" * 400, "1e400", "-1e400", "NaN", "Infinity", "-1e308", "true", '"3"',
           "[]", "{}", "[[[[1]]]]", '{"__class__": "os.system"}']


@pytest.mark.parametrize("processor,param", [
    ("classic_denoise", "sigma"), ("classic_denoise", "patch_size"), ("classic_denoise", "method"),
    ("lb_clahe", "tile_grid"), ("lb_clahe", "refine"), ("bm3d_denoise", "threads"),
    ("deep_image_prior", "seed"),
])
def test_hostile_parameter_values_are_clear_errors(processor, param):
    """Huge numbers, NaN tokens, wrong types and nesting in a parameter: an error naming it."""
    for raw in HOSTILE:
        if raw == "true" and param == "refine":
            continue  # a valid value for a bool
        text = '{"processor": "%s", "params": {"%s": %s}}' % (processor, param, raw)
        with pytest.raises((ValueError, TypeError), match=param):
            Recipe.from_json(text)


@pytest.mark.parametrize("raw", ["1" + "0" * 400, "1e400", "NaN", "99", "-40", "true", '"-1"',
                                 "[1]", "2.0"])
def test_hostile_channel_axis_is_a_clear_error(raw):
    with pytest.raises((ValueError, TypeError), match="channel_axis"):
        Recipe.from_json('{"processor": "classic_denoise", "channel_axis": %s}' % raw)


def test_hostile_recipe_files(tmp_path):
    big = tmp_path / "big.json"
    big.write_text('{"processor": "classic_denoise", "pad": "' + "x" * 1_100_000 + '"}')
    with pytest.raises(ValueError, match="larger than"):
        Recipe.load(big)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00\x89PNG garbage")
    with pytest.raises(ValueError, match="not UTF-8"):
        Recipe.load(binary)
    deep = tmp_path / "deep.json"
    deep.write_text('{"params":' * 50_000 + "1" + "}" * 50_000)
    with pytest.raises(ValueError, match="not valid JSON"):
        Recipe.load(deep)


def test_hostile_remembered_settings_fall_back_to_defaults(tmp_path, monkeypatch):
    """A corrupt or hostile settings file never breaks a panel: defaults, with a warning."""
    from napari_restore import settings

    monkeypatch.setenv("NAPARI_RESTORE_CONFIG_DIR", str(tmp_path))
    path = settings._path("classic_denoise")
    path.parent.mkdir(parents=True, exist_ok=True)
    defaults = settings.get_processor("classic_denoise").defaults()
    for text in ["[" * 100_000 + "]" * 100_000, '{"sigma": ' + "1" + "0" * 400 + "}",
                 '{"sigma": NaN}', '{"sigma": "x"}', "[1, 2]", "\x00\x01 not json",
                 '{"sigma": 0.1, "pad": "' + "x" * 1_100_000 + '"}']:
        path.write_text(text, encoding="utf-8")
        with pytest.warns(UserWarning, match="ignoring remembered parameters"):
            assert settings.load_params("classic_denoise") == defaults
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.warns(UserWarning):
        assert settings.load_params("classic_denoise") == defaults
