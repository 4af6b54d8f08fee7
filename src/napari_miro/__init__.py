"""napari-miro: learned few-shot clustering of SMLM localizations (MIRO + DBSCAN) for napari.

The public API::

    from napari_miro import MIROClusterer, read_localizations

    table = read_localizations("cell.csv")             # x, y in nm + every other column
    xy = table[["x", "y"]].to_numpy()
    clusterer = MIROClusterer(minutes=2).fit(xy, clusters=[indices_of_one_cluster])
    labels = clusterer.predict(xy)                     # 0 = not clustered

The core modules import neither Qt nor napari; everything napari-specific lives in :mod:`napari_miro._napari`.
The names below load their modules on first use, so that ``import napari_miro`` (as napari does to read a file)
does not import PyTorch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_PUBLIC = {
    "MIROClusterer": "estimator",
    "AnnotatedData": "annotations",
    "annotations_from_polygons": "annotations",
    "ClusterResult": "inference",
    "TrainedMIRO": "model_file",
    "ModelFileError": "model_file",
    "TrainingSettings": "recipe",
    "PRESETS": "recipe",
    "LocalizationFileError": "io",
    "read_localizations": "io",
    "write_thunderstorm": "io",
    "cluster_statistics": "stats",
    "base_model_names": "base_models",
    "Region": "regions",
    "read_regions": "regions",
    "write_regions": "regions",
    "region_summary": "summaries",
    "ripley": "ripley_functions",
    "RipleyResult": "ripley_functions",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"napari_miro.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'napari_miro' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
