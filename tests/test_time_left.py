"""Time-left estimates for the user interfaces."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from napari_miro.estimator import MIROClusterer
from napari_miro.recipe import PRESETS


def test_time_left_follows_fields_training_checkpoints_and_tuning():
    from napari_miro.time_left import TimeLeft, format_duration

    now = [0.0]
    settings = replace(PRESETS["compact"], max_minutes=1.0, optimizer_steps=None)
    estimate = TimeLeft(settings, checkpoint_minutes=[0.5, 1.5], clock=lambda: now[0])  # 1.5 min: beyond the budget
    now[0] = 2.0
    # 1 of 10 fields in 2 s: 18 s of fields, 60 s of training, one checkpoint and one final tuning of ~10 s each
    assert estimate.update({"phase": "fields", "step": 1, "total": 10}) == pytest.approx(18 + 60 + 2 * 10)
    now[0] = 20.0
    estimate.update({"phase": "fields", "step": 10, "total": 10})
    now[0] = 49.0  # 29 s into training
    left = estimate.update({"phase": "training", "step": 100, "total": None, "seconds": 49, "training_seconds": 29})
    assert left == pytest.approx(31 + 2 * 10)
    now[0] = 58.0  # a checkpoint tuning took 6 s that training did not count
    left = estimate.update({"phase": "training", "step": 110, "total": None, "seconds": 58, "training_seconds": 32})
    assert estimate.tuning_seconds == pytest.approx(6.0) and left == pytest.approx(28 + 6)
    now[0] = 90.0
    assert estimate.update({"phase": "tuning", "step": 0, "total": 1}) == pytest.approx(6.0)
    now[0] = 94.0
    assert estimate.update({"phase": "tuning", "step": 0, "total": 1}) == pytest.approx(2.0)
    # a step count that ends before the time budget: the steps decide
    by_steps = TimeLeft(replace(settings, optimizer_steps=200), clock=lambda: now[0])
    left = by_steps.update({"phase": "training", "step": 100, "total": 200, "seconds": 10, "training_seconds": 10})
    assert left == pytest.approx(10 + 3.0)  # 100 steps at 0.1 s, plus the smallest tuning guess
    assert [format_duration(s) for s in (4.4, 75, 3725)] == ["4 s", "1 min 15 s", "1 h 02 min"]


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
