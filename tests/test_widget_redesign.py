"""Issue 18 (the widget layer redesigned): sections, words, readable numbers, the Estimate σ
label, film grain's layer choice and luma regrain, the compare panel, and closing mid-run."""

from __future__ import annotations

import gc
import re
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")
from magicgui.widgets import Container, Label
from magicgui.widgets.bases import ButtonWidget

from napari_restore.processors import REGISTRY
from napari_restore.processors.registry import Param
from napari_restore.widgets import ProcessorPanel
from napari_restore.widgets._plots import PLOT_HEIGHT
from napari_restore.widgets._section import Section
from napari_restore.widgets.panel import is_basic

PANELS = {
    "classic_denoise": "Classic denoise", "bm3d_denoise": "BM3D denoise",
    "bm3d_deblur": "BM3D deblur", "bm4d_denoise": "BM4D denoise",
    "lb_clahe": "Learning-based CLAHE", "deep_image_prior": "Deep Image Prior",
    "restore_film_grain": "Film grain", "timelapse_denoise": "Time-lapse denoise",
}


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _controls(container):
    """``(control, label shown)`` for every magicgui control inside ``container``
    (recursing into sub-containers; a file picker counts as one control)."""
    from magicgui.widgets import FileEdit

    for w in container:
        if isinstance(w, Container) and not isinstance(w, FileEdit):
            yield from _controls(w)
        else:
            yield w, bool(container.labels) and not isinstance(w, ButtonWidget)


#: Keyword-like labels the issue found in the panels.
KEYWORD_LABELS = {"it", "ch", "dip note", "psfσ"}


def _slow(plane, *, delay):
    time.sleep(delay)
    return 1.0 - plane


@pytest.mark.parametrize("name", sorted(PANELS))
def test_advanced_parameters_fold_away_and_every_control_has_words_and_a_tooltip(
        viewer, name):
    viewer.add_image(np.zeros((4, 32, 32), np.float32), name="stack")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", PANELS[name])
    spec = REGISTRY[name]
    advanced = [p.name for p in spec.params if not is_basic(p)]
    if advanced:  # in the collapsible section, collapsed by default
        assert isinstance(panel.advanced, Section) and not panel.advanced.expanded
        assert sorted(w.name for w in panel.advanced) == sorted(advanced)
        panel.advanced.expanded = True
        assert panel.advanced.expanded
    for w, labelled in _controls(panel):
        texts = [w.text] if isinstance(w, ButtonWidget) else []
        if labelled:
            texts.append(w.label)
        for text in texts:  # words, not keyword names
            assert "_" not in text and text not in KEYWORD_LABELS, (name, w.name, text)
        if not isinstance(w, Label):
            assert (w.tooltip or "").strip(), (name, w.name)
    assert panel.run_button.tooltip and "Stop" in panel.run_button.tooltip


@pytest.mark.parametrize("name", ["deep_image_prior", "restore_film_grain"])
def test_plots_have_a_fixed_height(viewer, name):
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", PANELS[name])
    canvas = panel.extras[name].canvas
    assert canvas.minimumHeight() == canvas.maximumHeight() == PLOT_HEIGHT


def test_add_section_goes_into_the_advanced_section_after_one_of_its_widgets(viewer):
    from magicgui.widgets import CheckBox

    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    extra = CheckBox(text="an extra", name="my_extra", tooltip="x")
    panel.add_section(extra, after=panel.param_widgets["patch_size"])
    names = [w.name for w in panel.advanced]
    assert names.index("my_extra") == names.index("patch_size") + 1
    extra2 = CheckBox(text="another", name="my_extra2", tooltip="y")
    panel.add_section(extra2, after="my_extra")  # by name, inside a section too
    names = [w.name for w in panel.advanced]
    assert names.index("my_extra2") == names.index("my_extra") + 1
    with pytest.raises(KeyError, match="no widget named"):
        panel.add_section(CheckBox(name="z"), after="no_such_widget")


def test_estimate_label_follows_the_chosen_layer(qtbot, viewer):
    rng = np.random.default_rng(3)
    quiet = viewer.add_image(np.clip(0.5 + rng.normal(0, 0.02, (64, 64)), 0, 1)
                             .astype(np.float32), name="quiet")
    loud = viewer.add_image(np.clip(0.5 + rng.normal(0, 0.15, (64, 64)), 0, 1)
                            .astype(np.float32), name="loud")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "BM3D denoise")
    panel.set_params({"noise_model": "white"})
    label = panel.extras["bm3d_denoise"].estimate_label

    def sigma_shown():
        m = re.search(r"σ ≈ ([0-9.e-]+)", label.value)
        return float(m.group(1)) if m else None

    panel.layer_widget.value = quiet
    qtbot.waitUntil(lambda: label.value.startswith("quiet: σ ≈"), timeout=10_000)
    assert sigma_shown() == pytest.approx(0.02, rel=0.25)
    panel.layer_widget.value = loud
    qtbot.waitUntil(lambda: label.value.startswith("loud: σ ≈"), timeout=10_000)
    assert sigma_shown() == pytest.approx(0.15, rel=0.25)
    assert panel.param_widgets["sigma"].value is None  # the label never changes σ itself


def test_colour_profile_regrains_a_grey_layer_through_its_luma_grain(qtbot, viewer):
    from napari_restore._sample_data import film_grain
    from napari_restore.processors.grain_analysis import analyze_grain

    clean, grainy = film_grain(grain_sigma_px=1.5)
    grainy = grainy[:160, :160]
    grey = np.rint(clean[:160, :160].mean(axis=-1)).astype(np.uint8)
    src = viewer.add_image(grainy, name="grainy rgb", rgb=True)
    target = viewer.add_image(grey, name="clean grey")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Film grain")
    extras = panel.extras["restore_film_grain"]
    extras.auto.value = False
    panel.layer_widget.value = src
    extras.analyse()
    qtbot.waitUntil(lambda: extras.worker is None and extras.profile is not None,
                    timeout=30_000)
    prof = extras.profile
    assert prof.channels == 3
    assert "grey layers get its luma grain" in extras.summary.value  # says what will happen
    extras.synth_target.value = target
    out = extras.synthesise()
    assert out is not None and out.data.shape == grey.shape and out.data.dtype == np.uint8
    added = out.data.astype(np.float64) - grey
    expected = analyze_grain(grainy, channel_axis=-1)  # same measurement, no panel
    luma = np.sqrt(np.mean(np.square(expected.nlf_luma))) * 255
    assert 0.5 * luma < added.std() < 1.6 * luma, (added.std(), luma)
    # and a greyscale profile regrains an RGB layer (the same grain in every channel)
    panel.layer_widget.value = target
    rgb_target = viewer.add_image(clean[:160, :160], name="clean rgb", rgb=True)
    extras.show_profile(analyze_grain(grainy.mean(axis=-1).astype(np.float32) / 255), "grey")
    extras.synth_target.value = rgb_target
    out2 = extras.synthesise()
    assert out2 is not None and out2.data.shape == rgb_target.data.shape
    diff = out2.data.astype(np.float64) - clean[:160, :160]
    unclipped = (out2.data > 0).all(-1) & (out2.data < 255).all(-1)
    assert np.abs(diff[..., 0] - diff[..., 1])[unclipped].max() <= 1.0  # monochrome grain


def test_compare_source_default_parameters_shown_and_cells_readable(qtbot, viewer, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("NAPARI_RESTORE_CONFIG_DIR", str(tmp_path))
    from napari_restore.settings import save_params

    clean = np.zeros((48, 48), np.float32)
    viewer.add_image(clean, name="camera (clean)", visible=False)
    viewer.add_image(clean + 0.1, name="camera (noisy)")
    viewer.layers.selection.clear()
    _, compare = viewer.window.add_plugin_dock_widget("napari-restore", "Compare results")
    assert compare.source.value is viewer.layers["camera (noisy)"]  # not the hidden clean one
    save_params("classic_denoise", {"method": "wavelet", "sigma": 0.11000000000000001})
    compare.denoisers.value = ["classic_denoise"]
    text = compare.params_label.value
    assert "Classic denoise: method=wavelet, sigma=0.11" in text, text
    assert "0.1100000" not in text
    # the table: a sweep's rows start with the value, and every cell has its full text as tooltip
    from napari_restore.widgets._layers import META_KEY

    data = np.stack([clean + 0.01, clean + 0.02])
    viewer.add_image(data, name="camera (noisy) [classic_denoise sweep σ=0.01…0.02] " * 3,
                     metadata={META_KEY: {"processor": "classic_denoise",
                                          "params": {"sigma": 0.01},
                                          "sweep": {"param": "sigma",
                                                    "values": [0.01, 0.020000000000000004]}}})
    compare.layers_widget.value = [viewer.layers[-1]]
    compare.reference.value = viewer.layers["camera (clean)"]
    compare.update_table()
    qtbot.waitUntil(lambda: compare.table_job is None, timeout=30_000)
    rows = compare.rows
    assert [r["layer"].split(" · ")[0] for r in rows] == ["sigma=0.01", "sigma=0.02"]
    view = compare.table.native
    assert view.wordWrap()
    assert view.item(0, 0).toolTip() == rows[0]["layer"]


def test_closing_the_viewer_mid_run_is_silent_and_stops_the_job(qtbot, make_napari_viewer,
                                                              temp_processor, capfd):
    spec = temp_processor("close_slow", _slow,
                          (Param("delay", float, 0.2, "seconds per plane", min=0, max=5),))
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((30, 16, 16), np.float32), name="stack")
    panel = ProcessorPanel(viewer, spec)
    viewer.window.add_dock_widget(panel, name="slow")
    assert panel.start() is not None
    job = panel.job
    qtbot.waitUntil(lambda: job.fraction is not None, timeout=10_000)  # running, mid-stack
    n_layers = len(viewer.layers)
    viewer.window.remove_dock_widget(panel.native.parent() or panel.native)
    panel.native.deleteLater()
    qtbot.wait(50)
    gc.collect()
    assert job.cancel.is_set()  # closing the panel stops the job
    qtbot.waitUntil(lambda: not job.running, timeout=5_000)
    assert job.outcome == "stopped"
    assert len(viewer.layers) == n_layers  # nothing added after the panel went away
    qtbot.wait(300)  # late signals (progress, finished) reach nothing
    err = capfd.readouterr().err
    assert "Traceback" not in err and "wrapped C/C++ object" not in err, err


@pytest.mark.parametrize("name", ["Film grain", "BM3D denoise"])
def test_closing_the_whole_viewer_mid_run_is_silent(qtbot, make_napari_viewer, capfd, name):
    """Film grain (analysis worker, plots) and BM3D (a worker process, the σ label job)."""
    from napari_restore import _isolate

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(np.clip(0.5 + rng.normal(0, 0.1, (192, 192)), 0, 1).astype(np.float32),
                     name="noisy")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", name)
    assert panel.start() is not None
    job = panel.job
    qtbot.wait(300)
    viewer.close()
    qtbot.waitUntil(lambda: not job.running, timeout=10_000)
    assert job.cancel.is_set()
    qtbot.wait(300)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "wrapped C/C++ object" not in err, err
    qtbot.waitUntil(lambda: not _isolate._busy, timeout=5_000)  # no worker left computing


def test_the_documented_example_extra_works_through_the_hooks(qtbot, viewer):
    """docs/extending-panels.md: its example extra, run as written."""
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "extending-panels.md").read_text("utf-8")
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "extending-panels.md", "exec"), namespace)  # noqa: S102
    rng = np.random.default_rng(0)
    noisy = np.clip(0.5 + rng.normal(0, 0.1, (48, 48)), 0, 1).astype(np.float32)
    src = viewer.add_image(noisy, name="noisy")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    section = namespace["build"](panel)
    assert isinstance(section, Section) and not section.expanded
    assert [w.name for w in panel][-1] != "residual"  # placed under the status line
    panel.layer_widget.value = src
    panel.set_params({"method": "wavelet"})
    section.residual_on.value = True
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=30_000)
    result, residual = viewer.layers[-2], viewer.layers[-1]
    assert residual.name == f"{result.name} residual"
    np.testing.assert_allclose(residual.data, noisy - result.data, atol=1e-6)
    assert section.residual_seen.value == "noisy"
    viewer.layers.remove(src)  # the viewer callback
    assert section.residual_seen.value == ""
    tiny = viewer.add_image(np.zeros((8, 1), np.float32), name="tiny")
    panel.layer_widget.value = tiny
    with pytest.raises(ValueError, match="at least 2 pixels"):
        panel.run_spec()
    assert panel.start() is None and panel.state == "idle"  # refused by the run hook


def test_a_script_exiting_while_an_unreferenced_job_runs_ends_cleanly(tmp_path):
    """A job nobody keeps (a background measurement) and a script that ends mid-job: no
    'wrapped C/C++ object ... deleted', no abort."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "exit_mid_job.py"
    script.write_text(textwrap.dedent("""
        import gc, time
        from qtpy.QtWidgets import QApplication
        app = QApplication([])
        from napari_restore.widgets._runner import start_job

        def slow(cancel):
            for _ in range(40):       # up to 2 s, stops early when asked
                if cancel.is_set():
                    return "stopped"
                time.sleep(0.05)
            return "done"

        start_job(slow, "unreferenced", activity=False)   # the Job is dropped at once
        gc.collect()
        app.processEvents()
        time.sleep(0.2)
        print("exiting")
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=False,
                          env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "exiting" in proc.stdout
    assert "wrapped C/C++ object" not in proc.stderr and "Traceback" not in proc.stderr, \
        proc.stderr[-2000:]
