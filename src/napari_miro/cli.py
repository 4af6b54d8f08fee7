"""The ``napari-miro`` command line: the same pipeline as the napari widgets, headless.

    napari-miro info FILE [FILE ...] [--pixel-size NM]
    napari-miro train INPUT.csv [INPUT2.csv ...] --labels COLUMN [--clusters K ...] [--classes COLUMN]
                      [--fine COLUMN] [--preset compact|faithful] [--device auto|cpu|cuda|mps]
                      [--minutes M] [--steps N] [--delta NM] [--seed S] --out MODEL
    napari-miro cluster INPUT.csv --model MODEL [--eps E --min-samples M] --out OUT.csv [--stats STATS.csv]
    napari-miro batch INPUTS... --model MODEL --out DIR [--eps E --min-samples M] [--workers N | --scheduler ADDR]
                      [--group-by folder|REGEX] [--force]
    napari-miro demo [--sample rings] [--minutes 2] [--out demo_output]

Imports neither Qt nor napari. Every bad argument or file gives a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from napari_miro.io import LocalizationFileError, read_localizations, write_thunderstorm
from napari_miro.output_files import atomic_path, check_output

EXIT_BAD_INPUT = 2
SAMPLES = {
    "rings": "rings.csv",
    "nanoclusters": "nanoclusters_blinking.csv",
    "npc": "npc_two_scales.csv",
    "mixture": "spots_and_rings.csv",
}
#: samples simulated with multiple blinking (each molecule several localizations)
BLINKING_SAMPLES = {"nanoclusters"}


class UsageError(ValueError):
    """A problem with the command's arguments, reported in one line."""


def sample_files() -> list[Path]:
    """The bundled sample files (inside the installed package)."""
    folder = files("napari_miro") / "sample_data"
    return sorted(Path(str(item)) for item in folder.iterdir() if item.name.endswith(".csv"))


def sample_file(name: str) -> Path:
    """One bundled sample by its short name (rings, nanoclusters, npc, mixture)."""
    if name not in SAMPLES:
        raise UsageError(f"unknown sample {name!r}; choose from {', '.join(SAMPLES)}")
    return Path(str(files("napari_miro") / "sample_data" / SAMPLES[name]))


def sample_background(name: str) -> str:
    """The background model to train on a bundled sample with: "blinking" for the multiple-blinking ones."""
    return "blinking" if name in BLINKING_SAMPLES else "uniform"


def describe(df: pd.DataFrame, name: str) -> str:
    """One paragraph about a localization table: size, extent, columns, ground truth if any."""
    width = df["x"].max() - df["x"].min()
    height = df["y"].max() - df["y"].min()
    lines = [
        f"{name}: {len(df):,} localizations over {width / 1000:.2f} x {height / 1000:.2f} um",
        f"  columns: {', '.join(df.columns)}",
    ]
    if "gt_cluster" in df:
        clustered = df["gt_cluster"] > 0
        lines.append(
            f"  ground truth: {df.loc[clustered, 'gt_cluster'].nunique()} structures, "
            f"{clustered.mean():.0%} of localizations clustered"
        )
    return "\n".join(lines)


def _read(path: str | Path, pixel_size: float | None = None) -> pd.DataFrame:
    return read_localizations(
        path, pixel_size, on_warning=lambda message: print(f"warning: {message}", file=sys.stderr)
    )


def _info(args: argparse.Namespace) -> int:
    if not args.files and not args.bases:
        raise UsageError("give localization files to describe, or --bases")
    for path in args.files:
        print(describe(_read(path, args.pixel_size), Path(path).name))
    if args.bases:
        from napari_miro.base_models import base_model_names, model_card

        for name in base_model_names():
            card = model_card(name)
            scores = card["evaluation"]
            print(
                f"{name}: {card['description']}; {card['optimizer_steps']} steps in {card['training_seconds']:.0f} s "
                f"on {card['device']}; on unseen simulated fields JI_c / ARI_c {scores['MIRO + DBSCAN']['JI_c']:.2f} / "
                f"{scores['MIRO + DBSCAN']['ARI_c']:.2f} (DBSCAN alone "
                f"{scores['DBSCAN alone (tuned the same way)']['JI_c']:.2f} / "
                f"{scores['DBSCAN alone (tuned the same way)']['ARI_c']:.2f})"
            )
    return 0


class _TrainingBar:
    """A terminal progress bar for field preparation and training."""

    def __init__(self, quiet: bool = False, time_left=None) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.quiet = quiet
        self.bar = None
        self.phase = None
        self.time_left = time_left  #: a napari_miro.time_left.TimeLeft, shown as "left" beside the bar

    def __call__(self, info: dict) -> None:
        if self.quiet:
            return
        if info["phase"] != self.phase:
            if self.bar is not None:
                self.bar.close()
            self.phase = info["phase"]
            label = {"fields": "synthetic fields", "training": "training", "tuning": "tuning DBSCAN"}[self.phase]
            total = info["total"]  # None: a time budget, no step count to show
            self.bar = self._tqdm(total=total, desc=label, unit="step", leave=True, file=sys.stderr, mininterval=1.0)
        self.bar.n = info["step"]
        postfix = {}
        if "smoothed_loss" in info:
            postfix["loss"] = f"{info['smoothed_loss']:.4f}"
            if "validation_loss" in info:
                postfix["val"] = f"{info['validation_loss']:.4f}"
        if self.time_left is not None:
            from napari_miro.time_left import format_duration

            postfix["left"] = format_duration(self.time_left.update(info))
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def _stop_on_interrupt():
    """While training: the first Ctrl-C asks training to stop after the current step (the best model so far is
    kept and saved), a second one aborts. Yields the ``should_stop`` callable."""
    asked = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield asked.is_set
        return

    def on_interrupt(signum, frame) -> None:
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()
        print("\nstopping after this step; the best model so far is kept (Ctrl-C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield asked.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _fit_with_progress(clusterer, data, quiet: bool) -> None:
    """Fit with a progress bar and the time left on stderr (Ctrl-C stops early and keeps the best model so far);
    then say which background was decided, and why."""
    from napari_miro.time_left import TimeLeft

    bar = _TrainingBar(quiet, TimeLeft(clusterer.training_settings()))
    try:
        with _stop_on_interrupt() as should_stop:
            clusterer.fit(data, progress=bar, should_stop=should_stop)
    finally:
        bar.close()
    if clusterer.training_.stopped_early:
        print(f"stopped early: the best model of {len(clusterer.history_)} steps is kept", file=sys.stderr)
    if clusterer.background_decision_ is not None:
        print(clusterer.background_decision_.reason, file=sys.stderr)


def _clusterer(args: argparse.Namespace):
    """The estimator the training arguments describe."""
    from napari_miro.estimator import MIROClusterer
    from napari_miro.recipe import PRESETS

    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    recipe = PRESETS[args.preset]
    if getattr(args, "fine", None) and args.fine_step is not None:
        recipe = replace(recipe, fine_step=args.fine_step)
    try:
        clusterer = MIROClusterer(
            recipe=recipe,
            base_model=getattr(args, "base", None),
            background=getattr(args, "background", None),
            minutes=args.minutes,
            max_steps=args.max_steps,
            delta_nm=args.delta,
            device=args.device,
            random_state=args.seed,
            n_threads=args.threads,
        )
        clusterer.training_settings()  # a clear message for a bad value before any work
    except ValueError as error:
        raise UsageError(str(error)) from None
    return clusterer


def annotated_from_files(
    paths: Sequence[str],
    labels: str,
    clusters: Sequence[int] | None = None,
    classes: str | None = None,
    fine: str | None = None,
    pixel_size: float | None = None,
):
    """Annotated clusters from label columns of one or several files (files are laid side by side)."""
    from napari_miro.annotations import AnnotatedData, lay_side_by_side

    frames = []
    for path in paths:
        df = _read(path, pixel_size)
        for column in [labels, classes, fine]:
            if column and column not in df:
                raise UsageError(f"{Path(path).name} has no column {column!r} (it has {', '.join(df.columns)})")
        frames.append(df)
    positions, file_index, area = lay_side_by_side(frames)
    table = pd.concat(frames, ignore_index=True)
    label_values = pd.to_numeric(table[labels], errors="coerce").fillna(0).to_numpy(np.int64)
    # labels are per file: make them unique over files
    chosen = np.zeros(len(table), bool) if clusters else label_values > 0
    for cluster in clusters or []:
        chosen |= label_values == cluster
    if not chosen.any():
        wanted = f"the labels {list(clusters)}" if clusters else "a label > 0"
        raise UsageError(f"no localization carries {wanted} in column {labels!r}")
    unique_labels = np.where(chosen, file_index * (label_values.max() + 1) + label_values, 0)
    return AnnotatedData.from_labels(
        positions,
        unique_labels,
        classes=table[classes].to_numpy() if classes else None,
        fine=pd.to_numeric(table[fine], errors="coerce").fillna(0).to_numpy(np.int64) if fine else None,
        area_nm2=area,
    )


def _train(args: argparse.Namespace) -> int:
    from napari_miro.devices import resolve_device
    from napari_miro.tuning import tuning_note

    resolve_device(args.device)  # a clear message before any work when the device does not exist
    out = check_output(args.out, what="model file")  # before minutes of training, not after
    clusterer = _clusterer(args)
    data = annotated_from_files(args.inputs, args.labels, args.clusters, args.classes, args.fine, args.pixel_size)
    settings = clusterer.training_settings()
    print(
        f"training from {len(data.clusters)} annotated cluster(s), {sum(map(len, data.clusters))} localizations, "
        f"preset {settings.preset}",
        file=sys.stderr,
    )
    _fit_with_progress(clusterer, data, args.quiet)
    trained, result = clusterer.model_, clusterer.training_
    trained.save(out)
    summary = trained.settings
    print(
        f"saved {out}: delta {summary.delta_nm:g} nm, {result.summary()['optimizer_steps']} steps in "
        f"{result.seconds:.0f} s on {result.device}; suggested eps {summary.eps_nm:g} nm, min_samples "
        f"{summary.min_samples}"
    )
    if note := tuning_note(trained):
        print(note)
    return 0


def _load_model(path: str):
    from napari_miro.model_file import TrainedMIRO

    return TrainedMIRO.load(path)


def _cluster_parameters(args: argparse.Namespace):
    from napari_miro.batch import ClusterParameters

    return ClusterParameters(
        args.eps,
        args.min_samples,
        args.fine_eps,
        args.fine_min_samples,
        args.pixel_size,
        args.device,
        args.passes,
        args.method,
        args.min_cluster_size,
        getattr(args, "ripley", False),  # batch only
        getattr(args, "inside_roi", False),
    )


def describe_parameters(summary: dict) -> str:
    """The clustering method and its parameters, in words (from a cluster_file summary)."""
    if summary.get("method") == "hdbscan":
        text = f"MIRO + HDBSCAN, min_cluster_size {summary['min_cluster_size']}"
        given = summary["min_samples"] == summary["min_samples"]  # NaN when HDBSCAN used its default
        return text + (f", min_samples {summary['min_samples']}" if given else "")
    return f"MIRO + DBSCAN, eps {summary['eps_nm']:g} nm, min_samples {summary['min_samples']}"


def _cluster(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_miro.batch import cluster_file
    from napari_miro.regions import read_regions

    check_output(args.out, what="clustered table")  # before the clustering, not after
    if args.stats:
        check_output(args.stats, what="statistics table")
    if args.summary:
        check_output(args.summary, what="summary table")
    if args.inside_roi and not args.roi:
        raise UsageError("--inside-roi needs --roi (the ROIs to cluster inside)")
    regions = read_regions(args.roi) if args.roi else None
    trained = _load_model(args.model)
    bar = tqdm(desc="tiles", unit="tile", file=sys.stderr, disable=args.quiet, mininterval=1.0)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        summary = cluster_file(
            args.input,
            trained,
            _cluster_parameters(args),
            args.out,
            args.stats,
            progress,
            on_warning=lambda message: print(f"warning: {message}", file=sys.stderr),
            n_threads=args.threads,
            regions=regions,
            inside_regions=args.inside_roi,
            summary_path=args.summary,
        )
    finally:
        bar.close()
    print(
        f"{args.out}: {summary['n_clusters']} clusters, {summary['fraction_clustered']:.0%} of "
        f"{summary['n_localizations']:,} localizations clustered ({describe_parameters(summary)})"
    )
    return 0


def _ripley(args: argparse.Namespace) -> int:
    from napari_miro.plotting import ripley_figure
    from napari_miro.regions import Region, read_regions
    from napari_miro.ripley_functions import ripley, ripley_table, scale_marks

    check_output(args.out, ".csv", "Ripley table")
    if args.png:
        check_output(args.png, ".png", "Ripley figure")
    df = _read(args.input, args.pixel_size)
    xy = df[["x", "y"]].to_numpy()
    regions = read_regions(args.roi) if args.roi else [Region.bounding_box(xy, Path(args.input).stem)]
    radii = None
    if args.max_radius is not None:
        radii = np.linspace(0.0, args.max_radius, args.radii + 1)[1:]
    marks = scale_marks(_load_model(args.model).settings) if args.model else {}
    results = []
    for region in regions:
        result = ripley(xy, radii, region, args.correction, args.simulations, args.max_points, args.seed)
        results.append((region, result))
        print(f"{region.name}: {result.n_total:,} localizations, {region.area / 1e6:.3g} um^2, {result.describe()}")
    with atomic_path(args.out) as partial:
        ripley_table(results).to_csv(partial, index=False)
    if args.png:
        with atomic_path(args.png) as partial:
            ripley_figure(results, partial, marks=marks)
    return 0


EXIT_SOME_FAILED = 1


def _batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_miro.batch import BATCH_FIGURE, BATCH_REPORT, BATCH_STATISTICS, FAILED, run_batch

    bar = None

    def started(info: dict) -> None:
        nonlocal bar
        where = f"the scheduler at {args.scheduler}" if args.scheduler else "a local Dask cluster"
        print(f"{info['files']} file(s) on {where} with {info['workers']} worker(s)", file=sys.stderr)
        if info["dashboard"]:
            print(f"Dask dashboard: {info['dashboard']}", file=sys.stderr)
        bar = tqdm(total=info["files"], desc="files", unit="file", file=sys.stderr, disable=args.quiet)

    def progress(done: int, total: int, outcome: dict) -> None:
        if outcome["status"] == FAILED:
            name, message = Path(outcome["file"]).name, outcome["error"]
            tqdm.write(f"failed: {message if message.startswith(name) else f'{name}: {message}'}", file=sys.stderr)
        if bar is not None:
            bar.update(1)

    try:
        result = run_batch(
            args.inputs,
            args.model,
            args.out,
            _cluster_parameters(args),
            workers=args.workers,
            scheduler=args.scheduler,
            group_by=args.group_by,
            force=args.force,
            progress=progress,
            on_start=started,
        )
    finally:
        if bar is not None:
            bar.close()
    print(result.summary())
    out = Path(args.out)
    figure = f", {BATCH_FIGURE}" if result.figure else ""
    print(f"wrote {out / BATCH_STATISTICS}, {BATCH_REPORT}{figure} and one folder of results per file")
    if result.n_failed:
        print(f"napari-miro: {result.n_failed} file(s) failed; see {out / BATCH_REPORT}", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _demo(args: argparse.Namespace) -> int:
    from napari_miro import metrics
    from napari_miro.annotations import AnnotatedData
    from napari_miro.estimator import MIROClusterer
    from napari_miro.inference import dbscan_labels
    from napari_miro.plotting import demo_figure
    from napari_miro.stats import cluster_statistics
    from napari_miro.tuning import grid_search_dbscan, tuning_eps_grid, tuning_samples_grid

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = sample_file(args.sample)
    df = _read(path)
    print(describe(df, path.name))
    truth = df["gt_cluster"].to_numpy()
    positions = df[["x", "y"]].to_numpy()
    # single shot: the annotated cluster is the ground-truth structure closest to the middle of the field
    centres = df[truth > 0].groupby("gt_cluster")[["x", "y"]].mean()
    middle = positions.mean(axis=0)
    chosen = int(((centres - middle) ** 2).sum(axis=1).idxmin())
    data = AnnotatedData.from_labels(positions, truth, which=[chosen])
    clusterer = MIROClusterer("compact", minutes=args.minutes, device=args.device, random_state=args.seed)
    print(
        f"single-shot training from ground-truth structure {chosen} ({len(data.clusters[0])} localizations), "
        f"compact preset, {args.minutes:g} min",
        file=sys.stderr,
    )
    start = time.perf_counter()
    _fit_with_progress(clusterer, data, args.quiet)
    trained, result = clusterer.model_, clusterer.training_
    background = clusterer.background_
    training_seconds = time.perf_counter() - start
    trained.save(out / "model.safetensors")
    clustered, statistics, miro = clusterer.cluster_table(df)
    baseline = clusterer.cluster_alone(positions)
    # the fairest baseline: DBSCAN with the parameters that score best against the sample's own ground truth
    best_eps, best_samples, _ = grid_search_dbscan(
        [positions],
        [truth],
        tuning_eps_grid([positions]),
        tuning_samples_grid(int(np.bincount(truth[truth > 0]).max(initial=3))),
        objective="ari+ari_c+ji_c",
    )
    best_baseline = dbscan_labels(positions, best_eps, best_samples)
    baseline_statistics = cluster_statistics(positions, best_baseline)
    write_thunderstorm(clustered, out / "clustered.csv")
    statistics.to_csv(out / "statistics_miro.csv", index=False)
    baseline_statistics.to_csv(out / "statistics_dbscan.csv", index=False)
    rows = []
    for name, labels, eps, samples in (
        ("MIRO + DBSCAN", miro.labels, miro.eps_nm, miro.min_samples),
        ("DBSCAN alone", baseline, trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples),
        ("DBSCAN alone, best on the ground truth", best_baseline, best_eps, best_samples),
    ):
        rows.append(
            {
                "method": name,
                "eps_nm": eps,
                "min_samples": samples,
                "clusters": int(labels.max()),
                "ARI": metrics.ari(truth, labels),
                "ARI_c": metrics.ari_c(truth, labels),
                "JI_c": metrics.jaccard_clusters(positions, truth, labels),
            }
        )
    table = pd.DataFrame(rows)
    compression = metrics.compression_index(positions, miro.collapsed.positions - positions, truth)
    figure = out / "demo.png"
    demo_figure(positions, truth, miro, best_baseline, statistics, baseline_statistics, figure,
                annotated=data.clusters[0], baseline_title=", best case")  # fmt: skip
    report = {
        "sample": path.name,
        "annotated_cluster": chosen,
        "true_clusters": int(truth.max()),
        "background": background,
        "training_seconds": round(training_seconds, 1),
        "training": result.summary(),
        "compression_index": compression,
        "results": rows,
    }
    (out / "demo.json").write_text(json.dumps(report, indent=2, default=float))
    print(
        f"\naccuracy against the sample's ground truth ({int(truth.max())} structures); compression index "
        f"{compression:.2f}; training {training_seconds:.0f} s"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nwrote {out / 'clustered.csv'}, statistics_*.csv, model.safetensors, {figure.name}, demo.json")
    return 0


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="compact", help="compact (CPU-friendly, default) or faithful (paper)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    parser.add_argument("--minutes", type=float, default=None, help="stop training after this wall time")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="optimizer steps at most (default: the preset's without --minutes)"
    )
    parser.add_argument("--delta", type=float, default=None, help="graph edge threshold in nm (default: suggested)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random step")
    parser.add_argument(
        "--base",
        default=None,
        help="start from a shipped pre-trained base model and fine-tune: auto (chosen from the annotated clusters' "
        "shape), none (from scratch) or a name (see 'napari-miro info --bases'); default: the preset's",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_threads_argument(parser)


def _add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="CPU threads (default: the cores other processes leave free, followed as they change)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


#: inference.CLUSTERING_METHODS, spelled out so that ``--help`` does not import torch (a test keeps them equal)
CLI_METHODS = ("dbscan", "hdbscan")


def _add_clustering_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        choices=CLI_METHODS,
        default="dbscan",
        help="what clusters the collapsed localizations (default dbscan; hdbscan finds clusters of varying "
        "density with one parameter, slower on large files)",
    )
    parser.add_argument("--eps", type=float, default=None, help="DBSCAN eps in nm (default: the model's)")
    parser.add_argument(
        "--min-samples",
        type=int,
        default=None,
        help="DBSCAN min_samples (default: the model's); with hdbscan, its min_samples (default: min_cluster_size)",
    )
    parser.add_argument(
        "--min-cluster-size", type=int, default=None, help="HDBSCAN's smallest cluster (default: the model's)"
    )
    parser.add_argument("--fine-eps", type=float, default=None, help="fine-scale DBSCAN eps in nm (multiscale)")
    parser.add_argument("--fine-min-samples", type=int, default=None, help="fine-scale DBSCAN min_samples")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    parser.add_argument("--pixel-size", type=float, default=None, help="camera pixel size in nm (files in px)")
    parser.add_argument(
        "--passes",
        type=int,
        default=None,
        help="applications of the network (default: the model's, which its eps was tuned for; 1 is faster)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-miro", description="MIRO clustering of SMLM localizations.")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="describe localization files")
    info.add_argument("files", nargs="*", help="ThunderSTORM or x/y CSV files")
    info.add_argument("--bases", action="store_true", help="list the shipped pre-trained base models")
    info.add_argument("--pixel-size", type=float, default=None, help="camera pixel size in nm (files in px)")
    info.set_defaults(run=_info)

    train = commands.add_parser("train", help="train MIRO from annotated clusters (a label column)")
    train.add_argument("inputs", nargs="+", help="localization files with a label column")
    train.add_argument("--labels", required=True, help="column with cluster labels (0 = not annotated)")
    train.add_argument("--clusters", type=int, nargs="+", default=None, help="train from these labels only")
    train.add_argument("--classes", default=None, help="column with a shape class per localization")
    train.add_argument("--fine", default=None, help="column with fine-scale labels (multiscale training)")
    train.add_argument("--fine-step", type=int, default=None, help="last recurrent step trained on the fine scale")
    train.add_argument(
        "--background",
        choices=["auto", "uniform", "blinking"],
        default=None,
        help="background model of the synthetic fields: auto (default) decides from the data whether molecules "
        "blink several times (raw dSTORM / PALM / PAINT tables) or give one localization each",
    )
    train.add_argument("--pixel-size", type=float, default=None, help="camera pixel size in nm (files in px)")
    train.add_argument("--out", required=True, help="model file to write (.safetensors)")
    _add_training_arguments(train)
    train.set_defaults(run=_train)

    cluster = commands.add_parser("cluster", help="MIRO + DBSCAN on a localization file")
    cluster.add_argument("input", help="localization file")
    cluster.add_argument("--model", required=True, help="model file written by 'napari-miro train'")
    _add_clustering_arguments(cluster)
    _add_threads_argument(cluster)
    cluster.add_argument("--out", required=True, help="clustered table to write (CSV)")
    cluster.add_argument("--stats", default=None, help="per-cluster statistics to write (CSV)")
    cluster.add_argument(
        "--summary", default=None, help="per-ROI summary to write (CSV; the whole field as one region without --roi)"
    )
    cluster.add_argument("--roi", default=None, help="ROIs (cells, areas): a napari Shapes CSV, summarised one by one")
    cluster.add_argument("--inside-roi", action="store_true", help="cluster only the localizations inside the ROIs")
    cluster.add_argument("--quiet", action="store_true", help="no progress bar")
    cluster.set_defaults(run=_cluster)

    batch = commands.add_parser(
        "batch",
        help="MIRO + DBSCAN on many files with Dask (locally or on a cluster)",
        description="Cluster every input file with one model, each file a Dask task. Exit code 0: every file "
        "done or skipped; 1: some files failed (listed in batch_report.csv); 2: bad arguments.",
    )
    batch.add_argument("inputs", nargs="+", help="files, folders (searched for .csv/.txt) or glob patterns")
    batch.add_argument("--model", required=True, help="model file written by 'napari-miro train'")
    batch.add_argument("--out", required=True, help="output folder")
    _add_clustering_arguments(batch)
    where = batch.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    where.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:8786)")
    batch.add_argument(
        "--group-by",
        default=None,
        help="group (condition) of each file: 'folder' (its parent folder) or a regular expression on its path "
        "(the first group, or the whole match)",
    )
    batch.add_argument("--force", action="store_true", help="redo files whose results exist for this model")
    batch.add_argument(
        "--ripley", action="store_true", help="also Ripley's functions of each file (or ROI): batch_ripley.csv"
    )
    batch.add_argument(
        "--inside-roi", action="store_true", help="cluster only inside each file's ROIs (<name>_rois.csv beside it)"
    )
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.set_defaults(run=_batch)

    ripley_parser = commands.add_parser(
        "ripley",
        help="Ripley's K, L and H with a random (CSR) envelope: is there clustering, at what scale?",
        description="Ripley's functions of a localization file (or of each ROI of a napari Shapes CSV), "
        "edge-corrected, with the envelope of complete spatial randomness; writes a CSV and optionally a PNG.",
    )
    ripley_parser.add_argument("input", help="localization file")
    ripley_parser.add_argument("--out", required=True, help="table to write (CSV): radius_nm, K, L, H, envelope")
    ripley_parser.add_argument("--png", default=None, help="figure of H(r) with its envelope to write (PNG)")
    ripley_parser.add_argument("--roi", default=None, help="ROIs: a napari Shapes CSV (default: the whole field)")
    ripley_parser.add_argument("--max-radius", type=float, default=None, help="largest radius in nm")
    ripley_parser.add_argument("--radii", type=_positive_int, default=50, help="radii up to --max-radius")
    ripley_parser.add_argument("--correction", choices=["auto", "translation", "border", "none"], default="auto",
                               help="edge correction (auto: translation for the field, border for ROIs)")  # fmt: skip
    ripley_parser.add_argument("--simulations", type=int, default=19, help="random patterns of the envelope")
    ripley_parser.add_argument("--max-points", type=_positive_int, default=20_000, help="thin larger sets")
    ripley_parser.add_argument("--seed", type=int, default=0, help="seed of the thinning and the simulations")
    ripley_parser.add_argument("--model", default=None, help="mark this model's delta and DBSCAN eps")
    ripley_parser.add_argument("--pixel-size", type=float, default=None, help="camera pixel size in nm (files in px)")
    ripley_parser.set_defaults(run=_ripley)

    demo = commands.add_parser("demo", help="train single-shot on a bundled sample, cluster it, report accuracy")
    demo.add_argument("--sample", default="rings", help=f"one of {', '.join(SAMPLES)} (default rings)")
    demo.add_argument("--out", default="demo_output", help="folder for the demo's results")
    demo.add_argument("--minutes", type=float, default=2.0, help="training wall time (default 2)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    demo.add_argument("--seed", type=int, default=0, help="seed of every random step")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-miro`` command."""
    args = build_parser().parse_args(argv)
    from napari_miro.devices import DeviceOutOfMemory
    from napari_miro.model_file import ModelFileError
    from napari_miro.training import TrainingCancelled

    try:
        return int(args.run(args))
    except (LocalizationFileError, ModelFileError, UsageError, ValueError, OSError) as error:
        print(f"napari-miro: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (DeviceOutOfMemory, TrainingCancelled) as error:
        print(f"napari-miro: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("napari-miro: stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
