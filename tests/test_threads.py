import threading

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from napari_miro import threads
from napari_miro.estimator import MIROClusterer
from napari_miro.recipe import TrainingSettings
from napari_miro.threads import ThreadBudget, available_cores, free_cores


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.mark.parametrize(
    ("busy", "cores", "expected"),
    [(0.0, 2, 2), (0.3, 2, 2), (0.9, 2, 1), (1.0, 2, 1), (5.0, 2, 1), (3.2, 16, 13), (0.0, 1, 1)],
)
def test_free_cores_leaves_what_others_use(busy, cores, expected):
    assert free_cores(busy, cores) == expected


def test_available_cores_is_at_least_one():
    assert available_cores() >= 1


def test_fixed_budget_sets_torch_and_blas_and_restores_them():
    before_torch, before_blas = torch.get_num_threads(), blas_threads()
    with ThreadBudget(1) as budget:
        assert budget.threads == 1
        assert torch.get_num_threads() == 1
        assert blas_threads() <= {1}
    assert torch.get_num_threads() == before_torch
    assert blas_threads() == before_blas


def test_budget_rejects_zero_threads():
    with pytest.raises(ValueError, match="at least 1"):
        ThreadBudget(0)


def fake_load(monkeypatch, values):
    """Make the CPU clock report these loads of other processes, one per reading."""
    readings = iter(values)
    monkeypatch.setattr(threads._CpuClock, "busy_elsewhere", lambda self: next(readings))
    monkeypatch.setattr(threads, "FIRST_SAMPLE_SECONDS", 0.0)
    monkeypatch.setattr(threads, "_recent", None)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)


def test_automatic_budget_follows_other_processes(monkeypatch):
    fake_load(monkeypatch, [3.0, 3.0, 0.0, 2.0])
    with ThreadBudget() as budget:
        assert budget.threads == 1 and torch.get_num_threads() == 1
        assert budget.adapt() == 1
        assert budget.adapt() == 4 and torch.get_num_threads() == 4
        assert budget.adapt() == 2 and blas_threads() <= {2}


def test_budget_in_a_worker_thread_sets_that_threads_torch():
    seen = {}

    def work():
        with ThreadBudget(1):
            seen["inside"] = torch.get_num_threads()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen["inside"] == 1


@pytest.fixture
def one_ring():
    from napari_miro import simulate

    frame = simulate.rings(n_clusters=(6, 6), fov_nm=2500, seed=3)
    xy = frame[["x", "y"]].to_numpy()
    return xy, [np.flatnonzero(frame["cluster"].to_numpy() == 1)]


def test_training_in_a_worker_thread_leaves_the_busy_cores_alone(monkeypatch, one_ring):
    """As the Train widget runs it: fit in a worker thread while other processes keep all cores but one busy;
    every optimizer step must run with one thread, not one per core."""
    from napari_miro import training

    fake_load(monkeypatch, [3.0] * 100)
    seen = []
    step = training._optimizer_step

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return step(*args, **kwargs)

    monkeypatch.setattr(training, "_optimizer_step", spy)
    xy, clusters = one_ring
    recipe = TrainingSettings(n_fields=4, n_tuning_fields=2, passes=1)
    clusterer = MIROClusterer(max_steps=3, base_model="none", recipe=recipe)
    errors = []

    def work():
        try:
            clusterer.fit(xy, clusters=clusters)
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert not errors, errors
    assert seen and set(seen) == {1}


def test_n_threads_is_a_parameter():
    assert MIROClusterer(n_threads=2).get_params()["n_threads"] == 2


def test_a_recent_measurement_is_reused(monkeypatch):
    """Short calls in a loop (predict on many fields) do not each watch the CPU for a fraction of a second."""
    import time

    fake_load(monkeypatch, [3.0])  # one reading only: a second one would raise StopIteration
    with ThreadBudget() as first:
        pass
    start = time.perf_counter()
    with ThreadBudget() as second:
        pass
    assert first.threads == second.threads == 1 and time.perf_counter() - start < 0.1
