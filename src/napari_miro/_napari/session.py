"""What the widgets share for one viewer: the last clustering run, and helpers to reach layers and models.

The trained model travels with the layer it was trained on (``layer.metadata[MODEL_KEY]``), so that the
Cluster widget finds it whichever widget trained or loaded it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
from psygnal import Signal

from .layers import layer_to_dataframe

MODEL_KEY = "napari_miro_model"  #: layer.metadata key of the TrainedMIRO attached to a layer
ANNOTATION_KEY = "napari_miro_annotates"  #: Shapes layer metadata: the name of the layer it annotates
PREVIEW_KEY = "napari_miro_preview"  #: metadata of a layer that previews clusters during training


@dataclass
class ClusteringRun:
    """One MIRO + DBSCAN (or HDBSCAN) run on a layer, with the same method alone beside it when asked for."""

    layer_name: str
    table: pd.DataFrame  #: every input column + cluster, x_collapsed, y_collapsed (+ class, fine_cluster)
    statistics: pd.DataFrame
    dbscan_statistics: pd.DataFrame | None
    centroids_layer: str | None = None
    method: str = "DBSCAN"  #: the clustering after MIRO, as shown to the user ("DBSCAN" or "HDBSCAN")


class MiroSession:
    """Shared state of the napari-miro widgets of one viewer."""

    clustered = Signal(object)  #: emitted with the new ClusteringRun

    def __init__(self) -> None:
        self.last_run: ClusteringRun | None = None


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer) -> MiroSession:
    """The session of a viewer (made on first use)."""
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = MiroSession()
    return _SESSIONS[viewer]


def layer_table(layer) -> pd.DataFrame:
    """A Points layer as a localization table: x, y (nm) from its coordinates, every feature a column."""
    return layer_to_dataframe(layer.data, layer.features, layer.metadata)


def layer_xy(layer) -> np.ndarray:
    """(x, y) in nm of a Points layer's points (napari holds them as (y, x))."""
    data = np.asarray(layer.data, dtype=np.float64)
    return data[:, [-1, -2]] if len(data) else np.zeros((0, 2))
