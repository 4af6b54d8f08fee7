"""Pre-trained base models shipped with the package, and fine-tuning from them.

A base model is a compact MIRO network pre-trained on many simulated structures of one family (made by
``scripts/train_base_models.py``: seed, data recipe, steps, device, time and metrics are in the model card,
``<name>.json``, next to each weight file ``<name>.safetensors`` in ``napari_miro/base_models_data``).
Single-shot training can start from one and only fine-tune: ``MIROClusterer(base_model="auto")`` chooses
from the annotated clusters' shape, or name one. Loading is as safe as any model file (safetensors + JSON).

Pure core: imports neither Qt nor napari; of napari_miro only model, model_file and recipe.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import numpy as np

from napari_miro.model import MIRO, MIROConfig
from napari_miro.model_file import ModelFileError, TrainedMIRO
from napari_miro.recipe import default_fine_step

__all__ = ["AUTO", "arc_spread", "base_model_names", "choose_base_model", "load_base_model", "start_from_base"]

AUTO = "auto"
#: Annotated clusters whose arc spread (radial spread around the best-fitting circle over its radius) is below
#: this are rings or arcs (C-shapes); above it filled (measured on the simulators: rings and C-shapes 0.17-0.26,
#: Gaussian clusters 0.39-0.47, 3:1 ellipses 0.43-0.51).
ARC_BELOW = 0.33
#: Below this many localizations a cluster's shape cannot be told (a circle fits a few points well whatever
#: their shape: a Gaussian cluster of 10 points passes for an arc 39% of the time, of 30 points 2%): such
#: clusters count as filled.
SHAPE_MIN_POINTS = 30


def _folder() -> Path:
    return Path(str(files("napari_miro") / "base_models_data"))


def base_model_names() -> list[str]:
    """Names of the shipped base models."""
    folder = _folder()
    return sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def model_card(name: str) -> dict:
    """The model card of a base model: how it was trained and how well it did."""
    path = _folder() / f"{name}.json"
    if not path.is_file():
        raise ModelFileError(f"no base model named {name!r}; choose from {', '.join(base_model_names()) or 'none'}")
    return json.loads(path.read_text())


def load_base_model(name: str) -> TrainedMIRO:
    """A shipped base model by name."""
    model_card(name)  # a clear error for an unknown name
    return TrainedMIRO.load(_folder() / f"{name}.safetensors")


def arc_spread(points: np.ndarray) -> float:
    """How far the points lie from the circle that fits them best (algebraic least squares), over its radius:
    ~0.2 for rings and arcs, over 0.4 for filled clusters, whose best circle runs through their middle."""
    centred = points - points.mean(axis=0)
    design = np.column_stack([2 * centred, np.ones(len(centred))])
    (a, b, c), *_ = np.linalg.lstsq(design, (centred**2).sum(axis=1), rcond=None)
    radius = float(np.sqrt(max(c + a * a + b * b, 0.0)))
    distances = np.sqrt(((centred - [a, b]) ** 2).sum(axis=1))
    return float((distances - radius).std() / max(radius, 1e-9))


def choose_base_model(data) -> str | None:
    """The base model that fits the annotated clusters: by shape (rings and arcs: rings; filled: nanoclusters,
    also for clusters too small to tell), when a model of that family is shipped; None when there is none.
    (Blinking bases are picked by name: auto does not choose them yet.)"""
    names = base_model_names()
    if not names:
        return None
    median = float(
        np.median([arc_spread(data.positions[c]) if len(c) >= SHAPE_MIN_POINTS else np.inf for c in data.clusters])
    )
    family = "rings" if median < ARC_BELOW else "nanoclusters"
    return family if family in names else None


def _adapted(base: MIRO, n_classes: int, fine_step: int | None) -> MIRO:
    """A copy of the base network for a task with ``n_classes`` classes and this fine step: every weight is the
    base's; a class head that the base lacks starts from the base's displacement rows and small random rows."""
    config = MIROConfig(hidden=base.config.hidden, steps=base.config.steps, n_classes=n_classes, fine_step=fine_step)
    model = MIRO(config)
    state = base.state_dict()
    own = model.state_dict()
    for name, tensor in state.items():
        if own[name].shape == tensor.shape:
            own[name] = tensor.clone()
        else:  # the head: keep the displacement rows (the first two)
            own[name][:2] = tensor[:2]
    model.load_state_dict(own)
    return model


def start_from_base(data, settings) -> tuple[object, MIRO | None, str | None]:
    """(settings, initial model, base name) for ``settings.base_model``: None -> (settings, None, None); a name
    or "auto" -> the base's network size and input/output scales with the user's delta."""
    wanted = settings.base_model
    if not wanted:
        return settings, None, None
    name = choose_base_model(data) if wanted == AUTO else wanted
    if name is None:
        return settings, None, None
    base = load_base_model(name)
    steps = base.model.config.steps
    fine_step = settings.fine_step
    # annotated fine labels and no step given, or a step the base's network does not have: its first half
    if (fine_step is None and data.fine_labels is not None) or (fine_step is not None and fine_step >= steps):
        fine_step = default_fine_step(steps)
    model = _adapted(base.model, data.n_classes, fine_step)
    adapted = replace(
        settings,
        hidden=base.model.config.hidden,
        recurrent_steps=steps,
        fine_step=fine_step,
        unit_nm=base.settings.unit_nm,
        edge_scale_nm=base.settings.edge_scale_nm,
        scale_encodings=base.settings.scale_encodings,
    )
    return adapted, model, name
