"""Annotations drawn as polygons -> the annotated clusters that training needs.

Pure core (numpy, matplotlib.path): imports neither Qt nor napari. Polygons are given in napari's
(y, x) order, in nm, as a Shapes layer holds them; points are (x, y) in nm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path

from napari_miro.train import AnnotatedData

__all__ = ["PolygonAnnotations", "annotations_from_polygons", "points_in_polygon"]

DEFAULT_CLASS = "cluster"


def points_in_polygon(xy: np.ndarray, polygon_yx: np.ndarray) -> np.ndarray:
    """Indices of the points (x, y) inside a polygon given as (y, x) vertices (boundary points count)."""
    polygon = np.asarray(polygon_yx, dtype=np.float64)[:, ::-1]
    if len(polygon) < 3 or len(xy) == 0:
        return np.empty(0, np.int64)
    low, high = polygon.min(axis=0), polygon.max(axis=0)
    candidates = np.flatnonzero(((xy >= low) & (xy <= high)).all(axis=1))
    inside = Path(polygon).contains_points(xy[candidates], radius=1e-9)
    return candidates[inside]


@dataclass
class PolygonAnnotations:
    """What the user's polygons mark: one cluster per coarse polygon, fine sub-clusters inside them."""

    clusters: list[np.ndarray]  #: point indices per annotated cluster
    classes: list[str]  #: class name per cluster
    fine_labels: list[np.ndarray] | None  #: per cluster, a fine label per point (0 = outside fine polygons)
    empty_polygons: list[int]  #: indices of polygons that hold fewer than 3 points

    @property
    def n_points(self) -> int:
        return int(sum(len(c) for c in self.clusters))

    def to_annotated_data(self, xy: np.ndarray) -> AnnotatedData:
        """The training input; classes are used only when at least two different names were given."""
        names = sorted(set(self.classes))
        use_classes = len(names) >= 2
        class_names = ["background", *names] if use_classes else None
        class_ids = [class_names.index(c) for c in self.classes] if use_classes else None
        return AnnotatedData(xy, self.clusters, class_ids, class_names, self.fine_labels)


def annotations_from_polygons(
    xy: np.ndarray,
    polygons_yx: Sequence[np.ndarray],
    classes: Sequence[str] | None = None,
    fine_polygons_yx: Sequence[np.ndarray] | None = None,
) -> PolygonAnnotations:
    """Turn coarse polygons (one cluster each, optional class names) and optional fine polygons (sub-clusters,
    e.g. NPC corners inside a ring) into annotated clusters. A point inside two coarse polygons belongs to the
    first. Polygons with fewer than 3 points are reported in ``empty_polygons`` and left out."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    classes = list(classes) if classes is not None else [DEFAULT_CLASS] * len(polygons_yx)
    taken = np.zeros(len(xy), bool)
    clusters, kept_classes, empty = [], [], []
    for index, polygon in enumerate(polygons_yx):
        members = points_in_polygon(xy, polygon)
        members = members[~taken[members]]
        if len(members) < 3:
            empty.append(index)
            continue
        taken[members] = True
        clusters.append(members)
        kept_classes.append(str(classes[index]) if str(classes[index]).strip() else DEFAULT_CLASS)
    fine_labels = None
    if fine_polygons_yx:
        fine = np.zeros(len(xy), np.int64)
        for number, polygon in enumerate(fine_polygons_yx, start=1):
            members = points_in_polygon(xy, polygon)
            fine[members[fine[members] == 0]] = number
        fine_labels = [fine[members] for members in clusters]
    return PolygonAnnotations(clusters, kept_classes, fine_labels, empty)
