"""Inference and clustering: tiling invariance, DBSCAN labels, classes and nesting, model files."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from napari_miro import metrics, simulate
from napari_miro.inference import _mode_class, _nest, cluster_points, collapse, dbscan_labels
from napari_miro.model import MIRO, MIROConfig
from napari_miro.model_file import MIROSettings, ModelFileError, TrainedMIRO


def test_results_do_not_depend_on_where_tiles_fall(trained_rings, rings_field):
    trained, _ = trained_rings
    positions = rings_field[["x", "y"]].to_numpy()
    tile = 1000.0  # several tiles over the 3 um field
    first = collapse(trained, positions, tile_nm=tile, tile_origin=np.array([0.0, 0.0]))
    second = collapse(trained, positions, tile_nm=tile, tile_origin=np.array([-437.0, -611.0]))
    whole = collapse(trained, positions, tile_nm=10_000.0)
    moved = np.hypot(*(first.positions - second.positions).T)
    assert np.median(moved) < 5.0  # nm; the displacements themselves are ~100 nm
    labels = [
        dbscan_labels(c.positions, trained.settings.eps_nm, trained.settings.min_samples)
        for c in (first, second, whole)
    ]
    assert metrics.ari(labels[0], labels[1]) > 0.9
    assert metrics.ari(labels[0], labels[2]) > 0.9


def test_every_point_gets_one_prediction_in_batches(trained_rings, rings_field):
    trained, _ = trained_rings
    positions = rings_field[["x", "y"]].to_numpy()
    done = []
    small_batches = collapse(
        trained, positions, tile_nm=800.0, max_nodes_per_batch=500, progress=lambda d, t: done.append((d, t))
    )
    one_batch = collapse(trained, positions, tile_nm=800.0, max_nodes_per_batch=10**9)
    np.testing.assert_allclose(small_batches.positions, one_batch.positions, atol=1e-4)
    assert done[-1][0] == done[-1][1] and len(done) > 1
    assert np.isfinite(small_batches.positions).all()


def test_collapse_can_be_stopped(trained_rings, rings_field):
    trained, _ = trained_rings
    with pytest.raises(InterruptedError):
        collapse(trained, rings_field[["x", "y"]].to_numpy(), should_stop=lambda: True)


def test_dbscan_labels_start_at_one_and_zero_is_noise():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [100.0, 100.0]])
    labels = dbscan_labels(points, 2.0, 3)
    assert labels.tolist() == [1, 1, 1, 0]
    with pytest.raises(ValueError, match="eps"):
        dbscan_labels(points, 0.0, 3)
    assert dbscan_labels(np.zeros((0, 2)), 1.0, 2).shape == (0,)


def test_class_of_a_cluster_is_the_mode_of_its_points():
    labels = np.array([1, 1, 1, 2, 2, 0])
    classes = np.array([2, 2, 1, 0, 0, 1])
    assert _mode_class(labels, classes) == {1: 2, 2: 0}


def test_fine_clusters_are_nested_in_coarse_ones():
    coarse = np.array([1, 1, 1, 1, 2, 2, 0])
    fine = np.array([5, 5, 7, 7, 7, 9, 9])
    nested = _nest(fine, coarse)
    # fine 7 mostly in coarse 1: its point in coarse 2 is dropped; fine 9 lies half outside any coarse cluster
    assert nested.tolist() == [1, 1, 2, 2, 0, 3, 0]


def test_model_file_round_trip(trained_rings, rings_field, tmp_path):
    trained, _ = trained_rings
    path = trained.save(tmp_path / "rings.safetensors")
    loaded = TrainedMIRO.load(path)
    assert loaded.settings == trained.settings
    assert loaded.model.config == trained.model.config
    for a, b in zip(trained.model.state_dict().values(), loaded.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a.cpu(), b)
    positions = rings_field[["x", "y"]].to_numpy()
    np.testing.assert_array_equal(cluster_points(trained, positions).labels, cluster_points(loaded, positions).labels)
    assert loaded.settings.training["optimizer_steps"] > 0


def test_a_pickle_crafted_to_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ModelFileError, match="not a napari-miro model file"):
        TrainedMIRO.load(path)
    assert not marker.exists()


def test_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ModelFileError, match="no such model file"):
        TrainedMIRO.load(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ModelFileError, match="not a napari-miro model file"):
        TrainedMIRO.load(corrupt)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a napari-miro model"):
        TrainedMIRO.load(foreign)
    damaged = tmp_path / "damaged.safetensors"
    model = MIRO(MIROConfig(hidden=8, steps=2))
    metadata = {
        "format": "napari-miro-model",
        "format_version": "1",
        "network": json.dumps({"hidden": 16, "steps": 2}),
        "settings": json.dumps({"delta_nm": 100.0}),
    }
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(damaged), metadata=metadata)
    with pytest.raises(ModelFileError, match="damaged"):
        TrainedMIRO.load(damaged)
    newer = tmp_path / "newer.safetensors"
    metadata.update(format_version="99")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(newer), metadata=metadata)
    with pytest.raises(ModelFileError, match="newer"):
        TrainedMIRO.load(newer)


def test_classes_and_multiscale_outputs_reach_the_result():
    torch.manual_seed(0)
    model = MIRO(MIROConfig(hidden=8, steps=4, n_classes=3, fine_step=1))
    trained = TrainedMIRO(
        model, MIROSettings(delta_nm=100.0, field_size_nm=1000.0, class_names=["background", "ring", "spot"])
    )
    positions = np.random.default_rng(0).uniform(0, 1000, (300, 2))
    result = cluster_points(trained, positions, eps_nm=50.0, min_samples=3)
    assert result.point_class is not None and result.point_class.shape == (300,)
    assert result.fine_labels is not None and result.fine_labels.shape == (300,)
    assert set(result.cluster_class) == set(np.unique(result.labels[result.labels > 0]).tolist())
    assert ((result.fine_labels == 0) | (result.labels > 0)).all()  # fine clusters only inside coarse ones


def test_a_second_pass_applies_the_network_to_the_first_passs_output(trained_rings, rings_field):
    from dataclasses import replace as replace_settings

    trained, _ = trained_rings
    positions = rings_field[["x", "y"]].to_numpy()
    once = collapse(trained, positions)
    twice_model = type(trained)(trained.model, replace_settings(trained.settings, passes=2))
    twice = collapse(twice_model, positions)
    again = collapse(trained, once.positions)
    np.testing.assert_allclose(twice.positions, again.positions, atol=1e-9)
    np.testing.assert_allclose(twice.displacement, positions - again.positions, atol=1e-9)
    assert not np.allclose(twice.positions, once.positions)


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
