"""Inference on data of any size: MIRO's displacements, then DBSCAN on the collapsed points.

:func:`collapse` cuts the field into square tiles (the size of the fields the model was trained on) with
overlapping margins, builds each tile's graph, runs the model on batches of tiles, and keeps for each point
the prediction of the tile whose core contains it, i.e. where it is most central (at least a margin away from
that tile's edge). The Laplacian encodings are computed once per point on a fixed grid
(:func:`napari_miro.graph.field_encodings`), so they do not change with the inference tiles either.
:func:`cluster_points` runs DBSCAN (eps in nm) on the collapsed positions, gives each cluster the mode of its
points' class predictions, and nests fine-scale clusters inside coarse ones.

Pure core (numpy, torch, scikit-learn, pandas): imports neither Qt nor napari; of napari_miro only devices,
geometry, graph, model, model_file and stats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import DBSCAN, HDBSCAN

from napari_miro.devices import OUT_OF_MEMORY_ERRORS, DeviceOutOfMemory, resolve_device
from napari_miro.geometry import median_spacing
from napari_miro.graph import build_graph, field_encodings
from napari_miro.model import batch_graphs
from napari_miro.model_file import TrainedMIRO
from napari_miro.stats import cluster_statistics

__all__ = [
    "CLUSTERING_METHODS",
    "ClusterResult",
    "Collapsed",
    "alone_labels",
    "bounded_note",
    "cluster_points",
    "cluster_table",
    "collapse",
    "dbscan_labels",
    "frames_of",
    "hdbscan_labels",
    "hdbscan_size",
    "scale_mismatch",
]

#: what clusters the collapsed points (and the original ones, for the baseline beside MIRO)
CLUSTERING_METHODS = ("dbscan", "hdbscan")

#: no localization moves further than this many graph thresholds (delta): a cluster's points move at most its size,
#: so only a broken input could ask for more, and the collapsed layer stays finite and near the field
MAX_DISPLACEMENT_DELTAS = 5.0

#: a field whose localizations lie this many times closer than the model's delta is at another scale (e.g. um read
#: as nm): its whole field would become one graph component
SPACING_TOO_FINE = 500.0


@dataclass
class Collapsed:
    """The model's output for every point: collapsed positions (nm) and, when present, classes."""

    positions: np.ndarray  #: (N, 2) collapsed positions, nm (last step)
    displacement: np.ndarray  #: (N, 2) x - collapsed, nm
    class_id: np.ndarray | None = None  #: (N,) argmax of the class logits (0 = background)
    fine_positions: np.ndarray | None = None  #: multiscale: collapsed toward the fine-scale centres
    #: (N,) True where the predicted displacement was not finite or longer than the bound (then bounded)
    bounded: np.ndarray | None = None

    @property
    def n_bounded(self) -> int:
        return 0 if self.bounded is None else int(np.count_nonzero(self.bounded))


def _bounded(displacement: np.ndarray, limit_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Displacements no longer than ``limit_nm`` (longer ones shortened, non-finite ones zero), and where they
    were changed."""
    finite = np.isfinite(displacement).all(axis=1)
    displacement = np.where(finite[:, None], displacement, 0.0)
    length = np.hypot(displacement[:, 0], displacement[:, 1])
    too_long = length > limit_nm
    displacement[too_long] *= (limit_nm / length[too_long])[:, None]
    return displacement, ~finite | too_long


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

        def pass_progress(index: int):  # one bar over every pass: pass k's tiles come after pass k-1's
            if progress is None:
                return None
            return lambda done, total: progress(index * total + done, passes * total)

        result = collapse(trained, positions, progress=pass_progress(0), passes=1, **options)
        for index in range(1, passes):
            again = collapse(trained, result.positions, progress=pass_progress(index), passes=1, **options)
            result = Collapsed(again.positions, np.asarray(positions) - again.positions, result.class_id,
                               result.fine_positions, result.bounded | again.bounded)  # fmt: skip
        return result
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    given = positions
    distinct, inverse = np.unique(positions, axis=0, return_inverse=True)
    copies = inverse.ravel() if len(distinct) < len(positions) else None
    if copies is not None:  # duplicates: the network sees each position once, its copies follow it
        positions = distinct
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
        return Collapsed(positions.copy(), displacement, class_id, fine_displacement, np.zeros(0, bool))
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
        batch = batch_graphs(graphs, device)
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
            raise InterruptedError("Clustering was stopped: nothing was added, the localizations are unchanged.")
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
    limit = MAX_DISPLACEMENT_DELTAS * settings.delta_nm
    displacement, bounded = _bounded(displacement, limit)
    if fine_displacement is not None:
        fine_displacement, fine_bounded = _bounded(fine_displacement, limit)
        bounded = bounded | fine_bounded
    if copies is not None:
        displacement, bounded = displacement[copies], bounded[copies]
        class_id = None if class_id is None else class_id[copies]
        fine_displacement = None if fine_displacement is None else fine_displacement[copies]
    fine_positions = None if fine_displacement is None else given - fine_displacement
    return Collapsed(given - displacement, displacement, class_id, fine_positions, bounded)


def bounded_note(collapsed: Collapsed, trained: TrainedMIRO) -> str | None:
    """A sentence for people when some predicted displacements had to be bounded (see :data:`MAX_DISPLACEMENT_DELTAS`),
    else None."""
    if not collapsed.n_bounded:
        return None
    limit = MAX_DISPLACEMENT_DELTAS * trained.settings.delta_nm
    return (
        f"{collapsed.n_bounded:,} localizations were predicted to move further than {limit:g} nm (or by a non-finite "
        "amount) and were held at that bound: the model does not fit this data well; check its scale and units."
    )


def scale_mismatch(trained: TrainedMIRO, positions: np.ndarray) -> str | None:
    """A sentence for people when the localizations are at another scale than the model was trained for, else
    None: much sparser than its graph threshold delta (it would see almost no edges), or far denser (other units)."""
    spacing = median_spacing(positions)
    delta = trained.settings.delta_nm
    if not np.isfinite(spacing):
        return None
    if spacing > delta:
        return (
            f"The model was trained with delta {delta:g} nm, but these localizations are {spacing:.3g} nm apart on "
            "median: it would see almost no edges. Train a model on this data (or load one trained at this scale)."
        )
    if spacing * SPACING_TOO_FINE < delta:
        return (
            f"These localizations are {spacing:.3g} nm apart on median, {delta / max(spacing, 1e-12):.0f}x closer than "
            f"the model's delta ({delta:g} nm): are the coordinates in nm? (um read as nm look like this.)"
        )
    return None


def dbscan_labels(positions: np.ndarray, eps_nm: float, min_samples: int) -> np.ndarray:
    """sklearn DBSCAN with labels shifted so that 0 = not clustered and clusters are 1..K."""
    if not eps_nm > 0:
        raise ValueError(f"eps must be a positive distance in nm, not {eps_nm}")
    if int(min_samples) < 1:
        raise ValueError(f"min_samples must be at least 1, not {min_samples}")
    if len(positions) == 0:
        return np.zeros(0, np.int64)
    return DBSCAN(eps=float(eps_nm), min_samples=int(min_samples)).fit_predict(positions).astype(np.int64) + 1


def hdbscan_labels(positions: np.ndarray, min_cluster_size: int, min_samples: int | None = None) -> np.ndarray:
    """sklearn HDBSCAN, labels shifted as :func:`dbscan_labels` (0 = not clustered, clusters 1..K).

    ``min_samples`` (the neighbours that make a point core) defaults to ``min_cluster_size``, as in sklearn.
    """
    if int(min_cluster_size) < 2:
        raise ValueError(f"min_cluster_size must be at least 2, not {min_cluster_size}")
    if min_samples is not None and int(min_samples) < 1:
        raise ValueError(f"min_samples must be at least 1, not {min_samples}")
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < max(2, int(min_cluster_size)):
        return np.zeros(len(positions), np.int64)
    model = HDBSCAN(
        min_cluster_size=int(min_cluster_size),
        min_samples=None if min_samples is None else int(min_samples),
        copy=True,
    )
    return model.fit_predict(positions).astype(np.int64) + 1


def hdbscan_size(trained: TrainedMIRO, min_cluster_size: int | None, alone: bool) -> int:
    """HDBSCAN's min_cluster_size: the given one, else the model's tuned one, else DBSCAN's min_samples (models
    tuned before HDBSCAN was offered)."""
    settings = trained.settings
    if min_cluster_size is not None:
        return int(min_cluster_size)
    tuned = settings.hdbscan_alone_min_cluster_size if alone else settings.hdbscan_min_cluster_size
    fallback = (settings.dbscan_min_samples or settings.min_samples) if alone else settings.min_samples
    return int(tuned or max(2, fallback))


def alone_labels(trained: TrainedMIRO, positions: np.ndarray, method: str = "dbscan") -> np.ndarray:
    """The clustering method on the ORIGINAL positions, without MIRO, with the parameters tuned for that on the
    same synthetic fields (the fair baseline beside MIRO + the method)."""
    _check_method(method)
    settings = trained.settings
    if method == "hdbscan":
        return hdbscan_labels(positions, hdbscan_size(trained, None, alone=True))
    eps = settings.dbscan_eps_nm or settings.eps_nm
    return dbscan_labels(positions, eps, settings.dbscan_min_samples or settings.min_samples)


def _check_method(method: str) -> None:
    if method not in CLUSTERING_METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose from {', '.join(CLUSTERING_METHODS)}")


@dataclass
class ClusterResult:
    """Cluster labels for every point, plus classes and nested fine-scale labels when the model has them."""

    labels: np.ndarray  #: (N,) 0 = not clustered
    collapsed: Collapsed
    cluster_class: dict[int, int] = field(default_factory=dict)  #: cluster label -> class id
    point_class: np.ndarray | None = None  #: (N,) class id of each point's cluster (0 outside clusters)
    fine_labels: np.ndarray | None = None  #: (N,) fine clusters nested in coarse ones (0 = none)
    eps_nm: float = 0.0  #: DBSCAN's (0 with HDBSCAN)
    min_samples: int | None = 0  #: DBSCAN's; HDBSCAN's when given (None: its min_cluster_size)
    method: str = "dbscan"  #: one of CLUSTERING_METHODS
    min_cluster_size: int | None = None  #: HDBSCAN's


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
    method: str = "dbscan",
    min_cluster_size: int | None = None,
    **collapse_options,
) -> ClusterResult:
    """MIRO + DBSCAN (or HDBSCAN): collapse, then cluster the collapsed positions (defaults: the parameters tuned
    on the synthetic fields). The fine scale of a two-scale model is always clustered with DBSCAN."""
    _check_method(method)
    settings = trained.settings
    eps = settings.eps_nm if eps_nm is None else eps_nm
    samples = settings.min_samples if min_samples is None else min_samples
    if collapsed is None:
        collapsed = collapse(trained, positions, device=device, **collapse_options)
    if method == "hdbscan":
        size = hdbscan_size(trained, min_cluster_size, alone=False)
        labels = hdbscan_labels(collapsed.positions, size, min_samples)
        result = ClusterResult(labels, collapsed, min_samples=min_samples, method=method, min_cluster_size=size)
    else:
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


def frames_of(df: pd.DataFrame) -> np.ndarray | None:
    """The table's frame numbers when it has a numeric ``frame`` column (statistics per frame need them)."""
    if "frame" in df and pd.api.types.is_numeric_dtype(df["frame"]):
        return df["frame"].to_numpy()
    return None


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
    should_stop: Callable[[], bool] | None = None,
    method: str = "dbscan",
    min_cluster_size: int | None = None,
):
    """MIRO + DBSCAN (or HDBSCAN) on a localization table: (output table, statistics table, ClusterResult).
    ``should_stop`` is polled between tiles (InterruptedError when it returns True)."""

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
        should_stop=should_stop,
        method=method,
        min_cluster_size=min_cluster_size,
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
        positions,
        result.labels,
        result.cluster_class if result.point_class is not None else None,
        names or None,
        frames=frames_of(df),
    )
    return out, statistics, result
