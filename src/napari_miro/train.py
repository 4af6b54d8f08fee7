"""Single-shot / few-shot training of MIRO from one or a few annotated clusters.

Pure core (numpy, scipy, torch): imports neither Qt nor napari.

From a point cloud and the indices of the points of each annotated cluster (optionally a class per cluster
and fine-scale sub-labels), :class:`FieldSynthesizer` makes training fields the way the paper does: a pool per
annotated cluster (centred on its mean, grown by jittered copies), from which each synthetic cluster draws a
random subset (localization dropout and addition), jittered, rotated and reflected, placed at random in a
field with background at the density measured in the user's own data. :func:`train` then fits the network
with Adam, reporting progress through a callback and stopping cleanly on request, keeping the best model.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from scipy.spatial import ConvexHull, QhullError, cKDTree

from napari_miro import simulate
from napari_miro.cluster import MIROSettings, TrainedMIRO, cluster_points, suggest_parameters
from napari_miro.devices import OUT_OF_MEMORY_ERRORS, DeviceOutOfMemory, resolve_device
from napari_miro.graph import build_graph
from napari_miro.model import MIRO, GraphBatch, MIROConfig

__all__ = [
    "PRESETS",
    "AnnotatedData",
    "FieldSynthesizer",
    "TrainingCancelled",
    "TrainingFields",
    "TrainingSettings",
    "background_fraction_from_spacing",
    "estimate_densities",
    "fit_miro",
    "miro_loss",
    "resolve_device",
    "suggest_delta",
    "train",
]


@dataclass
class TrainingSettings:
    """How to train: network size, loss, optimiser, synthetic data. Presets fill these in."""

    preset: str = "compact"
    hidden: int = 64
    steps: int = 12  #: recurrent steps K
    delta_nm: float | None = None  #: None = suggested from the annotated clusters and the data
    scale_encodings: bool = True  #: Laplacian encodings x sqrt(component size)
    edge_scale_nm: float | None = 50.0  #: divide edge features by this instead of delta (None = delta)
    #: unit of the predicted displacement: "delta" (paper) or "radius" (the annotated clusters' median radius
    #: of gyration, so that targets are of order 1 whatever delta is)
    displacement_unit: str = "radius"
    displacement_loss: str = "mse"  #: "l1" (paper) or "mse"
    alpha: float = 0.1  #: weight of the edge-distance term (paper: 10)
    beta: float = 0.1  #: weight of the class cross-entropy
    learning_rate: float = 1e-3
    schedule: str = "cosine"  #: "constant" (paper) or "cosine"
    batch_size: int = 2
    optimizer_steps: int = 1500
    max_minutes: float | None = None  #: stop after this wall time (the best model so far is kept)
    n_fields: int = 192  #: synthetic training fields generated up front (augmented further at each step)
    n_validation_fields: int = 8
    validate_every: int = 50
    fine_step: int | None = None  #: multiscale: steps [0, fine_step] are trained toward the fine centres
    background: str = "uniform"  #: "uniform" or "blinking"
    max_points_per_field: int = 4000
    amp: bool | None = None  #: mixed precision (bfloat16) on CUDA; None = on when the device is CUDA
    passes: int = 1  #: inference: times the network is applied (each on the previous pass's output)
    #: start from a shipped pre-trained base model and fine-tune: a name, "auto" (chosen from the annotated
    #: clusters' shape) or None (train from a random initialisation)
    base_model: str | None = None
    unit_nm: float | None = None  #: the displacement unit in nm, when given (a base model's); else by displacement_unit
    #: what DBSCAN's eps / min_samples maximise on synthetic fields ("ari", "ari+ari_c", "ari+ari_c+ji_c")
    tuning_objective: str = "ari"
    #: fresh synthetic fields DBSCAN is tuned on: 4 gave choices that varied from run to run (ground-truth S8
    #: single shot: 48 nm / 6 on 4 fields, 21 nm / 4 on 16; JI_c / ARI_c 0.71 / 0.86 -> 0.84 / 0.93)
    n_tuning_fields: int = 16
    #: copies of an annotated cluster in the synthetic fields hold this fraction (up to 1.2) of its localizations;
    #: a wide range, because real clusters beside the annotated one are often smaller (measured: docs/training.md)
    copy_size_min: float = 0.3
    #: ... and never fewer localizations than this (or than the annotated cluster, when it is smaller): at 3,
    #: copies of 5-localization clusters fell to 3 and DBSCAN's min_samples with them (docs/training.md)
    copy_size_floor: int = 5
    #: the Gaussian jitter of the copies, as a fraction of the annotated cluster's median nearest-neighbour distance:
    #: copies that differ more from the annotated cluster collapse real clusters further (0.25 -> 0.75, single
    #: shot, 1 min: ARI_c +0.05 ground-truth S6, +0.17 S8, +0.14 S10; docs/training.md)
    copy_jitter: float = 0.75
    #: copies are stretched along a random axis by a log-normal factor with this standard deviation (0 = not)
    copy_stretch: float = 0.0
    #: each copy re-made as new molecules that blink (a new layout of clumps per copy); None: on with the blinking
    #: background. Blinking S6 single shot at the default length, JI_c / ARI_c 0.76 / 0.60 -> 0.83 / 0.69
    #: (docs/training.md, session 12)
    copy_molecules: bool | None = None
    #: copies hold at least as many localizations as the 99th percentile of a background localization's neighbours
    #: (itself counted) within the annotated cluster's radius of gyration, simulated with the estimated background,
    #: but at most 0.8x the annotated cluster: smaller copies look like chance clumps of the background (blinking
    #: S2: 31 localizations where 0.3x gave 15), and no DBSCAN setting keeps them without keeping those clumps.
    #: None: on with the blinking background (measured there: blinking S2 JI_c 0.72 -> 0.83 over three seeds,
    #: blinking S8 -0.07), off with the uniform one (unmeasured on sparse uniform structures such as rings, whose
    #: large radius of gyration raises the floor too; docs/training.md, session 13)
    copy_background_floor: bool | None = None
    #: after tuning, the model clusters the annotated field; when the clusters it finds there that look like the
    #: annotated ones (0.5-4x their localizations, radius of gyration at most 3x) are mostly larger (median at least
    #: 1.75x, 5 or more of them), DBSCAN's min_samples is tuned again on copies up to their 90th percentile size
    #: (eps kept): one small annotated cluster otherwise sets min_samples too low for its larger neighbours.
    #: Blinking S10 single shot JI_c 0.60 -> 0.72, ARI_c unchanged; of 18 benchmark settings annotated with
    #: cluster 1 it fires on blinking S10 alone (docs/training.md, session 19)
    tune_on_found_sizes: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, TrainingSettings] = {
    # The paper's recipe: hidden 256, 20 steps, L1 + 10 x edge term, Adam 1e-4, batch 4, ~11k steps.
    "faithful": TrainingSettings(
        preset="faithful",
        hidden=256,
        steps=20,
        scale_encodings=False,
        edge_scale_nm=None,
        displacement_unit="delta",
        displacement_loss="l1",
        alpha=10.0,
        learning_rate=1e-4,
        schedule="constant",
        batch_size=4,
        optimizer_steps=11250,
        n_fields=1500,
        validate_every=250,
    ),
    # For CPU-only machines: a smaller network, squared error in units of the cluster radius, input scaling
    # and a light edge term (measured here: with the paper's L1 + 10 x edge term the loss stays on the
    # zero-displacement plateau for minutes; with these, clusters collapse within 2-3 CPU minutes), a larger
    # learning rate with a cosine schedule.
    # Starting from a shipped base model (chosen by the annotated clusters' shape) and applying the network twice
    # at inference: measured on ground-truth scenario 6 (docs/training.md), JI_c 0.82 -> 0.94 after one CPU
    # minute and ARI_c 0.67 -> 0.73 after five, against the same preset from scratch with one pass.
    # DBSCAN (after MIRO, and alone for comparison) is tuned on the mean of ARI and ARI_c: on blinking scenario 6
    # the ARI alone picked parameters that split clusters (DBSCAN alone ARI_c 0.38 -> 0.66 with this objective).
    # The cluster Jaccard index joined them in session 10: the ARIs barely see small clusters dropped by a large
    # min_samples or background pairs made clusters by a small one (docs/training.md).
    "compact": TrainingSettings(base_model="auto", passes=2, tuning_objective="ari+ari_c+ji_c"),
}


class TrainingCancelled(RuntimeError):
    """Raised by :func:`train` only when it was stopped before any model could be evaluated."""


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
    area = sum(_area(t[["x", "y"]].to_numpy(dtype=np.float64)) for t in tables)
    return np.concatenate(positions), index, float(area)


def _cluster_extent(points: np.ndarray) -> float:
    """Largest distance between two points of a cluster (nm)."""
    try:
        hull = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        hull = points
    differences = hull[:, None, :] - hull[None, :, :]
    return float(np.sqrt((differences**2).sum(-1)).max()) if len(hull) > 1 else 0.0


def _median_nn_distance(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.0
    distances, _ = cKDTree(points).query(points, k=2)
    positive = distances[:, 1][distances[:, 1] > 0]
    return float(np.median(positive)) if len(positive) else 0.0


def suggest_delta(data: AnnotatedData) -> float:
    """A delta (nm) that connects each annotated cluster internally without joining far neighbours:
    0.75 x the median extent of the annotated clusters, at least 4 x the data's median nearest-neighbour
    distance, rounded to 10 nm."""
    extents = [_cluster_extent(data.positions[c]) for c in data.clusters]
    floor = 4 * _median_nn_distance(data.positions)
    delta = max(0.75 * float(np.median(extents)), floor, 10.0)
    return float(round(delta / 10.0) * 10.0)


def radius_of_gyration(points: np.ndarray) -> float:
    """Root-mean-square distance (nm) of the points from their centroid."""
    return float(np.sqrt(((points - points.mean(axis=0)) ** 2).sum(axis=1).mean()))


def median_size(data: AnnotatedData) -> float:
    """Median number of localizations of the annotated clusters."""
    return float(np.median([len(members) for members in data.clusters]))


def median_radius(data: AnnotatedData) -> float:
    """Median radius of gyration (nm) of the annotated clusters."""
    radii = [radius_of_gyration(data.positions[c]) for c in data.clusters]
    return float(max(np.median(radii), 1.0))


def _area(points: np.ndarray) -> float:
    try:
        return float(ConvexHull(points).volume)
    except (QhullError, ValueError):
        return float(np.prod(np.ptp(points, axis=0)) if len(points) else 0.0)


def background_fraction_from_spacing(
    positions: np.ndarray, cluster_spacing: float = 0.0, tree: cKDTree | None = None
) -> float | None:
    """The fraction of localizations that are uniform background, from the tail of the nearest-neighbour
    distances: for points of a Poisson background, P(d > r) = exp(-lambda pi r^2), and clustered points have
    short distances, so over the tail log P(d > r) = log f - lambda pi r^2 and the intercept gives f.

    The tail is the larger half of the distances, or beyond ``cluster_spacing`` (nm: the distance that almost
    all clustered localizations' nearest neighbours lie within) where that is longer: with few background
    localizations (rings, NPC-like) the larger half is mostly clustered ones. None when the fit does not
    describe a background (too few points, no decay). ``tree``: a cKDTree of ``positions`` already built."""
    if len(positions) < 100:
        return None
    distances, _ = (tree or cKDTree(positions)).query(positions, k=2)
    nearest = np.sort(distances[:, 1])
    survival = 1.0 - np.arange(len(nearest)) / len(nearest)
    low, high = np.quantile(nearest, [0.5, 0.97])
    low = max(low, cluster_spacing)
    tail = (nearest >= low) & (nearest <= high)
    if tail.sum() < 20 or high <= low:
        return None
    slope, intercept = np.polyfit(nearest[tail] ** 2, np.log(survival[tail]), 1)
    if slope >= 0:
        return None
    return float(min(math.exp(intercept), 1.0))


def background_points(density_per_nm2: float, side_nm: float, background: str, rng: np.random.Generator) -> np.ndarray:
    """A background alone over a ``side_nm`` square: uniform localizations, or ("blinking") uniform molecules that
    blink as the benchmark's do, at ``density_per_nm2`` localizations on average."""
    area = side_nm**2
    if background == "blinking":
        n_molecules = rng.poisson(density_per_nm2 * area / simulate.BLINKS_PER_MOLECULE)
        return simulate.blink_positions(rng.uniform(0, side_nm, (n_molecules, 2)), rng)[0]
    return rng.uniform(0, side_nm, (rng.poisson(density_per_nm2 * area), 2))


def background_neighbour_counts(
    density_per_nm2: float, radius_nm: float, background: str, rng: np.random.Generator
) -> np.ndarray:
    """The number of localizations within ``radius_nm`` of each localization (itself counted) of a simulated
    background alone ("uniform" or "blinking") of the given density, away from its edges: how many localizations
    chance alone gathers in the space of a cluster."""
    if density_per_nm2 <= 0:
        return np.ones(1)
    side = max(10 * radius_nm, math.sqrt(20_000 / density_per_nm2))  # ~20,000 localizations
    points = background_points(density_per_nm2, side, background, rng)
    inner = points[np.all((points > radius_nm) & (points < side - radius_nm), axis=1)]  # no edge effects
    if len(inner) == 0:
        return np.ones(1)
    return cKDTree(points).query_ball_point(inner, radius_nm, return_length=True).astype(np.float64)


def background_clump_size(
    density_per_nm2: float, radius_nm: float, background: str, quantile: float, rng: np.random.Generator
) -> float:
    """The ``quantile`` of :func:`background_neighbour_counts`: the clumps that chance makes in a background."""
    if not 0 < quantile < 1:
        raise ValueError(f"the background quantile must be between 0 and 1, not {quantile}")
    return float(np.quantile(background_neighbour_counts(density_per_nm2, radius_nm, background, rng), quantile))


def estimate_densities(data: AnnotatedData, background: str = "uniform", seed: int = 0) -> tuple[float, float]:
    """(background localizations, clusters) per nm^2 in the user's data, measured around the annotations.

    Local density (neighbours within the annotated clusters' radius of gyration) separates cluster-like
    from background-like localizations: cluster-like points are those denser than half the median density
    inside the annotated clusters. Background density = background-like points over the area they leave;
    cluster density = cluster-like points / mean annotated cluster size over the data's area.

    With a blinking background, a molecule that blinks many times is as dense as a small cluster: the fraction of
    background localizations that pass the threshold by chance is measured on a simulated blinking background
    (``seed``) and the background count corrected for it, at the density that this correction gives (a few
    rounds of a fixed point; on the benchmark's blinking S4 and S10, annotated clusters of 18 and 25
    localizations, the background read 0.48x and 0.54x the true density without it).

    With a uniform background, the background fraction also comes from the nearest-neighbour distances
    (:func:`background_fraction_from_spacing`, its tail beyond the annotated clusters' spacing), which counts
    clusters smaller or sparser than the annotated ones as clustered. Both estimates read clustered points as
    background more often than the reverse, so the one with fewer background points is kept (measured on
    every benchmark setting, docs/training.md).
    """
    positions = data.positions
    radius, local, threshold = data.local_density
    inside = np.concatenate(data.clusters)
    dense = local > threshold
    total_area = max(data.area_nm2 or _area(positions), 1.0)
    inside_density = float(np.median(local[inside])) / (math.pi * radius**2)

    def clustered_area(n_clustered: float) -> float:
        return min(n_clustered / max(inside_density, 1e-12), 0.9 * total_area)

    n_clustered = float(dense.sum())
    if background == "uniform":
        tree = cKDTree(positions)
        cluster_spacing = float(np.quantile(tree.query(positions[inside], k=2)[0][:, 1], 0.95))
        fraction = background_fraction_from_spacing(positions, cluster_spacing, tree)
        if fraction is not None:
            # the annotated localizations are clustered whatever the fit says (all-annotated fields: f near 1)
            n_clustered = max((1.0 - fraction) * len(positions), float(len(inside)), n_clustered)
    elif background == "blinking":
        rng = np.random.default_rng([seed, 5])
        n_all, sparse = float(len(positions)), float(len(positions) - n_clustered)
        n_background = sparse
        for _ in range(4):  # sparse = n_background * (1 - chance_dense(the density that n_background gives))
            density = n_background / (total_area - clustered_area(n_all - n_background))
            chance_dense = float(np.mean(background_neighbour_counts(density, radius, background, rng) > threshold))
            n_background = min(sparse / max(1.0 - chance_dense, 0.05), n_all - len(inside))  # annotated: clustered
        n_clustered = n_all - max(n_background, sparse)
    background_density = (len(positions) - n_clustered) / (total_area - clustered_area(n_clustered))
    mean_size = float(np.mean([len(c) for c in data.clusters]))
    cluster_density = n_clustered / mean_size / total_area
    return float(background_density), float(max(cluster_density, 1.0 / total_area))


def _block_counts(points: np.ndarray, counted: np.ndarray, origin: np.ndarray, block_nm: float, shape: tuple) -> tuple:
    """(counted points per block, any points per block) over a grid of ``shape`` blocks of ``block_nm``."""
    index = np.floor((points - origin) / block_nm).astype(np.int64)
    inside = np.all((index >= 0) & (index < np.array(shape)), axis=1)
    flat = np.ravel_multi_index(index[inside].T, shape) if inside.any() else np.zeros(0, np.int64)
    size = int(np.prod(shape))
    return np.bincount(flat[counted[inside]], minlength=size), np.bincount(flat, minlength=size)


def _linear_trend(values: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Least-squares plane through ``values`` at the block coordinates ``blocks`` (n, 2), evaluated there."""
    design = np.column_stack([np.ones(len(values)), blocks])
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    return design @ coefficients


def background_density_factors(
    data: AnnotatedData, background: str, density_per_nm2: float, seed: int = 0
) -> np.ndarray | None:
    """How the background's density varies over the user's field, as factors of its mean; None where it does not
    rise or fall across the field by at least ``GRADIENT_MIN`` beyond chance.

    The field is cut into blocks that hold ~40 background-like localizations each (those no denser than half the
    annotated clusters' median, as in :func:`estimate_densities`); each block's count over the mean is a factor.
    Counts vary by chance, and clusters' sparse edges make them vary from block to block too: a plane through the
    factors must rise or fall by ``GRADIENT_MIN`` either way, after shrinking it by the variance that planes through
    the blocks of a simulated background of the same density show. Then the factors are the blocks', shrunk toward 1
    by that background's block-to-block variance.

    The benchmark's scenario 10 has a background density rising from ~0.2x to ~1.8x its mean across the field;
    synthetic fields at one density taught MIRO nothing of the dense side (ground-truth S10 JI_c 0.92). Block
    factors on every setting (blinking S6: 0.86-1.2, from the clusters) cost blinking S6 0.10 JI_c."""
    positions = data.positions
    radius, local, threshold = data.local_density
    sparse = local <= threshold
    low, high = positions.min(axis=0), positions.max(axis=0)
    sparse_density = sparse.sum() / max(float(np.prod(high - low)), 1.0)
    block = max(math.sqrt(40.0 / max(sparse_density, 1e-12)), 4 * radius)
    shape = tuple(int(n) for n in np.maximum(np.floor((high - low) / block), 1))
    if np.prod(shape) < 4:
        return None
    block = float(np.min((high - low) / np.array(shape)))
    counts, occupied = _block_counts(positions, sparse, low, block, shape)
    where = np.stack(np.unravel_index(np.arange(len(counts)), shape), axis=1)[occupied > 0]
    counts = counts[occupied > 0]  # blocks in the gaps between fields laid side by side are not background
    if len(counts) < 4 or counts.mean() <= 0:
        return None
    factors = counts / counts.mean()
    rng = np.random.default_rng([seed, 6])
    chance, chance_trend = [], []
    side = math.ceil(math.sqrt(len(counts)))
    grid = np.stack(np.unravel_index(np.arange(side * side), (side, side)), axis=1)
    for _ in range(3):
        simulated = background_points(density_per_nm2, side * block, background, rng)
        simulated_local = cKDTree(simulated).query_ball_point(simulated, radius, return_length=True)
        simulated_counts, _ = _block_counts(simulated, simulated_local <= threshold, np.zeros(2), block, (side, side))
        if simulated_counts.mean() > 0:
            chance.append(np.var(simulated_counts / simulated_counts.mean()))
            chance_trend.append(np.var(_linear_trend(simulated_counts / simulated_counts.mean(), grid)))
    trend = _linear_trend(factors, where)
    observed, observed_trend = float(np.var(factors)), float(np.var(trend))
    if not chance or observed <= 0 or observed_trend <= 0:
        return None
    kept_trend = 1.0 - float(np.mean(chance_trend)) / observed_trend
    if kept_trend <= 0 or math.sqrt(kept_trend) * float(np.max(np.abs(trend - 1.0))) < GRADIENT_MIN:
        return None
    kept = 1.0 - float(np.mean(chance)) / observed
    if kept <= 0:
        return None
    return np.maximum(1.0 + math.sqrt(kept) * (factors - 1.0), 0.05)


#: background_density_factors: how far (either way, over the mean) the background's density must rise or fall across
#: the user's field before the synthetic fields follow it
GRADIENT_MIN = 0.25


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
    BACKGROUND_FLOOR_QUANTILE = 0.99  #: copy_background_floor: the quantile of the background's chance clumps

    def __init__(
        self,
        data: AnnotatedData,
        background: str = "uniform",
        max_points: int = 4000,
        seed: int = 0,
        copy_size_min: float = TrainingSettings.copy_size_min,
        copy_size_floor: int = TrainingSettings.copy_size_floor,
        copy_jitter: float = TrainingSettings.copy_jitter,
        copy_stretch: float = TrainingSettings.copy_stretch,
        copy_molecules: bool | None = TrainingSettings.copy_molecules,
        copy_background_floor: bool | None = TrainingSettings.copy_background_floor,
    ) -> None:
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
        if copy_jitter < 0 or copy_stretch < 0:
            raise ValueError("copy_jitter and copy_stretch must not be negative")
        self.copy_stretch = copy_stretch
        self.copy_molecules = background == "blinking" if copy_molecules is None else copy_molecules
        #: per annotated cluster, the jitter of its copies: a fraction of its median nearest-neighbour distance
        self.jitter = [copy_jitter * max(_median_nn_distance(data.positions[c]), 0.5) for c in data.clusters]
        for index, members in enumerate(data.clusters):
            points = data.positions[members] - data.positions[members].mean(axis=0)
            fine = data.fine_labels[index] if data.fine_labels is not None else np.zeros(len(points), np.int64)
            for _ in range(4):  # 4 rounds of jittered copies: 16x the points
                points = np.concatenate([points, points + rng.normal(0, self.jitter[index], points.shape)])
                fine = np.concatenate([fine, fine])
            self.pools.append(points)
            self.pool_fine.append(fine)
        self.cluster_radius = max(0.5 * _cluster_extent(p) for p in self.pools)
        self.background_density, self.cluster_density = estimate_densities(data, background, seed)
        #: the background's density over the user's field, as factors of its mean (None: uniform)
        self.background_factors = background_density_factors(data, background, self.background_density, seed)
        #: per annotated cluster, the range of a copy's size over the cluster's (TrainingSettings.copy_background_floor)
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

    @classmethod
    def from_settings(cls, data: AnnotatedData, settings: TrainingSettings) -> FieldSynthesizer:
        """The synthesizer that training with ``settings`` uses (background, point budget, seed, copies)."""
        return cls(
            data,
            settings.background,
            settings.max_points_per_field,
            settings.seed,
            settings.copy_size_min,
            settings.copy_size_floor,
            settings.copy_jitter,
            settings.copy_stretch,
            settings.copy_molecules,
            settings.copy_background_floor,
        )

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
            if self.copy_stretch > 0:  # a random stretch along a random axis
                axis = rng.uniform(0, np.pi)
                direction = np.array([np.cos(axis), np.sin(axis)])
                factor = math.exp(rng.normal(0, self.copy_stretch))
                points = points + (factor - 1) * np.outer(points @ direction, direction)
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


def _centroid_targets(positions: np.ndarray, labels: np.ndarray, delta_nm: float) -> np.ndarray:
    """(x - centroid of x's cluster) / delta for labelled points, 0 for label 0."""
    targets = np.zeros_like(positions)
    clustered = labels > 0
    if clustered.any():
        _, inverse = np.unique(labels[clustered], return_inverse=True)
        counts = np.bincount(inverse)
        centroids = np.stack([np.bincount(inverse, positions[clustered, d]) / counts for d in range(2)], 1)
        targets[clustered] = (positions[clustered] - centroids[inverse]) / delta_nm
    return targets


@dataclass
class PreparedGraph:
    """A synthetic field as model input and targets (numpy; turned into tensors per batch)."""

    node_features: np.ndarray
    edge_features: np.ndarray
    edge_index: np.ndarray
    positions_delta: np.ndarray  #: positions / unit (for the edge-distance term)
    target: np.ndarray  #: coarse displacement / unit
    fine_target: np.ndarray  #: fine displacement / unit
    class_id: np.ndarray
    cluster: np.ndarray


def prepare_field(
    fld: SyntheticField, delta_nm: float, unit_nm: float, settings: TrainingSettings, seed: int
) -> PreparedGraph:
    """Graph, features and targets (displacements in units of ``unit_nm``) of one synthetic field."""
    graph = build_graph(fld.positions, delta_nm, settings.scale_encodings, settings.edge_scale_nm, seed=seed)
    coarse = _centroid_targets(fld.positions, fld.cluster, unit_nm)
    fine = _centroid_targets(fld.positions, fld.fine, unit_nm) if fld.fine.any() else coarse
    return PreparedGraph(
        graph.node_features,
        graph.edge_features,
        graph.edge_index,
        (fld.positions - fld.positions.mean(0)) / unit_nm,
        coarse.astype(np.float32),
        fine.astype(np.float32),
        fld.class_id.astype(np.int64),
        fld.cluster.astype(np.int64),
    )


@dataclass
class TrainingFields:
    """The synthetic fields of a training run: the training set and a held-out validation set."""

    train: list[PreparedGraph]
    validation: list[PreparedGraph]
    synthesizer: FieldSynthesizer
    delta_nm: float
    unit_nm: float  #: the displacement unit


def _augment(graph: PreparedGraph, rng: np.random.Generator) -> PreparedGraph:
    """Random rotation and reflection of a prepared field: rotates edge vectors and targets."""
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if rng.random() < 0.5:
        rotation = rotation @ np.array([[1.0, 0.0], [0.0, -1.0]])
    rotation = rotation.astype(np.float32)
    edge = graph.edge_features.copy()
    edge[:, :2] = edge[:, :2] @ rotation.T
    return replace(
        graph,
        edge_features=edge,
        positions_delta=graph.positions_delta @ rotation.T,
        target=graph.target @ rotation.T,
        fine_target=graph.fine_target @ rotation.T,
    )


def collate(graphs: Sequence[PreparedGraph], device: torch.device) -> tuple[GraphBatch, dict[str, torch.Tensor]]:
    """Concatenate prepared graphs into one batch (node indices offset per graph)."""
    offsets = np.cumsum([0] + [len(g.node_features) for g in graphs[:-1]])
    edge_index = np.concatenate([g.edge_index + offset for g, offset in zip(graphs, offsets, strict=True)], 1)

    def cat(name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.concatenate([getattr(g, name) for g in graphs]), dtype=dtype, device=device)

    batch = GraphBatch(
        cat("node_features"),
        cat("edge_features"),
        torch.as_tensor(edge_index, dtype=torch.long, device=device),
        int(sum(len(g.node_features) for g in graphs)),
    )
    targets = {
        "target": cat("target"),
        "fine_target": cat("fine_target"),
        "positions": cat("positions_delta"),
        "class_id": cat("class_id", torch.long),
    }
    return batch, targets


def miro_loss(
    outputs: Sequence[torch.Tensor],
    targets: dict[str, torch.Tensor],
    edge_index: torch.Tensor,
    alpha: float = 10.0,
    beta: float = 0.1,
    displacement_loss: str = "l1",
    fine_step: int | None = None,
) -> torch.Tensor:
    """The MIRO loss averaged over the recurrent steps.

    Per step k: ``L_r`` (mean absolute, or squared, error of the displacement, both in units of delta)
    ``+ alpha * L_d`` (mean over edges of | ||p_hat_i - p_hat_j|| - ||p_i - p_j|| |, p = position after the
    target displacement, p_hat after the predicted one) ``+ beta * cross-entropy`` of the class logits when
    the model has them. Multiscale: steps 0..fine_step use the fine targets, later steps the coarse ones.
    """
    src, dst = edge_index
    positions = targets["positions"]
    total = positions.new_zeros(())
    for step, output in enumerate(outputs):
        target = targets["fine_target"] if fine_step is not None and step <= fine_step else targets["target"]
        displacement = output[:, :2].float()
        error = displacement - target
        regression = error.abs().mean() if displacement_loss == "l1" else (error**2).mean()
        moved_true = positions - target
        moved_pred = positions - displacement
        # index_select, not moved[src]: the gradient of advanced indexing accumulates in a thread-dependent
        # order on the CPU (runs differed after a few steps); index_select's is deterministic
        true_distance = _edge_lengths(moved_true, src, dst)
        pred_distance = _edge_lengths(moved_pred, src, dst)
        distance_term = (pred_distance - true_distance).abs().mean() if len(src) else total
        step_loss = regression + alpha * distance_term
        if output.shape[1] > 2:
            step_loss = step_loss + beta * torch.nn.functional.cross_entropy(output[:, 2:].float(), targets["class_id"])
        total = total + step_loss
    return total / len(outputs)


def _edge_lengths(positions: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The length of every edge between displaced positions."""
    vectors = positions.index_select(0, src) - positions.index_select(0, dst)
    return (vectors**2).sum(1).add(1e-12).sqrt()


def make_training_fields(
    data: AnnotatedData,
    settings: TrainingSettings,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingFields:
    """Generate the synthetic training and validation fields (the slow, CPU-bound part of preparation)."""
    delta = settings.delta_nm or suggest_delta(data)
    unit = settings.unit_nm or (delta if settings.displacement_unit == "delta" else median_radius(data))
    synthesizer = FieldSynthesizer.from_settings(data, settings)
    rng = np.random.default_rng(settings.seed + 1)
    total = settings.n_fields + settings.n_validation_fields
    prepared = []
    for index in range(total):
        if should_stop is not None and should_stop() and len(prepared) > settings.n_validation_fields:
            break
        prepared.append(prepare_field(synthesizer.field(rng), delta, unit, settings, seed=settings.seed + index))
        if progress is not None:
            progress(index + 1, total)
    n_val = min(settings.n_validation_fields, max(1, len(prepared) // 4))
    return TrainingFields(prepared[n_val:], prepared[:n_val], synthesizer, float(delta), float(unit))


@dataclass
class TrainingResult:
    """A trained network and what is known about how it was trained."""

    model: MIRO
    delta_nm: float
    settings: TrainingSettings
    fields: TrainingFields
    history: list[dict] = field(default_factory=list)  #: {"step", "loss", "validation_loss", "seconds"}
    best_step: int = 0
    best_validation_loss: float = math.inf
    stopped_early: bool = False  #: stopped on request (should_stop) before the planned steps
    out_of_time: bool = False  #: stopped by the time budget (max_minutes)
    seconds: float = 0.0
    device: str = "cpu"

    def summary(self) -> dict:
        return {
            "optimizer_steps": self.history[-1]["step"] if self.history else 0,
            "best_step": self.best_step,
            "best_validation_loss": self.best_validation_loss,
            "stopped_early": self.stopped_early,
            "out_of_time": self.out_of_time,
            "seconds": round(self.seconds, 2),
            "device": self.device,
            "n_training_fields": len(self.fields.train),
            "field_size_nm": self.fields.synthesizer.fov_nm,
            "background_per_um2": self.fields.synthesizer.background_density * 1e6,
            "clusters_per_um2": self.fields.synthesizer.cluster_density * 1e6,
        }


ProgressCallback = Callable[[dict], None]


def _evaluate(model: MIRO, graphs: list[PreparedGraph], settings: TrainingSettings, device: torch.device) -> float:
    model.eval()
    with torch.no_grad():
        losses = []
        for graph in graphs:
            batch, targets = collate([graph], device)
            outputs = model(batch)
            losses.append(
                float(
                    miro_loss(
                        outputs,
                        targets,
                        batch.edge_index,
                        settings.alpha,
                        settings.beta,
                        settings.displacement_loss,
                        settings.fine_step,
                    )
                )
            )
    model.train()
    return float(np.mean(losses))


def _optimizer_step(
    model: MIRO,
    optimizer: torch.optim.Optimizer,
    graphs: list[PreparedGraph],
    settings: TrainingSettings,
    device: torch.device,
    use_amp: bool,
) -> torch.Tensor:
    """One Adam step on a batch of fields; returns the loss."""
    batch, targets = collate(graphs, device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
        outputs = model(batch)
    loss = miro_loss(
        outputs,
        targets,
        batch.edge_index,
        settings.alpha,
        settings.beta,
        settings.displacement_loss,
        settings.fine_step,
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    optimizer.step()
    return loss


def learning_rate_factor(settings: TrainingSettings, steps_done: int, seconds_done: float) -> float:
    """The learning rate's multiplier: 1 for a constant schedule; a cosine from 1 down to 0.05 over the planned
    steps or, with a time budget, over the budget (whichever is further along), so that a time-limited run
    also anneals."""
    if settings.schedule != "cosine":
        return 1.0
    done = steps_done / max(settings.optimizer_steps, 1)
    if settings.max_minutes:
        done = max(done, seconds_done / (60 * settings.max_minutes))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


class TimeLeft:
    """An estimate of the wall-clock seconds that :func:`fit_miro` still needs, from its progress records.

    Preparing fields: the rate of the fields so far. Training: the time budget or the planned steps, whichever
    ends first. DBSCAN tuning, at every checkpoint still to come and at the end: as long as the tunings so far
    took (measured as the wall-clock time that training did not count); before the first one, a guess of half
    the time the fields took to prepare (tuning clusters about half as many synthetic fields, several times).
    """

    def __init__(
        self,
        settings: TrainingSettings,
        checkpoint_minutes: Sequence[float] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.checkpoints = sorted(m for m in checkpoint_minutes if not settings.max_minutes or m < settings.max_minutes)
        self.clock = clock
        self.started = clock()
        self.fields_seconds: float | None = None
        self.training_started: float | None = None
        self.tuning_started: float | None = None
        self.tuning_seconds: float | None = None  #: one tuning, once one has been measured

    def _tuning_estimate(self) -> float:
        if self.tuning_seconds is not None:
            return self.tuning_seconds
        return max(3.0, 0.5 * (self.fields_seconds or 0.0))

    def _training_left(self, step: int, total: int, training_seconds: float) -> float:
        by_steps = (total - step) * training_seconds / step if step else math.inf
        by_time = 60 * self.settings.max_minutes - training_seconds if self.settings.max_minutes else math.inf
        left = min(by_steps, by_time)
        return max(0.0, left if math.isfinite(left) else 0.0)

    def update(self, info: dict) -> float:
        """Seconds left after this progress record (``fit_miro``'s ``progress`` argument)."""
        now = self.clock()
        phase = info["phase"]
        if phase == "fields":
            elapsed = now - self.started
            per_field = elapsed / max(info["step"], 1)
            self.fields_seconds = per_field * info["total"]
            training = 60 * (self.settings.max_minutes or 0.0)  # no step rate yet: the budget, if there is one
            tunings = (len(self.checkpoints) + 1) * self._tuning_estimate()
            return per_field * (info["total"] - info["step"]) + training + tunings
        if phase == "training":
            trained = info.get("training_seconds", info["seconds"])
            if self.training_started is None:
                self.training_started = now - trained
                self.fields_seconds = self.fields_seconds or max(0.0, self.training_started - self.started)
            done = [m for m in self.checkpoints if 60 * m <= trained]
            paused = (now - self.training_started) - trained  # time spent tuning at checkpoints
            if done and paused > 0:
                self.tuning_seconds = paused / len(done)
            tunings = (len(self.checkpoints) - len(done) + 1) * self._tuning_estimate()
            return self._training_left(info["step"], info["total"], trained) + tunings
        if self.tuning_started is None:  # the final tuning
            self.tuning_started = now
        return max(1.0, self._tuning_estimate() - (now - self.tuning_started))


def format_duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min': a time left for people."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


def train(
    data: AnnotatedData,
    settings: TrainingSettings | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    fields: TrainingFields | None = None,
    initial_model: MIRO | None = None,
    checkpoint_minutes: Sequence[float] = (),
    on_checkpoint: Callable[[dict], None] | None = None,
) -> TrainingResult:
    """Train MIRO from annotated clusters.

    Args:
        data: the point cloud and its annotated clusters.
        settings: a preset (``PRESETS["compact"]``, ``PRESETS["faithful"]``) or your own.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda" or "mps".
        progress: called with a dict: ``phase`` ("fields" or "training"), ``step``, ``total``, and while
            training ``loss``, ``validation_loss`` (when evaluated) and ``seconds``.
        should_stop: polled between steps; when it returns True, training stops cleanly and the best model
            so far (lowest validation loss) is returned with ``stopped_early=True``.
        fields: training fields made earlier by :func:`make_training_fields` (to reuse them).
        initial_model: start from these weights (fine-tuning) instead of a random initialisation.
        checkpoint_minutes: training times (minutes of the loop) at which the model is validated and
            ``on_checkpoint`` gets ``{"minutes", "step", "best_step", "state", "config", "fields"}``: ``state`` is
            the state dict of the best model so far
            (what a stop at that moment would return), e.g. to show a first result early or to measure
            accuracy against time. Time spent in ``on_checkpoint`` does not count against ``max_minutes``.
    """
    settings = settings or PRESETS["compact"]
    torch.manual_seed(settings.seed)
    target_device = resolve_device(device)
    stop = should_stop or (lambda: False)
    start = time.perf_counter()

    def field_progress(step: int, total: int) -> None:
        if progress is not None:
            progress({"phase": "fields", "step": step, "total": total})

    if fields is None:
        fields = make_training_fields(data, settings, field_progress, stop)
    n_classes = data.n_classes
    config = MIROConfig(hidden=settings.hidden, steps=settings.steps, n_classes=n_classes, fine_step=settings.fine_step)
    model = initial_model if initial_model is not None else MIRO(config)
    model = model.to(target_device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    total_steps = settings.optimizer_steps
    use_amp = settings.amp if settings.amp is not None else target_device.type == "cuda"
    rng = np.random.default_rng(settings.seed + 2)
    loop_start = time.perf_counter()  # the time budget counts training steps, not the preparation of fields
    result = TrainingResult(model, fields.delta_nm, settings, fields, device=str(target_device))
    best_state = copy.deepcopy(model.state_dict())
    running = None
    step = 0
    pending_checkpoints = sorted(checkpoint_minutes)

    def validate(at_step: int) -> float:
        """The validation loss here; the model is kept when it is the best so far."""
        nonlocal best_state
        value = _evaluate(model, fields.validation, settings, target_device)
        if value < result.best_validation_loss:
            result.best_validation_loss, result.best_step = value, at_step
            best_state = copy.deepcopy(model.state_dict())
        return value

    for step in range(1, total_steps + 1):
        out_of_time = settings.max_minutes is not None and time.perf_counter() - loop_start > 60 * settings.max_minutes
        if stop() or (out_of_time and step > 1):
            result.stopped_early = stop()
            result.out_of_time = not result.stopped_early
            step -= 1
            break
        chosen = rng.choice(len(fields.train), size=min(settings.batch_size, len(fields.train)), replace=False)
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * learning_rate_factor(
                settings, step - 1, time.perf_counter() - loop_start
            )
        try:
            loss = _optimizer_step(
                model, optimizer, [_augment(fields.train[i], rng) for i in chosen], settings, target_device, use_amp
            )
        except OUT_OF_MEMORY_ERRORS:
            raise DeviceOutOfMemory(target_device, "training") from None
        value = float(loss.detach())
        running = value if running is None else 0.9 * running + 0.1 * value
        now = time.perf_counter()
        record = {
            "step": step,
            "loss": value,
            "smoothed_loss": running,
            "seconds": now - start,  # wall-clock since the start, field preparation included
            "training_seconds": now - loop_start,  # what counts against max_minutes
        }
        checkpoint_due = bool(pending_checkpoints) and time.perf_counter() - loop_start >= 60 * pending_checkpoints[0]
        if step % settings.validate_every == 0 or step == total_steps or checkpoint_due:
            record["validation_loss"] = validate(step)
        if checkpoint_due:
            minutes = pending_checkpoints.pop(0)
            if on_checkpoint is not None:
                paused = time.perf_counter()
                on_checkpoint(
                    {
                        "minutes": minutes,
                        "step": step,
                        "best_step": result.best_step,
                        "state": best_state,
                        "config": model.config,
                        "fields": fields,
                    }
                )
                loop_start += time.perf_counter() - paused  # the callback's time is not training time
        result.history.append(record)
        if progress is not None:
            progress({"phase": "training", "total": total_steps, **record})
    ended_before_plan = result.stopped_early or result.out_of_time
    if ended_before_plan and step > 0 and (not result.history or "validation_loss" not in result.history[-1]):
        validate(step)  # where we stopped, so that the last steps count when choosing the best model
    if step == 0 and initial_model is None:
        raise TrainingCancelled("training was stopped before its first step; no model was kept")
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


def tune_dbscan(trained: TrainedMIRO, synthesizer: FieldSynthesizer, settings: TrainingSettings) -> dict:
    """DBSCAN's parameters for ``trained`` (with its current number of passes), tuned on fresh synthetic fields
    (seeded): see :func:`napari_miro.cluster.suggest_parameters`."""
    rng = np.random.default_rng(settings.seed + 3)
    tuning_fields = [synthesizer.field(rng) for _ in range(max(2, settings.n_tuning_fields))]
    return suggest_parameters(
        trained, tuning_fields, min_cluster_size=min(synthesizer.sizes), objective=settings.tuning_objective
    )


#: clusters found in the field like the annotated ones: their localizations over the annotated clusters' median
FOUND_SIZE_RANGE = (0.5, 4.0)
FOUND_MAX_RADIUS = 3.0  #: ... and their radius of gyration over the annotated clusters' median radius, at most
FOUND_MIN_CLUSTERS = 5  #: fewer found clusters than this say nothing about the field's cluster sizes
FOUND_WIDEN_RATIO = 1.75  #: the found clusters' median size over the annotated one from which min_samples is re-tuned
FOUND_QUANTILE = 0.9  #: the re-tuning's copies reach this quantile of the found clusters' sizes
FOUND_MAX_POINTS = 20_000  #: the field is clustered within this many localizations around the annotated clusters


def found_clusters_are_larger(size_ratios: Sequence[float]) -> bool:
    """The rule of TrainingSettings.tune_on_found_sizes, on the found clusters' sizes over the annotated median:
    at least FOUND_MIN_CLUSTERS of them, their median at least FOUND_WIDEN_RATIO."""
    return len(size_ratios) >= FOUND_MIN_CLUSTERS and float(np.median(size_ratios)) >= FOUND_WIDEN_RATIO


def clusters_like_annotated(trained: TrainedMIRO, data: AnnotatedData) -> list[np.ndarray]:
    """Clusters that ``trained`` (with its DBSCAN parameters) finds in the annotated field, other than the
    annotated ones, that look like them: FOUND_SIZE_RANGE times their median number of localizations, radius
    of gyration at most FOUND_MAX_RADIUS times theirs. Point indices into ``data.positions``; a large field is
    clustered only within FOUND_MAX_POINTS localizations around the annotated clusters."""
    annotated = np.concatenate(data.clusters)
    size, radius = median_size(data), median_radius(data)
    window = np.arange(len(data.positions))
    if len(window) > FOUND_MAX_POINTS:
        centre = data.positions[annotated].mean(axis=0)
        distance = np.linalg.norm(data.positions - centre, axis=1)
        window = np.sort(np.argpartition(distance, FOUND_MAX_POINTS - 1)[:FOUND_MAX_POINTS])
    labels = cluster_points(trained, data.positions[window]).labels
    is_annotated = np.isin(window, annotated)
    found = []
    for label in np.unique(labels[labels > 0]):
        members = np.flatnonzero(labels == label)
        if is_annotated[members].any() or not FOUND_SIZE_RANGE[0] * size <= len(members) <= FOUND_SIZE_RANGE[1] * size:
            continue
        if radius_of_gyration(data.positions[window[members]]) <= FOUND_MAX_RADIUS * radius:
            found.append(window[members])
    return found


def widest_copy_from_field(trained: TrainedMIRO, data: AnnotatedData) -> tuple[float | None, dict]:
    """The largest copy size (over its annotated cluster's) that the field's own clusters call for, or None
    when they are not mostly larger than the annotated ones (TrainingSettings.tune_on_found_sizes); with what
    was found, for the model's record."""
    size = median_size(data)
    ratios = np.array([len(members) / size for members in clusters_like_annotated(trained, data)])
    record: dict = {"found_clusters": len(ratios)}
    if len(ratios) >= FOUND_MIN_CLUSTERS:
        record["found_median_size"] = round(float(np.median(ratios)), 3)
    if not found_clusters_are_larger(ratios):
        return None, record
    return max(FieldSynthesizer.COPY_SIZE_MAX, float(np.quantile(ratios, FOUND_QUANTILE))), record


def tuning_note(trained: TrainedMIRO) -> str:
    """A sentence for people when min_samples was re-tuned for the field's own clusters, else ''."""
    tuning = trained.settings.training.get("tuning", {})
    if "copies_up_to" not in tuning:
        return ""
    return (
        f"min_samples tuned on copies up to {tuning['copies_up_to']:.1f}x the annotated cluster: the "
        f"{tuning['found_clusters']} clusters like it found in the field hold {tuning['found_median_size']:.1f}x its "
        "localizations (median)"
    )


def package_model(
    model: MIRO,
    data: AnnotatedData,
    settings: TrainingSettings,
    fields: TrainingFields,
    training: dict | None = None,
) -> TrainedMIRO:
    """A trained network with everything needed to apply it, DBSCAN tuned on fresh synthetic fields."""
    synthesizer = fields.synthesizer
    class_names = (
        data.class_names or ["background"] + [f"class {i}" for i in range(1, data.n_classes)] if data.n_classes else []
    )
    trained = TrainedMIRO(
        model.cpu().eval(),
        MIROSettings(
            delta_nm=fields.delta_nm,
            displacement_unit_nm=fields.unit_nm,
            scale_encodings=settings.scale_encodings,
            edge_scale_nm=settings.edge_scale_nm,
            field_size_nm=synthesizer.fov_nm,
            class_names=list(class_names),
            preset=settings.preset,
            training={**(training or {}), "settings": settings.to_dict()},
            passes=settings.passes,
        ),
    )
    suggestion = tune_dbscan(trained, synthesizer, settings)
    _apply_tuning(trained, suggestion)
    if settings.tune_on_found_sizes and data.fine_labels is None:
        widest, found = widest_copy_from_field(trained, data)
        suggestion = {**suggestion, **found}
        if widest is not None:
            widened = copy.copy(synthesizer)
            widened.copy_size_ranges = [(low, max(high, widest)) for low, high in synthesizer.copy_size_ranges]
            wide = tune_dbscan(trained, widened, settings)
            suggestion["min_samples"] = max(suggestion["min_samples"], wide["min_samples"])
            suggestion["copies_up_to"] = round(widest, 3)
            _apply_tuning(trained, suggestion)
    trained.settings.training["tuning"] = suggestion
    return trained


def _apply_tuning(trained: TrainedMIRO, suggestion: dict) -> None:
    """DBSCAN's tuned parameters into the model's settings."""
    for name, value in suggestion.items():
        if hasattr(trained.settings, name):
            setattr(trained.settings, name, value)


def default_fine_step(steps: int) -> int:
    """The last recurrent step trained toward the fine-scale centres of a two-scale model: the first half."""
    return steps // 2 - 1


def fit_miro(
    data: AnnotatedData,
    settings: TrainingSettings | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    initial_model: MIRO | None = None,
    checkpoint_minutes: Sequence[float] = (),
    on_model: Callable[[float, TrainedMIRO], None] | None = None,
) -> tuple[TrainedMIRO, TrainingResult]:
    """Train, then tune DBSCAN on synthetic fields: a model ready for :func:`cluster_points`. At each of
    ``checkpoint_minutes`` of training, ``on_model(minutes, model)`` gets the best model so far, ready to use
    (a first result to show while training goes on, or accuracy against time). Fine-scale labels in ``data``
    make a two-scale model (fine centres for the first half of the recurrent steps unless ``fine_step`` says)."""
    settings = settings or PRESETS["compact"]
    base_name = None
    if initial_model is None and settings.base_model:
        from napari_miro.base_models import start_from_base

        settings, initial_model, base_name = start_from_base(data, settings)
    if data.fine_labels is not None and settings.fine_step is None:  # after the base: its number of steps
        settings = replace(settings, fine_step=default_fine_step(settings.steps))

    def checkpoint(info: dict) -> None:
        model = MIRO(info["config"])
        model.load_state_dict(info["state"])
        training = {
            "optimizer_steps": info["step"],
            "best_step": info["best_step"],
            "minutes": info["minutes"],
            "base_model": base_name,
        }
        on_model(info["minutes"], package_model(model, data, settings, info["fields"], training))

    result = train(
        data,
        settings,
        device,
        progress,
        should_stop,
        initial_model=initial_model,
        checkpoint_minutes=checkpoint_minutes if on_model is not None else (),
        on_checkpoint=checkpoint if on_model is not None else None,
    )
    if progress is not None:
        progress({"phase": "tuning", "step": 0, "total": 1})
    trained = package_model(result.model, data, settings, result.fields, {**result.summary(), "base_model": base_name})
    if progress is not None:
        progress({"phase": "tuning", "step": 1, "total": 1})
    return trained, result
