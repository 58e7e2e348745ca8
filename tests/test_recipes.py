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
    assert json.loads(path.read_text())["format"] == "napari-restore-recipe/2"


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


# -- hostile documents: a matrix per loader -----------------------------------------------------

DEEP_LIST, DEEP_DICT = "[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000
# values that parse (deep, yet under the parser's limit; huge, yet under 1 MB) but fit no field
VALUES = ["1" + "0" * 400, "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "-1e308", "true",
          "false", "null", '"3"', "[]", "{}", "[[[[1]]]]", "[" * 500 + "]" * 500,
          '{"a":' * 500 + "1" + "}" * 500, "[" + "0," * 200_000 + "0]",
          '"' + "x" * 100_000 + '"', '{"__class__": "os.system"}']
VALID = {("params", "{}"), ("channel_axis", "null"), ("version", '"3"')}


@pytest.mark.parametrize("text,exc,words", [
    (DEEP_LIST, ValueError, "nested too deeply"), (DEEP_DICT, ValueError, "nested too deeply"),
    ('{"processor": "classic_denoise", "params": ' + DEEP_DICT + "}", ValueError, "nested too deeply"),
    ("[1, 2]", TypeError, "JSON object"), ("3", TypeError, "JSON object"),
    ('"recipe"', TypeError, "JSON object"), ("null", TypeError, "JSON object"),
    ("NaN", TypeError, "JSON object"), ("", ValueError, "not valid JSON"),
    ("{processor:", ValueError, "not valid JSON"), ("{}", ValueError, "missing the 'processor'"),
    ('{"processor": "classic_denoise", "pad": "' + "x" * 1_000_001 + '"}', ValueError, "at most"),
    ('{"processor": "classic_denoise", ' + ", ".join(f'"k{i}": 0' for i in range(50_000)) + "}",
     ValueError, r"unknown key\(s\) 'k0', 'k1'.* and 49995 more"),
])
def test_malformed_recipe_documents(text, exc, words):
    with pytest.raises(exc, match=words):
        Recipe.from_json(text)


@pytest.mark.parametrize("key", ["processor", "params", "channel_axis", "version", "format"])
def test_hostile_value_of_every_recipe_key(key):
    """Every top-level key with every hostile value: a short error naming the key."""
    for raw in VALUES:
        if (key, raw) in VALID:
            continue
        text = f'{{"processor": "classic_denoise", "{key}": {raw}}}'
        # inside params, the offending parameter is named ("parameter 'a'", "unknown parameter")
        with pytest.raises((ValueError, TypeError), match="param" if key == "params" else key) as info:
            Recipe.from_json(text)
        assert len(str(info.value)) < 300, (key, raw[:20])


@pytest.mark.parametrize("raw", VALUES + ["2", "-5", "0.5", '"wavelet"', "[1, 2]", "[1, 2, 3]",
                                          '[1, "x"]', "[" + "1," * 20 + "1]"])
def test_hostile_value_of_every_parameter_of_every_processor(raw):
    """A short error naming the parameter, or a value the parameter really takes."""
    from napari_restore.processors.registry import REGISTRY

    for spec in REGISTRY.values():
        for p in spec.params:
            text = f'{{"processor": "{spec.name}", "params": {{"{p.name}": {raw}}}}}'
            try:
                recipe = Recipe.from_json(text)
            except (ValueError, TypeError) as exc:
                assert p.name in str(exc) and len(str(exc)) < 300, (spec.name, p.name, raw[:20])
                continue
            assert recipe.params[p.name] == p.validate(json.loads(raw))


@pytest.mark.parametrize("params,exc,words", [
    ({f"p{i}": 1 for i in range(100)}, ValueError, "100 entries"),
    ({"x" * 10_000: 1}, TypeError, "unknown parameter 'xxx"),
    ({"sigma": [0.1] * 1000}, ValueError, "'sigma' has 1000 entries"),
    ({"method": "y" * 10_000}, ValueError, "'method' is a string of 10000 characters"),
    ({"tile_grid": [[8], [8]]}, TypeError, "'tile_grid' must be a number"),
])
def test_oversized_recipe_params(params, exc, words):
    with pytest.raises(exc, match=words):
        Recipe.from_dict({"processor": "lb_clahe" if "tile_grid" in params else "classic_denoise",
                          "params": params})


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x89PNG garbage", bytes(range(256)) * 40,
                                     '{"processor": "classic_denoise"}'.encode("utf-16"), b"",
                                     b"\x00" * 64, DEEP_DICT.encode()])
def test_recipe_file_that_is_not_json_text(tmp_path, content):
    path = tmp_path / "r.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not UTF-8|not valid JSON"):
        Recipe.load(path)
    with pytest.raises(ValueError, match="not UTF-8|not valid JSON"):
        apply_recipe(path, np.zeros((8, 8)))


SETTINGS_TEXTS = [DEEP_LIST, DEEP_DICT, "[1, 2]", "3", "null", '"x"', "NaN", "", "{not json",
                  "\x00\x01 not json", '{"sigma": 0.1, "pad": "' + "x" * 1_000_001 + '"}'] + [
    f'{{"{name}": {raw}}}' for name in ("sigma", "patch_size", "method", "strength")
    for raw in VALUES if raw != "null" or name != "sigma"]


@pytest.mark.parametrize("text", SETTINGS_TEXTS, ids=range(len(SETTINGS_TEXTS)))
def test_hostile_settings_file_falls_back_to_defaults(tmp_path, monkeypatch, text):
    """Whatever the remembered-parameters file holds: defaults and one short warning."""
    from napari_restore import settings

    monkeypatch.setenv("NAPARI_RESTORE_CONFIG_DIR", str(tmp_path))
    path = settings._path("classic_denoise")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    with pytest.warns(UserWarning, match="ignoring remembered parameters") as record:
        assert settings.load_params("classic_denoise") == settings.get_processor(
            "classic_denoise").defaults()
    assert len(str(record[0].message)) < 500 + len(str(path))


@pytest.mark.parametrize("content", [b"\xff\xfe\x00", bytes(range(256)) * 40,
                                     '{"sigma": 0.1}'.encode("utf-16")])
def test_binary_settings_file_falls_back_to_defaults(tmp_path, monkeypatch, content):
    from napari_restore import settings

    monkeypatch.setenv("NAPARI_RESTORE_CONFIG_DIR", str(tmp_path))
    path = settings._path("classic_denoise")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    with pytest.warns(UserWarning, match="not UTF-8"):
        assert settings.load_params("classic_denoise") == settings.get_processor(
            "classic_denoise").defaults()


def test_integer_beyond_the_parser_limit_names_the_document():
    huge = "1" * 5000  # Python refuses int strings over 4300 digits with a bare ValueError
    with pytest.raises(ValueError, match="recipe is not valid JSON"):
        Recipe.from_json('{"processor": "classic_denoise", "params": {"sigma": %s}}' % huge)
    from napari_restore import GrainProfile

    with pytest.raises(ValueError, match="grain profile is not valid JSON"):
        GrainProfile.from_json('{"sigma": %s}' % huge)
    with pytest.raises(ValueError, match="version"):
        GrainProfile.from_json(_profile_json_with_version("1.0"))  # 1.0 is not the int 1


def _profile_json_with_version(raw):
    import numpy as np

    from napari_restore import analyze_grain

    rng = np.random.default_rng(0)
    prof = analyze_grain(np.clip(0.5 + rng.normal(0, 0.05, (96, 96)), 0, 1)).to_dict()
    prof["version"] = "@@"
    return json.dumps(prof).replace('"@@"', raw)
