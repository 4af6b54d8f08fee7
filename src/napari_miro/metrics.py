"""Clustering accuracy against a ground truth (definitions as in the paper's code; see
shared/reference/miro-reference.md). Labels: 0 = not clustered; DBSCAN's -1 must already be mapped to 0.

Pure core (numpy, scipy, scikit-learn): imports neither Qt nor napari.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

__all__ = ["ami", "ari", "ari_c", "compression_index", "jaccard_clusters"]


def ari(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """Hubert-Arabie adjusted Rand index over all points (label 0 counts as a class)."""
    return float(adjusted_rand_score(true_labels, pred_labels))


def ari_c(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """ARI over the points whose true label is not 0 (clustered points only)."""
    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    clustered = true_labels != 0
    if not clustered.any():
        return float("nan")
    return float(adjusted_rand_score(true_labels[clustered], pred_labels[clustered]))


def ami(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """Adjusted mutual information, arithmetic normalisation."""
    return float(adjusted_mutual_info_score(true_labels, pred_labels, average_method="arithmetic"))


def _centroids_and_extents(xy: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.unique(labels[labels != 0])
    centroids = np.array([xy[labels == i].mean(axis=0) for i in ids]).reshape(-1, 2)
    extents = np.array([np.ptp(xy[labels == i], axis=0) for i in ids]).reshape(-1, 2)
    sizes = np.array([(labels == i).sum() for i in ids])
    return centroids, extents, sizes


def match_clusters(xy: np.ndarray, true_labels: np.ndarray, pred_labels: np.ndarray) -> dict:
    """The paper's cluster matching: centroid distance d (1e9 where d > mean true extent / 2), cost
    0.9 d + 0.1 * L1(extent difference), Hungarian assignment, pairs kept where d < the largest
    mean-extent/2 of the true clusters. Returns TP, FP, FN and the matched pairs' sizes and distances."""
    true_c, true_e, true_n = _centroids_and_extents(xy, np.asarray(true_labels))
    pred_c, pred_e, pred_n = _centroids_and_extents(xy, np.asarray(pred_labels))
    if len(true_c) == 0 or len(pred_c) == 0:
        return {
            "tp": 0,
            "fp": len(pred_c),
            "fn": len(true_c),
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
        "true_n": true_n[rows],
        "pred_n": pred_n[cols],
        "distance": distance[rows, cols],
    }


def jaccard_clusters(xy: np.ndarray, true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """JI_c = TP / (TP + FP + FN) of the cluster matching."""
    matched = match_clusters(xy, true_labels, pred_labels)
    denominator = matched["tp"] + matched["fp"] + matched["fn"]
    return float(matched["tp"] / denominator) if denominator else float("nan")


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
