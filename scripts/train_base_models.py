"""Pre-train the base models shipped in src/napari_miro/base_models_data (reproducible: fixed seeds), resumably.

Each base is the compact network trained on every cluster of many simulated fields of one family (sizes,
densities and shapes drawn over a range). Training runs in chunks; after each, the model and Adam's state are
checkpointed in ``--work``/NAME (safetensors, no pickle) and the model is evaluated on simulated fields it never saw
against DBSCAN alone tuned the same way, one row per chunk in ``curve.jsonl`` (held-out accuracy against hours).
Run it again with a larger ``--hours`` to continue where it stopped. ``--out`` publishes the latest checkpoint with
its model card (recipe, seed, steps, device, time, the curve).

    python scripts/train_base_models.py [--names nanoclusters rings nanoclusters-blinking] [--hours 0.5]
        [--chunk-minutes 10] [--hidden 64] [--fields 12] [--training-fields 256] [--seed 0] [--device auto]
        [--work research/pretraining] [--out src/napari_miro/base_models_data] [--set recurrent_steps=20 ...]
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from napari_miro import __version__, metrics, simulate
from napari_miro.annotations import AnnotatedData, lay_side_by_side
from napari_miro.estimator import package_model
from napari_miro.inference import cluster_points, dbscan_labels
from napari_miro.model_file import TrainedMIRO
from napari_miro.recipe import PRESETS, TrainingSettings
from napari_miro.training import make_training_fields, train

ROOT = Path(__file__).resolve().parents[1]
#: where the shipped bases live (publish with --out src/napari_miro/base_models_data)
OUT = ROOT / "src" / "napari_miro" / "base_models_data"
#: checkpoints, Adam's state and held-out curves of resumable pre-training
WORK = ROOT / "research" / "pretraining"


def nanocluster_fields(seed: int, count: int) -> list[pd.DataFrame]:
    """Gaussian nanoclusters (sigma 15-50 nm, 10-80 localizations) and 2:1-3:1 ellipses, half background."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        if index % 2 == 0:
            frame = simulate.gaussian_clusters(
                n_clusters=20,
                locs_per_cluster=(10, 80),
                sigma_nm=(15.0, 50.0),
                background_fraction=float(rng.uniform(0.3, 0.6)),
                fov_nm=3000,
                seed=seed + index,
            )
        else:
            frame = simulate.elliptical_clusters(
                n_clusters=20,
                locs_per_cluster=(20, 80),
                minor_sigma_nm=float(rng.uniform(10, 20)),
                aspect_ratio=float(rng.uniform(2, 3)),
                background_fraction=float(rng.uniform(0.3, 0.6)),
                fov_nm=3000,
                seed=seed + index,
            )
        frames.append(frame)
    return frames


def ring_fields(seed: int, count: int) -> list[pd.DataFrame]:
    """Rings and C-shapes of radius 50-250 nm (radial sd a fifth of the radius), 30-80 localizations."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        radius = float(rng.uniform(50, 250))
        maker = simulate.rings if index % 2 == 0 else simulate.c_shapes
        frames.append(
            maker(
                n_clusters=(12, 18),
                locs_per_cluster=(30, 80),
                radius_nm=radius,
                radial_sd_nm=radius / 5,
                background_fraction=0.07,
                fov_nm=radius * 20,
                seed=seed + index,
            )
        )
    return frames


def paper_ring_fields(seed: int, count: int) -> list[pd.DataFrame]:
    """Rings and C-shapes exactly as the paper's simulated scenarios (radius 250 nm, radial sd 50 nm, 6.4 um
    fields): one scale, to measure what the network reaches on the kind of field it is evaluated on."""
    return [(simulate.rings if index % 2 == 0 else simulate.c_shapes)(seed=seed + index) for index in range(count)]


def blinking_nanocluster_fields(seed: int, count: int) -> list[pd.DataFrame]:
    """The nanocluster fields with multiple blinking (as the benchmark's: a geometric number of localizations per
    molecule, mean 4, sigma log-normal around 14 nm), background molecules included."""
    frames = nanocluster_fields(seed, count)
    return [simulate.blink(frame, seed=seed + 500 + index) for index, frame in enumerate(frames)]


#: name -> (fields, description, background of the synthetic training fields)
RECIPES = {
    "nanoclusters": (
        nanocluster_fields,
        "Gaussian nanoclusters (sigma 15-50 nm, 10-80 loc.) and ellipses (2:1-3:1)",
        "uniform",
    ),
    "rings": (ring_fields, "rings and C-shapes, radius 50-250 nm, radial sd = radius / 5, 30-80 loc.", "uniform"),
    "rings-paper": (
        paper_ring_fields,
        "rings and C-shapes as the paper's scenarios (radius 250 nm, radial sd 50 nm)",
        "uniform",
    ),
    "nanoclusters-blinking": (
        blinking_nanocluster_fields,
        "Gaussian nanoclusters (sigma 15-50 nm, 10-80 molecules) and ellipses (2:1-3:1) with multiple blinking "
        "(mean 4 localizations per molecule, sigma ~14 nm), blinking background",
        "blinking",
    ),
}


def annotated(frames: list[pd.DataFrame]) -> AnnotatedData:
    positions, field, area = lay_side_by_side(frames)
    truth = np.concatenate([f["cluster"].to_numpy() for f in frames])
    labels = np.where(truth > 0, truth + field * 100_000, 0)
    return AnnotatedData.from_labels(positions, labels, area_nm2=area)


def evaluate(trained, frames: list[pd.DataFrame]) -> dict:
    """Mean JI_c, ARI_c, ARI-dagger (and MIRO's compression) on simulated fields, MIRO + DBSCAN and DBSCAN alone."""
    rows: dict[str, list[dict]] = {"MIRO + DBSCAN": [], "DBSCAN alone (tuned the same way)": []}
    eps, samples = trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples
    for frame in frames:
        xy, truth = frame[["x", "y"]].to_numpy(), frame["cluster"].to_numpy()
        result = cluster_points(trained, xy)
        row = metrics.evaluate(xy, truth, result.labels)
        row["compression"] = metrics.compression_index(xy, result.collapsed.positions - xy, truth)
        rows["MIRO + DBSCAN"].append(row)
        rows["DBSCAN alone (tuned the same way)"].append(metrics.evaluate(xy, truth, dbscan_labels(xy, eps, samples)))
    return {
        method: {name: round(float(np.mean([r[name] for r in values])), 3) for name in values[0] if name in REPORTED}
        for method, values in rows.items()
    }


REPORTED = ("JI_c", "ARI_c", "ARI_dagger", "compression")


def save_optimizer(state: dict, path: Path) -> None:
    """Adam's state as safetensors (tensors) with its hyper-parameters as JSON metadata: no pickle."""
    tensors = {
        f"{index}.{name}": value.detach().cpu().contiguous().reshape(-1) if value.dim() == 0 else value.detach().cpu()
        for index, entry in state["state"].items()
        for name, value in entry.items()
    }
    save_file(tensors, str(path), metadata={"param_groups": json.dumps(state["param_groups"])})


def load_optimizer(path: Path) -> dict:
    state: dict = {}
    with safe_open(str(path), framework="pt") as handle:
        groups = json.loads(handle.metadata()["param_groups"])
        for key in handle.keys():
            index, name = key.split(".", 1)
            value = handle.get_tensor(key)
            state.setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    return {"state": state, "param_groups": groups}


def pretrain(name: str, args: argparse.Namespace) -> None:
    """Pre-train one base in chunks of ``--chunk-minutes``, resumable: after each chunk the model, Adam's state
    and a row of held-out accuracy go to ``--work``/NAME; a rerun continues from there until ``--hours``."""
    make, description, background = RECIPES[name]
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    state_path, curve_path = work / "state.json", work / "curve.jsonl"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"chunks": 0, "steps": 0, "seconds": 0.0}
    data = annotated(make(args.seed, args.fields))
    held_out = make(args.seed + 1000, 6)
    # from scratch, the DBSCAN objective and the copies' jitter the shipped bases were made with (hundreds of
    # annotated clusters: the copies vary without more jitter); each chunk anneals its learning rate (a cosine
    # restarted per chunk), so every checkpoint is a finished model
    settings = replace(
        PRESETS["compact"],
        hidden=args.hidden,
        max_minutes=args.chunk_minutes,
        optimizer_steps=None,
        n_fields=args.training_fields,
        seed=args.seed,
        base_model=None,
        tuning_objective="ari",
        copy_jitter=0.25,
        background=background,
    )
    settings = replace(settings, **args.overrides)
    fields = make_training_fields(data, settings)
    model = optimizer = None
    if state["chunks"]:
        model = TrainedMIRO.load(work / "latest.safetensors").model
        optimizer = load_optimizer(work / "optimizer.safetensors")
        print(
            f"{name}: resuming after chunk {state['chunks']} ({state['seconds'] / 3600:.2f} h, {state['steps']} steps)"
        )
    while state["seconds"] < 3600 * args.hours:
        chunk = replace(settings, seed=args.seed + 1000 * (state["chunks"] + 1))
        result = train(data, chunk, args.device, fields=fields, initial_model=model, optimizer_state=optimizer)
        model, optimizer = result.model, result.optimizer_state
        state["chunks"] += 1
        state["steps"] += result.summary()["optimizer_steps"]
        state["seconds"] += result.seconds
        trained = package_model(model, data, settings, fields, {**result.summary(), "base_model": name})
        scores = evaluate(trained, held_out)
        row = {"base": name, "hidden": args.hidden, "chunk": state["chunks"],
               "hours": round(state["seconds"] / 3600, 3), "optimizer_steps": state["steps"],
               "validation_loss": round(result.best_validation_loss, 5), "device": result.device, **scores}  # fmt: skip
        trained.save(work / "latest.safetensors")
        save_optimizer(optimizer, work / "optimizer.safetensors")
        state_path.write_text(json.dumps(state))
        with curve_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        model = trained.model
    if args.out is not None:
        publish(name, description, work, state, settings, data, args)


def publish(name, description, work, state, settings, data, args) -> None:
    """Copy the latest checkpoint into ``--out`` with its model card (recipe, curve, command)."""
    args.out.mkdir(parents=True, exist_ok=True)
    trained = TrainedMIRO.load(work / "latest.safetensors")
    trained.settings.training["base_model"] = name
    trained.save(args.out / f"{name}.safetensors")
    curve = [json.loads(line) for line in (work / "curve.jsonl").read_text().splitlines()]
    card = {
        "name": name,
        "description": description,
        "napari_miro": __version__,
        "recipe": {
            "simulated_fields": args.fields,
            "field_seed": args.seed,
            "annotated_clusters": len(data.clusters),
            "chunk_minutes": args.chunk_minutes,
            "training_settings": settings.to_dict(),
        },
        "device": curve[-1]["device"],
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "optimizer_steps": state["steps"],
        "training_seconds": round(state["seconds"], 1),
        "delta_nm": trained.settings.delta_nm,
        "displacement_unit_nm": trained.settings.unit_nm,
        "evaluation": {"fields": "6 unseen simulated fields (seeds + 1000)", **{
            k: v for k, v in curve[-1].items() if k in ("MIRO + DBSCAN", "DBSCAN alone (tuned the same way)")}},
        "held_out_curve": curve,
        "command": f"python scripts/train_base_models.py --names {name} --hours {args.hours:g} --chunk-minutes "
        f"{args.chunk_minutes:g} --hidden {args.hidden} --fields {args.fields} --training-fields "
        f"{args.training_fields} --seed {args.seed}",
    }  # fmt: skip
    (args.out / f"{name}.json").write_text(json.dumps(card, indent=2, default=float) + "\n")
    print(f"published {args.out / name}.safetensors and its card")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="+", default=list(RECIPES))
    parser.add_argument("--hours", type=float, default=1 / 6, help="total pre-training time per base")
    parser.add_argument("--chunk-minutes", type=float, default=10.0, help="training between checkpoints")
    parser.add_argument("--hidden", type=int, default=PRESETS["compact"].hidden)
    parser.add_argument("--fields", type=int, default=12, help="simulated fields per base")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--training-fields", type=int, default=256, help="synthetic training fields made from them")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=WORK, help="checkpoints and curves, one folder per base")
    parser.add_argument("--out", type=Path, default=None, help="publish the bases here (weights + model cards)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=JSON", help="TrainingSettings overrides")
    args = parser.parse_args()
    args.overrides = {}
    for pair in args.set:
        key, _, text = pair.partition("=")
        if key not in TrainingSettings.__dataclass_fields__:
            parser.error(f"unknown training setting {key!r}")
        args.overrides[key] = json.loads(text) if text not in ("", "None") else None
    for name in args.names:
        pretrain(name, args)


if __name__ == "__main__":
    main()
