"""Panels show intensity parameters in the chosen layer's units (pytest-qt, real viewer)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")


@pytest.fixture
def panel(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    return viewer, widget


def _label(panel, name):
    return panel.param_widgets[name].label


def test_sigma_is_labelled_and_stepped_in_the_layers_units(panel):
    viewer, w = panel
    rng = np.random.default_rng(0)
    u12 = (rng.random((48, 48)) * 4095).astype(np.uint16)
    viewer.add_image(u12, name="12-bit")
    w.layer_widget.value = viewer.layers["12-bit"]
    spin = w.param_widgets["sigma"]._spin
    assert _label(w, "sigma") == "σ (grey levels)"
    assert spin.max == 65535 and spin.step >= 1 and spin.step <= 50
    counts = (1000 + 3000 * rng.random((48, 48))).astype(np.float32)
    viewer.add_image(counts, name="counts")
    w.layer_widget.value = viewer.layers["counts"]
    assert _label(w, "sigma") == "σ (data units)"
    span = float(counts.max() - counts.min())
    assert span - spin.step <= spin.max <= span
    unit = rng.random((48, 48)).astype(np.float32)
    viewer.add_image(unit, name="unit")
    w.layer_widget.value = viewer.layers["unit"]
    assert spin.max == pytest.approx(1.0) and spin.step <= 0.005
    assert spin.native.decimals() >= 3  # 0.001 steps are visible, not rounded away


def test_a_sigma_in_grey_levels_runs_and_is_recorded_as_given(panel, qtbot):
    viewer, w = panel
    from napari_restore._sample_data import camera

    _, noisy = camera()
    viewer.add_image(noisy[:96, :96], name="cam")
    w.layer_widget.value = viewer.layers["cam"]
    w.set_params({"method": "tv_chambolle", "sigma": 25.0})
    worker = w.start()
    assert worker is not None
    qtbot.waitUntil(lambda: w.state == "idle", timeout=60_000)
    out = viewer.layers[-1]
    meta = out.metadata["napari_restore"]
    assert meta["params"]["sigma"] == 25.0 and meta["source_dtype"] == "uint8"
    assert "σ=25" in out.name


def test_auto_sigma_is_recorded_as_auto_with_its_resolved_value(panel, qtbot):
    viewer, w = panel
    from napari_restore._sample_data import camera

    _, noisy = camera()
    viewer.add_image(noisy[:96, :96], name="cam")
    w.layer_widget.value = viewer.layers["cam"]
    w.set_params({"method": "tv_chambolle", "sigma": None})
    assert not w.param_widgets["sigma"]._spin.visible  # no stale greyed number on auto
    w.start()
    qtbot.waitUntil(lambda: w.state == "idle", timeout=60_000)
    meta = viewer.layers[-1].metadata["napari_restore"]
    assert meta["params"]["sigma"] is None
    assert 10 < meta["resolved"]["sigma"] < 40  # grey levels (the sample has σ ≈ 25)


def test_int32_counts_are_denoised_from_the_panel(panel, qtbot):
    """32-bit integer layers: σ bounded by the data's span (not 2**32) and a run changes the
    image (it came back unchanged when int32 was scaled by its dtype's range)."""
    viewer, w = panel
    rng = np.random.default_rng(5)
    clean = np.tile(np.linspace(1000.0, 4000.0, 64), (64, 1))
    counts = np.rint(clean + rng.normal(0.0, 60.0, clean.shape)).astype(np.int32)
    viewer.add_image(counts, name="int32")
    w.layer_widget.value = viewer.layers["int32"]
    spin = w.param_widgets["sigma"]._spin
    assert _label(w, "sigma") == "σ (grey levels)"
    assert spin.max <= float(counts.max() - counts.min())
    w.set_params({"method": "tv_chambolle", "sigma": 60.0})
    assert w.start() is not None
    qtbot.waitUntil(lambda: w.state == "idle", timeout=60_000)
    out = np.asarray(viewer.layers[-1].data)
    assert out.dtype == np.int32 and not np.array_equal(out, counts)
    assert np.sqrt(np.mean((out - clean) ** 2)) < 0.6 * np.sqrt(np.mean((counts - clean) ** 2))
