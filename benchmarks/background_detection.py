"""Does "auto" pick the right background? The decision of :func:`napari_miro.density.detect_background` on every
benchmark scenario (ground truth: uniform; blinking: blinking), on the bundled samples and on the real FGFR1 dSTORM
cells (raw dSTORM: blinking), against what is known of each.

Benchmark FOVs: one annotated cluster each (cluster 1, as the protocol's single shot, or the next one with at least
3 localizations), ``--fovs`` FOVs per scenario from ``--first``.
Samples: their isolated structure (as ``sample_workflow.py``). FGFR1 cells (no ground truth): the largest cluster
that DBSCAN (eps 50 nm, min_samples 10) finds, as a user would lasso a clear one. Prints a markdown table and the
number of right decisions.

    python benchmarks/background_detection.py [--fovs 5] [--first 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_table import DATA
from sample_workflow import isolated_structure

from napari_miro.annotations import AnnotatedData
from napari_miro.cli import SAMPLES, sample_background, sample_file
from napari_miro.density import detect_background
from napari_miro.inference import dbscan_labels
from napari_miro.io import read_localizations


def cases(fovs: int, first: int = 1):
    """(name, data, the right background) for every case."""
    for kind, truth in (("ground-truth", "uniform"), ("blinking", "blinking")):
        for scenario in range(2, 11):
            for fov in range(first, first + fovs):
                table = pd.read_csv(DATA / kind / f"scenario-{scenario}" / f"fov-{fov:02d}.csv")
                labels = table["index"].to_numpy()
                annotated = next(k for k in range(1, labels.max() + 1) if (labels == k).sum() >= 3)  # 1 unless tiny
                data = AnnotatedData.from_labels(table[["x", "y"]].to_numpy(), labels, which=[annotated])
                yield f"{kind} S{scenario} fov-{fov:02d}", data, truth
    for name in SAMPLES:
        table = read_localizations(sample_file(name))
        xy, labels = table[["x", "y"]].to_numpy(), table["gt_cluster"].to_numpy()
        yield (
            f"sample {name}",
            AnnotatedData.from_labels(xy, labels, which=[isolated_structure(xy, labels)]),
            (sample_background(name)),
        )
    for path in sorted((DATA / "fgfr1-dstorm").glob("cell-*.csv")):
        xy = pd.read_csv(path)[["x", "y"]].to_numpy()
        labels = dbscan_labels(xy, 50.0, 10)
        largest = int(np.bincount(labels[labels > 0]).argmax())
        yield f"FGFR1 {path.stem}", AnnotatedData.from_labels(xy, labels, which=[largest]), "blinking"


def _closeness(decision) -> str:
    """'fraction / fraction / fraction | count / count / count' of the data and the two references."""
    sides = [decision.observed, decision.references.get("uniform") or {}, decision.references.get("blinking") or {}]
    return " | ".join(
        " / ".join(f"{side[measure]:.2f}" if measure in side else "-" for side in sides)
        for measure in ("fraction", "count")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fovs", type=int, default=5, help="FOVs per benchmark scenario")
    parser.add_argument("--first", type=int, default=1, help="the first FOV (e.g. 6: FOVs the rule was not set on)")
    args = parser.parse_args()
    print(
        "| data | right | decided | score | with a neighbour within 20 nm: data / uniform / blinking | "
        "neighbours within 20 nm: data / uniform / blinking | seconds |"
    )
    print("|---|---|---|---:|---|---|---:|")
    right = total = 0
    for name, data, truth in cases(args.fovs, args.first):
        start = time.perf_counter()
        decision = detect_background(data)
        seconds = time.perf_counter() - start
        right += decision.background == truth
        total += 1
        mark = "" if decision.background == truth else " **wrong**"
        print(
            f"| {name} | {truth} | {decision.background}{mark} | {decision.score:.2f} | "
            f"{_closeness(decision)} | "
            f"{seconds:.1f} |",
            flush=True,
        )
    print(f"\n{right} of {total} decisions right")


if __name__ == "__main__":
    main()
