"""What the user marked: the point cloud (nm) and the indices of the clusters annotated in it.

From a label column (:meth:`AnnotatedData.from_labels`), from polygons drawn in napari
(:func:`annotations_from_polygons`, (y, x) vertices, one cluster per coarse polygon, fine sub-clusters inside
them), or from several fields laid side by side (:func:`lay_side_by_side`). Also the annotated clusters' typical
size and radius, and the graph threshold delta they suggest.

Pure core (numpy, scipy, pandas, matplotlib.path for point-in-polygon): imports neither Qt nor napari, and of
napari_miro only geometry.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.path import Path
from scipy.spatial import cKDTree

from napari_miro.geometry import field_area, max_extent, median_nearest_neighbour, radius_of_gyration

__all__ = [
    "DEFAULT_CLASS",
    "AnnotatedData",
    "PolygonAnnotations",
    "annotations_from_polygons",
    "lay_side_by_side",
    "median_radius",
    "median_size",
    "points_in_polygon",
    "suggest_delta",
]


@dataclass
class AnnotatedData:
    """A point cloud (nm) and the clusters that the user marked in it."""

    positions: np.ndarray  #: (N, 2) nm
    clusters: list[np.ndarray]  #: indices into positions, one array per annotated cluster
    class_ids: list[int] | None = None  #: per cluster, 1..C (0 is background)
    class_names: list[str] | None = None  #: index -> name, index 0 = "background"
    fine_labels: list[np.ndarray] | None = None  #: per cluster, a fine-scale label per point (>0)
    area_nm2: float | None = None  #: area the points cover (default: their convex hull)

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 2)
        if not self.clusters:
            raise ValueError("no annotated cluster: mark at least one cluster to train from")
        if self.class_ids is not None and len(self.class_ids) != len(self.clusters):
            raise ValueError("give one class per annotated cluster")
        if self.fine_labels is not None and len(self.fine_labels) != len(self.clusters):
            raise ValueError("give fine-scale labels for every annotated cluster")
        clusters, fine_labels = [], []
        for number, raw in enumerate(self.clusters, start=1):
            raw = np.asarray(raw, dtype=np.int64).ravel()
            members, first = np.unique(raw, return_index=True)  # sorted, each point once
            if len(members) < 3:
                raise ValueError(
                    f"annotated cluster {number} has {len(members)} localization(s); a cluster needs at least 3"
                )
            if members.min() < 0 or members.max() >= len(self.positions):
                raise ValueError(f"annotated cluster {number} refers to points that do not exist")
            clusters.append(members)
            if self.fine_labels is not None:
                fine_labels.append(np.asarray(self.fine_labels[number - 1], dtype=np.int64).ravel()[first])
        self.clusters = clusters
        self.fine_labels = fine_labels if self.fine_labels is not None else None

    @functools.cached_property
    def local_density(self) -> tuple[float, np.ndarray, float]:
        """(radius, counts, threshold): the annotated clusters' median radius of gyration (nm), each localization's
        neighbours within it (itself counted), and the count above which a localization is cluster-like: half the
        annotated clusters' median. Computed once (both the density estimate and the background's spread read it)."""
        radius = median_radius(self)
        counts = cKDTree(self.positions).query_ball_point(self.positions, radius, return_length=True)
        threshold = 0.5 * float(np.median(counts[np.concatenate(self.clusters)]))
        return radius, counts.astype(np.float64), threshold

    @property
    def n_classes(self) -> int:
        """Number of class logits (background included), 0 without classes."""
        if self.class_ids is None:
            return 0
        return max(len(self.class_names or []), max(self.class_ids) + 1)

    @classmethod
    def from_labels(
        cls,
        positions: np.ndarray,
        labels: np.ndarray,
        which: Sequence[int] | None = None,
        classes: np.ndarray | None = None,
        fine: np.ndarray | None = None,
        area_nm2: float | None = None,
    ) -> AnnotatedData:
        """Annotated clusters from a label column (0 = not annotated), e.g. a ground-truth column.

        ``which`` keeps only the listed labels; ``classes`` is a per-point class (names or numbers) whose
        value in each cluster becomes that cluster's class; ``fine`` a per-point fine-scale label.
        """
        labels = np.asarray(labels)
        chosen = sorted(set(np.unique(labels[labels > 0]).tolist()) if which is None else set(which))
        missing = [label for label in chosen if not (labels == label).any()]
        if missing:
            raise ValueError(f"no point carries the label(s) {missing}")
        clusters = [np.flatnonzero(labels == label) for label in chosen]
        class_ids = class_names = None
        if classes is not None:
            classes = np.asarray(classes).astype(str)
            names = sorted({classes[c[0]] for c in clusters} - {"background", "0"})
            class_names = ["background", *names]
            class_ids = [class_names.index(classes[c[0]]) for c in clusters]
        fine_labels = [np.asarray(fine)[c] for c in clusters] if fine is not None else None
        return cls(positions, clusters, class_ids, class_names, fine_labels, area_nm2)


def lay_side_by_side(tables: Sequence[pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, float]:
    """Positions (nm) of several fields laid side by side along x, 100 um apart so that no graph edge or density
    window spans two of them; also each row's field index and the fields' total area (convex hulls, nm^2)."""
    positions, offset = [], 0.0
    for table in tables:
        xy = table[["x", "y"]].to_numpy(dtype=np.float64)
        xy = xy - [xy[:, 0].min() - offset, 0.0]
        offset = float(xy[:, 0].max()) + 100_000.0
        positions.append(xy)
    index = np.repeat(np.arange(len(tables)), [len(t) for t in tables])
    area = sum(field_area(t[["x", "y"]].to_numpy(dtype=np.float64)) for t in tables)
    return np.concatenate(positions), index, float(area)


def suggest_delta(data: AnnotatedData) -> float:
    """A delta (nm) that connects each annotated cluster internally without joining far neighbours:
    0.75 x the median extent of the annotated clusters, at least 4 x the data's median nearest-neighbour
    distance, rounded to 10 nm."""
    extents = [max_extent(data.positions[c]) for c in data.clusters]
    floor = 4 * median_nearest_neighbour(data.positions)
    delta = max(0.75 * float(np.median(extents)), floor, 10.0)
    return float(round(delta / 10.0) * 10.0)


def median_size(data: AnnotatedData) -> float:
    """Median number of localizations of the annotated clusters."""
    return float(np.median([len(members) for members in data.clusters]))


def median_radius(data: AnnotatedData) -> float:
    """Median radius of gyration (nm) of the annotated clusters."""
    radii = [radius_of_gyration(data.positions[c]) for c in data.clusters]
    return float(max(np.median(radii), 1.0))


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
