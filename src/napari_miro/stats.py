"""Per-cluster statistics: one row per cluster, the same table for MIRO + DBSCAN and for DBSCAN alone.

Pure core (numpy, scipy, pandas): imports neither Qt nor napari; of napari_miro only geometry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from napari_miro.geometry import (
    convex_hull,
    hull_circularity,
    hull_diameter,
    inertia_moments,
    oriented_bounding_box,
    radius_of_gyration,
)

__all__ = [
    "FRAME_COLUMNS",
    "STATISTICS_COLUMNS",
    "STATISTICS_LABELS",
    "SUMMARY_STATISTICS",
    "cluster_statistics",
    "compare_statistics",
]

#: Columns of the statistics table, in order (lengths in nm, areas in nm^2, angles in degrees). The shape
#: descriptors follow locan's definitions: density over the convex hull (``localization_density_ch``, here per
#: um^2), orientation and eccentricity from the covariance's eigenvalues (``orientation_im``,
#: ``eccentricity_im``), length, width and elongation 1 - width / length of the smallest oriented bounding
#: rectangle (``elongation_obr``); circularity is the convex hull's 4 pi area / perimeter^2.
STATISTICS_COLUMNS = [
    "cluster",
    "n_localizations",
    "x",
    "y",
    "radius_of_gyration_nm",
    "convex_hull_area_nm2",
    "max_extent_nm",
    "density_per_um2",
    "length_nm",
    "width_nm",
    "elongation",
    "orientation_deg",
    "eccentricity",
    "circularity",
    "nearest_neighbour_nm",
    "class",
]
#: Added when the localizations have frame numbers (as Picasso's cluster tables): distinct frames, their mean
#: and standard deviation. One molecule blinking for a few frames gives few distinct frames close in time; a
#: real cluster collects localizations over the whole acquisition.
FRAME_COLUMNS = ["n_frames", "frame_mean", "frame_std"]

#: Axis labels of the numeric statistics (the Statistics widget offers each).
STATISTICS_LABELS = {
    "n_localizations": "localizations per cluster",
    "radius_of_gyration_nm": "radius of gyration (nm)",
    "convex_hull_area_nm2": "convex hull area (nm²)",
    "max_extent_nm": "maximum extent (nm)",
    "density_per_um2": "localizations per µm² (convex hull)",
    "length_nm": "length (nm, oriented box)",
    "width_nm": "width (nm, oriented box)",
    "elongation": "elongation (1 - width / length)",
    "orientation_deg": "orientation (degrees from x)",
    "eccentricity": "eccentricity",
    "circularity": "circularity (4π area / perimeter²)",
    "nearest_neighbour_nm": "nearest-neighbour distance (nm)",
    "n_frames": "distinct frames per cluster",
    "frame_mean": "mean frame",
    "frame_std": "standard deviation of frames",
}

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
    frames: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per cluster (label > 0).

    Parameters
    ----------
    positions
        (N, 2) localizations (x, y) in nm.
    labels
        (N,) cluster labels, 0 = not clustered.
    cluster_class, class_names
        Each cluster's class id and the classes' names (the ``class`` column; '' without classes).
    frames
        (N,) frame numbers; adds :data:`FRAME_COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        :data:`STATISTICS_COLUMNS` (and :data:`FRAME_COLUMNS` with frames): size, centroid, radius of gyration,
        convex-hull area, maximum extent, density, oriented box, elongation, orientation, eccentricity,
        circularity, distance to the nearest other cluster centroid (NaN when there is only one cluster), class.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels)
    clustered = labels > 0
    ids = np.unique(labels[clustered])
    rows = []
    order = np.argsort(labels[clustered], kind="stable")
    splits = np.flatnonzero(np.diff(labels[clustered][order])) + 1
    grouped = np.split(positions[clustered][order], splits)
    frame_groups = np.split(np.asarray(frames)[clustered][order], splits) if frames is not None else None
    for index, (label, points) in enumerate(zip(ids, grouped if len(ids) else [], strict=False)):
        centroid = points.mean(axis=0)
        area, vertices = convex_hull(points)
        length, width, _ = oriented_bounding_box(vertices)
        orientation, eccentricity = inertia_moments(points)
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
                "max_extent_nm": hull_diameter(vertices),
                "density_per_um2": len(points) / area * 1e6 if area > 0 else np.nan,
                "length_nm": length,
                "width_nm": width,
                "elongation": 1 - width / length if length > 0 else np.nan,
                "orientation_deg": orientation,
                "eccentricity": eccentricity,
                "circularity": hull_circularity(area, vertices),
                "nearest_neighbour_nm": np.nan,
                "class": class_value,
            }
        )
        if frame_groups is not None:
            cluster_frames = frame_groups[index].astype(np.float64)
            rows[-1]["n_frames"] = len(np.unique(cluster_frames))
            rows[-1]["frame_mean"] = cluster_frames.mean()
            rows[-1]["frame_std"] = cluster_frames.std()
    columns = STATISTICS_COLUMNS + (FRAME_COLUMNS if frames is not None else [])
    table = pd.DataFrame(rows, columns=columns)
    if frames is not None:
        table["n_frames"] = table["n_frames"].astype(np.int64)
    if len(table) >= 2:
        centroids = table[["x", "y"]].to_numpy()
        distances, _ = cKDTree(centroids).query(centroids, k=2)
        table["nearest_neighbour_nm"] = distances[:, 1]
    table["n_localizations"] = table["n_localizations"].astype(np.int64)
    table["cluster"] = table["cluster"].astype(np.int64)
    return table


def compare_statistics(miro: pd.DataFrame, alone: pd.DataFrame, method: str = "DBSCAN") -> pd.DataFrame:
    """Both tables stacked with a ``method`` column ("MIRO + DBSCAN", "DBSCAN"; or HDBSCAN's), for side-by-side
    plots."""
    return pd.concat([miro.assign(method=f"MIRO + {method}"), alone.assign(method=method)], ignore_index=True)
