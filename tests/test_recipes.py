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
