"""Synthetic training fields made from the annotated clusters, the way the paper makes them.

A pool per annotated cluster (centred on its mean, grown by jittered copies) from which each synthetic cluster
draws a random subset (localization dropout and addition), jittered, rotated and reflected, placed at random in a
field with background at the density measured in the user's own data (:mod:`napari_miro.density`).

Pure core (numpy): imports neither Qt nor napari; of napari_miro only geometry, annotations, density, recipe and
simulate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from napari_miro import simulate
from napari_miro.annotations import AnnotatedData, median_radius
from napari_miro.density import background_clump_size, background_density_factors, background_points, estimate_densities
from napari_miro.geometry import max_extent, median_nearest_neighbour
from napari_miro.recipe import TrainingSettings

__all__ = ["COPY_SIZE_FLOOR", "COPY_SIZE_MIN", "MAX_POINTS_PER_FIELD", "FieldSynthesizer", "SyntheticField"]

#: the smallest copy of an annotated cluster, over its localizations: real clusters beside it are often smaller
COPY_SIZE_MIN = 0.3
#: copies never hold fewer localizations than this (or than the annotated cluster, when it is smaller)
COPY_SIZE_FLOOR = 5
#: a synthetic field holds about this many localizations at most (its side shrinks to fit)
MAX_POINTS_PER_FIELD = 4000


@dataclass
class SyntheticField:
    """One synthetic training field: positions and the ground truth that the loss needs."""

    positions: np.ndarray
    cluster: np.ndarray  #: 0 = background
    class_id: np.ndarray
    fine: np.ndarray  #: fine-scale label (0 = none)


class FieldSynthesizer:
    """Makes synthetic training fields from the annotated clusters (see the module docstring)."""

    COPY_SIZE_MAX = 1.2  #: the largest copy of an annotated cluster, over its number of localizations
    BACKGROUND_FLOOR_MAX = 0.8  #: copies may be as small as this fraction of their cluster, whatever the background
    BACKGROUND_FLOOR_QUANTILE = 0.99  #: copy_background_floor: this quantile of the background's chance clumps

    def __init__(
        self,
        data: AnnotatedData,
        background: str = "uniform",
        seed: int = 0,
        copy_size_min: float = COPY_SIZE_MIN,
        copy_size_floor: int = COPY_SIZE_FLOOR,
        copy_jitter: float = TrainingSettings.copy_jitter,
        copy_molecules: bool | None = None,
        copy_background_floor: bool | None = None,
        max_points: int = MAX_POINTS_PER_FIELD,
    ) -> None:
        """``copy_molecules``: re-make each copy as new molecules that blink (a new layout of blinking clumps per
        copy); ``copy_background_floor``: copies hold at least as many localizations as the background's chance
        clumps within the annotated clusters' radius of gyration (its BACKGROUND_FLOOR_QUANTILE), at most
        BACKGROUND_FLOOR_MAX of the cluster, since smaller copies look like such clumps and no DBSCAN setting keeps
        them without keeping the clumps. Both None: on with the blinking background, off with the uniform one."""
        if not 0 < copy_size_min <= self.COPY_SIZE_MAX:
            raise ValueError(f"copy_size_min must be in (0, {self.COPY_SIZE_MAX}], not {copy_size_min}")
        if copy_size_floor < 3:
            raise ValueError(f"copy_size_floor must be at least 3 (a cluster), not {copy_size_floor}")
        rng = np.random.default_rng(seed)
        self.data = data
        self.background = background
        self.pools: list[np.ndarray] = []
        self.pool_fine: list[np.ndarray] = []
        self.sizes = [len(c) for c in data.clusters]
        #: per annotated cluster, the fewest localizations of a copy
        self.floors = [min(copy_size_floor, size) for size in self.sizes]
        if copy_jitter < 0:
            raise ValueError("copy_jitter must not be negative")
        self.copy_molecules = background == "blinking" if copy_molecules is None else copy_molecules
        #: per annotated cluster, the jitter of its copies: a fraction of its median nearest-neighbour distance
        self.jitter = [copy_jitter * max(median_nearest_neighbour(data.positions[c]), 0.5) for c in data.clusters]
        for index, members in enumerate(data.clusters):
            points = data.positions[members] - data.positions[members].mean(axis=0)
            fine = data.fine_labels[index] if data.fine_labels is not None else np.zeros(len(points), np.int64)
            for _ in range(4):  # 4 rounds of jittered copies: 16x the points
                points = np.concatenate([points, points + rng.normal(0, self.jitter[index], points.shape)])
                fine = np.concatenate([fine, fine])
            self.pools.append(points)
            self.pool_fine.append(fine)
        self.cluster_radius = max(0.5 * max_extent(p) for p in self.pools)
        self.background_density, self.cluster_density = estimate_densities(data, background, seed)
        #: the background's density over the user's field, as factors of its mean (None: uniform)
        self.background_factors = background_density_factors(data, background, self.background_density, seed)
        #: per annotated cluster, the range of a copy's size over the cluster's
        self.copy_size_ranges = [(copy_size_min, self.COPY_SIZE_MAX)] * len(self.sizes)
        self.copy_background_floor = (
            background == "blinking" if copy_background_floor is None else copy_background_floor
        )
        if self.copy_background_floor:
            clump = background_clump_size(
                self.background_density,
                median_radius(data),
                background,
                self.BACKGROUND_FLOOR_QUANTILE,
                np.random.default_rng([seed, 4]),
            )
            self.copy_size_ranges = [
                (max(copy_size_min, min(clump / size, self.BACKGROUND_FLOOR_MAX)), self.COPY_SIZE_MAX)
                for size in self.sizes
            ]
        # a field holds ~15 clusters (as the paper's fields do) within the point budget
        side = math.sqrt(15.0 / self.cluster_density)
        side = max(side, 8 * self.cluster_radius)
        expected = side**2 * (self.background_density + self.cluster_density * np.mean(self.sizes))
        if expected > max_points:
            side *= math.sqrt(max_points / expected)
        self.fov_nm = float(max(side, 6 * self.cluster_radius))

    def field(self, rng: np.random.Generator) -> SyntheticField:
        """One random field: clusters from the pools plus background."""
        area = self.fov_nm**2
        n_clusters = max(1, rng.poisson(self.cluster_density * area))
        xs, labels, classes, fines = [], [], [], []
        fine_offset = 0
        for number in range(1, n_clusters + 1):
            source = int(rng.integers(len(self.pools)))
            pool = self.pools[source]
            size = round(self.sizes[source] * rng.uniform(*self.copy_size_ranges[source]))
            count = int(np.clip(size, self.floors[source], len(pool)))
            chosen = rng.choice(len(pool), size=count, replace=False)
            points = pool[chosen] + rng.normal(0, self.jitter[source], (count, 2))
            fine = self.pool_fine[source][chosen]
            if self.copy_molecules:
                points, kept = self._as_new_molecules(points, rng)
                fine, count = fine[kept], len(points)
            angle = rng.uniform(0, 2 * np.pi)
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            if rng.random() < 0.5:
                rotation = rotation @ np.array([[1.0, 0.0], [0.0, -1.0]])  # reflection
            margin = min(self.cluster_radius, self.fov_nm / 4)
            centre = rng.uniform(margin, self.fov_nm - margin, 2)
            xs.append(points @ rotation.T + centre)
            labels.append(np.full(count, number))
            class_id = self.data.class_ids[source] if self.data.class_ids is not None else 1
            classes.append(np.full(count, class_id))
            fines.append(np.where(fine > 0, fine + fine_offset, 0))
            fine_offset += int(fine.max(initial=0)) + 1
        density = self.background_density
        if self.background_factors is not None:  # as dense as a random part of the user's field
            density *= float(self.background_factors[rng.integers(len(self.background_factors))])
        background = background_points(density, self.fov_nm, self.background, rng)
        positions = np.concatenate([*xs, background])
        n_background = len(background)
        return SyntheticField(
            positions,
            np.concatenate([*labels, np.zeros(n_background, np.int64)]),
            np.concatenate([*classes, np.zeros(n_background, np.int64)]),
            np.concatenate([*fines, np.zeros(n_background, np.int64)]),
        )

    def _as_new_molecules(self, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A copy re-made as new blinking molecules: len / BLINKS_PER_MOLECULE of its localizations become molecule
        positions, pulled toward its centre along its principal axes by as much as blinking spreads them again, and
        blink as the benchmark's do (:func:`simulate.blink_positions`). Returns the localizations and, for each, the
        index in ``points`` of its molecule."""
        centre = points.mean(axis=0)
        n_molecules = max(1, round(len(points) / simulate.BLINKS_PER_MOLECULE))
        picked = rng.choice(len(points), size=n_molecules, replace=False)
        variances, axes = np.linalg.eigh(np.cov((points - centre).T))
        blink_variance = simulate.BLINK_SIGMA_MEDIAN_NM**2 * math.exp(2 * simulate.BLINK_SIGMA_LOG_SD**2)  # E[sigma^2]
        variances = np.maximum(variances, 1e-12)
        shrink = np.sqrt(np.maximum(variances - blink_variance, 0.1 * variances) / variances)
        molecules = centre + ((points[picked] - centre) @ axes) * shrink @ axes.T
        positions, source, _ = simulate.blink_positions(molecules, rng)
        return positions, picked[source]
