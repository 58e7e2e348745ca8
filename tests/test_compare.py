"""Compare panel: metrics equal scikit-image's, grid view, difference, CSV, compare denoisers."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")

from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from napari_restore import classic_denoise  # noqa: E402
from napari_restore._compat import viewer_grid  # noqa: E402
from napari_restore.widgets.compare import aligned_reference, compare_rows  # noqa: E402


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def wait_table(qtbot, panel):
    """Start the table's job and wait for it: the rows it showed."""
    assert panel.update_table() is not None
    qtbot.waitUntil(lambda: panel.table_job is None, timeout=60_000)
    return panel.rows


def add_result(viewer, data, name, **meta):
    return viewer.add_image(data, name=name, metadata={"napari_restore": {
        "processor": "classic_denoise", "params": {"method": "x"}, **meta}})


def test_table_psnr_and_ssim_equal_skimage(qtbot, viewer, camera_pair):
    clean, noisy = camera_pair
    ref = viewer.add_image(clean, name="clean")
    viewer.add_image(noisy, name="noisy")
    tv = classic_denoise(noisy, method="tv_chambolle")
    add_result(viewer, tv, "tv")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    panel.reference.value = ref
    panel.layers_widget.value = [viewer.layers["noisy"], viewer.layers["tv"]]
    rows = wait_table(qtbot, panel)
    assert [r["layer"] for r in rows] == ["noisy", "tv"]
    for row, arr in zip(rows, [noisy, tv], strict=True):
        assert row["PSNR (dB)"] == pytest.approx(peak_signal_noise_ratio(clean, arr), abs=1e-3)
        assert row["SSIM"] == pytest.approx(structural_similarity(clean, arr, data_range=255), abs=1e-4)
    assert rows[1]["processor"] == "classic_denoise" and "method=x" in rows[1]["parameters"]
    assert rows[0]["noise σ"] > rows[1]["noise σ"] > 0
    table = panel.table.to_dict("list") if hasattr(panel.table, "to_dict") else None
    assert panel.table.shape == (2, 11)
    assert table is None or table["layer"] == ["noisy", "tv"]


def test_sweep_and_crop_results_are_compared_on_the_matching_region(viewer, camera_pair):
    clean, noisy = camera_pair
    ref = viewer.add_image(clean, name="clean")
    crop = add_result(viewer, noisy[10:50, 20:70], "crop", target={"index": [], "origin": [10, 20]})
    np.testing.assert_array_equal(aligned_reference(crop, ref), clean[10:50, 20:70])
    sweep = add_result(viewer, np.stack([noisy, clean]), "sweep", sweep={"param": "sigma", "values": [0.1, 0.2]})
    rows = compare_rows([crop, sweep], ref)
    assert rows[0]["PSNR (dB)"] == pytest.approx(peak_signal_noise_ratio(clean[10:50, 20:70], noisy[10:50, 20:70]), abs=1e-3)
    assert [r["layer"] for r in rows[1:]] == ["sigma=0.1 · sweep", "sigma=0.2 · sweep"]
    assert rows[2]["PSNR (dB)"] == pytest.approx(float("inf")) or rows[2]["PSNR (dB)"] > 90


def test_grid_difference_and_csv(qtbot, viewer, camera_pair, tmp_path):
    clean, noisy = camera_pair
    ref = viewer.add_image(clean, name="clean")
    a = add_result(viewer, noisy, "a")
    b = add_result(viewer, clean, "b")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    panel.reference.value = ref
    panel.layers_widget.value = [a, b]
    panel.grid_view()
    assert viewer_grid(viewer).enabled
    assert a.contrast_limits == ref.contrast_limits
    diff = panel.difference()
    np.testing.assert_array_equal(diff.data, noisy.astype(np.float32) - clean.astype(np.float32))
    assert diff.colormap.name == "PiYG" and diff.contrast_limits[0] == -diff.contrast_limits[1]
    assert panel.export_csv(tmp_path / "t.csv") is None  # no table yet: nothing computed here
    wait_table(qtbot, panel)
    path = panel.export_csv(tmp_path / "t.csv")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["layer"] for r in rows] == ["a", "b"]
    assert float(rows[0]["PSNR (dB)"]) == pytest.approx(peak_signal_noise_ratio(clean, noisy), abs=1e-3)


def test_compare_denoisers_runs_each_on_the_same_view(qtbot, viewer, camera_pair):
    _, noisy = camera_pair
    src = viewer.add_image(noisy, name="cam")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    panel.source.value = src
    panel.denoisers.value = ["classic_denoise"]
    panel.compare_denoisers()
    qtbot.waitUntil(lambda: panel.worker is None and panel.table_job is None, timeout=60_000)
    names = [lay.name for lay in viewer.layers]
    assert names == ["cam", "cam [classic_denoise nl_means σ=auto]"]
    assert viewer_grid(viewer).enabled
    assert panel.rows and panel.rows[0]["processor"] == "classic_denoise"


def _recipe_result(viewer, source, method, sigma, name):
    from napari_restore.processors.registry import get_processor
    from napari_restore.widgets._layers import result_metadata

    params = get_processor("classic_denoise").validate_params({"method": method, "sigma": sigma})
    data = classic_denoise(np.asarray(source.data), **params)
    meta = result_metadata(get_processor("classic_denoise"), params, source.name, None, 0.0,
                           source_dtype=str(source.data.dtype))
    return viewer.add_image(data, name=name, metadata=meta)


def test_noref_columns_against_the_source_without_a_reference(qtbot, viewer, camera_pair):
    from napari_restore import Recipe, noref
    from napari_restore.calibration import self_supervised_loss
    from napari_restore.widgets.compare import NOREF_COLUMNS

    clean, noisy = camera_pair
    src = viewer.add_image(noisy, name="noisy")
    good = _recipe_result(viewer, src, "tv_chambolle", 25.0, "tv25")
    smooth = _recipe_result(viewer, src, "tv_chambolle", 150.0, "tv150")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    panel.reference.value = None
    panel.layers_widget.value = [good, smooth]
    rows = wait_table(qtbot, panel)
    assert [r["layer"] for r in rows] == ["tv25", "tv150"]
    for row, lay in zip(rows, [good, smooth], strict=True):
        assert row["PSNR (dB)"] == "" and row["SSIM"] == ""  # no reference: no PSNR/SSIM
        m = noref.noref_metrics(noisy, lay.data)
        assert row["structure"] == pytest.approx(m.structure, abs=1e-4)
        assert row["lag-1 ρ"] == pytest.approx(m.lag1, abs=1e-4)
        assert row["residual σ"] == pytest.approx(m.residual_std, rel=1e-3)
        loss = self_supervised_loss(noisy, Recipe.from_dict(lay.metadata["napari_restore"]))
        assert row["SS loss"] == pytest.approx(loss, rel=1e-3)
    assert panel.table.native.isColumnHidden(1)  # PSNR: empty without a reference, hidden
    # over-smoothing removes structure: a higher structure score and a larger residual
    assert rows[1]["structure"] > rows[0]["structure"]
    assert rows[1]["residual σ"] > rows[0]["residual σ"]
    assert all(c in panel.table.to_dict("list") for c in NOREF_COLUMNS) \
        if hasattr(panel.table, "to_dict") else panel.table.shape == (2, 11)
    # a reference chosen: PSNR/SSIM come back beside the no-reference columns
    panel.reference.value = viewer.add_image(clean, name="clean")
    rows = wait_table(qtbot, panel)
    assert rows[0]["PSNR (dB)"] == pytest.approx(peak_signal_noise_ratio(clean, good.data), abs=1e-3)
    assert not panel.table.native.isColumnHidden(1)
    assert rows[0]["structure"] == pytest.approx(noref.structure_score(noisy, good.data), abs=1e-4)


def test_residual_layer_is_input_minus_result(viewer, camera_pair):
    _, noisy = camera_pair
    src = viewer.add_image(noisy, name="noisy")
    res = _recipe_result(viewer, src, "tv_chambolle", 25.0, "tv25")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    panel.layers_widget.value = [res]
    n = len(viewer.layers)
    panel.residual_button.native.click()
    assert len(viewer.layers) == n + 1
    resid = viewer.layers[-1]
    assert resid.name == "residual noisy − tv25"
    np.testing.assert_allclose(resid.data, noisy.astype(np.float64) - res.data.astype(np.float64),
                               atol=1e-3)
    assert resid.colormap.name == "PiYG"


def test_table_is_computed_off_the_main_thread_and_stop_keeps_the_previous_table(
        qtbot, viewer, camera_pair, monkeypatch):
    import threading

    from napari_restore.widgets import compare

    _, noisy = camera_pair
    a = add_result(viewer, noisy, "a")
    b = add_result(viewer, noisy[::-1].copy(), "b")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    panel.layers_widget.value = [a, b]
    threads = []
    real = compare._item_rows

    def recording(item):
        threads.append(threading.current_thread())
        return real(item)

    monkeypatch.setattr(compare, "_item_rows", recording)
    assert [r["layer"] for r in wait_table(qtbot, panel)] == ["a", "b"]
    assert len(threads) == 2 and threading.main_thread() not in threads
    before = panel.table.to_dict("list")["layer"] if hasattr(panel.table, "to_dict") else None

    release = threading.Event()

    def slow(item):  # held until the test has pressed Stop, however loaded the machine
        release.wait(30)
        return real(item)

    monkeypatch.setattr(compare, "_item_rows", slow)
    panel.layers_widget.value = [b]  # a different table, stopped before it is shown
    panel.update_button.native.click()
    assert panel.update_button.text == "Stop" and panel.table_job is not None
    panel.update_button.native.click()  # Stop
    release.set()
    qtbot.waitUntil(lambda: panel.table_job is None, timeout=30_000)
    assert panel.update_button.text == "Update table"
    assert [r["layer"] for r in panel.rows] == ["a", "b"]  # the previous table is kept
    assert before is None or panel.table.to_dict("list")["layer"] == before
    assert panel.status.value.startswith("table stopped")


def test_table_error_is_reported_and_the_panel_keeps_working(qtbot, viewer, camera_pair,
                                                            monkeypatch):
    from napari_restore.widgets import compare

    _, noisy = camera_pair
    a = add_result(viewer, noisy, "a")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    panel.layers_widget.value = [a]
    real = compare._item_rows

    def broken(item):
        raise ValueError("bad plane")

    monkeypatch.setattr(compare, "_item_rows", broken)
    wait_table(qtbot, panel)
    assert panel.rows == [] and "bad plane" in panel.status.value
    assert panel.update_button.text == "Update table"
    monkeypatch.setattr(compare, "_item_rows", real)
    assert [r["layer"] for r in wait_table(qtbot, panel)] == ["a"]


def test_cells_show_significant_digits_without_e_notation(qtbot, viewer, camera_pair):
    from napari_restore.widgets.compare import _cell_text

    assert _cell_text(-0.0777) == "-0.0777"
    assert _cell_text(0.001234567) == "0.001235"
    assert _cell_text(31.23456) == "31.23"
    assert _cell_text(12345.6) == "12346"
    assert _cell_text(0.5) == "0.5" and _cell_text(0.0) == "0" and _cell_text(3) == "3"
    assert _cell_text(1.5e-5) == "1.500e-05" and _cell_text("tv") == "tv"
    _, noisy = camera_pair
    src = viewer.add_image(noisy, name="noisy")
    res = _recipe_result(viewer, src, "tv_chambolle", 25.0, "tv25")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    panel.layers_widget.value = [res]
    rows = wait_table(qtbot, panel)
    view = panel.table.native
    for c, name in enumerate(compare_columns()):
        text = view.item(0, c).text()
        assert "e-0" not in text and "e+0" not in text, (name, text)
        if isinstance(rows[0][name], float):
            assert float(text) == pytest.approx(rows[0][name], rel=1e-3, abs=1e-6)


def compare_columns():
    from napari_restore.widgets.compare import COLUMNS

    return COLUMNS
