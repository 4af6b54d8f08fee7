"""Training: a short run that collapses clusters and beats DBSCAN alone, cancellation, determinism, devices,
checkpoints, the schedule."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_miro import metrics, simulate
from napari_miro.devices import available_devices, resolve_device
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import cluster_points, dbscan_labels
from napari_miro.model import MIRO
from napari_miro.model_file import TrainedMIRO
from napari_miro.training import TrainingCancelled, make_training_fields, train


def test_short_training_collapses_rings_and_beats_dbscan(trained_rings):
    """Threshold: a model that learned nothing has compression 0 and the same JI_c as DBSCAN; after ~20 s of
    training the rings of fields it never saw shrink by more than 15% and are detected better."""
    trained, result = trained_rings
    assert result.best_validation_loss < result.history[0]["loss"]
    compressions, miro_ji, dbscan_ji = [], [], []
    for seed in (10, 11, 12):
        test = simulate.rings(n_clusters=12, fov_nm=3000, seed=seed)
        positions, truth = test[["x", "y"]].to_numpy(), test["cluster"].to_numpy()
        clustered = cluster_points(trained, positions)
        baseline = dbscan_labels(positions, trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples)
        compressions.append(metrics.compression_index(positions, clustered.collapsed.positions - positions, truth))
        miro_ji.append(metrics.jaccard_clusters(positions, truth, clustered.labels))
        dbscan_ji.append(metrics.jaccard_clusters(positions, truth, baseline))
    assert np.mean(compressions) > 0.15
    assert np.mean(miro_ji) > np.mean(dbscan_ji)


def test_progress_is_reported_and_cancel_keeps_the_best_model(small_settings, ring_data):
    data = ring_data()
    events = []
    stop = threading.Event()

    def progress(info):
        events.append(info)
        if info["phase"] == "training" and info["step"] == 12:
            stop.set()

    result = train(data, small_settings(), device="cpu", progress=progress, should_stop=stop.is_set)
    phases = [e["phase"] for e in events]
    assert "fields" in phases and "training" in phases
    assert result.stopped_early
    assert result.history[-1]["step"] == 12
    assert 0 < result.best_step <= 12
    assert all(np.isfinite(e["loss"]) for e in events if e["phase"] == "training")


def test_cancel_before_the_first_step_says_so(small_settings, ring_data):
    with pytest.raises(TrainingCancelled):
        train(ring_data(), small_settings(), device="cpu", should_stop=lambda: True)


def test_training_is_deterministic_with_a_seed(small_settings, ring_data):
    data = ring_data()
    torch.set_num_threads(1)
    try:
        first = train(data, small_settings(optimizer_steps=6), device="cpu")
        second = train(data, small_settings(optimizer_steps=6), device="cpu")
    finally:
        torch.set_num_threads(2)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


_TRAIN_AND_PRINT_DIGEST = """
import hashlib
from dataclasses import replace

import torch

from napari_miro import simulate
from napari_miro.annotations import AnnotatedData
from napari_miro.recipe import PRESETS
from napari_miro.training import train

torch.set_num_threads(2)
df = simulate.rings(n_clusters=12, fov_nm=3000, seed=1)
data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy())
settings = replace(PRESETS["compact"], hidden=32, recurrent_steps=8, n_fields=32, n_validation_fields=4,
                   n_tuning_fields=2, optimizer_steps=4, validate_every=50, base_model=None)
digest = hashlib.sha256()
for value in train(data, settings, device="cpu").model.state_dict().values():
    digest.update(value.numpy().tobytes())
print(digest.hexdigest())
"""


def test_training_is_the_same_in_every_process_with_two_threads():
    # within one process runs agreed even when the gradient of advanced indexing (accumulated in a
    # thread-dependent order) made separate processes differ after a few steps
    digests = {
        subprocess.run(
            [sys.executable, "-c", _TRAIN_AND_PRINT_DIGEST], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(3)
    }
    assert len(digests) == 1


def test_training_fields_can_be_reused(small_settings, ring_data):
    data = ring_data()
    settings = small_settings(optimizer_steps=4)
    fields = make_training_fields(data, settings)
    assert len(fields.train) + len(fields.validation) == 8 and fields.delta_nm > 0
    result = train(data, settings, device="cpu", fields=fields)
    assert result.fields is fields


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert available_devices()[0] == "auto" and "cpu" in available_devices()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_out_of_memory_on_the_device_becomes_a_clear_message(monkeypatch, small_settings, ring_data):
    from napari_miro.devices import OUT_OF_MEMORY_ERRORS, DeviceOutOfMemory

    def exhausted(self, batch, steps=None):
        raise OUT_OF_MEMORY_ERRORS[0]("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(MIRO, "forward", exhausted)
    with pytest.raises(DeviceOutOfMemory, match="compact preset") as info:
        train(ring_data(), small_settings(), device="cpu")
    assert "CUDA out of memory" not in str(info.value)


def test_checkpoints_hand_over_ready_models(small_settings, ring_data):
    data = ring_data()
    handed = []

    def on_model(minutes, model):
        handed.append((minutes, model))

    settings = small_settings(optimizer_steps=None, max_minutes=0.05)
    clusterer = MIROClusterer(recipe=settings, device="cpu")
    clusterer.fit(data, checkpoint_minutes=[0.0, 0.01], on_model=on_model)
    assert [minutes for minutes, _ in handed] == [0.0, 0.01]
    for _, model in handed:
        assert isinstance(model, TrainedMIRO) and model.settings.eps_nm > 0
        assert model.settings.training["optimizer_steps"] >= 1
    assert handed[0][1].settings.training["optimizer_steps"] < handed[1][1].settings.training["optimizer_steps"]
    positions = data.positions
    assert cluster_points(handed[0][1], positions).labels.shape == (len(positions),)


def test_checkpoint_time_does_not_count_against_max_minutes_of_training(small_settings, ring_data):
    def slow_consumer(info):
        time.sleep(1.5)

    settings = small_settings(optimizer_steps=None, max_minutes=0.05)  # 3 s of training
    result = train(ring_data(), settings, "cpu", checkpoint_minutes=[0.0, 0.02], on_checkpoint=slow_consumer)
    assert result.out_of_time
    loop_seconds = result.history[-1]["seconds"] - result.history[0]["seconds"]
    assert loop_seconds > 3.0  # the 3 s of training were all spent training, besides the 3 s of waiting
    assert result.history[-1]["checkpoint_seconds"] >= 3.0


def test_fit_ends_within_its_budget_fields_and_tuning_included(small_settings, ring_data):
    """``minutes`` is what the user waits: fields, training, the preview's and the final tuning together."""
    data = ring_data()
    clusterer = MIROClusterer(recipe=small_settings(optimizer_steps=None), minutes=0.25, device="cpu")
    start = time.perf_counter()
    clusterer.fit(data, checkpoint_minutes=[0.05], on_model=lambda minutes, model: None)
    assert time.perf_counter() - start <= 1.1 * 15
    assert clusterer.training_.out_of_time and len(clusterer.history_) > 10


def test_cosine_schedule_follows_steps_or_the_time_budget_whichever_is_further(small_settings):
    from napari_miro.training import learning_rate_factor

    by_steps = small_settings(optimizer_steps=100, max_minutes=None)
    assert learning_rate_factor(by_steps, 0, 0.0) == pytest.approx(1.0)
    assert learning_rate_factor(by_steps, 50, 0.0) == pytest.approx(0.525)
    assert learning_rate_factor(by_steps, 100, 0.0) == pytest.approx(0.05)
    by_time = small_settings(optimizer_steps=None, max_minutes=2.0)
    assert learning_rate_factor(by_time, 10, 0.5) == pytest.approx(0.525)
    assert learning_rate_factor(by_time, 10, 4.0) == pytest.approx(0.05)
    assert learning_rate_factor(replace(by_time, schedule="constant"), 10, 0.5) == 1.0
