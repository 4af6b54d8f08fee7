"""The model file: round trip, and hostile files refused without running them."""

from __future__ import annotations

import json
import os
import pickle
import stat

import numpy as np
import pytest
import torch

from napari_miro.inference import cluster_points
from napari_miro.model import MIRO, MIROConfig
from napari_miro.model_file import ModelFileError, TrainedMIRO


def test_model_file_round_trip(trained_rings, rings_field, tmp_path):
    trained, _ = trained_rings
    path = trained.save(tmp_path / "rings.safetensors")
    loaded = TrainedMIRO.load(path)
    assert loaded.settings == trained.settings
    assert loaded.model.config == trained.model.config
    for a, b in zip(trained.model.state_dict().values(), loaded.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a.cpu(), b)
    positions = rings_field[["x", "y"]].to_numpy()
    np.testing.assert_array_equal(cluster_points(trained, positions).labels, cluster_points(loaded, positions).labels)
    assert loaded.settings.training["optimizer_steps"] > 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_model_files_are_readable_by_others_as_the_umask_says(trained_rings, tmp_path):
    previous = os.umask(0o022)
    try:
        path = trained_rings[0].save(tmp_path / "shared.safetensors")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_pickle_crafted_to_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ModelFileError, match="not a napari-miro model file"):
        TrainedMIRO.load(path)
    assert not marker.exists()


def test_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ModelFileError, match="no such model file"):
        TrainedMIRO.load(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ModelFileError, match="not a napari-miro model file"):
        TrainedMIRO.load(corrupt)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a napari-miro model"):
        TrainedMIRO.load(foreign)
    damaged = tmp_path / "damaged.safetensors"
    model = MIRO(MIROConfig(hidden=8, steps=2))
    metadata = {
        "format": "napari-miro-model",
        "format_version": "1",
        "network": json.dumps({"hidden": 16, "steps": 2}),
        "settings": json.dumps({"delta_nm": 100.0}),
    }
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(damaged), metadata=metadata)
    with pytest.raises(ModelFileError, match="damaged"):
        TrainedMIRO.load(damaged)
    newer = tmp_path / "newer.safetensors"
    metadata.update(format_version="99")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(newer), metadata=metadata)
    with pytest.raises(ModelFileError, match="newer"):
        TrainedMIRO.load(newer)


def _lying_copy(trained, tmp_path, network=None, settings=None, name="lying.safetensors"):
    """The model file of ``trained`` with some claims of its header changed."""
    from safetensors.torch import save_file

    metadata = {
        "format": "napari-miro-model",
        "format_version": "1",
        "network": json.dumps({**trained.model.config.to_dict(), **(network or {})}),
        "settings": json.dumps({**trained.settings.to_dict(), **(settings or {})}),
    }
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in trained.model.state_dict().items()}, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize(
    ("network", "settings", "message"),
    [
        ({"steps": 1_000_000}, None, "recurrent steps = 1e\\+06"),
        ({"hidden": 8000}, None, "hidden size = 8000"),
        ({"hidden": 128}, None, "tensors do not match"),
        ({"node_features": 7}, None, "7 node"),
        ({"fine_step": 50}, None, "fine-scale step"),
        ({"steps": "many"}, None, "not a whole number"),
        (None, {"delta_nm": float("nan")}, "delta is nan"),
        (None, {"delta_nm": -5.0}, "delta = -5"),
        (None, {"field_size_nm": 1e-3}, "training field size"),
        (None, {"passes": 10**6}, "passes"),
        (None, {"min_samples": 0}, "min_samples = 0"),
        (None, {"eps_nm": None}, "eps_nm is None"),
        (None, {"class_names": ["background", "ring"]}, "names 2 classes"),
        (None, {"training": [1, 2]}, "training record"),
    ],
)
def test_model_files_that_lie_are_refused_at_once(trained_rings, tmp_path, network, settings, message):
    """A header claiming a million recurrent steps or a hidden size of 8,000 is refused before anything is
    allocated or run, in well under a second."""
    import time

    path = _lying_copy(trained_rings[0], tmp_path, network, settings)
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=message):
        TrainedMIRO.load(path)
    assert time.perf_counter() - start < 1.0


def test_an_honest_copy_still_loads(trained_rings, tmp_path):
    assert TrainedMIRO.load(_lying_copy(trained_rings[0], tmp_path)).settings == trained_rings[0].settings
