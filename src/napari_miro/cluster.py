"""Inference on data of any size and clustering: MIRO displacements, then DBSCAN on the collapsed points.

Pure core (numpy, scipy, torch, scikit-learn): imports neither Qt nor napari.

:func:`collapse` cuts the field into square tiles (the size of the fields the model was trained on) with
overlapping margins, builds each tile's graph, runs the model on batches of tiles, and keeps for each point
the prediction of the tile whose core contains it, i.e. where it is most central (at least a margin away from
that tile's edge). The Laplacian encodings are computed once per point on a fixed grid
(:func:`napari_miro.graph.field_encodings`), so they do not change with the inference tiles either.
:func:`cluster_points` runs DBSCAN (eps in nm) on the collapsed positions, gives each cluster the mode of its
points' class predictions, and nests fine-scale clusters inside coarse ones.
:func:`suggest_parameters` tunes eps and min_samples on the synthetic training fields (with their known
ground truth), the equivalent of the paper's tuning on training data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from sklearn.cluster import DBSCAN

from napari_miro import metrics
from napari_miro.devices import OUT_OF_MEMORY_ERRORS, DeviceOutOfMemory, resolve_device
from napari_miro.graph import build_graph, field_encodings
from napari_miro.model import MIRO, GraphBatch, MIROConfig

__all__ = [
    "FORMAT_NAME",
    "ClusterResult",
    "Collapsed",
    "MIROSettings",
    "ModelFileError",
    "TrainedMIRO",
    "cluster_points",
    "cluster_table",
    "collapse",
    "dbscan_label_grid",
    "dbscan_labels",
    "suggest_parameters",
]

FORMAT_NAME = "napari-miro-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that cannot be loaded (missing, corrupt, foreign, or from an unknown version)."""


@dataclass
class MIROSettings:
    """How a trained model reads data and how its output is clustered (saved with the weights)."""

    delta_nm: float
    displacement_unit_nm: float | None = None  #: the model predicts displacements in this unit (None = delta)
    scale_encodings: bool = True
    edge_scale_nm: float | None = 50.0
    field_size_nm: float = 2000.0  #: size of the synthetic training fields = inference tile size
    class_names: list[str] = field(default_factory=list)  #: index -> name, 0 = background; empty = none
    eps_nm: float = 20.0  #: suggested DBSCAN eps on the collapsed points
    min_samples: int = 5
    fine_eps_nm: float | None = None  #: multiscale: DBSCAN on the fine-scale step's output
    fine_min_samples: int | None = None
    dbscan_eps_nm: float | None = None  #: DBSCAN alone on the original points, tuned the same way
    dbscan_min_samples: int | None = None
    preset: str = "compact"
    training: dict = field(default_factory=dict)  #: summary of the training run
    #: times the network is applied: each pass rebuilds the graph on the previous pass's collapsed positions
    passes: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MIROSettings:
        return cls(**{name: values[name] for name in cls.__dataclass_fields__ if name in values})

    @property
    def margin_nm(self) -> float:
        """Context kept around each tile's core: a quarter of the field, at least two deltas."""
        return max(0.25 * self.field_size_nm, 2 * self.delta_nm)

    @property
    def unit_nm(self) -> float:
        return self.displacement_unit_nm or self.delta_nm


@dataclass
class TrainedMIRO:
    """A trained network with the settings needed to apply it; saved and loaded as one safe file."""

    model: MIRO
    settings: MIROSettings

    @property
    def has_classes(self) -> bool:
        return self.model.config.n_classes > 0

    @property
    def is_multiscale(self) -> bool:
        return self.model.config.fine_step is not None

    def save(self, path: str | Path) -> Path:
        """Write safetensors weights with the whole configuration as JSON metadata (no pickle)."""
        from safetensors.torch import save_file

        path = Path(path)
        metadata = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "network": json.dumps(self.model.config.to_dict()),
            "settings": json.dumps(self.settings.to_dict()),
        }
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.model.state_dict().items()}
        save_file(tensors, str(path), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> TrainedMIRO:
        """Load a model file. Loading never runs code from the file: safetensors holds only tensors and text."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file.")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise ModelFileError(
                f"{path.name} is not a napari-miro model file (it could not be read as safetensors: {error})."
            ) from None
        if metadata.get("format") != FORMAT_NAME:
            raise ModelFileError(f"{path.name} holds tensors, but not a napari-miro model (no '{FORMAT_NAME}' tag).")
        if int(metadata.get("format_version", "0")) > FORMAT_VERSION:
            raise ModelFileError(f"{path.name} was written by a newer napari-miro; update napari-miro to open it.")
        try:
            config = MIROConfig.from_dict(json.loads(metadata["network"]))
            settings = MIROSettings.from_dict(json.loads(metadata["settings"]))
            model = MIRO(config)
            model.load_state_dict(tensors, strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError, json.JSONDecodeError) as error:
            raise ModelFileError(f"{path.name}: the model description is damaged ({error}).") from None
        model.to(device).eval()
        return cls(model, settings)


@dataclass
class Collapsed:
    """The model's output for every point: collapsed positions (nm) and, when present, classes."""

    positions: np.ndarray  #: (N, 2) collapsed positions, nm (last step)
    displacement: np.ndarray  #: (N, 2) x - collapsed, nm
    class_id: np.ndarray | None = None  #: (N,) argmax of the class logits (0 = background)
    fine_positions: np.ndarray | None = None  #: multiscale: collapsed toward the fine-scale centres


def _tiles(positions: np.ndarray, core_nm: float, margin_nm: float, origin: np.ndarray | None = None):
    """Yield (members, core_mask) for square tiles of side core_nm with margins, covering all points."""
    low = positions.min(axis=0) if origin is None else origin
    cell = np.floor((positions - low) / core_nm).astype(np.int64)
    n_cells = cell.max(axis=0) + 1
    keys = cell[:, 0] * n_cells[1] + cell[:, 1]
    for key in np.unique(keys):
        ix, iy = divmod(int(key), int(n_cells[1]))
        lower = low + np.array([ix, iy]) * core_nm - margin_nm
        upper = lower + core_nm + 2 * margin_nm
        members = np.flatnonzero(((positions >= lower) & (positions < upper)).all(axis=1))
        core = keys[members] == key
        yield members, core


def collapse(
    trained: TrainedMIRO,
    positions: np.ndarray,
    device: str | torch.device = "cpu",
    tile_nm: float | None = None,
    margin_nm: float | None = None,
    tile_origin: np.ndarray | None = None,
    max_nodes_per_batch: int = 60000,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int = 0,
    passes: int | None = None,
) -> Collapsed:
    """Collapsed positions for a point cloud of any size (see the module docstring).

    ``tile_nm`` is the side of a tile's core (default: twice the training field size, so that the margins add
    ~56% of redundant work); ``tile_origin`` shifts the tile grid (used to test that results do not depend on
    where tiles fall). With ``passes`` (default: ``settings.passes``, the number DBSCAN was tuned for) > 1 the
    network is applied again to the collapsed positions (classes and the fine scale come from the first pass);
    each pass costs one more application of the network.
    """
    passes = max(1, int(trained.settings.passes if passes is None else passes))
    if passes > 1:
        options = {"device": device, "tile_nm": tile_nm, "margin_nm": margin_nm, "tile_origin": tile_origin,
                   "max_nodes_per_batch": max_nodes_per_batch, "should_stop": should_stop, "seed": seed}  # fmt: skip
        result = collapse(trained, positions, progress=progress, passes=1, **options)
        for _ in range(passes - 1):
            again = collapse(trained, result.positions, passes=1, **options)
            result = Collapsed(again.positions, np.asarray(positions) - again.positions, result.class_id,
                               result.fine_positions)  # fmt: skip
        return result
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    settings = trained.settings
    device = resolve_device(device) if isinstance(device, str) else device
    model = trained.model.to(device).eval()
    margin = settings.margin_nm if margin_nm is None else margin_nm
    core = tile_nm or 2 * settings.field_size_nm
    n = len(positions)
    displacement = np.zeros((n, 2))
    fine_displacement = np.zeros((n, 2)) if trained.is_multiscale else None
    class_id = np.zeros(n, np.int64) if trained.has_classes else None
    if n == 0:
        return Collapsed(positions.copy(), displacement, class_id, fine_displacement)
    encodings = field_encodings(
        positions, settings.delta_nm, settings.field_size_nm, settings.scale_encodings, seed=seed
    )
    tiles = list(_tiles(positions, core, margin, tile_origin))
    pending: list[tuple[np.ndarray, np.ndarray, object]] = []
    done = 0

    def run_pending() -> None:
        nonlocal done
        if not pending:
            return
        graphs = [graph for _, _, graph in pending]
        offsets = np.cumsum([0] + [g.n_nodes for g in graphs])
        batch = GraphBatch(
            torch.as_tensor(np.concatenate([g.node_features for g in graphs]), device=device),
            torch.as_tensor(np.concatenate([g.edge_features for g in graphs]), device=device),
            torch.as_tensor(
                np.concatenate([g.edge_index + o for g, o in zip(graphs, offsets, strict=False)], 1),
                dtype=torch.long,
                device=device,
            ),
            int(offsets[-1]),
        )
        try:
            with torch.no_grad():
                outputs = model(batch)
        except OUT_OF_MEMORY_ERRORS:
            raise DeviceOutOfMemory(device, "computing displacements") from None
        last = outputs[-1].float().cpu().numpy()
        fine = outputs[trained.model.config.fine_step].float().cpu().numpy() if trained.is_multiscale else None
        for (members, core_mask, _), start in zip(pending, offsets[:-1], strict=False):
            rows = slice(start, start + len(members))
            keep = members[core_mask]
            displacement[keep] = last[rows][core_mask, :2] * settings.unit_nm
            if fine_displacement is not None and fine is not None:
                fine_displacement[keep] = fine[rows][core_mask, :2] * settings.unit_nm
            if class_id is not None:
                class_id[keep] = last[rows][core_mask, 2:].argmax(axis=1)
        done += len(pending)
        pending.clear()
        if progress is not None:
            progress(done, len(tiles))

    nodes_in_batch = 0
    for members, core_mask in tiles:
        if should_stop is not None and should_stop():
            raise InterruptedError("clustering was stopped")
        graph = build_graph(
            positions[members],
            settings.delta_nm,
            settings.scale_encodings,
            settings.edge_scale_nm,
            seed=seed,
            node_features=encodings[members],
        )
        pending.append((members, core_mask, graph))
        nodes_in_batch += len(members)
        if nodes_in_batch >= max_nodes_per_batch:
            run_pending()
            nodes_in_batch = 0
    run_pending()
    fine_positions = positions - fine_displacement if fine_displacement is not None else None
    return Collapsed(positions - displacement, displacement, class_id, fine_positions)


def dbscan_labels(positions: np.ndarray, eps_nm: float, min_samples: int) -> np.ndarray:
    """sklearn DBSCAN with labels shifted so that 0 = not clustered and clusters are 1..K."""
    if not eps_nm > 0:
        raise ValueError(f"eps must be a positive distance in nm, not {eps_nm}")
    if int(min_samples) < 1:
        raise ValueError(f"min_samples must be at least 1, not {min_samples}")
    if len(positions) == 0:
        return np.zeros(0, np.int64)
    return DBSCAN(eps=float(eps_nm), min_samples=int(min_samples)).fit_predict(positions).astype(np.int64) + 1


@dataclass
class ClusterResult:
    """Cluster labels for every point, plus classes and nested fine-scale labels when the model has them."""

    labels: np.ndarray  #: (N,) 0 = not clustered
    collapsed: Collapsed
    cluster_class: dict[int, int] = field(default_factory=dict)  #: cluster label -> class id
    point_class: np.ndarray | None = None  #: (N,) class id of each point's cluster (0 outside clusters)
    fine_labels: np.ndarray | None = None  #: (N,) fine clusters nested in coarse ones (0 = none)
    eps_nm: float = 0.0
    min_samples: int = 0


def _mode_class(labels: np.ndarray, class_id: np.ndarray) -> dict[int, int]:
    """Class of each cluster = the most frequent non-background prediction of its points (background if
    all of its points are predicted background)."""
    result = {}
    clustered = labels > 0
    if not clustered.any():
        return result
    n_classes = int(class_id.max()) + 1
    counts = np.zeros((labels.max() + 1, max(n_classes, 2)), np.int64)
    np.add.at(counts, (labels[clustered], class_id[clustered]), 1)
    for label in np.unique(labels[clustered]):
        row = counts[label]
        result[int(label)] = int(np.argmax(row[1:]) + 1) if row[1:].sum() > 0 else 0
    return result


def _nest(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Keep fine clusters inside coarse ones: a fine cluster belongs to the coarse cluster holding most of its
    points; its points outside that coarse cluster become unclustered at the fine scale."""
    nested = np.zeros_like(fine)
    for label in np.unique(fine[fine > 0]):
        members = fine == label
        parents = coarse[members]
        parents = parents[parents > 0]
        if len(parents) == 0:
            continue
        parent = np.bincount(parents).argmax()
        nested[members & (coarse == parent)] = label
    kept = np.unique(nested[nested > 0])
    lookup = np.zeros(int(nested.max()) + 1, np.int64)
    lookup[kept] = np.arange(1, len(kept) + 1)
    return lookup[nested]  # consecutive 1..K


def cluster_points(
    trained: TrainedMIRO,
    positions: np.ndarray,
    eps_nm: float | None = None,
    min_samples: int | None = None,
    fine_eps_nm: float | None = None,
    fine_min_samples: int | None = None,
    device: str | torch.device = "cpu",
    collapsed: Collapsed | None = None,
    **collapse_options,
) -> ClusterResult:
    """MIRO + DBSCAN: collapse, then DBSCAN on the collapsed positions (defaults: the model's suggestion)."""
    settings = trained.settings
    eps = settings.eps_nm if eps_nm is None else eps_nm
    samples = settings.min_samples if min_samples is None else min_samples
    if collapsed is None:
        collapsed = collapse(trained, positions, device=device, **collapse_options)
    labels = dbscan_labels(collapsed.positions, eps, samples)
    result = ClusterResult(labels, collapsed, eps_nm=float(eps), min_samples=int(samples))
    if collapsed.class_id is not None:
        result.cluster_class = _mode_class(labels, collapsed.class_id)
        lookup = np.zeros(labels.max() + 1, np.int64)
        for label, class_id in result.cluster_class.items():
            lookup[label] = class_id
        result.point_class = lookup[labels]
    if collapsed.fine_positions is not None:
        fine = dbscan_labels(
            collapsed.fine_positions,
            fine_eps_nm or settings.fine_eps_nm or eps / 2,
            fine_min_samples or settings.fine_min_samples or max(2, samples // 2),
        )
        result.fine_labels = _nest(fine, labels)
    return result


#: What DBSCAN's parameters are tuned to maximise on the synthetic fields.
TUNING_OBJECTIVES = ("ari", "ari+ari_c", "ari+ari_c+ji_c")


def tuning_score(truth: np.ndarray, labels: np.ndarray, objective: str = "ari", xy: np.ndarray | None = None) -> float:
    """How well DBSCAN's labels match the truth of one field: the ARI ("ari"), the mean of the ARI and the ARI
    over truly clustered points ("ari+ari_c"), or the mean of those and the cluster Jaccard index JI_c
    ("ari+ari_c+ji_c"; it counts split, merged and missed clusters, which the ARI barely sees when they are small).
    ``xy``: the positions the JI_c's cluster matching measures centroids and extents on (needed for JI_c).
    ``labels``: integers from 0 (DBSCAN's, 0 = not clustered). Many labellings of one field: :class:`TuningScorer`."""
    return TuningScorer(truth, objective, xy)(np.asarray(labels))


class TuningScorer:
    """:func:`tuning_score` of one field for many labellings (DBSCAN's: integers from 0, 0 = not clustered):
    the truth's side (its indexing, cluster sizes, centroids and extents) is computed once, and each labelling's
    contingency table comes from counting instead of sorting (the same values as :mod:`napari_miro.metrics`'
    ari, ari_c and jaccard_clusters)."""

    def __init__(self, truth: np.ndarray, objective: str = "ari", xy: np.ndarray | None = None) -> None:
        if objective not in TUNING_OBJECTIVES:
            raise ValueError(f"unknown tuning objective {objective!r}; choose from {', '.join(TUNING_OBJECTIVES)}")
        truth = np.asarray(truth)
        self.parts = [(np.ones(len(truth), bool), *self._indexed(truth))]  # ARI over all points
        self.true_stats = None
        if objective != "ari" and (truth > 0).any():
            clustered = truth != 0
            self.parts.append((clustered, *self._indexed(truth[clustered])))  # ARI_c
            if objective == "ari+ari_c+ji_c":
                if xy is None:
                    raise ValueError("the JI_c tuning objective needs the positions the clusters are matched on")
                self.xy = np.asarray(xy, dtype=np.float64)
                self.true_stats = metrics.cluster_stats(self.xy, truth)

    @staticmethod
    def _indexed(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, index = np.unique(truth, return_inverse=True)
        return index.astype(np.int64), np.bincount(index)

    def __call__(self, labels: np.ndarray) -> float:
        terms = []
        for members, true_index, true_sizes in self.parts:
            predicted = labels[members]
            n_pred = int(predicted.max(initial=0)) + 1
            counts = np.bincount(true_index * n_pred + predicted, minlength=len(true_sizes) * n_pred)
            cells = np.flatnonzero(counts)
            pred_sizes = np.bincount(predicted, minlength=n_pred)
            terms.append(
                metrics.ari_from_cells(
                    len(predicted), counts[cells], true_sizes[cells // n_pred], pred_sizes[cells % n_pred]
                )
            )
        if self.true_stats is not None:
            matched = metrics.match_cluster_stats(self.true_stats, metrics.cluster_stats(self.xy, labels))
            terms.append(metrics.jaccard_from_match(matched))
        return float(np.mean(terms))


def dbscan_label_grid(
    positions: np.ndarray, eps_grid: np.ndarray, samples_grid: np.ndarray
) -> Iterator[tuple[float, int, np.ndarray]]:
    """DBSCAN's labels (0 = not clustered) for every (eps, min_samples) of a grid, from one neighbour search.

    The same core points, clusters and noise as :func:`dbscan_labels` (neighbours within eps, the point itself
    counted); a border point within reach of two clusters joins its nearest core point's cluster, where
    scikit-learn's DBSCAN gives it to the first cluster that reaches it.
    """
    points = np.asarray(positions, dtype=np.float64)
    n = len(points)
    pairs = cKDTree(points).query_pairs(float(np.max(eps_grid)), output_type="ndarray") if n else np.zeros((0, 2))
    first, second = pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32)
    distance = np.linalg.norm(points[first] - points[second], axis=1)
    rank = np.empty(len(distance), np.int64)  # the pairs' order by distance (ties: query order), for the borders
    rank[np.argsort(distance, kind="stable")] = np.arange(len(distance))
    order = np.lexsort((second, first))  # row by row, so that the graphs below are CSR without sorting
    first, second, distance, rank = first[order], second[order], distance[order], rank[order]
    ones = np.ones(len(first), np.int8)
    row_type = np.int32 if len(first) < np.iinfo(np.int32).max else np.int64
    for eps in eps_grid:
        within = distance <= eps
        a, b, pair_rank = first[within], second[within], rank[within]
        neighbours = np.bincount(a, minlength=n) + np.bincount(b, minlength=n) + 1
        neighbours_a, neighbours_b = neighbours[a], neighbours[b]
        for samples in samples_grid:
            core = neighbours >= samples
            labels = np.zeros(n, np.int64)
            if core.any():
                core_a, core_b = neighbours_a >= samples, neighbours_b >= samples
                joined = core_a & core_b
                rows = a[joined]
                row_starts = np.zeros(n + 1, row_type)
                np.cumsum(np.bincount(rows, minlength=n), out=row_starts[1:])
                graph = csr_matrix((ones[: len(rows)], b[joined], row_starts), shape=(n, n))
                _, component = connected_components(graph, directed=False)
                labels[core] = np.unique(component[core], return_inverse=True)[1] + 1
                reach = core_a != core_b  # a core point and a non-core one: the latter is a border point
                border = np.where(core_a[reach], b[reach], a[reach])
                anchor = np.where(core_a[reach], a[reach], b[reach])
                nearest_first = np.lexsort((pair_rank[reach], border))
                border, anchor = border[nearest_first], anchor[nearest_first]
                first_of_border = np.ones(len(border), bool)
                first_of_border[1:] = border[1:] != border[:-1]
                labels[border[first_of_border]] = labels[anchor[first_of_border]]
            yield float(eps), int(samples), labels


#: Scores of the DBSCAN tuning (ARI) this close to the best count as equal: the larger min_samples is kept.
TUNING_TOLERANCE = 0.01


def tuning_eps_grid(points_list: list[np.ndarray]) -> np.ndarray:
    """The eps values (nm) searched: from the median nearest-neighbour distance up to 8x its 90th percentile,
    geometrically spaced."""
    nn = np.concatenate([cKDTree(p).query(p, k=2)[0][:, 1] for p in points_list if len(p) > 1])
    low, high = max(float(np.quantile(nn, 0.5)), 0.1), max(8 * float(np.quantile(nn, 0.9)), 1.0)
    return np.unique(np.round(np.geomspace(low, max(high, 2 * low), 20), 2))


def tuning_samples_grid(min_cluster_size: int) -> np.ndarray:
    """The min_samples values searched: from 2 up to the smallest cluster size (at least 3), at most 8 values."""
    upper = max(3, min_cluster_size)
    return np.unique(np.linspace(2, upper, num=min(8, upper - 1)).round().astype(int))


def grid_search_dbscan(
    positions_list: list[np.ndarray],
    truth_list: list[np.ndarray],
    eps_grid: np.ndarray,
    samples_grid: np.ndarray,
    objective: str = "ari",
    tolerance: float = TUNING_TOLERANCE,
    matched_positions_list: list[np.ndarray] | None = None,
) -> tuple[float, int, float]:
    """The (eps, min_samples) that maximise the mean :func:`tuning_score` over the fields.

    Among scores within ``tolerance`` of the best, the largest min_samples wins (then its best eps): with
    little background in the tuning fields many min_samples score alike, and the smallest ones split real
    clusters that collapse less well than the synthetic ones and turn background pairs into clusters. With the
    "ari" objectives this tie-break dropped clusters smaller than the chosen min_samples, which the ARI barely
    sees (ground-truth S8's 5-localization clusters; docs/training.md, sessions 9 and 10): "ari+ari_c+ji_c" sees
    them. ``matched_positions_list``: where JI_c matches clusters (default: the clustered positions; pass the
    original positions when DBSCAN runs on collapsed ones)."""
    if objective not in TUNING_OBJECTIVES:
        raise ValueError(f"unknown tuning objective {objective!r}; choose from {', '.join(TUNING_OBJECTIVES)}")
    matched_list = positions_list if matched_positions_list is None else matched_positions_list
    scores = np.zeros((len(eps_grid), len(samples_grid)))
    for points, truth, matched in zip(positions_list, truth_list, matched_list, strict=True):
        score = TuningScorer(truth, objective, matched)
        values = [score(labels) for _, _, labels in dbscan_label_grid(points, eps_grid, samples_grid)]
        scores += np.reshape(values, scores.shape)
    scores /= max(len(positions_list), 1)
    near_best = scores >= scores.max() - tolerance
    j = int(np.flatnonzero(near_best.any(axis=0)).max())  # the largest min_samples near the best
    i = int(np.argmax(scores[:, j]))  # its best eps (the first, smallest, of equals)
    return float(eps_grid[i]), int(samples_grid[j]), float(scores[i, j])


def suggest_parameters(
    trained: TrainedMIRO,
    fields: list,
    device: str | torch.device = "cpu",
    min_cluster_size: int = 5,
    objective: str = "ari",
) -> dict:
    """Tune DBSCAN on synthetic fields with known truth (never on the data to be analysed).

    ``fields`` are :class:`napari_miro.train.SyntheticField` objects (positions, cluster). Returns
    ``eps_nm`` / ``min_samples`` for MIRO + DBSCAN (maximising ``objective`` on the collapsed fields), the same for
    the fine scale of a multiscale model, and ``dbscan_eps_nm`` / ``dbscan_min_samples`` for DBSCAN alone on
    the original positions (the fair baseline). eps is searched on a grid of quantiles of the nearest-
    neighbour distances, min_samples from 2 up to the smallest cluster size.
    """
    collapsed = [collapse(trained, f.positions, device=device) for f in fields]
    truths = [f.cluster for f in fields]
    samples_grid = tuning_samples_grid(min_cluster_size)
    collapsed_points = [c.positions for c in collapsed]
    original = [f.positions for f in fields]
    eps, samples, score = grid_search_dbscan(
        collapsed_points,
        truths,
        tuning_eps_grid(collapsed_points),
        samples_grid,
        objective,
        matched_positions_list=original,
    )
    result = {"eps_nm": eps, "min_samples": samples, "miro_ari": score}
    if trained.is_multiscale:
        fine_truth = [f.fine for f in fields]
        fine_points = [c.fine_positions for c in collapsed]
        fine_eps, fine_samples, fine_score = grid_search_dbscan(
            fine_points,
            fine_truth,
            tuning_eps_grid(fine_points),
            samples_grid,
            objective,
            matched_positions_list=original,
        )
        result.update(fine_eps_nm=fine_eps, fine_min_samples=fine_samples, fine_ari=fine_score)
    base_eps, base_samples, base_score = grid_search_dbscan(
        original, truths, tuning_eps_grid(original), samples_grid, objective
    )
    result.update(dbscan_eps_nm=base_eps, dbscan_min_samples=base_samples, dbscan_ari=base_score)
    return result


def cluster_table(
    df: pd.DataFrame,
    trained,
    eps: float | None = None,
    min_samples: int | None = None,
    fine_eps: float | None = None,
    fine_min_samples: int | None = None,
    device: str = "cpu",
    progress=None,
    passes: int | None = None,
):
    """MIRO + DBSCAN on a localization table: (output table, statistics table, ClusterResult)."""
    from napari_miro.stats import cluster_statistics

    positions = df[["x", "y"]].to_numpy()
    result = cluster_points(
        trained,
        positions,
        eps,
        min_samples,
        fine_eps,
        fine_min_samples,
        device=device,
        progress=progress,
        passes=passes,
    )
    out = df.copy()
    new_columns = {
        "cluster": result.labels,
        "x_collapsed": result.collapsed.positions[:, 0],
        "y_collapsed": result.collapsed.positions[:, 1],
    }
    names = trained.settings.class_names
    if result.point_class is not None:
        new_columns["class"] = np.asarray(names, dtype=object)[result.point_class] if names else result.point_class
    if result.fine_labels is not None:
        new_columns["fine_cluster"] = result.fine_labels
    for name in new_columns:  # never lose an input column: rename a clash
        if name in out:
            out = out.rename(columns={name: f"{name}_input"})
    for name, values in new_columns.items():
        out[name] = values
    out.attrs = df.attrs
    statistics = cluster_statistics(
        positions, result.labels, result.cluster_class if result.point_class is not None else None, names or None
    )
    return out, statistics, result
