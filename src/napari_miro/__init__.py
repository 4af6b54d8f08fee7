"""napari-miro: learned few-shot clustering of SMLM localizations (MIRO + DBSCAN) for napari.

The core modules (io, simulate, graph, model, train, cluster, stats, metrics) import neither Qt nor napari;
everything napari-specific lives in :mod:`napari_miro._napari`.
"""

from napari_miro.io import LocalizationFileError, read_localizations, write_thunderstorm

__version__ = "0.1.0"

__all__ = ["LocalizationFileError", "__version__", "read_localizations", "write_thunderstorm"]
