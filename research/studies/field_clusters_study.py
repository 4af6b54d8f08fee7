"""Study: what the clusters that a trained model finds in the user's own field can teach DBSCAN's tuning.

Trains single-shot as ``napari-miro train`` does (ONE annotated cluster of fov-01, cluster 1 or ``--cluster``,
the compact preset, the preset's optimizer steps, DBSCAN tuned on copies of the annotated cluster alone; the
model is cached in .bench_cache/field_clusters_study/), clusters fov-01 with it and keeps the clusters it finds
there that look like the annotated one (``napari_miro.tuning.clusters_like_annotated``: 0.5-4x its
localizations, radius of gyration at most 3x its own, not overlapping it). Then, per tuning seed, DBSCAN is tuned
again on fresh synthetic fields and scored on 10 benchmark FOVs the model never saw:

- ``default``: fields from the annotated cluster alone (re-tuning off; the baseline of the others);
- ``sizes``: the same fields, but copies as large as the 90th percentile (``--quantile``) of the found clusters'
  sizes, eps and min_samples both from them;
- ``samples``: eps from ``default``'s tuning, min_samples the larger of ``default``'s and ``sizes``' (same seed):
  what training does (``tuning.RETUNE_ON_FOUND_SIZES``) where the line printed first says that its rule re-tunes (the
  found clusters' median size at least 1.75x the annotated one's), forced here;
- ``copies``: the found clusters also copied into the fields (pseudo-labels, shapes and sizes);
- ``finetune`` / ``control``: ``--steps`` more optimizer steps with / without the found clusters as annotations
  (tuned with the training's own seed, once).

    python benchmarks/field_clusters_study.py blinking/scenario-10 [--seed 0] [--cluster 1]
        [--tuning-seeds 0 1 2] [--modes default sizes samples copies] [--quantile 0.9] [--json rows.jsonl]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from paper_table import annotations, fields_of
from time_to_accuracy import score

from napari_miro import tuning
from napari_miro.annotations import AnnotatedData, median_size
from napari_miro.estimator import MIROClusterer, package_model
from napari_miro.model_file import TrainedMIRO
from napari_miro.recipe import PRESETS, TrainingSettings
from napari_miro.synthesis import FieldSynthesizer
from napari_miro.training import make_synthesizer, train
from napari_miro.tuning import FOUND_WIDEN_RATIO, clusters_like_annotated, found_clusters_are_larger, tune_dbscan

CACHE = Path(__file__).resolve().parent.parent / ".bench_cache" / "field_clusters_study"


def trained_model(setting: str, seed: int, data: AnnotatedData, cluster: int = 1) -> TrainedMIRO:
    """The single-shot model for this setting, seed and annotated cluster, DBSCAN tuned on copies of the annotated
    cluster alone (re-tuning off: the baseline); trained once, then read from the cache."""
    suffix = "" if cluster == 1 else f"_cluster{cluster}"
    path = CACHE / f"{setting.replace('/', '_')}_{seed}{suffix}.safetensors"
    if not path.exists():
        background = "blinking" if setting.startswith("blinking") else "uniform"
        tuning.RETUNE_ON_FOUND_SIZES = False  # the study's baseline: min_samples from the annotated copies alone
        settings = replace(PRESETS["compact"], background=background, seed=seed)
        trained = MIROClusterer(recipe=settings, device="cpu").fit(data).model_
        path.parent.mkdir(parents=True, exist_ok=True)
        trained.save(path)
    return TrainedMIRO.load(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setting")
    parser.add_argument("--seed", type=int, default=0, help="the training's seed")
    parser.add_argument("--tuning-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", default=["default", "sizes"],
                        choices=["default", "sizes", "samples", "copies", "finetune", "control"])  # fmt: skip
    parser.add_argument("--cluster", type=int, default=1, help="the annotated cluster: its label in fov-01")
    parser.add_argument("--quantile", type=float, default=0.9, help="sizes: copies up to this quantile of the found")
    parser.add_argument("--steps", type=int, default=500, help="finetune / control: more optimizer steps")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    frames = fields_of(args.setting, 13)
    if args.cluster == 1:
        data = annotations(frames[:3], single=True, setting=args.setting)
    else:
        first = frames[0]
        data = AnnotatedData.from_labels(first[["x", "y"]].to_numpy(), first["truth"].to_numpy(), which=[args.cluster])
    model = trained_model(args.setting, args.seed, data, args.cluster)
    trained_with = TrainingSettings(
        **{k: v for k, v in model.settings.training["settings"].items() if k in TrainingSettings.__dataclass_fields__}
    )
    found = clusters_like_annotated(model, data)
    size = median_size(data)
    ratios = sorted(len(members) / size for members in found)
    widest = max(FieldSynthesizer.COPY_SIZE_MAX, float(np.quantile(ratios, args.quantile)) if ratios else 0.0)
    verdict = "re-tunes" if found_clusters_are_larger(ratios) else "keeps"
    print(f"{args.setting} seed {args.seed} cluster {args.cluster}: {len(found)} clusters found like the annotated "
          f"one ({size:g} locs); sizes {np.round(ratios, 2).tolist()} x; copies up to {widest:.2f} x; "
          f"training's rule (median >= {FOUND_WIDEN_RATIO}x) {verdict} min_samples",
          flush=True)  # fmt: skip
    with_found = AnnotatedData(data.positions, [data.clusters[0], *found])
    retrained = ("finetune", "control")
    runs = [(mode, seed) for mode in args.modes if mode not in retrained for seed in args.tuning_seeds]
    runs += [(mode, trained_with.seed) for mode in args.modes if mode in retrained]
    for mode, seed in runs:
        settings = replace(trained_with, seed=seed)
        candidate = copy.deepcopy(model)
        if mode in ("finetune", "control"):
            more = replace(
                settings,
                base_model=None,
                delta_nm=model.settings.delta_nm,
                unit_nm=model.settings.displacement_unit_nm,
                optimizer_steps=args.steps,
                seed=seed + 100,
            )
            annotated = with_found if mode == "finetune" else data
            result = train(annotated, more, "cpu", initial_model=candidate.model)
            candidate = package_model(result.model, annotated, more, result.fields)
        else:
            fields = make_synthesizer(with_found if mode == "copies" else data, settings)
            widened = copy.copy(fields)
            widened.copy_size_ranges = [(low, widest) for low, _ in fields.copy_size_ranges]
            suggestion = tune_dbscan(candidate, widened if mode == "sizes" else fields, settings)
            if mode == "samples":
                wide = tune_dbscan(candidate, widened, settings)
                suggestion["min_samples"] = max(suggestion["min_samples"], wide["min_samples"])
            candidate.settings.eps_nm, candidate.settings.min_samples = suggestion["eps_nm"], suggestion["min_samples"]
        row = score(candidate, frames[3:])
        out = {"setting": args.setting, "seed": args.seed, "cluster": args.cluster, "mode": mode, "tuning_seed": seed,
               "found": len(found), **({"quantile": args.quantile} if mode in ("sizes", "samples") else {}),
               "eps_nm": candidate.settings.eps_nm, "min_samples": candidate.settings.min_samples,
               **{name: round(row[name], 3) for name in ("JI_c", "ARI_c", "ARI_dagger", "compression")}}  # fmt: skip
        print(json.dumps(out), flush=True)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
