"""Real dSTORM data (FGFR1, ../shared/data/nieves2023/fgfr1-dstorm): single-shot MIRO against DBSCAN alone.

No ground truth: the annotated cluster is the one a user would lasso, the largest cluster that DBSCAN finds in
cell-01 (eps 50 nm, 10 localizations). MIRO (compact preset, ``--minutes`` of training) then clusters every
cell; DBSCAN alone runs with the parameters tuned the same way on the synthetic training fields. Writes the
histograms of cluster radius, localizations per cluster and nearest-neighbour distance (as the paper's Fig.
4c-e) to docs/images/fgfr1_histograms.png and prints a table of medians.

    python benchmarks/real_data.py [--minutes 3] [--device auto]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from napari_miro.annotations import AnnotatedData
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import cluster_points, dbscan_labels
from napari_miro.io import read_localizations
from napari_miro.plotting import overlay_histograms
from napari_miro.recipe import PRESETS
from napari_miro.stats import cluster_statistics

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nieves2023" / "fgfr1-dstorm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "fgfr1_histograms.png")
    args = parser.parse_args()
    cells = sorted(DATA.glob("cell-*.csv"))
    first = read_localizations(cells[0])
    xy = first[["x", "y"]].to_numpy()
    seed_labels = dbscan_labels(xy, 50.0, 10)
    largest = int(np.bincount(seed_labels)[1:].argmax() + 1)
    data = AnnotatedData(xy, [np.flatnonzero(seed_labels == largest)])
    settings = replace(PRESETS["compact"], max_minutes=args.minutes, optimizer_steps=None)
    clusterer = MIROClusterer(recipe=settings, device=args.device).fit(data)
    trained, result = clusterer.model_, clusterer.training_
    s = trained.settings
    print(
        f"annotated: cluster {largest} of {cells[0].name} ({len(data.clusters[0])} localizations); "
        f"{result.summary()['optimizer_steps']} steps in {result.seconds:.0f} s; delta {s.delta_nm:g} nm; "
        f"MIRO eps {s.eps_nm:g} nm / {s.min_samples}; DBSCAN alone {s.dbscan_eps_nm:g} nm / {s.dbscan_min_samples}\n"
    )
    tables = {"MIRO + DBSCAN": [], "DBSCAN alone": []}
    for path in cells:
        cell = read_localizations(path)
        points = cell[["x", "y"]].to_numpy()
        miro = cluster_points(trained, points).labels
        alone = dbscan_labels(points, s.dbscan_eps_nm, s.dbscan_min_samples)
        tables["MIRO + DBSCAN"].append(cluster_statistics(points, miro).assign(cell=path.stem))
        tables["DBSCAN alone"].append(cluster_statistics(points, alone).assign(cell=path.stem))
    merged = {method: pd.concat(parts, ignore_index=True) for method, parts in tables.items()}
    columns = [
        ("radius_of_gyration_nm", "cluster radius of gyration (nm)"),
        ("n_localizations", "localizations per cluster"),
        ("nearest_neighbour_nm", "nearest-neighbour distance between clusters (nm)"),
    ]
    print("| method | clusters (10 cells) | median radius (nm) | median localizations | median NN distance (nm) |")
    print("|---|---|---|---|---|")
    for method, table in merged.items():
        print(
            f"| {method} | {len(table)} | {table['radius_of_gyration_nm'].median():.1f} | "
            f"{table['n_localizations'].median():.0f} | {table['nearest_neighbour_nm'].median():.0f} |"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for axis, (column, label) in zip(axes, columns, strict=True):
        overlay_histograms(
            axis,
            [
                ("MIRO + DBSCAN", merged["MIRO + DBSCAN"][column], "tab:orange"),
                ("DBSCAN alone", merged["DBSCAN alone"][column], "tab:green"),
            ],
            bins=25,
            fractions=True,
        )
        axis.set_xlabel(label)
        axis.legend(fontsize=8)
    figure.suptitle("FGFR1 dSTORM, 10 cells: single-shot MIRO + DBSCAN against DBSCAN alone")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=90)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
