"""DBSCAN's (and HDBSCAN's) parameters, chosen on synthetic fields with known truth (never on the data to be
analysed).

:func:`suggest_parameters` searches eps and min_samples for MIRO + DBSCAN (on the collapsed fields), for the fine
scale of a two-scale model, and for DBSCAN alone on the original positions (the fair baseline), maximising a
tuning objective (:func:`tuning_score`); HDBSCAN's min_cluster_size is searched the same way, with and without
MIRO. :func:`widest_copy_from_field` reads the clusters a trained model finds
in the annotated field: when they are mostly larger than the annotated ones, min_samples is tuned again on
larger copies.

Pure core (numpy, scipy): imports neither Qt nor napari; of napari_miro only metrics, geometry, annotations,
synthesis, recipe, model_file and inference.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from napari_miro import metrics
from napari_miro.annotations import AnnotatedData, median_radius, median_size
from napari_miro.geometry import radius_of_gyration
from napari_miro.inference import cluster_points, collapse, hdbscan_labels
from napari_miro.model_file import TrainedMIRO
from napari_miro.recipe import TrainingSettings
from napari_miro.synthesis import FieldSynthesizer

__all__ = [
    "TUNING_OBJECTIVES",
    "TuningScorer",
    "clusters_like_annotated",
    "dbscan_label_grid",
    "found_clusters_are_larger",
    "grid_search_dbscan",
    "grid_search_hdbscan",
    "suggest_parameters",
    "tune_dbscan",
    "tune_model",
    "tuning_eps_grid",
    "tuning_note",
    "tuning_samples_grid",
    "tuning_score",
    "widest_copy_from_field",
]

#: What DBSCAN's parameters are tuned to maximise on the synthetic fields.
TUNING_OBJECTIVES = ("ari", "ari+ari_c", "ari+ari_c+ji_c")
#: Scores of the DBSCAN tuning this close to the best count as equal: the larger min_samples is kept.
TUNING_TOLERANCE = 0.01
#: HDBSCAN is tuned on this many of the tuning fields (it is ~100x slower than one DBSCAN of the grid)
HDBSCAN_TUNING_FIELDS = 4

#: after tuning, cluster the annotated field and re-tune min_samples when the clusters found there like the annotated
#: ones are mostly larger (one small annotated cluster otherwise sets min_samples too low for its neighbours)
RETUNE_ON_FOUND_SIZES = True
#: clusters found in the field like the annotated ones: their localizations over the annotated clusters' median
FOUND_SIZE_RANGE = (0.5, 4.0)
FOUND_MAX_RADIUS = 3.0  #: ... and their radius of gyration over the annotated clusters' median radius, at most
FOUND_MIN_CLUSTERS = 5  #: fewer found clusters than this say nothing about the field's cluster sizes
FOUND_WIDEN_RATIO = 1.75  #: the found clusters' median size over the annotated one from which min_samples is re-tuned
FOUND_QUANTILE = 0.9  #: the re-tuning's copies reach this quantile of the found clusters' sizes
FOUND_MAX_POINTS = 20_000  #: the field is clustered within this many localizations around the annotated clusters


def tuning_score(truth: np.ndarray, labels: np.ndarray, objective: str = "ari", xy: np.ndarray | None = None) -> float:
    """How well DBSCAN's labels match the truth of one field: the ARI ("ari"), the mean of the ARI and the ARI
    over truly clustered points ("ari+ari_c"), or the mean of those and the cluster Jaccard index JI_c
    ("ari+ari_c+ji_c"; it counts split, merged and missed clusters, which the ARI barely sees when they are small).
    ``xy``: the positions the JI_c's cluster matching measures centroids and extents on (needed for JI_c).
    ``labels``: integers from 0 (DBSCAN's, 0 = not clustered). Many labellings of one field: :class:`TuningScorer`."""
    return TuningScorer(truth, objective, xy)(np.asarray(labels))


def _check_objective(objective: str) -> None:
    if objective not in TUNING_OBJECTIVES:
        raise ValueError(f"unknown tuning objective {objective!r}; choose from {', '.join(TUNING_OBJECTIVES)}")


class TuningScorer:
    """:func:`tuning_score` of one field for many labellings (DBSCAN's: integers from 0, 0 = not clustered):
    the truth's side (its indexing, cluster sizes, centroids and extents) is computed once, and each labelling's
    contingency table comes from counting instead of sorting (the same values as :mod:`napari_miro.metrics`'
    ari, ari_c and jaccard_clusters)."""

    def __init__(self, truth: np.ndarray, objective: str = "ari", xy: np.ndarray | None = None) -> None:
        _check_objective(objective)
        truth = np.asarray(truth)
        self.parts = [(np.ones(len(truth), bool), *self._indexed(truth))]  # ARI over all points
        self.true_stats = None
        if objective != "ari" and (truth > 0).any():
            clustered = truth != 0
            self.parts.append((clustered, *self._indexed(truth[clustered])))  # ARI_c
            if objective == "ari+ari_c+ji_c":
                if xy is None:
                    raise ValueError("the JI_c tuning objective needs the positions the clusters are matched on")
                self.xy = np.asarray(xy, dtype=np.float64)
                self.true_stats = metrics.cluster_stats(self.xy, truth)

    @staticmethod
    def _indexed(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, index = np.unique(truth, return_inverse=True)
        return index.astype(np.int64), np.bincount(index)

    def __call__(self, labels: np.ndarray) -> float:
        terms = []
        for members, true_index, true_sizes in self.parts:
            predicted = labels[members]
            n_pred = int(predicted.max(initial=0)) + 1
            counts = np.bincount(true_index * n_pred + predicted, minlength=len(true_sizes) * n_pred)
            cells = np.flatnonzero(counts)
            pred_sizes = np.bincount(predicted, minlength=n_pred)
            terms.append(
                metrics.ari_from_cells(
                    len(predicted), counts[cells], true_sizes[cells // n_pred], pred_sizes[cells % n_pred]
                )
            )
        if self.true_stats is not None:
            matched = metrics.match_cluster_stats(self.true_stats, metrics.cluster_stats(self.xy, labels))
            terms.append(metrics.jaccard_from_match(matched))
        return float(np.mean(terms))


def dbscan_label_grid(
    positions: np.ndarray, eps_grid: np.ndarray, samples_grid: np.ndarray
) -> Iterator[tuple[float, int, np.ndarray]]:
    """DBSCAN's labels (0 = not clustered) for every (eps, min_samples) of a grid, from one neighbour search.

    The same core points, clusters and noise as :func:`dbscan_labels` (neighbours within eps, the point itself
    counted); a border point within reach of two clusters joins its nearest core point's cluster, where
    scikit-learn's DBSCAN gives it to the first cluster that reaches it.
    """
    points = np.asarray(positions, dtype=np.float64)
    n = len(points)
    pairs = cKDTree(points).query_pairs(float(np.max(eps_grid)), output_type="ndarray") if n else np.zeros((0, 2))
    first, second = pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32)
    distance = np.linalg.norm(points[first] - points[second], axis=1)
    rank = np.empty(len(distance), np.int64)  # the pairs' order by distance (ties: query order), for the borders
    rank[np.argsort(distance, kind="stable")] = np.arange(len(distance))
    order = np.lexsort((second, first))  # row by row, so that the graphs below are CSR without sorting
    first, second, distance, rank = first[order], second[order], distance[order], rank[order]
    ones = np.ones(len(first), np.int8)
    row_type = np.int32 if len(first) < np.iinfo(np.int32).max else np.int64
    for eps in eps_grid:
        within = distance <= eps
        a, b, pair_rank = first[within], second[within], rank[within]
        neighbours = np.bincount(a, minlength=n) + np.bincount(b, minlength=n) + 1
        neighbours_a, neighbours_b = neighbours[a], neighbours[b]
        for samples in samples_grid:
            core = neighbours >= samples
            labels = np.zeros(n, np.int64)
            if core.any():
                core_a, core_b = neighbours_a >= samples, neighbours_b >= samples
                joined = core_a & core_b
                rows = a[joined]
                row_starts = np.zeros(n + 1, row_type)
                np.cumsum(np.bincount(rows, minlength=n), out=row_starts[1:])
                graph = csr_matrix((ones[: len(rows)], b[joined], row_starts), shape=(n, n))
                _, component = connected_components(graph, directed=False)
                labels[core] = np.unique(component[core], return_inverse=True)[1] + 1
                reach = core_a != core_b  # a core point and a non-core one: the latter is a border point
                border = np.where(core_a[reach], b[reach], a[reach])
                anchor = np.where(core_a[reach], a[reach], b[reach])
                nearest_first = np.lexsort((pair_rank[reach], border))
                border, anchor = border[nearest_first], anchor[nearest_first]
                first_of_border = np.ones(len(border), bool)
                first_of_border[1:] = border[1:] != border[:-1]
                labels[border[first_of_border]] = labels[anchor[first_of_border]]
            yield float(eps), int(samples), labels


def tuning_eps_grid(points_list: list[np.ndarray]) -> np.ndarray:
    """The eps values (nm) searched: from the median nearest-neighbour distance up to 8x its 90th percentile,
    geometrically spaced."""
    nn = np.concatenate([cKDTree(p).query(p, k=2)[0][:, 1] for p in points_list if len(p) > 1])
    low, high = max(float(np.quantile(nn, 0.5)), 0.1), max(8 * float(np.quantile(nn, 0.9)), 1.0)
    return np.unique(np.round(np.geomspace(low, max(high, 2 * low), 20), 2))


def tuning_samples_grid(min_cluster_size: int) -> np.ndarray:
    """The min_samples values searched: from 2 up to the smallest cluster size (at least 3), at most 8 values."""
    upper = max(3, min_cluster_size)
    return np.unique(np.linspace(2, upper, num=min(8, upper - 1)).round().astype(int))


def grid_search_dbscan(
    positions_list: list[np.ndarray],
    truth_list: list[np.ndarray],
    eps_grid: np.ndarray,
    samples_grid: np.ndarray,
    objective: str = "ari",
    tolerance: float = TUNING_TOLERANCE,
    matched_positions_list: list[np.ndarray] | None = None,
) -> tuple[float, int, float]:
    """The (eps, min_samples) that maximise the mean :func:`tuning_score` over the fields.

    Among scores within ``tolerance`` of the best, the largest min_samples wins (then its best eps): with
    little background in the tuning fields many min_samples score alike, and the smallest ones split real
    clusters that collapse less well than the synthetic ones and turn background pairs into clusters. With the
    "ari" objectives this tie-break dropped clusters smaller than the chosen min_samples, which the ARI barely
    sees (small clusters dropped; docs/method.md): "ari+ari_c+ji_c" sees them. ``matched_positions_list``: where
    JI_c matches clusters (default: the clustered positions; pass the original positions when DBSCAN runs on
    collapsed ones)."""
    _check_objective(objective)
    matched_list = positions_list if matched_positions_list is None else matched_positions_list
    scores = np.zeros((len(eps_grid), len(samples_grid)))
    for points, truth, matched in zip(positions_list, truth_list, matched_list, strict=True):
        score = TuningScorer(truth, objective, matched)
        values = [score(labels) for _, _, labels in dbscan_label_grid(points, eps_grid, samples_grid)]
        scores += np.reshape(values, scores.shape)
    scores /= max(len(positions_list), 1)
    near_best = scores >= scores.max() - tolerance
    j = int(np.flatnonzero(near_best.any(axis=0)).max())  # the largest min_samples near the best
    i = int(np.argmax(scores[:, j]))  # its best eps (the first, smallest, of equals)
    return float(eps_grid[i]), int(samples_grid[j]), float(scores[i, j])


def grid_search_hdbscan(
    positions_list: list[np.ndarray],
    truth_list: list[np.ndarray],
    sizes_grid: np.ndarray,
    objective: str = "ari",
    tolerance: float = TUNING_TOLERANCE,
    matched_positions_list: list[np.ndarray] | None = None,
) -> tuple[int, float]:
    """HDBSCAN's min_cluster_size (min_samples left to its default, the same) that maximises the mean
    :func:`tuning_score` over the fields; among scores within ``tolerance`` of the best the largest wins, as for
    DBSCAN's min_samples (:func:`grid_search_dbscan`)."""
    _check_objective(objective)
    matched_list = positions_list if matched_positions_list is None else matched_positions_list
    scores = np.zeros(len(sizes_grid))
    for points, truth, matched in zip(positions_list, truth_list, matched_list, strict=True):
        score = TuningScorer(truth, objective, matched)
        scores += [score(hdbscan_labels(points, int(size))) for size in sizes_grid]
    scores /= max(len(positions_list), 1)
    j = int(np.flatnonzero(scores >= scores.max() - tolerance).max())
    return int(sizes_grid[j]), float(scores[j])


def suggest_parameters(
    trained: TrainedMIRO,
    fields: list,
    device: str | torch.device = "cpu",
    min_cluster_size: int = 5,
    objective: str = "ari",
    hdbscan: bool = True,
) -> dict:
    """Tune DBSCAN on synthetic fields with known truth (never on the data to be analysed).

    ``fields`` are :class:`napari_miro.synthesis.SyntheticField` objects (positions, cluster). Returns
    ``eps_nm`` / ``min_samples`` for MIRO + DBSCAN (maximising ``objective`` on the collapsed fields), the same for
    the fine scale of a multiscale model, and ``dbscan_eps_nm`` / ``dbscan_min_samples`` for DBSCAN alone on
    the original positions (the fair baseline). eps is searched on a grid of quantiles of the nearest-
    neighbour distances, min_samples from 2 up to the smallest cluster size. With ``hdbscan``, also
    ``hdbscan_min_cluster_size`` (collapsed) and ``hdbscan_alone_min_cluster_size`` (original) over the same
    grid, on the first :data:`HDBSCAN_TUNING_FIELDS` fields.
    """
    collapsed = [collapse(trained, f.positions, device=device) for f in fields]
    truths = [f.cluster for f in fields]
    samples_grid = tuning_samples_grid(min_cluster_size)
    collapsed_points = [c.positions for c in collapsed]
    original = [f.positions for f in fields]
    eps, samples, score = grid_search_dbscan(
        collapsed_points,
        truths,
        tuning_eps_grid(collapsed_points),
        samples_grid,
        objective,
        matched_positions_list=original,
    )
    result = {"eps_nm": eps, "min_samples": samples, "miro_ari": score}
    if trained.is_multiscale:
        fine_truth = [f.fine for f in fields]
        fine_points = [c.fine_positions for c in collapsed]
        fine_eps, fine_samples, fine_score = grid_search_dbscan(
            fine_points,
            fine_truth,
            tuning_eps_grid(fine_points),
            samples_grid,
            objective,
            matched_positions_list=original,
        )
        result.update(fine_eps_nm=fine_eps, fine_min_samples=fine_samples, fine_ari=fine_score)
    base_eps, base_samples, base_score = grid_search_dbscan(
        original, truths, tuning_eps_grid(original), samples_grid, objective
    )
    result.update(dbscan_eps_nm=base_eps, dbscan_min_samples=base_samples, dbscan_ari=base_score)
    if hdbscan:
        few = slice(0, HDBSCAN_TUNING_FIELDS)
        size, score = grid_search_hdbscan(
            collapsed_points[few], truths[few], samples_grid, objective, matched_positions_list=original[few]
        )
        alone_size, alone_score = grid_search_hdbscan(original[few], truths[few], samples_grid, objective)
        result.update(
            hdbscan_min_cluster_size=size,
            hdbscan_score=score,
            hdbscan_alone_min_cluster_size=alone_size,
            hdbscan_alone_score=alone_score,
        )
    return result


def tune_model(
    trained: TrainedMIRO, data: AnnotatedData, synthesizer: FieldSynthesizer, settings: TrainingSettings
) -> dict:
    """Tune DBSCAN for ``trained`` on fresh synthetic fields and write the parameters into its settings; then,
    with RETUNE_ON_FOUND_SIZES (one-scale models), re-tune min_samples on copies as large as the
    clusters it finds in the annotated field when those are mostly larger (eps kept; the larger min_samples
    wins). Returns what was tuned and found, as recorded in ``trained.settings.training["tuning"]``."""
    suggestion = tune_dbscan(trained, synthesizer, settings)
    _apply_tuning(trained, suggestion)
    if RETUNE_ON_FOUND_SIZES and data.fine_labels is None:
        widest, found = widest_copy_from_field(trained, data)
        suggestion = {**suggestion, **found}
        if widest is not None:
            widened = copy.copy(synthesizer)
            widened.copy_size_ranges = [(low, max(high, widest)) for low, high in synthesizer.copy_size_ranges]
            wide = tune_dbscan(trained, widened, settings, hdbscan=False)
            suggestion["min_samples"] = max(suggestion["min_samples"], wide["min_samples"])
            suggestion["copies_up_to"] = round(widest, 3)
            _apply_tuning(trained, suggestion)
    trained.settings.training["tuning"] = suggestion
    return suggestion


def _apply_tuning(trained: TrainedMIRO, suggestion: dict) -> None:
    """DBSCAN's tuned parameters into the model's settings."""
    for name, value in suggestion.items():
        if hasattr(trained.settings, name):
            setattr(trained.settings, name, value)


def tune_dbscan(
    trained: TrainedMIRO, synthesizer: FieldSynthesizer, settings: TrainingSettings, hdbscan: bool = True
) -> dict:
    """DBSCAN's (and HDBSCAN's) parameters for ``trained`` (with its current number of passes), tuned on fresh
    synthetic fields (seeded): see :func:`suggest_parameters`."""
    rng = np.random.default_rng(settings.seed + 3)
    tuning_fields = [synthesizer.field(rng) for _ in range(max(2, settings.n_tuning_fields))]
    return suggest_parameters(
        trained,
        tuning_fields,
        min_cluster_size=min(synthesizer.sizes),
        objective=settings.tuning_objective,
        hdbscan=hdbscan,
    )


def found_clusters_are_larger(size_ratios: Sequence[float]) -> bool:
    """The rule of :func:`tune_model`, on the found clusters' sizes over the annotated median:
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
    when they are not mostly larger than the annotated ones (:func:`tune_model`); with what
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
