"""Geometry of point sets: the one definition of each measure."""

from __future__ import annotations

import numpy as np
import pytest

from napari_miro.geometry import convex_hull, field_area, max_extent, median_nearest_neighbour, radius_of_gyration

SQUARE = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])


def test_measures_of_a_square():
    assert radius_of_gyration(SQUARE) == pytest.approx(np.sqrt(50.0))
    area, vertices = convex_hull(SQUARE)
    assert area == pytest.approx(100.0) and len(vertices) == 4
    assert max_extent(SQUARE) == pytest.approx(np.sqrt(200.0))
    assert median_nearest_neighbour(SQUARE) == pytest.approx(10.0)
    assert field_area(SQUARE) == pytest.approx(100.0)


def test_degenerate_point_sets():
    line = np.array([[0.0, 0.0], [5.0, 0.0], [10.0, 0.0]])
    assert convex_hull(line)[0] == 0.0 and max_extent(line) == pytest.approx(10.0)
    assert field_area(np.array([[0.0, 0.0], [4.0, 3.0]])) == pytest.approx(12.0)  # no hull: the bounding box
    assert median_nearest_neighbour(np.array([[1.0, 1.0], [1.0, 1.0], [4.0, 5.0]])) == pytest.approx(5.0)  # zeros out
    assert max_extent(np.zeros((1, 2))) == 0.0


def test_the_spacing_of_a_large_field_is_measured_against_all_its_localizations():
    from scipy.spatial import cKDTree

    from napari_miro.geometry import SPACING_SAMPLE, median_spacing

    rng = np.random.default_rng(0)
    positions = rng.uniform(0, 20_000, (5 * SPACING_SAMPLE, 2))  # 1e5 localizations: a subset is queried
    exact = float(np.median(cKDTree(positions).query(positions, k=2)[0][:, 1]))
    assert median_spacing(positions) == pytest.approx(exact, rel=0.03)
    assert median_spacing(positions[:SPACING_SAMPLE]) == pytest.approx(exact * np.sqrt(5), rel=0.05)
