"""Synthetic training fields made from the annotated clusters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_miro import simulate
from napari_miro.annotations import AnnotatedData, median_radius
from napari_miro.density import (
    background_clump_size,
)
from napari_miro.geometry import radius_of_gyration
from napari_miro.recipe import PRESETS
from napari_miro.synthesis import COPY_SIZE_MIN, FieldSynthesizer
from napari_miro.training import make_synthesizer


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
    recipe = replace(PRESETS["compact"], background="blinking", seed=0, copy_jitter=0.25)
    from_settings = make_synthesizer(data, recipe)
    assert from_settings.copy_molecules and from_settings.copy_size_ranges[0][1] == FieldSynthesizer.COPY_SIZE_MAX
    default_sizes = {**settings, "copy_size_min": COPY_SIZE_MIN}
    assert from_settings.jitter == FieldSynthesizer(data, **default_sizes).jitter  # copy_jitter 0.25, not the preset's
    first = from_settings.field(np.random.default_rng(0)).positions
    assert np.array_equal(first, FieldSynthesizer(data, **default_sizes).field(np.random.default_rng(0)).positions)
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
