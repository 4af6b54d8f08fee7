"""Per-region summaries of a clustering: how clustered is each cell or area of interest?

One row per region (a drawn ROI, or the whole field), as Clus-DoC's per-cell summary: localizations, area,
density, fraction clustered, clusters per um^2, median localizations per cluster, median radius of gyration, and
the density in clusters relative to the density outside them. A cluster belongs to the region that holds its
centroid; the localizations counted are those inside the region. Pure core (numpy, pandas): imports neither Qt
nor napari; of napari_miro only regions and stats.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_miro.regions import Region
from napari_miro.stats import cluster_statistics

__all__ = ["REGION_SUMMARY_COLUMNS", "REGION_SUMMARY_LABELS", "empty_regions", "region_summary"]

REGION_SUMMARY_COLUMNS = [
    "region",
    "n_localizations",
    "area_um2",
    "localizations_per_um2",
    "fraction_clustered",
    "n_clusters",
    "clusters_per_um2",
    "median_localizations_per_cluster",
    "median_radius_of_gyration_nm",
    "density_in_clusters_over_outside",
]

#: The summaries compared between groups (batch box plots): (column, axis label).
REGION_SUMMARY_LABELS = [
    ("fraction_clustered", "fraction of localizations clustered"),
    ("clusters_per_um2", "clusters per µm²"),
    ("median_localizations_per_cluster", "median localizations per cluster"),
    ("density_in_clusters_over_outside", "density in clusters / outside"),
]


def region_summary(
    positions: np.ndarray,
    labels: np.ndarray,
    regions: list[Region],
    statistics: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per region (:data:`REGION_SUMMARY_COLUMNS`).

    Parameters
    ----------
    positions
        (N, 2) localizations (x, y) in nm.
    labels
        (N,) cluster labels, 0 = not clustered.
    regions
        The regions to summarise (e.g. ``[Region.bounding_box(positions)]`` for the whole field).
    statistics
        The clusters' statistics (:func:`napari_miro.stats.cluster_statistics` of the same labels); computed
        when not given.

    Returns
    -------
    pandas.DataFrame
        Densities per um^2; a region without localizations has 0 localizations and NaN where nothing can be
        measured (:func:`empty_regions` names those).
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels)
    if statistics is None:
        statistics = cluster_statistics(positions, labels)
    centroids = statistics[["x", "y"]].to_numpy()
    rows = []
    for region in regions:
        inside = region.contains(positions)
        n = int(inside.sum())
        area_um2 = region.area / 1e6
        clusters = statistics[region.contains(centroids)] if len(statistics) else statistics
        clustered = int((labels[inside] > 0).sum())
        cluster_area_um2 = float(clusters["convex_hull_area_nm2"].sum()) / 1e6
        outside_area = area_um2 - cluster_area_um2
        in_clusters = clustered / cluster_area_um2 if cluster_area_um2 > 0 else np.nan
        outside = (n - clustered) / outside_area if outside_area > 0 else np.nan
        rows.append(
            {
                "region": region.name,
                "n_localizations": n,
                "area_um2": area_um2,
                "localizations_per_um2": n / area_um2,
                "fraction_clustered": clustered / n if n else np.nan,
                "n_clusters": len(clusters),
                "clusters_per_um2": len(clusters) / area_um2,
                "median_localizations_per_cluster": float(clusters["n_localizations"].median()) if len(clusters)
                else np.nan,
                "median_radius_of_gyration_nm": float(clusters["radius_of_gyration_nm"].median()) if len(clusters)
                else np.nan,
                "density_in_clusters_over_outside": in_clusters / outside if outside and outside > 0 else np.nan,
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=REGION_SUMMARY_COLUMNS)


def empty_regions(summary: pd.DataFrame) -> list[str]:
    """The names of the regions of a :func:`region_summary` that hold no localization."""
    return summary.loc[summary["n_localizations"] == 0, "region"].astype(str).tolist()
