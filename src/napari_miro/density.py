"""How dense the user's field is: background and cluster densities, the background's spread over the field,
the clumps that chance alone makes in a background (uniform, or molecules that blink several times), and which of
the two backgrounds the data has (:func:`detect_background`).

The synthetic training fields are made at these densities, so that MIRO and DBSCAN see fields like the user's.

Pure core (numpy, scipy): imports neither Qt nor napari; of napari_miro only geometry, annotations and simulate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

from napari_miro import simulate
from napari_miro.annotations import AnnotatedData
from napari_miro.geometry import field_area

__all__ = [
    "GRADIENT_MIN",
    "BackgroundDecision",
    "background_clump_size",
    "background_density_factors",
    "background_fraction_from_spacing",
    "background_neighbour_counts",
    "background_points",
    "detect_background",
    "estimate_densities",
]

#: background_density_factors: how far (either way, over the mean) the background's density must rise or fall
#: across the user's field before the synthetic fields follow it
GRADIENT_MIN = 0.25
#: the backgrounds :func:`detect_background` chooses from
BACKGROUNDS_SIMULATED = ("uniform", "blinking")


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
    points, inside = _simulated_background(density_per_nm2, radius_nm, background, rng)
    if not inside.any():
        return np.ones(1)
    return cKDTree(points).query_ball_point(points[inside], radius_nm, return_length=True).astype(np.float64)


def _simulated_background(
    density_per_nm2: float, radius_nm: float, background: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A background alone (:func:`background_points`) of ~20,000 localizations, at least 10 radii wide, and which of
    its localizations lie more than ``radius_nm`` from its edges (their neighbourhoods are whole)."""
    side = max(10 * radius_nm, math.sqrt(20_000 / max(density_per_nm2, 1e-12)))
    points = background_points(density_per_nm2, side, background, rng)
    return points, np.all((points > radius_nm) & (points < side - radius_nm), axis=1)


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
    every benchmark setting, docs/method.md).
    """
    positions = data.positions
    radius, local, threshold = data.local_density
    inside = np.concatenate(data.clusters)
    dense = local > threshold
    total_area = max(data.area_nm2 or field_area(positions), 1.0)
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


#: how close (nm) the localizations of one blinking molecule lie: ~1.4x the median spread of a molecule's blinks
CLUMP_RADIUS_NM = 20.0
#: a simulated blinking background must make close neighbours at least this many times more often than a uniform
#: one at the same density for the test to tell them apart (a tiny annotated cluster makes every clump count as
#: clustered, and no background-like localization is left close to another)
DETECTABLE_RATIO = 1.1


@dataclass
class BackgroundDecision:
    """Which background the synthetic fields get, decided from the user's data, and why."""

    background: str  #: "uniform" or "blinking"
    score: float  #: where the data lies between a uniform (0) and a blinking (1) background, on log scales
    observed: dict  #: closeness of the data's background-like localizations (:func:`_closeness`)
    references: dict  #: the same for simulated "uniform" and "blinking" backgrounds at the data's density
    reason: str  #: one sentence for people

    def to_dict(self) -> dict:
        return asdict(self)


def _closeness(points: np.ndarray, sparse: np.ndarray) -> dict:
    """Of the background-like localizations (``sparse``): the fraction with another within CLUMP_RADIUS_NM
    ("fraction") and their mean number of neighbours that close ("count"), each also as expected from each one's
    local density 1-4 clump radii away if spread uniformly ("local fraction", "local count"); empty when there are
    fewer than 20."""
    background = points[sparse]
    if len(background) < 20:
        return {}
    tree = cKDTree(background)
    inner = tree.query_ball_point(background, CLUMP_RADIUS_NM, return_length=True) - 1  # itself not counted
    outer = tree.query_ball_point(background, 4 * CLUMP_RADIUS_NM, return_length=True) - 1
    expected = (outer - inner) / 15  # the annulus is 15 clump areas
    return {
        "fraction": float(np.mean(inner > 0)),
        "count": float(np.mean(inner)),
        "local fraction": float(np.mean(1 - np.exp(-expected))),
        "local count": float(np.mean(expected)),
    }


def detect_background(data: AnnotatedData, seed: int = 0) -> BackgroundDecision:
    """Whether the user's localizations come from molecules that blink several times (raw dSTORM, PALM, PAINT
    tables) or each molecule once, from the data alone.

    A blinking molecule leaves a clump of localizations within ~CLUMP_RADIUS_NM, also outside clusters. Among the
    background-like localizations (no denser than half the annotated clusters, as in :func:`estimate_densities`),
    the fraction with a neighbour that close is compared with a simulated blinking background and with localizations
    spread uniformly (at the background's density, or at each one's own local density, whichever gives more close
    neighbours: the sparse edges of large structures); the nearer one on a log scale wins. When the two references
    are too alike to tell (tiny annotated clusters, whose threshold counts every clump as clustered), or there are
    fewer than 20 background-like localizations, the uniform background is kept and the reason says so."""
    radius, local, threshold = data.local_density
    observed = _closeness(data.positions, local <= threshold)
    density, _ = estimate_densities(data, "uniform", seed)
    rng = np.random.default_rng([seed, 7])
    references = {}
    for background in BACKGROUNDS_SIMULATED:
        points, inside = _simulated_background(density, radius, background, rng)
        counts = cKDTree(points).query_ball_point(points, radius, return_length=True)
        references[background] = _closeness(points, (counts <= threshold) & inside)
    scores, spread = [], {}
    for measure in ("fraction", "count"):  # the fraction tells sparse fields apart, the count dense ones
        if not observed or not references["blinking"] or not references["uniform"]:
            break
        uniform = spread[measure] = max(references["uniform"][measure], observed[f"local {measure}"], 1e-3)
        blinking = references["blinking"][measure]
        if blinking < DETECTABLE_RATIO * max(references["uniform"][measure], 1e-3):
            continue
        low, high = math.log(uniform), math.log(max(blinking, DETECTABLE_RATIO * uniform))
        scores.append((math.log(max(observed[measure], 1e-3)) - low) / (high - low))
    if not scores:
        why = (
            "too few background-like localizations"
            if not observed
            else "blinking and single localizations look alike at this density and cluster size"
        )
        return BackgroundDecision("uniform", math.nan, observed, references, f"uniform background assumed: {why}")
    score = float(np.mean(scores))
    background = "blinking" if score > 0.5 else "uniform"
    reason = (
        f"{background} background: {observed['fraction']:.0%} of the background-like localizations have another "
        f"within {CLUMP_RADIUS_NM:g} nm ({observed['count']:.1f} on average); single localizations spread as "
        f"densely would give {spread['fraction']:.0%} ({spread['count']:.1f}), blinking molecules "
        f"{references['blinking']['fraction']:.0%} ({references['blinking']['count']:.1f})"
    )
    return BackgroundDecision(background, score, observed, references, reason)
