"""Accuracy against minutes of training: single-shot MIRO + DBSCAN on the paper's benchmark FOVs.

For each setting: train with default settings (the compact preset, or ``--set name=value`` overrides of
TrainingSettings to study a recipe variant) on ONE annotated cluster (cluster 1 of fov-01), exactly as
``napari-miro train`` does; at each of ``--checkpoints`` minutes of training take the best model so far with
DBSCAN tuned on its synthetic fields (the time spent there is not counted as training), and evaluate it on
fov-04.. (``--n-eval`` FOVs the model never saw); or, with ``--default-length``, train as long as
``napari-miro train`` does when no ``--minutes`` is given (the preset's optimizer steps) and report the minutes
that took (the budget: 10 minutes on a 2-core CPU, 2 on a GPU). Beside it, in the same run: DBSCAN
alone tuned on the same training data (the fair baseline), DBSCAN with the paper's parameters, and the JI_c /
ARI_c that the paper's own trained checkpoints reach on unseen benchmark FOVs (the targets).

Prints a markdown table; ``--out`` appends it to a file and ``--json`` appends the rows (for curves:
``--plot FIGURE.png`` draws JI_c and ARI_c against minutes from that JSON file).

    python benchmarks/time_to_accuracy.py [--settings ground-truth/scenario-6 ...] [--minutes 10]
        [--checkpoints 1 2 5 10] [--n-eval 10] [--passes 1 2] [--set learning_rate=3e-3 ...] [--label NAME]
        [--device auto] [--out docs/time_to_accuracy_cpu.md] [--json rows.jsonl] [--plot curves.png]
        [--default-length] [--true-densities]  (study only: fov-01's true densities instead of the estimated ones)
        [--bases DIR]  (study only: base models from DIR, NAME.safetensors + NAME.json, instead of the shipped ones)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.spatial import ConvexHull

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_table import PAPER_DBSCAN, annotations, fields_of

from napari_miro import base_models, metrics
from napari_miro import synthesis as synthesis_module
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import cluster_points, dbscan_labels
from napari_miro.recipe import PRESETS, TrainingSettings
from napari_miro.tuning import tune_dbscan

#: JI_c / ARI_c of the paper's own trained checkpoints on benchmark FOVs they never saw.
PAPER_CHECKPOINT = {
    "ground-truth/scenario-2": (0.97, 0.93),
    "ground-truth/scenario-6": (0.95, 0.87),
    "ground-truth/scenario-8": (0.89, 0.91),
    "ground-truth/scenario-10": (0.98, 0.95),
    "blinking/scenario-2": (0.83, 0.92),
    "blinking/scenario-6": (0.87, 0.83),
    "blinking/scenario-10": (0.85, 0.92),
}
REPORTED = ["JI_c", "ARI_c", "ARI_dagger"]


def parse_overrides(pairs: list[str]) -> dict:
    """``name=value`` pairs -> TrainingSettings fields with their types."""
    types = {f.name: f.type for f in dataclass_fields(TrainingSettings)}
    overrides = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in types:
            raise SystemExit(f"unknown training setting {name!r}; choose from {', '.join(types)}")
        value = json.loads(text) if text not in ("", "None") else None
        overrides[name] = value
    return overrides


def score(trained, test_frames, labels_of=None) -> dict:
    """Mean metrics over the test FOVs of MIRO + DBSCAN (or of ``labels_of(xy)``), with the compression index."""
    rows = []
    for frame in test_frames:
        xy, truth = frame[["x", "y"]].to_numpy(), frame["truth"].to_numpy()
        if labels_of is None:
            clustered = cluster_points(trained, xy)
            row = metrics.evaluate(xy, truth, clustered.labels)
            row["compression"] = metrics.compression_index(xy, clustered.collapsed.positions - xy, truth)
        else:
            row = metrics.evaluate(xy, truth, labels_of(xy))
        rows.append(row)
    return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}


def true_densities(frame) -> tuple[float, float]:
    """(background localizations, clusters) per nm^2 of a benchmark field, from its ground truth."""
    truth = frame["truth"].to_numpy()
    area = ConvexHull(frame[["x", "y"]].to_numpy()).volume
    return float((truth == 0).sum() / area), float(len(np.unique(truth[truth > 0])) / area)


def run_setting(setting: str, args, overrides: dict) -> list[dict]:
    frames = fields_of(setting, 3 + args.n_eval)
    train_frames, test_frames = frames[:3], frames[3:]
    if args.true_densities:  # a study of the recipe, not a way to train: the synthetic fields get fov-01's truth
        densities = true_densities(train_frames[0])
        synthesis_module.estimate_densities = lambda *_: densities
    # --default-length: as `napari-miro train` without --minutes (the preset's steps, no time budget)
    budget = {} if args.default_length else {"max_minutes": args.minutes, "optimizer_steps": None}
    settings = replace(PRESETS[args.preset], **budget, **overrides)  # the background: "auto", as a user runs it
    data = annotations(train_frames, single=True, setting=setting)
    checkpoints: list[tuple[float, object]] = []
    start = time.perf_counter()
    clusterer = MIROClusterer(recipe=settings, device=args.device).fit(
        data,
        checkpoint_minutes=[] if args.default_length else [m for m in args.checkpoints if m < args.minutes],
        on_model=lambda minutes, model: checkpoints.append((minutes, model)),
    )
    trained, result = clusterer.model_, clusterer.training_
    wall = time.perf_counter() - start
    checkpoints.append((result.seconds / 60 if args.default_length else args.minutes, trained))
    common = {"setting": setting, "label": args.label, "device": result.device, "preset": settings.preset,
              "background": clusterer.background_}  # fmt: skip
    if args.true_densities:
        common["densities"] = "fov-01 truth"
    if args.bases:
        common["bases"] = args.bases
    rows = []
    for minutes, model in checkpoints:
        tuned_for, tuned = model.settings.passes, (model.settings.eps_nm, model.settings.min_samples)
        for passes in args.passes:
            model.settings.passes = passes
            model.settings.eps_nm, model.settings.min_samples = tuned
            if passes != tuned_for:  # re-tune eps / min_samples for this many passes, on the model's synthetic fields
                suggestion = tune_dbscan(model, result.fields.synthesizer, settings)
                model.settings.eps_nm, model.settings.min_samples = suggestion["eps_nm"], suggestion["min_samples"]
            rows.append(
                {
                    **common,
                    "method": "MIRO + DBSCAN",
                    "minutes": minutes,
                    "passes": passes,
                    "steps": model.settings.training.get("optimizer_steps"),
                    "eps_nm": model.settings.eps_nm,
                    "min_samples": model.settings.min_samples,
                    **score(model, test_frames),
                }
            )
    baselines = {
        "DBSCAN tuned on the training data": (trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples)
    }
    if setting in PAPER_DBSCAN:
        baselines["DBSCAN, paper's parameters"] = PAPER_DBSCAN[setting]
    for method, (eps, samples) in baselines.items():
        labels_of = lambda xy, eps=eps, samples=samples: dbscan_labels(xy, eps, samples)  # noqa: E731
        rows.append(
            {**common, "method": method, "eps_nm": eps, "min_samples": samples, **score(None, test_frames, labels_of)}
        )
    if setting in PAPER_CHECKPOINT:
        ji, ari = PAPER_CHECKPOINT[setting]
        rows.append({**common, "method": "paper's trained checkpoint (reported)", "JI_c": ji, "ARI_c": ari})
    for row in rows:
        row["wall_seconds"] = round(wall, 1)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| setting | method | minutes | passes | steps | eps / min_samples | JI_c | ARI_c | ARI-dagger | compression |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]

    def cell(row, name, digits=2):
        value = row.get(name)
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"

    for row in rows:
        eps = f"{row['eps_nm']:.1f} / {row['min_samples']}" if row.get("eps_nm") is not None else ""
        lines.append(
            f"| {row['setting']} | {row['method']} | {cell(row, 'minutes', 1)} | {row.get('passes', '')} | "
            f"{row.get('steps') or ''} | {eps} | {cell(row, 'JI_c')} | {cell(row, 'ARI_c')} | "
            f"{cell(row, 'ARI_dagger')} | {cell(row, 'compression')} |"
        )
    return "\n".join(lines)


def plot(json_path: Path, figure_path: Path) -> None:
    """JI_c and ARI_c against minutes of training, one line per setting and variant, from a JSON-lines file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in json_path.read_text().splitlines() if line.strip()]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    curves = {}
    for row in rows:
        if row["method"] == "MIRO + DBSCAN":
            key = (row["setting"], row["label"], row.get("passes", 1), row["device"])
            curves.setdefault(key, []).append(row)
    for (setting, label, passes, device), points in sorted(curves.items()):
        points.sort(key=lambda r: r["minutes"])
        name = f"{setting.replace('ground-truth/', 'GT ').replace('scenario-', 'S')} {label} x{passes} ({device})"
        for axis, metric in zip(axes, ["JI_c", "ARI_c"], strict=True):
            axis.plot([p["minutes"] for p in points], [p[metric] for p in points], "o-", label=name)
    for axis, metric in zip(axes, ["JI_c", "ARI_c"], strict=True):
        axis.set_xlabel("minutes of training")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(figure_path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(PAPER_CHECKPOINT))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--checkpoints", type=float, nargs="+", default=[1, 2, 5])
    parser.add_argument("--n-eval", type=int, default=10)
    parser.add_argument("--passes", type=int, nargs="+", default=[1])
    parser.add_argument("--preset", default="compact")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="TrainingSettings overrides")
    parser.add_argument("--label", default="default")
    parser.add_argument(
        "--default-length",
        action="store_true",
        help="train for the preset's optimizer steps with no time budget (as `napari-miro train` without "
        "--minutes) and report the minutes it took; --minutes and --checkpoints are then ignored",
    )
    parser.add_argument(
        "--true-densities",
        action="store_true",
        help="study only: synthetic fields with fov-01's true background and cluster densities, not estimated",
    )
    parser.add_argument(
        "--bases",
        default=None,
        metavar="DIR",
        help="study only: base models from this folder (NAME.safetensors + NAME.json, as "
        "scripts/train_base_models.py writes them) instead of the shipped ones; --set base_model=... picks one",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="markdown file to append the table to")
    parser.add_argument("--json", default=None, help="JSON-lines file to append the rows to")
    parser.add_argument("--plot", default=None, help="draw curves from --json into this PNG (and exit)")
    args = parser.parse_args()
    if args.plot:
        plot(Path(args.json), Path(args.plot))
        return
    overrides = parse_overrides(args.set)
    if args.bases:
        if not any(Path(args.bases).glob("*.safetensors")):
            raise SystemExit(f"{args.bases}: no base models (*.safetensors) there")
        base_models._folder = lambda: Path(args.bases)
    all_rows = []
    for setting in args.settings:
        rows = run_setting(setting, args, overrides)
        print(table(rows), flush=True)
        all_rows += rows
        if args.json:
            with open(args.json, "a") as handle:
                handle.writelines(json.dumps(row, default=float) + "\n" for row in rows)
    variant = ", ".join(args.set) or "defaults"
    length = "the preset's optimizer steps" if args.default_length else f"{args.minutes:g} min"
    text = (
        f"### {args.label}: {args.preset} preset, {variant}; single shot, {length}, "
        f"evaluated on {args.n_eval} unseen FOVs\n\n{table(all_rows)}\n"
    )
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
