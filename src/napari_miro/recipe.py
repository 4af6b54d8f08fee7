"""The training recipe: network size, loss, optimiser, synthetic data and tuning, filled in by presets.

:class:`TrainingSettings` holds every choice of a training run and is recorded in the model file.
:class:`napari_miro.MIROClusterer` exposes the ones a user sets (preset, base model, background, time, delta,
seed); the rest are the presets'.

Pure core (dataclasses only): imports no other napari_miro module, neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["BACKGROUNDS", "PRESETS", "TrainingSettings", "default_fine_step"]

#: background models of the synthetic fields: decided from the data, uniform localizations, or molecules that
#: blink several times
BACKGROUNDS = ("auto", "uniform", "blinking")


@dataclass
class TrainingSettings:
    """How to train MIRO. Presets (:data:`PRESETS`) fill these in; the model file records them."""

    preset: str = "compact"
    # the network
    hidden: int = 64  #: width of the hidden layers
    recurrent_steps: int = 12  #: times the recurrent block is applied in one pass (the paper's K)
    delta_nm: float | None = None  #: graph edge threshold; None = suggested from the annotated clusters
    scale_encodings: bool = True  #: Laplacian encodings x sqrt(component size)
    edge_scale_nm: float | None = 50.0  #: edge features divided by this (None: by delta, as the paper)
    #: unit of the predicted displacement: "delta" (paper) or "radius" (the annotated clusters' median radius of
    #: gyration, so that targets are of order 1 whatever delta is)
    displacement_unit: str = "radius"
    unit_nm: float | None = None  #: the displacement unit in nm when fixed (a base model's); else displacement_unit
    fine_step: int | None = None  #: two-scale models: recurrent steps 0..fine_step learn the fine centres
    # the loss
    displacement_loss: str = "mse"  #: "l1" (paper) or "mse"
    alpha: float = 0.1  #: weight of the edge-distance term (paper: 10)
    beta: float = 0.1  #: weight of the class cross-entropy
    # the optimiser
    learning_rate: float = 1e-3
    schedule: str = "cosine"  #: "constant" (paper) or "cosine" (anneals over the planned steps or time)
    batch_size: int = 2  #: synthetic fields per optimizer step
    optimizer_steps: int | None = 1500  #: None = no limit (then max_minutes ends training)
    #: stop after this wall time of the training loop (the best model so far is kept); MIROClusterer(minutes=...)
    #: sets it and makes it the whole fit's, fields and DBSCAN's tuning included
    max_minutes: float | None = None
    validate_every: int = 50  #: optimizer steps between validations (the best validated model is kept)
    #: start from a shipped pre-trained base model and fine-tune: a name, "auto" (chosen from the annotated
    #: clusters' shape) or None (from a random initialisation)
    base_model: str | None = None
    # the synthetic fields
    n_fields: int = 192  #: training fields made up front (augmented further at each step)
    n_validation_fields: int = 8
    background: str = "auto"  #: one of BACKGROUNDS ("auto": napari_miro.density.detect_background decides)
    #: the copies' Gaussian jitter, over the annotated cluster's median nearest-neighbour distance (pre-training
    #: on hundreds of simulated clusters uses less: the copies vary enough without it)
    copy_jitter: float = 0.75
    # DBSCAN's tuning and inference
    #: what DBSCAN's eps / min_samples maximise on synthetic fields: "ari", "ari+ari_c" or "ari+ari_c+ji_c"
    tuning_objective: str = "ari"
    n_tuning_fields: int = 16  #: fresh synthetic fields DBSCAN is tuned on
    passes: int = 1  #: inference: times the network is applied (each on the previous pass's output)
    seed: int = 0  #: seed of every random step

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, TrainingSettings] = {
    # The paper's recipe: hidden 256, 20 steps, L1 + 10 x edge term, Adam 1e-4, batch 4, ~11k steps.
    "faithful": TrainingSettings(
        preset="faithful",
        hidden=256,
        recurrent_steps=20,
        scale_encodings=False,
        edge_scale_nm=None,
        displacement_unit="delta",
        displacement_loss="l1",
        alpha=10.0,
        learning_rate=1e-4,
        schedule="constant",
        batch_size=4,
        optimizer_steps=11250,
        n_fields=1500,
        validate_every=250,
    ),
    # For CPUs: a small network fine-tuned from a shipped base model, squared error in units of the cluster
    # radius, scaled inputs and a light edge term (the paper's L1 + 10 x edge term stays on the zero-displacement
    # plateau for minutes here), two passes at inference, DBSCAN tuned on ARI, ARI_c and JI_c together.
    # Evidence for each choice: docs/method.md.
    "compact": TrainingSettings(base_model="auto", passes=2, tuning_objective="ari+ari_c+ji_c"),
}


def default_fine_step(recurrent_steps: int) -> int:
    """The last recurrent step trained toward the fine-scale centres of a two-scale model: the first half."""
    return recurrent_steps // 2 - 1
