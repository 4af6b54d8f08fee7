"""Train widget: device, preset, steps, delta, time budget; Train turns into Stop; live loss; Save / Load."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_miro.annotations import suggest_delta
from napari_miro.devices import available_devices
from napari_miro.estimator import MIROClusterer
from napari_miro.recipe import PRESETS
from napari_miro.time_left import TimeLeft, format_duration
from napari_miro.tuning import tuning_note

from ._common import (
    LayerChooser,
    apply_theme,
    ask_save_path,
    notify_error,
    notify_info,
    start_worker,
    themed_canvas,
    write_or_notify,
)
from .annotate_widget import read_annotations
from .session import MODEL_KEY, layer_xy

MODEL_FILTER = "napari-miro model (*.safetensors)"


#: Minutes of training after which the best model so far is handed over (first result, then refinements).
PREVIEW_MINUTES = (0.5, 1.5, 4.0, 10.0, 30.0, 90.0)
#: Layers up to this size get a live preview of the clusters (larger ones: the model only, to cluster by hand).
PREVIEW_MAX_POINTS = 200_000


class _Relay(QObject):
    """Carries progress from the training thread to the main thread (queued Qt signals)."""

    progressed = Signal(dict)
    model_ready = Signal(float, object)


class TrainWidget(QWidget):
    """Train MIRO from the annotated clusters of a localization layer."""

    def __init__(self, napari_viewer) -> None:
        from napari.layers import Points

        super().__init__()
        self.viewer = napari_viewer
        self.layer_choice = LayerChooser(napari_viewer, Points)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.preset = QComboBox()
        self.preset.addItems(sorted(PRESETS, key=lambda name: name != "compact"))  # compact first: it suits a CPU
        self.preset.setCurrentText("compact")
        self.preset.setToolTip(
            "compact: small network and a recipe that learns in minutes on a CPU; faithful: the "
            "paper's network and schedule (hours on a CPU, for a GPU)"
        )
        from napari_miro.base_models import base_model_names

        self.base = QComboBox()
        self.base.addItems(["auto", "none", *base_model_names()])
        self.base.setToolTip(
            "start from a pre-trained base model and fine-tune it on your clusters (compact preset): auto picks "
            "rings or nanoclusters from the annotated clusters' shape; none trains from scratch"
        )
        self.background = QComboBox()
        self.background.addItems(["auto", "uniform", "blinking"])
        self.background.setToolTip(
            "the background of the synthetic training fields: auto (decided from your data and shown when training "
            "ends), uniform (one localization per molecule, e.g. "
            "merged or ground-truth tables) or blinking (each molecule gives several localizations close "
            "together, as in raw dSTORM / PALM tables; the copies of the annotated clusters are then re-made "
            "as new blinking molecules too, and none is smaller than the clumps the background makes by chance)"
        )
        self.steps = QSpinBox()
        self.steps.setRange(1, 100)
        self.delta = QDoubleSpinBox()
        self.delta.setRange(0.0, 100_000.0)
        self.delta.setSuffix(" nm")
        self.delta.setDecimals(0)
        self.delta.setSpecialValueText("auto")  # shown at 0: suggested from the annotated clusters at Train
        self.delta.setToolTip("graph edge length; auto: 0.75 x the annotated clusters' median extent")
        self.suggest = QPushButton("suggest")
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.05, 24 * 60)
        self.minutes.setValue(3.0)
        self.minutes.setSuffix(" min")
        self.preview = QCheckBox("first result after ~30 s, refined while training goes on")
        self.preview.setChecked(True)
        self.preview.setToolTip(
            "the best model so far is attached to the layer (the Cluster widget can use it at once) and, for "
            f"layers of up to {PREVIEW_MAX_POINTS:,} localizations, its clusters are shown in a preview layer"
        )
        self.train_button = QPushButton("Train")
        self.save_button = QPushButton("Save model...")
        self.load_button = QPushButton("Load model...")
        self.status = QLabel("no model")
        self.status.setWordWrap(True)
        self.canvas, self.figure, (self.loss_axis,) = themed_canvas(napari_viewer, height=2.2)
        self.canvas.setMinimumHeight(120)
        delta_row = QHBoxLayout()
        delta_row.addWidget(self.delta)
        delta_row.addWidget(self.suggest)
        form = QFormLayout()
        form.addRow("localizations", self.layer_choice)
        form.addRow("device", self.device)
        form.addRow("preset", self.preset)
        form.addRow("start from", self.base)
        form.addRow("background", self.background)
        form.addRow("recurrent steps", self.steps)
        form.addRow("delta (edge length)", delta_row)
        form.addRow("training time", self.minutes)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview)
        layout.addWidget(self.train_button)
        layout.addWidget(self.canvas)
        layout.addWidget(self.status)
        layout.addLayout(files)
        self.preset.currentTextChanged.connect(self._preset_changed)
        self.suggest.clicked.connect(self.suggest_delta)
        self.train_button.clicked.connect(self.toggle)
        self.save_button.clicked.connect(self.save_model)
        self.load_button.clicked.connect(self.load_model)
        self.layer_choice.currentTextChanged.connect(lambda *_: self._show_model())
        self._preset_changed(self.preset.currentText())
        self.worker = None
        self._stop = threading.Event()
        self._progress = None
        self._time_left = None  #: a napari_miro.time_left.TimeLeft while training runs
        self._losses: list[tuple[int, float]] = []
        self._validation: list[tuple[int, float]] = []
        self._last_draw = 0.0
        self._show_model()

    # settings --------------------------------------------------------------------------------------------
    def _preset_changed(self, name: str) -> None:
        self.steps.setValue(PRESETS[name].recurrent_steps)
        self.base.setEnabled(name == "compact")
        self.base.setCurrentText(PRESETS[name].base_model or "none")

    def _annotated(self):
        layer = self.layer_choice.layer()
        if layer is None:
            raise ValueError("Open a localization file first: there is no Points layer to train on.")
        annotations = read_annotations(self.viewer, layer)
        if not annotations.clusters:
            if annotations.empty_polygons:
                raise ValueError("The polygons hold fewer than 3 localizations each: draw them around a cluster.")
            raise ValueError(
                f"No annotated cluster on '{layer.name}': use the Annotate widget to lasso one or a few clusters first."
            )
        return layer, annotations.to_annotated_data(layer_xy(layer))

    def suggest_delta(self) -> float | None:
        try:
            _, data = self._annotated()
        except ValueError as error:
            notify_error(str(error))
            return None
        value = suggest_delta(data)
        self.delta.setValue(value)
        return value

    def clusterer(self) -> MIROClusterer:
        """The estimator the controls describe (recurrent steps beyond the preset's recipe)."""
        preset = PRESETS[self.preset.currentText()]
        return MIROClusterer(
            recipe=replace(preset, recurrent_steps=self.steps.value()),
            base_model=self.base.currentText() if self.base.isEnabled() else "none",
            background=self.background.currentText(),
            minutes=float(self.minutes.value()),
            delta_nm=float(self.delta.value()) or None,
            device=self.device.currentText(),
        )

    def settings(self):
        """The training recipe the controls describe."""
        return self.clusterer().training_settings()

    # training --------------------------------------------------------------------------------------------
    def toggle(self) -> None:
        if self.worker is not None:
            self.stop()
        else:
            self.start()

    def start(self):
        """Start training in a worker thread (the viewer stays responsive); returns the worker."""
        from napari.utils import progress

        try:
            layer, data = self._annotated()
        except ValueError as error:
            notify_error(str(error))
            return None
        clusterer = self.clusterer()
        settings = clusterer.training_settings()
        self._stop.clear()
        self._losses, self._validation = [], []
        relay = _Relay()
        relay.progressed.connect(self._on_progress)
        relay.model_ready.connect(lambda minutes, trained: self._on_model_ready(layer, minutes, trained))
        self._relay = relay
        checkpoints = [m for m in PREVIEW_MINUTES if m < settings.max_minutes] if self.preview.isChecked() else []
        self._time_left = TimeLeft(settings, checkpoints)
        self._progress = progress(total=int(settings.max_minutes * 60), desc="MIRO training (s)")
        self.train_button.setText("Stop")
        self.status.setText(f"preparing synthetic fields from {len(data.clusters)} annotated cluster(s)...")
        self.worker = start_worker(
            _fit,
            clusterer,
            data,
            relay.progressed.emit,
            self._stop.is_set,
            checkpoints,
            relay.model_ready.emit,
            on_result=lambda result: self._on_trained(layer, result),
            doing="Training",
            on_finished=self._on_finished,
        )
        return self.worker

    def stop(self) -> None:
        """Ask the training to stop; it keeps the best model so far."""
        self._stop.set()
        self.status.setText("stopping: finishing the current step...")

    def _on_progress(self, info: dict) -> None:
        if self._time_left is None:
            self._time_left = TimeLeft(self.settings())
        phase = info["phase"]
        left = f"about {format_duration(self._time_left.update(info))} left"
        if phase == "fields":
            self.status.setText(f"synthetic fields {info['step']} / {info['total']}, {left}")
            return
        if phase == "tuning":
            self.status.setText(f"tuning DBSCAN on the synthetic fields, {left}")
            return
        self._losses.append((info["step"], info["smoothed_loss"]))
        if "validation_loss" in info:
            self._validation.append((info["step"], info["validation_loss"]))
        seconds = info.get("training_seconds", info["seconds"])
        if self._progress is not None:
            self._progress.n = min(int(seconds), self._progress.total)
            self._progress.refresh()
        self.status.setText(f"step {info['step']}, loss {info['smoothed_loss']:.4f}, {left}")
        if time.monotonic() - self._last_draw > 0.5:
            self.draw_loss()

    def draw_loss(self) -> None:
        self._last_draw = time.monotonic()
        axis = self.loss_axis
        axis.clear()
        if self._losses:
            steps, values = zip(*self._losses, strict=True)
            axis.plot(steps, values, color="#ffb000", linewidth=1, label="training")
        if self._validation:
            steps, values = zip(*self._validation, strict=True)
            axis.plot(steps, values, "o-", color="#00e5ff", markersize=3, linewidth=1, label="validation")
            axis.legend(fontsize=7)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("loss")
        axis.set_yscale("log" if self._losses and min(v for _, v in self._losses) > 0 else "linear")
        apply_theme(self.viewer, self.figure, [axis])
        self.canvas.draw_idle()

    def _on_model_ready(self, layer, minutes: float, trained) -> None:
        """A model from the middle of training: attach it (usable at once) and preview its clusters."""
        if self.worker is None:  # training has finished meanwhile: the final model is already there
            return
        layer.metadata[MODEL_KEY] = trained
        steps = trained.settings.training.get("optimizer_steps", "?")
        notify_info(
            f"First MIRO model after {minutes:g} min of training ({steps} steps) attached to '{layer.name}'; "
            "training goes on and will refine it."
            if minutes == min(PREVIEW_MINUTES)
            else f"MIRO model refined ({minutes:g} min, {steps} steps)."
        )
        self.preview_clusters(layer, trained)

    def preview_clusters(self, layer, trained):
        """Cluster the layer with ``trained`` in a worker and show the labels in a '<layer> preview' layer."""
        from napari_miro.colours import label_colours

        from .session import PREVIEW_KEY, layer_xy

        if not self.preview.isChecked() or len(layer.data) > PREVIEW_MAX_POINTS or len(layer.data) < 3:
            return None
        xy = layer_xy(layer)

        def show(result) -> None:
            name = f"{layer.name} preview"
            colours = label_colours(result.labels, xy[:, ::-1])
            clusters = int(result.labels.max())
            if name in self.viewer.layers:
                preview = self.viewer.layers[name]
                preview.features = {"cluster": result.labels}
                preview.face_color = colours
            else:
                size = float(np.mean(layer.size)) if len(layer.data) else 20.0
                preview = self.viewer.add_points(
                    np.asarray(layer.data), name=name, size=size, face_color=colours, border_width=0,
                    features={"cluster": result.labels}, units="nm", metadata={PREVIEW_KEY: True},
                )  # fmt: skip
            self.status.setText(self.status.text().split(" | ")[0] + f" | preview: {clusters} clusters")

        clusterer = MIROClusterer.from_model(trained, device="cpu")
        return start_worker(clusterer.cluster, xy, on_result=show, doing="The preview")

    def _on_trained(self, layer, clusterer: MIROClusterer) -> None:
        trained, run = clusterer.model_, clusterer.training_
        layer.metadata[MODEL_KEY] = trained
        if f"{layer.name} preview" in self.viewer.layers:
            self.preview_clusters(layer, trained)
        stopped = " (stopped early; the best model so far is kept)" if run.stopped_early else ""
        decided = f" Decided: {clusterer.background_decision_.reason}." if clusterer.background_decision_ else ""
        notify_info(f"MIRO trained on '{layer.name}' in {run.seconds:.0f} s{stopped}.{decided}")
        self._show_model()
        self.draw_loss()

    def _on_finished(self) -> None:
        self.worker = None
        self.train_button.setText("Train")
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        if self._stop.is_set() and MODEL_KEY not in getattr(self.layer_choice.layer(), "metadata", {}):
            self.status.setText("stopped before a model was trained")

    def _show_model(self) -> None:
        layer = self.layer_choice.layer()
        trained = layer.metadata.get(MODEL_KEY) if layer is not None else None
        if trained is None:
            self.status.setText("no model on this layer: annotate clusters, then Train (or Load a model)")
            return
        s = trained.settings
        info = s.training
        self.status.setText(
            f"model: {s.preset}, hidden {trained.model.config.hidden}, {trained.model.config.steps} steps, delta "
            f"{s.delta_nm:g} nm, trained {info.get('optimizer_steps', '?')} steps in {info.get('seconds', 0):.0f} s; "
            f"suggested eps {s.eps_nm:g} nm, min_samples {s.min_samples}"
            + (f"; classes: {', '.join(s.class_names[1:])}" if s.class_names else "")
            + (f". {note}" if (note := tuning_note(trained)) else "")
            + (f". {decision['reason']}" if (decision := info.get("background_decision")) else "")
        )

    # files -----------------------------------------------------------------------------------------------
    def save_model(self, path: str | None = None) -> str | None:
        layer = self.layer_choice.layer()
        trained = layer.metadata.get(MODEL_KEY) if layer is not None else None
        if trained is None:
            notify_error("There is no trained model on this layer to save: train one first.")
            return None
        path = ask_save_path(self, path, "Save MIRO model", f"{layer.name}.safetensors", MODEL_FILTER)
        if path is None:
            return None
        saved = write_or_notify(lambda: str(trained.save(path)), f"Could not save the model to {path}")
        if saved is not None:
            notify_info(f"Model saved to {saved}")
        return saved

    def load_model(self, path: str | None = None):
        from napari_miro.model_file import ModelFileError, TrainedMIRO

        layer = self.layer_choice.layer()
        if layer is None:
            notify_error("Open a localization file first: a model is attached to a Points layer.")
            return None
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Load MIRO model", "", MODEL_FILTER + ";;All files (*)")
        if not path:
            return None
        try:
            trained = TrainedMIRO.load(path)
        except ModelFileError as error:
            notify_error(str(error))
            return None
        layer.metadata[MODEL_KEY] = trained
        self.delta.setValue(trained.settings.delta_nm)
        self.steps.setValue(trained.model.config.steps)
        self._show_model()
        return trained


def _fit(clusterer: MIROClusterer, data, progress, should_stop, checkpoint_minutes, on_model) -> MIROClusterer:
    """The worker's job: fit the clusterer on the annotated clusters."""
    return clusterer.fit(
        data, progress=progress, should_stop=should_stop, checkpoint_minutes=checkpoint_minutes, on_model=on_model
    )
