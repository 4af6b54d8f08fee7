"""npe2 writer: a Points layer (with its features, cluster labels included) -> ThunderSTORM CSV, lossless."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_miro.io import write_thunderstorm

from .layers import layer_to_dataframe


def write_points(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Points layer: x, y from its coordinates (nm), every feature as a column."""
    target = Path(path)
    if target.suffix.lower() != ".csv":
        target = target.with_suffix(".csv")
    df = layer_to_dataframe(data, meta.get("features"), meta.get("metadata"))
    write_thunderstorm(df, target)
    return [str(target)]
