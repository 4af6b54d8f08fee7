"""Make the bundled sample files in sample_data/ from the simulators (deterministic: fixed seeds).

    python scripts/make_sample_data.py [--out sample_data]

Each file is a ThunderSTORM-style CSV (quoted ``name [unit]`` labels, nm) with the usual ThunderSTORM
columns and the ground truth kept as columns: ``gt_cluster`` (0 = background), ``gt_class`` and
``gt_subcluster`` (ThunderSTORM's ``gt_`` prefix for ground truth, so that clustering results can be added as
``cluster`` and ``class`` beside them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from napari_miro import simulate
from napari_miro.io import write_thunderstorm

TRUTH = ["gt_cluster", "gt_class", "gt_subcluster"]  # ThunderSTORM's prefix for ground-truth columns


def _finish(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    df = simulate.add_thunderstorm_columns(df, seed=seed)
    df = df.rename(columns={"cluster": "gt_cluster", "class": "gt_class", "subcluster": "gt_subcluster"})
    keep = ["id", "frame", "x", "y", "sigma", "intensity", "offset", "bkgstd", "uncertainty", *TRUTH]
    return df[keep].round(3)  # sub-pm digits carry no information and only make the files larger


def make_samples() -> dict[str, pd.DataFrame]:
    """The sample tables by file name."""
    nanoclusters = simulate.blink(
        simulate.gaussian_clusters(
            n_clusters=20, locs_per_cluster=15, sigma_nm=25.0, background_fraction=0.5, fov_nm=2000.0, seed=11
        ),
        seed=12,
    )
    rings = simulate.rings(n_clusters=14, fov_nm=3200.0, seed=21)
    npc = simulate.npc_like(n_structures=12, locs_per_corner=(5, 40), fov_nm=1600.0, seed=31)
    mixture = simulate.shape_mixture(("spot", "ring"), n_per_shape=10, fov_nm=3600.0, seed=41)
    return {
        "nanoclusters_blinking.csv": _finish(nanoclusters, 13),
        "rings.csv": _finish(rings, 22),
        "npc_two_scales.csv": _finish(npc, 32),
        "spots_and_rings.csv": _finish(mixture, 42),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sample_data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, df in make_samples().items():
        path = write_thunderstorm(df, args.out / name)
        print(f"{path}: {len(df)} localizations, {df['gt_cluster'].nunique() - 1} structures")


if __name__ == "__main__":
    main()
