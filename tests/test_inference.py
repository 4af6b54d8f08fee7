"""Inference and clustering: tiling invariance, DBSCAN labels, classes and nesting, passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_miro import metrics
from napari_miro.inference import (
    _mode_class,
    _nest,
    alone_labels,
    cluster_points,
    collapse,
    dbscan_labels,
    hdbscan_labels,
)
from napari_miro.model import MIRO, MIROConfig
from napari_miro.model_file import MIROSettings, TrainedMIRO


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


def test_progress_covers_every_pass(trained_rings, rings_field):
    trained, _ = trained_rings
    positions = rings_field[["x", "y"]].to_numpy()
    done = []
    collapse(trained, positions, tile_nm=800.0, passes=2, progress=lambda d, t: done.append((d, t)))
    totals = {t for _, t in done}
    assert len(totals) == 1 and done[-1][0] == done[-1][1]
    assert [d for d, _ in done] == sorted(d for d, _ in done)  # never back to zero, never at 100% early
    assert max(d for d, t in done if d < t) >= done[-1][1] // 2  # the second pass is counted


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


def test_hdbscan_labels_start_at_one_and_find_clusters_of_different_densities():
    rng = np.random.default_rng(0)
    dense, sparse = rng.normal(0, 5, (60, 2)), rng.normal([400, 0], 40, (60, 2))
    background = rng.uniform(-600, 1000, (30, 2))
    labels = hdbscan_labels(np.concatenate([dense, sparse, background]), 10)
    assert labels.min() >= 0 and len(np.unique(labels[:60])) == 1 and labels[0] > 0
    assert labels[60] > 0 and labels[60] != labels[0]
    # one eps cannot do both: an eps that separates the dense cluster's neighbours leaves the sparse one as noise
    dbscan = dbscan_labels(np.concatenate([dense, sparse]), 3.0, 10)
    assert (dbscan[60:] == 0).mean() > 0.5
    with pytest.raises(ValueError, match="min_cluster_size"):
        hdbscan_labels(dense, 1)
    assert hdbscan_labels(dense[:3], 5).tolist() == [0, 0, 0]  # fewer points than a cluster


def test_hdbscan_after_miro_and_alone_use_the_tuned_sizes(trained_rings, rings_field):
    trained_rings, _ = trained_rings
    xy = rings_field[["x", "y"]].to_numpy()
    truth = rings_field["cluster"].to_numpy()
    settings = trained_rings.settings
    assert settings.hdbscan_min_cluster_size >= 2 and settings.hdbscan_alone_min_cluster_size >= 2
    result = cluster_points(trained_rings, xy, method="hdbscan")
    assert result.method == "hdbscan" and result.min_cluster_size == settings.hdbscan_min_cluster_size
    assert metrics.jaccard_clusters(xy, truth, result.labels) > 0.3 and result.labels.max() >= 3
    given = cluster_points(trained_rings, xy, method="hdbscan", min_cluster_size=500, collapsed=result.collapsed)
    assert given.min_cluster_size == 500 and given.labels.max() < result.labels.max()
    alone = alone_labels(trained_rings, xy, "hdbscan")
    expected = hdbscan_labels(xy, settings.hdbscan_alone_min_cluster_size)
    np.testing.assert_array_equal(alone, expected)
    with pytest.raises(ValueError, match="unknown clustering method"):
        cluster_points(trained_rings, xy, method="optics", collapsed=result.collapsed)


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


def test_a_model_at_another_scale_is_named_in_plain_words(trained_rings, rings_field):
    from napari_miro.inference import scale_mismatch

    trained, _ = trained_rings
    xy = rings_field[["x", "y"]].to_numpy()
    assert scale_mismatch(trained, xy) is None
    assert "almost no edges" in scale_mismatch(trained, xy * 100)  # far sparser than delta
    assert "are the coordinates in nm" in scale_mismatch(trained, xy / 1000)  # um read as nm


def test_duplicated_localizations_leave_the_other_results_unchanged(trained_rings, rings_field):
    """Merged or rounded localizations repeat positions: 300 copies of one localization must not move any other
    point, and each copy goes where its original goes."""
    trained, _ = trained_rings
    positions = rings_field[["x", "y"]].to_numpy()
    with_copies = np.vstack([positions, np.repeat(positions[7:8], 300, axis=0)])
    clean = cluster_points(trained, positions)
    dirty = cluster_points(trained, with_copies)
    n = len(positions)
    assert np.isfinite(dirty.collapsed.positions).all()
    np.testing.assert_allclose(dirty.collapsed.positions[:n], clean.collapsed.positions, atol=1e-3)
    np.testing.assert_allclose(dirty.collapsed.positions[n:], dirty.collapsed.positions[[7] * 300], atol=0)
    assert metrics.ari(dirty.labels[:n], clean.labels) > 0.99
    assert (dirty.labels[n:] == dirty.labels[7]).all()
    assert dirty.collapsed.n_bounded == 0


def test_displacements_stay_finite_and_bounded_whatever_the_network_says(trained_rings, rings_field, monkeypatch):
    trained, _ = trained_rings
    positions = rings_field[["x", "y"]].to_numpy()
    model = trained.model

    for wild in (float("inf"), 1e17):
        monkeypatch.setattr(model, "forward", lambda batch, value=wild: [torch.full((batch.n_nodes, 2), value)])
        result = collapse(trained, positions, passes=1)
        assert np.isfinite(result.positions).all()
        assert np.hypot(*result.displacement.T).max() <= 5.0 * trained.settings.delta_nm * (1 + 1e-9)
        assert result.n_bounded == len(positions)
