"""Shipped base models: present with their cards, safe to load, chosen by shape, fine-tuned from one cluster."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from napari_miro import simulate
from napari_miro.annotations import AnnotatedData
from napari_miro.base_models import (
    AUTO,
    _adapted,
    arc_spread,
    base_model_names,
    choose_base_model,
    load_base_model,
    model_card,
    start_from_base,
)
from napari_miro.estimator import MIROClusterer
from napari_miro.inference import cluster_points
from napari_miro.model_file import ModelFileError
from napari_miro.recipe import PRESETS


def _single(df) -> AnnotatedData:
    return AnnotatedData.from_labels(df[["x", "y"]].to_numpy(), df["cluster"].to_numpy(), which=[1])


def test_base_models_ship_with_cards_and_load_safely():
    names = base_model_names()
    assert {"nanoclusters", "rings", "nanoclusters-blinking"} <= set(names)
    assert model_card("nanoclusters-blinking")["recipe"]["training_settings"]["background"] == "blinking"
    for name in names:
        card = model_card(name)
        assert card["name"] == name and card["optimizer_steps"] > 0 and card["training_seconds"] > 0
        assert {"MIRO + DBSCAN", "DBSCAN alone (tuned the same way)"} <= set(card["evaluation"])
        trained = load_base_model(name)
        assert trained.settings.unit_nm == pytest.approx(card["displacement_unit_nm"])
    with pytest.raises(ModelFileError, match="no base model named"):
        load_base_model("no-such-base")


def test_arc_spread_tells_rings_and_arcs_from_filled_clusters():
    ring = simulate.rings(n_clusters=1, locs_per_cluster=200, radius_nm=100, radial_sd_nm=10, background_fraction=0,
                          fov_nm=1000, seed=0)  # fmt: skip
    blob = simulate.gaussian_clusters(n_clusters=1, locs_per_cluster=200, background_fraction=0, fov_nm=1000, seed=0)
    assert arc_spread(ring[["x", "y"]].to_numpy()) < 0.15
    assert 0.4 < arc_spread(blob[["x", "y"]].to_numpy()) < 0.6
    assert choose_base_model(_single(simulate.rings(seed=1))) == "rings"
    assert choose_base_model(_single(simulate.c_shapes(seed=1))) == "rings"  # an arc: the rings base knows them
    assert choose_base_model(_single(simulate.gaussian_clusters(locs_per_cluster=60, seed=1))) == "nanoclusters"
    assert choose_base_model(_single(simulate.elliptical_clusters(seed=1))) == "nanoclusters"
    # a circle fits a few localizations well whatever their shape: too small to tell, they count as filled
    tiny = simulate.gaussian_clusters(n_clusters=40, locs_per_cluster=8, count_distribution="fixed", seed=2)
    positions, truth = tiny[["x", "y"]].to_numpy(), tiny["cluster"].to_numpy()
    looks_like_arcs = [k for k in range(1, 41) if arc_spread(positions[truth == k]) < 0.33]
    assert looks_like_arcs  # the trap is real
    assert choose_base_model(AnnotatedData.from_labels(positions, truth, which=looks_like_arcs[:1])) == "nanoclusters"


def test_a_base_adapts_to_classes_and_keeps_its_weights():
    base = load_base_model("nanoclusters").model
    adapted = _adapted(base, n_classes=3, fine_step=None)
    assert adapted.config.n_classes == 3 and adapted.head.out_features == 5
    torch.testing.assert_close(adapted.head.weight[:2], base.head.weight)
    torch.testing.assert_close(adapted.node_update.weight, base.node_update.weight)


def test_fine_tuning_starts_from_the_chosen_base():
    data = _single(simulate.rings(n_clusters=6, fov_nm=2500, seed=2))
    settings = replace(PRESETS["compact"], base_model=AUTO, optimizer_steps=3, n_fields=4, n_validation_fields=2,
                       n_tuning_fields=2, validate_every=1, hidden=8, recurrent_steps=2)  # fmt: skip
    adapted, model, name = start_from_base(data, settings)
    torch.testing.assert_close(model.node_update.weight, load_base_model("rings").model.node_update.weight)
    base = load_base_model("rings")
    assert (
        name == "rings"
        and adapted.hidden == base.model.config.hidden
        and adapted.recurrent_steps == base.model.config.steps
    )
    assert adapted.unit_nm == base.settings.unit_nm
    trained = MIROClusterer(recipe=settings, device="cpu").fit(data).model_
    assert trained.settings.training["base_model"] == "rings"
    assert trained.settings.unit_nm == pytest.approx(base.settings.unit_nm)
    assert trained.model.config.hidden == base.model.config.hidden
    assert start_from_base(data, replace(settings, base_model=None)) == (replace(settings, base_model=None), None, None)


def test_fine_labels_make_a_two_scale_model_also_from_a_base():
    """Annotated corners must never be dropped: fit makes a two-scale model whatever the caller sets."""
    npc = simulate.npc_like(n_structures=4, seed=3)
    data = AnnotatedData.from_labels(npc[["x", "y"]].to_numpy(), npc["cluster"].to_numpy(), which=[1, 2],
                                     fine=npc["subcluster"].to_numpy())  # fmt: skip
    settings = replace(PRESETS["compact"], base_model=AUTO, optimizer_steps=2, n_fields=3, n_validation_fields=2,
                       n_tuning_fields=2, validate_every=1, fine_step=None)  # fmt: skip
    trained = MIROClusterer(recipe=settings, device="cpu").fit(data).model_
    steps = trained.model.config.steps
    assert trained.is_multiscale and trained.model.config.fine_step == steps // 2 - 1
    points = npc[["x", "y"]].to_numpy()
    assert cluster_points(trained, points).fine_labels is not None
    # recurrent steps asked for that differ from the base's: the fine step is half of the base's network
    more_steps = MIROClusterer(recipe=replace(settings, recurrent_steps=steps + 8), device="cpu").fit(data).model_
    assert more_steps.model.config.steps == steps and more_steps.model.config.fine_step == steps // 2 - 1
