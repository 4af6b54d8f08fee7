"""Per-cluster statistics: one row per cluster, the same table for MIRO + DBSCAN and for DBSCAN alone.

Pure core (numpy, scipy, pandas): imports neither Qt nor napari; of napari_miro only geometry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from napari_miro.geometry import convex_hull, max_extent, radius_of_gyration

__all__ = ["STATISTICS_COLUMNS", "SUMMARY_STATISTICS", "cluster_statistics", "compare_statistics"]

#: Columns of the statistics table, in order (lengths in nm, areas in nm^2).
STATISTICS_COLUMNS = [
    "cluster",
    "n_localizations",
    "x",
    "y",
    "radius_of_gyration_nm",
    "convex_hull_area_nm2",
    "max_extent_nm",
    "nearest_neighbour_nm",
    "class",
]

#: The statistics the batch summary compares between groups: (column, axis label).
SUMMARY_STATISTICS = [
    ("n_localizations", "localizations per cluster"),
    ("radius_of_gyration_nm", "radius of gyration (nm)"),
    ("nearest_neighbour_nm", "nearest-neighbour distance (nm)"),
]


def cluster_statistics(
    positions: np.ndarray,
    labels: np.ndarray,
    cluster_class: dict[int, int] | None = None,
    class_names: list[str] | None = None,
) -> pd.DataFrame:
    """One row per cluster (label > 0): size, centroid (nm), radius of gyration, convex-hull area, maximum
    extent, distance to the nearest other cluster centroid (NaN when there is only one cluster) and class
    (its name when ``class_names`` is given, '' without classes)."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels)
    clustered = labels > 0
    ids = np.unique(labels[clustered])
    rows = []
    order = np.argsort(labels[clustered], kind="stable")
    grouped = np.split(positions[clustered][order], np.flatnonzero(np.diff(labels[clustered][order])) + 1)
    for label, points in zip(ids, grouped if len(ids) else [], strict=False):
        centroid = points.mean(axis=0)
        area, vertices = convex_hull(points)
        class_value = ""
        if cluster_class is not None:
            class_id = cluster_class.get(int(label), 0)
            class_value = class_names[class_id] if class_names and class_id < len(class_names) else str(class_id)
        rows.append(
            {
                "cluster": int(label),
                "n_localizations": len(points),
                "x": centroid[0],
                "y": centroid[1],
                "radius_of_gyration_nm": radius_of_gyration(points),
                "convex_hull_area_nm2": area,
                "max_extent_nm": max_extent(vertices),
                "nearest_neighbour_nm": np.nan,
                "class": class_value,
            }
        )
    table = pd.DataFrame(rows, columns=STATISTICS_COLUMNS)
    if len(table) >= 2:
        centroids = table[["x", "y"]].to_numpy()
        distances, _ = cKDTree(centroids).query(centroids, k=2)
        table["nearest_neighbour_nm"] = distances[:, 1]
    table["n_localizations"] = table["n_localizations"].astype(np.int64)
    table["cluster"] = table["cluster"].astype(np.int64)
    return table


def compare_statistics(miro: pd.DataFrame, dbscan: pd.DataFrame) -> pd.DataFrame:
    """Both tables stacked with a ``method`` column ("MIRO + DBSCAN", "DBSCAN"), for side-by-side plots."""
    return pd.concat([miro.assign(method="MIRO + DBSCAN"), dbscan.assign(method="DBSCAN")], ignore_index=True)
