"""Synthetic SMLM point clouds with ground truth, following the paper's Methods ("Simulated data").

Pure core (numpy, pandas): imports neither Qt nor napari. Every function takes a ``seed`` and returns a
DataFrame with ``x``, ``y`` in nm and the ground truth:

- ``cluster``: 0 = background (not clustered), k > 0 = structure k;
- ``class``: the shape of the structure (``"background"`` for background rows);
- ``subcluster``: a finer scale inside a structure (e.g. the corners of an NPC), 0 where there is none.

``blink`` turns molecules into localizations as in the Nieves et al. benchmark, and
``add_thunderstorm_columns`` gives a table the columns of a ThunderSTORM export (frame, intensity, ...).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = [
    "SHAPES",
    "add_background",
    "add_thunderstorm_columns",
    "blink",
    "blink_positions",
    "c_shapes",
    "cluster_pair",
    "elliptical_clusters",
    "gaussian_clusters",
    "npc_like",
    "rings",
    "shape_mixture",
]

Rng = np.random.Generator


def _frame(
    x: np.ndarray, y: np.ndarray, cluster: np.ndarray, shape: np.ndarray | str, subcluster: np.ndarray | None = None
) -> pd.DataFrame:
    n = len(x)
    classes = np.full(n, shape, dtype=object) if isinstance(shape, str) else np.asarray(shape, dtype=object)
    return pd.DataFrame(
        {
            "x": np.asarray(x, dtype=np.float64),
            "y": np.asarray(y, dtype=np.float64),
            "cluster": np.asarray(cluster, dtype=np.int64),
            "class": classes.astype(str),
            "subcluster": np.zeros(n, np.int64) if subcluster is None else np.asarray(subcluster, np.int64),
        }
    )


def _centres(rng: Rng, n: int, fov_nm: float, margin_nm: float) -> np.ndarray:
    """Uniform centres kept ``margin_nm`` inside the field of view (overlaps allowed, as in the paper)."""
    margin = min(margin_nm, fov_nm / 4)
    return rng.uniform(margin, fov_nm - margin, size=(n, 2))


def _counts(rng: Rng, n: int, count: int | tuple[int, int], distribution: str = "fixed") -> np.ndarray:
    """Localizations per structure: a fixed number, uniform in [lo, hi], or geometric with that mean."""
    if distribution == "geometric":
        return rng.geometric(1.0 / float(count), size=n)  # type: ignore[arg-type]
    if isinstance(count, tuple):
        return rng.integers(count[0], count[1] + 1, size=n)
    return np.full(n, int(count))


def _rotate(points: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([cos * points[..., 0] - sin * points[..., 1], sin * points[..., 0] + cos * points[..., 1]], -1)


def add_background(
    df: pd.DataFrame, fraction: float, fov_nm: float | tuple[float, float], seed: int, gradient: bool = False
) -> pd.DataFrame:
    """Add uniform background so that it is ``fraction`` of all rows (0 <= fraction < 1).

    With ``gradient=True`` the background density rises linearly along x (benchmark scenario 10).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"background fraction must be in [0, 1), not {fraction}")
    rng = np.random.default_rng(seed)
    width, height = (fov_nm, fov_nm) if np.isscalar(fov_nm) else fov_nm  # type: ignore[misc]
    n_background = round(len(df) * fraction / (1 - fraction))
    x = np.sqrt(rng.uniform(0, 1, n_background)) * width if gradient else rng.uniform(0, width, n_background)
    background = _frame(x, rng.uniform(0, height, n_background), np.zeros(n_background, np.int64), "background")
    return pd.concat([df, background], ignore_index=True)


def _finish(structures: pd.DataFrame, background_fraction: float, fov_nm: float, seed: int) -> pd.DataFrame:
    df = add_background(structures, background_fraction, fov_nm, seed + 7919)
    df = df.sample(frac=1.0, random_state=seed % (2**32)).reset_index(drop=True)  # no order leaks the truth
    df.attrs["fov_nm"] = float(fov_nm)
    return df


def gaussian_clusters(
    n_clusters: int = 20,
    locs_per_cluster: int | tuple[int, int] = 15,
    sigma_nm: float | tuple[float, float] = 25.0,
    background_fraction: float = 0.5,
    fov_nm: float = 2000.0,
    count_distribution: str = "fixed",
    seed: int = 0,
) -> pd.DataFrame:
    """Isotropic Gaussian nanoclusters (benchmark scenarios 2-5, the integrin training model).

    ``sigma_nm`` may be a range (uniform per cluster); ``count_distribution="geometric"`` draws the
    number of localizations per cluster from a geometric law with mean ``locs_per_cluster``.
    """
    rng = np.random.default_rng(seed)
    centres = _centres(rng, n_clusters, fov_nm, 3 * float(np.max(sigma_nm)))
    counts = _counts(rng, n_clusters, locs_per_cluster, count_distribution)
    sigmas = rng.uniform(*sigma_nm, n_clusters) if isinstance(sigma_nm, tuple) else np.full(n_clusters, sigma_nm)
    labels = np.repeat(np.arange(1, n_clusters + 1), counts)
    points = centres[labels - 1] + rng.normal(size=(len(labels), 2)) * sigmas[labels - 1, None]
    return _finish(_frame(points[:, 0], points[:, 1], labels, "spot"), background_fraction, fov_nm, seed)


def elliptical_clusters(
    n_clusters: int = 20,
    locs_per_cluster: int | tuple[int, int] = 50,
    minor_sigma_nm: float = 15.0,
    aspect_ratio: float = 3.0,
    background_fraction: float = 0.5,
    fov_nm: float = 2000.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Elliptical Gaussian clusters in random orientations (benchmark scenario 6: 3:1, 50 molecules)."""
    rng = np.random.default_rng(seed)
    major = minor_sigma_nm * aspect_ratio
    centres = _centres(rng, n_clusters, fov_nm, 3 * major)
    counts = _counts(rng, n_clusters, locs_per_cluster)
    labels = np.repeat(np.arange(1, n_clusters + 1), counts)
    local = rng.normal(size=(len(labels), 2)) * np.array([major, minor_sigma_nm])
    angles = rng.uniform(0, np.pi, n_clusters)
    points = centres[labels - 1] + _rotate(local, angles[labels - 1])
    return _finish(_frame(points[:, 0], points[:, 1], labels, "ellipse"), background_fraction, fov_nm, seed)


def _arcs(rng: Rng, counts: np.ndarray, radius_nm: float, radial_sd_nm: float, arc: float) -> np.ndarray:
    """Points on arcs of angular length ``arc`` (2 pi = full circle) with a Gaussian radial spread."""
    n = int(counts.sum())
    theta = rng.uniform(0, arc, n)
    radius = radius_nm + rng.normal(0, radial_sd_nm, n)
    return np.stack([radius * np.cos(theta), radius * np.sin(theta)], -1)


def _arc_field(
    shape: str,
    arc: float,
    n_clusters: int | tuple[int, int],
    locs_per_cluster: int | tuple[int, int],
    radius_nm: float,
    radial_sd_nm: float,
    background_fraction: float,
    fov_nm: float,
    seed: int,
) -> pd.DataFrame:
    """Structures whose localizations lie on arcs of angular length ``arc`` (pi: C-shapes, 2 pi: rings)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(n_clusters[0], n_clusters[1] + 1)) if isinstance(n_clusters, tuple) else n_clusters
    counts = _counts(rng, n, locs_per_cluster)
    labels = np.repeat(np.arange(1, n + 1), counts)
    centres = _centres(rng, n, fov_nm, radius_nm + 2 * radial_sd_nm)
    angles = rng.uniform(0, 2 * np.pi, n)
    points = centres[labels - 1] + _rotate(_arcs(rng, counts, radius_nm, radial_sd_nm, arc), angles[labels - 1])
    return _finish(_frame(points[:, 0], points[:, 1], labels, shape), background_fraction, fov_nm, seed)


def c_shapes(
    n_clusters: int | tuple[int, int] = (30, 60),
    locs_per_cluster: int | tuple[int, int] = (30, 60),
    radius_nm: float = 250.0,
    radial_sd_nm: float = 50.0,
    background_fraction: float = 0.06,
    fov_nm: float = 6400.0,
    seed: int = 0,
) -> pd.DataFrame:
    """C-shaped clusters: localizations on semicircles (paper: radius 250 nm, radial sd 50 nm, 30-60 per
    cluster, 30-60 clusters in 6400 x 6400 nm, background 6% of localizations)."""
    return _arc_field(
        "c-shape", np.pi, n_clusters, locs_per_cluster, radius_nm, radial_sd_nm, background_fraction, fov_nm, seed
    )


def rings(
    n_clusters: int | tuple[int, int] = (60, 70),
    locs_per_cluster: int | tuple[int, int] = (60, 80),
    radius_nm: float = 250.0,
    radial_sd_nm: float = 50.0,
    background_fraction: float = 0.07,
    fov_nm: float = 6400.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Ring-shaped clusters (paper: radius 250 nm, radial sd 50 nm, 60-80 per ring, 60-70 rings in
    6400 x 6400 nm, background 7% of localizations)."""
    return _arc_field(
        "ring", 2 * np.pi, n_clusters, locs_per_cluster, radius_nm, radial_sd_nm, background_fraction, fov_nm, seed
    )


def _triangle_spread(rng: Rng, n: int, half_angle: float, height_nm: float) -> np.ndarray:
    """Offsets from the centroid of an isosceles triangle (apex at the origin, axis along +x), with an
    angle-dependent sd = distance from the centroid to the perimeter in that direction / 1.8 (paper)."""
    apex = np.array([0.0, 0.0])
    base_half = height_nm * np.tan(half_angle)
    corners = np.array([apex, [height_nm, base_half], [height_nm, -base_half]])
    centroid = corners.mean(axis=0)
    directions = rng.uniform(0, 2 * np.pi, n)
    unit = np.stack([np.cos(directions), np.sin(directions)], -1)
    # distance along each direction from the centroid to the nearest triangle edge
    distance = np.full(n, np.inf)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        edge = corners[b] - corners[a]
        offset = corners[a] - centroid
        denominator = unit[:, 0] * edge[1] - unit[:, 1] * edge[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (offset[0] * edge[1] - offset[1] * edge[0]) / denominator
            s = (offset[0] * unit[:, 1] - offset[1] * unit[:, 0]) / denominator
        hit = (t > 0) & (s >= 0) & (s <= 1)
        distance = np.where(hit, np.minimum(distance, t), distance)
    radial = np.abs(rng.normal(size=n)) * distance / 1.8
    return centroid + unit * radial[:, None]


def npc_like(
    n_structures: int | tuple[int, int] = (5, 9),
    n_corners: int = 8,
    locs_per_corner: int | tuple[int, int] = (0, 80),
    radius_nm: float = 50.0,
    background_fraction: float = 0.03,
    fov_nm: float = 1250.0,
    seed: int = 0,
) -> pd.DataFrame:
    """NPC-like structures at two scales: ``cluster`` = the pore (ring), ``subcluster`` = its corner.

    Paper: 8 corners sharing the pore centre as a vertex, each an isosceles triangle of height
    h = 2 r (r = 50 nm); per corner 0-80 localizations drawn around the triangle centroid with an
    angle-dependent sd (centre-to-perimeter distance / 1.8); 5-9 pores in 1250 x 1250 nm; background 3%.
    Corners with no localization do not appear in ``subcluster``.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(n_structures[0], n_structures[1] + 1)) if isinstance(n_structures, tuple) else n_structures
    centres = _centres(rng, n, fov_nm, 3 * radius_nm)
    half_angle = np.pi / n_corners
    xs, ys, labels, sublabels = [], [], [], []
    corner_id = 0
    for pore in range(n):
        rotation = rng.uniform(0, 2 * np.pi)
        for corner in range(n_corners):
            count = int(_counts(rng, 1, locs_per_corner)[0])
            if count == 0:
                continue
            corner_id += 1
            local = _rotate(
                _triangle_spread(rng, count, half_angle, 2 * radius_nm), rotation + 2 * np.pi * corner / n_corners
            )
            xs.append(centres[pore, 0] + local[:, 0])
            ys.append(centres[pore, 1] + local[:, 1])
            labels.append(np.full(count, pore + 1))
            sublabels.append(np.full(count, corner_id))
    if not xs:
        raise ValueError("no localization was drawn: raise locs_per_corner or n_structures")
    # renumber pores so that labels are 1..K without gaps (a pore may have drawn no localization)
    pore_labels = np.concatenate(labels)
    _, pore_labels = np.unique(pore_labels, return_inverse=True)
    structures = _frame(np.concatenate(xs), np.concatenate(ys), pore_labels + 1, "npc", np.concatenate(sublabels))
    return _finish(structures, background_fraction, fov_nm, seed)


#: The shapes that :func:`shape_mixture` combines: name -> generator of one shape's structures.
SHAPES: dict[str, Callable[..., pd.DataFrame]] = {
    "spot": gaussian_clusters,
    "ellipse": elliptical_clusters,
    "c-shape": c_shapes,
    "ring": rings,
}


def shape_mixture(
    shapes: tuple[str, str] = ("spot", "ring"),
    n_per_shape: int = 20,
    background_fraction: float = 0.05,
    fov_nm: float = 6400.0,
    shape_kwargs: dict[str, dict] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """A field with two (or more) shapes, each structure labelled with its shape in ``class``.

    Defaults follow the paper's Fig. 3 mixtures (spots and ellipses, spots and rings, C-shapes and rings).
    ``shape_kwargs`` passes extra parameters to each shape's generator, e.g.
    ``{"spot": {"sigma_nm": 50, "locs_per_cluster": (30, 60)}}``.
    """
    defaults: dict[str, dict] = {
        "spot": {"sigma_nm": 40.0, "locs_per_cluster": (30, 60)},
        "ellipse": {"minor_sigma_nm": 30.0, "locs_per_cluster": (40, 70)},
        "c-shape": {"locs_per_cluster": (30, 60)},
        "ring": {"locs_per_cluster": (60, 80)},
    }
    parts = []
    offset = 0
    for index, shape in enumerate(shapes):
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; choose from {sorted(SHAPES)}")
        kwargs = {**defaults[shape], **(shape_kwargs or {}).get(shape, {})}
        part = SHAPES[shape](
            n_clusters=n_per_shape, background_fraction=0.0, fov_nm=fov_nm, seed=seed * 1009 + index, **kwargs
        )
        part["cluster"] = part["cluster"] + offset
        offset = int(part["cluster"].max())
        parts.append(part)
    return _finish(pd.concat(parts, ignore_index=True), background_fraction, fov_nm, seed)


def cluster_pair(
    distance_sigmas: float,
    sigma_nm: float = 25.0,
    mean_locs: float = 90.0,
    n_pairs: int = 10,
    background_fraction: float = 0.0,
    fov_nm: float = 4000.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Pairs of Gaussian clusters whose centres are ``distance_sigmas`` * sigma apart (paper Fig. 4a:
    sigma 25 nm, geometric number of localizations with mean 90)."""
    rng = np.random.default_rng(seed)
    centres = _centres(rng, n_pairs, fov_nm, 6 * sigma_nm + distance_sigmas * sigma_nm)
    angles = rng.uniform(0, 2 * np.pi, n_pairs)
    half = 0.5 * distance_sigmas * sigma_nm * np.stack([np.cos(angles), np.sin(angles)], -1)
    pair_centres = np.concatenate([centres - half, centres + half])
    counts = _counts(rng, 2 * n_pairs, mean_locs, "geometric")
    labels = np.repeat(np.arange(1, 2 * n_pairs + 1), counts)
    points = pair_centres[labels - 1] + rng.normal(size=(len(labels), 2)) * sigma_nm
    return _finish(_frame(points[:, 0], points[:, 1], labels, "spot"), background_fraction, fov_nm, seed)


#: Multiple blinking as in the benchmark: mean localizations per molecule (geometric from 0: a fifth of the
#: molecules give none, the others 5 on average), the median and the log spread of the molecules' localization
#: error (nm). Measured on the benchmark's blinking FOVs against the ground-truth ones (research/training-log.md):
#: 4.0 localizations per molecule, a variance of 20-22 per molecule (a geometric from 1 has 12).
BLINKS_PER_MOLECULE = 4.0
BLINK_SIGMA_MEDIAN_NM = 14.0
BLINK_SIGMA_LOG_SD = 0.35


def blink_positions(
    molecules: np.ndarray,
    rng: Rng,
    mean_locs_per_molecule: float = BLINKS_PER_MOLECULE,
    sigma_median_nm: float = BLINK_SIGMA_MEDIAN_NM,
    sigma_log_sd: float = BLINK_SIGMA_LOG_SD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Localizations (nm) of molecules at ``molecules`` (N, 2) that blink: a geometric number each, from 0 (mean
    ``mean_locs_per_molecule``; a molecule may give none), displaced by a 2D Gaussian whose sigma is drawn once per
    molecule from a log-normal with median ``sigma_median_nm``. Returns the localizations, the molecule each came
    from and that sigma."""
    n = len(molecules)
    counts = rng.geometric(1.0 / (1.0 + mean_locs_per_molecule), size=n) - 1
    sigma = sigma_median_nm * np.exp(rng.normal(0, sigma_log_sd, n))
    source = np.repeat(np.arange(n), counts)
    jitter = rng.normal(size=(len(source), 2)) * sigma[source, None]
    return np.asarray(molecules, dtype=np.float64)[source] + jitter, source, sigma[source]


def blink(
    molecules: pd.DataFrame,
    mean_locs_per_molecule: float = BLINKS_PER_MOLECULE,
    sigma_median_nm: float = BLINK_SIGMA_MEDIAN_NM,
    sigma_log_sd: float = BLINK_SIGMA_LOG_SD,
    seed: int = 0,
) -> pd.DataFrame:
    """Multiple blinking, as in the benchmark (:func:`blink_positions`) for a table of molecules: ground-truth
    columns are inherited, and ``molecule`` (the source row) and ``uncertainty`` (its sigma, nm) are added."""
    xy, source, sigma = blink_positions(
        molecules[["x", "y"]].to_numpy(),
        np.random.default_rng(seed),
        mean_locs_per_molecule,
        sigma_median_nm,
        sigma_log_sd,
    )
    out = molecules.iloc[source].reset_index(drop=True)
    out["x"] = xy[:, 0]
    out["y"] = xy[:, 1]
    out["molecule"] = source
    out["uncertainty"] = sigma
    out = out.sample(frac=1.0, random_state=seed % (2**32)).reset_index(drop=True)  # no order leaks the truth
    out.attrs = dict(molecules.attrs)
    return out


def add_thunderstorm_columns(df: pd.DataFrame, n_frames: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Add ThunderSTORM's usual columns (id, frame, sigma, intensity, offset, bkgstd, uncertainty) with
    plausible values, so that simulated tables look and filter like real exports. Returns a new frame."""
    rng = np.random.default_rng(seed)
    n = len(df)
    out = df.copy()
    intensity = rng.lognormal(np.log(400.0), 0.45, n)
    if "molecule" in out:  # localizations of one molecule appear in neighbouring frames
        start = rng.integers(1, n_frames + 1, int(out["molecule"].max()) + 1)
        frame = start[out["molecule"].to_numpy()] + rng.geometric(0.3, n) - 1
    else:
        frame = rng.integers(1, n_frames + 1, n)
    columns = {
        "id": np.arange(1, n + 1),
        "frame": frame.astype(np.int64),
        "sigma": rng.normal(130.0, 15.0, n),
        "intensity": intensity,
        "offset": rng.normal(30.0, 4.0, n),
        "bkgstd": np.abs(rng.normal(8.0, 1.5, n)),
    }
    if "uncertainty" not in out:
        columns["uncertainty"] = 130.0 / np.sqrt(intensity) * 1.4
    for name, values in columns.items():
        out[name] = values
    ordered = ["id", "frame", "x", "y", "sigma", "intensity", "offset", "bkgstd", "uncertainty"]
    return out[ordered + [c for c in out.columns if c not in ordered]]
