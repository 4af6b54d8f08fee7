"""The installed package carries its manifest and sample data, and the manifest is valid."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

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


def _core_modules() -> list[str]:
    """Every module of the package outside napari_miro._napari."""
    root = Path(napari_miro.__file__).parent
    return sorted(f"napari_miro.{path.stem}" for path in root.glob("*.py") if path.stem != "__init__")


def test_every_core_module_imports_neither_qt_nor_napari():
    modules = _core_modules()
    assert {"napari_miro.estimator", "napari_miro.training", "napari_miro.inference", "napari_miro.cli"} <= set(modules)
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt6', 'PySide6', 'PyQt5')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _imports_of(path: Path) -> set[str]:
    """The napari_miro modules a source file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("napari_miro"):
            found.add(node.module.split(".")[1] if node.module != "napari_miro" else "")
            if node.module == "napari_miro":
                found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("napari_miro.")}
    return found - {""}


def test_core_imports_go_one_way():
    """No import cycle between core modules, counting imports inside functions."""
    root = Path(napari_miro.__file__).parent
    names = {path.stem for path in root.glob("*.py")} - {"__init__"}
    graph = {name: _imports_of(root / f"{name}.py") & names for name in names}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for imported in graph[name]:
            visit(imported, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_importing_the_package_does_not_import_torch():
    code = "import sys, napari_miro; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert napari_miro.__version__ and "MIROClusterer" in napari_miro.__all__
    assert napari_miro.MIROClusterer.__module__ == "napari_miro.estimator"
