"""Colours for cluster labels that tell touching clusters apart, shared by the viewer's layers and the figures.

Pure core (numpy, scipy): imports neither Qt nor napari, nor matplotlib.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLUSTER_PALETTE", "NOT_CLUSTERED_RGBA", "label_colours"]

#: distinct colours for clusters (Okabe-Ito and Tableau hues, no grey: grey is "not clustered")
CLUSTER_PALETTE = np.array(
    [
        [0.90, 0.62, 0.00], [0.34, 0.71, 0.91], [0.00, 0.62, 0.45], [0.94, 0.89, 0.26], [0.00, 0.45, 0.70],
        [0.84, 0.37, 0.00], [0.80, 0.47, 0.65], [0.58, 0.40, 0.74], [0.55, 0.86, 0.35], [1.00, 0.50, 0.50],
    ]
)  # fmt: skip
NOT_CLUSTERED_RGBA = (0.43, 0.43, 0.43, 0.6)


def label_colours(labels: np.ndarray, yx: np.ndarray) -> np.ndarray:
    """An RGBA colour per point, so that touching clusters never share a colour: clusters are coloured greedily
    over the Delaunay graph of their centroids (each takes the palette colour least used among its neighbours);
    label 0 is grey."""
    from scipy.spatial import Delaunay, QhullError

    labels = np.asarray(labels, dtype=np.int64)
    colours = np.tile(np.array(NOT_CLUSTERED_RGBA), (len(labels), 1))
    present = np.unique(labels[labels > 0])
    if len(present) == 0:
        return colours
    index = np.searchsorted(present, labels)
    inside = labels > 0
    counts = np.bincount(index[inside], minlength=len(present))
    centroids = np.column_stack([np.bincount(index[inside], yx[inside, k], len(present)) for k in (0, 1)])
    centroids /= np.maximum(counts, 1)[:, None]
    neighbours: list[set[int]] = [set() for _ in present]
    try:
        for simplex in Delaunay(centroids).simplices:
            for a in simplex:
                neighbours[a].update(int(b) for b in simplex if b != a)
    except (QhullError, ValueError):  # fewer than 3 clusters, or all on a line: consecutive ones are neighbours
        for a in range(len(present) - 1):
            neighbours[a].add(a + 1)
            neighbours[a + 1].add(a)
    chosen = np.full(len(present), -1)
    for cluster in np.argsort(-np.array([len(n) for n in neighbours]), kind="stable"):  # most neighbours first
        used = np.bincount([chosen[n] for n in neighbours[cluster] if chosen[n] >= 0], minlength=len(CLUSTER_PALETTE))
        chosen[cluster] = int(np.argmin(used))
    colours[inside, :3] = CLUSTER_PALETTE[chosen[index[inside]]]
    colours[inside, 3] = 1.0
    return colours
