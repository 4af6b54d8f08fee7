"""How far the compact preset is from the faithful (paper) one, for the same training wall time.

Single-shot: ONE annotated cluster (cluster 1 of fov-01) of a benchmark scenario, each preset trained for
``--minutes`` on this machine, then MIRO + DBSCAN (parameters tuned on the synthetic training fields) on
fov-04..fov-13 of the same scenario, beside DBSCAN alone tuned the same way. Reads ../shared/data.

    python benchmarks/presets.py [--scenario ground-truth/scenario-6] [--minutes 5] [--device auto]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_miro import metrics
from napari_miro.annotations import AnnotatedData
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import cluster_points, dbscan_labels
from napari_miro.io import read_localizations
from napari_miro.recipe import PRESETS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nieves2023"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="ground-truth/scenario-6")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    folder = args.data / args.scenario
    train_df = read_localizations(folder / "fov-01.csv")
    data = AnnotatedData.from_labels(train_df[["x", "y"]].to_numpy(), train_df["index"].to_numpy(), which=[1])
    tests = [read_localizations(folder / f"fov-{i:02d}.csv") for i in range(4, 14)]
    print(
        f"{args.scenario}: single shot from cluster 1 of fov-01 ({len(data.clusters[0])} localizations), "
        f"{args.minutes:g} min per preset, evaluated on fov-04..13\n"
    )
    print("| method | optimizer steps | JI_c | ARI_c | ARI | compression |")
    print("|---|---|---|---|---|---|")
    baseline_rows = None
    for preset in ("compact", "faithful"):
        settings = replace(PRESETS[preset], max_minutes=args.minutes, optimizer_steps=None)
        clusterer = MIROClusterer(recipe=settings, device=args.device).fit(data)
        trained, result = clusterer.model_, clusterer.training_
        rows, base = [], []
        for df in tests:
            xy, truth = df[["x", "y"]].to_numpy(), df["index"].to_numpy()
            clustered = cluster_points(trained, xy)
            rows.append(
                (
                    metrics.jaccard_clusters(xy, truth, clustered.labels),
                    metrics.ari_c(truth, clustered.labels),
                    metrics.ari(truth, clustered.labels),
                    metrics.compression_index(xy, clustered.collapsed.positions - xy, truth),
                )
            )
            labels = dbscan_labels(xy, trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples)
            base.append(
                (metrics.jaccard_clusters(xy, truth, labels), metrics.ari_c(truth, labels), metrics.ari(truth, labels))
            )
        mean = np.mean(rows, axis=0)
        steps = result.summary()["optimizer_steps"]
        print(
            f"| MIRO {preset} ({result.device}) | {steps} | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | "
            f"{mean[3]:.3f} |",
            flush=True,
        )
        baseline_rows = baseline_rows or (base, trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples)
    base, eps, samples = baseline_rows
    mean = np.mean(base, axis=0)
    print(f"| DBSCAN alone ({eps:g} nm / {samples}) | - | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | 0 |")


if __name__ == "__main__":
    main()
