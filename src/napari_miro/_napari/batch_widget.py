"""Batch widget: cluster many files with one model on local Dask workers, in the background, with progress and
Stop; at the end the per-group statistics (histograms and medians) show in the widget, beside the viewer."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_miro.batch import BATCH_REPORT, FAILED, ClusterParameters, group_summary, run_batch
from napari_miro.stats import SUMMARY_STATISTICS

from ._common import (
    apply_theme,
    in_scroll_area,
    method_chooser,
    notify_error,
    notify_info,
    start_worker,
    themed_canvas,
)
from .session import MODEL_KEY

MODEL_FILE = "model file"
MODEL_FILTER = "napari-miro model (*.safetensors)"


class _Relay(QObject):
    """Carries progress from the batch thread to the main thread (queued Qt signal)."""

    progressed = Signal(int, int, str)
    started = Signal(dict)


class _ModelChoice(QComboBox):
    """A combo box that refreshes its entries each time it opens (a layer gains its model without an event)."""

    def __init__(self, refresh) -> None:
        super().__init__()
        self._refresh = refresh

    def showPopup(self) -> None:
        self._refresh()
        super().showPopup()


class BatchWidget(QWidget):
    """Run MIRO + DBSCAN on many localization files with the model trained in the viewer or a model file."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.inputs = QListWidget()
        self.inputs.setToolTip("localization files; a folder stands for every .csv/.txt file under it")
        add_files, add_folder, clear = QPushButton("Add files..."), QPushButton("Add folder..."), QPushButton("Clear")
        self.model_source = _ModelChoice(self.refresh_models)
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("path of a .safetensors model")
        browse_model = QPushButton("...")
        self.eps = QDoubleSpinBox()
        self.eps.setRange(0.0, 10_000.0)
        self.eps.setSuffix(" nm")
        self.eps.setSpecialValueText("model's")
        self.min_samples = QSpinBox()
        self.min_samples.setRange(0, 100_000)
        self.min_samples.setSpecialValueText("model's")
        self.method = method_chooser(
            "what clusters the collapsed localizations (HDBSCAN uses the model's min cluster size)"
        )
        self.workers = QSpinBox()
        self.workers.setRange(1, max(1, os.cpu_count() or 1) * 4)
        self.workers.setValue(max(1, os.cpu_count() or 1))
        self.group_by = QLineEdit("folder")
        self.group_by.setToolTip("'folder': each file's parent folder is its group; or a regular expression (path)")
        self.out_dir = QLineEdit()
        self.out_dir.setPlaceholderText("output folder")
        browse_out = QPushButton("...")
        self.force = QCheckBox("redo files already clustered with this model")
        self.ripley = QCheckBox("also Ripley's functions of each file (or of each ROI in <name>_rois.csv)")
        self.inside_rois = QCheckBox("cluster only inside each file's ROIs (<name>_rois.csv beside it)")
        self.run_button = QPushButton("Run batch")
        self.progress_bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.canvas, self.figure, self.axes = themed_canvas(napari_viewer, 4, 1, height=8.5)
        self.canvas.setMinimumHeight(380)
        self.table = QTableWidget()
        self.table.setMinimumHeight(110)

        buttons = QHBoxLayout()
        for button in (add_files, add_folder, clear):
            buttons.addWidget(button)
        model_row, out_row = QHBoxLayout(), QHBoxLayout()
        model_row.addWidget(self.model_path)
        model_row.addWidget(browse_model)
        out_row.addWidget(self.out_dir)
        out_row.addWidget(browse_out)
        form = QFormLayout()
        form.addRow("model", self.model_source)
        form.addRow("", model_row)
        form.addRow("clustering", self.method)
        form.addRow("DBSCAN eps", self.eps)
        form.addRow("DBSCAN min_samples", self.min_samples)
        form.addRow("workers", self.workers)
        form.addRow("group by", self.group_by)
        form.addRow("output", out_row)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("inputs"))
        layout.addWidget(self.inputs)
        layout.addLayout(buttons)
        layout.addLayout(form)
        layout.addWidget(self.force)
        layout.addWidget(self.ripley)
        layout.addWidget(self.inside_rois)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(in_scroll_area(self.canvas, 200))
        layout.addWidget(self.table)

        add_files.clicked.connect(self._choose_files)
        add_folder.clicked.connect(self._choose_folder)
        clear.clicked.connect(self.inputs.clear)
        browse_model.clicked.connect(self._choose_model)
        browse_out.clicked.connect(self._choose_out_dir)
        self.model_source.currentTextChanged.connect(self._model_source_changed)
        self.run_button.clicked.connect(self.toggle)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self.refresh_models)
        self.worker = None
        self._progress = None  #: napari.utils.progress while a batch runs
        self._stop = threading.Event()
        self.result = None
        self.refresh_models()

    # inputs and model ------------------------------------------------------------------------------------
    def add_inputs(self, paths) -> None:
        """Add files or folders to the batch (each once)."""
        present = {self.inputs.item(i).text() for i in range(self.inputs.count())}
        for path in map(str, paths):
            if path not in present:
                self.inputs.addItem(path)
                present.add(path)
        if not self.out_dir.text() and self.inputs.count():
            first = Path(self.inputs.item(0).text())
            self.out_dir.setText(str((first if first.is_dir() else first.parent) / "napari-miro-batch"))

    def input_paths(self) -> list[str]:
        return [self.inputs.item(i).text() for i in range(self.inputs.count())]

    def refresh_models(self, *_) -> None:
        """The model choices: every layer carrying a model trained or loaded in the viewer, then a model file.
        A layer's model is preferred unless a model file has been typed in."""
        current = self.model_source.currentText()
        names = [layer.name for layer in self.viewer.layers if MODEL_KEY in getattr(layer, "metadata", {})]
        keep = current in names or (current == MODEL_FILE and self.model_path.text().strip())
        self.model_source.blockSignals(True)
        self.model_source.clear()
        self.model_source.addItems([*names, MODEL_FILE])
        self.model_source.setCurrentText(current if keep else [*names, MODEL_FILE][0])
        self.model_source.blockSignals(False)
        self._model_source_changed(self.model_source.currentText())

    def _model_source_changed(self, text: str) -> None:
        self.model_path.setEnabled(text == MODEL_FILE)

    def _choose_files(self) -> None:
        chosen, _ = QFileDialog.getOpenFileNames(self, "Localization files", "", "Localization tables (*.csv *.txt)")
        self.add_inputs(chosen)

    def _choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Folder of localization files")
        if chosen:
            self.add_inputs([chosen])

    def _choose_model(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Model", "", MODEL_FILTER)
        if chosen:
            self.model_path.setText(chosen)

    def _choose_out_dir(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Output folder")
        if chosen:
            self.out_dir.setText(chosen)

    def _model_file(self, out_dir: Path) -> Path:
        """The model to run: the chosen file, or the viewer's model saved into the output folder (so that the
        batch's results keep the model that made them)."""
        source = self.model_source.currentText()
        if source == MODEL_FILE:
            if not self.model_path.text().strip():
                raise ValueError("Choose a model file, or train a model in the viewer first.")
            return Path(self.model_path.text().strip())
        trained = self.viewer.layers[source].metadata[MODEL_KEY]
        out_dir.mkdir(parents=True, exist_ok=True)
        return trained.save(out_dir / "model.safetensors")

    def parameters(self) -> ClusterParameters:
        hdbscan = self.method.currentData() == "hdbscan"
        return ClusterParameters(
            eps_nm=None if hdbscan else self.eps.value() or None,
            min_samples=None if hdbscan else self.min_samples.value() or None,
            method=self.method.currentData(),
            ripley=self.ripley.isChecked(),
            inside_rois=self.inside_rois.isChecked(),
        )

    # running ---------------------------------------------------------------------------------------------
    def toggle(self) -> None:
        if self.worker is not None:
            self.stop()
        else:
            self.start()

    def start(self):
        """Start the batch in a worker thread; returns the worker (None when the settings are not complete)."""
        self.refresh_models()
        try:
            if not self.inputs.count():
                raise ValueError("Add localization files or a folder to the batch first.")
            if not self.out_dir.text().strip():
                raise ValueError("Choose an output folder.")
            out_dir = Path(self.out_dir.text().strip())
            model = self._model_file(out_dir)
        except (ValueError, OSError) as error:
            notify_error(str(error))
            return None
        self._stop.clear()
        relay = _Relay()
        relay.progressed.connect(self._on_progress)
        relay.started.connect(self._on_started)
        self._relay = relay
        self.progress_bar.setValue(0)
        from napari.utils import progress

        self._progress = progress(total=0, desc="MIRO batch (files)")  # napari's activity dock
        self.run_button.setText("Stop")
        self.status.setText("starting Dask workers...")
        self.worker = start_worker(
            run_batch,
            self.input_paths(),
            model,
            out_dir,
            self.parameters(),
            self.workers.value(),
            None,
            self.group_by.text().strip() or None,
            self.force.isChecked(),
            lambda done, total, outcome: relay.progressed.emit(done, total, outcome["status"]),
            self._stop.is_set,
            relay.started.emit,
            on_result=self._on_result,
            doing="The batch",
            on_finished=self._on_finished,
        )
        return self.worker

    def stop(self) -> None:
        """Cancel the files not yet started; finished files keep their results."""
        self._stop.set()
        self.status.setText("stopping: waiting for the files in progress...")

    def _on_started(self, info: dict) -> None:
        self.progress_bar.setRange(0, info["files"])
        if self._progress is not None:
            self._progress.total = info["files"]
            self._progress.refresh()
        dashboard = f"; Dask dashboard: {info['dashboard']}" if info["dashboard"] else ""
        self.status.setText(f"{info['files']} file(s) on {info['workers']} worker(s){dashboard}")

    def _on_progress(self, done: int, total: int, status: str) -> None:
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)
        if self._progress is not None:
            self._progress.total = total
            self._progress.n = done
            self._progress.refresh()
        failed = " (a file failed: see the report)" if status == FAILED else ""
        self.status.setText(f"{done} / {total} files{failed}")

    def _on_result(self, result) -> None:
        self.result = result
        self.status.setText(f"{result.summary()}. Results in {result.out_dir}.")
        self.show_statistics(result.statistics, result.regions)
        if result.n_failed:
            notify_error(f"{result.n_failed} file(s) failed; their errors are in {result.out_dir / BATCH_REPORT}.")
        else:
            notify_info(f"Batch finished: {result.summary()}.")

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setText("Run batch")
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    # results ---------------------------------------------------------------------------------------------
    def show_statistics(self, statistics, regions=None) -> None:
        """Per-group histograms, a box plot per group of the fraction clustered per ROI (or file), and a table of
        per-group medians."""
        from napari_miro.plotting import draw_group_boxes, draw_group_histograms

        for axis in self.axes:
            axis.clear()
        if len(statistics):
            draw_group_histograms(self.axes[:3], statistics)
            for axis in self.axes[:3]:
                axis.set_ylabel("fraction", fontsize=7)
                if axis.get_legend() is not None:
                    axis.get_legend().get_frame().set_alpha(0.5)
        if regions is not None and len(regions):
            draw_group_boxes(self.axes[3:], regions)
            self.axes[3].yaxis.label.set_fontsize(7)
        apply_theme(self.viewer, self.figure, self.axes)
        self.canvas.draw_idle()
        summary = group_summary(statistics)
        headers = ["group", "files", "clusters"] + [f"median {label}" for _, label in SUMMARY_STATISTICS]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(summary))
        for row, values in enumerate(summary.itertuples(index=False)):
            for column, value in enumerate(values):
                text = f"{value:.1f}" if isinstance(value, float) else str(value)
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
