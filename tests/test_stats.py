"""Per-cluster statistics checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from napari_miro.stats import STATISTICS_COLUMNS, cluster_statistics, compare_statistics


def test_statistics_of_two_squares_and_a_collinear_cluster():
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    positions = np.concatenate([square, square * 2 + [100.0, 0.0], [[0, 50], [5, 50], [10, 50]], [[999, 999]]])
    labels = np.array([1] * 4 + [2] * 4 + [3] * 3 + [0])
    table = cluster_statistics(positions, labels, {1: 1, 2: 2, 3: 1}, ["background", "ring", "spot"])
    assert list(table.columns) == STATISTICS_COLUMNS
    assert table["cluster"].tolist() == [1, 2, 3]
    assert table["n_localizations"].tolist() == [4, 4, 3]
    assert table.loc[0, ["x", "y"]].tolist() == [5.0, 5.0]
    assert table.loc[0, "radius_of_gyration_nm"] == pytest.approx(np.sqrt(50))
    assert table.loc[0, "convex_hull_area_nm2"] == pytest.approx(100.0)
    assert table.loc[1, "convex_hull_area_nm2"] == pytest.approx(400.0)
    assert table.loc[2, "convex_hull_area_nm2"] == 0.0  # collinear: no area, no error
    assert table.loc[0, "max_extent_nm"] == pytest.approx(np.sqrt(200))
    assert table.loc[2, "max_extent_nm"] == pytest.approx(10.0)
    assert table.loc[0, "nearest_neighbour_nm"] == pytest.approx(45.0)  # to cluster 3, centred at (5, 50)
    assert table["class"].tolist() == ["ring", "spot", "ring"]


def test_no_cluster_and_one_cluster():
    empty = cluster_statistics(np.zeros((3, 2)), np.zeros(3, int))
    assert len(empty) == 0 and list(empty.columns) == STATISTICS_COLUMNS
    one = cluster_statistics(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([1, 1]))
    assert np.isnan(one.loc[0, "nearest_neighbour_nm"]) and one.loc[0, "class"] == ""


def test_compare_statistics_labels_the_methods():
    table = cluster_statistics(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array([1, 1, 1]))
    both = compare_statistics(table, table)
    assert both["method"].tolist() == ["MIRO + DBSCAN", "DBSCAN"]
    assert compare_statistics(table, table, "HDBSCAN")["method"].tolist() == ["MIRO + HDBSCAN", "HDBSCAN"]


def test_overlay_histograms_share_bins_and_count_fractions():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from napari_miro.plotting import overlay_histograms

    axis = Figure().subplots()
    overlay_histograms(
        axis, [("A", np.array([1.0, 2.0, 3.0, np.nan]), "red"), ("B", np.array([10.0]), "blue")], bins=5, fractions=True
    )
    heights_a = [p.get_height() for p in axis.patches[:5]]
    heights_b = [p.get_height() for p in axis.patches[5:]]
    assert sum(heights_a) == pytest.approx(1.0) and sum(heights_b) == pytest.approx(1.0)  # NaN left out
    assert axis.patches[0].get_x() == pytest.approx(1.0) and axis.patches[5].get_x() == pytest.approx(1.0)
    assert [t.get_text() for t in axis.legend().get_texts()] == ["A (3)", "B (1)"]
    assert axis.get_ylabel() == "fraction of clusters"


def test_shape_descriptors_of_a_rotated_rectangle_follow_locan():
    rng = np.random.default_rng(0)
    local = rng.uniform([-50, -10], [50, 10], size=(400, 2))
    local = np.concatenate([local, [[-50, -10], [50, -10], [50, 10], [-50, 10]]])  # the corners: exact box
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = local @ rotation.T + [1000.0, 500.0]
    table = cluster_statistics(points, np.ones(len(points), int))
    row = table.iloc[0]
    assert row["length_nm"] == pytest.approx(100.0) and row["width_nm"] == pytest.approx(20.0)
    assert row["elongation"] == pytest.approx(0.8)
    assert row["orientation_deg"] == pytest.approx(30.0, abs=3.0)  # the axis of largest variance
    # uniform in a 100 x 20 box: variances 100^2/12 and 20^2/12, eccentricity sqrt(1 - 1/25)
    assert row["eccentricity"] == pytest.approx(np.sqrt(1 - 1 / 25), abs=0.01)
    assert row["density_per_um2"] == pytest.approx(len(points) / (100 * 20) * 1e6)
    assert row["circularity"] == pytest.approx(4 * np.pi * 2000 / 240**2)
    assert "n_frames" not in table  # no frames given


def test_square_is_circular_as_far_as_a_square_goes_and_a_pair_has_no_shape():
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    table = cluster_statistics(np.concatenate([square, [[50.0, 0.0], [60.0, 0.0]]]), np.array([1] * 4 + [2] * 2))
    assert table.loc[0, "circularity"] == pytest.approx(np.pi / 4)
    assert table.loc[0, "elongation"] == pytest.approx(0.0)
    pair = table.iloc[1]
    assert pair["length_nm"] == pytest.approx(10.0) and pair["width_nm"] == 0.0 and pair["elongation"] == 1.0
    assert np.isnan(pair["density_per_um2"]) and np.isnan(pair["circularity"]) and np.isnan(pair["eccentricity"])


def test_frame_statistics_tell_a_blinking_molecule_from_a_cluster():
    rng = np.random.default_rng(1)
    points = rng.normal(0, 10, size=(40, 2))
    points[20:] += 500
    frames = np.concatenate([np.full(10, 7), np.full(10, 8), rng.integers(0, 10_000, 20)])  # 1: one molecule
    table = cluster_statistics(points, np.array([1] * 20 + [2] * 20), frames=frames)
    assert list(table.columns[-3:]) == ["n_frames", "frame_mean", "frame_std"]
    assert table.loc[0, "n_frames"] == 2 and table.loc[0, "frame_mean"] == pytest.approx(7.5)
    assert table.loc[0, "frame_std"] == pytest.approx(0.5)
    assert table.loc[1, "n_frames"] > 15 and table.loc[1, "frame_std"] > 1000
