"""Time-left estimates for the user interfaces."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from napari_miro.estimator import MIROClusterer
from napari_miro.recipe import PRESETS


def test_time_left_within_a_budget_is_the_rest_of_the_budget():
    from napari_miro.time_left import TimeLeft, format_duration

    now = [0.0]
    settings = replace(PRESETS["compact"], max_minutes=1.0, optimizer_steps=None)
    estimate = TimeLeft(settings, checkpoint_minutes=[0.25], clock=lambda: now[0])
    now[0] = 2.0
    assert estimate.update({"phase": "fields", "step": 1, "total": 10}) == pytest.approx(58)
    now[0] = 20.0
    record = {"phase": "training", "step": 1, "total": None, "seconds": 20, "training_seconds": 0.5}
    assert estimate.update({**record, "checkpoint_seconds": 0.0}) == pytest.approx(40)
    now[0] = 45.0  # the checkpoint's tuning took 6 s
    record = {"phase": "training", "step": 90, "total": None, "seconds": 45, "training_seconds": 24.5}
    left = estimate.update({**record, "checkpoint_seconds": 6.0})
    assert estimate.tuning_seconds == pytest.approx(6.0) and left == pytest.approx(15)
    now[0] = 55.0
    assert estimate.update({"phase": "tuning", "step": 0, "total": 1}) == pytest.approx(6.0)  # the tuning, timed
    now[0] = 58.0
    assert estimate.update({"phase": "tuning", "step": 0, "total": 1}) == pytest.approx(3.0)
    now[0] = 75.0  # past the budget: never "0 s left" while work goes on
    assert estimate.update({"phase": "tuning", "step": 0, "total": 1}) == pytest.approx(1.0)
    assert [format_duration(s) for s in (4.4, 75, 3725)] == ["4 s", "1 min 15 s", "1 h 02 min"]


def test_time_left_without_a_budget_follows_fields_steps_and_tunings():
    from napari_miro.time_left import TimeLeft

    now = [0.0]
    settings = replace(PRESETS["compact"], max_minutes=None, optimizer_steps=200)
    estimate = TimeLeft(settings, clock=lambda: now[0])
    now[0] = 2.0
    # 1 of 10 fields in 2 s: 18 s of fields and a final tuning guessed at half the fields' 20 s
    assert estimate.update({"phase": "fields", "step": 1, "total": 10}) == pytest.approx(18 + 10)
    now[0] = 30.0
    left = estimate.update({"phase": "training", "step": 100, "total": 200, "seconds": 30, "training_seconds": 10})
    assert left == pytest.approx(10 + 10)  # 100 steps at 0.1 s, and the tuning guess


def test_training_reports_time_left_that_comes_true(small_settings, ring_data):
    """On a real run the first estimate after the fields are made is within a factor of two of the truth."""
    from napari_miro.time_left import TimeLeft

    settings = small_settings(optimizer_steps=None, max_minutes=0.05)
    estimate = TimeLeft(settings)
    guesses = []

    def progress(info):
        guesses.append((time.monotonic(), info["phase"], estimate.update(info)))

    MIROClusterer(recipe=settings, device="cpu").fit(ring_data(), progress=progress)
    finished = time.monotonic()
    first_training = next((when, left) for when, phase, left in guesses if phase == "training")
    actual = finished - first_training[0]
    assert 0.5 * actual <= first_training[1] <= 2.0 * actual + 2.0
