"""The installed package carries its manifest and sample data, and the manifest is valid."""

from __future__ import annotations

import subprocess
import sys
from importlib.resources import files

import napari_miro


def test_manifest_and_samples_are_inside_the_installed_package():
    package = files("napari_miro")
    assert (package / "napari.yaml").is_file()
    samples = [item.name for item in (package / "sample_data").iterdir() if item.name.endswith(".csv")]
    assert len(samples) >= 4


def test_npe2_validates_the_installed_plugin():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-miro")
    assert manifest.name == "napari-miro"
    assert {reader.command for reader in manifest.contributions.readers} == {"napari-miro.get_reader"}
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-miro"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout.lower()


def test_core_imports_neither_qt_nor_napari():
    code = (
        "import sys, napari_miro, napari_miro.io, napari_miro.simulate; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt6', 'PySide6', 'PyQt5')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert napari_miro.__version__
