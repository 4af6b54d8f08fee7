"""MIROClusterer: the whole pipeline behind one scikit-learn-style object.

``fit`` learns from annotated clusters (a base model fine-tuned on synthetic fields made from them, then DBSCAN
tuned on fresh synthetic fields); ``predict`` / ``cluster`` run MIRO + DBSCAN on any point cloud; ``save`` /
``load`` use the safe model file. The command line, batch runs and the napari widgets all go through it.

Pure core: imports neither Qt nor napari.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator

from napari_miro.annotations import AnnotatedData
from napari_miro.base_models import start_from_base
from napari_miro.density import BackgroundDecision
from napari_miro.devices import resolve_device
from napari_miro.inference import ClusterResult, alone_labels, cluster_points, cluster_table
from napari_miro.model import MIRO
from napari_miro.model_file import MIROSettings, TrainedMIRO
from napari_miro.recipe import BACKGROUNDS, PRESETS, TrainingSettings, default_fine_step
from napari_miro.threads import ThreadBudget
from napari_miro.training import ProgressCallback, TrainingFields, TrainingResult, resolve_background, train
from napari_miro.tuning import tune_model

__all__ = ["MIROClusterer", "package_model"]

#: ``base_model`` value that trains from a random initialisation
NO_BASE = "none"


def package_model(
    model: MIRO,
    data: AnnotatedData,
    settings: TrainingSettings,
    fields: TrainingFields,
    training: dict | None = None,
) -> TrainedMIRO:
    """A trained network with everything needed to apply it, DBSCAN tuned on fresh synthetic fields
    (:func:`napari_miro.tuning.tune_model`)."""
    class_names = (
        data.class_names or ["background"] + [f"class {i}" for i in range(1, data.n_classes)] if data.n_classes else []
    )
    trained = TrainedMIRO(
        model.cpu().eval(),
        MIROSettings(
            delta_nm=fields.delta_nm,
            displacement_unit_nm=fields.unit_nm,
            scale_encodings=settings.scale_encodings,
            edge_scale_nm=settings.edge_scale_nm,
            field_size_nm=fields.synthesizer.fov_nm,
            class_names=list(class_names),
            preset=settings.preset,
            training={**(training or {}), "settings": settings.to_dict()},
            passes=settings.passes,
        ),
    )
    tune_model(trained, data, fields.synthesizer, settings)
    return trained


def tuning_guess(minutes: float) -> float:
    """Seconds to set aside for DBSCAN's tuning at the end of a ``minutes`` budget before one was timed: a tenth
    of the budget, a minute at most."""
    return min(60.0, 6.0 * minutes)


class MIROClusterer(BaseEstimator):
    """MIRO + DBSCAN (or HDBSCAN), learnt from one or a few annotated clusters.

    Parameters
    ----------
    preset : str, default "compact"
        The training recipe: "compact" (a small network fine-tuned from a shipped base model; for CPUs) or
        "faithful" (the paper's network and schedule; for a GPU).
    base_model : str or None, default None
        Pre-trained base model to fine-tune: a name (see ``napari_miro.base_models.base_model_names()``),
        "auto" (chosen from the annotated clusters' shape) or "none" (train from scratch). None: the preset's.
    background : {"auto", "uniform", "blinking"} or None, default None
        Background of the synthetic training fields: uniform localizations, or molecules that blink several times
        (raw dSTORM / PALM / PAINT tables); "auto" decides from the data
        (:func:`napari_miro.density.detect_background`). None: the preset's ("auto").
    minutes : float or None, default None
        Time budget of :meth:`fit` in minutes, field preparation and DBSCAN's tuning included. None: no time limit.
    max_steps : int or None, default None
        Optimizer steps at most. None: the preset's (1,500 for "compact") when ``minutes`` is None, else no limit.
    delta_nm : float or None, default None
        Graph edge threshold in nm. None: suggested from the annotated clusters.
    device : str, default "auto"
        "auto" (CUDA, then Apple MPS, then CPU), "cpu", "cuda" or "mps".
    random_state : int or None, default None
        Seed of every random step: the same data and parameters give the same model. None: the recipe's (0).
    method : {"dbscan", "hdbscan"}, default "dbscan"
        What clusters the collapsed localizations (and the original ones in :meth:`cluster_alone`).
    eps_nm, min_samples : float, int or None, default None
        DBSCAN's parameters for :meth:`predict` (``min_samples`` also HDBSCAN's). None: those tuned on the
        synthetic fields during :meth:`fit` (HDBSCAN: its min_cluster_size).
    min_cluster_size : int or None, default None
        HDBSCAN's smallest cluster. None: the one tuned on the synthetic fields.
    fine_eps_nm, fine_min_samples : float, int or None, default None
        The same for the fine scale of a two-scale model.
    recipe : TrainingSettings or None, default None
        A whole training recipe instead of the preset's (for studies of the method); the parameters above that are
        not None still apply on top of it.
    n_threads : int or None, default None
        CPU threads for training and clustering. None: the cores that other processes leave free, followed as they
        change (:class:`napari_miro.threads.ThreadBudget`), so a busy machine is never oversubscribed.

    Attributes
    ----------
    model_ : TrainedMIRO
        The trained network with its settings (graph threshold, units, DBSCAN's tuned parameters).
    eps_nm_, min_samples_ : float, int
        DBSCAN's parameters tuned for MIRO's collapsed points.
    dbscan_eps_nm_, dbscan_min_samples_ : float, int
        DBSCAN's parameters tuned the same way for the original points (DBSCAN alone, the fair baseline).
    min_cluster_size_, alone_min_cluster_size_ : int or None
        HDBSCAN's min_cluster_size tuned for the collapsed points and for the original points.
    history_ : list of dict
        One record per optimizer step: ``step``, ``loss``, ``seconds`` and, when validated, ``validation_loss``.
    training_ : TrainingResult
        The whole training run (its synthetic fields included); absent on a loaded model.
    base_model_ : str or None
        The base model that training started from.
    background_ : str
        The background the synthetic fields had ("uniform" or "blinking").
    background_decision_ : BackgroundDecision or None
        What "auto" decided and why (None when the background was given).

    Examples
    --------
    >>> clusterer = MIROClusterer(minutes=2).fit(xy, clusters=[indices_of_one_cluster])  # doctest: +SKIP
    >>> labels = clusterer.predict(xy)  # 0 = not clustered  # doctest: +SKIP
    """

    def __init__(
        self,
        preset: str = "compact",
        *,
        base_model: str | None = None,
        background: str | None = None,
        minutes: float | None = None,
        max_steps: int | None = None,
        delta_nm: float | None = None,
        device: str = "auto",
        random_state: int | None = None,
        eps_nm: float | None = None,
        min_samples: int | None = None,
        fine_eps_nm: float | None = None,
        fine_min_samples: int | None = None,
        recipe: TrainingSettings | None = None,
        n_threads: int | None = None,
        method: str = "dbscan",
        min_cluster_size: int | None = None,
    ) -> None:
        self.preset = preset
        self.base_model = base_model
        self.background = background
        self.minutes = minutes
        self.max_steps = max_steps
        self.delta_nm = delta_nm
        self.device = device
        self.random_state = random_state
        self.eps_nm = eps_nm
        self.min_samples = min_samples
        self.fine_eps_nm = fine_eps_nm
        self.fine_min_samples = fine_min_samples
        self.recipe = recipe
        self.n_threads = n_threads
        self.method = method
        self.min_cluster_size = min_cluster_size

    # ------------------------------------------------------------------ settings
    def training_settings(self) -> TrainingSettings:
        """The training recipe that :meth:`fit` uses: the preset's (or ``recipe``) with the parameters applied."""
        if self.recipe is not None:
            settings = self.recipe
        elif self.preset in PRESETS:
            settings = PRESETS[self.preset]
        else:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        changes: dict = {} if self.random_state is None else {"seed": int(self.random_state)}
        if self.base_model is not None:
            changes["base_model"] = None if self.base_model == NO_BASE else self.base_model
        if self.background is not None:
            if self.background not in BACKGROUNDS:
                raise ValueError(f"unknown background {self.background!r}; choose from {', '.join(BACKGROUNDS)}")
            changes["background"] = self.background
        if self.minutes is not None:
            if not self.minutes > 0:
                raise ValueError(f"minutes must be positive, not {self.minutes}")
            changes.update(max_minutes=float(self.minutes), optimizer_steps=self.max_steps)
        elif self.max_steps is not None:
            changes["optimizer_steps"] = int(self.max_steps)
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, not {self.max_steps}")
        if self.delta_nm is not None:
            if not self.delta_nm > 0:
                raise ValueError(f"delta must be a positive distance in nm, not {self.delta_nm}")
            changes["delta_nm"] = float(self.delta_nm)
        return replace(settings, **changes)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: np.ndarray | AnnotatedData,
        clusters: Sequence[np.ndarray] | None = None,
        *,
        labels: np.ndarray | None = None,
        which: Sequence[int] | None = None,
        classes: Sequence | None = None,
        fine: Sequence | np.ndarray | None = None,
        area_nm2: float | None = None,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        checkpoint_minutes: Sequence[float] = (),
        on_model: Callable[[float, TrainedMIRO], None] | None = None,
    ) -> MIROClusterer:
        """Learn from annotated clusters of the point cloud ``X``.

        Parameters
        ----------
        X : array of shape (n_localizations, 2), or AnnotatedData
            Positions in nm (x, y). An :class:`~napari_miro.annotations.AnnotatedData` carries its annotations.
        clusters : list of index arrays, optional
            The indices (into ``X``) of each annotated cluster. Then ``classes`` is one class name per cluster and
            ``fine`` one fine-scale label array per cluster (two-scale models: e.g. NPC corners inside a ring).
        labels : array of shape (n_localizations,), optional
            Instead of ``clusters``: a label per localization, 0 = not annotated (``which`` keeps some labels).
            Then ``classes`` and ``fine`` are per-localization columns.
        area_nm2 : float, optional
            The area the localizations cover (default: their convex hull).
        progress : callable, optional
            Called with a record per step: ``phase`` ("fields", "training", "tuning"), ``step``, ``total`` (None
            when only time limits training) and while training ``loss``, ``validation_loss``, ``seconds``.
        should_stop : callable, optional
            Polled between steps; when it returns True training stops and the best model so far is kept.
        checkpoint_minutes, on_model : optional
            At each of these minutes of training, ``on_model(minutes, model)`` gets the best model so far with
            DBSCAN tuned (a first result to show while training goes on).

        Returns
        -------
        self
        """
        started = time.perf_counter()
        data = self._annotated(X, clusters, labels, which, classes, fine, area_nm2)
        with ThreadBudget(self.n_threads) as threads:
            return self._fit(data, progress, should_stop, checkpoint_minutes, on_model, threads, started)

    def _fit(self, data, progress, should_stop, checkpoint_minutes, on_model, threads, started) -> MIROClusterer:
        settings, decision = resolve_background(data, self.training_settings())
        record_decision = {"background_decision": decision.to_dict()} if decision is not None else {}
        initial_model, base_name = None, None
        if settings.base_model:
            settings, initial_model, base_name = start_from_base(data, settings)
        if data.fine_labels is not None and settings.fine_step is None:  # after the base: its number of steps
            settings = replace(settings, fine_step=default_fine_step(settings.recurrent_steps))

        # ``minutes`` is the whole fit: training ends early enough for the final tuning, timed at each checkpoint
        # (a recipe's own max_minutes, as studies set it, counts the training loop only)
        tuning_seconds = [tuning_guess(settings.max_minutes or 0.0)]

        def deadline() -> float:
            return started + 60 * settings.max_minutes - tuning_seconds[-1]

        def checkpoint(info: dict) -> None:
            tuning_started = time.perf_counter()
            model = MIRO(info["config"])
            model.load_state_dict(info["state"])
            record = {
                "optimizer_steps": info["step"],
                "best_step": info["best_step"],
                "minutes": info["minutes"],
                "base_model": base_name,
                **record_decision,
            }
            trained = package_model(model, data, settings, info["fields"], record)
            tuning_seconds.append(time.perf_counter() - tuning_started)
            on_model(info["minutes"], trained)

        result = train(
            data,
            settings,
            self.device,
            progress,
            should_stop,
            initial_model=initial_model,
            checkpoint_minutes=checkpoint_minutes if on_model is not None else (),
            on_checkpoint=checkpoint if on_model is not None else None,
            threads=threads,
            deadline=deadline if self.minutes is not None else None,  # a recipe's max_minutes: of training
        )
        if progress is not None:
            progress({"phase": "tuning", "step": 0, "total": 1})
        record = {**result.summary(), "base_model": base_name, **record_decision}
        self.model_ = package_model(result.model, data, settings, result.fields, record)
        if progress is not None:
            progress({"phase": "tuning", "step": 1, "total": 1})
        self.training_: TrainingResult = result
        self.history_ = result.history
        self.base_model_ = base_name
        self.background_ = settings.background
        self.background_decision_ = decision
        return self

    @staticmethod
    def _annotated(X, clusters, labels, which, classes, fine, area_nm2) -> AnnotatedData:
        if isinstance(X, AnnotatedData):
            if clusters is not None or labels is not None:
                raise ValueError("X already carries its annotations: give no clusters or labels with it")
            return X
        if (clusters is None) == (labels is None):
            raise ValueError("give the annotated clusters either as clusters (index arrays) or as labels")
        if labels is not None:
            return AnnotatedData.from_labels(X, labels, which, classes, fine, area_nm2)
        class_ids = class_names = None
        if classes is not None:
            names = [str(name) for name in classes]
            if len(names) != len(clusters):
                raise ValueError("give one class name per annotated cluster")
            if len(set(names)) >= 2:  # one name is no classification
                class_names = ["background", *sorted(set(names))]
                class_ids = [class_names.index(name) for name in names]
        return AnnotatedData(X, list(clusters), class_ids, class_names, list(fine) if fine else None, area_nm2)

    # ------------------------------------------------------------------ the fitted model
    def _fitted(self) -> TrainedMIRO:
        if not hasattr(self, "model_"):
            raise RuntimeError("this MIROClusterer is not fitted yet: call fit() or MIROClusterer.load(path) first")
        return self.model_

    @property
    def eps_nm_(self) -> float:
        return self._fitted().settings.eps_nm

    @property
    def min_samples_(self) -> int:
        return self._fitted().settings.min_samples

    @property
    def dbscan_eps_nm_(self) -> float | None:
        return self._fitted().settings.dbscan_eps_nm

    @property
    def dbscan_min_samples_(self) -> int | None:
        return self._fitted().settings.dbscan_min_samples

    @property
    def min_cluster_size_(self) -> int | None:
        return self._fitted().settings.hdbscan_min_cluster_size

    @property
    def alone_min_cluster_size_(self) -> int | None:
        return self._fitted().settings.hdbscan_alone_min_cluster_size

    # ------------------------------------------------------------------ clustering
    def cluster(
        self,
        X: np.ndarray,
        *,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        passes: int | None = None,
    ) -> ClusterResult:
        """MIRO + DBSCAN (or HDBSCAN, see ``method``) on the positions ``X`` (nm): labels (0 = not clustered), the
        collapsed positions, and classes / fine-scale labels for models that have them. ``progress(done, total)``
        counts tiles."""
        with ThreadBudget(self.n_threads):
            return cluster_points(
                self._fitted(),
                np.asarray(X, dtype=np.float64),
                self.eps_nm,
                self.min_samples,
                self.fine_eps_nm,
                self.fine_min_samples,
                device=self._inference_device(),
                progress=progress,
                should_stop=should_stop,
                passes=passes,
                method=self.method,
                min_cluster_size=self.min_cluster_size,
            )

    def cluster_alone(self, X: np.ndarray) -> np.ndarray:
        """Labels (0 = not clustered) of the same method on the positions ``X`` (nm) WITHOUT MIRO, with its
        parameters tuned the same way on the synthetic fields: the fair baseline to compare MIRO with."""
        with ThreadBudget(self.n_threads):
            return alone_labels(self._fitted(), np.asarray(X, dtype=np.float64), self.method)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Cluster labels of the positions ``X`` (nm): 1..K, 0 = not clustered."""
        return self.cluster(X).labels

    def fit_predict(self, X: np.ndarray, clusters: Sequence[np.ndarray] | None = None, **fit_options) -> np.ndarray:
        """:meth:`fit` on the annotated clusters of ``X``, then the labels of every localization of ``X``."""
        return self.fit(X, clusters, **fit_options).predict(X)

    def cluster_table(
        self,
        table: pd.DataFrame,
        *,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        passes: int | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame, ClusterResult]:
        """MIRO + DBSCAN on a localization table (x, y in nm): the table with ``cluster``, ``x_collapsed``,
        ``y_collapsed`` (and ``class``, ``fine_cluster``) added, one row of statistics per cluster, and the result."""
        with ThreadBudget(self.n_threads):
            return cluster_table(
                table,
                self._fitted(),
                self.eps_nm,
                self.min_samples,
                self.fine_eps_nm,
                self.fine_min_samples,
                device=self._inference_device(),
                progress=progress,
                passes=passes,
                should_stop=should_stop,
                method=self.method,
                min_cluster_size=self.min_cluster_size,
            )

    def _inference_device(self) -> torch.device:
        return resolve_device(self.device)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the fitted model as a safe model file (safetensors weights + JSON settings)."""
        return self._fitted().save(path)

    @classmethod
    def load(cls, path: str | Path, **params) -> MIROClusterer:
        """A fitted clusterer from a model file (loading never runs code from the file); ``params`` as for
        ``__init__`` (e.g. ``device``, ``eps_nm``)."""
        return cls.from_model(TrainedMIRO.load(path), **params)

    @classmethod
    def from_model(cls, trained: TrainedMIRO, **params) -> MIROClusterer:
        """A fitted clusterer around a model already in memory."""
        clusterer = cls(**params)
        clusterer.model_ = trained
        clusterer.history_ = []
        clusterer.base_model_ = trained.settings.training.get("base_model")
        clusterer.background_ = trained.settings.training.get("settings", {}).get("background")
        decision = trained.settings.training.get("background_decision")
        clusterer.background_decision_ = BackgroundDecision(**decision) if decision else None
        return clusterer
