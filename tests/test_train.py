"""Training: the loss checked by hand, annotations validated, synthetic fields, a short training that
collapses clusters and beats DBSCAN alone, cancellation, devices."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from napari_miro import metrics, simulate
from napari_miro.annotations import AnnotatedData, median_radius, suggest_delta
from napari_miro.density import (
    background_clump_size,
    background_density_factors,
    background_fraction_from_spacing,
    estimate_densities,
)
from napari_miro.devices import available_devices, resolve_device
from napari_miro.estimator import MIROClusterer
from napari_miro.geometry import radius_of_gyration
from napari_miro.inference import cluster_points, dbscan_labels
from napari_miro.loss import miro_loss
from napari_miro.recipe import PRESETS
from napari_miro.synthesis import FieldSynthesizer
from napari_miro.training import TrainingCancelled, make_synthesizer, make_training_fields, train


def test_loss_terms_by_hand_on_a_tiny_graph():
    # two nodes joined both ways; positions 0 and 1 (in displacement units)
    positions = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    target = torch.tensor([[-0.5, 0.0], [0.5, 0.0]])  # collapse both onto x = 0.5
    edge_index = torch.tensor([[0, 1], [1, 0]])
    predicted = torch.tensor([[-0.25, 0.0], [0.25, 0.0]])  # halfway
    targets = {"target": target, "fine_target": target, "positions": positions, "class_id": torch.tensor([1, 1])}
    # L1: mean |error| over 4 coordinates = (0.25 + 0 + 0.25 + 0) / 4; distance after: predicted 0.5, true 0
    l1 = miro_loss([predicted], targets, edge_index, alpha=10.0, beta=0.1, displacement_loss="l1")
    assert float(l1) == pytest.approx(0.125 + 10 * 0.5, abs=1e-4)  # distances carry a 1e-6 smoothing
    mse = miro_loss([predicted], targets, edge_index, alpha=0.0, displacement_loss="mse")
    assert float(mse) == pytest.approx((0.0625 + 0.0625) / 4, abs=1e-6)
    # averaged over steps: a perfect second step halves the loss
    two = miro_loss([predicted, target], targets, edge_index, alpha=10.0, displacement_loss="l1")
    assert float(two) == pytest.approx(float(l1) / 2, abs=1e-4)
    # class logits add beta * cross-entropy
    logits = torch.tensor([[0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 2.0, 0.0]])  # 2 classes: ln(1 + e^-2)
    with_classes = miro_loss(
        [torch.cat([predicted, logits[:, 2:]], 1)], targets, edge_index, alpha=10.0, beta=0.1, displacement_loss="l1"
    )
    expected_ce = float(torch.nn.functional.cross_entropy(torch.tensor([[2.0, 0.0]] * 2), torch.tensor([1, 1])))
    assert float(with_classes) == pytest.approx(float(l1) + 0.1 * expected_ce, abs=1e-5)


def test_multiscale_loss_uses_fine_targets_for_early_steps():
    positions = torch.zeros(2, 2)
    coarse, fine = torch.ones(2, 2), torch.zeros(2, 2)
    targets = {"target": coarse, "fine_target": fine, "positions": positions, "class_id": torch.zeros(2).long()}
    edge_index = torch.zeros(2, 0, dtype=torch.long)
    outputs = [fine.clone(), coarse.clone()]  # step 0 hits the fine target, step 1 the coarse one
    assert float(miro_loss(outputs, targets, edge_index, alpha=0.0, fine_step=0, displacement_loss="l1")) == 0.0
    assert float(miro_loss(outputs, targets, edge_index, alpha=0.0, fine_step=None, displacement_loss="l1")) > 0


def test_annotations_are_validated_with_clear_messages():
    positions = np.random.default_rng(0).uniform(0, 100, (50, 2))
    with pytest.raises(ValueError, match="no annotated cluster"):
        AnnotatedData(positions, [])
    with pytest.raises(ValueError, match="at least 3"):
        AnnotatedData(positions, [np.array([1, 2])])
    with pytest.raises(ValueError, match="do not exist"):
        AnnotatedData(positions, [np.array([1, 2, 99])])
    with pytest.raises(ValueError, match="label"):
        AnnotatedData.from_labels(positions, np.zeros(50, int), which=[3])


def test_annotations_from_labels_with_classes_and_fine_labels():
    df = simulate.shape_mixture(("spot", "ring"), n_per_shape=4, seed=1)
    data = AnnotatedData.from_labels(
        df[["x", "y"]].to_numpy(),
        df["cluster"].to_numpy(),
        classes=df["class"].to_numpy(),
        fine=df["subcluster"].to_numpy(),
    )
    assert len(data.clusters) == 8
    assert data.class_names == ["background", "ring", "spot"]
    assert sorted(set(data.class_ids)) == [1, 2] and data.n_classes == 3
    assert all(len(f) == len(c) for f, c in zip(data.fine_labels, data.clusters, strict=True))


def test_density_estimates_and_delta_follow_the_data():
    df = simulate.elliptical_clusters(n_clusters=20, background_fraction=0.5, fov_nm=2000, seed=2)
    data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1])
    background, clusters = estimate_densities(data)
    assert background * 1e6 == pytest.approx(250, rel=0.3)  # 1000 background points in 4 um^2
    assert clusters * 1e6 == pytest.approx(5, rel=0.4)  # 20 clusters in 4 um^2
    assert 100 <= suggest_delta(data) <= 400


def test_background_fraction_from_spacing_reads_the_nearest_neighbour_tail():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(0, 2000, (1500, 2))
    assert background_fraction_from_spacing(uniform) == pytest.approx(1.0, abs=0.1)
    for fraction in (0.5, 0.8):  # measured over 8 seeds: 0.47-0.53 and 0.70-0.82
        df = simulate.gaussian_clusters(n_clusters=20, background_fraction=fraction, fov_nm=2000, seed=4)
        assert background_fraction_from_spacing(df[["x", "y"]].to_numpy()) == pytest.approx(fraction, abs=0.1)
    assert background_fraction_from_spacing(uniform[:50]) is None
    assert background_fraction_from_spacing(np.zeros((200, 2))) is None  # all duplicates: no decay


def test_clusters_smaller_than_the_annotated_one_do_not_count_as_background():
    """Half the clusters hold 5 localizations, half 15 (the benchmark's scenario 8); one 15-cluster annotated.
    By local density the 5-clusters look like background (measured on fov-01: background x1.42, clusters
    x0.40); the nearest-neighbour tail sees them as clustered."""
    small = simulate.gaussian_clusters(n_clusters=20, locs_per_cluster=5, background_fraction=0.0, seed=5)
    large = simulate.gaussian_clusters(n_clusters=20, locs_per_cluster=15, background_fraction=0.0, seed=6)
    positions = np.concatenate([small[["x", "y"]].to_numpy(), large[["x", "y"]].to_numpy()])
    n_clustered = len(positions)
    positions = np.concatenate([positions, np.random.default_rng(7).uniform(0, 2000, (n_clustered, 2))])
    labels = np.concatenate(
        [np.zeros(len(small), np.int64), large["cluster"].to_numpy(), np.zeros(n_clustered, np.int64)]
    )
    data = AnnotatedData.from_labels(positions, labels, which=[1])
    true_background = n_clustered / ConvexHull(positions).volume
    background, _ = estimate_densities(data, "uniform")
    by_local_density, _ = estimate_densities(data, "blinking")
    assert background == pytest.approx(true_background, rel=0.15)  # 4 seeds: +4% to +15% (local density: +25-40%)
    assert abs(background - true_background) < abs(by_local_density - true_background)


def test_blinking_background_is_not_read_as_small_clusters():
    """Clusters of 6 blinking molecules over as many blinking background molecules, one cluster of ~24
    localizations annotated (the benchmark's blinking S10 annotates one of 25): molecules that blink many times are
    as dense as it. Counting them as clustered read the background at 0.56-1.10x its density over 4 seeds (here
    0.56x; blinking S4 0.48x, S10 0.54x); corrected for the background's chance clumps 1.16-1.63x (here 1.16x;
    blinking S4 1.01x, S10 1.03x): the clusters' sparse edges now count as background in full."""
    molecules = simulate.gaussian_clusters(n_clusters=20, locs_per_cluster=6, background_fraction=0.5, seed=0)
    df = simulate.blink(molecules, seed=0)
    truth = df["cluster"].to_numpy()
    ids, sizes = np.unique(truth[truth > 0], return_counts=True)
    annotated = int(ids[np.argmin(np.abs(sizes - 24))])
    data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), truth, which=[annotated])
    true_background = (truth == 0).sum() / ConvexHull(data.positions).volume
    background, _ = estimate_densities(data, "blinking")
    assert 0.9 * true_background < background < 1.4 * true_background


def test_background_density_factors_follow_a_gradient_and_ignore_chance():
    """A background whose density rises along x (the benchmark's scenario 10) gives factors from well below to
    well above 1; a uniform one none (its blocks vary by chance, and clusters' sparse edges, but no plane through
    them rises or falls by GRADIENT_MIN). Seeds 0-5: rising 0.11-0.17 to 1.62-2.09, uniform None (block factors
    without the trend's test: 0.84-1.19 at the extremes)."""
    clusters = simulate.gaussian_clusters(n_clusters=20, background_fraction=0.0, fov_nm=4000, seed=9)
    rng = np.random.default_rng(9)
    n_background = 3000
    uniform = rng.uniform(0, 4000, (n_background, 2))
    rising = np.column_stack([4000 * np.sqrt(rng.uniform(0, 1, n_background)), rng.uniform(0, 4000, n_background)])
    labels = np.concatenate([clusters["cluster"].to_numpy(), np.zeros(n_background, np.int64)])
    for background, expect_gradient in ((uniform, False), (rising, True)):
        positions = np.concatenate([clusters[["x", "y"]].to_numpy(), background])
        data = AnnotatedData.from_labels(positions, labels, which=[1])
        density, _ = estimate_densities(data, "uniform")
        factors = background_density_factors(data, "uniform", density)
        if expect_gradient:
            assert factors is not None and factors.min() < 0.6 and factors.max() > 1.4
        else:
            assert factors is None


def test_sparse_structures_over_little_background_are_not_read_as_background():
    """Spots and rings over 5% background, one of each annotated (the benchmark's single shot): the larger
    half of the nearest-neighbour distances is mostly ring localizations. Before the tail started beyond the
    annotated clusters' spacing the estimate was 8.7x the truth (now x1.7)."""
    df = simulate.shape_mixture(("spot", "ring"), seed=1)
    truth = df["cluster"].to_numpy()
    first_of_each = [int(df.loc[(truth > 0) & (df["class"] == name), "cluster"].min()) for name in ("spot", "ring")]
    data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), truth, which=first_of_each)
    true_background = (truth == 0).sum() / ConvexHull(data.positions).volume
    background, _ = estimate_densities(data, "uniform")
    assert true_background <= background < 2.5 * true_background


def test_synthetic_fields_hold_clusters_like_the_annotated_ones():
    df = simulate.rings(n_clusters=10, fov_nm=3000, seed=3)
    data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1, 2])
    synthesizer = FieldSynthesizer(data, seed=0, copy_size_min=0.8)
    field = synthesizer.field(np.random.default_rng(0))
    sizes = np.bincount(field.cluster)[1:]
    annotated = [len(c) for c in data.clusters]
    assert sizes.min() >= 0.75 * min(annotated) and sizes.max() <= 1.25 * max(annotated)
    assert (field.cluster == 0).sum() > 0
    assert (field.positions >= -synthesizer.fov_nm * 0.1).all()
    radii = [
        np.hypot(*(field.positions[field.cluster == k] - field.positions[field.cluster == k].mean(0)).T).mean()
        for k in range(1, field.cluster.max() + 1)
    ]
    assert np.median(radii) == pytest.approx(250, rel=0.2)  # rings stay rings
    # the default, wider size prior makes smaller copies too (real clusters often vary more than the annotated)
    wide = FieldSynthesizer(data, seed=0)
    wide_sizes = np.concatenate([np.bincount(wide.field(np.random.default_rng(k)).cluster)[1:] for k in range(3)])
    assert wide_sizes.min() < 0.5 * min(annotated) and wide_sizes.max() <= 1.25 * max(annotated)
    with pytest.raises(ValueError, match="copy_size_min"):
        FieldSynthesizer(data, copy_size_min=0.0)


def test_copies_never_fall_below_the_floor_or_their_own_size():
    for locs, smallest in ((6, 5), (4, 4)):  # 0.3 x 6 would be 2: the floor of 5; a 4-cluster: its own size
        df = simulate.gaussian_clusters(n_clusters=12, locs_per_cluster=locs, background_fraction=0.3, seed=8)
        data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1])
        synthesizer = FieldSynthesizer(data, seed=0)
        copies = np.concatenate(
            [np.bincount(synthesizer.field(np.random.default_rng(k)).cluster)[1:] for k in range(8)]
        )
        assert copies.min() == smallest
    assert FieldSynthesizer(data, seed=0, copy_size_floor=3).floors == [3]
    with pytest.raises(ValueError, match="copy_size_floor"):
        FieldSynthesizer(data, copy_size_floor=2)


def test_copies_are_no_smaller_than_chance_clumps_of_the_background():
    """Over a dense blinking background, a copy of 0.3x the annotated cluster holds fewer localizations than the
    background gathers by chance in a cluster's space: copies start at that clump size (at most 0.8x the cluster).
    Over a sparse uniform background the size prior stays 0.3-1.2x; the floor is on by default with the blinking
    background only."""
    molecules = simulate.gaussian_clusters(
        n_clusters=20, locs_per_cluster=15, sigma_nm=25.0, background_fraction=0.5, fov_nm=2000.0, seed=11
    )
    df = simulate.blink(molecules, seed=12)
    data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1])
    blinking = FieldSynthesizer(data, background="blinking", seed=0)
    low, high = blinking.copy_size_ranges[0]
    clump = background_clump_size(
        blinking.background_density, median_radius(data), "blinking", 0.99, np.random.default_rng([0, 4])
    )
    assert low == pytest.approx(max(0.3, min(clump / len(data.clusters[0]), 0.8))) and high == 1.2
    assert 0.4 < low <= 0.8
    sizes = np.concatenate([np.bincount(blinking.field(np.random.default_rng(k)).cluster)[1:] for k in range(4)])
    assert np.median(sizes) > 0.6 * len(data.clusters[0])
    off = FieldSynthesizer(data, background="blinking", seed=0, copy_background_floor=False)
    assert off.copy_size_ranges == [(0.3, 1.2)]
    # the default: on with the blinking background only
    assert FieldSynthesizer(data, background="uniform", seed=0).copy_size_ranges == [(0.3, 1.2)]
    forced = FieldSynthesizer(data, background="uniform", seed=0, copy_background_floor=True)
    assert forced.copy_size_ranges[0][0] < low  # a uniform background of that density gathers smaller clumps
    sparse = simulate.gaussian_clusters(n_clusters=12, locs_per_cluster=30, background_fraction=0.3, seed=8)
    sparse_data = AnnotatedData.from_labels(sparse[["x", "y"]].to_numpy(), sparse["cluster"].to_numpy(), which=[1])
    sparse_floor = FieldSynthesizer(sparse_data, seed=0, copy_background_floor=True)
    assert sparse_floor.copy_size_ranges == [(0.3, 1.2)]
    # a blinking background gathers far larger clumps than a uniform one of the same density
    uniform_clump = background_clump_size(3e-4, 30.0, "uniform", 0.99, np.random.default_rng(1))
    assert background_clump_size(3e-4, 30.0, "blinking", 0.99, np.random.default_rng(1)) > 3 * uniform_clump
    assert background_clump_size(0.0, 30.0, "uniform", 0.99, np.random.default_rng(1)) == 1.0
    with pytest.raises(ValueError, match="quantile"):
        background_clump_size(3e-4, 30.0, "uniform", 1.5, np.random.default_rng(1))


def test_copies_can_be_jittered_and_stretched_more():
    df = simulate.gaussian_clusters(n_clusters=12, locs_per_cluster=60, sigma_nm=30.0, background_fraction=0.3, seed=4)
    data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1])

    def log_aspects(synthesizer: FieldSynthesizer) -> np.ndarray:
        values = []
        for k in range(4):
            field = synthesizer.field(np.random.default_rng(k))
            for label in range(1, field.cluster.max() + 1):
                eigen = np.linalg.eigvalsh(np.cov(field.positions[field.cluster == label].T))
                values.append(0.5 * np.log(eigen[1] / eigen[0]))
        return np.array(values)

    plain = FieldSynthesizer(data, seed=0, copy_size_min=1.0, copy_jitter=0.25)

    def pool_radius(synthesizer: FieldSynthesizer) -> float:
        return float(np.sqrt((synthesizer.pools[0] ** 2).sum(1).mean()))

    loose = FieldSynthesizer(data, seed=0, copy_jitter=1.0)
    assert loose.jitter[0] == pytest.approx(4 * plain.jitter[0])
    assert pool_radius(loose) > pool_radius(plain)
    with pytest.raises(ValueError, match="must not be negative"):
        FieldSynthesizer(data, copy_jitter=-0.1)


def test_copies_can_be_remade_as_new_blinking_molecules():
    """copy_molecules: each copy is new molecules that blink, so the layout of clumps differs from copy to copy,
    while the copy keeps about the annotated cluster's size and spread; off, the fields are as before. By default
    (None) it is on with the blinking background and off with the uniform one."""
    from scipy.spatial import cKDTree

    molecules = simulate.gaussian_clusters(
        n_clusters=6, locs_per_cluster=50, sigma_nm=40.0, background_fraction=0.5, fov_nm=3000, seed=4
    )
    df = simulate.blink(molecules, seed=4)
    data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1])
    annotated = data.positions[data.clusters[0]]

    def copies(synthesizer: FieldSynthesizer) -> list[np.ndarray]:
        found = []
        for k in range(3):
            field = synthesizer.field(np.random.default_rng(k))
            found += [field.positions[field.cluster == label] for label in range(1, field.cluster.max() + 1)]
        return found

    settings = {"background": "blinking", "seed": 0, "copy_size_min": 1.0, "copy_jitter": 0.25}
    plain = copies(FieldSynthesizer(data, **settings, copy_molecules=False))
    remade = copies(FieldSynthesizer(data, **settings, copy_molecules=True))
    assert [len(c) for c in copies(FieldSynthesizer(data, **settings, copy_molecules=False))] == [
        len(c) for c in plain
    ]  # seeded
    assert FieldSynthesizer(data, **settings).copy_molecules
    assert not FieldSynthesizer(data, **{**settings, "background": "uniform"}).copy_molecules
    from_settings = make_synthesizer(data, replace(PRESETS["compact"], **settings))
    assert from_settings.copy_molecules and from_settings.copy_size_ranges[0][1] == FieldSynthesizer.COPY_SIZE_MAX
    assert from_settings.jitter == FieldSynthesizer(data, **settings).jitter  # copy_jitter 0.25, not the preset's
    first = from_settings.field(np.random.default_rng(0)).positions
    assert np.array_equal(first, FieldSynthesizer(data, **settings).field(np.random.default_rng(0)).positions)
    sizes = np.array([len(c) for c in remade])
    assert 0.7 < sizes.mean() / (1.1 * len(annotated)) < 1.3  # copies hold 1.0-1.2x, on average
    assert 0.75 < np.median([radius_of_gyration(c) for c in remade]) / radius_of_gyration(annotated) < 1.25

    def layout_distance(copy: np.ndarray) -> float:
        """Median distance from a copy's localizations (centred, best of 8 rotations / reflections) to the
        annotated cluster's: small when the copy is the annotated clumps moved, large for new clumps."""
        target = cKDTree(annotated - annotated.mean(0))
        centred = copy - copy.mean(0)
        best = np.inf
        for angle in np.linspace(0, 2 * np.pi, 360, endpoint=False):
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            for flip in (np.eye(2), np.diag([1.0, -1.0])):
                best = min(best, float(np.median(target.query(centred @ flip @ rotation.T)[0])))
        return best

    remade_distance = np.median([layout_distance(c) for c in remade[:8]])
    # plain copies sit at the jitter's distance from the annotated localizations (~2.4 nm here), new clumps at a
    # random point's distance inside the dense cluster (~4.2 nm)
    assert remade_distance > 1.5 * np.median([layout_distance(c) for c in plain[:8]])


def test_short_training_collapses_rings_and_beats_dbscan(trained_rings):
    """Threshold: a model that learned nothing has compression 0 and the same JI_c as DBSCAN; after ~20 s of
    training the rings of fields it never saw shrink by more than 15% and are detected better."""
    trained, result = trained_rings
    assert result.best_validation_loss < result.history[0]["loss"]
    compressions, miro_ji, dbscan_ji = [], [], []
    for seed in (10, 11, 12):
        test = simulate.rings(n_clusters=12, fov_nm=3000, seed=seed)
        positions, truth = test[["x", "y"]].to_numpy(), test["cluster"].to_numpy()
        clustered = cluster_points(trained, positions)
        baseline = dbscan_labels(positions, trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples)
        compressions.append(metrics.compression_index(positions, clustered.collapsed.positions - positions, truth))
        miro_ji.append(metrics.jaccard_clusters(positions, truth, clustered.labels))
        dbscan_ji.append(metrics.jaccard_clusters(positions, truth, baseline))
    assert np.mean(compressions) > 0.15
    assert np.mean(miro_ji) > np.mean(dbscan_ji)


def _small_settings(**changes):
    small = {
        "hidden": 16,
        "recurrent_steps": 3,
        "n_fields": 6,
        "n_validation_fields": 2,
        "n_tuning_fields": 2,
        "optimizer_steps": 40,
        "validate_every": 5,
        "base_model": None,
    }
    return replace(PRESETS["compact"], **{**small, **changes})


def _ring_data() -> AnnotatedData:
    df = simulate.rings(n_clusters=4, fov_nm=2000, seed=4)
    return AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1])


def test_progress_is_reported_and_cancel_keeps_the_best_model():
    data = _ring_data()
    events = []
    stop = threading.Event()

    def progress(info):
        events.append(info)
        if info["phase"] == "training" and info["step"] == 12:
            stop.set()

    result = train(data, _small_settings(), device="cpu", progress=progress, should_stop=stop.is_set)
    phases = [e["phase"] for e in events]
    assert "fields" in phases and "training" in phases
    assert result.stopped_early
    assert result.history[-1]["step"] == 12
    assert 0 < result.best_step <= 12
    assert all(np.isfinite(e["loss"]) for e in events if e["phase"] == "training")


def test_cancel_before_the_first_step_says_so():
    with pytest.raises(TrainingCancelled):
        train(_ring_data(), _small_settings(), device="cpu", should_stop=lambda: True)


def test_training_is_deterministic_with_a_seed():
    data = _ring_data()
    torch.set_num_threads(1)
    try:
        first = train(data, _small_settings(optimizer_steps=6), device="cpu")
        second = train(data, _small_settings(optimizer_steps=6), device="cpu")
    finally:
        torch.set_num_threads(2)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


_TRAIN_AND_PRINT_DIGEST = """
import hashlib
from dataclasses import replace

import torch

from napari_miro import simulate
from napari_miro.annotations import AnnotatedData
from napari_miro.recipe import PRESETS
from napari_miro.training import train

torch.set_num_threads(2)
df = simulate.rings(n_clusters=12, fov_nm=3000, seed=1)
data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy())
settings = replace(PRESETS["compact"], hidden=32, recurrent_steps=8, n_fields=32, n_validation_fields=4,
                   n_tuning_fields=2, optimizer_steps=4, validate_every=50, base_model=None)
digest = hashlib.sha256()
for value in train(data, settings, device="cpu").model.state_dict().values():
    digest.update(value.numpy().tobytes())
print(digest.hexdigest())
"""


def test_training_is_the_same_in_every_process_with_two_threads():
    # within one process runs agreed even when the gradient of advanced indexing (accumulated in a
    # thread-dependent order) made separate processes differ after a few steps
    digests = {
        subprocess.run(
            [sys.executable, "-c", _TRAIN_AND_PRINT_DIGEST], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(3)
    }
    assert len(digests) == 1


def test_training_fields_can_be_reused():
    data = _ring_data()
    settings = _small_settings(optimizer_steps=4)
    fields = make_training_fields(data, settings)
    assert len(fields.train) + len(fields.validation) == 8 and fields.delta_nm > 0
    result = train(data, settings, device="cpu", fields=fields)
    assert result.fields is fields


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert available_devices()[0] == "auto" and "cpu" in available_devices()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_out_of_memory_on_the_device_becomes_a_clear_message(monkeypatch):
    from napari_miro.devices import OUT_OF_MEMORY_ERRORS, DeviceOutOfMemory
    from napari_miro.model import MIRO

    def exhausted(self, batch, steps=None):
        raise OUT_OF_MEMORY_ERRORS[0]("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(MIRO, "forward", exhausted)
    with pytest.raises(DeviceOutOfMemory, match="compact preset") as info:
        train(_ring_data(), _small_settings(), device="cpu")
    assert "CUDA out of memory" not in str(info.value)


def test_fields_are_laid_side_by_side_far_apart():
    import pandas as pd

    from napari_miro.annotations import lay_side_by_side

    first = pd.DataFrame({"x": [10.0, 110.0, 10.0], "y": [0.0, 0.0, 100.0]})
    second = pd.DataFrame({"x": [500.0, 600.0, 500.0], "y": [5.0, 5.0, 105.0]})
    positions, field, area = lay_side_by_side([first, second])
    assert field.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(positions[:3], [[0, 0], [100, 0], [0, 100]])
    assert positions[3:, 0].min() == pytest.approx(100 + 100_000)  # 100 um after the first field ends
    np.testing.assert_allclose(positions[3:, 1], second["y"])
    assert area == pytest.approx(2 * 5000.0)  # two right triangles of 100 x 100 nm


def test_checkpoints_hand_over_ready_models_without_eating_the_time_budget():
    from napari_miro.model_file import TrainedMIRO

    data = _ring_data()
    handed = []

    def on_model(minutes, model):
        time.sleep(1.5)  # a slow consumer: its time must not count as training time
        handed.append((minutes, model))

    settings = _small_settings(optimizer_steps=None, max_minutes=0.05)  # 3 s of training
    clusterer = MIROClusterer(recipe=settings, device="cpu")
    result = clusterer.fit(data, checkpoint_minutes=[0.0, 0.02], on_model=on_model).training_
    assert [minutes for minutes, _ in handed] == [0.0, 0.02]
    for _, model in handed:
        assert isinstance(model, TrainedMIRO) and model.settings.eps_nm > 0
        assert model.settings.training["optimizer_steps"] >= 1
    assert handed[0][1].settings.training["optimizer_steps"] < handed[1][1].settings.training["optimizer_steps"]
    assert result.out_of_time
    loop_seconds = result.history[-1]["seconds"] - result.history[0]["seconds"]
    assert loop_seconds > 3.0  # the 3 s of training were all spent training, besides the 3 s of waiting
    positions = data.positions
    assert cluster_points(handed[0][1], positions).labels.shape == (len(positions),)


def test_cosine_schedule_follows_steps_or_the_time_budget_whichever_is_further():
    from napari_miro.training import learning_rate_factor

    by_steps = _small_settings(optimizer_steps=100, max_minutes=None)
    assert learning_rate_factor(by_steps, 0, 0.0) == pytest.approx(1.0)
    assert learning_rate_factor(by_steps, 50, 0.0) == pytest.approx(0.525)
    assert learning_rate_factor(by_steps, 100, 0.0) == pytest.approx(0.05)
    by_time = _small_settings(optimizer_steps=None, max_minutes=2.0)
    assert learning_rate_factor(by_time, 10, 60.0) == pytest.approx(0.525)
    assert learning_rate_factor(by_time, 10, 500.0) == pytest.approx(0.05)
    assert learning_rate_factor(replace(by_time, schedule="constant"), 10, 60.0) == 1.0


def test_time_left_follows_fields_training_checkpoints_and_tuning():
    from napari_miro.time_left import TimeLeft, format_duration

    now = [0.0]
    settings = replace(PRESETS["compact"], max_minutes=1.0, optimizer_steps=None)
    estimate = TimeLeft(settings, checkpoint_minutes=[0.5, 1.5], clock=lambda: now[0])  # 1.5 min: beyond the budget
    now[0] = 2.0
    # 1 of 10 fields in 2 s: 18 s of fields, 60 s of training, one checkpoint and one final tuning of ~10 s each
    assert estimate.update({"phase": "fields", "step": 1, "total": 10}) == pytest.approx(18 + 60 + 2 * 10)
    now[0] = 20.0
    estimate.update({"phase": "fields", "step": 10, "total": 10})
    now[0] = 49.0  # 29 s into training
    left = estimate.update({"phase": "training", "step": 100, "total": None, "seconds": 49, "training_seconds": 29})
    assert left == pytest.approx(31 + 2 * 10)
    now[0] = 58.0  # a checkpoint tuning took 6 s that training did not count
    left = estimate.update({"phase": "training", "step": 110, "total": None, "seconds": 58, "training_seconds": 32})
    assert estimate.tuning_seconds == pytest.approx(6.0) and left == pytest.approx(28 + 6)
    now[0] = 90.0
    assert estimate.update({"phase": "tuning", "step": 0, "total": 1}) == pytest.approx(6.0)
    now[0] = 94.0
    assert estimate.update({"phase": "tuning", "step": 0, "total": 1}) == pytest.approx(2.0)
    # a step count that ends before the time budget: the steps decide
    by_steps = TimeLeft(replace(settings, optimizer_steps=200), clock=lambda: now[0])
    left = by_steps.update({"phase": "training", "step": 100, "total": 200, "seconds": 10, "training_seconds": 10})
    assert left == pytest.approx(10 + 3.0)  # 100 steps at 0.1 s, plus the smallest tuning guess
    assert [format_duration(s) for s in (4.4, 75, 3725)] == ["4 s", "1 min 15 s", "1 h 02 min"]


def test_training_reports_time_left_that_comes_true():
    """On a real run the first estimate after the fields are made is within a factor of two of the truth."""
    from napari_miro.time_left import TimeLeft

    settings = _small_settings(optimizer_steps=None, max_minutes=0.05)
    estimate = TimeLeft(settings)
    guesses = []

    def progress(info):
        guesses.append((time.monotonic(), info["phase"], estimate.update(info)))

    MIROClusterer(recipe=settings, device="cpu").fit(_ring_data(), progress=progress)
    finished = time.monotonic()
    first_training = next((when, left) for when, phase, left in guesses if phase == "training")
    actual = finished - first_training[0]
    assert 0.5 * actual <= first_training[1] <= 2.0 * actual + 2.0


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


def test_training_retunes_min_samples_on_wider_copies_when_the_field_asks_for_it(monkeypatch):
    from napari_miro import tuning
    from napari_miro.tuning import tuning_note

    _dbscan_instead_of_miro(monkeypatch)
    tuned_on = []

    def record_tuning(trained, synthesizer, settings):
        tuned_on.append(list(synthesizer.copy_size_ranges))
        return {"eps_nm": 10.0 + len(tuned_on), "min_samples": 3 + len(tuned_on)}

    monkeypatch.setattr(tuning, "tune_dbscan", record_tuning)
    data = _field_of_gaussian_clusters(20, [50] * 6, seed=2)
    clusterer = MIROClusterer(recipe=_small_settings(optimizer_steps=2), device="cpu").fit(data)
    trained, result = clusterer.model_, clusterer.training_
    (low, high), (wide_low, wide_high) = tuned_on[0][0], tuned_on[1][0]
    assert high == FieldSynthesizer.COPY_SIZE_MAX and wide_low == low and wide_high == pytest.approx(2.5)
    assert result.fields.synthesizer.copy_size_ranges == tuned_on[0]  # the training's own fields are left alone
    assert (trained.settings.eps_nm, trained.settings.min_samples) == (11.0, 5)  # eps kept, min_samples re-tuned
    tuning = trained.settings.training["tuning"]
    assert tuning["found_clusters"] == 6 and tuning["copies_up_to"] == pytest.approx(2.5)
    assert tuning_note(trained) == (
        "min_samples tuned on copies up to 2.5x the annotated cluster: the 6 clusters like it found in the field "
        "hold 2.5x its localizations (median)"
    )
    tuned_on.clear()
    kept = (
        MIROClusterer(recipe=_small_settings(optimizer_steps=2, tune_on_found_sizes=False), device="cpu")
        .fit(data)
        .model_
    )
    assert len(tuned_on) == 1 and (kept.settings.eps_nm, kept.settings.min_samples) == (11.0, 4)
    assert tuning_note(kept) == ""
