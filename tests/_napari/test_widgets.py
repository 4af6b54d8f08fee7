"""The interactive workflow in a viewer: annotate with a polygon, train (and stop), cluster, histograms,
export; and every bad state gives a message, not a traceback."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import QTimer
from scipy.spatial import ConvexHull

from napari_miro._napari import train_widget as train_module
from napari_miro._napari.annotate_widget import AnnotateWidget, read_annotations
from napari_miro._napari.cluster_widget import ClusterWidget
from napari_miro._napari.load_widget import LoadWidget
from napari_miro._napari.session import MODEL_KEY
from napari_miro._napari.statistics_widget import StatisticsWidget
from napari_miro._napari.train_widget import TrainWidget
from napari_miro.cli import sample_file
from napari_miro.io import read_localizations
from napari_miro.recipe import PRESETS

TINY = replace(
    PRESETS["compact"],
    hidden=16,
    recurrent_steps=4,
    n_fields=8,
    n_validation_fields=2,
    n_tuning_fields=2,
    validate_every=5,
    base_model=None,
)


@pytest.fixture()
def tiny_presets(monkeypatch):
    monkeypatch.setitem(train_module.PRESETS, "compact", TINY)


@pytest.fixture()
def rings_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open(str(sample_file("rings")), plugin="napari-miro")
    return viewer


def _lasso_around(layer, label: int, margin: float = 30.0) -> np.ndarray:
    """A polygon (y, x) around the points of one ground-truth structure, as a user would lasso it."""
    features = layer.features
    yx = np.asarray(layer.data)[features["gt_cluster"].to_numpy() == label]
    hull = yx[ConvexHull(yx).vertices]
    centre = hull.mean(axis=0)
    return centre + (hull - centre) * (1 + margin / np.linalg.norm(hull - centre, axis=1).mean())


def _annotate(viewer, label: int = 3, class_name: str = "ring"):
    widget = AnnotateWidget(viewer)
    widget.class_name.setText(class_name)
    shapes = widget.start_annotating()
    shapes.add_polygons([_lasso_around(viewer.layers["rings"], label)])
    widget.update_summary()
    return widget, shapes


def _train(qtbot, viewer, minutes: float = 0.05) -> TrainWidget:
    widget = TrainWidget(viewer)
    assert widget.preset.currentText() == "compact"  # the default suits a CPU
    assert widget.delta.text().startswith("auto") and widget.clusterer().delta_nm is None  # not "1 nm"
    assert widget.settings().background == "auto"  # decided from the data when training starts
    widget.background.setCurrentText("blinking")
    assert widget.settings().background == "blinking"
    widget.background.setCurrentText("auto")
    widget.device.setCurrentText("cpu")
    widget.minutes.setValue(minutes)
    worker = widget.start()
    assert worker is not None and widget.train_button.text() == "Stop"
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    return widget


def test_every_layer_the_plugin_adds_is_in_nm(rings_viewer):
    _annotate(rings_viewer)
    assert {str(u) for layer in rings_viewer.layers for u in layer.units} == {"nanometer"}
    assert rings_viewer.layers.extent.units is not None  # napari warns "Inconsistent units" when this is None


def test_annotate_widget_opens_a_lasso_layer_and_counts(rings_viewer):
    widget, shapes = _annotate(rings_viewer)
    assert shapes.mode == "add_polygon_lasso"
    assert shapes.name == "rings annotations"
    annotations = read_annotations(rings_viewer, rings_viewer.layers["rings"])
    truth = rings_viewer.layers["rings"].features["gt_cluster"].to_numpy()
    assert len(annotations.clusters) == 1
    assert (truth[annotations.clusters[0]] == 3).mean() > 0.8
    assert "1 annotated cluster(s)" in widget.summary.text()


def test_whole_workflow(qtbot, rings_viewer, tiny_presets, messages, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "PREVIEW_MINUTES", (0.01,))  # a first model after 0.6 s of training
    source = rings_viewer.layers["rings"]
    before_data, before_features = np.array(source.data), source.features.copy()
    _annotate(rings_viewer)

    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    trainer = _train(qtbot, rings_viewer)
    timer.stop()
    assert len(ticks) > 10, "the event loop kept running during training"
    assert MODEL_KEY in source.metadata
    assert trainer.train_button.text() == "Train"
    assert trainer._losses and "model:" in trainer.status.text()
    assert "uniform background" in trainer.status.text()  # what "auto" decided, and why
    assert any("Decided: uniform background" in message for message in messages["info"]), messages["info"]
    # a first model came while training went on, with a preview of its clusters (refreshed with the final one)
    assert any("First MIRO model" in message for message in messages["info"]), messages["info"]
    qtbot.waitUntil(lambda: "rings preview" in rings_viewer.layers, timeout=30_000)
    preview = rings_viewer.layers["rings preview"]
    assert len(preview.data) == len(source.data) and preview.features["cluster"].max() > 0

    statistics = StatisticsWidget(rings_viewer)
    cluster = ClusterWidget(rings_viewer)
    assert cluster.eps.value() == pytest.approx(source.metadata[MODEL_KEY].settings.eps_nm, abs=0.01)
    cluster.run()
    qtbot.waitUntil(lambda: cluster.worker is None, timeout=60_000)
    for suffix in ("collapsed", "clusters", "centroids", "DBSCAN alone"):
        assert f"rings {suffix}" in rings_viewer.layers, suffix
    assert rings_viewer.layers.extent.units is not None  # every layer in nm
    clusters = rings_viewer.layers["rings clusters"]
    assert {"cluster", "x_collapsed", "y_collapsed", "gt_cluster"} <= set(clusters.features.columns)
    centroids = rings_viewer.layers["rings centroids"]
    assert {"n_localizations", "radius_of_gyration_nm", "nearest_neighbour_nm"} <= set(centroids.features.columns)
    # the input layer is untouched
    np.testing.assert_array_equal(source.data, before_data)
    pd.testing.assert_frame_equal(source.features, before_features)

    # histograms drawn, any statistic on any panel, a range highlights clusters, exports read back
    assert sum(len(axis.patches) for axis in statistics.axes) > 0
    assert {"elongation", "circularity", "n_frames", "frame_std"} <= set(centroids.features.columns)
    statistics.choosers[3].setCurrentIndex(statistics.choosers[3].findData("n_frames"))
    assert statistics.columns[3] == "n_frames" and len(statistics.axes[3].patches) > 0
    chosen = statistics.highlight("n_localizations", 0, 1e9)
    assert len(chosen) == len(centroids.data) and centroids.selected_data == set(chosen)
    exported = statistics.export(str(tmp_path / "stats.csv"))
    table = pd.read_csv(exported)
    assert set(table["method"]) == {"MIRO + DBSCAN", "DBSCAN"}
    saved = statistics.save_results(str(tmp_path / "clustered.csv"))
    back = read_localizations(saved)
    assert "cluster" in back.columns and len(back) == len(before_data)
    # a name without an extension: written as .csv, and the message names the file that was written
    assert statistics.save_results(str(tmp_path / "named")) == str(tmp_path / "named.csv")
    assert messages["info"][-1].endswith("named.csv")
    # outputs that cannot be written: one message each, nothing claimed, nothing raised
    assert statistics.save_results(str(tmp_path / "clustered.txt")) is None
    assert statistics.export(str(tmp_path / "missing" / "stats.csv")) is None
    assert trainer.save_model(str(tmp_path / "missing" / "model.safetensors")) is None
    assert len(messages["error"]) == 3 and all("clustered.txt" in m or "does not exist" in m for m in messages["error"])
    assert not (tmp_path / "clustered.txt").exists()
    messages["error"].clear()

    # HDBSCAN instead of DBSCAN: its own parameter, its own baseline layer, named everywhere
    cluster.method.setCurrentIndex(cluster.method.findData("hdbscan"))
    assert cluster.run_button.text() == "Run MIRO + HDBSCAN" and cluster.min_cluster_size.value() >= 2
    assert cluster.form.isRowVisible(cluster.min_cluster_size) and not cluster.form.isRowVisible(cluster.eps)
    cluster.run()
    qtbot.waitUntil(lambda: cluster.worker is None, timeout=60_000)
    assert "rings HDBSCAN alone" in rings_viewer.layers and "rings DBSCAN alone" not in rings_viewer.layers
    assert "MIRO + HDBSCAN" in statistics.summary.text() and "HDBSCAN alone" in statistics.summary.text()
    hdbscan_table = pd.read_csv(statistics.export(str(tmp_path / "hdbscan.csv")))
    assert set(hdbscan_table["method"]) == {"MIRO + HDBSCAN", "HDBSCAN"}

    # clustering only inside a drawn ROI: the result layers hold that ROI's localizations only
    rings_viewer.add_shapes([np.array([[0, 0], [0, 1600], [3200, 1600], [3200, 0]], dtype=float)],
                            shape_type="rectangle", name="left half")  # fmt: skip
    cluster.inside.setCurrentText("left half")
    cluster.run()
    qtbot.waitUntil(lambda: cluster.worker is None, timeout=60_000)
    inside = rings_viewer.layers["rings clusters"]
    assert 0 < len(inside.data) < len(source.data) and inside.data[:, 1].max() <= 1600

    # save and load the model through the widget
    path = trainer.save_model(str(tmp_path / "model.safetensors"))
    del source.metadata[MODEL_KEY]
    assert trainer.load_model(path) is not None and MODEL_KEY in source.metadata
    assert not messages["error"], messages["error"]


def test_stop_keeps_the_best_model_and_training_again_works(qtbot, rings_viewer, tiny_presets, messages):
    _annotate(rings_viewer)
    widget = TrainWidget(rings_viewer)
    widget.device.setCurrentText("cpu")
    widget.minutes.setValue(5.0)
    seen = []

    def stop_after_a_few(info):
        if info["phase"] == "training":
            seen.append(info["step"])
            if len(seen) == 3:
                widget.stop()

    worker = widget.start()
    widget._relay.progressed.connect(stop_after_a_few)
    assert worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    model = rings_viewer.layers["rings"].metadata[MODEL_KEY]
    assert model.settings.training["stopped_early"] is True
    assert model.settings.training["optimizer_steps"] < 50
    assert any("stopped early" in m for m in messages["info"])
    # train again after a stop
    widget.minutes.setValue(0.03)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert rings_viewer.layers["rings"].metadata[MODEL_KEY] is not model


def test_clustering_can_be_stopped(qtbot, rings_viewer, messages):
    from napari_miro.base_models import load_base_model

    rings_viewer.layers["rings"].metadata[MODEL_KEY] = load_base_model("rings")
    cluster = ClusterWidget(rings_viewer)
    assert not cluster.stop_button.isEnabled()
    cluster.run()
    assert cluster.stop_button.isEnabled()
    cluster.stop()
    qtbot.waitUntil(lambda: cluster.worker is None, timeout=60_000)
    assert "rings clusters" not in rings_viewer.layers and "stopped" in cluster.status.text()
    assert any("stopped" in message for message in messages["info"]) and not messages["error"]
    assert cluster.run_button.isEnabled() and not cluster.stop_button.isEnabled()


def test_a_stop_after_the_last_tile_keeps_the_results(qtbot, rings_viewer, messages, monkeypatch):
    from napari_miro._napari import cluster_widget
    from napari_miro.base_models import load_base_model

    rings_viewer.layers["rings"].metadata[MODEL_KEY] = load_base_model("rings")
    cluster = ClusterWidget(rings_viewer)
    job = cluster_widget._cluster_job

    def finished_then_stopped(*args):
        output = job(*args)
        cluster.stop()  # Stop pressed after the last tile: too late to stop anything
        return output

    monkeypatch.setattr(cluster_widget, "_cluster_job", finished_then_stopped)
    cluster.run()
    qtbot.waitUntil(lambda: cluster.worker is None, timeout=60_000)
    assert "rings clusters" in rings_viewer.layers and "stopped" not in cluster.status.text()


def test_bad_states_give_messages(qtbot, make_napari_viewer, messages, tmp_path, monkeypatch, tiny_presets):
    viewer = make_napari_viewer()
    TrainWidget(viewer).start()
    ClusterWidget(viewer).run()
    assert any("no Points layer" in m for m in messages["error"])
    viewer.open(str(sample_file("rings")), plugin="napari-miro")
    trainer, cluster = TrainWidget(viewer), ClusterWidget(viewer)
    assert trainer.start() is None and "No annotated cluster" in messages["error"][-1]
    assert cluster.run() is None and "has no MIRO model" in messages["error"][-1]
    # an empty polygon, far from every localization
    annotate = AnnotateWidget(viewer)
    annotate.start_annotating().add_polygons([np.array([[-900.0, -900.0], [-900.0, -800.0], [-800.0, -800.0]])])
    assert trainer.start() is None and "fewer than 3" in messages["error"][-1]
    # a corrupt and a foreign model file
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"garbage")
    assert trainer.load_model(str(corrupt)) is None and "not a napari-miro model file" in messages["error"][-1]
    # a model trained at another scale, and annotations with other classes than the model's
    from napari_miro.model import MIRO, MIROConfig
    from napari_miro.model_file import MIROSettings, TrainedMIRO

    rings = viewer.layers["rings"]
    rings.metadata[MODEL_KEY] = TrainedMIRO(MIRO(MIROConfig(hidden=8, steps=2)), MIROSettings(delta_nm=2.0))
    assert cluster.run() is None and "trained with delta 2 nm" in messages["error"][-1]
    rings.metadata[MODEL_KEY] = TrainedMIRO(MIRO(MIROConfig(hidden=8, steps=2)), MIROSettings(delta_nm=400.0))
    classes = annotate.start_annotating()
    classes.add_polygons([_lasso_around(rings, 5), _lasso_around(rings, 9)])
    classes.features.loc[len(classes.features) - 2, "class"] = "spot"
    classes.features.loc[len(classes.features) - 1, "class"] = "ring"
    assert cluster.run() is None and "classes" in messages["error"][-1] and "no classes" in messages["error"][-1]
    del rings.metadata[MODEL_KEY]
    # the device running out of memory during training
    from napari_miro.devices import DeviceOutOfMemory

    def exhausted(*args, **kwargs):
        raise DeviceOutOfMemory("cuda", "training")

    monkeypatch.setattr("napari_miro.estimator.MIROClusterer.fit", exhausted)
    annotate.start_annotating().add_polygons([_lasso_around(viewer.layers["rings"], 2)])
    trainer.device.setCurrentText("cpu")
    trainer.start()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=60_000)
    assert "compact preset" in messages["error"][-1]
    assert trainer.train_button.text() == "Train"


def test_load_widget_filters_and_adds_a_layer(make_napari_viewer, messages):
    viewer = make_napari_viewer()
    widget = LoadWidget(viewer)
    widget.path.setText(str(sample_file("nanoclusters")))
    table = widget.read()
    assert table is not None and "uncertainty" in widget.rows
    total = widget.update_count()
    widget.set_filter("uncertainty", 0, 14)
    kept = widget.update_count()
    assert 0 < kept < total and f"{kept:,} of {total:,}" in widget.count.text()
    layer = widget.add_layer()
    assert len(layer.data) == kept and layer.name.endswith("filtered")
    assert layer.metadata["napari_miro"]["filters"] == {"uncertainty": [0.0, 14.0]}
    assert (layer.features["uncertainty"] <= 14).all()
    widget.path.setText("/nonexistent/file.csv")
    assert widget.read() is None and "no such file" in messages["error"][-1]


def test_four_docked_widgets_fit_a_laptop_screen(make_napari_viewer):
    """Annotate, Train, Cluster and Statistics docked together must shrink to fit a 1,200 px screen with their
    buttons visible (tall figures scroll)."""
    viewer = make_napari_viewer()
    widgets = [AnnotateWidget(viewer), TrainWidget(viewer), ClusterWidget(viewer), StatisticsWidget(viewer)]
    assert sum(widget.minimumSizeHint().height() for widget in widgets) <= 1100


def test_statistics_of_a_table_without_frames_say_so(make_napari_viewer):
    from napari_miro._napari.session import ClusteringRun, session_for
    from napari_miro.stats import cluster_statistics

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 10, (30, 2)), rng.normal(300, 10, (30, 2))])
    table = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "cluster": [1] * 30 + [2] * 30})
    statistics = cluster_statistics(points, table["cluster"].to_numpy())
    widget = StatisticsWidget(viewer)
    session_for(viewer).last_run = ClusteringRun("cells", table, statistics, None)
    widget.choosers[0].setCurrentIndex(widget.choosers[0].findData("frame_std"))
    texts = [text.get_text() for text in widget.axes[0].texts]
    assert texts and "no frame numbers" in texts[0] and "'cells'" in texts[0]
    assert len(widget.axes[1].patches) > 0  # the other panels still drawn
