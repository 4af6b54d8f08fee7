"""Ripley widget: Ripley's H function of a localization layer (the whole field or each drawn ROI) against its
random (CSR) envelope, with the model's delta and DBSCAN eps marked: is there clustering, and at what scale?"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_miro.output_files import atomic_path, check_output
from napari_miro.plotting import draw_ripley
from napari_miro.ripley_functions import ripley_table, scale_marks

from ._common import (
    LayerChooser,
    apply_theme,
    ask_save_path,
    in_scroll_area,
    notify_error,
    notify_info,
    notify_warning,
    start_worker,
    themed_canvas,
    write_or_notify,
)
from .rois import RoiChooser, shapes_to_regions
from .session import MODEL_KEY, layer_xy

ROI_COLOURS = ["#ff9d2e", "#3cc47c", "#4aa3ff", "#e377c2", "#bcbd22", "#17becf"]


def _ripley_job(xy, regions, max_radius, simulations, seed=0):
    """Worker body (no Qt, no napari): Ripley's functions of each region (None: the whole field)."""
    from napari_miro.regions import Region
    from napari_miro.ripley_functions import ripley

    regions = regions or [Region.bounding_box(xy, "whole field")]
    radii = np.linspace(0.0, max_radius, 51)[1:] if max_radius > 0 else None
    return [(region, ripley(xy, radii, region, n_simulations=simulations, seed=seed)) for region in regions]


class RipleyWidget(QWidget):
    """Compute and plot Ripley's H(r) of a layer (or of each ROI); export the table."""

    def __init__(self, napari_viewer) -> None:
        from napari.layers import Points

        super().__init__()
        self.viewer = napari_viewer
        self.layer_choice = LayerChooser(napari_viewer, Points)
        self.roi_choice = RoiChooser(napari_viewer)
        self.roi_choice.setToolTip("a Shapes layer of ROIs (cells, areas): one curve per ROI")
        self.max_radius = QDoubleSpinBox()
        self.max_radius.setRange(0.0, 100_000.0)
        self.max_radius.setSuffix(" nm")
        self.max_radius.setSpecialValueText("auto")
        self.max_radius.setToolTip("largest radius (auto: a quarter of the region's shorter side, at most 1 µm)")
        self.simulations = QSpinBox()
        self.simulations.setRange(0, 199)
        self.simulations.setValue(19)
        self.simulations.setToolTip("random (CSR) patterns of the envelope; 19 give a pointwise test at 10%")
        self.compute_button = QPushButton("Compute Ripley's H")
        self.export_button = QPushButton("Export table (CSV)...")
        self.export_button.setEnabled(False)
        self.status = QLabel("H(r) = L(r) - r: above the grey band of random patterns, localizations cluster")
        self.status.setWordWrap(True)
        self.canvas, self.figure, self.axes = themed_canvas(napari_viewer, height=3.2)
        self.canvas.setMinimumHeight(220)
        form = QFormLayout()
        form.addRow("localizations", self.layer_choice)
        form.addRow("ROIs", self.roi_choice)
        form.addRow("max radius", self.max_radius)
        form.addRow("random patterns", self.simulations)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(in_scroll_area(self.canvas, 160))
        self.compute_button.clicked.connect(lambda: self.compute())
        self.export_button.clicked.connect(lambda: self.export())
        self.worker = None
        self.results: list = []
        self.layer_name = ""

    def compute(self):
        """Ripley's functions in a worker; the plot is drawn when it returns."""
        layer = self.layer_choice.layer()
        if layer is None:
            notify_error("Open a localization file first: there is no Points layer to analyse.")
            return None
        xy = layer_xy(layer)
        if len(xy) < 3:
            notify_error(f"'{layer.name}' holds {len(xy)} localization(s); Ripley's functions need more.")
            return None
        regions = None
        if (roi_layer := self.roi_choice.layer()) is not None:
            regions, skipped = shapes_to_regions(roi_layer)
            for note in skipped:
                notify_warning(f"'{roi_layer.name}': {note}; left out")
            regions = [r for r in regions if r.contains(xy).sum() >= 2]
            if not regions:
                notify_error(f"No ROI of '{roi_layer.name}' holds 2 or more localizations of '{layer.name}'.")
                return None
        self.compute_button.setEnabled(False)
        self.status.setText("computing...")
        self.layer_name = layer.name
        trained = layer.metadata.get(MODEL_KEY)
        self.worker = start_worker(
            _ripley_job,
            xy,
            regions,
            float(self.max_radius.value()),
            int(self.simulations.value()),
            on_result=lambda results: self.show(results, trained),
            doing="Ripley's functions",
            on_finished=self._finished,
            progress_desc="Ripley's H",
        )
        return self.worker

    def _finished(self) -> None:
        self.worker = None
        self.compute_button.setEnabled(True)

    def show(self, results: list, trained=None) -> None:
        """Draw H(r) of each region with its envelope; the model's delta and DBSCAN eps as lines."""
        self.results = results
        marks = scale_marks(trained.settings) if trained is not None else {}
        axis = self.axes[0]
        axis.clear()
        for index, (region, result) in enumerate(results):
            label = region.name if len(results) > 1 else "H(r) = L(r) - r"
            draw_ripley(axis, result, marks if index == 0 else None, ROI_COLOURS[index % len(ROI_COLOURS)], label)
        handles, labels = axis.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))  # one entry for the envelopes of several ROIs
        axis.legend(unique.values(), unique.keys(), fontsize=6, frameon=False)
        apply_theme(self.viewer, self.figure, self.axes)
        self.canvas.draw_idle()
        self.export_button.setEnabled(True)
        peaks = [f"{region.name}: {result.describe()}" for region, result in results]
        self.status.setText("; ".join(peaks))

    def export(self, path: str | None = None) -> str | None:
        if not self.results:
            notify_error("Nothing to export yet: compute Ripley's H first.")
            return None
        path = ask_save_path(self, path, "Export Ripley's functions", f"{self.layer_name}_ripley.csv", "CSV (*.csv)")
        if path is None:
            return None
        table = ripley_table(self.results)
        table.insert(0, "layer", self.layer_name)

        def write() -> str:
            target = check_output(path, ".csv", "Ripley table")
            with atomic_path(target) as partial:
                table.to_csv(partial, index=False)
            return str(target)

        written = write_or_notify(write, f"Could not write Ripley's functions to {path}")
        if written is not None:
            notify_info(f"Ripley's functions written to {written}")
        return written
