"""Cluster widget: MIRO + DBSCAN (or HDBSCAN) on a localization layer; results as new layers (the input is
untouched)."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_miro.colours import label_colours
from napari_miro.regions import inside_any

from ._common import LayerChooser, method_chooser, notify_error, notify_info, notify_warning, start_worker
from .layers import LOCALIZATION_COLOR
from .rois import RoiChooser, shapes_to_regions
from .session import MODEL_KEY, ClusteringRun, layer_table, session_for

UNCLUSTERED_GREY = "#6e6e6e"


def _has_model(layer) -> bool:
    return MODEL_KEY in getattr(layer, "metadata", {})


def result_layers(run: ClusteringRun, result, source_layer, class_names: list[str], baseline=None) -> list[tuple]:
    """LayerData tuples for a clustering run: collapsed points, clusters, classes, fine clusters, centroids and
    (optionally) the same method alone. Built off the main thread; added on it."""
    table = run.table
    size = float(np.mean(source_layer.size)) if len(source_layer.data) else 20.0
    name = source_layer.name
    base = {"size": size, "border_width": 0, "units": "nm", "features": table}
    yx = table[["y", "x"]].to_numpy()
    layers = [
        (
            table[["y_collapsed", "x_collapsed"]].to_numpy(),
            {**base, "name": f"{name} collapsed", "face_color": LOCALIZATION_COLOR, "visible": False},
            "points",
        ),
        (
            yx,
            {**base, "name": f"{name} clusters", "face_color": label_colours(table["cluster"].to_numpy(), yx)},
            "points",
        ),
    ]
    if "class" in table and class_names:
        palette = ["#6e6e6e", "#ff7f0e", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
        index = np.array([class_names.index(c) if c in class_names else 0 for c in table["class"]])
        colours = np.array([palette[i % len(palette)] for i in index], dtype=object)
        layers.append((yx, {**base, "name": f"{name} classes", "face_color": colours.tolist()}, "points"))
    if "fine_cluster" in table:
        layers.append(
            (
                yx,
                {
                    **base,
                    "name": f"{name} fine clusters",
                    "face_color": label_colours(table["fine_cluster"].to_numpy(), yx),
                },
                "points",
            )
        )
    stats = run.statistics
    layers.append(
        (
            stats[["y", "x"]].to_numpy(),
            {
                "name": f"{name} centroids",
                "features": stats,
                "size": 3 * size,
                "symbol": "cross",
                "face_color": "#ffffff",
                "border_width": 0,
                "units": "nm",
            },
            "points",
        )
    )
    if baseline is not None:
        layers.append(
            (
                yx,
                {
                    **base,
                    "name": f"{name} {run.method} alone",
                    "features": table.assign(cluster=baseline),
                    "face_color": label_colours(baseline, yx),
                    "visible": False,
                },
                "points",
            )
        )
    return layers


class ClusterWidget(QWidget):
    """Run MIRO + DBSCAN (or HDBSCAN) with the model attached to a layer; optionally the same method alone for
    comparison."""

    def __init__(self, napari_viewer) -> None:
        from napari.layers import Points

        super().__init__()
        self.viewer = napari_viewer
        self.layer_choice = LayerChooser(napari_viewer, Points)
        self.eps = QDoubleSpinBox()
        self.eps.setRange(0.1, 10_000.0)
        self.eps.setSuffix(" nm")
        self.min_samples = QSpinBox()
        self.min_samples.setRange(1, 100_000)
        self.method = method_chooser(
            "what clusters the collapsed localizations: DBSCAN (eps, min_samples) or HDBSCAN (one parameter, the "
            "smallest cluster; finds clusters of different densities; slower on large layers)"
        )
        self.min_cluster_size = QSpinBox()
        self.min_cluster_size.setRange(2, 1_000_000)
        self.inside = RoiChooser(napari_viewer)
        self.inside.setToolTip("cluster only the localizations inside the ROIs of this Shapes layer")
        self.compare = QCheckBox()
        self.compare.setChecked(True)
        self.run_button = QPushButton()
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.setToolTip("stop clustering (between tiles of the field); nothing is added")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("localizations", self.layer_choice)
        form.addRow("clustering", self.method)
        form.addRow("DBSCAN eps", self.eps)
        form.addRow("DBSCAN min_samples", self.min_samples)
        form.addRow("HDBSCAN min cluster size", self.min_cluster_size)
        form.addRow("cluster inside", self.inside)
        self.form = form
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.compare)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addStretch()
        self.layer_choice.currentTextChanged.connect(lambda *_: self.prefill())
        self.method.currentIndexChanged.connect(lambda *_: self._show_method())
        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        self.worker = None
        self._stop_asked = False
        self._show_method()
        self.prefill()

    @property
    def method_name(self) -> str:
        """The chosen clustering method as shown ("DBSCAN" or "HDBSCAN")."""
        return self.method.currentText()

    def _show_method(self) -> None:
        """Show the chosen method's parameters only, and name it on the buttons."""
        hdbscan = self.method.currentData() == "hdbscan"
        for field in (self.eps, self.min_samples):
            self.form.setRowVisible(field, not hdbscan)
        self.form.setRowVisible(self.min_cluster_size, hdbscan)
        self.run_button.setText(f"Run MIRO + {self.method_name}")
        self.compare.setText(f"also {self.method_name} alone on the original points (tuned the same way)")

    def prefill(self) -> None:
        """The parameters from the model's suggestion."""
        from napari_miro.inference import hdbscan_size

        layer = self.layer_choice.layer()
        trained = layer.metadata.get(MODEL_KEY) if layer is not None else None
        if trained is None:
            self.status.setText("no model on this layer: train one or load one in the Train widget")
            return
        self.eps.setValue(trained.settings.eps_nm)
        self.min_samples.setValue(trained.settings.min_samples)
        self.min_cluster_size.setValue(hdbscan_size(trained, None, alone=False))
        self.status.setText(
            f"suggested by the model: eps {trained.settings.eps_nm:g} nm, min_samples {trained.settings.min_samples}; "
            f"HDBSCAN min cluster size {self.min_cluster_size.value()}"
        )

    def run(self):
        """Cluster in a worker; the new layers are added on the main thread when it returns."""
        layer = self.layer_choice.layer()
        if layer is None:
            notify_error("Open a localization file first: there is no Points layer to cluster.")
            return None
        trained = layer.metadata.get(MODEL_KEY)
        if trained is None:
            notify_error(f"'{layer.name}' has no MIRO model: train one (Train widget) or load a model file first.")
            return None
        if len(layer.data) < 3:
            notify_error(f"'{layer.name}' holds {len(layer.data)} localization(s); clustering needs at least 3.")
            return None
        mismatch = model_mismatch(self.viewer, layer, trained)
        if mismatch:
            notify_error(mismatch)
            return None
        table = layer_table(layer)
        if (roi_layer := self.inside.layer()) is not None:
            regions, _ = shapes_to_regions(roi_layer)
            inside = inside_any(regions, table[["x", "y"]].to_numpy())
            if inside.sum() < 3:
                notify_error(f"The ROIs of '{roi_layer.name}' hold fewer than 3 localizations of '{layer.name}'.")
                return None
            table = table[inside].reset_index(drop=True)
        eps, samples, compare = float(self.eps.value()), int(self.min_samples.value()), self.compare.isChecked()
        method, size, name = self.method.currentData(), int(self.min_cluster_size.value()), self.method_name
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self._stop_asked = False
        self.status.setText("clustering...")
        self.worker = start_worker(
            _cluster_job,
            table,
            trained,
            eps,
            samples,
            compare,
            lambda: self._stop_asked,
            method,
            size,
            on_result=lambda output: self._add_results(layer, trained, output, name),
            doing="Clustering",
            on_finished=self._finished,
            progress_desc=f"MIRO + {name}",
        )
        return self.worker

    def stop(self) -> None:
        """Ask the running clustering to stop (it does between tiles)."""
        self._stop_asked = True
        self.stop_button.setEnabled(False)
        self.status.setText("stopping...")

    def _finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if self._stop_asked:
            self.status.setText("stopped: nothing was added")

    def _add_results(self, layer, trained, output, method: str = "DBSCAN") -> None:
        self._stop_asked = False  # the run finished before a late Stop could take effect: its results are added
        table, statistics, result, baseline, baseline_statistics = output
        run = ClusteringRun(layer.name, table, statistics, baseline_statistics, f"{layer.name} centroids", method)
        suffixes = ("collapsed", "clusters", "classes", "fine clusters", "centroids", "DBSCAN alone", "HDBSCAN alone")
        for name in [f"{layer.name} {suffix}" for suffix in suffixes]:
            if name in self.viewer.layers:  # a new run replaces the results of the last one, never the input
                self.viewer.layers.remove(name)
        for data, kwargs, kind in result_layers(run, result, layer, trained.settings.class_names, baseline):
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        self.viewer.layers.selection.active = self.viewer.layers[f"{layer.name} clusters"]
        session_for(self.viewer).last_run = run
        session_for(self.viewer).clustered.emit(run)
        n_clusters = int(result.labels.max(initial=0))
        text = f"{n_clusters} clusters, {np.mean(result.labels > 0):.0%} of localizations clustered"
        if baseline is not None:
            text += f"; {method} alone: {int(baseline.max(initial=0))} clusters"
        self.status.setText(text)
        notify_info(f"MIRO + {method} on '{layer.name}': {text}")
        from napari_miro.inference import bounded_note

        if (note := bounded_note(result.collapsed, trained)) is not None:
            notify_warning(f"'{layer.name}': {note}")


def model_mismatch(viewer, layer, trained) -> str | None:
    """Why a model does not fit a layer (another scale, or other classes than the annotations now hold)."""
    from napari_miro.inference import scale_mismatch

    from .annotate_widget import read_annotations
    from .session import layer_xy

    if (mismatch := scale_mismatch(trained, layer_xy(layer))) is not None:
        return f"'{layer.name}': {mismatch}"
    annotated = read_annotations(viewer, layer)
    names = sorted(set(annotated.classes)) if len(set(annotated.classes)) >= 2 else []
    model_names = list(trained.settings.class_names[1:])
    if names and names != sorted(model_names):
        trained_with = ", ".join(model_names) if model_names else "no classes"
        return (
            f"The annotations of '{layer.name}' now have the classes {', '.join(names)}, but the model was "
            f"trained with {trained_with}: train again to use them."
        )
    return None


def _cluster_job(table, trained, eps, samples, compare, should_stop=None, method="dbscan", min_cluster_size=None):
    """Worker body (no Qt, no napari): MIRO + DBSCAN (or HDBSCAN), and the same method alone when asked;
    ``should_stop`` is polled between tiles."""
    from napari_miro.estimator import MIROClusterer
    from napari_miro.inference import frames_of
    from napari_miro.stats import cluster_statistics

    if method == "hdbscan":  # DBSCAN's eps and min_samples do not apply
        eps = samples = None
    clusterer = MIROClusterer.from_model(
        trained, eps_nm=eps, min_samples=samples, device="cpu", method=method, min_cluster_size=min_cluster_size
    )
    output, statistics, result = clusterer.cluster_table(table, should_stop=should_stop)
    baseline = baseline_statistics = None
    if compare:
        xy = table[["x", "y"]].to_numpy()
        baseline = clusterer.cluster_alone(xy)
        baseline_statistics = cluster_statistics(xy, baseline, frames=frames_of(table))
    return output, statistics, result, baseline, baseline_statistics
