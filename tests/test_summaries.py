"""Per-region summaries checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from napari_miro.regions import Region
from napari_miro.summaries import REGION_SUMMARY_COLUMNS, empty_regions, region_summary


def _two_cells():
    """Cell A (0..1000 nm square): 2 clusters of 20 localizations + 60 unclustered; cell B (2000..3000): 40
    unclustered localizations and no cluster."""
    rng = np.random.default_rng(0)
    cluster_1 = rng.normal((200, 200), 10, (20, 2))
    cluster_2 = rng.normal((700, 700), 20, (20, 2))
    background_a = rng.uniform(0, 1000, (60, 2))
    background_b = rng.uniform(2000, 3000, (40, 2))
    positions = np.concatenate([cluster_1, cluster_2, background_a, background_b])
    labels = np.concatenate([np.full(20, 1), np.full(20, 2), np.zeros(100, int)])
    cells = [Region.rectangle(0, 0, 1000, 1000, "A"), Region.rectangle(2000, 2000, 3000, 3000, "B")]
    return positions, labels, cells


def test_summary_of_a_clustered_and_an_unclustered_cell():
    positions, labels, cells = _two_cells()
    table = region_summary(positions, labels, cells)
    assert list(table.columns) == REGION_SUMMARY_COLUMNS and table["region"].tolist() == ["A", "B"]
    a, b = table.iloc[0], table.iloc[1]
    assert a["n_localizations"] == 100 and a["area_um2"] == pytest.approx(1.0)
    assert a["localizations_per_um2"] == pytest.approx(100.0) and a["fraction_clustered"] == pytest.approx(0.4)
    assert a["n_clusters"] == 2 and a["clusters_per_um2"] == pytest.approx(2.0)
    assert a["median_localizations_per_cluster"] == 20 and 10 < a["median_radius_of_gyration_nm"] < 30
    assert a["density_in_clusters_over_outside"] > 50  # tight clusters against a sparse background
    assert b["n_clusters"] == 0 and b["fraction_clustered"] == 0.0 and np.isnan(b["median_radius_of_gyration_nm"])
    assert empty_regions(table) == []


def test_a_region_without_localizations_is_named():
    positions, labels, cells = _two_cells()
    table = region_summary(positions, labels, [*cells, Region.rectangle(5000, 5000, 6000, 6000, "empty")])
    row = table.iloc[2]
    assert row["n_localizations"] == 0 and np.isnan(row["fraction_clustered"]) and row["n_clusters"] == 0
    assert empty_regions(table) == ["empty"]
