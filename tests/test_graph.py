"""The input graph: Delaunay edges under delta, features, per-component encodings, degenerate input."""

from __future__ import annotations

import numpy as np
import pytest

from napari_miro import simulate
from napari_miro.graph import build_graph, delaunay_edges, laplacian_encodings


def _edge_set(edge_index: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.T.tolist()))


def test_edges_are_delaunay_edges_strictly_shorter_than_delta_in_both_directions():
    rng = np.random.default_rng(0)
    positions = rng.uniform(0, 1000, (400, 2))
    graph = build_graph(positions, 60.0)
    edges = _edge_set(graph.edge_index)
    assert all((j, i) in edges for i, j in edges)
    length = np.hypot(*(positions[graph.edge_index[0]] - positions[graph.edge_index[1]]).T)
    assert (length < 60.0).all()
    from scipy.spatial import Delaunay

    simplices = Delaunay(positions).simplices
    delaunay = {
        tuple(sorted((int(a), int(b)))) for s in simplices for a, b in ((s[0], s[1]), (s[1], s[2]), (s[2], s[0]))
    }
    short = {e for e in delaunay if np.hypot(*(positions[e[0]] - positions[e[1]])) < 60.0}
    assert {tuple(sorted(e)) for e in edges} == short


def test_edge_features_are_dx_dy_d_over_delta():
    positions = np.array([[0.0, 0.0], [30.0, 40.0], [100.0, 0.0]])
    graph = build_graph(positions, 200.0)
    for (src, dst), feature in zip(graph.edge_index.T, graph.edge_features, strict=True):
        dx, dy = positions[src] - positions[dst]
        np.testing.assert_allclose(feature, np.array([dx, dy, np.hypot(dx, dy)]) / 200.0, rtol=1e-6)
    scaled = build_graph(positions, 200.0, edge_scale_nm=50.0)
    np.testing.assert_allclose(scaled.edge_features, graph.edge_features * 4, rtol=1e-6)


def test_encodings_are_absolute_laplacian_eigenvectors_of_each_component():
    # two separate triangles-and-more: each component's encoding is its own
    rng = np.random.default_rng(1)
    a = rng.normal(0, 10, (30, 2))
    b = rng.normal(0, 10, (60, 2)) + 5000
    graph_both = build_graph(np.concatenate([a, b]), 40.0)
    graph_a = build_graph(a, 40.0)
    np.testing.assert_allclose(graph_both.node_features[:30], graph_a.node_features, atol=1e-5)
    assert (graph_both.node_features >= 0).all()
    # against a direct eigendecomposition of component a
    n = len(a)
    adjacency = np.zeros((n, n))
    adjacency[graph_a.edge_index[0], graph_a.edge_index[1]] = 1
    degree = adjacency.sum(1)
    laplacian = np.eye(n) - adjacency / np.sqrt(degree[:, None] * degree[None, :])
    values, vectors = np.linalg.eigh(laplacian)
    assert values[0] == pytest.approx(0, abs=1e-9) and values[1] > 1e-9  # one component
    for column in range(5):
        expected = np.abs(vectors[:, column + 1])
        got = graph_a.node_features[:, column]
        if not np.isclose(values[column + 1], values[min(column + 2, n - 1)]):  # skip degenerate eigenvalues
            np.testing.assert_allclose(got, expected, atol=1e-4)


def test_large_components_use_the_sparse_solver_and_tiles():
    rng = np.random.default_rng(2)
    positions = rng.uniform(0, 3000, (3000, 2))
    edges = delaunay_edges(positions, 400.0)
    sparse = laplacian_encodings(edges, positions)
    tiled = laplacian_encodings(edges, positions, max_component_nodes=1000)
    assert sparse.shape == tiled.shape == (3000, 5)
    assert np.isfinite(sparse).all() and np.isfinite(tiled).all()
    assert sparse.std() > 0 and tiled.std() > 0
    np.testing.assert_allclose(np.linalg.norm(sparse, axis=0), 1.0, atol=1e-4)  # unit eigenvectors


def test_scaled_encodings_grow_with_component_size():
    df = simulate.gaussian_clusters(seed=3)
    positions = df[["x", "y"]].to_numpy()
    plain = build_graph(positions, 100.0)
    scaled = build_graph(positions, 100.0, scale_encodings=True)
    assert scaled.node_features.mean() > 3 * plain.node_features.mean()


def test_same_seed_same_graph():
    positions = simulate.elliptical_clusters(seed=4)[["x", "y"]].to_numpy()
    first, second = build_graph(positions, 200.0, seed=5), build_graph(positions, 200.0, seed=5)
    np.testing.assert_array_equal(first.node_features, second.node_features)
    np.testing.assert_array_equal(first.edge_index, second.edge_index)


@pytest.mark.parametrize(
    ("positions", "n_edges"),
    [
        (np.zeros((0, 2)), 0),
        (np.array([[1.0, 2.0]]), 0),
        (np.array([[0.0, 0.0], [3.0, 4.0]]), 2),
        (np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), 6),  # collinear: a chain
        (np.zeros((5, 2)), 8),  # all duplicates: tied to the first
    ],
)
def test_degenerate_inputs_give_defined_graphs(positions, n_edges):
    graph = build_graph(positions, 10.0)
    assert graph.edge_index.shape == (2, n_edges)
    assert graph.node_features.shape == (len(positions), 5)
    assert np.isfinite(graph.node_features).all() and np.isfinite(graph.edge_features).all()


def test_duplicate_points_are_joined_to_their_twin():
    positions = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    edges = _edge_set(build_graph(positions, 10.0).edge_index)
    assert (1, 0) in edges and (0, 1) in edges
    assert (0, 2) in edges and (0, 3) in edges


def test_bad_arguments_are_refused_with_a_message():
    with pytest.raises(ValueError, match="positive"):
        build_graph(np.zeros((3, 2)), 0.0)
    with pytest.raises(ValueError, match="NaN"):
        build_graph(np.array([[0.0, np.nan], [1.0, 1.0], [2.0, 0.0]]), 10.0)
