"""Ripley's K, L and H functions of localizations in a region, edge-corrected, with an envelope of complete
spatial randomness (CSR): is there clustering at all, and at what scale?

With ``n`` points in a region of area ``A`` (intensity ``n / A``):

- ``K(r) = A / (n (n - 1)) * sum over ordered pairs i != j with d_ij < r of w_ij``, the pairs' edge-correction
  weights ``w_ij``: ``"translation"`` (rectangles: ``A / ((width - |dx|) (height - |dy|))``, Ohser & Stoyan),
  ``"border"`` (any polygon: only points at least ``r`` from the edge count as centres, the reduced-sample
  estimator) or ``"none"``;
- ``L(r) = sqrt(K(r) / pi)`` (``L(r) = r`` under CSR) and ``H(r) = L(r) - r`` (0 under CSR, positive where
  localizations cluster; its maximum is near the clusters' scale);
- the CSR envelope: the smallest and largest ``H`` of ``n_simulations`` uniform patterns of the same number of
  points in the same region (19 simulations: a pointwise test at 10%, two-sided).

Written here rather than taken from astropy (``RipleysKEstimator``), which holds all n^2 distances in memory
(1.6 GB for 20,000 localizations): only the pairs closer than the largest radius are found, with a KD-tree. The
tests check this estimator against astropy's on the same points. Large fields are thinned at random to
``max_points`` (thinning leaves K unchanged). Pure core (numpy, scipy, pandas): imports neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from napari_miro.regions import Region

__all__ = ["CORRECTIONS", "RipleyResult", "default_radii", "ripley", "ripley_k", "ripley_table", "scale_marks"]

CORRECTIONS = ("auto", "translation", "border", "none")
#: radii evaluated by default
N_RADII = 50
#: the largest default radius: a quarter of the region's shorter side, at most this (nm)
MAX_DEFAULT_RADIUS_NM = 1000.0


@dataclass
class RipleyResult:
    """Ripley's functions of one pattern and their CSR envelope (lengths in nm, K in nm^2)."""

    radii: np.ndarray
    k: np.ndarray
    n_points: int  #: localizations used (after thinning)
    n_total: int  #: localizations in the region
    area_nm2: float
    correction: str
    envelope_low: np.ndarray | None = None  #: smallest H of the CSR simulations
    envelope_high: np.ndarray | None = None  #: largest H of the CSR simulations
    n_simulations: int = 0

    @property
    def l(self) -> np.ndarray:  # noqa: E743 - Ripley's L, by its name in the literature
        """L(r) = sqrt(K(r) / pi)."""
        return np.sqrt(np.maximum(self.k, 0.0) / np.pi)

    @property
    def h(self) -> np.ndarray:
        """H(r) = L(r) - r."""
        return self.l - self.radii

    @property
    def peak_radius_nm(self) -> float:
        """The radius where H is largest (the scale of clustering); NaN when H never exceeds the CSR envelope."""
        above = self.h > (self.envelope_high if self.envelope_high is not None else 0.0)
        if not above.any():
            return float("nan")
        return float(self.radii[np.argmax(np.where(above, self.h, -np.inf))])

    def describe(self) -> str:
        """Where H peaks, in words (a peak at the largest radius means clustering at larger scales too)."""
        peak = self.peak_radius_nm
        if not np.isfinite(peak):
            return "no clustering above the random envelope"
        if peak >= self.radii[-1]:
            return f"H still rises at the largest radius ({peak:.0f} nm): clustering at larger scales too"
        return f"H peaks at {peak:.0f} nm"

    def to_frame(self) -> pd.DataFrame:
        """One row per radius: radius_nm, K_nm2, L_nm, H_nm and, with simulations, the CSR envelope of H."""
        table = pd.DataFrame({"radius_nm": self.radii, "K_nm2": self.k, "L_nm": self.l, "H_nm": self.h})
        if self.envelope_low is not None:
            table["H_csr_low_nm"] = self.envelope_low
            table["H_csr_high_nm"] = self.envelope_high
        return table


#: columns of :func:`ripley_table`
TABLE_COLUMNS = ["region", "radius_nm", "K_nm2", "L_nm", "H_nm", "H_csr_low_nm", "H_csr_high_nm", "n_localizations",
                 "area_um2"]  # fmt: skip


def ripley_table(results: list[tuple[Region, RipleyResult]]) -> pd.DataFrame:
    """One table of several regions' Ripley's functions (the region's name, its localizations and area on every
    row); the columns are there even for no region."""
    tables = [
        result.to_frame().assign(region=region.name, n_localizations=result.n_total, area_um2=region.area / 1e6)
        for region, result in results
    ]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=TABLE_COLUMNS)
    return table[[column for column in TABLE_COLUMNS if column in table]]


def scale_marks(settings) -> dict[str, float]:
    """The radii a model's settings (:class:`napari_miro.model_file.MIROSettings`) suggest, to mark beside
    Ripley's H: its graph threshold delta and DBSCAN's eps on the original points."""
    return {"model delta": settings.delta_nm, "DBSCAN eps alone": settings.dbscan_eps_nm or settings.eps_nm}


def default_radii(region: Region) -> np.ndarray:
    """N_RADII radii from 0 up to a quarter of the region's shorter side (at most MAX_DEFAULT_RADIUS_NM)."""
    x_min, y_min, x_max, y_max = region.bounds
    largest = min(MAX_DEFAULT_RADIUS_NM, 0.25 * min(x_max - x_min, y_max - y_min))
    return np.linspace(0.0, largest, N_RADII + 1)[1:]


def _resolve(correction: str, region: Region) -> str:
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown edge correction {correction!r}; choose from {', '.join(CORRECTIONS)}")
    if correction == "auto":
        return "translation" if region.is_rectangle else "border"
    if correction == "translation" and not region.is_rectangle:
        raise ValueError("the translation correction is computed for rectangles; use 'border' for a polygon")
    return correction


def ripley_k(points: np.ndarray, radii: np.ndarray, region: Region, correction: str = "auto") -> np.ndarray:
    """Ripley's K (nm^2) at each radius for the points (x, y, nm) inside ``region`` (see the module doc)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    radii = np.asarray(radii, dtype=np.float64)
    correction = _resolve(correction, region)
    n, area = len(points), region.area
    if n < 2:
        return np.full(len(radii), np.nan)
    largest = float(radii.max())
    pairs = cKDTree(points).query_pairs(largest, output_type="ndarray")
    difference = points[pairs[:, 0]] - points[pairs[:, 1]]
    distance = np.hypot(*difference.T)
    # each unordered pair counts for both of its ordered pairs (i, j) and (j, i)
    if correction == "border":
        edge = region.distance_to_edge(points)
        k = np.empty(len(radii))
        for index, r in enumerate(radii):
            centres = edge >= r
            n_centres = int(centres.sum())
            if n_centres == 0:
                k[index] = np.nan
                continue
            close = distance < r
            neighbours = centres[pairs[close, 0]].sum() + centres[pairs[close, 1]].sum()
            k[index] = area * neighbours / (n_centres * (n - 1))
        return k
    weight = np.full(len(distance), 2.0)
    if correction == "translation":
        x_min, y_min, x_max, y_max = region.bounds
        overlap = (x_max - x_min - np.abs(difference[:, 0])) * (y_max - y_min - np.abs(difference[:, 1]))
        weight = 2.0 * area / np.maximum(overlap, 1e-300)
    order = np.argsort(distance)
    cumulative = np.concatenate([[0.0], np.cumsum(weight[order])])
    counted = np.searchsorted(distance[order], radii, side="left")  # pairs with d < r
    return area * cumulative[counted] / (n * (n - 1))


def ripley(
    points: np.ndarray,
    radii: np.ndarray | None = None,
    region: Region | None = None,
    correction: str = "auto",
    n_simulations: int = 19,
    max_points: int = 20_000,
    seed: int = 0,
) -> RipleyResult:
    """Ripley's K, L and H of localizations, with a CSR envelope.

    Parameters
    ----------
    points
        (N, 2) localizations (x, y) in nm; those outside ``region`` are left out.
    radii
        Radii in nm (default: :func:`default_radii`).
    region
        Where the localizations were observed (a drawn ROI); default: their bounding box.
    correction
        "auto" (translation for rectangles, border for polygons), "translation", "border" or "none".
    n_simulations
        Uniform patterns of the same number of points in the region for the envelope (0: none).
    max_points
        More localizations than this are thinned at random (seeded) to this many.
    seed
        Seeds the thinning and the simulations.

    Returns
    -------
    RipleyResult
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    region = region or Region.bounding_box(points)
    inside = points[region.contains(points)]
    if len(inside) < 2:
        raise ValueError(f"'{region.name}' holds {len(inside)} localization(s); Ripley's functions need at least 2")
    radii = default_radii(region) if radii is None else np.asarray(radii, dtype=np.float64)
    if not len(radii) or not (radii > 0).all() or not np.isfinite(radii).all():
        raise ValueError("radii must be positive distances in nm")
    rng = np.random.default_rng(seed)
    used = inside
    if len(inside) > max_points:
        used = inside[rng.choice(len(inside), max_points, replace=False)]
    correction = _resolve(correction, region)
    result = RipleyResult(radii, ripley_k(used, radii, region, correction), len(used), len(inside), region.area,
                          correction)  # fmt: skip
    if n_simulations > 0:
        simulated = []
        for _ in range(n_simulations):
            k = ripley_k(region.uniform_points(len(used), rng), radii, region, correction)
            simulated.append(np.sqrt(np.maximum(k, 0.0) / np.pi) - radii)
        result.envelope_low, result.envelope_high = np.min(simulated, axis=0), np.max(simulated, axis=0)
        result.n_simulations = n_simulations
    return result
