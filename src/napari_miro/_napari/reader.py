"""npe2 reader: ThunderSTORM and generic x/y CSV files become a Points layer in nm.

A thin adapter over :mod:`napari_miro.io`: it declines (returns None) any file whose header names no x/y
columns, so other CSV readers keep working, and turns a problem with a localization table into a clear
notification instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_miro.io import LocalizationFileError, looks_like_localization_table, read_localizations

from .layers import points_layer_data

SUFFIXES = {".csv", ".txt"}
NULL_LAYER = [(None,)]  # npe2's sentinel: the file was ours, but no layer is added


def napari_get_reader(path: str | list[str]) -> Callable[..., list] | None:
    """Return a reader function when ``path`` is a localization table (or a list of them), else None."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        return None
    for item in paths:
        item = Path(item)
        if item.suffix.lower() not in SUFFIXES or not item.is_file() or not looks_like_localization_table(item):
            return None
    return read_localization_files


def read_localization_files(path: str | list[str], **_: Any) -> list:
    """Read each file into a Points layer; problems become napari notifications, never tracebacks."""
    from napari.utils.notifications import show_error, show_warning

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for item in paths:
        item = Path(item)
        try:
            df = read_localizations(item, on_warning=show_warning)
        except LocalizationFileError as error:
            show_error(str(error))
            continue
        layers.append(points_layer_data(df, item.stem))
    return layers or NULL_LAYER
