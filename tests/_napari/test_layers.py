"""Localization tables as Points layers: cluster colours."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_touching_clusters_never_share_a_colour():
    from scipy.spatial import Delaunay

    from napari_miro._napari.layers import label_colours

    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 5000, (60, 2))
    labels = np.repeat(np.arange(1, 61), 20)
    yx = centres[labels - 1] + rng.normal(0, 30, (len(labels), 2))
    labels[::7] = 0
    colours = label_colours(labels, yx)
    assert np.allclose(colours[labels == 0, :3], 0.43)
    per_cluster = {k: tuple(colours[labels == k][0]) for k in range(1, 61)}
    assert all(len({tuple(c) for c in colours[labels == k]}) == 1 for k in range(1, 61))
    touching = {(min(a, b) + 1, max(a, b) + 1) for s in Delaunay(centres).simplices for a in s for b in s if a != b}
    assert all(per_cluster[a] != per_cluster[b] for a, b in touching)


def test_a_reopened_clustered_table_is_coloured_by_its_clusters(tmp_path):
    from napari_miro._napari.layers import LOCALIZATION_COLOR, points_layer_data

    df = pd.DataFrame({"x": [0.0, 10.0, 500.0, 510.0], "y": [0.0, 5.0, 0.0, 5.0], "cluster": [1, 1, 2, 0]})
    _, kwargs, _ = points_layer_data(df, "clustered")
    colours = np.asarray(kwargs["face_color"])
    assert colours.shape == (4, 4) and not np.allclose(colours[0], colours[2]) and np.allclose(colours[0], colours[1])
    _, plain, _ = points_layer_data(df.drop(columns="cluster"), "plain")
    assert plain["face_color"] == LOCALIZATION_COLOR
