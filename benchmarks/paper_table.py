"""MIRO + DBSCAN against DBSCAN alone on the paper's benchmark (Nieves et al. 2023) and on simulated shapes.

For each setting: few-shot training on the clusters of fields 1-3 and single-shot training on ONE cluster
(cluster 1 of field 1; one cluster of each shape for the two-shape mixtures), both with the chosen preset for
``--minutes``; evaluation on the other fields; DBSCAN alone with the paper's parameters (benchmark settings)
and DBSCAN alone tuned on the training data, in the same run. Every parameter (delta, eps, min_samples) is
chosen on training data only: delta from the annotated clusters, eps and min_samples on synthetic fields made
from them (the preset's tuning objective).

Settings: the 18 benchmark settings (../shared/data/nieves2023, ground truth and blinking, scenarios 2-10,
fov-01..25 here) and, from the simulators (50 fields each), C-shapes, rings, the three two-shape mixtures of
the paper's Fig. 3 (with shape classification: confusion matrix and F1 over matched clusters), NPC-like
pores at two scales (pores and corners), and pairs of Gaussian clusters (sigma 25 nm) 1-4 sigma apart (JI_c
against distance, the paper's Fig. 4a).

Each setting's result is cached in ``.bench_cache/paper_table/`` (keyed by its parameters and code), so the table can
run in parts and be assembled; ``--assemble`` only writes docs/benchmark.md (and its box plots) from the cache.

    python benchmarks/paper_table.py [--quick] [--settings ground-truth/scenario-6 ...] [--minutes 1]
                                     [--device auto] [--assemble]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from napari_miro import metrics, simulate
from napari_miro.annotations import AnnotatedData, lay_side_by_side
from napari_miro.base_models import base_model_names
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import cluster_points, dbscan_labels
from napari_miro.io import read_localizations
from napari_miro.recipe import PRESETS
from napari_miro.tuning import grid_search_dbscan

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nieves2023"
CACHE = ROOT / ".bench_cache" / "paper_table"
BASE_MODELS = Path(str(files("napari_miro") / "base_models_data"))
#: Headings of docs/benchmark.md's hand-written sections (the reading of the table, the real data of
#: benchmarks/real_data.py): --assemble keeps everything from the first of them on, as it is.
KEPT_SECTIONS = ("## What the numbers say", "## Real data")
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
#: The reference notebook's few-shot MIRO on ground-truth S6 (miro-reference.md), reported beside Table 1.
PAPER_MIRO["ground-truth/scenario-6"] = {"JI_c": 0.95, "ARI_c": 0.86, "IoU": 0.67, "RMSRE_N": 0.22}

#: Centre distances (in sigma) of the cluster pairs; field k has distance PAIR_DISTANCES[(k - 1) % 7].
PAIR_DISTANCES = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)


def _pairs_field(seed: int) -> pd.DataFrame:
    distance = PAIR_DISTANCES[(seed - 1) % len(PAIR_DISTANCES)]
    return simulate.cluster_pair(distance, seed=seed).assign(distance=distance)


#: Simulated settings: name -> generator of field number k (seeded by k), columns x, y, cluster, class, subcluster.
SIMULATED: dict[str, Callable[[int], pd.DataFrame]] = {
    "simulated/c-shapes": lambda seed: simulate.c_shapes(seed=seed),
    "simulated/rings": lambda seed: simulate.rings(seed=seed),
    "simulated/spots+ellipses": lambda seed: simulate.shape_mixture(("spot", "ellipse"), seed=seed),
    "simulated/spots+rings": lambda seed: simulate.shape_mixture(("spot", "ring"), seed=seed),
    "simulated/c-shapes+rings": lambda seed: simulate.shape_mixture(("c-shape", "ring"), seed=seed),
    "simulated/npc": lambda seed: simulate.npc_like(seed=seed),
    "simulated/pairs": _pairs_field,
}
CLASSIFIED = {"simulated/spots+ellipses", "simulated/spots+rings", "simulated/c-shapes+rings"}
MULTISCALE = {"simulated/npc"}
QUICK = ["ground-truth/scenario-6", "blinking/scenario-8", "simulated/rings"]
ALL_SETTINGS = [*PAPER_DBSCAN, *SIMULATED]


def fields_of(setting: str, count: int) -> list[pd.DataFrame]:
    """The setting's fields 1..count with columns x, y, truth (plus class, fine and distance where the setting
    has them): benchmark files (as many as exist), or simulated fields (field k seeded by k)."""
    if setting in SIMULATED:
        return [
            SIMULATED[setting](index).rename(columns={"cluster": "truth", "subcluster": "fine"})
            for index in range(1, count + 1)
        ]
    frames = []
    for index in range(1, count + 1):
        path = DATA / setting / f"fov-{index:02d}.csv"
        if path.exists():
            frames.append(read_localizations(path).rename(columns={"index": "truth"}))
    return frames


def annotations(frames: list[pd.DataFrame], single: bool, setting: str) -> AnnotatedData:
    """Few-shot: every cluster of the training fields (laid side by side); single-shot: cluster 1 of the first
    field, or for a two-shape mixture its first cluster of each shape. Shape classes and corner labels go with
    the clusters in the settings that have them."""
    classified, multiscale = setting in CLASSIFIED, setting in MULTISCALE
    if single:
        first = frames[0]
        truth = first["truth"].to_numpy()
        which = [1]
        if classified:
            clustered = first[truth > 0]
            which = sorted(int(clustered.loc[clustered["class"] == name, "truth"].min()) for name in
                           sorted(clustered["class"].unique()))  # fmt: skip
        return AnnotatedData.from_labels(
            first[["x", "y"]].to_numpy(),
            truth,
            which=which,
            classes=first["class"].to_numpy() if classified else None,
            fine=first["fine"].to_numpy() if multiscale else None,
        )
    positions, field, area = lay_side_by_side(frames)
    joined = pd.concat(frames, ignore_index=True)
    truth = joined["truth"].to_numpy()
    labels = np.where(truth > 0, truth + field * 100_000, 0)  # labels are per field: make them unique
    ids, counts = np.unique(labels, return_counts=True)
    labels[np.isin(labels, ids[counts < 3])] = 0  # 1-2 localizations (sparse blinking S4): nothing to lasso
    return AnnotatedData.from_labels(
        positions,
        labels,
        classes=joined["class"].to_numpy() if classified else None,
        fine=joined["fine"].to_numpy() if multiscale else None,
        area_nm2=area,
    )


def tuned_corner_dbscan(frames: list[pd.DataFrame]) -> tuple[float, int]:
    """DBSCAN alone for NPC corners, eps / min_samples tuned on the training fields' true corners (more than a
    single-shot user marks: a baseline that errs in DBSCAN's favour)."""
    eps_grid = np.unique(np.round(np.geomspace(5.0, 80.0, 20), 2))
    eps, samples, _ = grid_search_dbscan(
        [frame[["x", "y"]].to_numpy() for frame in frames],
        [frame["fine"].to_numpy() for frame in frames],
        eps_grid,
        np.arange(2, 11),
        "ari+ari_c+ji_c",
    )
    return eps, samples


def evaluate_setting(setting: str, mode: str, minutes: float, n_eval: int, device: str, preset: str) -> dict:
    """Train (few- or single-shot) and evaluate one setting; returns per-field metrics of every method (plus
    matched shape classes for mixtures, corner metrics for NPCs, the pair distance for pairs)."""
    started = time.perf_counter()
    frames = fields_of(setting, 3 + n_eval)
    train_frames, test_frames = frames[:3], frames[3:]
    # the background decided from the training data ("auto"), as a user runs it
    settings = replace(PRESETS[preset], max_minutes=minutes, optimizer_steps=None)
    clusterer = MIROClusterer(recipe=settings, device=device).fit(annotations(train_frames, mode == "single", setting))
    trained, result = clusterer.model_, clusterer.training_
    training_seconds = time.perf_counter() - started
    corner_dbscan = tuned_corner_dbscan(train_frames) if setting in MULTISCALE else None
    names = trained.settings.class_names
    rows, true_classes, predicted_classes = [], [], []
    for number, frame in enumerate(test_frames, start=4):
        xy, truth = frame[["x", "y"]].to_numpy(), frame["truth"].to_numpy()
        clustered = cluster_points(trained, xy)
        methods = {
            "MIRO + DBSCAN": (truth, clustered.labels),
            "DBSCAN tuned": (
                truth,
                dbscan_labels(xy, trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples),
            ),
        }
        if setting in PAPER_DBSCAN:
            methods["DBSCAN (paper's parameters)"] = (truth, dbscan_labels(xy, *PAPER_DBSCAN[setting]))
        if corner_dbscan is not None and clustered.fine_labels is not None:
            fine = frame["fine"].to_numpy()
            methods["MIRO + DBSCAN, corners"] = (fine, clustered.fine_labels)
            methods["DBSCAN tuned, corners"] = (fine, dbscan_labels(xy, *corner_dbscan))
        extra = {"distance": float(frame["distance"].iloc[0])} if "distance" in frame else {}
        for method, (reference, labels) in methods.items():
            rows.append({"fov": number, "method": method, **extra, **metrics.evaluate(xy, reference, labels)})
        rows[-len(methods)]["compression"] = metrics.compression_index(xy, clustered.collapsed.positions - xy, truth)
        if setting in CLASSIFIED and names:
            found = {label: names[class_id] for label, class_id in clustered.cluster_class.items()}
            true_names, pred_names = metrics.matched_classes(xy, truth, frame["class"].to_numpy(), clustered.labels,
                                                             found)  # fmt: skip
            true_classes += true_names
            predicted_classes += pred_names
    return {
        "setting": setting,
        "mode": mode,
        "preset": preset,
        "minutes": minutes,
        "device": result.device,
        "date": date.today().isoformat(),
        "training_seconds": round(training_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "optimizer_steps": result.summary()["optimizer_steps"],
        "base_model": trained.settings.training.get("base_model"),
        "delta_nm": trained.settings.delta_nm,
        "eps_nm": trained.settings.eps_nm,
        "min_samples": trained.settings.min_samples,
        "dbscan_eps_nm": trained.settings.dbscan_eps_nm,
        "dbscan_min_samples": trained.settings.dbscan_min_samples,
        "corner_dbscan": corner_dbscan,
        "classes": {"true": true_classes, "predicted": predicted_classes},
        "rows": rows,
    }


@functools.cache
def base_models_digest() -> str:
    """A digest of the shipped base models (weights and cards): a new or re-made base changes every cache key."""
    digest = hashlib.sha1()
    for name in base_model_names():
        for suffix in (".safetensors", ".json"):
            digest.update((BASE_MODELS / f"{name}{suffix}").read_bytes())
    return digest.hexdigest()[:10]


@functools.cache
def package_digest() -> str:
    """A digest of the installed napari_miro's core code (its modules outside the widgets): a change to how fields are
    simulated, densities estimated or DBSCAN tuned changes every cache key, as a change of the recipe does."""
    import napari_miro

    digest = hashlib.sha1()
    package = Path(napari_miro.__file__).parent
    for path in sorted(package.rglob("*.py")):
        if "_napari" not in path.relative_to(package).parts:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def cache_path(setting: str, mode: str, minutes: float, n_eval: int, preset: str) -> Path:
    """Where one (setting, mode)'s result is cached: keyed by its parameters, the preset's training settings, the
    base models and the package's code, so that no change is ever served from the cache of the old code."""
    recipe = PRESETS[preset].to_dict()
    bases, code = base_models_digest(), package_digest()
    key = [setting, mode, minutes, n_eval, preset, recipe, bases, code]
    key = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:10]
    return CACHE / f"{setting.replace('/', '_')}_{mode}_{key}.json"


def _scores(result: dict | None, method: str) -> tuple[float, float]:
    """Mean JI_c and ARI_c of one method over a result's evaluation fields (NaN when there is no result)."""
    if result is None:
        return float("nan"), float("nan")
    table = pd.DataFrame(result["rows"])
    means = table.loc[table["method"] == method, ["JI_c", "ARI_c"]].mean()
    return float(means["JI_c"]), float(means["ARI_c"])


def _text(values: tuple[float, float]) -> str:
    return "-" if np.isnan(values[0]) else f"{values[0]:.2f} / {values[1]:.2f}"


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def _beats(miro: tuple[float, float], other: tuple[float, float]) -> bool | None:
    if np.isnan(miro[0]) or np.isnan(other[0]):
        return None
    return miro[0] > other[0] and miro[1] > other[1]


def _close(miro: tuple[float, float], goal: tuple[float, float], tolerance: float) -> bool | None:
    if np.isnan(miro[0]) or np.isnan(goal[0]):
        return None
    return miro[0] >= goal[0] - tolerance and miro[1] >= goal[1] - tolerance


def targets_table(results: list[dict]) -> list[str]:
    """One line per setting: JI_c / ARI_c of MIRO (few, single), DBSCAN tuned, DBSCAN with the paper's parameters
    and the paper's MIRO, and whether the issue's targets are met."""
    by_key = {(r["setting"], r["mode"]): r for r in results}
    lines = [
        "| setting | MIRO few-shot | MIRO single-shot | DBSCAN tuned (on the few-shot fields) | DBSCAN (paper's) "
        "| paper's MIRO "
        "| beats DBSCAN tuned (few / single) | beats DBSCAN paper's (few / single) | single within 0.05 of few "
        "| within 0.03 of the paper (few / single) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in dict.fromkeys(r["setting"] for r in results):
        few, single = by_key.get((setting, "few")), by_key.get((setting, "single"))
        miro_few, miro_single = _scores(few, "MIRO + DBSCAN"), _scores(single, "MIRO + DBSCAN")
        tuned_few, tuned_single = _scores(few, "DBSCAN tuned"), _scores(single, "DBSCAN tuned")
        tuned = tuned_few if few is not None else tuned_single
        papers_dbscan = _scores(few or single, "DBSCAN (paper's parameters)")
        paper = PAPER_MIRO.get(setting, {})
        paper_pair = (paper.get("JI_c", float("nan")), paper.get("ARI_c", float("nan")))
        lines.append(
            f"| {setting} | {_text(miro_few)} | {_text(miro_single)} | {_text(tuned)} | {_text(papers_dbscan)} "
            f"| {_text(paper_pair)} "
            f"| {_mark(_beats(miro_few, tuned_few))} / {_mark(_beats(miro_single, tuned_single))} "
            f"| {_mark(_beats(miro_few, papers_dbscan))} / {_mark(_beats(miro_single, papers_dbscan))} "
            f"| {_mark(_close(miro_single, miro_few, 0.05))} "
            f"| {_mark(_close(miro_few, paper_pair, 0.03))} / {_mark(_close(miro_single, paper_pair, 0.03))} |"
        )
    return lines


def detail_table(result: dict) -> list[str]:
    """Mean ± sd of every metric per method for one setting and mode, with the run's settings."""
    table = pd.DataFrame(result["rows"])
    corner = result.get("corner_dbscan")
    lines = [
        f"### {result['setting']}, {result['mode']}-shot",
        "",
        f"{result['preset']} preset, base model {result.get('base_model') or 'none'}, "
        f"{result['optimizer_steps']} steps, {result['training_seconds']:.0f} s to train and tune on "
        f"{result['device']} ({result.get('total_seconds', result['training_seconds']):.0f} s with evaluation); "
        f"delta {result['delta_nm']:g} nm, MIRO eps {result['eps_nm']:g} nm / {result['min_samples']}, "
        f"tuned DBSCAN {result['dbscan_eps_nm']:g} nm / {result['dbscan_min_samples']}"
        + (f", corners DBSCAN {corner[0]:g} nm / {corner[1]}" if corner else "")
        + f"; {table['fov'].nunique()} fields; compression {table['compression'].mean():.2f}.",
        "",
        "| method | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for method, group in table.groupby("method", sort=False):
        cells = [f"{group[m].mean():.3f} ± {group[m].std():.3f}" for m in METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    paper = PAPER_MIRO.get(result["setting"])
    if paper:
        cells = [f"{paper[m]:.3f}" if m in paper else "-" for m in METRICS]
        lines.append("| paper's MIRO | " + " | ".join(cells) + " |")
    return [*lines, ""]


def classification_table(result: dict) -> list[str]:
    """Confusion matrix (rows: true shape, columns: predicted) and F1 per shape over the matched clusters."""
    from sklearn.metrics import f1_score

    true, predicted = result["classes"]["true"], result["classes"]["predicted"]
    if not true:
        return []
    shapes = sorted(set(true))
    columns = shapes + sorted(set(predicted) - set(shapes))
    counts = pd.crosstab(pd.Series(true, name="true"), pd.Series(predicted, name="predicted"))
    counts = counts.reindex(index=shapes, columns=columns, fill_value=0)
    f1 = f1_score(true, predicted, labels=shapes, average=None)
    lines = [
        f"Shape classes, {result['mode']}-shot ({len(true)} matched clusters): macro F1 {np.mean(f1):.3f}",
        "",
        "| true \\ predicted | " + " | ".join(columns) + " | F1 |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for shape, score in zip(shapes, f1, strict=True):
        lines.append(f"| {shape} | " + " | ".join(str(int(v)) for v in counts.loc[shape]) + f" | {score:.3f} |")
    return [*lines, ""]


def pairs_table(result: dict) -> list[str]:
    """JI_c (and ARI_c) against the centre distance of the cluster pairs, per method."""
    table = pd.DataFrame(result["rows"])
    if "distance" not in table:
        return []
    summary = table.groupby(["method", "distance"], sort=False)[["JI_c", "ARI_c"]].mean().reset_index()
    distances = sorted(summary["distance"].unique())
    lines = [
        f"JI_c / ARI_c against the centre distance (sigma 25 nm), {result['mode']}-shot:",
        "",
        "| method | " + " | ".join(f"{d:g} sigma" for d in distances) + " |",
        "|---|" + "---|" * len(distances),
    ]
    for method, group in summary.groupby("method", sort=False):
        values = group.set_index("distance")
        lines.append(
            f"| {method} | "
            + " | ".join(f"{values.loc[d, 'JI_c']:.2f} / {values.loc[d, 'ARI_c']:.2f}" for d in distances)
            + " |"
        )
    return [*lines, ""]


def box_plots(results: list[dict], out: Path) -> None:
    """The paper's box plots: JI_c and ARI_c per setting, MIRO few- and single-shot beside DBSCAN alone."""
    from matplotlib.figure import Figure

    groups = {
        "ground truth": [s for s in ALL_SETTINGS if s.startswith("ground-truth")],
        "blinking": [s for s in ALL_SETTINGS if s.startswith("blinking")],
        "simulated": [s for s in ALL_SETTINGS if s.startswith("simulated")],
    }
    series = [
        ("few", "MIRO + DBSCAN", "MIRO few-shot", "tab:red"),
        ("single", "MIRO + DBSCAN", "MIRO single-shot", "tab:orange"),
        ("few", "DBSCAN tuned", "DBSCAN tuned", "tab:blue"),
        ("few", "DBSCAN (paper's parameters)", "DBSCAN, paper's parameters", "tab:gray"),
    ]
    by_key = {(r["setting"], r["mode"]): pd.DataFrame(r["rows"]) for r in results}
    present = {name: [s for s in settings if any((s, m) in by_key for m in ("few", "single"))]
               for name, settings in groups.items()}  # fmt: skip
    present = {name: settings for name, settings in present.items() if settings}
    figure = Figure(figsize=(18, 4.2 * len(present)), layout="constrained")
    axes = figure.subplots(len(present), 2, squeeze=False)
    for row, (group, settings) in enumerate(present.items()):
        for column, metric in enumerate(["JI_c", "ARI_c"]):
            axis = axes[row, column]
            for offset, (mode, method, label, colour) in enumerate(series):
                data, positions = [], []
                for index, setting in enumerate(settings):
                    table = by_key.get((setting, mode))
                    if table is None and method.startswith("DBSCAN"):
                        table = by_key.get((setting, "single"))
                    if table is None:
                        continue
                    values = table.loc[table["method"] == method, metric].dropna().to_numpy()
                    if len(values):
                        data.append(values)
                        positions.append(index * 5 + offset)
                if data:
                    parts = axis.boxplot(data, positions=positions, widths=0.8, patch_artist=True,
                                         showfliers=False)  # fmt: skip
                    for box in parts["boxes"]:
                        box.set_facecolor(colour)
                    axis.plot([], [], "s", color=colour, label=label)
            axis.set_xticks([index * 5 + 1.5 for index in range(len(settings))])
            axis.set_xticklabels([s.split("/")[1].replace("scenario-", "S") for s in settings], fontsize=8)
            axis.set_ylim(0, 1.02)
            axis.set_title(f"{group}: {metric}")
            axis.grid(axis="y", alpha=0.3)
        axes[row, 0].legend(fontsize=8, loc="lower left")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)


def assemble(results: list[dict], out: Path, plot: Path | None = None) -> str:
    """docs/benchmark.md: the targets at a glance, then per setting mean ± sd per metric and method beside the
    paper's values, shape confusion matrices, JI_c against pair distance, and the box plots."""
    total = sum(r.get("total_seconds", r["training_seconds"]) for r in results)
    devices = sorted({r["device"] for r in results})
    minutes = sorted({r.get("minutes") for r in results if r.get("minutes") is not None})
    days = sorted({r["date"] for r in results if r.get("date")})
    lines = [
        "# MIRO + DBSCAN against DBSCAN alone",
        "",
        f"Made by `python benchmarks/paper_table.py` ({', '.join(days) or 'date not recorded'}; device "
        f"{', '.join(devices)}; {', '.join(f'{m:g}' for m in minutes)} min of training per setting and mode; "
        f"{len(results)} trainings, {total / 60:.1f} min in all, training, tuning and evaluation). Each value: mean "
        "over the evaluation fields (fields 4 on; fields 1-3 are the training fields).",
        "",
        "## Targets at a glance (JI_c / ARI_c)",
        "",
        *targets_table(results),
        "",
        "Why a target is missed, and what was checked: *What the numbers say*, at the end of this page.",
        "",
    ]
    if plot is not None:
        box_plots(results, plot)
        lines += [f"![box plots](images/{plot.name})", ""]
    lines += ["## Every setting", ""]
    for result in results:
        lines += detail_table(result)
        if result["setting"] in CLASSIFIED:
            lines += classification_table(result)
        if result["setting"] == "simulated/pairs":
            lines += pairs_table(result)
    text = "\n".join(lines)
    previous = out.read_text() if out.exists() else ""
    starts = [previous.find(heading) for heading in KEPT_SECTIONS if heading in previous]
    if starts:  # the hand-written sections stay
        text = text.rstrip() + "\n\n" + previous[min(starts) :]
    out.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=None, choices=ALL_SETTINGS, metavar="SETTING")
    parser.add_argument("--modes", nargs="+", default=["few", "single"], choices=["few", "single"])
    parser.add_argument("--minutes", type=float, default=1.0, help="training time per setting and mode")
    parser.add_argument("--fovs", type=int, default=47, help="evaluation fields per setting (benchmark: up to 22)")
    parser.add_argument("--preset", default="compact")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)}; 1 min, 5 fields, single-shot")
    parser.add_argument("--assemble", action="store_true", help="only write docs/benchmark.md from the cache")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmark.md")
    parser.add_argument("--plot", type=Path, default=None, help="box plots (default: docs/images/ beside --out)")
    args = parser.parse_args()
    if args.quick:
        args.settings, args.minutes, args.fovs, args.modes = args.settings or QUICK, 1.0, 5, ["single"]
    settings = args.settings or ALL_SETTINGS
    plot = args.plot or args.out.parent / "images" / f"{args.out.stem}_boxplots.png"
    CACHE.mkdir(parents=True, exist_ok=True)
    results, started = [], time.perf_counter()
    for setting in settings:
        for mode in args.modes:
            path = cache_path(setting, mode, args.minutes, args.fovs, args.preset)
            if path.exists():
                results.append(json.loads(path.read_text()))
                continue
            if args.assemble:
                continue
            print(f"{setting} {mode}-shot ... ({(time.perf_counter() - started) / 60:.1f} min so far)", flush=True)
            result = evaluate_setting(setting, mode, args.minutes, args.fovs, args.device, args.preset)
            path.write_text(json.dumps(result, default=float))
            results.append(result)
    print(assemble(results, args.out, plot))
    print(f"this run: {(time.perf_counter() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
