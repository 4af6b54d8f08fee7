"""npe2 reader: ThunderSTORM and generic x/y CSV files become a Points layer in nm.

A thin adapter over :mod:`napari_miro.io`. It takes every .csv / .txt file, so that a table it cannot read (no x
and y columns, empty, not numbers) gets napari-miro's own message instead of napari's "the reader refused the
file" (napari offers its other CSV readers beside it); and a folder that holds localization tables, each opened
as a layer. Problems become notifications, never tracebacks.
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
    """Return a reader function for .csv / .txt files (or a list of them), or a folder holding localization
    tables; else None (other readers then get the path)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        return None
    if len(paths) == 1 and Path(paths[0]).is_dir():
        tables = tables_in(Path(paths[0]))  # found once: the reader opens these
        return (lambda _folder, **_: read_localization_files(tables)) if tables else None
    for item in paths:
        item = Path(item)
        if item.suffix.lower() not in SUFFIXES or not item.is_file():
            return None
    return read_localization_files


def tables_in(folder: Path) -> list[Path]:
    """The localization tables directly inside a folder, sorted by name."""
    return sorted(
        item
        for item in folder.iterdir()
        if item.suffix.lower() in SUFFIXES and item.is_file() and looks_like_localization_table(item)
    )


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
