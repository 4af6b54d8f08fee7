"""Training as the Train widget runs it (a worker thread, a preview model after 30 s), with and without busy
processes beside it, with one thread per core against the threads chosen from the free cores
(:class:`napari_miro.threads.ThreadBudget`, the default).

For each bundled sample: one isolated ground-truth structure annotated, the compact preset, ``--minutes`` of
training. Prints, per run: the threads used, seconds to the first preview model, to prepare the fields, to train,
to tune DBSCAN, the optimizer steps and steps per second, the total and how far it ran over the budget. Busy
neighbours are processes multiplying matrices with PyTorch's default threads (another job on the same laptop).
Targets: the first preview within 60 s of Train on every sample; the whole run within the budget + 10% (fields and
tuning included).

    python benchmarks/threads.py [--samples rings nanoclusters npc mixture] [--minutes 1.25] [--busy 0 1]
        [--policies per-core free]
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time

from sample_workflow import isolated_structure

from napari_miro.annotations import AnnotatedData
from napari_miro.cli import SAMPLES, sample_file
from napari_miro.estimator import MIROClusterer
from napari_miro.io import read_localizations
from napari_miro.threads import available_cores

PREVIEW_MINUTES = 0.5  # the Train widget's first preview


def keep_busy(stop_at: float) -> None:
    """A neighbour: PyTorch matrix products on every core until ``stop_at`` (time.time())."""
    import torch

    a = torch.randn(400, 400)
    while time.time() < stop_at:
        a = torch.tanh(a @ a * 0.01)


def train_like_the_widget(data: AnnotatedData, minutes: float, n_threads: int | None) -> dict:
    """Fit in a worker thread; the times of each phase (s from the start) and the threads used."""
    import torch

    marks: dict[str, float] = {}
    threads_seen: list[int] = []
    start = time.perf_counter()

    def progress(record: dict) -> None:
        now = time.perf_counter() - start
        marks.setdefault(f"{record['phase']} start", now)
        marks[f"{record['phase']} end"] = now
        if record["phase"] == "training":
            threads_seen.append(torch.get_num_threads())
            marks["steps"] = record["step"]

    def on_model(_minutes, _trained) -> None:
        marks.setdefault("preview", time.perf_counter() - start)

    clusterer = MIROClusterer(minutes=minutes, n_threads=n_threads)
    worker = threading.Thread(
        target=lambda: clusterer.fit(data, progress=progress, checkpoint_minutes=[PREVIEW_MINUTES], on_model=on_model)
    )
    worker.start()
    worker.join()
    marks["total"] = time.perf_counter() - start
    marks["threads"] = f"{threads_seen[0]}-{max(threads_seen)}" if threads_seen else "?"
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", nargs="+", default=list(SAMPLES))
    parser.add_argument("--minutes", type=float, default=1.25)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="busy neighbour processes")
    parser.add_argument("--policies", nargs="+", default=["per-core", "free"], choices=["per-core", "free"])
    args = parser.parse_args()
    cores = available_cores()
    print(f"{cores} cores; compact preset, {args.minutes:g} min of training asked, preview at {PREVIEW_MINUTES} min\n")
    print(
        "| sample | busy neighbours | threads | torch threads | first preview (s) | fields (s) | training (s) | "
        "steps | steps/s | tuning (s) | total (s) | over budget |"
    )
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.samples:
        df = read_localizations(sample_file(name))
        xy, truth = df[["x", "y"]].to_numpy(), df["gt_cluster"].to_numpy()
        data = AnnotatedData.from_labels(xy, truth, which=[isolated_structure(xy, truth)])
        for busy in args.busy:
            for policy in args.policies:
                context = multiprocessing.get_context("spawn")
                neighbours = [context.Process(target=keep_busy, args=(time.time() + 3600,)) for _ in range(busy)]
                for process in neighbours:
                    process.start()
                time.sleep(2.0 if busy else 0.0)  # let the neighbours start working
                try:
                    marks = train_like_the_widget(data, args.minutes, cores if policy == "per-core" else None)
                finally:
                    for process in neighbours:
                        process.terminate()
                        process.join()
                fields = marks.get("fields end", 0.0) - marks.get("fields start", 0.0)
                training = marks["training end"] - marks["training start"]
                tuning = marks["total"] - marks["tuning start"]
                budget = 60 * args.minutes
                print(
                    f"| {name} | {busy} | {'one per core' if policy == 'per-core' else 'free cores'} | "
                    f"{marks['threads']} | {marks.get('preview', float('nan')):.0f} | {fields:.0f} | {training:.0f} | "
                    f"{marks['steps']} | {marks['steps'] / training:.1f} | {tuning:.0f} | {marks['total']:.0f} | "
                    f"{100 * (marks['total'] / budget - 1):+.0f}% |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
