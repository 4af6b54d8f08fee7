"""Localization tables <-> napari Points layer data (nm, coordinates in (y, x) order)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from napari_miro.colours import label_colours

#: Key under which the plugin keeps its information in ``layer.metadata``.
METADATA_KEY = "napari_miro"
DEFAULT_POINT_SIZE_NM = 20.0
LOCALIZATION_COLOR = "#ffb000"


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
