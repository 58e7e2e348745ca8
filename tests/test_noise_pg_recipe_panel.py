"""A recipe holding a Poisson–Gaussian model, loaded into a panel: the model becomes one
more entry of the noise-model choice and the panel's run replays the recipe bit-identically."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari_restore import NoiseModel, Recipe, _isolate, apply_recipe  # noqa: E402
from napari_restore._sample_data import fluorescence  # noqa: E402

MODEL = NoiseModel(3.875, -379.25)


@pytest.fixture
def viewer(make_napari_viewer):
    yield make_napari_viewer()
    _isolate.shutdown()


def test_loaded_model_is_an_extra_entry_and_replays_bit_identically(qtbot, viewer, tmp_path):
    _, noisy = fluorescence()
    data = noisy[64:128, 64:128]
    src = viewer.add_image(data, name="fluo")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "BM3D denoise")
    panel.layer_widget.value = src
    combo = panel.param_widgets["noise_model"]
    named = list(combo.choices)
    recipe = Recipe("bm3d_denoise", {"noise_model": MODEL.to_param(), "profile": "lc"},
                    source_dtype=str(data.dtype))
    path = recipe.save(tmp_path / "pg.json")
    assert panel.recipes.load(path) is not None  # no "not a valid choice" error
    assert combo.value == MODEL.to_param()
    assert list(combo.choices) == named + [MODEL.to_param()]  # one extra entry
    assert "a=3.875" in combo.native.currentText()
    assert panel.params["noise_model"] == MODEL.to_param()
    # a second model replaces the first; the named choices still work
    other = NoiseModel(2.0, 5.0)
    panel.set_params({"noise_model": other})
    assert list(combo.choices) == named + [other.to_param()]
    panel.set_params({"noise_model": "white"})
    assert combo.value == "white"
    panel.recipes.load(path)
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=120_000)
    out = viewer.layers[-1]
    assert out is not src
    meta = Recipe.from_layer(out)
    assert meta.params["noise_model"] == MODEL.to_param()
    assert np.array_equal(np.asarray(out.data), apply_recipe(recipe, data))
