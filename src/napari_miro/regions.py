"""Regions of interest: polygons (or rectangles) in nm, with their area, the localizations inside, the distance
to their edge and uniform random points in them.

A region is what a user draws in napari (a Shapes layer's polygon or rectangle, (y, x) vertices) or the field a
table covers; Ripley's functions need one for the density and the edge correction, per-ROI summaries for the
area. ROI files are napari's own Shapes CSV (File > Save Selected Layers on a Shapes layer writes one; columns
``index, shape-type, vertex-index, axis-0, axis-1`` with axis-0 = y, axis-1 = x, in nm here), so regions drawn in
the viewer and used from the command line are the same file. Pure core (numpy, pandas, matplotlib.path for
point-in-polygon): imports neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.path import Path as PolygonPath

__all__ = ["REGION_SHAPES", "Region", "inside_any", "read_regions", "write_regions"]

#: napari shape types that enclose an area a region can be made of (ellipses are kept as their polygon)
REGION_SHAPES = ("polygon", "rectangle", "ellipse")
#: columns of napari's Shapes CSV
SHAPES_COLUMNS = ["index", "shape-type", "vertex-index", "axis-0", "axis-1"]


@dataclass(frozen=True)
class Region:
    """A simple polygon in nm; ``vertices`` (M, 2) as (x, y), the last vertex joined to the first.

    Parameters
    ----------
    vertices
        (M, 2) corners (x, y) in nm, M >= 3, in either orientation.
    name
        How the region is called in tables ("cell 1", the Shapes layer's name and index, ...).
    """

    vertices: np.ndarray
    name: str = "region"

    def __post_init__(self) -> None:
        vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 2)
        if len(vertices) >= 2 and np.allclose(vertices[0], vertices[-1]):
            vertices = vertices[:-1]  # a closed ring given with its first corner repeated
        if len(vertices) < 3 or not np.isfinite(vertices).all():
            raise ValueError(f"region '{self.name}' needs at least 3 finite corners, not {len(vertices)}")
        object.__setattr__(self, "vertices", vertices)
        if self.area <= 0:
            raise ValueError(f"region '{self.name}' encloses no area (its corners lie on a line)")

    @classmethod
    def rectangle(cls, x_min: float, y_min: float, x_max: float, y_max: float, name: str = "region") -> Region:
        """An axis-aligned rectangle."""
        return cls(np.array([[x_min, y_min], [x_max, y_min], [x_max, y_max], [x_min, y_max]]), name)

    @classmethod
    def bounding_box(cls, points: np.ndarray, name: str = "field") -> Region:
        """The smallest axis-aligned rectangle around the points (x, y)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(points) < 2:
            raise ValueError("a field needs at least 2 localizations to have an extent")
        (x_min, y_min), (x_max, y_max) = points.min(axis=0), points.max(axis=0)
        return cls.rectangle(x_min, y_min, x_max, y_max, name)

    @property
    def area(self) -> float:
        """Area in nm^2 (shoelace formula)."""
        x, y = self.vertices.T
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max)."""
        (x_min, y_min), (x_max, y_max) = self.vertices.min(axis=0), self.vertices.max(axis=0)
        return float(x_min), float(y_min), float(x_max), float(y_max)

    @property
    def is_rectangle(self) -> bool:
        """True when the region is an axis-aligned rectangle (closed-form edge corrections apply)."""
        if len(self.vertices) != 4:
            return False
        x_min, y_min, x_max, y_max = self.bounds
        on_x = np.isclose(self.vertices[:, 0], x_min) | np.isclose(self.vertices[:, 0], x_max)
        on_y = np.isclose(self.vertices[:, 1], y_min) | np.isclose(self.vertices[:, 1], y_max)
        return bool(on_x.all() and on_y.all())

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) True for the points (x, y) inside the region (points on the edge count as inside)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if not len(points):
            return np.zeros(0, bool)
        inside = PolygonPath(self.vertices).contains_points(points)
        return inside | (self.distance_to_edge(points) < 1e-9)

    def distance_to_edge(self, points: np.ndarray) -> np.ndarray:
        """(N,) distance (nm) from each point to the nearest edge of the region."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        start = self.vertices
        edge = np.roll(self.vertices, -1, axis=0) - start
        nearest = np.full(len(points), np.inf)
        for a, d in zip(start, edge, strict=True):  # one edge at a time: memory O(N)
            t = np.clip(((points - a) @ d) / max(float(d @ d), 1e-300), 0.0, 1.0)
            nearest = np.minimum(nearest, np.hypot(*(points - (a + t[:, None] * d)).T))
        return nearest

    def uniform_points(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points (x, y) drawn uniformly in the region (rejection from the bounding box)."""
        x_min, y_min, x_max, y_max = self.bounds
        fraction = self.area / max((x_max - x_min) * (y_max - y_min), 1e-300)
        chosen: list[np.ndarray] = []
        found = 0
        while found < n:
            draw = rng.uniform((x_min, y_min), (x_max, y_max), size=(int((n - found) / fraction * 1.2) + 16, 2))
            inside = draw[self.contains(draw)]
            chosen.append(inside)
            found += len(inside)
        return np.concatenate(chosen)[:n] if chosen else np.zeros((0, 2))

    def to_napari(self) -> np.ndarray:
        """The corners as napari holds them: (y, x)."""
        return self.vertices[:, ::-1].copy()


def inside_any(regions: list[Region], points: np.ndarray) -> np.ndarray:
    """(N,) True for the points (x, y) inside at least one of the regions (all False without regions)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(points), bool)
    for region in regions:
        inside |= region.contains(points)
    return inside


def read_regions(path: str | Path) -> list[Region]:
    """Regions from a napari Shapes CSV (see the module doc); each shape is named ``<file stem> <index>``.
    Lines and paths enclose nothing and are refused with the shape's index."""
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{path.name}: not a readable ROI table ({error})") from error
    missing = [column for column in SHAPES_COLUMNS if column not in table]
    if missing:
        raise ValueError(
            f"{path.name}: not a napari Shapes CSV (missing {', '.join(missing)}); save the ROIs' Shapes layer "
            "from napari (File > Save Selected Layers) or write those columns"
        )
    regions = []
    for index, shape in table.groupby("index", sort=True):
        kind = str(shape["shape-type"].iloc[0])
        if kind not in REGION_SHAPES:
            raise ValueError(f"{path.name}: shape {index} is a {kind}, which encloses no area")
        corners = shape.sort_values("vertex-index")[["axis-1", "axis-0"]].to_numpy(dtype=np.float64)
        regions.append(Region(corners, f"{path.stem} {index}"))
    if not regions:
        raise ValueError(f"{path.name}: the table holds no ROI")
    return regions


def write_regions(regions: list[Region], path: str | Path) -> Path:
    """The regions as a napari Shapes CSV of polygons (napari opens it as a Shapes layer)."""
    rows = [
        {"index": index, "shape-type": "polygon", "vertex-index": vertex, "axis-0": y, "axis-1": x}
        for index, region in enumerate(regions)
        for vertex, (x, y) in enumerate(region.vertices)
    ]
    pd.DataFrame(rows, columns=SHAPES_COLUMNS).to_csv(path, index=False)
    return Path(path)
