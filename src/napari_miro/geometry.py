"""Geometry of point sets: radius of gyration, convex hull, extent, nearest-neighbour distances and spacing,
area.

One definition of each, used by the statistics table, the training recipe and the annotations.
Pure core (numpy, scipy): imports no other napari_miro module, neither Qt nor napari.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError, cKDTree

#: localizations whose nearest neighbour is measured when estimating the spacing of a large field
SPACING_SAMPLE = 20_000

__all__ = [
    "convex_hull",
    "field_area",
    "hull_circularity",
    "hull_diameter",
    "inertia_moments",
    "max_extent",
    "median_nearest_neighbour",
    "median_spacing",
    "oriented_bounding_box",
    "radius_of_gyration",
]


def radius_of_gyration(points: np.ndarray) -> float:
    """Root-mean-square distance (nm) of the points from their centroid."""
    return float(np.sqrt(((points - points.mean(axis=0)) ** 2).sum(axis=1).mean()))


def convex_hull(points: np.ndarray) -> tuple[float, np.ndarray]:
    """The convex hull's area (nm^2; 0 for fewer than 3 or collinear points) and its vertices (all the points when
    there is no hull)."""
    if len(points) < 3:
        return 0.0, points
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):  # collinear or duplicate points: no area
        return 0.0, points
    return float(hull.volume), points[hull.vertices]


def max_extent(points: np.ndarray) -> float:
    """The largest distance (nm) between two of the points (measured between the convex hull's vertices)."""
    return hull_diameter(convex_hull(points)[1])


def hull_diameter(vertices: np.ndarray) -> float:
    """The largest distance (nm) between two vertices of a convex hull (:func:`convex_hull`'s vertices)."""
    if len(vertices) < 2:
        return 0.0
    difference = vertices[:, None, :] - vertices[None, :, :]
    return float(np.sqrt((difference**2).sum(-1)).max())


def median_nearest_neighbour(points: np.ndarray) -> float:
    """Median distance (nm) from each point to its nearest other point, over the non-zero distances (0 when
    there are none)."""
    if len(points) < 2:
        return 0.0
    distances, _ = cKDTree(points).query(points, k=2)
    positive = distances[:, 1][distances[:, 1] > 0]
    return float(np.median(positive)) if len(positive) else 0.0


def median_spacing(positions: np.ndarray, seed: int = 0) -> float:
    """Median distance (nm) from a localization to its nearest neighbour among ALL localizations, measured for at
    most SPACING_SAMPLE of them (a random, seeded subset; the tree holds every localization, so the density and
    with it the spacing are those of the whole field)."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if len(positions) < 2:
        return float("nan")
    query = positions
    if len(positions) > SPACING_SAMPLE:
        chosen = np.random.default_rng(seed).choice(len(positions), SPACING_SAMPLE, replace=False)
        query = positions[chosen]
    distances, _ = cKDTree(positions).query(query, k=2)
    return float(np.median(distances[:, 1]))


def field_area(points: np.ndarray) -> float:
    """The area (nm^2) a field of localizations covers: its convex hull, or its bounding box when it has none."""
    area, _ = convex_hull(points)
    if area > 0:
        return area
    return float(np.prod(np.ptp(points, axis=0)) if len(points) else 0.0)


def inertia_moments(points: np.ndarray) -> tuple[float, float]:
    """Orientation (degrees in [0, 180), counter-clockwise from the x axis) of the axis of largest variance and the
    eccentricity sqrt(1 - lambda_min / lambda_max) of the points' covariance (locan's ``orientation_im`` and
    ``eccentricity_im``); NaN for fewer than 3 points."""
    if len(points) < 3:
        return float("nan"), float("nan")
    values, vectors = np.linalg.eigh(np.cov(np.asarray(points, dtype=np.float64).T))
    major = vectors[:, -1]
    orientation = float(np.degrees(np.arctan2(major[1], major[0])) % 180.0)
    eccentricity = float(np.sqrt(max(0.0, 1.0 - values[0] / values[-1]))) if values[-1] > 0 else float("nan")
    return orientation, eccentricity


def oriented_bounding_box(vertices: np.ndarray) -> tuple[float, float, float]:
    """Length, width (nm) and orientation (degrees in [0, 180), of the long side) of the smallest-area rectangle
    around a convex hull (:func:`convex_hull`'s vertices, in order; rotating calipers: one side of that rectangle
    lies on a hull edge). A collinear set has width 0; fewer than 2 points give NaN."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if len(vertices) < 2:
        return float("nan"), float("nan"), float("nan")
    edges = np.roll(vertices, -1, axis=0) - vertices
    angles = np.unique(np.arctan2(edges[:, 1], edges[:, 0]) % (np.pi / 2))
    cos, sin = np.cos(angles), np.sin(angles)
    # vertices in each candidate frame: u along the edge, v across it
    u = vertices[:, 0, None] * cos + vertices[:, 1, None] * sin
    v = -vertices[:, 0, None] * sin + vertices[:, 1, None] * cos
    sides_u, sides_v = np.ptp(u, axis=0), np.ptp(v, axis=0)
    best = int(np.argmin(sides_u * sides_v))
    length, width = max(sides_u[best], sides_v[best]), min(sides_u[best], sides_v[best])
    angle = angles[best] if sides_u[best] >= sides_v[best] else angles[best] + np.pi / 2
    return float(length), float(width), float(np.degrees(angle) % 180.0)


def hull_circularity(area: float, vertices: np.ndarray) -> float:
    """4 pi area / perimeter^2 of a convex hull (:func:`convex_hull`'s area and vertices): 1 for a disc or a ring,
    smaller for elongated clusters; NaN when there is no hull."""
    if area <= 0:
        return float("nan")
    perimeter = np.sqrt(((np.roll(vertices, -1, axis=0) - vertices) ** 2).sum(axis=1)).sum()
    return float(4 * np.pi * area / perimeter**2)
