"""Clustering accuracy against a ground truth (definitions as in the paper's code; see
shared/reference/miro-reference.md). Labels: 0 = not clustered; DBSCAN's -1 must already be mapped to 0.

Pure core (numpy, scipy, scikit-learn): imports neither Qt nor napari.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_mutual_info_score

__all__ = ["ami", "ari", "ari_c", "compression_index", "jaccard_clusters"]


def ari(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """Hubert-Arabie adjusted Rand index over all points (label 0 counts as a class): the value of
    scikit-learn's ``adjusted_rand_score``, from the same pair counts, without its input checks (DBSCAN tuning
    scores thousands of labellings)."""
    true_labels, pred_labels = np.asarray(true_labels).ravel(), np.asarray(pred_labels).ravel()
    if len(true_labels) != len(pred_labels):
        raise ValueError(f"{len(true_labels)} true labels but {len(pred_labels)} predicted ones")
    n = len(true_labels)
    _, true_index = np.unique(true_labels, return_inverse=True)
    _, pred_index = np.unique(pred_labels, return_inverse=True)
    n_pred = int(pred_index.max(initial=-1)) + 1
    cells, cell_counts = np.unique(true_index.astype(np.int64) * n_pred + pred_index, return_counts=True)
    true_sizes, pred_sizes = np.bincount(true_index), np.bincount(pred_index)
    n_pred = max(n_pred, 1)
    return ari_from_cells(n, cell_counts, true_sizes[cells // n_pred], pred_sizes[cells % n_pred])


def ari_from_cells(n: int, cell_counts: np.ndarray, cell_true_sizes: np.ndarray, cell_pred_sizes: np.ndarray) -> float:
    """The ARI of ``n`` points from the non-empty cells of the contingency table: each cell's count and the sizes
    of its true and its predicted cluster."""
    # ordered pairs: together in both, in the truth only, in the prediction only (as sklearn's pair confusion)
    sum_squares = int((cell_counts.astype(np.int64) ** 2).sum())
    in_pred_only = int((cell_counts * cell_pred_sizes).sum()) - sum_squares
    in_true_only = int((cell_counts * cell_true_sizes).sum()) - sum_squares
    both = sum_squares - n
    neither = n * n - in_pred_only - in_true_only - sum_squares
    if in_pred_only == 0 and in_true_only == 0:
        return 1.0
    numerator = 2.0 * (both * neither - in_true_only * in_pred_only)
    return float(
        numerator
        / ((both + in_true_only) * (in_true_only + neither) + (both + in_pred_only) * (in_pred_only + neither))
    )


def ari_c(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """ARI over the points whose true label is not 0 (clustered points only)."""
    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    clustered = true_labels != 0
    if not clustered.any():
        return float("nan")
    return ari(true_labels[clustered], pred_labels[clustered])


def ami(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """Adjusted mutual information, arithmetic normalisation."""
    return float(adjusted_mutual_info_score(true_labels, pred_labels, average_method="arithmetic"))


def _pairs(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values * (values - 1) / 2


def ari_dagger(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """ARI-dagger (Warrens & van der Hoef 2022): the harmonic mean of the plain means of the adjusted Wallace
    indices of the true clusters (AW_i) and of the predicted clusters (AV_j), each mean over the non-zero
    indices, so that every cluster weighs the same whatever its size (label 0 counts as a cluster)."""
    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    _, true_index = np.unique(true_labels, return_inverse=True)
    _, pred_index = np.unique(pred_labels, return_inverse=True)
    table = np.zeros((true_index.max() + 1, pred_index.max() + 1))
    np.add.at(table, (true_index, pred_index), 1)
    a, b = table.sum(axis=1), table.sum(axis=0)
    n_pairs = _pairs(len(true_labels))
    p, q = _pairs(a).sum(), _pairs(b).sum()
    within = _pairs(table)
    with np.errstate(divide="ignore", invalid="ignore"):
        aw = np.where(_pairs(a) > 0, (n_pairs * within.sum(axis=1) - _pairs(a) * q) / (_pairs(a) * (n_pairs - q)), 0)
        av = np.where(_pairs(b) > 0, (n_pairs * within.sum(axis=0) - _pairs(b) * p) / (_pairs(b) * (n_pairs - p)), 0)
    aw, av = aw[np.isfinite(aw) & (aw != 0)], av[np.isfinite(av) & (av != 0)]
    if len(aw) == 0 or len(av) == 0:
        return 0.0
    mean_w, mean_v = aw.mean(), av.mean()
    return float(2 * mean_w * mean_v / (mean_w + mean_v)) if mean_w + mean_v != 0 else 0.0


def _hull_mask(points: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[slice, slice, np.ndarray] | None:
    """Pixels of the grid (xs, ys) inside the convex hull of ``points``: (row slice, column slice, mask)."""
    from matplotlib.path import Path
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        return None
    cols = slice(np.searchsorted(xs, hull[:, 0].min()), np.searchsorted(xs, hull[:, 0].max(), side="right"))
    rows = slice(np.searchsorted(ys, hull[:, 1].min()), np.searchsorted(ys, hull[:, 1].max(), side="right"))
    if cols.start >= cols.stop or rows.start >= rows.stop:
        return None
    grid_x, grid_y = np.meshgrid(xs[cols], ys[rows])
    inside = Path(hull).contains_points(np.column_stack([grid_x.ravel(), grid_y.ravel()]))
    return rows, cols, inside.reshape(grid_x.shape)


def _union_of_hulls(xy: np.ndarray, labels: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    mask = np.zeros((len(ys), len(xs)), bool)
    for label in np.unique(labels[labels > 0]):
        members = xy[labels == label]
        if len(members) < 3:
            continue
        hull = _hull_mask(members, xs, ys)
        if hull is not None:
            rows, cols, inside = hull
            mask[rows, cols] |= inside
    return mask


def iou(xy: np.ndarray, true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """Pixel IoU between the union of the true clusters' convex hulls and the union of the predicted ones
    (clusters with >= 3 points), rasterised on an M x M grid over the true points' bounding box,
    M = ceil(max(x_max, y_max) / 100) * 100 + 400 (2400 for a 2000 nm field)."""
    xy = np.asarray(xy, dtype=np.float64)
    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    size = int(np.ceil(max(xy[:, 0].max(), xy[:, 1].max()) / 100) * 100 + 400)
    xs = np.linspace(xy[:, 0].min(), xy[:, 0].max(), size)
    ys = np.linspace(xy[:, 1].min(), xy[:, 1].max(), size)
    truth = _union_of_hulls(xy, true_labels, xs, ys)
    predicted = _union_of_hulls(xy, pred_labels, xs, ys)
    union = (truth | predicted).sum()
    return float((truth & predicted).sum() / union) if union else float("nan")


ClusterStats = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  #: ids, centroids, extents, sizes


def cluster_stats(xy: np.ndarray, labels: np.ndarray) -> ClusterStats:
    """The clusters of ``labels`` (0 left out): ids (ascending), centroids, extents (max - min per axis) and sizes.
    Small positive integer labels (DBSCAN's) are indexed by counting instead of sorting (same result)."""
    labels = np.asarray(labels)
    clustered = labels != 0
    members = labels[clustered]
    if members.dtype.kind in "iu" and len(members) and members.min() > 0 and members.max() <= 4 * len(labels):
        present = np.bincount(members) > 0
        ids, index = np.flatnonzero(present), (np.cumsum(present) - 1)[members]
    else:
        ids, index = np.unique(members, return_inverse=True)
    points = np.asarray(xy, dtype=np.float64)[clustered].reshape(-1, 2)
    sizes = np.bincount(index, minlength=len(ids))
    sums = np.stack([np.bincount(index, points[:, k], len(ids)) for k in range(2)], axis=1)
    centroids = sums / np.maximum(sizes, 1)[:, None]
    low, high = np.full((len(ids), 2), np.inf), np.full((len(ids), 2), -np.inf)
    np.minimum.at(low, index, points)
    np.maximum.at(high, index, points)
    return ids, centroids, high - low, sizes


def match_clusters(xy: np.ndarray, true_labels: np.ndarray, pred_labels: np.ndarray) -> dict:
    """The paper's cluster matching: centroid distance d (1e9 where d > mean true extent / 2), cost
    0.9 d + 0.1 * L1(extent difference), Hungarian assignment, pairs kept where d < the largest
    mean-extent/2 of the true clusters. Returns TP, FP, FN and the matched pairs' labels, sizes and distances."""
    return match_cluster_stats(cluster_stats(xy, true_labels), cluster_stats(xy, pred_labels))


def match_cluster_stats(true: ClusterStats, pred: ClusterStats) -> dict:
    """:func:`match_clusters` from each side's cluster ids (ascending), centroids, extents and sizes."""
    true_ids, true_c, true_e, true_n = true
    pred_ids, pred_c, pred_e, pred_n = pred
    if len(true_c) == 0 or len(pred_c) == 0:
        return {
            "tp": 0,
            "fp": len(pred_c),
            "fn": len(true_c),
            "true_ids": np.array([], np.int64),
            "pred_ids": np.array([], np.int64),
            "true_n": np.array([]),
            "pred_n": np.array([]),
            "distance": np.array([]),
        }
    distance = np.sqrt(((true_c[:, None, :] - pred_c[None, :, :]) ** 2).sum(-1))
    half_extent = true_e.mean(axis=1) / 2
    distance = np.where(distance > half_extent[:, None], 1e9, distance)
    cost = 0.9 * distance + 0.1 * np.abs(true_e[:, None, :] - pred_e[None, :, :]).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    keep = distance[rows, cols] < half_extent.max()
    rows, cols = rows[keep], cols[keep]
    tp = len(rows)
    return {
        "tp": tp,
        "fp": len(pred_c) - tp,
        "fn": len(true_c) - tp,
        "true_ids": true_ids[rows],
        "pred_ids": pred_ids[cols],
        "true_n": true_n[rows],
        "pred_n": pred_n[cols],
        "distance": distance[rows, cols],
    }


def jaccard_clusters(xy: np.ndarray, true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """JI_c = TP / (TP + FP + FN) of the cluster matching."""
    return jaccard_from_match(match_clusters(xy, true_labels, pred_labels))


def jaccard_from_match(matched: dict) -> float:
    """JI_c from a cluster matching's TP, FP and FN."""
    denominator = matched["tp"] + matched["fp"] + matched["fn"]
    return float(matched["tp"] / denominator) if denominator else float("nan")


def evaluate(xy: np.ndarray, true_labels: np.ndarray, pred_labels: np.ndarray) -> dict[str, float]:
    """Every metric of the paper for one field: ARI, ARI_dagger, AMI, ARI_c, IoU, JI_c, RMSRE_N, RMSE_xy (the
    true root mean square centroid error of matched clusters, nm) and RMSE_xy_paper (the paper code's
    sqrt(mean(d)), to compare with its tables). Labels: 0 = not clustered."""
    xy = np.asarray(xy, dtype=np.float64)
    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    matched = match_clusters(xy, true_labels, pred_labels)
    denominator = matched["tp"] + matched["fp"] + matched["fn"]
    if matched["tp"]:
        relative = (matched["true_n"] - matched["pred_n"]) / matched["true_n"]
        rmsre = float(np.sqrt(np.mean(relative**2)))
        rmse = float(np.sqrt(np.mean(matched["distance"] ** 2)))
        rmse_paper = float(np.sqrt(np.mean(matched["distance"])))
    else:
        rmsre = rmse = rmse_paper = float("nan")
    return {
        "ARI": ari(true_labels, pred_labels),
        "ARI_dagger": ari_dagger(true_labels, pred_labels),
        "AMI": ami(true_labels, pred_labels),
        "ARI_c": ari_c(true_labels, pred_labels),
        "IoU": iou(xy, true_labels, pred_labels),
        "JI_c": float(matched["tp"] / denominator) if denominator else float("nan"),
        "RMSRE_N": rmsre,
        "RMSE_xy": rmse,
        "RMSE_xy_paper": rmse_paper,
    }


def compression_index(xy: np.ndarray, displacement: np.ndarray, true_labels: np.ndarray) -> float:
    """Mean over true clusters of 1 - sum ||x + dx - mu|| / sum ||x - mu|| (1 = fully collapsed).

    ``displacement`` is added to the positions: pass ``collapsed - xy``."""
    xy, displacement, true_labels = np.asarray(xy), np.asarray(displacement), np.asarray(true_labels)
    values = []
    for label in np.unique(true_labels[true_labels != 0]):
        members = true_labels == label
        centre = xy[members].mean(axis=0)
        before = np.linalg.norm(xy[members] - centre, axis=1).sum()
        if before > 0:
            after = np.linalg.norm(xy[members] + displacement[members] - centre, axis=1).sum()
            values.append(1 - after / before)
    return float(np.mean(values)) if values else float("nan")


def matched_classes(
    xy: np.ndarray,
    true_labels: np.ndarray,
    true_class: np.ndarray,
    pred_labels: np.ndarray,
    pred_class_of: dict[int, str],
) -> tuple[list[str], list[str]]:
    """Shape classes of the matched clusters (the paper's matching): the true class (``true_class`` per point)
    and the predicted one (``pred_class_of``: cluster label -> class name) of each pair, for a confusion
    matrix and F1 scores over the clusters that were found."""
    matched = match_clusters(xy, true_labels, pred_labels)
    true_class = np.asarray(true_class)
    true_names = [str(true_class[np.flatnonzero(np.asarray(true_labels) == i)[0]]) for i in matched["true_ids"]]
    pred_names = [pred_class_of.get(int(i), "background") for i in matched["pred_ids"]]
    return true_names, pred_names
