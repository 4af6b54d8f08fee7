"""Simulators: counts, radii, background fractions, ground truth and determinism by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_miro import simulate


def _radii(df: pd.DataFrame) -> pd.Series:
    clustered = df[df["cluster"] > 0]
    centres = clustered.groupby("cluster")[["x", "y"]].transform("mean")
    return np.hypot(clustered["x"] - centres["x"], clustered["y"] - centres["y"])


@pytest.mark.parametrize(
    "make",
    [
        simulate.gaussian_clusters,
        simulate.elliptical_clusters,
        simulate.c_shapes,
        simulate.rings,
        simulate.npc_like,
        simulate.shape_mixture,
        lambda seed: simulate.cluster_pair(2.0, seed=seed),
    ],
)
def test_same_seed_same_data_other_seed_other_data(make):
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a[["x", "y"]].equals(c[["x", "y"]])
    assert {"x", "y", "cluster", "class", "subcluster"} <= set(a.columns)
    assert (a.loc[a["cluster"] == 0, "class"] == "background").all()
    assert (a.loc[a["cluster"] > 0, "class"] != "background").all()


def test_gaussian_clusters_counts_sigma_and_background():
    df = simulate.gaussian_clusters(
        n_clusters=20, locs_per_cluster=15, sigma_nm=25, background_fraction=0.5, fov_nm=2000, seed=0
    )
    assert len(df) == 600
    assert df["cluster"].nunique() == 21
    assert (df["cluster"] == 0).mean() == pytest.approx(0.5)
    assert df.groupby("cluster").size().drop(0).eq(15).all()
    clustered = df[df["cluster"] > 0]
    spread = clustered.groupby("cluster")[["x", "y"]].std().to_numpy().mean()
    assert spread == pytest.approx(25, rel=0.15)
    assert df["x"].between(0, 2000).all() or (df["cluster"] > 0).any()


def test_geometric_counts_have_the_requested_mean():
    df = simulate.gaussian_clusters(
        n_clusters=400,
        locs_per_cluster=25,
        count_distribution="geometric",
        background_fraction=0.04,
        fov_nm=10000,
        seed=1,
    )
    assert df[df["cluster"] > 0].groupby("cluster").size().mean() == pytest.approx(25, rel=0.1)


def test_ellipses_have_aspect_ratio_three():
    df = simulate.elliptical_clusters(n_clusters=30, locs_per_cluster=400, seed=2)
    ratios = []
    for _, group in df[df["cluster"] > 0].groupby("cluster"):
        eigenvalues = np.linalg.eigvalsh(np.cov(group[["x", "y"]].to_numpy().T))
        ratios.append(np.sqrt(eigenvalues[1] / eigenvalues[0]))
    assert np.median(ratios) == pytest.approx(3.0, rel=0.15)


def test_rings_radius_and_paper_parameters():
    df = simulate.rings(seed=5)
    n_rings = df["cluster"].nunique() - 1
    assert 60 <= n_rings <= 70
    sizes = df[df["cluster"] > 0].groupby("cluster").size()
    assert sizes.between(60, 80).all()
    assert (df["cluster"] == 0).mean() == pytest.approx(0.07, abs=0.005)
    assert _radii(df).mean() == pytest.approx(250, rel=0.1)


def test_c_shapes_are_half_rings():
    df = simulate.c_shapes(seed=6)
    assert 30 <= df["cluster"].nunique() - 1 <= 60
    assert (df["cluster"] == 0).mean() == pytest.approx(0.06, abs=0.005)
    # the centroid of a semicircle of radius R lies 2R/pi from its centre: points are ~R from the arc centre,
    # so their mean distance to the cluster centroid is well below R but well above 0
    assert 120 < _radii(df).mean() < 250


def test_npc_two_scales():
    df = simulate.npc_like(n_structures=8, locs_per_corner=(10, 20), seed=7)
    pores = df[df["cluster"] > 0]
    assert pores["cluster"].nunique() == 8
    assert pores["subcluster"].nunique() == 64
    assert (df.loc[df["cluster"] == 0, "subcluster"] == 0).all()
    corners_per_pore = pores.groupby("cluster")["subcluster"].nunique()
    assert corners_per_pore.eq(8).all()
    assert 40 < _radii(df).mean() < 90  # corners sit around r = 50-80 nm from the pore centre


def test_mixture_labels_each_structure_with_its_shape():
    df = simulate.shape_mixture(("c-shape", "ring"), n_per_shape=15, seed=8)
    per_cluster = df[df["cluster"] > 0].groupby("cluster")["class"].agg(["nunique", "first"])
    assert per_cluster["nunique"].eq(1).all()
    assert per_cluster["first"].value_counts().to_dict() == {"c-shape": 15, "ring": 15}
    with pytest.raises(ValueError, match="unknown shape"):
        simulate.shape_mixture(("spot", "star"))


def test_cluster_pair_distance():
    df = simulate.cluster_pair(3.0, sigma_nm=25, mean_locs=2000, n_pairs=5, seed=9)
    centres = df[df["cluster"] > 0].groupby("cluster")[["x", "y"]].mean().to_numpy()
    distances = np.hypot(*(centres[:5] - centres[5:]).T)
    assert distances == pytest.approx(75, abs=5)


def test_blinking_matches_the_benchmark_model():
    molecules = simulate.gaussian_clusters(
        n_clusters=100, locs_per_cluster=20, background_fraction=0.5, fov_nm=10000, seed=10
    )
    locs = simulate.blink(molecules, seed=11)
    per_molecule = np.bincount(locs["molecule"], minlength=len(molecules))
    assert len(locs) / len(molecules) == pytest.approx(4.0, rel=0.05)
    # geometric from 0, as the benchmark's counts: a fifth of the molecules give none, a variance of 20
    assert (per_molecule == 0).mean() == pytest.approx(0.2, abs=0.03)
    assert per_molecule.var() == pytest.approx(20.0, rel=0.15)
    assert locs["uncertainty"].median() == pytest.approx(14.0, rel=0.1)
    source = molecules.iloc[locs["molecule"]].reset_index(drop=True)
    assert (source["cluster"].to_numpy() == locs["cluster"].to_numpy()).all()
    displacement = np.hypot(locs["x"] - source["x"], locs["y"] - source["y"]) / locs["uncertainty"]
    assert np.sqrt((displacement**2).mean() / 2) == pytest.approx(1.0, rel=0.05)


def test_background_fraction_and_gradient():
    base = simulate.gaussian_clusters(background_fraction=0.0, seed=12)
    assert (base["cluster"] == 0).sum() == 0
    df = simulate.add_background(base, 0.8, 2000, seed=13, gradient=True)
    background = df[df["cluster"] == 0]
    assert len(background) / len(df) == pytest.approx(0.8, abs=0.01)
    assert (background["x"] > 1000).mean() == pytest.approx(0.75, abs=0.05)  # density rising along x
    with pytest.raises(ValueError):
        simulate.add_background(base, 1.0, 2000, seed=1)


def test_thunderstorm_columns():
    df = simulate.add_thunderstorm_columns(simulate.blink(simulate.gaussian_clusters(seed=1), seed=2), seed=3)
    assert list(df.columns[:9]) == ["id", "frame", "x", "y", "sigma", "intensity", "offset", "bkgstd", "uncertainty"]
    assert df["frame"].min() >= 1 and (df["intensity"] > 0).all()
