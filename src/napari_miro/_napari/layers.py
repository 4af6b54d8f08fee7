"""Localization tables <-> napari Points layer data (nm, coordinates in (y, x) order)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Key under which the plugin keeps its information in ``layer.metadata``.
METADATA_KEY = "napari_miro"
DEFAULT_POINT_SIZE_NM = 20.0
LOCALIZATION_COLOR = "#ffb000"


#: distinct colours for clusters (Okabe-Ito and Tableau hues, no grey: grey is "not clustered")
CLUSTER_PALETTE = np.array(
    [
        [0.90, 0.62, 0.00], [0.34, 0.71, 0.91], [0.00, 0.62, 0.45], [0.94, 0.89, 0.26], [0.00, 0.45, 0.70],
        [0.84, 0.37, 0.00], [0.80, 0.47, 0.65], [0.58, 0.40, 0.74], [0.55, 0.86, 0.35], [1.00, 0.50, 0.50],
    ]
)  # fmt: skip
NOT_CLUSTERED_RGBA = (0.43, 0.43, 0.43, 0.6)


def label_colours(labels: np.ndarray, yx: np.ndarray) -> np.ndarray:
    """An RGBA colour per point, so that touching clusters never share a colour: clusters are coloured greedily
    over the Delaunay graph of their centroids (each takes the palette colour least used among its neighbours);
    label 0 is grey."""
    from scipy.spatial import Delaunay, QhullError

    labels = np.asarray(labels, dtype=np.int64)
    colours = np.tile(np.array(NOT_CLUSTERED_RGBA), (len(labels), 1))
    present = np.unique(labels[labels > 0])
    if len(present) == 0:
        return colours
    index = np.searchsorted(present, labels)
    inside = labels > 0
    counts = np.bincount(index[inside], minlength=len(present))
    centroids = np.column_stack([np.bincount(index[inside], yx[inside, k], len(present)) for k in (0, 1)])
    centroids /= np.maximum(counts, 1)[:, None]
    neighbours: list[set[int]] = [set() for _ in present]
    try:
        for simplex in Delaunay(centroids).simplices:
            for a in simplex:
                neighbours[a].update(int(b) for b in simplex if b != a)
    except (QhullError, ValueError):  # fewer than 3 clusters, or all on a line: consecutive ones are neighbours
        for a in range(len(present) - 1):
            neighbours[a].add(a + 1)
            neighbours[a + 1].add(a)
    chosen = np.full(len(present), -1)
    for cluster in np.argsort(-np.array([len(n) for n in neighbours]), kind="stable"):  # most neighbours first
        used = np.bincount([chosen[n] for n in neighbours[cluster] if chosen[n] >= 0], minlength=len(CLUSTER_PALETTE))
        chosen[cluster] = int(np.argmin(used))
    colours[inside, :3] = CLUSTER_PALETTE[chosen[index[inside]]]
    colours[inside, 3] = 1.0
    return colours


def point_size_nm(df: pd.DataFrame) -> float:
    """A point size that reads well for SMLM: twice the median localization precision, 10-40 nm."""
    if "uncertainty" in df and len(df):
        median = float(np.nanmedian(df["uncertainty"].to_numpy(dtype=float)))
        if np.isfinite(median) and median > 0:
            return float(np.clip(2 * median, 10.0, 40.0))
    return DEFAULT_POINT_SIZE_NM


def points_layer_data(df: pd.DataFrame, name: str) -> tuple[np.ndarray, dict[str, Any], str]:
    """LayerData for a Points layer of localizations: (y, x) in nm, every column in ``features``."""
    data = df[["y", "x"]].to_numpy(dtype=np.float64)
    features = df.reset_index(drop=True)
    attrs = dict(df.attrs)
    features.attrs = {}
    clustered = "cluster" in df and pd.api.types.is_integer_dtype(df["cluster"])  # a table written after clustering
    kwargs = {
        "name": name,
        "features": features,
        "size": point_size_nm(df),
        "border_width": 0,
        "face_color": label_colours(df["cluster"].to_numpy(), data) if clustered else LOCALIZATION_COLOR,
        "units": "nm",
        "axis_labels": ("y", "x"),
        "metadata": {
            METADATA_KEY: {
                "columns": attrs.get("columns", {}),
                "source": attrs.get("source"),
                "pixel_size_nm": attrs.get("pixel_size_nm"),
                "n_dropped": attrs.get("n_dropped", 0),
            }
        },
    }
    return data, kwargs, "points"


def layer_to_dataframe(data: np.ndarray, features: Any, metadata: dict | None) -> pd.DataFrame:
    """Rebuild a localization table from a Points layer: x, y (and z) from the layer's coordinates (nm),
    every feature as a column, column units from the metadata that the reader recorded."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 2:
        data = data.reshape(0, 2)
    df = pd.DataFrame(features).reset_index(drop=True) if features is not None else pd.DataFrame()
    if len(df) != len(data):
        df = pd.DataFrame(index=range(len(data)))
    df = df.copy()
    coordinates = {"x": data[:, -1], "y": data[:, -2]}
    if data.shape[1] >= 3:
        coordinates["z"] = data[:, -3]
    for position, (name, values) in enumerate(coordinates.items()):
        if name in df:
            df[name] = values
        else:
            df.insert(position, name, values)
    info = (metadata or {}).get(METADATA_KEY, {}).get("columns", {})
    df.attrs = {"columns": {name: spec for name, spec in info.items() if name in df.columns}}
    return df
