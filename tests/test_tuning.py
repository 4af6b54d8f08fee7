"""DBSCAN's parameters tuned on synthetic fields, and re-tuned for the clusters found in the annotated field."""

from __future__ import annotations

import numpy as np
import pytest

from napari_miro import metrics, simulate
from napari_miro.annotations import AnnotatedData
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import dbscan_labels
from napari_miro.synthesis import FieldSynthesizer


def _field_of_gaussian_clusters(annotated_size: int, other_sizes: list[int], seed: int = 0) -> AnnotatedData:
    """Tight Gaussian clusters (sigma 10 nm) 500 nm apart on a row; the first (``annotated_size``) is annotated."""
    rng = np.random.default_rng(seed)
    sizes = [annotated_size, *other_sizes]
    positions = np.concatenate([rng.normal((500.0 * i, 0.0), 10.0, (n, 2)) for i, n in enumerate(sizes)])
    labels = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    return AnnotatedData.from_labels(positions, labels, which=[1])


def _dbscan_instead_of_miro(monkeypatch):
    """MIRO + DBSCAN replaced by DBSCAN alone on the positions (clear clusters: the truth)."""
    from types import SimpleNamespace

    from napari_miro import tuning

    def dbscan_alone(trained, positions):
        return SimpleNamespace(labels=dbscan_labels(positions, 30, 3))

    monkeypatch.setattr(tuning, "cluster_points", dbscan_alone)


def test_the_fields_own_clusters_widen_the_tuning_copies_only_when_mostly_larger(monkeypatch):
    from napari_miro.tuning import clusters_like_annotated, widest_copy_from_field

    _dbscan_instead_of_miro(monkeypatch)
    larger = _field_of_gaussian_clusters(20, [50] * 6 + [40, 60] + [400])  # 400: more than 4x, not like it
    found = clusters_like_annotated(None, larger)
    assert sorted(len(members) for members in found) == [40] + [50] * 6 + [60]
    assert all(np.isin(members, larger.clusters[0], invert=True).all() for members in found)
    widest, record = widest_copy_from_field(None, larger)
    assert record == {"found_clusters": 8, "found_median_size": 2.5}
    assert widest == pytest.approx(np.quantile([2.0] + [2.5] * 6 + [3.0], 0.9))
    alike = _field_of_gaussian_clusters(20, [18, 20, 22, 20, 25, 19])
    assert widest_copy_from_field(None, alike) == (None, {"found_clusters": 6, "found_median_size": 1.0})
    too_few = _field_of_gaussian_clusters(20, [50] * 4)
    assert widest_copy_from_field(None, too_few) == (None, {"found_clusters": 4})
    lonely = _field_of_gaussian_clusters(20, [])
    spread = np.random.default_rng(1).normal((1000.0, 0.0), 80.0, (50, 2))  # 50 points, 8x the radius
    with_spread = AnnotatedData(np.concatenate([lonely.positions, spread]), lonely.clusters)
    assert clusters_like_annotated(None, with_spread) == []


def test_a_large_field_is_searched_for_clusters_around_the_annotated_one(monkeypatch):
    from napari_miro import tuning

    _dbscan_instead_of_miro(monkeypatch)
    monkeypatch.setattr(tuning, "FOUND_MAX_POINTS", 20 + 3 * 50)
    data = _field_of_gaussian_clusters(20, [50] * 8)
    found = tuning.clusters_like_annotated(None, data)
    centres = sorted(round(data.positions[members, 0].mean(), -2) for members in found)  # indices into the field
    assert centres == [500, 1000, 1500] and all(len(members) == 50 for members in found)  # the three nearest


def test_training_retunes_min_samples_on_wider_copies_when_the_field_asks_for_it(monkeypatch, small_settings):
    from napari_miro import tuning
    from napari_miro.tuning import tuning_note

    _dbscan_instead_of_miro(monkeypatch)
    tuned_on = []

    def record_tuning(trained, synthesizer, settings, hdbscan=True):
        assert hdbscan == (not tuned_on)  # HDBSCAN is tuned once, not again on the wider copies
        tuned_on.append(list(synthesizer.copy_size_ranges))
        return {"eps_nm": 10.0 + len(tuned_on), "min_samples": 3 + len(tuned_on)}

    monkeypatch.setattr(tuning, "tune_dbscan", record_tuning)
    data = _field_of_gaussian_clusters(20, [50] * 6, seed=2)
    clusterer = MIROClusterer(recipe=small_settings(optimizer_steps=2), device="cpu").fit(data)
    trained, result = clusterer.model_, clusterer.training_
    (low, high), (wide_low, wide_high) = tuned_on[0][0], tuned_on[1][0]
    assert high == FieldSynthesizer.COPY_SIZE_MAX and wide_low == low and wide_high == pytest.approx(2.5)
    assert result.fields.synthesizer.copy_size_ranges == tuned_on[0]  # the training's own fields are left alone
    assert (trained.settings.eps_nm, trained.settings.min_samples) == (11.0, 5)  # eps kept, min_samples re-tuned
    record = trained.settings.training["tuning"]
    assert record["found_clusters"] == 6 and record["copies_up_to"] == pytest.approx(2.5)
    assert tuning_note(trained) == (
        "min_samples tuned on copies up to 2.5x the annotated cluster: the 6 clusters like it found in the field "
        "hold 2.5x its localizations (median)"
    )
    tuned_on.clear()
    monkeypatch.setattr(tuning, "RETUNE_ON_FOUND_SIZES", False)
    kept = MIROClusterer(recipe=small_settings(optimizer_steps=2), device="cpu").fit(data).model_
    assert len(tuned_on) == 1 and (kept.settings.eps_nm, kept.settings.min_samples) == (11.0, 4)
    assert tuning_note(kept) == ""


def test_tuning_objective_with_ari_c_refuses_parameters_that_split_clusters():
    from napari_miro.tuning import grid_search_dbscan

    rng = np.random.default_rng(0)
    # two tight clusters of 40 points made of 4 sub-clumps each, and a sparse background
    centres = np.array([[0.0, 0.0], [400.0, 0.0]])
    clumps = [c + rng.normal(0, 40, 2) for c in centres for _ in range(4)]
    clusters = np.concatenate([clump + rng.normal(0, 4, (10, 2)) for clump in clumps])
    truth = np.concatenate([np.full(40, 1), np.full(40, 2), np.zeros(60, int)])
    points = np.concatenate([clusters, rng.uniform(-600, 1000, (60, 2))])
    eps_grid, samples_grid = np.array([10.0, 60.0]), np.array([3, 5])
    split = dbscan_labels(points, 10.0, 3)
    assert split.max() > 2  # eps 10 nm splits each cluster into its clumps
    eps, _, _ = grid_search_dbscan([points], [truth], eps_grid, samples_grid, "ari+ari_c")
    assert eps == 60.0
    with pytest.raises(ValueError, match="unknown tuning objective"):
        grid_search_dbscan([points], [truth], eps_grid, samples_grid, "f1")


def test_tuning_prefers_the_larger_min_samples_among_equal_scores():
    from napari_miro.tuning import grid_search_dbscan

    rng = np.random.default_rng(1)
    tight = np.concatenate([c + rng.normal(0, 5, (20, 2)) for c in ([0.0, 0.0], [500.0, 0.0], [0.0, 500.0])])
    truth = np.repeat([1, 2, 3], 20)
    eps, samples, score = grid_search_dbscan([tight], [truth], np.array([30.0, 60.0]), np.array([2, 5, 8]))
    assert (samples, score) == (8, pytest.approx(1.0))  # every min_samples separates them: the largest is kept
    assert eps == 30.0
    small = np.concatenate([c + rng.normal(0, 5, (4, 2)) for c in ([0.0, 0.0], [500.0, 0.0], [0.0, 500.0])])
    _, samples, _ = grid_search_dbscan([small], [np.repeat([1, 2, 3], 4)], np.array([30.0]), np.array([2, 8]))
    assert samples == 2  # 8 turns every 4-point cluster into noise: a clearly better small value still wins


def test_tuning_with_ji_c_keeps_small_clusters_the_ari_barely_sees():
    from napari_miro.tuning import grid_search_dbscan, tuning_score

    rng = np.random.default_rng(2)
    big = [np.array([x, y]) + rng.normal(0, 5, (40, 2)) for x in range(0, 2000, 500) for y in range(0, 1500, 500)]
    small = [np.array([x, 1750.0]) + rng.normal(0, 5, (5, 2)) for x in range(0, 1500, 500)]
    points = np.concatenate(big + small)
    truth = np.concatenate([np.full(len(c), k + 1) for k, c in enumerate(big + small)])
    eps_grid, samples_grid = np.array([30.0]), np.array([2, 4, 6])
    # min_samples 6 drops the three 5-localization clusters: the ARIs lose less than the tolerance, JI_c a fifth
    _, samples, _ = grid_search_dbscan([points], [truth], eps_grid, samples_grid, "ari+ari_c")
    assert samples == 6
    eps, samples, score = grid_search_dbscan([points], [truth], eps_grid, samples_grid, "ari+ari_c+ji_c")
    assert (eps, samples, score) == (30.0, 4, pytest.approx(1.0))
    with pytest.raises(ValueError, match="positions"):
        tuning_score(truth, truth, "ari+ari_c+ji_c")


def test_tuning_scorer_gives_the_metrics_on_every_grid_labelling():
    """The tuning's scorer (truth side computed once, counting instead of sorting) gives exactly the mean of the
    metrics module's ARI, ARI_c and JI_c, for every objective, with and without clustered points in the truth."""
    from napari_miro.tuning import TuningScorer, dbscan_label_grid, tuning_score

    df = simulate.gaussian_clusters(n_clusters=12, background_fraction=0.4, fov_nm=1500, seed=3)
    points, truth = df[["x", "y"]].to_numpy(), df["cluster"].to_numpy()
    matched = points + 7.0  # JI_c matches on other positions than DBSCAN ran on (the original ones)
    grid = list(dbscan_label_grid(points, np.geomspace(5, 150, 8), np.array([1, 2, 4, 9, 15])))
    terms = {
        "ari": lambda t, labels: [metrics.ari(t, labels)],
        "ari+ari_c": lambda t, labels: [metrics.ari(t, labels), metrics.ari_c(t, labels)],
        "ari+ari_c+ji_c": lambda t, labels: [
            metrics.ari(t, labels), metrics.ari_c(t, labels), metrics.jaccard_clusters(matched, t, labels)
        ],
    }  # fmt: skip
    for objective, reference in terms.items():
        score = TuningScorer(truth, objective, matched)
        for _, _, labels in grid:
            assert score(labels) == float(np.mean(reference(truth, labels)))
            assert tuning_score(truth, labels, objective, matched) == score(labels)
        background_only = np.zeros_like(truth)  # no clustered point: the ARI alone, whatever the objective
        for _, _, labels in grid:
            assert TuningScorer(background_only, objective, matched)(labels) == metrics.ari(background_only, labels)
    with pytest.raises(ValueError, match="positions"):
        TuningScorer(truth, "ari+ari_c+ji_c")
    with pytest.raises(ValueError, match="objective"):
        TuningScorer(truth, "ari+ji_c", matched)


def test_a_border_point_joins_its_nearest_core_points_cluster():
    from napari_miro.tuning import dbscan_label_grid

    left = np.array([[x, y] for x in (0.0, 1.0) for y in (0.0, 1.0, 2.0)])  # 6 core points at min_samples 6
    right = left + np.array([20.0, 0.0])
    border = np.array([[10.6, 1.0]])  # within 9.62 nm of one left core point (9.6) and three right ones (9.4-9.45)
    for points in (np.concatenate([left, border, right]), np.concatenate([right, border, left])):
        (_, _, labels), *_ = dbscan_label_grid(points, np.array([9.62]), np.array([6]))
        right_label = labels[0] if points[0, 0] > 10 else labels[-1]
        assert labels[6] == right_label and len(np.unique(labels)) == 2


def test_dbscan_label_grid_matches_dbscan_on_every_grid_point():
    """Core points, clusters and noise exactly as scikit-learn's DBSCAN; only a border point within reach of
    two clusters may join the other one (its nearest core point's)."""
    from sklearn.cluster import DBSCAN

    from napari_miro.tuning import dbscan_label_grid

    df = simulate.gaussian_clusters(n_clusters=30, background_fraction=0.5, fov_nm=2000, seed=1)
    points = df[["x", "y"]].to_numpy()
    points = np.concatenate([points, points[:20]])  # duplicate localizations count as neighbours at distance 0
    eps_grid, samples_grid = np.geomspace(5, 120, 12), np.array([1, 2, 3, 5, 8, 12, 20])
    grid = list(dbscan_label_grid(points, eps_grid, samples_grid))
    assert [(eps, samples) for eps, samples, _ in grid] == [(e, s) for e in eps_grid for s in samples_grid]
    for eps, samples, labels in grid:
        reference = dbscan_labels(points, eps, samples)
        core = np.zeros(len(points), bool)
        core[DBSCAN(eps=eps, min_samples=samples).fit(points).core_sample_indices_] = True
        np.testing.assert_array_equal(labels == 0, reference == 0)
        assert metrics.ari(reference[core], labels[core]) == 1.0
        assert metrics.ari(reference, labels) > 0.98
    assert all((labels == 0).all() for _, _, labels in dbscan_label_grid(points[:1], eps_grid, samples_grid[1:]))


def test_hdbscan_min_cluster_size_is_searched_like_dbscans_min_samples():
    from napari_miro.tuning import grid_search_hdbscan

    rng = np.random.default_rng(3)
    fields, truths = [], []
    for _ in range(2):
        clusters = [rng.normal(rng.uniform(0, 3000, 2), 15, (40, 2)) for _ in range(8)]
        background = rng.uniform(0, 3000, (200, 2))
        fields.append(np.concatenate([*clusters, background]))
        truths.append(np.concatenate([np.repeat(np.arange(1, 9), 40), np.zeros(200, int)]))
    size, score = grid_search_hdbscan(fields, truths, np.array([2, 5, 10, 20, 40]))
    assert 5 <= size <= 40 and score > 0.6  # tiny sizes cut clusters and make background clusters
    _, small_score = grid_search_hdbscan(fields, truths, np.array([2]))
    assert small_score < score
    with pytest.raises(ValueError, match="objective"):
        grid_search_hdbscan(fields, truths, np.array([5]), objective="f1")
