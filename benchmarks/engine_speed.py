"""Time and peak memory of each stage of the MIRO pipeline, and training speed of both presets.

For N localizations (default 1e4, 1e5, 1e6) on a simulated field of Gaussian nanoclusters (25% clustered,
density as in a dense dSTORM image: ~600 localizations per um^2), each size in its own process:

    read (ThunderSTORM CSV) -> encodings (Laplacian, fixed grid) -> tiles (graphs) + model -> DBSCAN

with the compact preset's network (hidden 64, 12 steps; weights do not change the cost) and, with
``--faithful``, the paper's (hidden 256, 20 steps). Then training optimizer steps per second for both presets
on one synthetic field of ~2,000 localizations. Prints markdown tables.

    python benchmarks/engine_speed.py [--sizes 10000 100000 1000000] [--device cpu] [--faithful]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
n, device, preset, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
from napari_miro import simulate
from napari_miro.io import read_localizations, write_thunderstorm
from napari_miro.inference import collapse, dbscan_labels
from napari_miro.model_file import MIROSettings, TrainedMIRO
from napari_miro.graph import field_encodings
from napari_miro.model import MIRO, MIROConfig
from napari_miro.recipe import PRESETS
density = 600e-6  # localizations per nm^2
side = float(np.sqrt(n / density))
clusters = max(1, int(n * 0.25 / 40))
df = simulate.gaussian_clusters(n_clusters=clusters, locs_per_cluster=40, sigma_nm=30.0, background_fraction=0.75,
                                fov_nm=side, seed=0)
path = f"{folder}/field_{n}.csv"
write_thunderstorm(df[["x", "y"]], path)
times = {}
start = time.perf_counter(); table = read_localizations(path); times["read"] = time.perf_counter() - start
positions = table[["x", "y"]].to_numpy()
settings_ = PRESETS[preset]
torch.manual_seed(0)
model = MIRO(MIROConfig(hidden=settings_.hidden, steps=settings_.steps))
settings = MIROSettings(delta_nm=100.0, scale_encodings=settings_.scale_encodings,
                        edge_scale_nm=settings_.edge_scale_nm, field_size_nm=2000.0, eps_nm=20.0, min_samples=8)
trained = TrainedMIRO(model, settings)
start = time.perf_counter()
field_encodings(positions, settings.delta_nm, settings.field_size_nm, settings.scale_encodings)
times["encodings"] = time.perf_counter() - start
start = time.perf_counter(); collapsed = collapse(trained, positions, device=device)
if device.startswith("cuda"):
    torch.cuda.synchronize()
times["graphs + model (incl. encodings)"] = time.perf_counter() - start
start = time.perf_counter(); labels = dbscan_labels(collapsed.positions, settings.eps_nm, settings.min_samples)
times["DBSCAN"] = time.perf_counter() - start
times["end to end"] = times["read"] + times["graphs + model (incl. encodings)"] + times["DBSCAN"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0
print(json.dumps({"n": len(positions), "times": times, "peak_mb": peak, "gpu_mb": gpu}))
"""

TRAIN_CHILD = r"""
import json, sys, time
from dataclasses import replace
import torch
from napari_miro import simulate
from napari_miro.annotations import AnnotatedData
from napari_miro.recipe import PRESETS
from napari_miro.training import make_training_fields, train
preset, device = sys.argv[1], sys.argv[2]
df = simulate.elliptical_clusters(seed=0)
data = AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1])
settings = replace(PRESETS[preset], n_fields=8, n_validation_fields=2, optimizer_steps=10**9, validate_every=10**9)
fields = make_training_fields(data, settings)
warm = replace(settings, optimizer_steps=3)
train(data, warm, device=device, fields=fields)
steps = 40 if preset == "compact" else 8
result = train(data, replace(settings, optimizer_steps=steps), device=device, fields=fields)
nodes = sum(len(f.node_features) for f in fields.train) / len(fields.train)
print(json.dumps({"steps_per_s": steps / result.seconds, "batch": settings.batch_size, "nodes": nodes}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--faithful", action="store_true", help="also time the paper's network")
    args = parser.parse_args()
    import torch

    name = (
        torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {args.device} ({name}), torch {torch.__version__}\n")
    presets = ["compact", "faithful"] if args.faithful else ["compact"]
    with tempfile.TemporaryDirectory() as folder:
        for preset in presets:
            print(f"### inference, {preset} network\n")
            print(
                "| localizations | read (s) | encodings (s) | graphs + model (s) | DBSCAN (s) | end to end (s) "
                "| peak RAM (MB) | peak GPU (MB) |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for n in args.sizes:
                r = run(CHILD, str(n), args.device, preset, folder)
                t = r["times"]
                print(
                    f"| {r['n']:,} | {t['read']:.2f} | {t['encodings']:.2f} | "
                    f"{t['graphs + model (incl. encodings)']:.2f} | {t['DBSCAN']:.2f} | {t['end to end']:.1f} | "
                    f"{r['peak_mb']:.0f} | {r['gpu_mb']:.0f} |",
                    flush=True,
                )
            print()
    print("### training\n")
    print("| preset | optimizer steps / s | graphs per step | nodes per graph |")
    print("|---|---|---|---|")
    for preset in ("compact", "faithful"):
        r = run(TRAIN_CHILD, preset, args.device)
        print(f"| {preset} | {r['steps_per_s']:.2f} | {r['batch']} | {r['nodes']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
