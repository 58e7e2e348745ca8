"""Recipes store what the user chose: "auto" stays auto, intensities keep their units."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_restore import Recipe, apply_recipe
from napari_restore.processors.registry import get_processor
from napari_restore.recipes import FORMAT


def _twelve_bit(seed=0, shape=(64, 64)):
    """12-bit data in uint16: values up to 4095, about 3040 grey levels of signal."""
    from skimage import data

    clean = data.camera()[100:100 + shape[0], 100:100 + shape[1]].astype(np.float64) / 255
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(500 + clean * 3040 + rng.normal(0, 40, shape)), 0, 4095).astype(np.uint16)


def _uint8(seed=1, shape=(64, 64)):
    from skimage import data

    clean = data.camera()[100:100 + shape[0], 100:100 + shape[1]].astype(np.float64)
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(clean + rng.normal(0, 12, shape)), 0, 255).astype(np.uint8)


def test_auto_choices_stay_auto_and_resolve_per_input():
    spec = get_processor("classic_denoise")
    resolved: dict = {}
    spec.apply(_uint8(), method="opencv_nlm", resolved=resolved)
    assert resolved["bit_depth"] == "8" and resolved["sigma"] > 0
    recipe = Recipe("classic_denoise", {"method": "opencv_nlm"}, source_dtype="uint8",
                    resolved=resolved)
    data = json.loads(recipe.to_json())
    assert data["format"] == FORMAT
    assert data["params"]["bit_depth"] == "auto" and data["params"]["sigma"] is None
    assert data["resolved"]["bit_depth"] == "8" and data["source_dtype"] == "uint8"
    # Replayed on 12-bit data in uint16: bit depth and sigma are resolved for that input.
    u16 = _twelve_bit()
    again: dict = {}
    out = apply_recipe(Recipe.from_json(recipe.to_json()), u16)
    spec.apply(u16, method="opencv_nlm", resolved=again)
    assert again["bit_depth"] == "16"
    assert again["sigma"] == pytest.approx(40, rel=0.35)  # 40 grey levels of the 12-bit data
    assert out.dtype == np.uint16 and out.max() > 3000  # the 3040 levels were not squeezed


def test_replay_is_bit_identical_on_the_same_input():
    u16 = _twelve_bit(seed=3)
    recipe = Recipe("classic_denoise", {"method": "wavelet"}, source_dtype="uint16")
    a = apply_recipe(recipe, u16)
    b = apply_recipe(Recipe.from_json(recipe.to_json()), u16)
    assert a.tobytes() == b.tobytes()


def test_sigma_in_another_dtypes_units_is_refused():
    recipe = Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 12.0},
                    source_dtype="uint8")
    with pytest.raises(ValueError, match=r"sigma=12 in grey levels of uint8.*uint16"):
        apply_recipe(recipe, _twelve_bit())
    assert apply_recipe(recipe, _uint8()).dtype == np.uint8
    floats = Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 0.05},
                    source_dtype="float32")
    assert apply_recipe(floats, _uint8().astype(np.float64) / 255).dtype == np.float64


def test_an_8_bit_path_on_deeper_data_is_refused():
    recipe = Recipe("classic_denoise", {"method": "opencv_nlm", "bit_depth": "8"},
                    source_dtype="uint8")
    with pytest.raises(ValueError, match="bit_depth='8'.*lose its precision"):
        apply_recipe(recipe, _twelve_bit())


def test_format_1_recipe_is_converted_when_its_dtype_is_known():
    old = {"format": "napari-restore-recipe/1", "processor": "classic_denoise",
           "params": {"method": "tv_chambolle", "sigma": 0.1}, "channel_axis": None}
    recipe = Recipe.from_dict(old, dtype=np.uint8)
    assert recipe.params["sigma"] == pytest.approx(25.5)
    assert recipe.source_dtype == "uint8"

    class Layer:  # what napari gives: the result layer carries the old metadata
        metadata = {"napari_restore": old}
        data = np.zeros((8, 8), np.uint16)
        name = "old result"

    assert Recipe.from_layer(Layer()).params["sigma"] == pytest.approx(0.1 * 65535)


def test_format_1_recipe_of_unknown_dtype_is_refused_with_advice(tmp_path):
    old = {"format": "napari-restore-recipe/1", "processor": "bm3d_denoise",
           "params": {"sigma": 0.1}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="save the recipe again"):
        Recipe.load(path)
    # without intensities nothing needs converting
    auto = {**old, "params": {"sigma": None}}
    assert Recipe.from_dict(auto).params["sigma"] is None


def test_format_1_recipes_replay_as_format_1_behaved():
    old = {"format": "napari-restore-recipe/1", "processor": "bm3d_deblur", "params": {}}
    assert Recipe.from_dict(old).params["boundary"] == "periodic"
    old = {"format": "napari-restore-recipe/1", "processor": "bm3d_denoise", "params": {}}
    assert Recipe.from_dict(old).params["noise_model"] == "white"
    new = {"format": FORMAT, "processor": "bm3d_denoise", "params": {}}
    assert Recipe.from_dict(new).params["noise_model"] == "auto"
