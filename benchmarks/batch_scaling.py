"""Files per second of `napari-miro batch` on Dask with 1 and 2 (or more) local workers, against a plain loop.

Simulates ``--files`` fields of view (default 100; Gaussian nanoclusters over background, two conditions in two
folders), trains a compact model briefly on the clusters of one of them, then clusters every file:

* baseline: a sequential loop in this process (``batch.cluster_file``, what ``napari-miro cluster`` does per
  file, without its start-up), PyTorch on every core;
* ``run_batch`` on a LocalCluster of N worker processes (the cores shared among them), including the
  cluster's start-up.

Prints a markdown table (seconds, files per second, speed-up over the loop and over 1 worker) and writes it
with ``--out`` (appended, so that runs of several sizes share one file).

    python benchmarks/batch_scaling.py [--files 100] [--clusters 30] [--workers 1 2] [--out docs/batch_scaling_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from napari_miro import simulate
from napari_miro.annotations import AnnotatedData
from napari_miro.batch import ClusterParameters, OutputPaths, cluster_file, common_root, find_inputs, run_batch
from napari_miro.estimator import MIROClusterer
from napari_miro.io import read_localizations, write_thunderstorm
from napari_miro.recipe import PRESETS


def make_fields(folder: Path, n_files: int, clusters: int = 30, seed: int = 0) -> list[Path]:
    """``n_files`` simulated FOVs in two condition folders: ``clusters`` Gaussian nanoclusters of 40
    localizations over as many background localizations, at the same density whatever the size (30 clusters:
    4 x 4 um, ~2,400 localizations)."""
    paths = []
    for index in range(n_files):
        condition = "control" if index % 2 == 0 else "treated"
        sigma = 25.0 if condition == "control" else 35.0
        field = simulate.gaussian_clusters(
            n_clusters=clusters,
            locs_per_cluster=40,
            sigma_nm=sigma,
            background_fraction=0.5,
            fov_nm=4000 * np.sqrt(clusters / 30),
            seed=seed + index,
        )
        path = folder / condition / f"fov_{index:03d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_thunderstorm(simulate.add_thunderstorm_columns(field, seed=index), path)
        paths.append(path)
    return paths


def train_model(path: Path, out: Path, steps: int) -> Path:
    field = read_localizations(path)
    data = AnnotatedData.from_labels(field[["x", "y"]].to_numpy(), field["cluster"].to_numpy(), which=[1])
    trained = (
        MIROClusterer(recipe=replace(PRESETS["compact"], optimizer_steps=steps, seed=0), device="cpu").fit(data).model_
    )
    return trained.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clusters", type=int, default=30, help="clusters per FOV (30: ~2,400 localizations)")
    parser.add_argument("--training-steps", type=int, default=100)
    parser.add_argument("--out", default=None, help="markdown file to write the table to")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        start = time.perf_counter()
        make_fields(scratch / "fovs", args.files, args.clusters)
        print(f"simulated {args.files} FOVs in {time.perf_counter() - start:.1f} s")
        model = train_model(scratch / "fovs" / "control" / "fov_000.csv", scratch / "model.safetensors",
                            args.training_steps)  # fmt: skip
        files = find_inputs([scratch / "fovs"])
        root = common_root(files)
        localizations = []

        from napari_miro.model_file import TrainedMIRO

        trained = TrainedMIRO.load(model)
        start = time.perf_counter()
        for path in files:
            paths = OutputPaths.for_input(path, root, scratch / "loop")
            paths.table.parent.mkdir(parents=True, exist_ok=True)
            summary = cluster_file(path, trained, ClusterParameters(), paths.table, paths.statistics)
            localizations.append(summary["n_localizations"])
        loop_seconds = time.perf_counter() - start
        rows = [("loop in one process (baseline)", f"1 x {torch.get_num_threads()} threads", loop_seconds)]
        for workers in args.workers:
            start = time.perf_counter()
            result = run_batch([scratch / "fovs"], model, scratch / f"dask_{workers}", workers=workers,
                               group_by="folder", figure=False)  # fmt: skip
            seconds = time.perf_counter() - start
            assert result.complete, result.report[result.report["status"] != "done"]
            threads = max(1, (os.cpu_count() or 1) // workers)
            rows.append((f"Dask LocalCluster, {workers} worker(s)", f"{workers} x {threads} threads", seconds))

    one_worker = next((s for name, _, s in rows if name.endswith("1 worker(s)")), None)
    lines = [
        f"# Batch scaling: {args.files} FOVs ({int(np.mean(localizations)):,} localizations each), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "",
        "| run | processes x PyTorch threads | seconds | files / s | speed-up over the loop | over 1 worker |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, layout, seconds in rows:
        over_one = f"{one_worker / seconds:.2f}" if one_worker and name.startswith("Dask") else ""
        lines.append(
            f"| {name} | {layout} | {seconds:.1f} | {args.files / seconds:.2f} | {loop_seconds / seconds:.2f} "
            f"| {over_one} |"
        )
    lines += [
        "",
        "Dask times include starting the local cluster (worker processes importing PyTorch) and writing the "
        "batch report and statistics; every run writes the same per-file outputs.",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "a") as handle:  # several sizes go into one file
            handle.write(table + "\n\n")


if __name__ == "__main__":
    main()
