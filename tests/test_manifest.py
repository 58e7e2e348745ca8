"""npe2 manifest: it validates, every command resolves, and every processor has a panel."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
from npe2 import PluginManifest

import napari_restore
from napari_restore.processors import REGISTRY

MANIFEST = Path(napari_restore.__file__).parent / "napari.yaml"


@pytest.fixture(scope="module")
def manifest():
    return PluginManifest.from_file(MANIFEST)


def test_manifest_validates_via_npe2_cli():
    exe = Path(sys.executable).with_name("npe2")
    out = subprocess.run([str(exe), "validate", "napari-restore"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_manifest_is_installed_entry_point(manifest):
    installed = PluginManifest.from_distribution("napari-restore")
    assert installed.name == manifest.name == "napari-restore"


def test_every_command_imports(manifest):
    manifest.validate_imports()
    for cmd in manifest.contributions.commands:
        module, attr = cmd.python_name.split(":")
        assert callable(getattr(import_module(module), attr)), cmd.id


def test_every_processor_has_a_widget_and_menu_entry(manifest):
    widget_cmds = {w.command for w in manifest.contributions.widgets}
    menu = manifest.contributions.menus
    submenu_cmds = {item.command for item in menu["napari-restore.restore"]}
    assert any(getattr(i, "submenu", None) == "napari-restore.restore" for i in menu["napari/layers/filter"])
    assert {s.id for s in manifest.contributions.submenus} == {"napari-restore.restore"}
    for name in REGISTRY:
        cmd = f"napari-restore.{name}_panel"
        assert cmd in widget_cmds, name
        assert cmd in submenu_cmds, name


def test_sample_data_commands_return_layer_data(manifest):
    for sample in manifest.contributions.sample_data:
        cmd = next(c for c in manifest.contributions.commands if c.id == sample.command)
        module, attr = cmd.python_name.split(":")
        layers = getattr(import_module(module), attr)()
        assert len(layers) == 2
        (clean, ck, _), (noisy, nk, kind) = layers
        assert kind == "image" and clean.shape == noisy.shape
        assert "clean" in ck["name"] and "noisy" in nk["name"]
