"""npe2 sample data: the small simulated ThunderSTORM files shipped in ``napari_miro/sample_data``.

Each file keeps its ground truth (``gt_cluster``, ``gt_class``, ``gt_subcluster``) as columns, so that demos can
show accuracy. They are made by ``scripts/make_sample_data.py``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from napari_miro.io import read_localizations

from .layers import points_layer_data

SAMPLES = {
    "nanoclusters": "nanoclusters_blinking.csv",
    "rings": "rings.csv",
    "npc": "npc_two_scales.csv",
    "mixture": "spots_and_rings.csv",
}


def sample_path(key: str) -> Path:
    """Path of a bundled sample file (inside the installed package)."""
    return Path(str(files("napari_miro") / "sample_data" / SAMPLES[key]))


def _load(key: str) -> list:
    path = sample_path(key)
    return [points_layer_data(read_localizations(path), path.stem)]


def nanoclusters() -> list:
    """Gaussian nanoclusters with multiple blinking (like benchmark scenario 2 with blinking)."""
    return _load("nanoclusters")


def rings() -> list:
    """Ring-shaped clusters (radius 250 nm) in a 3.2 x 3.2 um field."""
    return _load("rings")


def npc() -> list:
    """NPC-like pores with 8 corners: two scales (pore and corner) in the ground truth."""
    return _load("npc")


def mixture() -> list:
    """Spots and rings in one field, each structure labelled with its shape in ``class``."""
    return _load("mixture")
