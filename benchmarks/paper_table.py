"""MIRO + DBSCAN against DBSCAN alone on the paper's benchmark (Nieves et al. 2023) and on simulated shapes.

For each setting: few-shot training on the clusters of fov-01..03 and single-shot training on ONE cluster
(cluster 1 of fov-01), both with the chosen preset for ``--minutes``; evaluation on the other FOVs; DBSCAN
alone with the paper's parameters and DBSCAN alone tuned on the training data, in the same run. Every
parameter (delta, eps, min_samples) is chosen on training data only: delta from the annotated clusters, eps
and min_samples by maximising the ARI on synthetic fields made from them.

Each setting's result is cached in ``.bench_cache/paper_table/`` (keyed by its parameters), so the table can
run in parts and be assembled; ``--assemble`` only writes docs/benchmark.md from the cache.

    python benchmarks/paper_table.py [--quick] [--settings ground-truth/scenario-6 ...] [--minutes 2]
                                     [--device auto] [--assemble]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from napari_miro import metrics, simulate
from napari_miro.cluster import cluster_points, dbscan_labels
from napari_miro.io import read_localizations
from napari_miro.train import PRESETS, AnnotatedData, fit_miro, lay_side_by_side

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nieves2023"
CACHE = ROOT / ".bench_cache" / "paper_table"
METRICS = ["JI_c", "ARI_c", "ARI_dagger", "IoU", "AMI", "ARI", "RMSRE_N", "RMSE_xy"]

#: The paper's plain-DBSCAN parameters (eps nm, minPts) per benchmark setting (shared/reference).
PAPER_DBSCAN = {
    "ground-truth/scenario-2": (45, 7),
    "ground-truth/scenario-3": (30, 10),
    "ground-truth/scenario-4": (50, 4),
    "ground-truth/scenario-5": (35, 8),
    "ground-truth/scenario-6": (30, 6),
    "ground-truth/scenario-7": (65, 6),
    "ground-truth/scenario-8": (50, 4),
    "ground-truth/scenario-9": (45, 12),
    "ground-truth/scenario-10": (45, 7),
    "blinking/scenario-2": (50, 35),
    "blinking/scenario-3": (45, 50),
    "blinking/scenario-4": (60, 25),
    "blinking/scenario-5": (35, 34),
    "blinking/scenario-6": (40, 42),
    "blinking/scenario-7": (65, 32),
    "blinking/scenario-8": (50, 27),
    "blinking/scenario-9": (45, 50),
    "blinking/scenario-10": (50, 33),
}
#: The paper's Table 1 (MIRO row) where it reports a setting: metric -> value.
PAPER_MIRO = {
    "ground-truth/scenario-8": {
        "ARI_dagger": 0.83,
        "IoU": 0.72,
        "JI_c": 0.88,
        "RMSRE_N": 0.16,
        "AMI": 0.85,
        "ARI_c": 0.92,
        "ARI": 0.83,
    },
    "blinking/scenario-8": {
        "ARI_dagger": 0.84,
        "IoU": 0.62,
        "JI_c": 0.57,
        "RMSRE_N": 0.28,
        "AMI": 0.77,
        "ARI_c": 0.81,
        "ARI": 0.65,
    },
    "blinking/scenario-5": {
        "ARI_dagger": 0.59,
        "IoU": 0.56,
        "JI_c": 0.70,
        "RMSRE_N": 0.78,
        "AMI": 0.62,
        "ARI_c": 0.50,
        "ARI": 0.37,
    },
    "blinking/scenario-6": {
        "ARI_dagger": 0.66,
        "IoU": 0.66,
        "JI_c": 0.89,
        "RMSRE_N": 0.40,
        "AMI": 0.74,
        "ARI_c": 0.84,
        "ARI": 0.65,
    },
    "simulated/c-shapes": {
        "ARI_dagger": 0.95,
        "IoU": 0.968,
        "JI_c": 0.999,
        "RMSRE_N": 0.06,
        "AMI": 0.967,
        "ARI_c": 0.95,
        "ARI": 0.94,
    },
    "simulated/rings": {
        "ARI_dagger": 0.85,
        "IoU": 0.947,
        "JI_c": 0.990,
        "RMSRE_N": 0.11,
        "AMI": 0.909,
        "ARI_c": 0.86,
        "ARI": 0.82,
    },
}
SIMULATED = {"simulated/c-shapes": simulate.c_shapes, "simulated/rings": simulate.rings}
QUICK = ["ground-truth/scenario-6", "blinking/scenario-8", "simulated/rings"]


def fields_of(setting: str, count: int) -> list[pd.DataFrame]:
    """The setting's fields with columns x, y, truth: benchmark files, or simulated fields (seeded)."""
    if setting in SIMULATED:
        return [SIMULATED[setting](seed=index).rename(columns={"cluster": "truth"}) for index in range(1, count + 1)]
    frames = []
    for index in range(1, count + 1):
        path = DATA / setting / f"fov-{index:02d}.csv"
        if path.exists():
            frames.append(read_localizations(path).rename(columns={"index": "truth"}))
    return frames


def annotations(frames: list[pd.DataFrame], single: bool) -> AnnotatedData:
    """Few-shot: every cluster of the training fields (laid side by side); single-shot: cluster 1 of the first."""
    if single:
        first = frames[0]
        return AnnotatedData.from_labels(first[["x", "y"]].to_numpy(), first["truth"].to_numpy(), which=[1])
    positions, field, area = lay_side_by_side(frames)
    truth = np.concatenate([frame["truth"].to_numpy() for frame in frames])
    labels = np.where(truth > 0, truth + field * 100_000, 0)  # labels are per field: make them unique
    return AnnotatedData.from_labels(positions, labels, area_nm2=area)


def evaluate_setting(setting: str, mode: str, minutes: float, n_eval: int, device: str, preset: str) -> dict:
    """Train (few- or single-shot) and evaluate one setting; returns per-FOV metrics of every method."""
    total = 3 + n_eval
    frames = fields_of(setting, total)
    train_frames, test_frames = frames[:3], frames[3:]
    settings = replace(
        PRESETS[preset],
        max_minutes=minutes,
        optimizer_steps=10**7,
        background="blinking" if setting.startswith("blinking") else "uniform",
    )
    start = time.perf_counter()
    trained, result = fit_miro(annotations(train_frames, mode == "single"), settings, device=device)
    seconds = time.perf_counter() - start
    rows = []
    for number, frame in enumerate(test_frames, start=4):
        xy, truth = frame[["x", "y"]].to_numpy(), frame["truth"].to_numpy()
        clustered = cluster_points(trained, xy)
        methods = {
            "MIRO + DBSCAN": clustered.labels,
            "DBSCAN tuned": dbscan_labels(xy, trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples),
        }
        if setting in PAPER_DBSCAN:
            methods["DBSCAN (paper's parameters)"] = dbscan_labels(xy, *PAPER_DBSCAN[setting])
        for method, labels in methods.items():
            rows.append({"fov": number, "method": method, **metrics.evaluate(xy, truth, labels)})
        rows[-len(methods)]["compression"] = metrics.compression_index(xy, clustered.collapsed.positions - xy, truth)
    return {
        "setting": setting,
        "mode": mode,
        "preset": preset,
        "device": result.device,
        "training_seconds": round(seconds, 1),
        "optimizer_steps": result.summary()["optimizer_steps"],
        "delta_nm": trained.settings.delta_nm,
        "eps_nm": trained.settings.eps_nm,
        "min_samples": trained.settings.min_samples,
        "dbscan_eps_nm": trained.settings.dbscan_eps_nm,
        "dbscan_min_samples": trained.settings.dbscan_min_samples,
        "rows": rows,
    }


def cache_path(setting: str, mode: str, minutes: float, n_eval: int, preset: str) -> Path:
    key = hashlib.sha1(json.dumps([setting, mode, minutes, n_eval, preset]).encode()).hexdigest()[:10]
    return CACHE / f"{setting.replace('/', '_')}_{mode}_{key}.json"


def assemble(results: list[dict], out: Path) -> str:
    """docs/benchmark.md: mean +- sd per metric and method, beside the paper's values."""
    lines = [
        "# MIRO + DBSCAN against DBSCAN alone",
        "",
        "Made by `python benchmarks/paper_table.py`; each row: mean ± sd over the evaluation fields.",
        "",
    ]
    for result in results:
        table = pd.DataFrame(result["rows"])
        lines.append(
            f"## {result['setting']}, {result['mode']}-shot ({result['preset']} preset, "
            f"{result['optimizer_steps']} steps in {result['training_seconds']:.0f} s on {result['device']}; "
            f"delta {result['delta_nm']:g} nm, MIRO eps {result['eps_nm']:g} nm / {result['min_samples']}, "
            f"tuned DBSCAN {result['dbscan_eps_nm']:g} nm / {result['dbscan_min_samples']}; "
            f"{table['fov'].nunique()} fields)"
        )
        lines.append("")
        lines.append("| method | " + " | ".join(METRICS) + " |")
        lines.append("|---|" + "---|" * len(METRICS))
        for method, group in table.groupby("method", sort=False):
            cells = [f"{group[m].mean():.3f} ± {group[m].std():.3f}" for m in METRICS]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        paper = PAPER_MIRO.get(result["setting"])
        if paper:
            lines.append(
                "| paper's MIRO (Table 1) | "
                + " | ".join(f"{paper[m]:.3f}" if m in paper else "-" for m in METRICS)
                + " |"
            )
        lines.append("")
    text = "\n".join(lines)
    out.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=None)
    parser.add_argument("--modes", nargs="+", default=["few", "single"], choices=["few", "single"])
    parser.add_argument("--minutes", type=float, default=2.0, help="training time per setting and mode")
    parser.add_argument("--fovs", type=int, default=22, help="evaluation fields per setting (fov-04 on)")
    parser.add_argument("--preset", default="compact")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)}; 1 min, 5 fields, single-shot")
    parser.add_argument("--assemble", action="store_true", help="only write docs/benchmark.md from the cache")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmark.md")
    args = parser.parse_args()
    if args.quick:
        args.settings, args.minutes, args.fovs, args.modes = args.settings or QUICK, 1.0, 5, ["single"]
    settings = args.settings or [*PAPER_DBSCAN, *SIMULATED]
    CACHE.mkdir(parents=True, exist_ok=True)
    results = []
    for setting in settings:
        for mode in args.modes:
            path = cache_path(setting, mode, args.minutes, args.fovs, args.preset)
            if path.exists():
                results.append(json.loads(path.read_text()))
                continue
            if args.assemble:
                continue
            print(f"{setting} {mode}-shot ...", flush=True)
            result = evaluate_setting(setting, mode, args.minutes, args.fovs, args.device, args.preset)
            path.write_text(json.dumps(result, default=float))
            results.append(result)
    print(assemble(results, args.out))


if __name__ == "__main__":
    main()
