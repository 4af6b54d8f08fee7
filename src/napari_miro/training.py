"""Training MIRO on synthetic fields made from the annotated clusters.

:func:`make_training_fields` makes the training and validation fields (graphs, features, target displacements);
:func:`train` fits the network with Adam, reporting progress through a callback, stopping cleanly on request or
at the time budget, and keeping the model with the lowest validation loss. Orchestration (base model, DBSCAN's
tuning, the model file) is :class:`napari_miro.MIROClusterer`'s.

Pure core (numpy, torch): imports neither Qt nor napari; of napari_miro only annotations, synthesis, recipe,
loss, graph, model, devices and threads.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from napari_miro.annotations import AnnotatedData, median_radius, suggest_delta
from napari_miro.density import BackgroundDecision, detect_background
from napari_miro.devices import OUT_OF_MEMORY_ERRORS, DeviceOutOfMemory, resolve_device
from napari_miro.graph import build_graph
from napari_miro.loss import miro_loss
from napari_miro.model import MIRO, GraphBatch, MIROConfig, batch_graphs
from napari_miro.recipe import PRESETS, TrainingSettings
from napari_miro.synthesis import FieldSynthesizer, SyntheticField
from napari_miro.threads import ThreadBudget

__all__ = [
    "PreparedGraph",
    "TrainingCancelled",
    "TrainingFields",
    "TrainingResult",
    "learning_rate_factor",
    "make_synthesizer",
    "make_training_fields",
    "train",
]


class TrainingCancelled(RuntimeError):
    """Raised by :func:`train` only when it was stopped before any model could be evaluated."""


def _centroid_targets(positions: np.ndarray, labels: np.ndarray, delta_nm: float) -> np.ndarray:
    """(x - centroid of x's cluster) / delta for labelled points, 0 for label 0."""
    targets = np.zeros_like(positions)
    clustered = labels > 0
    if clustered.any():
        _, inverse = np.unique(labels[clustered], return_inverse=True)
        counts = np.bincount(inverse)
        centroids = np.stack([np.bincount(inverse, positions[clustered, d]) / counts for d in range(2)], 1)
        targets[clustered] = (positions[clustered] - centroids[inverse]) / delta_nm
    return targets


@dataclass
class PreparedGraph:
    """A synthetic field as model input and targets (numpy; turned into tensors per batch)."""

    node_features: np.ndarray
    edge_features: np.ndarray
    edge_index: np.ndarray
    positions_delta: np.ndarray  #: positions / unit (for the edge-distance term)
    target: np.ndarray  #: coarse displacement / unit
    fine_target: np.ndarray  #: fine displacement / unit
    class_id: np.ndarray
    cluster: np.ndarray


def prepare_field(
    fld: SyntheticField, delta_nm: float, unit_nm: float, settings: TrainingSettings, seed: int
) -> PreparedGraph:
    """Graph, features and targets (displacements in units of ``unit_nm``) of one synthetic field."""
    graph = build_graph(fld.positions, delta_nm, settings.scale_encodings, settings.edge_scale_nm, seed=seed)
    coarse = _centroid_targets(fld.positions, fld.cluster, unit_nm)
    fine = _centroid_targets(fld.positions, fld.fine, unit_nm) if fld.fine.any() else coarse
    return PreparedGraph(
        graph.node_features,
        graph.edge_features,
        graph.edge_index,
        (fld.positions - fld.positions.mean(0)) / unit_nm,
        coarse.astype(np.float32),
        fine.astype(np.float32),
        fld.class_id.astype(np.int64),
        fld.cluster.astype(np.int64),
    )


@dataclass
class TrainingFields:
    """The synthetic fields of a training run: the training set and a held-out validation set."""

    train: list[PreparedGraph]
    validation: list[PreparedGraph]
    synthesizer: FieldSynthesizer
    delta_nm: float
    unit_nm: float  #: the displacement unit


def _augment(graph: PreparedGraph, rng: np.random.Generator) -> PreparedGraph:
    """Random rotation and reflection of a prepared field: rotates edge vectors and targets."""
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if rng.random() < 0.5:
        rotation = rotation @ np.array([[1.0, 0.0], [0.0, -1.0]])
    rotation = rotation.astype(np.float32)
    edge = graph.edge_features.copy()
    edge[:, :2] = edge[:, :2] @ rotation.T
    return replace(
        graph,
        edge_features=edge,
        positions_delta=graph.positions_delta @ rotation.T,
        target=graph.target @ rotation.T,
        fine_target=graph.fine_target @ rotation.T,
    )


def collate(graphs: Sequence[PreparedGraph], device: torch.device) -> tuple[GraphBatch, dict[str, torch.Tensor]]:
    """One batch of prepared fields (:func:`napari_miro.model.batch_graphs`) and their targets."""

    def cat(name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.concatenate([getattr(g, name) for g in graphs]), dtype=dtype, device=device)

    targets = {
        "target": cat("target"),
        "fine_target": cat("fine_target"),
        "positions": cat("positions_delta"),
        "class_id": cat("class_id", torch.long),
    }
    return batch_graphs(graphs, device), targets


def resolve_background(
    data: AnnotatedData, settings: TrainingSettings
) -> tuple[TrainingSettings, BackgroundDecision | None]:
    """``settings`` with the background decided from the data when it is "auto", and the decision (None when the
    background was given)."""
    if settings.background != "auto":
        return settings, None
    decision = detect_background(data, settings.seed)
    return replace(settings, background=decision.background), decision


def make_synthesizer(data: AnnotatedData, settings: TrainingSettings) -> FieldSynthesizer:
    """The synthesizer that training with ``settings`` uses (background, decided from the data when "auto"; seed;
    copies)."""
    settings, _ = resolve_background(data, settings)
    return FieldSynthesizer(data, settings.background, settings.seed, copy_jitter=settings.copy_jitter)


def make_training_fields(
    data: AnnotatedData,
    settings: TrainingSettings,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingFields:
    """Generate the synthetic training and validation fields (the slow, CPU-bound part of preparation)."""
    delta = settings.delta_nm or suggest_delta(data)
    unit = settings.unit_nm or (delta if settings.displacement_unit == "delta" else median_radius(data))
    synthesizer = make_synthesizer(data, settings)
    rng = np.random.default_rng(settings.seed + 1)
    total = settings.n_fields + settings.n_validation_fields
    prepared = []
    for index in range(total):
        if should_stop is not None and should_stop() and len(prepared) > settings.n_validation_fields:
            break
        prepared.append(prepare_field(synthesizer.field(rng), delta, unit, settings, seed=settings.seed + index))
        if progress is not None:
            progress(index + 1, total)
    n_val = min(settings.n_validation_fields, max(1, len(prepared) // 4))
    return TrainingFields(prepared[n_val:], prepared[:n_val], synthesizer, float(delta), float(unit))


@dataclass
class TrainingResult:
    """A trained network and what is known about how it was trained."""

    model: MIRO
    delta_nm: float
    settings: TrainingSettings
    fields: TrainingFields
    history: list[dict] = field(default_factory=list)  #: {"step", "loss", "validation_loss", "seconds"}
    best_step: int = 0
    best_validation_loss: float = math.inf
    stopped_early: bool = False  #: stopped on request (should_stop) before the planned steps
    out_of_time: bool = False  #: stopped by the time budget (max_minutes)
    seconds: float = 0.0
    device: str = "cpu"
    optimizer_state: dict | None = None  #: Adam's state at the end (to continue training)

    def summary(self) -> dict:
        return {
            "optimizer_steps": self.history[-1]["step"] if self.history else 0,
            "best_step": self.best_step,
            "best_validation_loss": self.best_validation_loss,
            "stopped_early": self.stopped_early,
            "out_of_time": self.out_of_time,
            "seconds": round(self.seconds, 2),
            "device": self.device,
            "n_training_fields": len(self.fields.train),
            "field_size_nm": self.fields.synthesizer.fov_nm,
            "background_per_um2": self.fields.synthesizer.background_density * 1e6,
            "clusters_per_um2": self.fields.synthesizer.cluster_density * 1e6,
        }


ProgressCallback = Callable[[dict], None]


def _evaluate(model: MIRO, graphs: list[PreparedGraph], settings: TrainingSettings, device: torch.device) -> float:
    model.eval()
    with torch.no_grad():
        losses = []
        for graph in graphs:
            batch, targets = collate([graph], device)
            losses.append(float(_loss(model(batch), targets, batch, settings)))
    model.train()
    return float(np.mean(losses))


def _loss(outputs, targets: dict[str, torch.Tensor], batch: GraphBatch, settings: TrainingSettings) -> torch.Tensor:
    """The MIRO loss of a batch with the recipe's weights."""
    return miro_loss(
        outputs,
        targets,
        batch.edge_index,
        settings.alpha,
        settings.beta,
        settings.displacement_loss,
        settings.fine_step,
    )


def _optimizer_step(
    model: MIRO,
    optimizer: torch.optim.Optimizer,
    graphs: list[PreparedGraph],
    settings: TrainingSettings,
    device: torch.device,
    use_amp: bool,
) -> torch.Tensor:
    """One Adam step on a batch of fields; returns the loss."""
    batch, targets = collate(graphs, device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
        outputs = model(batch)
    loss = _loss(outputs, targets, batch, settings)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    optimizer.step()
    return loss


def learning_rate_factor(settings: TrainingSettings, steps_done: int, time_done: float = 0.0) -> float:
    """The learning rate's multiplier: 1 for a constant schedule; a cosine from 1 down to 0.05 over the planned
    steps or, with a time budget, over the budget (``time_done``: the fraction of it used; whichever is further
    along), so that a time-limited run also anneals."""
    if settings.schedule != "cosine":
        return 1.0
    done = steps_done / settings.optimizer_steps if settings.optimizer_steps else 0.0
    done = max(done, time_done)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def train(
    data: AnnotatedData,
    settings: TrainingSettings | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    fields: TrainingFields | None = None,
    initial_model: MIRO | None = None,
    checkpoint_minutes: Sequence[float] = (),
    on_checkpoint: Callable[[dict], None] | None = None,
    optimizer_state: dict | None = None,
    threads: ThreadBudget | None = None,
    deadline: Callable[[], float] | None = None,
) -> TrainingResult:
    """Train MIRO from annotated clusters.

    Args:
        data: the point cloud and its annotated clusters.
        settings: a preset (``PRESETS["compact"]``, ``PRESETS["faithful"]``) or your own.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda" or "mps".
        progress: called with a dict: ``phase`` ("fields" or "training"), ``step``, ``total``, and while
            training ``loss``, ``validation_loss`` (when evaluated) and ``seconds``.
        should_stop: polled between steps; when it returns True, training stops cleanly and the best model
            so far (lowest validation loss) is returned with ``stopped_early=True``.
        fields: training fields made earlier by :func:`make_training_fields` (to reuse them).
        initial_model: start from these weights (fine-tuning) instead of a random initialisation.
        checkpoint_minutes: training times (minutes of the loop) at which the model is validated and
            ``on_checkpoint`` gets ``{"minutes", "step", "best_step", "state", "config", "fields"}``: ``state`` is
            the state dict of the best model so far
            (what a stop at that moment would return), e.g. to show a first result early or to measure
            accuracy against time. Time spent in ``on_checkpoint`` does not count against ``max_minutes``
            (it does against a ``deadline``).
        optimizer_state: Adam's state from an earlier run (``TrainingResult.optimizer_state``) to continue it,
            e.g. when pre-training resumes from a checkpoint.
        threads: the CPU threads to work with, entered by the caller (default: the free cores, followed as they
            change).
        deadline: instead of ``max_minutes`` of training loop, returns the ``time.perf_counter()`` time at which
            training must end (a caller's whole budget less the work it still does afterwards); asked each step.
    """
    with ThreadBudget() if threads is None else nullcontext(threads) as budget:
        return _train(data, settings or PRESETS["compact"], device, progress, should_stop, fields, initial_model,
                      checkpoint_minutes, on_checkpoint, optimizer_state, budget, deadline)  # fmt: skip


def _train(
    data: AnnotatedData,
    settings: TrainingSettings,
    device: str,
    progress: ProgressCallback | None,
    should_stop: Callable[[], bool] | None,
    fields: TrainingFields | None,
    initial_model: MIRO | None,
    checkpoint_minutes: Sequence[float],
    on_checkpoint: Callable[[dict], None] | None,
    optimizer_state: dict | None,
    threads: ThreadBudget,
    deadline: Callable[[], float] | None,
) -> TrainingResult:
    torch.manual_seed(settings.seed)
    target_device = resolve_device(device)
    stop = should_stop or (lambda: False)
    start = time.perf_counter()

    def field_progress(step: int, total: int) -> None:
        if progress is not None:
            progress({"phase": "fields", "step": step, "total": total})

    if fields is None:
        fields = make_training_fields(data, settings, field_progress, stop)
    n_classes = data.n_classes
    config = MIROConfig(
        hidden=settings.hidden, steps=settings.recurrent_steps, n_classes=n_classes, fine_step=settings.fine_step
    )
    model = initial_model if initial_model is not None else MIRO(config)
    model = model.to(target_device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    total_steps = settings.optimizer_steps  # None: until the time budget or a stop
    if total_steps is None and settings.max_minutes is None and deadline is None:
        raise ValueError("give optimizer_steps or max_minutes: training needs an end")
    use_amp = target_device.type == "cuda"  # bfloat16 mixed precision on CUDA
    rng = np.random.default_rng(settings.seed + 2)
    loop_start = time.perf_counter()  # the time budget counts training steps, not the preparation of fields
    result = TrainingResult(model, fields.delta_nm, settings, fields, device=str(target_device))
    best_state = copy.deepcopy(model.state_dict())
    running = None
    step = 0
    pending_checkpoints = sorted(checkpoint_minutes)
    checkpoint_seconds = 0.0  # wall time spent in on_checkpoint

    def end_of_training() -> float | None:
        if deadline is not None:
            return deadline()
        return None if settings.max_minutes is None else loop_start + 60 * settings.max_minutes

    def validate(at_step: int) -> float:
        """The validation loss here; the model is kept when it is the best so far."""
        nonlocal best_state
        value = _evaluate(model, fields.validation, settings, target_device)
        if value < result.best_validation_loss:
            result.best_validation_loss, result.best_step = value, at_step
            best_state = copy.deepcopy(model.state_dict())
        return value

    for step in itertools.count(1) if total_steps is None else range(1, total_steps + 1):
        now, end = time.perf_counter(), end_of_training()
        out_of_time = end is not None and now >= end
        if stop() or (out_of_time and step > 1):
            result.stopped_early = stop()
            result.out_of_time = not result.stopped_early
            step -= 1
            break
        chosen = rng.choice(len(fields.train), size=min(settings.batch_size, len(fields.train)), replace=False)
        time_done = 0.0 if end is None else (now - loop_start) / max(end - loop_start, 1e-9)
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * learning_rate_factor(settings, step - 1, time_done)
        try:
            loss = _optimizer_step(
                model, optimizer, [_augment(fields.train[i], rng) for i in chosen], settings, target_device, use_amp
            )
        except OUT_OF_MEMORY_ERRORS:
            raise DeviceOutOfMemory(target_device, "training") from None
        value = float(loss.detach())
        running = value if running is None else 0.9 * running + 0.1 * value
        now = time.perf_counter()
        record = {
            "step": step,
            "loss": value,
            "smoothed_loss": running,
            "seconds": now - start,  # wall-clock since the start, field preparation included
            "training_seconds": now - loop_start,  # what counts against max_minutes
            "checkpoint_seconds": checkpoint_seconds,
        }
        checkpoint_due = bool(pending_checkpoints) and time.perf_counter() - loop_start >= 60 * pending_checkpoints[0]
        if step % settings.validate_every == 0 or step == total_steps or checkpoint_due:
            record["validation_loss"] = validate(step)
            threads.adapt()  # other processes may have started or ended
        if checkpoint_due:
            minutes = pending_checkpoints.pop(0)
            if on_checkpoint is not None:
                paused = time.perf_counter()
                on_checkpoint(
                    {
                        "minutes": minutes,
                        "step": step,
                        "best_step": result.best_step,
                        "state": best_state,
                        "config": model.config,
                        "fields": fields,
                    }
                )
                spent = time.perf_counter() - paused
                checkpoint_seconds += spent
                if deadline is None:  # the callback's time is not training time
                    loop_start += spent
        result.history.append(record)
        if progress is not None:
            progress({"phase": "training", "total": total_steps, **record})
    ended_before_plan = result.stopped_early or result.out_of_time
    if ended_before_plan and step > 0 and (not result.history or "validation_loss" not in result.history[-1]):
        validate(step)  # where we stopped, so that the last steps count when choosing the best model
    if step == 0 and initial_model is None:
        raise TrainingCancelled("training was stopped before its first step; no model was kept")
    result.optimizer_state = optimizer.state_dict()
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result
