"""Metrics: toy cases checked by hand, and the plain-DBSCAN calibration figures of
shared/reference/dbscan-baselines-dev.md reproduced for all 18 settings."""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_miro.inference import dbscan_labels
from napari_miro.io import read_localizations
from napari_miro.metrics import (
    ari,
    ari_c,
    ari_dagger,
    cluster_stats,
    compression_index,
    evaluate,
    iou,
    jaccard_clusters,
    matched_classes,
)

COLUMNS = ["IoU", "ARI", "ARI_c", "ARI_dagger", "AMI", "JI_c", "RMSRE_N", "RMSE_xy_paper", "RMSE_xy"]


def _square_field():
    rng = np.random.default_rng(0)
    centres = np.array([[200.0, 200.0], [800.0, 800.0], [200.0, 800.0]])
    points = np.concatenate([c + rng.normal(0, 20, (30, 2)) for c in centres] + [rng.uniform(0, 1000, (60, 2))])
    labels = np.repeat([1, 2, 3, 0], [30, 30, 30, 60])
    return points, labels


def test_perfect_prediction_scores_one():
    xy, truth = _square_field()
    scores = evaluate(xy, truth, truth)
    for name in ("ARI", "ARI_dagger", "AMI", "ARI_c", "IoU", "JI_c"):
        assert scores[name] == pytest.approx(1.0), name
    assert scores["RMSRE_N"] == 0 and scores["RMSE_xy"] == 0


def test_label_names_do_not_matter_and_misses_count():
    xy, truth = _square_field()
    renamed = np.where(truth > 0, truth + 10, 0)
    assert evaluate(xy, truth, renamed)["JI_c"] == 1.0
    missing_one = np.where(truth == 3, 0, truth)
    assert jaccard_clusters(xy, truth, missing_one) == pytest.approx(2 / 3)
    merged = np.where(truth == 2, 1, truth)
    assert ari_c(truth, merged) < 1
    assert iou(xy, truth, missing_one) < 1


def test_matched_classes_pair_true_and_predicted_shapes():
    xy, truth = _square_field()
    shape = np.array(["background", "spot", "ring", "spot"])[truth]
    predicted = np.where(truth == 3, 0, np.where(truth > 0, truth + 10, 0))  # cluster 3 missed
    true_names, pred_names = matched_classes(xy, truth, shape, predicted, {11: "spot", 12: "spot"})
    assert sorted(zip(true_names, pred_names, strict=True)) == [("ring", "spot"), ("spot", "spot")]
    assert matched_classes(xy, truth, shape, np.zeros_like(truth), {}) == ([], [])


def test_ari_dagger_weighs_clusters_equally():
    truth = np.array([0] * 80 + [1] * 10 + [2] * 10)
    small_error = truth.copy()
    small_error[80:85] = 0  # half of cluster 1 lost to the background
    assert 0 < ari_dagger(truth, small_error) < ari_dagger(truth, truth) == pytest.approx(1.0)


def test_compression_index():
    xy, truth = _square_field()
    centres = np.array([xy[truth == k].mean(0) if k else [0, 0] for k in range(4)])
    to_centre = np.where(truth[:, None] > 0, centres[truth] - xy, 0)
    assert compression_index(xy, to_centre, truth) == pytest.approx(1.0)
    assert compression_index(xy, 0.5 * to_centre, truth) == pytest.approx(0.5)
    assert compression_index(xy, np.zeros_like(xy), truth) == pytest.approx(0.0)


def _reference_table(shared_data):
    text = (shared_data.parent / "reference" / "dbscan-baselines-dev.md").read_text()
    table = {}
    for line in text.splitlines():
        match = re.match(r"\| (\S+/scenario-\d+) \| (\d+) / (\d+) \| (.*)\|$", line.strip())
        if match:
            table[match.group(1)] = (
                float(match.group(2)),
                int(match.group(3)),
                [float(v) for v in match.group(4).split("|")],
            )
    return table


def test_plain_dbscan_calibration_figures_are_reproduced(shared_data):
    table = _reference_table(shared_data)
    assert len(table) == 18
    failures = []
    for setting, (eps, min_samples, expected) in table.items():
        rows = []
        for index in range(1, 26):
            df = read_localizations(shared_data / "nieves2023" / setting / f"fov-{index:02d}.csv")
            xy, truth = df[["x", "y"]].to_numpy(), df["index"].to_numpy()
            scores = evaluate(xy, truth, dbscan_labels(xy, eps, min_samples))
            rows.append([scores[name] for name in COLUMNS])
        means = np.nanmean(rows, axis=0)
        for name, got, want in zip(COLUMNS, means, expected, strict=True):
            tolerance = 0.01 if name.startswith("RMSE") else 0.002
            if abs(got - want) > tolerance:
                failures.append(f"{setting} {name}: {got:.4f} != {want:.4f}")
    assert not failures, "\n".join(failures)


def test_ari_equals_scikit_learns_adjusted_rand_score():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 300))
        truth = rng.integers(0, int(rng.integers(1, 20)), n)
        predicted = [rng.integers(0, int(rng.integers(1, 20)), n), truth.copy(), np.arange(n), np.zeros(n)][trial % 4]
        assert ari(truth, predicted) == adjusted_rand_score(truth, predicted)
    with pytest.raises(ValueError, match="true labels"):
        ari([0, 1], [0])


def test_cluster_stats_by_counting_equal_those_by_sorting():
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 1000, (500, 2))
    labels = rng.choice([0, 2, 3, 7, 40], 500)  # small positive integers with gaps: counted
    counted = cluster_stats(xy, labels)
    for relabelled in (labels * 10**9, labels.astype(float)):
        sorted_ids, *stats = cluster_stats(xy, relabelled)  # large or float labels: sorted
        np.testing.assert_array_equal(sorted_ids, np.unique(relabelled[labels > 0]))
        for got, want in zip(stats, counted[1:], strict=True):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(counted[0], [2, 3, 7, 40])
    np.testing.assert_array_equal(counted[3], [np.sum(labels == k) for k in (2, 3, 7, 40)])
    assert all(len(part) == 0 for part in cluster_stats(xy, np.zeros(500, int)))
