"""Time of DBSCAN's tuning grid: every (eps, min_samples) of the tuning grid from one neighbour search
(:func:`napari_miro.tuning.dbscan_label_grid`) against scikit-learn's DBSCAN run on each grid point (the
baseline, in the same run), and the time to score the grid with each tuning objective: the metrics module's ARI,
ARI_c and JI_c per labelling (the baseline) against one :class:`napari_miro.tuning.TuningScorer` per field (what
the tuning uses).

Fields as the tuning sees them: "collapsed" (tight clusters of 150 localizations, 4 nm spread, as after MIRO's
collapse, plus 1/7 background) and "raw" (Gaussian clusters of 40 localizations, 30 nm spread, half
background), at each size; the grid is the tuning's own (20 eps values from the field's nearest-neighbour
distances, 8 min_samples values up to 40). Also checks that both give the same noise points everywhere.

    python benchmarks/tuning_speed.py [--sizes 1000 4500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_miro import metrics, simulate
from napari_miro.inference import dbscan_labels
from napari_miro.tuning import TUNING_OBJECTIVES, TuningScorer, dbscan_label_grid, tuning_eps_grid, tuning_samples_grid


def field(kind: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions (nm) and true cluster labels of a field of about n localizations."""
    rng = np.random.default_rng(seed)
    if kind == "collapsed":
        n_clusters = max(1, n * 6 // 7 // 150)
        side = 3000.0 * np.sqrt(n / 4500)
        centres = rng.uniform(0, side, (n_clusters, 2))
        clusters = [c + rng.normal(0, 4, (150, 2)) for c in centres]
        background = rng.uniform(0, side, (n - 150 * n_clusters, 2))
        truth = np.concatenate([np.repeat(np.arange(1, n_clusters + 1), 150), np.zeros(len(background), int)])
        return np.concatenate([*clusters, background]), truth
    df = simulate.gaussian_clusters(
        n_clusters=max(1, n // 80), locs_per_cluster=40, sigma_nm=30.0, background_fraction=0.5,
        fov_nm=3000.0 * np.sqrt(n / 4500), seed=seed,
    )  # fmt: skip
    return df[["x", "y"]].to_numpy(), df["cluster"].to_numpy()


def best_time(function, repeats: int, *args) -> float:
    """The fastest of ``repeats`` calls of ``function(*args)``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def dbscan_per_grid_point(points: np.ndarray, eps_grid: np.ndarray, samples_grid: np.ndarray) -> list:
    """The baseline: scikit-learn's DBSCAN once per (eps, min_samples)."""
    return [dbscan_labels(points, eps, samples) for eps in eps_grid for samples in samples_grid]


def score_grid(grid: list, truth: np.ndarray, points: np.ndarray, objective: str) -> list:
    """The baseline: the objective's metrics (:mod:`napari_miro.metrics`) for every labelling of the grid."""
    scores = []
    for _, _, labels in grid:
        terms = [metrics.ari(truth, labels)]
        if objective != "ari" and (truth > 0).any():
            terms.append(metrics.ari_c(truth, labels))
            if objective == "ari+ari_c+ji_c":
                terms.append(metrics.jaccard_clusters(points, truth, labels))
        scores.append(float(np.mean(terms)))
    return scores


def score_grid_once(grid: list, truth: np.ndarray, points: np.ndarray, objective: str) -> list:
    """What the tuning does: one :class:`TuningScorer` per field (the truth's side once) for every labelling."""
    score = TuningScorer(truth, objective, points)
    return [score(labels) for _, _, labels in grid]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4500])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        "| field | localizations | grid points | DBSCAN per grid point (s) | one search (s) | speed-up | same noise |"
    )
    print("|---|---|---|---|---|---|---|")
    scoring = []
    for kind in ("collapsed", "raw"):
        for n in args.sizes:
            points, truth = field(kind, n)
            eps_grid, samples_grid = tuning_eps_grid([points]), tuning_samples_grid(40)
            grid = list(dbscan_label_grid(points, eps_grid, samples_grid))
            baseline = dbscan_per_grid_point(points, eps_grid, samples_grid)
            pairs = zip(grid, baseline, strict=True)
            same = all(np.array_equal(labels == 0, reference == 0) for (_, _, labels), reference in pairs)
            per_point = best_time(dbscan_per_grid_point, 1, points, eps_grid, samples_grid)
            one_search = best_time(lambda *a: list(dbscan_label_grid(*a)), args.repeats, points, eps_grid, samples_grid)
            print(
                f"| {kind} | {len(points)} | {len(grid)} | {per_point:.2f} | {one_search:.2f} | "
                f"{per_point / one_search:.1f}x | {'yes' if same else 'NO'} |"
            )
            for objective in TUNING_OBJECTIVES:
                per_call = best_time(score_grid, args.repeats, grid, truth, points, objective)
                once = best_time(score_grid_once, args.repeats, grid, truth, points, objective)
                same = score_grid(grid, truth, points, objective) == score_grid_once(grid, truth, points, objective)
                scoring.append((kind, len(points), objective, per_call, once, same))
    print(
        "\n| field | localizations | objective | metrics per labelling (s) | one TuningScorer (s) | speed-up "
        "| same scores |\n|---|---|---|---|---|---|---|"
    )
    for kind, n, objective, per_call, once, same in scoring:
        print(
            f"| {kind} | {n} | {objective} | {per_call:.2f} | {once:.2f} | {per_call / once:.1f}x "
            f"| {'yes' if same else 'NO'} |"
        )


if __name__ == "__main__":
    main()
