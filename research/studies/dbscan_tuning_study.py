"""Study: how DBSCAN's eps / min_samples are chosen on synthetic fields, and what each rule gives on unseen FOVs.

Trains single-shot as ``napari-miro train`` does (ONE annotated cluster of fov-01, the compact preset), scores
every (eps, min_samples) of the tuning grid on 16 fresh synthetic fields (the preset's objective, the mean of
ARI and ARI_c) and on 10 benchmark FOVs the model never saw (JI_c, ARI_c), then prints what several
selection rules pick and what it is worth on the real FOVs, beside the best grid point there (the oracle).

    python benchmarks/dbscan_tuning_study.py ground-truth/scenario-10 [--minutes 0.8] [--json rows.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from paper_table import annotations, fields_of

from napari_miro import metrics
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import collapse, dbscan_labels
from napari_miro.recipe import PRESETS
from napari_miro.tuning import dbscan_label_grid, tuning_eps_grid, tuning_samples_grid


def smooth(grid: np.ndarray) -> np.ndarray:
    """Mean over each grid point's 3 x 3 neighbourhood (edges repeated)."""
    padded = np.pad(grid, 1, mode="edge")
    rows, cols = grid.shape
    return sum(padded[i : i + rows, j : j + cols] for i in range(3) for j in range(3)) / 9


def default_choice(scores: np.ndarray, tolerance: float = 0.01) -> tuple[int, int]:
    """grid_search_dbscan's choice: the largest min_samples within ``tolerance`` of the best, then its best eps."""
    near_best = scores >= scores.max() - tolerance
    j = int(np.flatnonzero(near_best.any(axis=0)).max())
    return int(np.argmax(scores[:, j])), j


def annotated_recovery(collapsed: np.ndarray, clusters: list[np.ndarray], eps_grid, samples_grid) -> np.ndarray:
    """Per (eps, min_samples): the mean over the annotated clusters of the Jaccard index between the cluster and
    the DBSCAN cluster (on the collapsed real positions) that holds most of it (0 when all of it is noise)."""
    recovery = np.zeros((len(eps_grid), len(samples_grid)))
    for eps, samples, labels in dbscan_label_grid(collapsed, eps_grid, samples_grid):
        i, j = int(np.flatnonzero(eps_grid == eps)[0]), int(np.flatnonzero(samples_grid == samples)[0])
        values = []
        for members in clusters:
            found = labels[members]
            found = found[found > 0]
            if not len(found):
                values.append(0.0)
                continue
            best = np.bincount(found).argmax()
            inside = int((found == best).sum())
            values.append(inside / (len(members) + int((labels == best).sum()) - inside))
        recovery[i, j] = np.mean(values)
    return recovery


def selection_rules(
    synthetic: np.ndarray, eps_grid: np.ndarray, recovery: np.ndarray | None = None
) -> dict[str, tuple[int, int]]:
    """(eps index, min_samples index) chosen by each rule from the per-field synthetic scores (fields, eps, ms,
    [ARI, ARI_c, JI_c]) and, where given, the annotated clusters' recovery on the real data (eps, ms)."""
    objective = synthetic[..., :2].mean(-1)  # the preset's objective, the mean of ARI and ARI_c
    first4, all16 = objective[:4].mean(0), objective.mean(0)
    with_detection = synthetic.mean(-1).mean(0)  # mean of ARI, ARI_c and JI_c
    detection_and_split = synthetic[..., 1:].mean(-1).mean(0)  # mean of ARI_c and JI_c
    rules = {
        "argmax, 4 fields (the earlier tuning)": np.unravel_index(first4.argmax(), first4.shape),
        "argmax, 16 fields (the default)": np.unravel_index(all16.argmax(), all16.shape),
        "argmax ARI+ARI_c+JI_c, 16 fields": np.unravel_index(with_detection.argmax(), with_detection.shape),
        "argmax ARI_c+JI_c, 16 fields": np.unravel_index(detection_and_split.argmax(), detection_and_split.shape),
        "3x3-smoothed argmax, 16 fields": np.unravel_index(smooth(all16).argmax(), all16.shape),
    }
    for tolerance in (0.01, 0.02):
        near = np.argwhere(all16 >= all16.max() - tolerance)
        largest = near[:, 0].max()
        rules[f"largest eps within {tolerance}"] = (largest, int(np.median(near[near[:, 0] == largest][:, 1])))
        centre = int(np.argmin(np.abs(np.log(eps_grid) - np.median(np.log(eps_grid[near[:, 0]])))))
        at_centre = near[near[:, 0] == centre][:, 1]
        rules[f"median eps within {tolerance}"] = (centre, int(np.median(at_centre if len(at_centre) else near[:, 1])))
    quartile = np.quantile(objective, 0.25, axis=0)
    rules["best lower quartile over fields"] = np.unravel_index(quartile.argmax(), quartile.shape)
    rules["the default (ARI+ARI_c+JI_c, tie-break)"] = default_choice(with_detection)
    if recovery is not None:
        for weight in (0.25, 0.5, 1.0):
            combined = (with_detection + weight * recovery) / (1 + weight)
            rules[f"default + {weight} x recovery"] = default_choice(combined)
        for floor in (0.8, 0.9):
            allowed = recovery >= floor * recovery.max()
            rules[f"default where recovery >= {floor} x best"] = default_choice(np.where(allowed, with_detection, -1))
        rules["best recovery"] = np.unravel_index(recovery.argmax(), recovery.shape)
    return {name: (int(i), int(j)) for name, (i, j) in rules.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setting")
    parser.add_argument("--minutes", type=float, default=0.8)
    parser.add_argument("--json", help="JSON-lines file to append the result to")
    args = parser.parse_args()
    frames = fields_of(args.setting, 13)
    settings = replace(
        PRESETS["compact"],
        max_minutes=args.minutes,
        optimizer_steps=None,
        background="blinking" if args.setting.startswith("blinking") else "uniform",
    )
    clusterer = MIROClusterer(recipe=settings, device="auto").fit(
        annotations(frames[:3], single=True, setting=args.setting)
    )
    trained, result = clusterer.model_, clusterer.training_
    synthesizer = result.fields.synthesizer
    rng = np.random.default_rng(settings.seed + 3)
    tuning = [synthesizer.field(rng) for _ in range(16)]
    collapsed = [collapse(trained, f.positions).positions for f in tuning]
    eps_grid = tuning_eps_grid(collapsed)  # the default tuning's grid
    samples_grid = tuning_samples_grid(min(synthesizer.sizes))

    def synthetic_scores(field, labels: np.ndarray) -> list[float]:
        truth = field.cluster
        return [
            metrics.ari(truth, labels),
            metrics.ari_c(truth, labels),
            metrics.jaccard_clusters(field.positions, truth, labels),
        ]

    synthetic = np.array(
        [
            [[synthetic_scores(f, dbscan_labels(p, float(e), int(s))) for s in samples_grid] for e in eps_grid]
            for f, p in zip(tuning, collapsed, strict=True)
        ]
    )
    unseen = [
        (f[["x", "y"]].to_numpy(), f["truth"].to_numpy(), collapse(trained, f[["x", "y"]].to_numpy()).positions)
        for f in frames[3:]
    ]
    real = np.zeros((len(eps_grid), len(samples_grid), 2))
    for i, eps in enumerate(eps_grid):
        for j, samples in enumerate(samples_grid):
            rows = [metrics.evaluate(xy, t, dbscan_labels(c, float(eps), int(samples))) for xy, t, c in unseen]
            real[i, j] = np.mean([r["JI_c"] for r in rows]), np.mean([r["ARI_c"] for r in rows])
    data = annotations(frames[:3], single=True, setting=args.setting)
    recovery = annotated_recovery(collapse(trained, data.positions).positions, data.clusters, eps_grid, samples_grid)
    rules = selection_rules(synthetic, eps_grid, recovery)
    rules["oracle (best JI_c + ARI_c on the unseen FOVs)"] = np.unravel_index(real.sum(2).argmax(), real.shape[:2])
    report = {"setting": args.setting, "minutes": args.minutes}
    print(f"{args.setting}: rule, eps nm / min_samples, synthetic score, JI_c / ARI_c on 10 unseen FOVs")
    for name, (i, j) in rules.items():
        values = [float(eps_grid[i]), int(samples_grid[j]), round(float(synthetic[..., :2].mean(-1).mean(0)[i, j]), 3)]
        values += [round(float(v), 3) for v in real[i, j]] + [round(float(recovery[i, j]), 3)]
        report[name] = values
        scores = f"{values[2]:.3f}  {values[3]:.2f} / {values[4]:.2f}  recovery {values[5]:.2f}"
        print(f"  {name:46s} {values[0]:7.2f} / {values[1]:3d}  {scores}")
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
