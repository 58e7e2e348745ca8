from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_restore import Recipe, apply_recipe
from napari_restore.cli import has_display, main

EXE = Path(sys.executable).with_name("napari-restore")


def test_info_prints_versions():
    out = subprocess.run([str(EXE), "info"], capture_output=True, text=True, check=True).stdout
    for word in ("napari", "numpy", "opencv", "bm3d", "bm4d", "torch", "torch device"):
        assert word in out
    assert "cpu" in out or "cuda" in out or "mps" in out


def test_headless_demo_without_display(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([str(EXE), "demo", "-o", str(tmp_path / "out")], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "headless" in out.stdout and str((tmp_path / "out").resolve()) in out.stdout
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    for name in ("side_by_side.png", "camera_nl_means.tif", "camera_bm3d.tif",
                 "coffee_denoised.tif", "coffee_regrained.tif", "coffee_lb_clahe.tif"):
        assert name in files
    res = tifffile.imread(tmp_path / "out" / "camera_bm3d.tif")
    assert res.dtype == np.uint8 and res.shape == (512, 512)
    report = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    for words in ("non-local means", "BM3D, σ auto =", "grain removed", "regrained",
                  "LB-CLAHE, predicted: clip"):
        assert words in report, report
    lines = {line.split(":")[0]: line for line in report.splitlines()}
    psnr = {k: float(v.split("PSNR ")[1].split(" dB")[0]) for k, v in lines.items()
            if "PSNR" in v}
    bm3d = next(v for k, v in psnr.items() if k.startswith("BM3D"))
    assert bm3d > psnr["noisy camera (σ = 25)"] + 6  # the tiles carry real measurements
    total = float(report.splitlines()[-1].split()[1])
    assert total < 120, report  # the issue: under 2 minutes


def test_has_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        assert not has_display()
    monkeypatch.setenv("DISPLAY", ":99")
    assert has_display()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert not has_display()


def test_apply_recipe_cli(tmp_path, camera_pair, capsys):
    _, noisy = camera_pair
    recipe = Recipe("classic_denoise", {"method": "wavelet"})
    recipe.save(tmp_path / "r.json")
    np.save(tmp_path / "a.npy", noisy)
    tifffile.imwrite(tmp_path / "b.tif", noisy[::-1])
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    code = main(["apply", str(tmp_path / "r.json"), str(tmp_path / "a.npy"), str(tmp_path / "bad.tif"),
                 str(tmp_path / "b.tif"), "-o", str(tmp_path / "out")])
    assert code == 1  # one failure
    err = capsys.readouterr().err
    assert "FAILED" in err and "bad.tif" in err and "2 done, 0 skipped, 1 failed" in err
    a = np.load(tmp_path / "out" / "a.npy")
    np.testing.assert_array_equal(a, apply_recipe(recipe, noisy))
    b = tifffile.imread(tmp_path / "out" / "b.tif")
    np.testing.assert_array_equal(b, apply_recipe(recipe, noisy[::-1]))
    assert not (tmp_path / "out" / "bad.tif").exists()
    with tifffile.TiffFile(tmp_path / "out" / "b.tif") as tf:
        assert tf.shaped_metadata[0]["napari_restore"]["recipe"]["processor"] == "classic_denoise"
    side = json.loads((tmp_path / "out" / "b.tif.json").read_text())
    assert side["recipe"]["params"]["method"] == "wavelet" and "numpy" in side["versions"]
    # existing outputs are skipped without --overwrite, replaced with it
    before = (tmp_path / "out" / "a.npy").stat().st_mtime_ns
    assert main(["apply", str(tmp_path / "r.json"), str(tmp_path / "a.npy"), "-o", str(tmp_path / "out")]) == 0
    assert "skipped" in capsys.readouterr().out
    assert (tmp_path / "out" / "a.npy").stat().st_mtime_ns == before
    assert main(["apply", str(tmp_path / "r.json"), str(tmp_path / "a.npy"), "-o", str(tmp_path / "out"),
                 "--overwrite"]) == 0
    assert (tmp_path / "out" / "a.npy").stat().st_mtime_ns != before


@pytest.mark.parametrize(
    "recipe,words",
    [
        ({"processor": "nope"}, "unknown processor"),
        ({"processor": "classic_denoise", "params": {"strength": 300.0}},
         "strength=300 is out of range"),
    ],
)
def test_apply_rejects_bad_recipe(tmp_path, capsys, recipe, words):
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    assert main(["apply", str(tmp_path / "r.json"), "x.npy", "-o", str(tmp_path / "o")]) == 2
    assert words in capsys.readouterr().err


def test_apply_rejects_output_that_is_a_file(tmp_path, capsys):
    Recipe("classic_denoise", {}).save(tmp_path / "r.json")
    (tmp_path / "o").write_text("I am a file")
    assert main(["apply", str(tmp_path / "r.json"), "x.npy", "-o", str(tmp_path / "o")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_apply_help_states_the_naming_and_overwrite_rules():
    out = subprocess.run([str(EXE), "apply", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for words in ("mirrors the input's path", "OUTDIR/a/x.tif", "are refused before anything",
                  "only outputs this tool wrote", "never replaced or deleted", "--workers N",
                  "crash inside a library"):
        assert words in " ".join(out.split()), words
