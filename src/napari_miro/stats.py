"""Per-cluster statistics: one row per cluster, the same table for MIRO + DBSCAN and for DBSCAN alone.

Pure core (numpy, scipy, pandas): imports neither Qt nor napari.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import ConvexHull, QhullError, cKDTree

__all__ = ["STATISTICS_COLUMNS", "cluster_statistics", "compare_statistics"]

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


def _hull(points: np.ndarray) -> tuple[float, np.ndarray]:
    """Convex hull area (0 for fewer than 3 points or collinear points) and the hull's vertices."""
    if len(points) < 3:
        return 0.0, points
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):  # collinear or duplicate points: no area
        return 0.0, points
    return float(hull.volume), points[hull.vertices]


def _max_extent(vertices: np.ndarray) -> float:
    if len(vertices) < 2:
        return 0.0
    difference = vertices[:, None, :] - vertices[None, :, :]
    return float(np.sqrt((difference**2).sum(-1)).max())


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
        area, vertices = _hull(points)
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
                "radius_of_gyration_nm": float(np.sqrt(((points - centroid) ** 2).sum(axis=1).mean())),
                "convex_hull_area_nm2": area,
                "max_extent_nm": _max_extent(vertices),
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


def overlay_histograms(
    axis, series: list[tuple[str, np.ndarray, str]], bins: int = 20, fractions: bool = False, alpha: float = 0.6
) -> None:
    """Histograms of several methods' values (label, values, colour), drawn in order on shared bins on a
    matplotlib axis; with ``fractions`` each bar is a fraction of that method's clusters, so that methods
    with different cluster counts compare. The label gets the method's count."""
    values = [np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))] for _, v, _ in series]
    joined = np.concatenate(values) if sum(len(v) for v in values) else np.array([0.0, 1.0])
    edges = np.histogram_bin_edges(joined, bins=bins)
    for (label, _, colour), value in zip(series, values, strict=True):
        weights = np.full(len(value), 1.0 / max(len(value), 1)) if fractions else None
        axis.hist(value, bins=edges, weights=weights, color=colour, alpha=alpha, label=f"{label} ({len(value)})")
    if fractions:
        axis.set_ylabel("fraction of clusters")
