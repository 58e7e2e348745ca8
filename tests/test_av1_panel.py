"""The Film grain panel's **Save AV1 table…** button, and AV1 tables as a grain source."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import GrainProfile
from napari_restore.processors import grain_av1 as A

from test_av1_table import profile


def test_save_helper_without_a_viewer(tmp_path):
    msg = A.save_av1_table(profile(), tmp_path / "grain")
    assert msg == f"AV1 film-grain table saved to {tmp_path / 'grain.tbl'}"
    assert A.read_table(tmp_path / "grain.tbl").first().scaling_points_y
    msg = A.save_av1_table(profile(sigma=0.25), tmp_path / "big.tbl", fit=True)
    assert "clipped to the largest scaling" in msg  # what the export changed is said
    with pytest.raises(ValueError, match="analyse a grainy layer first"):
        A.save_av1_table(None, tmp_path / "x.tbl")
    with pytest.raises(ValueError, match="choose a file name"):
        A.save_av1_table(profile(), tmp_path)


@pytest.mark.gui
def test_panel_button_saves_an_av1_table(make_napari_viewer, tmp_path, monkeypatch):
    import napari_restore.widgets.grain_extras as ge

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(np.clip(0.5 + 0.02 * rng.standard_normal((64, 64)), 0, 1).astype(np.float32),
                     name="clean")
    _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "Film grain")
    found = getattr(panel, "extras", None)  # the panel's extras by processor (or older API)
    extras = found["restore_film_grain"] if isinstance(found, dict) else panel.grain_extras
    extras.auto.value = False
    shown = []
    monkeypatch.setattr(ge, "show_info", lambda m: shown.append(("info", m)))
    monkeypatch.setattr(ge, "show_error", lambda m: shown.append(("error", m)))
    extras.profile = None
    assert extras.save_av1_table(tmp_path / "none.tbl") is None
    assert shown[-1][0] == "error" and "analyse a grainy layer first" in shown[-1][1]
    p = profile(sigma=0.012)
    extras.show_profile(p, "test")
    msg = extras.save_av1_table(tmp_path / "g.tbl")
    assert shown[-1] == ("info", f"Film grain: {msg}")
    back = GrainProfile.from_av1_table(tmp_path / "g.tbl")
    assert np.allclose(back.nlf_sigma[0], p.nlf_sigma[0], rtol=0.01)
    # the button itself asks for a file name, then saves
    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "clicked.tbl"), "")))
    assert "save_av1_table" in [w.name for w in extras.sections["grain_save"]]
    extras.av1_button.changed.emit(True)
    assert (tmp_path / "clicked.tbl").read_text() == (tmp_path / "g.tbl").read_text()
    # a cancelled dialog saves nothing
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: ("", "")))
    n = len(shown)
    assert extras.save_av1_table() is None and len(shown) == n
    # an AV1 table is a grain source for Synthesise
    grey = A.format_table(A.parse_table((tmp_path / "g.tbl").read_text()))
    (tmp_path / "grey.tbl").write_text(grey)
    extras.synth_target.value = viewer.layers["clean"]
    extras.synth_source.value = "file"
    extras.load_file.value = tmp_path / "grey.tbl"
    out = extras.synthesise()
    assert out is not None and out.data.shape == (64, 64)
    assert not np.array_equal(out.data, viewer.layers["clean"].data)
