"""The model file: a trained network with the settings needed to apply it, in one safe file.

safetensors holds the weights; the network's configuration and :class:`MIROSettings` (graph threshold, units,
DBSCAN's suggested parameters, class names, the training record) are JSON text in its metadata. Loading never
runs code from the file.

Pure core (torch, safetensors): imports neither Qt nor napari; of napari_miro only model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from napari_miro.model import MIRO, MIROConfig

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MIROSettings", "ModelFileError", "TrainedMIRO"]


FORMAT_NAME = "napari-miro-model"

FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that cannot be loaded (missing, corrupt, foreign, or from an unknown version)."""


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
        """Write safetensors weights with the whole configuration as JSON metadata (no pickle)."""
        from safetensors.torch import save_file

        path = Path(path)
        metadata = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "network": json.dumps(self.model.config.to_dict()),
            "settings": json.dumps(self.settings.to_dict()),
        }
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.model.state_dict().items()}
        save_file(tensors, str(path), metadata=metadata)
        return path

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
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise ModelFileError(
                f"{path.name} is not a napari-miro model file (it could not be read as safetensors: {error})."
            ) from None
        if metadata.get("format") != FORMAT_NAME:
            raise ModelFileError(f"{path.name} holds tensors, but not a napari-miro model (no '{FORMAT_NAME}' tag).")
        if int(metadata.get("format_version", "0")) > FORMAT_VERSION:
            raise ModelFileError(f"{path.name} was written by a newer napari-miro; update napari-miro to open it.")
        try:
            config = MIROConfig.from_dict(json.loads(metadata["network"]))
            settings = MIROSettings.from_dict(json.loads(metadata["settings"]))
            model = MIRO(config)
            model.load_state_dict(tensors, strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError, json.JSONDecodeError) as error:
            raise ModelFileError(f"{path.name}: the model description is damaged ({error}).") from None
        model.to(device).eval()
        return cls(model, settings)
