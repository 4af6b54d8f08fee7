"""Regions of interest: area, inside, distance to the edge, uniform points."""

from __future__ import annotations

import numpy as np
import pytest

from napari_miro.regions import Region

L_SHAPE = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 50.0], [50.0, 50.0], [50.0, 100.0], [0.0, 100.0]])


def test_area_inside_and_edge_distance_of_an_l_shape():
    region = Region(L_SHAPE, "cell")
    assert region.area == pytest.approx(7500.0) and not region.is_rectangle
    assert Region(L_SHAPE[::-1]).area == pytest.approx(7500.0)  # either orientation
    inside = region.contains(np.array([[25.0, 25.0], [75.0, 75.0], [100.0, 25.0], [-1.0, 0.0]]))
    assert inside.tolist() == [True, False, True, False]  # the notch is outside, the edge inside
    distance = region.distance_to_edge(np.array([[25.0, 25.0], [75.0, 75.0], [60.0, 40.0]]))
    np.testing.assert_allclose(distance, [25.0, 25.0, 10.0])  # outside too: to the nearest edge


def test_rectangles_bounding_boxes_and_napari_order():
    box = Region.bounding_box(np.array([[10.0, 20.0], [110.0, 70.0], [50.0, 30.0]]))
    assert box.is_rectangle and box.bounds == (10.0, 20.0, 110.0, 70.0) and box.area == pytest.approx(5000.0)
    closed = Region(np.concatenate([L_SHAPE, L_SHAPE[:1]]))  # the first corner repeated at the end
    assert len(closed.vertices) == 6
    np.testing.assert_array_equal(Region(L_SHAPE).to_napari()[1], [0.0, 100.0])  # (y, x)


def test_uniform_points_fill_the_region_evenly():
    region = Region(L_SHAPE)
    points = region.uniform_points(3000, np.random.default_rng(0))
    assert points.shape == (3000, 2) and region.contains(points).all()
    in_upper_arm = ((points[:, 1] > 50) & (points[:, 0] < 50)).mean()
    assert in_upper_arm == pytest.approx(2500 / 7500, abs=0.03)  # a third of the area, a third of the points


@pytest.mark.parametrize("corners", [[[0, 0], [1, 1]], [[0, 0], [1, 1], [2, 2]], [[0, 0], [np.nan, 1], [1, 0]]])
def test_regions_without_area_are_refused(corners):
    with pytest.raises(ValueError, match=r"corners|area"):
        Region(np.array(corners, dtype=float))


def test_regions_round_trip_through_napari_shapes_csv(tmp_path):
    from napari_miro.regions import read_regions, write_regions

    regions = [Region(L_SHAPE), Region.rectangle(200, 0, 300, 80)]
    path = write_regions(regions, tmp_path / "cells.csv")
    back = read_regions(path)
    assert [r.name for r in back] == ["cells 0", "cells 1"]
    for region, read in zip(regions, back, strict=True):
        np.testing.assert_allclose(read.vertices, region.vertices)
    (tmp_path / "line.csv").write_text("index,shape-type,vertex-index,axis-0,axis-1\n0,line,0,0,0\n0,line,1,5,5\n")
    with pytest.raises(ValueError, match="shape 0 is a line"):
        read_regions(tmp_path / "line.csv")
    (tmp_path / "other.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="not a napari Shapes CSV"):
        read_regions(tmp_path / "other.csv")


def test_inside_any_of_several_regions():
    from napari_miro.regions import inside_any

    points = np.array([[25.0, 25.0], [75.0, 75.0], [250.0, 40.0]])
    regions = [Region(L_SHAPE), Region.rectangle(200, 0, 300, 80)]
    assert inside_any(regions, points).tolist() == [True, False, True]
    assert inside_any([], points).tolist() == [False, False, False]
