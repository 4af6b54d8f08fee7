"""Shared test fixtures: where ../shared/data lives, and a headless Qt platform."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MIRO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (the benchmark and real files); skipped with a reason where it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set MIRO_SHARED_DATA); CI has it at ../shared")
    return SHARED_DATA


@pytest.fixture(scope="session")
def rings_field():
    """A simulated field of 12 rings (radius 250 nm) with ground truth."""
    from napari_miro import simulate

    return simulate.rings(n_clusters=12, fov_nm=3000, seed=1)


@pytest.fixture(scope="session")
def trained_rings(rings_field):
    """A small MIRO model trained briefly (~25 s on 2 CPU cores) on the rings of one simulated field."""
    from dataclasses import replace

    import torch

    from napari_miro.annotations import AnnotatedData
    from napari_miro.estimator import MIROClusterer
    from napari_miro.recipe import PRESETS

    torch.set_num_threads(2)
    data = AnnotatedData.from_labels(rings_field[["x", "y"]].to_numpy(), rings_field["cluster"].to_numpy())
    settings = replace(
        PRESETS["compact"],
        base_model=None,  # from scratch: the thresholds of the tests using it were set for it
        passes=1,
        tuning_objective="ari",
        copy_jitter=0.25,
        hidden=32,
        recurrent_steps=8,
        n_fields=32,
        n_validation_fields=4,
        n_tuning_fields=2,
        optimizer_steps=400,  # enough to beat the DBSCAN baseline tuned with the larger-min_samples tie-break
        validate_every=50,
        seed=0,
    )
    clusterer = MIROClusterer(recipe=settings, device="cpu").fit(data)
    trained, result = clusterer.model_, clusterer.training_
    return trained, result


@pytest.fixture
def small_settings():
    """A factory of tiny training recipes (hidden 16, 3 recurrent steps, 40 optimizer steps, from scratch)."""
    from dataclasses import replace

    from napari_miro.recipe import PRESETS

    def make(**changes):
        small = {
            "hidden": 16,
            "recurrent_steps": 3,
            "n_fields": 6,
            "n_validation_fields": 2,
            "n_tuning_fields": 2,
            "optimizer_steps": 40,
            "validate_every": 5,
            "base_model": None,
            "background": "uniform",
        }
        return replace(PRESETS["compact"], **{**small, **changes})

    return make


@pytest.fixture
def ring_data():
    """A factory of annotated data: one ring of a simulated field of four."""
    from napari_miro import simulate
    from napari_miro.annotations import AnnotatedData

    def make():
        df = simulate.rings(n_clusters=4, fov_nm=2000, seed=4)
        return AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1])

    return make
