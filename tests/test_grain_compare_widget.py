"""Compare grain dock widget: grain layers of the film-grain sample (the scan's grain, the
grain a BM3D run extracted, a resynthesised grain, a coarser stock's grain), made in the panel
(image − clean), the plot, the distance table, image pairing from result metadata, the
panel's fit in a 1280×800 window, and the docs screenshot (written to docs/images/ when
NAPARI_RESTORE_WRITE_DOCS_IMAGES=1, else to a temporary folder)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")

from napari_restore import analyze_grain, restore_film_grain, synthesize_grain
from napari_restore._sample_data import film_grain
from napari_restore.processors.grain_compare import COLUMNS
from napari_restore.widgets.grain_compare import PLOT_HEIGHT, _cell

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
STOCK_SIZE = 2.5  # px: the reference stock's grain, coarser than the sample's 1.2 px


def sample_layers(viewer):
    """The scan (film-grain sample, 400×600 RGB), its clean reference, a coarser stock, a Film
    grain run (non-local means, seconds where BM3D takes a minute; its grain layer carries the
    run's metadata) and a resynthesised layer (the blind profile's grain added to the clean
    image, as the panel's Synthesise does)."""
    clean, scan = film_grain()
    _, stock = film_grain(grain_sigma_px=STOCK_SIZE, amplitude=0.05, seed=3)
    for data, name in ((scan, "scan"), (clean, "clean"), (stock, "stock")):
        viewer.add_image(data, name=name, rgb=True)
    prof = analyze_grain(scan, channel_axis=-1)
    new = clean + synthesize_grain(clean.shape, prof, luminance=clean, channel_axis=-1, seed=1)
    viewer.add_image(np.clip(np.rint(new), 0, 255).astype(np.uint8), name="clean [grain]",
                     rgb=True)
    return prof


def add_extracted(viewer):
    """The grain layer of a Film grain run on the scan, as the panel adds it."""
    _, grain, _ = restore_film_grain(viewer.layers["scan"].data, channel_axis=-1,
                                     denoiser="nl_means")
    lim = float(np.abs(grain).max())
    return viewer.add_image(
        grain, name="scan [restore_film_grain nl_means] grain", rgb=True,
        contrast_limits=(-lim, lim),
        metadata={"napari_restore": {"processor": "restore_film_grain", "source": "scan",
                                     "output": "grain"}})


def test_compare_grain_layers(make_napari_viewer, qtbot, tmp_path):
    from qtpy.QtWidgets import QApplication

    from napari_restore._compat import viewer_grid

    viewer = make_napari_viewer(show=True)
    prof = sample_layers(viewer)
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare grain")
    L = viewer.layers
    # grain layers made in the panel: image − its clean version, paired with the image
    true = panel.make_grain(L["scan"], L["clean"])
    np.testing.assert_array_equal(true.data, L["scan"].data.astype(np.float32) - L["clean"].data)
    resynth = panel.make_grain(L["clean [grain]"], L["clean"])
    panel.grain_of.value, panel.minus.value = L["stock"], L["clean"]
    stock_grain = panel.make_grain()
    assert stock_grain.name == "stock − clean grain" and stock_grain.rgb
    assert panel.make_grain(L["scan"], L["scan"]) is None and "choose" in panel.status.value
    extracted = add_extracted(viewer)

    panel.grains.value = [true]  # fewer than two grains: a message, no job
    assert panel.compare() is None and "two or more" in panel.status.value
    panel.grains.value = [true, extracted, resynth, stock_grain]
    # result metadata pairs each grain with its source layer
    for grain, image in ((true, "scan"), (extracted, "scan"), (resynth, "clean [grain]"),
                         (stock_grain, "stock")):
        assert panel._image_widgets[grain.name].value is L[image]
    assert panel.key.value.startswith("1: scan − clean grain")
    job = panel.compare()
    assert panel.compare_button.text == "Stop"
    qtbot.waitUntil(lambda: panel.job is None, timeout=120_000)
    assert job.outcome == "done", job.error
    assert panel.compare_button.text == "Compare grain"
    res = panel.result
    assert res is not None and res.unit == "grey levels"
    # the table: 6 pairs, the columns and numbers of the core
    assert panel.table.shape == (6, len(COLUMNS) - 1)
    table = panel.table.to_dict("list")
    assert table["pair"] == ["1–2", "1–3", "1–4", "2–3", "2–4", "3–4"]
    assert table["size ×"] == [_cell("size ×", d.size_ratio) for d in res.distances]
    assert table["Δ chan ρ"] == [_cell("Δ chan ρ", d.channel_corr_diff) for d in res.distances]
    assert panel.table.native.item(0, 1).text() == _cell("NLF err", res.distances[0].nlf_rel_error)
    # the resynthesised grain has the statistics of the blind profile it was drawn from
    d = res.distance(true.name, resynth.name)
    curve = {c.name: c for c in res.curves}  # in the layer list's order
    assert list(curve) == [lay.name for lay in L if lay in panel.grains.value]
    new, scan_grain = curve[resynth.name], curve[true.name]
    assert d.nlf_rel_error < 0.2 and d.spectrum_corr > 0.95
    assert new.grain_size_px == pytest.approx(prof.grain_size_px, rel=0.15)
    assert new.channel_correlation == pytest.approx(prof.channel_correlation, abs=0.1)
    assert 0.8 < d.size_ratio < 1.5
    assert scan_grain.channel_correlation > 0.95  # the scan's grain is mono
    assert d.channel_corr_diff == pytest.approx(
        new.channel_correlation - scan_grain.channel_correlation, abs=1e-12)
    # the stock's grain is coarser by the ratio of the filters
    s = res.distance(true.name, stock_grain.name)
    assert s.size_ratio == pytest.approx(STOCK_SIZE / 1.2, rel=0.25)
    assert s.spectrum_corr < d.spectrum_corr
    # the plot: an NLF line and a spectrum per grain, axes in the image's units
    assert len(panel.ax_nlf.get_lines()) == 4 and len(panel.ax_psd.get_lines()) == 4
    assert "grey levels" in panel.ax_nlf.get_xlabel()
    assert panel.canvas.minimumHeight() == panel.canvas.maximumHeight() == PLOT_HEIGHT

    # the docs screenshot: 1280×800 window, the grains in a grid, the panel docked
    for lay in viewer.layers:
        lay.visible = lay in (true, extracted, resynth, stock_grain)
    viewer_grid(viewer).enabled = True
    window = viewer.window._qt_window
    window.resize(1280, 800)
    for _ in range(10):
        QApplication.processEvents()
    viewer.reset_view()
    panel.scroll_to_results()
    for _ in range(5):
        QApplication.processEvents()
    canvas = viewer.window._qt_viewer.canvas.native.width()
    assert canvas / window.width() >= 0.45, (canvas, window.width())
    out = tmp_path / "grain_compare.png"
    if os.environ.get("NAPARI_RESTORE_WRITE_DOCS_IMAGES") == "1":
        out = DOCS_IMAGES / "grain_compare.png"
    shot = viewer.screenshot(str(out), canvas_only=False, flash=False)
    assert shot.shape[:2] == (800, 1280)


def test_stop_and_an_error_reach_the_status(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    a = viewer.add_image(rng.standard_normal((64, 64)), name="a")
    b = viewer.add_image(rng.standard_normal((64, 64)) + 10, name="b")  # not a grain
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare grain")
    panel.grains.value = [a, b]
    panel.compare()
    qtbot.waitUntil(lambda: panel.job is None, timeout=60_000)
    assert "grains[1] ('b') is not a grain" in panel.status.value
    assert panel.result is None
    rgb = viewer.add_image(rng.standard_normal((64, 64, 3)), name="c", rgb=True)
    panel.grains.value = [a, rgb]
    assert panel.compare() is None and "all greyscale or all RGB" in panel.status.value


def test_stop_ends_the_comparison_between_grains(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    layers = [viewer.add_image(rng.standard_normal((256, 256)), name=f"g{k}") for k in range(4)]
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare grain")
    panel.grains.value = layers
    job = panel.compare()
    panel.compare_button.changed.emit(True)  # the button reads "Stop" while running
    assert panel.compare_button.text == "Stopping…"
    qtbot.waitUntil(lambda: panel.job is None, timeout=60_000)
    assert job.outcome == "stopped" and panel.status.value == "stopped"
    assert panel.result is None and panel.compare_button.text == "Compare grain"
