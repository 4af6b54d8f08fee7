"""The model file: a trained network with the settings needed to apply it, in one safe file.

safetensors holds the weights; the network's configuration and :class:`MIROSettings` (graph threshold, units,
DBSCAN's suggested parameters, class names, the training record) are JSON text in its metadata. Loading never
runs code from the file, and every number the file claims is bounded and checked against its tensors before
anything is allocated (:data:`LIMITS`).

Pure core (torch, safetensors): imports neither Qt nor napari; of napari_miro only model, graph and output_files.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from napari_miro.model import MIRO, MIROConfig

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "LIMITS", "MIROSettings", "ModelFileError", "TrainedMIRO"]


FORMAT_NAME = "napari-miro-model"

FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that cannot be loaded (missing, corrupt, foreign, or from an unknown version)."""


class _Refusal(ValueError):
    """One claim of a model file that cannot be true here; :meth:`TrainedMIRO.load` names the file."""


#: what a model file may claim, generous for real models (the paper's: hidden 256, <= 25 steps) and tight enough
#: that a lying header cannot make loading or clustering allocate gigabytes or run for hours
LIMITS = {
    "hidden": (1, 2048),
    "steps": (1, 100),
    "n_classes": (0, 64),
    "passes": (1, 10),
    "delta_nm": (0.1, 1e5),
    "length_nm": (1e-3, 1e6),  # displacement unit, edge scale, DBSCAN eps
    "field_size_nm": (1.0, 1e7),
    "min_samples": (1, 10**6),
}


def _checked(name: str, value, limits: tuple[float, float], integer: bool = False, optional: bool = False):
    """``value`` when it is a number within ``limits`` (an int when ``integer``), else a ModelFileError."""
    if value is None and optional:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise _Refusal(f"the model file's {name} is {value!r}, not a {'whole ' if integer else ''}number")
    low, high = limits
    if not low <= value <= high:
        raise _Refusal(f"the model file claims {name} = {value:g}, outside {low:g}..{high:g}")
    return value


def _check_config(config: MIROConfig) -> None:
    """Refuse network descriptions that could not run here or that no real model has (before allocating)."""
    from napari_miro.graph import N_ENCODINGS

    _checked("hidden size", config.hidden, LIMITS["hidden"], integer=True)
    _checked("recurrent steps", config.steps, LIMITS["steps"], integer=True)
    _checked("number of classes", config.n_classes, LIMITS["n_classes"], integer=True)
    if config.node_features != N_ENCODINGS or config.edge_features != 3:
        raise _Refusal(
            f"the network reads {config.node_features} node and {config.edge_features} edge features; this "
            f"napari-miro gives {N_ENCODINGS} and 3"
        )
    if config.fine_step is not None:
        _checked("fine-scale step", config.fine_step, (0, config.steps - 1), integer=True)


def _check_settings(settings: MIROSettings, n_classes: int) -> None:
    _checked("delta", settings.delta_nm, LIMITS["delta_nm"])
    _checked("displacement unit", settings.displacement_unit_nm, LIMITS["length_nm"], optional=True)
    _checked("edge scale", settings.edge_scale_nm, LIMITS["length_nm"], optional=True)
    _checked("training field size", settings.field_size_nm, LIMITS["field_size_nm"])
    if settings.field_size_nm < settings.delta_nm:
        raise _Refusal(f"the model's field ({settings.field_size_nm:g} nm) is smaller than its delta")
    _checked("passes", settings.passes, LIMITS["passes"], integer=True)
    for name in ("eps_nm", "fine_eps_nm", "dbscan_eps_nm"):
        _checked(name, getattr(settings, name), LIMITS["length_nm"], optional=name != "eps_nm")
    for name in (
        "min_samples",
        "fine_min_samples",
        "dbscan_min_samples",
        "hdbscan_min_cluster_size",
        "hdbscan_alone_min_cluster_size",
    ):
        _checked(name, getattr(settings, name), LIMITS["min_samples"], integer=True, optional=name != "min_samples")
    names = settings.class_names
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise _Refusal("the model file's class names are not a list of names")
    if names and len(names) != n_classes:
        raise _Refusal(f"the model file names {len(names)} classes but its network has {n_classes}")
    if not isinstance(settings.training, dict):
        raise _Refusal("the model file's training record is not a record")


def _check_tensors(config: MIROConfig, shapes: dict[str, tuple[int, ...]]) -> None:
    """The tensors must be exactly those of the described network (compared on the meta device: no memory)."""
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in MIRO(config).state_dict().items()}
    if shapes != expected:
        wrong = sorted(set(shapes) ^ set(expected)) or [n for n in expected if shapes[n] != expected[n]]
        raise _Refusal(f"its tensors do not match the network it describes (first difference: {wrong[0]})")


@dataclass
class MIROSettings:
    """How a trained model reads data and how its output is clustered (saved with the weights)."""

    delta_nm: float
    displacement_unit_nm: float | None = None  #: the model predicts displacements in this unit (None = delta)
    scale_encodings: bool = True
    edge_scale_nm: float | None = 50.0
    field_size_nm: float = 2000.0  #: size of the synthetic training fields = inference tile size
    class_names: list[str] = field(default_factory=list)  #: index -> name, 0 = background; empty = none
    eps_nm: float = 20.0  #: suggested DBSCAN eps on the collapsed points
    min_samples: int = 5
    fine_eps_nm: float | None = None  #: multiscale: DBSCAN on the fine-scale step's output
    fine_min_samples: int | None = None
    dbscan_eps_nm: float | None = None  #: DBSCAN alone on the original points, tuned the same way
    dbscan_min_samples: int | None = None
    hdbscan_min_cluster_size: int | None = None  #: HDBSCAN on the collapsed points (tuned as DBSCAN's)
    hdbscan_alone_min_cluster_size: int | None = None  #: HDBSCAN alone on the original points
    preset: str = "compact"
    training: dict = field(default_factory=dict)  #: summary of the training run
    #: times the network is applied: each pass rebuilds the graph on the previous pass's collapsed positions
    passes: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MIROSettings:
        return cls(**{name: values[name] for name in cls.__dataclass_fields__ if name in values})

    @property
    def margin_nm(self) -> float:
        """Context kept around each tile's core: a quarter of the field, at least two deltas."""
        return max(0.25 * self.field_size_nm, 2 * self.delta_nm)

    @property
    def unit_nm(self) -> float:
        return self.displacement_unit_nm or self.delta_nm


@dataclass
class TrainedMIRO:
    """A trained network with the settings needed to apply it; saved and loaded as one safe file."""

    model: MIRO
    settings: MIROSettings

    @property
    def has_classes(self) -> bool:
        return self.model.config.n_classes > 0

    @property
    def is_multiscale(self) -> bool:
        return self.model.config.fine_step is not None

    def save(self, path: str | Path) -> Path:
        """Write safetensors weights with the whole configuration as JSON metadata (no pickle). The folder is checked
        first (:class:`~napari_miro.output_files.OutputPathError`); a failed write raises OSError and leaves any
        earlier file at ``path`` as it was."""
        from safetensors.torch import save_file

        from napari_miro.output_files import atomic_path, check_output

        path = check_output(path, what="model file")
        metadata = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "network": json.dumps(self.model.config.to_dict()),
            "settings": json.dumps(self.settings.to_dict()),
        }
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.model.state_dict().items()}
        from safetensors import SafetensorError

        try:
            with atomic_path(path) as partial:  # never half a model file, never the old one destroyed by a failure
                save_file(tensors, str(partial), metadata=metadata)
        except SafetensorError as error:  # e.g. a full disk
            raise OSError(f"could not write {path}: {error}") from None
        return path

    @staticmethod
    def _description(metadata: dict) -> tuple[MIROConfig, MIROSettings]:
        try:
            network, stored = json.loads(metadata["network"]), json.loads(metadata["settings"])
            if not isinstance(network, dict) or not isinstance(stored, dict):
                raise TypeError("not a record")
            return MIROConfig.from_dict(network), MIROSettings.from_dict(stored)
        except (KeyError, TypeError, ValueError) as error:
            raise _Refusal(f"the model description is damaged ({error})") from None

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> TrainedMIRO:
        """Load a model file. Loading never runs code from the file: safetensors holds only tensors and text."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file.")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                metadata = handle.metadata() or {}
                shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
                if metadata.get("format") != FORMAT_NAME:
                    raise ModelFileError(
                        f"{path.name} holds tensors, but not a napari-miro model (no '{FORMAT_NAME}' tag)."
                    )
                if int(metadata.get("format_version", "0")) > FORMAT_VERSION:
                    raise ModelFileError(
                        f"{path.name} was written by a newer napari-miro; update napari-miro to open it."
                    )
                config, settings = cls._description(metadata)
                _check_config(config)
                _check_settings(settings, config.n_classes)
                _check_tensors(config, shapes)
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except _Refusal as error:
            raise ModelFileError(f"{path.name} was refused: {error}.") from None
        except ModelFileError:  # already names the file (foreign tensors, a newer format)
            raise
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise ModelFileError(
                f"{path.name} is not a napari-miro model file (it could not be read as safetensors: {error})."
            ) from None
        try:
            model = MIRO(config)
            model.load_state_dict(tensors, strict=True)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ModelFileError(f"{path.name}: the model description is damaged ({error}).") from None
        model.to(device).eval()
        return cls(model, settings)
