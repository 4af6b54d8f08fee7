"""The MIRO input graph: Delaunay edges shorter than ``delta`` and Laplacian positional encodings.

Pure core (numpy, scipy): imports neither Qt nor napari, nor torch.

- Edges: the Delaunay triangulation of the 2D positions, edges strictly shorter than ``delta_nm``, both
  directions (``edge_index[0]`` = source, ``edge_index[1]`` = destination).
- Edge features: ``[dx, dy, d] / delta`` with ``(dx, dy) = pos[src] - pos[dst]``.
- Node features: the 5 smallest non-trivial eigenvectors of the symmetric normalised Laplacian
  ``I - D^-1/2 A D^-1/2``, absolute values. A delta-filtered graph falls apart into connected components
  whose indicator vectors all have eigenvalue 0; the encoding is therefore computed per connected component
  (the component's own smallest non-trivial eigenvectors), which is what "non-trivial" means for such a
  graph. Components larger than ``max_component_nodes`` are cut into spatial tiles, so no eigensolve ever
  runs over a whole large field. Optionally (``scale_encodings``) each component's eigenvectors are
  multiplied by sqrt(component size) so that their magnitude does not shrink with the graph's size.

Degenerate input is defined, never a crash: fewer than 3 points or collinear points give a graph whose
edges come from the sorted order along the line (collinear) or none (fewer than 2 points); duplicate points
are joined by zero-length edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh
from scipy.spatial import Delaunay, QhullError

__all__ = ["N_ENCODINGS", "Graph", "build_graph", "delaunay_edges", "field_encodings", "laplacian_encodings"]

N_ENCODINGS = 5
DENSE_EIGEN_LIMIT = 400  #: components up to this size use a dense eigensolver (faster than ARPACK there)
MAX_COMPONENT_NODES = 4000  #: larger components are cut into spatial tiles for the eigensolve


@dataclass
class Graph:
    """A localization graph: positions in nm, directed edges both ways, node and edge features."""

    positions: np.ndarray  #: (N, 2) float64, nm
    edge_index: np.ndarray  #: (2, E) int64, row 0 = source, row 1 = destination
    node_features: np.ndarray  #: (N, 5) float32
    edge_features: np.ndarray  #: (E, 3) float32, [dx, dy, d] / delta
    delta_nm: float

    @property
    def n_nodes(self) -> int:
        return len(self.positions)

    @property
    def n_edges(self) -> int:
        return self.edge_index.shape[1]


def _unique_undirected(i: np.ndarray, j: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.minimum(i, j), np.maximum(i, j)
    keys = np.unique(low.astype(np.int64) * n + high)  # one int64 key per undirected edge: fast de-duplication
    return keys // n, keys % n


def _collinear_edges(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours along the line for points that Qhull cannot triangulate (all on one line, or < 3)."""
    if len(positions) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    centred = positions - positions.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    order = np.argsort(centred @ direction, kind="stable")
    return order[:-1].astype(np.int64), order[1:].astype(np.int64)


def delaunay_edges(positions: np.ndarray, delta_nm: float) -> np.ndarray:
    """Directed edges (2, E) of the Delaunay triangulation shorter than ``delta_nm``, both directions, sorted by
    destination.

    Duplicate points (which Qhull merges) are joined to their twin by a zero-length edge.
    """
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    if n < 2:
        return np.empty((2, 0), np.int64)
    # Qhull merges duplicate points: triangulate the distinct points, then tie each duplicate to its twin
    unique_points, first_index, inverse = np.unique(positions, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    try:
        if len(unique_points) < 3:
            raise QhullError("fewer than 3 distinct points")
        simplices = Delaunay(unique_points).simplices
        i = np.concatenate([simplices[:, 0], simplices[:, 1], simplices[:, 2]])
        j = np.concatenate([simplices[:, 1], simplices[:, 2], simplices[:, 0]])
    except (QhullError, ValueError):
        i, j = _collinear_edges(unique_points)
    i, j = _unique_undirected(i.astype(np.int64), j.astype(np.int64), len(unique_points))
    keep = np.hypot(*(unique_points[i] - unique_points[j]).T) < delta_nm
    src, dst = first_index[i[keep]], first_index[j[keep]]
    twin = first_index[inverse]
    duplicates = np.flatnonzero(twin != np.arange(n))
    src = np.concatenate([src, duplicates])
    dst = np.concatenate([dst, twin[duplicates]])
    both_src, both_dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    order = np.lexsort((both_src, both_dst))  # sorted by destination: the per-node sums read memory in order
    return np.stack([both_src[order], both_dst[order]]).astype(np.int64)


def _normalised_adjacency(edge_index: np.ndarray, n: int) -> sp.csr_matrix:
    weights = np.ones(edge_index.shape[1])
    adjacency = sp.csr_matrix((weights, (edge_index[0], edge_index[1])), shape=(n, n))
    adjacency.data[:] = 1.0  # repeated edges count once
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0)
    return sp.diags(inv_sqrt) @ adjacency @ sp.diags(inv_sqrt)


def _component_eigenvectors(normalised_adjacency: sp.csr_matrix, k: int, seed: int) -> np.ndarray:
    """The k smallest non-trivial eigenvectors of I - A_norm of one connected component (zeros pad)."""
    m = normalised_adjacency.shape[0]
    out = np.zeros((m, k))
    if m < 2:
        return out
    available = min(k, m - 1)
    if m <= DENSE_EIGEN_LIMIT:
        laplacian = np.eye(m) - normalised_adjacency.toarray()
        _, vectors = np.linalg.eigh(laplacian)
        out[:, :available] = vectors[:, 1 : available + 1]
        return out
    laplacian = sp.identity(m, format="csc") - normalised_adjacency.tocsc()
    start = np.random.default_rng(seed).normal(size=m)
    try:
        # shift-invert just below 0: the smallest eigenvalues converge in a few iterations
        values, vectors = eigsh(laplacian, k=available + 1, sigma=-1e-3, which="LM", v0=start)
    except (ArpackError, ArpackNoConvergence, RuntimeError):
        dense = np.linalg.eigh(laplacian.toarray())
        values, vectors = dense[0][: available + 1], dense[1][:, : available + 1]
    order = np.argsort(values)
    out[:, :available] = vectors[:, order[1 : available + 1]]
    return out


def _tile_groups(positions: np.ndarray, max_nodes: int) -> list[np.ndarray]:
    """Split a large set of nodes into spatial tiles of at most ~max_nodes nodes (by recursive halving)."""
    groups = []
    stack = [np.arange(len(positions))]
    while stack:
        members = stack.pop()
        if len(members) <= max_nodes:
            groups.append(members)
            continue
        extent = np.ptp(positions[members], axis=0)
        axis = int(np.argmax(extent))
        order = members[np.argsort(positions[members, axis], kind="stable")]
        half = len(order) // 2
        stack.extend([order[:half], order[half:]])
    return groups


def _small_components_batched(
    edge_index: np.ndarray, component: np.ndarray, sizes: np.ndarray, size: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvectors of every component with exactly ``size`` nodes at once (batched dense eigh)."""
    nodes = np.flatnonzero(sizes[component] == size)
    nodes = nodes[np.argsort(component[nodes], kind="stable")]
    members = nodes.reshape(-1, size)  # one row per component
    rank = np.empty(component.max() + 1, np.int64)
    rank[component[members[:, 0]]] = np.arange(len(members))
    local = np.empty(len(component), np.int64)
    local[members.ravel()] = np.tile(np.arange(size), len(members))
    on = sizes[component[edge_index[0]]] == size
    src, dst = edge_index[0, on], edge_index[1, on]
    adjacency = np.zeros((len(members), size, size))
    adjacency[rank[component[src]], local[src], local[dst]] = 1.0
    degree = adjacency.sum(axis=2)
    inv_sqrt = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    laplacian = np.eye(size) - inv_sqrt[:, :, None] * adjacency * inv_sqrt[:, None, :]
    _, vectors = np.linalg.eigh(laplacian)
    out = np.zeros((len(members), size, k))
    available = min(k, size - 1)
    out[:, :, :available] = vectors[:, :, 1 : available + 1]
    return members.ravel(), out.reshape(-1, k)


SMALL_COMPONENT = 48  #: components up to this size are solved together, batched by size


def laplacian_encodings(
    edge_index: np.ndarray,
    positions: np.ndarray,
    k: int = N_ENCODINGS,
    scale_encodings: bool = False,
    max_component_nodes: int = MAX_COMPONENT_NODES,
    seed: int = 0,
) -> np.ndarray:
    """|eigenvectors| (N, k) of the symmetric normalised Laplacian, per connected component (see module doc)."""
    n = len(positions)
    encodings = np.zeros((n, k), dtype=np.float64)
    if n == 0 or edge_index.shape[1] == 0:
        return encodings.astype(np.float32)
    adjacency = sp.csr_matrix((np.ones(edge_index.shape[1]), (edge_index[0], edge_index[1])), shape=(n, n))
    _, component = connected_components(adjacency, directed=False)
    sizes = np.bincount(component)

    def store(nodes: np.ndarray, vectors: np.ndarray, size: int | np.ndarray) -> None:
        vectors = np.abs(vectors)
        if scale_encodings:
            vectors = vectors * np.sqrt(size)
        encodings[nodes] = vectors

    for size in np.unique(sizes[(sizes >= 2) & (sizes <= SMALL_COMPONENT)]):
        nodes, vectors = _small_components_batched(edge_index, component, sizes, int(size), k)
        store(nodes, vectors, int(size))

    for c in np.flatnonzero(sizes > SMALL_COMPONENT):
        members = np.flatnonzero(component == c)
        groups = [members]
        if len(members) > max_component_nodes:
            groups = [members[g] for g in _tile_groups(positions[members], max_component_nodes)]
        for group in groups:
            sub_n, sub_component = connected_components(adjacency[group][:, group], directed=False)
            for sub in range(sub_n):  # a tile of a large component may itself fall apart
                nodes = group[sub_component == sub]
                if len(nodes) < 2:
                    continue
                local = adjacency[nodes][:, nodes].tocoo()
                normalised = _normalised_adjacency(np.stack([local.row, local.col]), len(nodes))
                store(nodes, _component_eigenvectors(normalised, k, seed), len(nodes))
    return encodings.astype(np.float32)


def field_encodings(
    positions: np.ndarray,
    delta_nm: float,
    tile_nm: float,
    scale_encodings: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Laplacian encodings of a field of any size, computed per square of a fixed grid (side ``tile_nm``,
    anchored at 0 nm) on the graph of the points in that square. The grid does not move with the tiles that
    inference uses, so a point's encoding does not depend on where those tiles fall, and each square is the
    size of a training field, so encodings look like the ones the model was trained on."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    encodings = np.zeros((len(positions), N_ENCODINGS), np.float32)
    if len(positions) == 0:
        return encodings
    cell = np.floor(positions / tile_nm).astype(np.int64)
    keys = (cell[:, 0] - cell[:, 0].min()) * (cell[:, 1].max() - cell[:, 1].min() + 1) + cell[:, 1] - cell[:, 1].min()
    order = np.argsort(keys, kind="stable")
    for members in np.split(order, np.flatnonzero(np.diff(keys[order])) + 1):
        edges = delaunay_edges(positions[members], delta_nm)
        encodings[members] = laplacian_encodings(edges, positions[members], scale_encodings=scale_encodings, seed=seed)
    return encodings


def build_graph(
    positions: np.ndarray,
    delta_nm: float,
    scale_encodings: bool = False,
    edge_scale_nm: float | None = None,
    seed: int = 0,
    node_features: np.ndarray | None = None,
) -> Graph:
    """Build the MIRO input graph of a point cloud (nm).

    Args:
        positions: (N, 2) positions in nm.
        delta_nm: the edge length threshold; edges strictly shorter are kept.
        scale_encodings: multiply each component's eigenvectors by sqrt(its size) (see module doc).
        edge_scale_nm: divide edge features by this length instead of ``delta_nm`` (input scaling).
        seed: seeds the eigensolver's start vector (results are then deterministic).
        node_features: encodings computed beforehand (e.g. by :func:`field_encodings`); None = compute them
            on this graph.
    """
    if not delta_nm > 0:
        raise ValueError(f"delta must be a positive length in nm, not {delta_nm}")
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(positions).all():
        raise ValueError("positions contain NaN or infinite values; drop those rows first")
    edge_index = delaunay_edges(positions, delta_nm)
    difference = positions[edge_index[0]] - positions[edge_index[1]]
    length = np.hypot(difference[:, 0], difference[:, 1])
    scale = float(edge_scale_nm or delta_nm)
    edge_features = (np.column_stack([difference, length]) / scale).astype(np.float32)
    if node_features is None:
        node_features = laplacian_encodings(edge_index, positions, scale_encodings=scale_encodings, seed=seed)
    return Graph(positions, edge_index, node_features, edge_features, float(delta_nm))
