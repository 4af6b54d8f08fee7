"""Pre-train the base models shipped in src/napari_miro/base_models_data (reproducible: fixed seeds).

Each base is the compact network trained on every cluster of many simulated fields of one family (sizes,
densities and shapes drawn over a range), then evaluated on simulated fields it never saw against DBSCAN alone
tuned the same way. Writes ``<name>.safetensors`` and its model card ``<name>.json`` (recipe, seed, steps,
device, time, metrics).

    python scripts/train_base_models.py [--names nanoclusters rings nanoclusters-blinking] [--minutes 10]
        [--fields 12] [--training-fields 256] [--seed 0] [--device auto] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_miro import __version__, metrics, simulate
from napari_miro.annotations import AnnotatedData, lay_side_by_side
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import cluster_points, dbscan_labels
from napari_miro.recipe import PRESETS

OUT = Path(__file__).resolve().parents[1] / "src" / "napari_miro" / "base_models_data"


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
    rows = {"MIRO + DBSCAN": [], "DBSCAN alone (tuned the same way)": []}
    eps, samples = trained.settings.dbscan_eps_nm, trained.settings.dbscan_min_samples
    for frame in frames:
        xy, truth = frame[["x", "y"]].to_numpy(), frame["cluster"].to_numpy()
        rows["MIRO + DBSCAN"].append(metrics.evaluate(xy, truth, cluster_points(trained, xy).labels))
        rows["DBSCAN alone (tuned the same way)"].append(metrics.evaluate(xy, truth, dbscan_labels(xy, eps, samples)))
    return {
        method: {name: round(float(np.mean([r[name] for r in values])), 3) for name in ("JI_c", "ARI_c", "ARI_dagger")}
        for method, values in rows.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="+", default=list(RECIPES))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fields", type=int, default=12, help="simulated fields per base")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--training-fields", type=int, default=256, help="synthetic training fields made from them")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the weights and model cards")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        make, description, background = RECIPES[name]
        data = annotated(make(args.seed, args.fields))
        # pre-training starts from scratch; the DBSCAN objective and the copies' jitter are the ones the shipped
        # bases were made with (hundreds of annotated clusters: the copies vary without more jitter)
        settings = replace(
            PRESETS["compact"],
            max_minutes=args.minutes,
            optimizer_steps=None,
            n_fields=args.training_fields,
            seed=args.seed,
            base_model=None,
            tuning_objective="ari",
            copy_jitter=0.25,
            background=background,
        )
        start = time.perf_counter()
        clusterer = MIROClusterer(recipe=settings, device=args.device).fit(data)
        trained, result = clusterer.model_, clusterer.training_
        seconds = time.perf_counter() - start
        scores = evaluate(trained, make(args.seed + 1000, 6))
        trained.settings.training["base_model"] = name
        trained.save(args.out / f"{name}.safetensors")
        card = {
            "name": name,
            "description": description,
            "napari_miro": __version__,
            "recipe": {
                "simulated_fields": args.fields,
                "field_seed": args.seed,
                "annotated_clusters": len(data.clusters),
                "training_settings": settings.to_dict(),
            },
            "device": result.device,
            "torch": torch.__version__,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
            "optimizer_steps": result.summary()["optimizer_steps"],
            "training_seconds": round(seconds, 1),
            "delta_nm": trained.settings.delta_nm,
            "displacement_unit_nm": trained.settings.unit_nm,
            "evaluation": {"fields": "6 unseen simulated fields (seeds + 1000)", **scores},
            "command": f"python scripts/train_base_models.py --names {name} --minutes {args.minutes:g} "
            f"--fields {args.fields} --training-fields {args.training_fields} --seed {args.seed}",
        }
        (args.out / f"{name}.json").write_text(json.dumps(card, indent=2, default=float) + "\n")
        print(json.dumps({k: card[k] for k in ("name", "optimizer_steps", "training_seconds", "evaluation")}))
        history = [row for row in result.history if "validation_loss" in row]
        validation = [(row["step"], round(row["validation_loss"], 4)) for row in history]
        print("validation loss (step, loss), every 10th:", validation[::10])


if __name__ == "__main__":
    main()
