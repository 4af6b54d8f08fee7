import numpy as np
from scipy.spatial import Delaunay

from napari_miro.colours import label_colours


def test_touching_clusters_never_share_a_colour():
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
