"""Time-left estimates for the user interfaces (the command line's progress bar, the Train widget).

The training core reports progress records; this module turns them into the seconds a person still waits.
Imports of napari_miro only recipe; neither Qt nor napari.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from napari_miro.recipe import TrainingSettings

__all__ = ["TimeLeft", "format_duration"]


class TimeLeft:
    """An estimate of the wall-clock seconds that :meth:`MIROClusterer.fit` still needs, from its progress records.

    With a time budget (``max_minutes``: the whole fit, fields and tuning included) the time left is the budget's
    rest, and once past it the rest of a tuning as long as the last one. Without: preparing fields at the rate of
    the fields so far; training by the planned steps; DBSCAN tuning at every checkpoint still to come and at the
    end as long as the tunings so far took (before the first one, a guess of half the time the fields took).
    """

    def __init__(
        self,
        settings: TrainingSettings,
        checkpoint_minutes: Sequence[float] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.checkpoints = sorted(m for m in checkpoint_minutes if not settings.max_minutes or m < settings.max_minutes)
        self.clock = clock
        self.started = clock()
        self.fields_seconds: float | None = None
        self.training_started: float | None = None
        self.tuning_started: float | None = None
        self.tuning_seconds: float | None = None  #: one tuning, once one has been measured

    def _tuning_estimate(self) -> float:
        if self.tuning_seconds is not None:
            return self.tuning_seconds
        return max(3.0, 0.5 * (self.fields_seconds or 0.0))

    @staticmethod
    def _training_left(step: int, total: int | None, training_seconds: float) -> float:
        return max(0.0, (total - step) * training_seconds / step) if step and total is not None else 0.0

    def update(self, info: dict) -> float:
        """Seconds left after this progress record (``MIROClusterer.fit``'s ``progress`` argument)."""
        now = self.clock()
        phase = info["phase"]
        if self.settings.max_minutes:
            return self._budget_left(now, info)
        if phase == "fields":
            per_field = (now - self.started) / max(info["step"], 1)
            self.fields_seconds = per_field * info["total"]
            tunings = (len(self.checkpoints) + 1) * self._tuning_estimate()
            return per_field * (info["total"] - info["step"]) + tunings
        if phase == "training":
            trained = info.get("training_seconds", info["seconds"])
            if self.training_started is None:
                self.training_started = now - trained
                self.fields_seconds = self.fields_seconds or max(0.0, self.training_started - self.started)
            done = self._time_tunings(info)
            tunings = (len(self.checkpoints) - len(done) + 1) * self._tuning_estimate()
            return self._training_left(info["step"], info["total"], trained) + tunings
        if self.tuning_started is None:  # the final tuning
            self.tuning_started = now
        return max(1.0, self._tuning_estimate() - (now - self.tuning_started))

    def _time_tunings(self, info: dict) -> list[float]:
        """The checkpoints passed by this training record; the tunings there, timed by training, set the estimate
        of one tuning."""
        done = [m for m in self.checkpoints if 60 * m <= info.get("training_seconds", info["seconds"])]
        if info.get("checkpoint_seconds"):
            self.tuning_seconds = info["checkpoint_seconds"] / max(len(done), 1)
        return done

    def _budget_left(self, now: float, info: dict) -> float:
        budget_left = self.started + 60 * self.settings.max_minutes - now
        if info["phase"] == "training":
            self._time_tunings(info)
        if info["phase"] != "tuning":
            return max(1.0, budget_left)
        if self.tuning_started is None:
            self.tuning_started = now
        return max(1.0, budget_left, self._tuning_estimate() - (now - self.tuning_started))


def format_duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min': a time left for people."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"
