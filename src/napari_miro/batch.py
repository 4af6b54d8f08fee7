"""Batch clustering of many localization files with Dask distributed, on one machine or on a cluster.

Each file is one task: read, MIRO + DBSCAN, write the clustered table and its statistics (the same files as
``napari-miro cluster``) and a small record with the fingerprint of model and parameters, so that a rerun skips
finished files. A failing file never stops the batch: it is listed with its error in the batch report.

Pure core: imports neither Qt nor napari (Dask distributed is imported when a batch runs).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from napari_miro import __version__
from napari_miro.io import LocalizationFileError, read_localizations, write_thunderstorm
from napari_miro.output_files import atomic_path
from napari_miro.plotting import summary_figure
from napari_miro.stats import SUMMARY_STATISTICS

__all__ = [
    "BatchResult",
    "ClusterParameters",
    "OutputPaths",
    "cluster_file",
    "find_inputs",
    "group_of",
    "roi_file",
    "run_batch",
    "run_fingerprint",
]

#: File name endings the batch picks up inside folders (those napari-miro's reader opens).
INPUT_SUFFIXES = (".csv", ".txt")
#: Names of the batch-wide outputs inside the output folder.
BATCH_STATISTICS = "batch_statistics.csv"
BATCH_REGIONS = "batch_regions.csv"
BATCH_RIPLEY = "batch_ripley.csv"
#: A file ending so beside an input holds its ROIs (a napari Shapes CSV): summarised one by one; not an input.
ROI_SUFFIX = "_rois.csv"
BATCH_REPORT = "batch_report.csv"
BATCH_FIGURE = "batch_summary.png"
#: Statuses of a file in the batch report.
DONE, SKIPPED, FAILED, NOT_RUN = "done", "skipped", "failed", "not run"


@dataclass(frozen=True)
class ClusterParameters:
    """What, besides the model, decides a file's clustering (None: the model's own value)."""

    eps_nm: float | None = None
    min_samples: int | None = None
    fine_eps_nm: float | None = None
    fine_min_samples: int | None = None
    pixel_size_nm: float | None = None
    device: str = "cpu"
    passes: int | None = None  #: applications of the network (None: the model's, which eps was tuned for)
    method: str = "dbscan"  #: what clusters the collapsed points: "dbscan" or "hdbscan"
    min_cluster_size: int | None = None  #: HDBSCAN's (None: the model's tuned one)
    ripley: bool = False  #: also Ripley's functions of each region (``<name>_ripley.csv``)
    inside_rois: bool = False  #: cluster only inside the file's ROIs (a file without an ROI file fails)


def run_fingerprint(model_bytes: bytes, parameters: ClusterParameters) -> str:
    """A hash of the model file, the parameters and the napari-miro version: equal fingerprints, equal results."""
    digest = hashlib.sha256(model_bytes)
    described = {**asdict(parameters), "napari_miro": __version__}
    described.pop("device")  # the device does not change the clusters
    digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()


def cluster_file(
    input_path: str | Path,
    trained,
    parameters: ClusterParameters,
    table_path: str | Path,
    statistics_path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    n_threads: int | None = None,
    regions: list | None = None,
    inside_regions: bool = False,
    summary_path: str | Path | None = None,
    ripley_path: str | Path | None = None,
) -> dict:
    """MIRO + DBSCAN (or HDBSCAN) on one localization file; writes the clustered table (ThunderSTORM CSV) and,
    when asked, the per-cluster statistics. Returns a summary (localizations, clusters, fraction clustered, the
    method and its parameters).
    A table at another scale than the model (:func:`napari_miro.inference.scale_mismatch`) is reported through
    ``on_warning``. ``n_threads``: CPU threads (None: the free cores). ``regions``
    (:class:`napari_miro.regions.Region`): summarised one row each into ``summary_path`` (default: the whole
    field as one region), and their Ripley's functions into ``ripley_path``; with ``inside_regions`` only the
    localizations inside them are clustered. The input file is never modified."""
    from napari_miro.estimator import MIROClusterer
    from napari_miro.inference import bounded_note, scale_mismatch
    from napari_miro.regions import Region, inside_any
    from napari_miro.summaries import empty_regions, region_summary

    if Path(table_path).resolve() == Path(input_path).resolve():
        raise ValueError(f"{Path(input_path).name}: the output would overwrite the input; choose another output.")
    df = read_localizations(input_path, parameters.pixel_size_nm, on_warning=on_warning)
    if inside_regions:
        if not regions:
            name = Path(input_path)
            raise ValueError(f"{name.name}: no ROIs to cluster inside (add {name.stem}{ROI_SUFFIX} beside it)")
        inside = inside_any(regions, df[["x", "y"]].to_numpy())
        if not inside.any():
            raise ValueError(f"{Path(input_path).name}: no localization lies inside the ROIs")
        attrs = dict(df.attrs)
        df = df[inside].reset_index(drop=True)
        df.attrs = attrs
    mismatch = scale_mismatch(trained, df[["x", "y"]].to_numpy())
    if mismatch is not None and on_warning is not None:
        on_warning(mismatch)
    clusterer = MIROClusterer.from_model(
        trained,
        eps_nm=parameters.eps_nm,
        min_samples=parameters.min_samples,
        fine_eps_nm=parameters.fine_eps_nm,
        fine_min_samples=parameters.fine_min_samples,
        device=parameters.device,
        n_threads=n_threads,
        method=parameters.method,
        min_cluster_size=parameters.min_cluster_size,
    )
    out, statistics, result = clusterer.cluster_table(df, progress=progress, passes=parameters.passes)
    if (note := bounded_note(result.collapsed, trained)) is not None and on_warning is not None:
        on_warning(note)
    write_thunderstorm(out, table_path)
    if statistics_path is not None:
        with atomic_path(statistics_path) as partial:
            statistics.to_csv(partial, index=False)
    xy = df[["x", "y"]].to_numpy()
    summarised = regions or [Region.bounding_box(xy, Path(input_path).stem)]
    if summary_path is not None:
        summary = region_summary(xy, result.labels, summarised, statistics)
        if (empty := empty_regions(summary)) and on_warning is not None:
            on_warning(f"no localization inside the ROI(s) {', '.join(empty)}")
        with atomic_path(summary_path) as partial:
            summary.to_csv(partial, index=False)
    if ripley_path is not None:
        from napari_miro.ripley_functions import ripley, ripley_table

        results = [(region, ripley(xy, region=region)) for region in summarised if region.contains(xy).sum() >= 2]
        with atomic_path(ripley_path) as partial:
            ripley_table(results).to_csv(partial, index=False)
    return {
        "n_localizations": len(df),
        "n_dropped": int(df.attrs.get("n_dropped", 0)),
        "n_clusters": int(result.labels.max()) if len(result.labels) else 0,
        "fraction_clustered": float(np.mean(result.labels > 0)) if len(result.labels) else 0.0,
        "method": result.method,
        "eps_nm": float(result.eps_nm) if result.method == "dbscan" else float("nan"),
        "min_samples": int(result.min_samples) if result.min_samples is not None else float("nan"),
        "min_cluster_size": int(result.min_cluster_size) if result.min_cluster_size else float("nan"),
    }


# --- inputs, outputs and groups -----------------------------------------------------------------------------


def find_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files from files, folders (searched recursively for .csv/.txt) and glob patterns, in a stable order,
    each once. Raises ValueError for an input that names nothing."""
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES
                             and not p.name.lower().endswith(ROI_SUFFIX))  # fmt: skip
            if not matches:
                raise ValueError(f"{text}: the folder holds no .csv or .txt file.")
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise ValueError(f"{text}: no file matches this pattern.")
        else:
            raise ValueError(f"{text}: no such file or folder.")
        found.extend(matches)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise ValueError("no input file given.")
    return unique


def common_root(paths: Sequence[Path]) -> Path:
    """The deepest folder holding every path."""
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


@dataclass(frozen=True)
class OutputPaths:
    """Where one input's results go."""

    table: Path  #: the clustered table (every input column + cluster, x_collapsed, y_collapsed, ...)
    statistics: Path  #: per-cluster statistics
    summary: Path  #: per-region summary (each ROI of the input's ROI file, else the whole field)
    ripley: Path  #: Ripley's functions per region (when asked for)
    record: Path  #: JSON: fingerprint, parameters, summary; written last, so it marks a finished file

    @classmethod
    def for_input(cls, path: Path, root: Path, out_dir: Path) -> OutputPaths:
        """Outputs mirror the input's place under ``root`` inside ``out_dir``/files (so equal names in
        different folders never collide)."""
        relative = path.relative_to(root)
        base = out_dir / "files" / relative.parent / relative.stem
        return cls(
            base.with_name(base.name + "_clustered.csv"),
            base.with_name(base.name + "_statistics.csv"),
            base.with_name(base.name + "_summary.csv"),
            base.with_name(base.name + "_ripley.csv"),
            base.with_name(base.name + "_record.json"),
        )


def group_of(path: Path, root: Path, pattern: str | None) -> str:
    """The group (condition) of a file. No pattern: "all"; "folder": the name of its parent folder;
    anything else is a regular expression searched in the path relative to the inputs' common folder (with
    "/" separators): its first group, or the whole match. A file that does not match is "ungrouped"."""
    if not pattern:
        return "all"
    if pattern == "folder":
        return path.parent.name or "all"
    match = re.search(pattern, path.relative_to(root).as_posix())
    if match is None:
        return "ungrouped"
    return match.group(1) if match.groups() and match.group(1) is not None else match.group(0)


def check_group_pattern(pattern: str | None) -> None:
    """A clear error for a --group-by value that is not a regular expression."""
    if pattern and pattern != "folder":
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"--group-by {pattern!r} is not a regular expression ({error}).") from None


# --- one file, on a worker ----------------------------------------------------------------------------------

_MODEL_CACHE: dict[str, object] = {}


def _model_from_bytes(model_bytes: bytes, fingerprint: str):
    """The model, loaded once per worker process (safetensors: loading runs no code from the file)."""
    import tempfile

    from napari_miro.model_file import TrainedMIRO

    key = hashlib.sha256(model_bytes).hexdigest()
    if key not in _MODEL_CACHE:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{fingerprint[:12]}.safetensors"
            path.write_bytes(model_bytes)
            _MODEL_CACHE.clear()
            _MODEL_CACHE[key] = TrainedMIRO.load(path)
    return _MODEL_CACHE[key]


def roi_file(input_path: str | Path) -> Path | None:
    """The ROI file beside an input (``<name>_rois.csv``), when there is one."""
    path = Path(input_path)
    candidate = path.with_name(path.stem + ROI_SUFFIX)
    return candidate if candidate.is_file() else None


def roi_digest(input_path: str | Path) -> str:
    """A hash of the input's ROI file ('' without one): changed ROIs make the file run again."""
    path = roi_file(input_path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else ""


def finished_record(paths: OutputPaths, fingerprint: str, rois: str = "") -> dict | None:
    """The record of a finished file for this fingerprint (and ROI file) whose outputs still exist, else None."""
    try:
        record = json.loads(paths.record.read_text())
    except (OSError, ValueError):
        return None
    if record.get("fingerprint") != fingerprint or record.get("rois", "") != rois:
        return None
    if not (paths.table.is_file() and paths.statistics.is_file() and paths.summary.is_file()):
        return None
    return record


def process_file(
    input_path: str,
    model_bytes: bytes,
    fingerprint: str,
    parameters: ClusterParameters,
    paths: OutputPaths,
    force: bool = False,
    threads_per_task: int | None = None,
) -> dict:
    """One batch task: skip a finished file, else cluster it. Never raises: a failure is returned with its
    message, so that one bad file does not stop the batch."""
    start = time.perf_counter()
    outcome = {"file": input_path, "status": FAILED, "error": "", "seconds": 0.0}
    rois = roi_digest(input_path)
    if not force and (record := finished_record(paths, fingerprint, rois)) is not None:
        return {**outcome, **record["summary"], "status": SKIPPED}
    warnings: list[str] = []
    try:
        from napari_miro.devices import DeviceOutOfMemory
        from napari_miro.model_file import ModelFileError
        from napari_miro.regions import read_regions

        trained = _model_from_bytes(model_bytes, fingerprint)
        paths.table.parent.mkdir(parents=True, exist_ok=True)
        paths.record.unlink(missing_ok=True)  # a file being redone is not finished until its record is back
        # write beside the final names, then rename: an interrupted batch never leaves half a table behind
        partial = OutputPaths(*(p.with_name(p.name + ".partial") for p in asdict(paths).values()))
        rois_path = roi_file(input_path)
        summary = cluster_file(
            input_path,
            trained,
            parameters,
            partial.table,
            partial.statistics,
            on_warning=warnings.append,
            n_threads=threads_per_task,
            regions=read_regions(rois_path) if rois_path is not None else None,
            inside_regions=parameters.inside_rois,
            summary_path=partial.summary,
            ripley_path=partial.ripley if parameters.ripley else None,
        )
        os.replace(partial.table, paths.table)
        os.replace(partial.statistics, paths.statistics)
        os.replace(partial.summary, paths.summary)
        if parameters.ripley:
            os.replace(partial.ripley, paths.ripley)
        record = {
            "fingerprint": fingerprint,
            "rois": rois,
            "input": input_path,
            "parameters": asdict(parameters),
            "napari_miro": __version__,
            "summary": summary,
            "warnings": warnings,
        }
        partial.record.write_text(json.dumps(record, indent=2))
        os.replace(partial.record, paths.record)
        return {**outcome, **summary, "status": DONE, "seconds": time.perf_counter() - start}
    except (LocalizationFileError, ModelFileError, DeviceOutOfMemory, ValueError, OSError) as error:
        message = str(error)
    except Exception as error:  # an unexpected failure: still only this file's
        message = f"{type(error).__name__}: {error}"
    return {**outcome, "error": message, "seconds": time.perf_counter() - start}


# --- the batch ----------------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """What a batch produced: one report row per file and the statistics of every finished file."""

    out_dir: Path
    report: pd.DataFrame  #: file, group, status, error, seconds, n_localizations, n_clusters, ...
    statistics: pd.DataFrame  #: every cluster of every finished file, with file and group columns
    seconds: float
    regions: pd.DataFrame = field(default_factory=pd.DataFrame)  #: one row per ROI (or file), file and group
    ripley: pd.DataFrame | None = None  #: Ripley's functions per radius and region, when asked for
    dashboard: str | None = None
    figure: Path | None = None
    workers: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return int((self.report["status"] == FAILED).sum())

    @property
    def complete(self) -> bool:
        return bool(self.report["status"].isin([DONE, SKIPPED]).all())

    def summary(self) -> str:
        counts = self.report["status"].value_counts()
        parts = [f"{counts.get(s, 0)} {s}" for s in (DONE, SKIPPED, FAILED, NOT_RUN) if counts.get(s, 0)]
        return (
            f"{len(self.report)} files ({', '.join(parts)}) in {self.seconds:.1f} s on {self.workers} worker(s); "
            f"{len(self.statistics)} clusters"
        )


def _client(workers: int | None, scheduler: str | None, n_files: int):
    """(client, owned cluster or None, CPU threads per task): an existing scheduler (each task then takes the
    cores free on its worker), else a LocalCluster of worker processes, one task each, sharing the cores."""
    import logging

    from distributed import Client, LocalCluster

    from napari_miro.threads import available_cores

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None, None
        except OSError as error:
            raise ValueError(f"could not reach the Dask scheduler at {scheduler} ({error}).") from None
    cores = available_cores()
    n_workers = max(1, min(workers or cores, n_files))
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster, max(1, cores // n_workers)


def dashboard_link(client) -> str | None:
    """The Dask dashboard's address when something answers there (schedulers started without a dashboard
    may still list one)."""
    import socket
    from urllib.parse import urlparse

    try:
        link = client.dashboard_link
        address = urlparse(link)
        with socket.create_connection((address.hostname, address.port), timeout=1.0):
            return link
    except Exception:  # no dashboard: nothing to print
        return None


def run_batch(
    inputs: Sequence[str | Path],
    model_path: str | Path,
    out_dir: str | Path,
    parameters: ClusterParameters | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    group_by: str | None = None,
    force: bool = False,
    progress: Callable[[int, int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_start: Callable[[dict], None] | None = None,
    figure: bool = True,
) -> BatchResult:
    """Cluster every input with one model on Dask: a LocalCluster of ``workers`` processes (default: one per
    core) or the scheduler at ``scheduler``. Writes per-file outputs under ``out_dir``/files and, for the
    batch, batch_statistics.csv, batch_report.csv and batch_summary.png. ``progress(done, total, outcome)``
    follows each file; ``should_stop()`` cancels the files not yet started."""
    from distributed import wait

    from napari_miro.model_file import TrainedMIRO

    parameters = parameters or ClusterParameters()
    check_group_pattern(group_by)
    files = find_inputs(inputs)
    model_path = Path(model_path)
    TrainedMIRO.load(model_path)  # a clear error here, before any worker starts, for a missing or foreign file
    model_bytes = model_path.read_bytes()
    fingerprint = run_fingerprint(model_bytes, parameters)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = common_root(files)
    planned = [(path, OutputPaths.for_input(path, root, out_dir), group_of(path, root, group_by)) for path in files]
    start = time.perf_counter()
    client, cluster, threads_per_task = _client(workers, scheduler, len(files))
    outcomes: dict[str, dict] = {}
    try:
        n_workers = len(client.scheduler_info().get("workers", {}))
        dashboard = dashboard_link(client)
        if on_start is not None:
            on_start({"workers": n_workers, "dashboard": dashboard, "files": len(files)})
        shared_model = client.scatter(model_bytes, broadcast=True)
        futures = {
            client.submit(
                process_file,
                str(path),
                shared_model,
                fingerprint,
                parameters,
                paths,
                force,
                threads_per_task,
                key=f"napari-miro-{index}-{fingerprint[:8]}-{time.time_ns()}",
                pure=False,
            ): str(path)
            for index, (path, paths, _) in enumerate(planned)
        }
        pending = set(futures)
        while pending:
            if should_stop is not None and should_stop():
                client.cancel(list(pending))
                break
            try:
                finished, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for future in finished:
                try:
                    outcome = future.result()
                except Exception as error:  # the worker itself died (memory, killed): this file failed
                    outcome = {"file": futures[future], "status": FAILED, "error": f"{type(error).__name__}: {error}"}
                outcomes[futures[future]] = outcome
                if progress is not None:
                    progress(len(outcomes), len(files), outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    seconds = time.perf_counter() - start
    result = assemble(planned, outcomes, out_dir, seconds, figure=figure)
    result.dashboard, result.workers = dashboard, n_workers
    return result


def assemble(planned, outcomes: dict[str, dict], out_dir: Path, seconds: float, figure: bool = True) -> BatchResult:
    """The batch report, the batch statistics and region tables (+ summary figure) from the files' outcomes."""
    rows, tables, region_tables, ripley_tables = [], [], [], []
    for path, paths, group in planned:
        outcome = outcomes.get(str(path), {"status": NOT_RUN, "error": "stopped before this file ran"})
        rows.append(
            {
                "file": str(path),
                "group": group,
                "status": outcome["status"],
                "error": outcome.get("error", ""),
                "seconds": round(float(outcome.get("seconds", 0.0)), 3),
                "n_localizations": outcome.get("n_localizations", np.nan),
                "n_clusters": outcome.get("n_clusters", np.nan),
                "fraction_clustered": outcome.get("fraction_clustered", np.nan),
                "method": outcome.get("method", ""),
                "eps_nm": outcome.get("eps_nm", np.nan),
                "min_samples": outcome.get("min_samples", np.nan),
                "min_cluster_size": outcome.get("min_cluster_size", np.nan),
                "clustered_table": str(paths.table) if outcome["status"] in (DONE, SKIPPED) else "",
            }
        )
        if outcome["status"] in (DONE, SKIPPED):
            table = pd.read_csv(paths.statistics, keep_default_na=False, na_values=[""])
            tables.append(table.assign(file=str(path), group=group))
            region_tables.append(pd.read_csv(paths.summary).assign(file=str(path), group=group))
            if paths.ripley.is_file():
                ripley_tables.append(pd.read_csv(paths.ripley).assign(file=str(path), group=group))
    report = pd.DataFrame(rows)
    front = ["file", "group"]

    def joined(parts: list[pd.DataFrame]) -> pd.DataFrame:
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=front)
        return table[front + [c for c in table.columns if c not in front]]

    statistics, regions = joined(tables), joined(region_tables)
    ripley = joined(ripley_tables) if ripley_tables else None
    report.to_csv(out_dir / BATCH_REPORT, index=False)
    statistics.to_csv(out_dir / BATCH_STATISTICS, index=False)
    regions.to_csv(out_dir / BATCH_REGIONS, index=False)
    if ripley is not None:
        ripley.to_csv(out_dir / BATCH_RIPLEY, index=False)
    result = BatchResult(out_dir, report, statistics, seconds, regions=regions, ripley=ripley)
    if figure and len(statistics):
        result.figure = summary_figure(statistics, out_dir / BATCH_FIGURE, regions, ripley)
    return result


def group_summary(statistics: pd.DataFrame) -> pd.DataFrame:
    """One row per group: files, clusters, and the medians of the summary statistics."""
    if statistics.empty:
        return pd.DataFrame(columns=["group", "files", "clusters"])
    grouped = statistics.groupby("group")
    table = pd.DataFrame({"files": grouped["file"].nunique(), "clusters": grouped.size()})
    for column, _ in SUMMARY_STATISTICS:
        table[f"median_{column}"] = grouped[column].median()
    return table.reset_index()
