"""The whole workflow on every bundled sample, timed: annotate one cluster, train (compact), cluster, statistics.

For each sample: the annotated cluster is the ground-truth structure that stands furthest from the others
(as a user would lasso an isolated one); training with the defaults (the background decided from the data) runs
for ``--minutes``; then MIRO + DBSCAN, DBSCAN alone (tuned the same way on the synthetic fields) and the
statistics tables. Prints a table with the time of each stage and the accuracy against the sample's ground truth,
and a second one with HDBSCAN in DBSCAN's place (after MIRO and alone, its min_cluster_size tuned the same way).
Target: the whole workflow under 2 minutes per sample on the 2-core CPU.

    python benchmarks/sample_workflow.py [--minutes 1.0 | --steps N] [--device auto]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_miro import metrics
from napari_miro.annotations import AnnotatedData
from napari_miro.cli import SAMPLES, sample_background, sample_file
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import cluster_points
from napari_miro.io import read_localizations
from napari_miro.stats import cluster_statistics
from napari_miro.tuning import tuning_note


def isolated_structure(xy: np.ndarray, truth: np.ndarray) -> int:
    """The ground-truth structure whose centre is furthest from every other centre."""
    labels = np.unique(truth[truth > 0])
    centres = np.array([xy[truth == k].mean(axis=0) for k in labels])
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(labels)) * 1e12
    return int(labels[np.argmax(distances.min(axis=1))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=None, help="fixed optimizer steps (reproducible)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    length = f"{args.steps} optimizer steps" if args.steps else f"{args.minutes:g} min of training"
    print(f"compact preset, {length} per sample, device {args.device}\n")
    print(
        "| sample | annotated | background (decided / the sample's) | prepare + train + tune (s) | "
        "cluster + statistics (s) | total (s) | JI_c MIRO | JI_c DBSCAN | ARI_c MIRO | ARI_c DBSCAN |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    notes, hdbscan_rows = [], []
    for name in SAMPLES:
        start = time.perf_counter()
        df = read_localizations(sample_file(name))
        xy, truth = df[["x", "y"]].to_numpy(), df["gt_cluster"].to_numpy()
        chosen = isolated_structure(xy, truth)
        data = AnnotatedData.from_labels(xy, truth, which=[chosen])
        length = {"max_steps": args.steps} if args.steps else {"minutes": args.minutes}
        clusterer = MIROClusterer(device=args.device, **length).fit(data)
        trained = clusterer.model_
        trained_at = time.perf_counter()
        _, _statistics, result = clusterer.cluster_table(df)  # the statistics table is part of the timing
        baseline = clusterer.cluster_alone(xy)
        cluster_statistics(xy, baseline)
        done = time.perf_counter()
        hdbscan = cluster_points(trained, xy, method="hdbscan", collapsed=result.collapsed)
        hdbscan_alone = MIROClusterer.from_model(trained, method="hdbscan").cluster_alone(xy)
        compared = (result.labels, baseline, hdbscan.labels, hdbscan_alone)
        hdbscan_rows.append(
            f"| {name} | {hdbscan.min_cluster_size} / {trained.settings.hdbscan_alone_min_cluster_size} | "
            + " | ".join(
                [f"{metrics.jaccard_clusters(xy, truth, labels):.4f}" for labels in compared]
                + [f"{metrics.ari_c(truth, labels):.4f}" for labels in compared]
            )
            + " |"
        )
        print(
            f"| {name} | structure {chosen} ({len(data.clusters[0])} loc.) | "
            f"{clusterer.background_} / {sample_background(name)} | {trained_at - start:.0f} | "
            f"{done - trained_at:.1f} | {done - start:.0f} | "
            f"{metrics.jaccard_clusters(xy, truth, result.labels):.4f} | "
            f"{metrics.jaccard_clusters(xy, truth, baseline):.4f} | {metrics.ari_c(truth, result.labels):.4f} | "
            f"{metrics.ari_c(truth, baseline):.4f} |",
            flush=True,
        )
        tuning = trained.settings.training.get("tuning", {})
        found = {key: tuning[key] for key in ("found_clusters", "found_median_size") if key in tuning}
        notes.append(f"- {name}: {tuning_note(trained) or 'min_samples from the annotated copies alone'} ({found})")
    print(
        "\nHDBSCAN in DBSCAN's place (the same trained models; min_cluster_size tuned on the same synthetic "
        "fields)\n\n| sample | min_cluster_size MIRO / alone | JI_c MIRO + DBSCAN | JI_c DBSCAN | JI_c MIRO + HDBSCAN "
        "| JI_c HDBSCAN | ARI_c MIRO + DBSCAN | ARI_c DBSCAN | ARI_c MIRO + HDBSCAN | ARI_c HDBSCAN |\n"
        "|---|---|---|---|---|---|---|---|---|---|",
        *hdbscan_rows,
        sep="\n",
    )
    print("\nClusters found in the annotated field (tuning.tune_model):", *notes, sep="\n")


if __name__ == "__main__":
    main()
