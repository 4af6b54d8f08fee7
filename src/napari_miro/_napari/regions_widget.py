"""ROI summary widget: per-region summaries of the last clustering (cells or areas drawn as a Shapes layer, or the
whole field) in a table; export with the ROIs; draw or load ROIs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_miro.output_files import atomic_path, check_output
from napari_miro.regions import Region, read_regions, write_regions
from napari_miro.summaries import REGION_SUMMARY_COLUMNS, empty_regions, region_summary

from ._common import ask_save_path, notify_error, notify_info, notify_warning, write_or_notify
from .rois import RoiChooser, add_regions_layer, shapes_to_regions
from .session import ClusteringRun, session_for

ROI_LAYER_NAME = "ROIs"
#: the table's columns as shown (header) and how each value is written
SHOWN = {
    "region": ("region", str),
    "n_localizations": ("localizations", lambda v: f"{v:,.0f}"),
    "area_um2": ("area (µm²)", lambda v: f"{v:.3g}"),
    "localizations_per_um2": ("loc. / µm²", lambda v: f"{v:.4g}"),
    "fraction_clustered": ("clustered", lambda v: f"{v:.0%}" if np.isfinite(v) else "-"),
    "n_clusters": ("clusters", lambda v: f"{v:,.0f}"),
    "clusters_per_um2": ("clusters / µm²", lambda v: f"{v:.3g}"),
    "median_localizations_per_cluster": ("median loc. / cluster", lambda v: f"{v:.3g}" if np.isfinite(v) else "-"),
    "median_radius_of_gyration_nm": ("median Rg (nm)", lambda v: f"{v:.3g}" if np.isfinite(v) else "-"),
    "density_in_clusters_over_outside": ("density in / out", lambda v: f"{v:.3g}" if np.isfinite(v) else "-"),
}


class RegionsWidget(QWidget):
    """Summaries per ROI of the last MIRO clustering in this viewer."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.roi_choice = RoiChooser(napari_viewer)
        self.roi_choice.setToolTip("a Shapes layer whose polygons, rectangles or ellipses are the ROIs")
        self.draw_button = QPushButton("Draw ROIs")
        self.draw_button.setToolTip(f"add a '{ROI_LAYER_NAME}' Shapes layer and draw polygons (cells, areas)")
        self.load_button = QPushButton("Load ROIs...")
        self.load_button.setToolTip("a napari Shapes CSV (as Export writes beside the summary)")
        self.summarise_button = QPushButton("Summarise")
        self.export_button = QPushButton("Export summary + ROIs (CSV)...")
        self.status = QLabel("run MIRO clustering (Cluster widget), then summarise it per ROI")
        self.status.setWordWrap(True)
        self.table = QTableWidget()
        self.table.setMinimumHeight(120)
        form = QFormLayout()
        form.addRow("ROIs", self.roi_choice)
        rois = QHBoxLayout()
        rois.addWidget(self.draw_button)
        rois.addWidget(self.load_button)
        actions = QHBoxLayout()
        actions.addWidget(self.summarise_button)
        actions.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(rois)
        layout.addLayout(actions)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        self.draw_button.clicked.connect(lambda: self.draw())
        self.load_button.clicked.connect(lambda: self.load())
        self.summarise_button.clicked.connect(lambda: self.summarise())
        self.export_button.clicked.connect(lambda: self.export())
        self.summary = None
        self.regions: list[Region] = []
        self.session = session_for(napari_viewer)
        self.session.clustered.connect(lambda run: self.summarise(run, quiet=True))

    def draw(self):
        """A new (or the existing) ROI Shapes layer, ready for drawing polygons."""
        if ROI_LAYER_NAME in self.viewer.layers:
            layer = self.viewer.layers[ROI_LAYER_NAME]
        else:
            layer = self.viewer.add_shapes(
                name=ROI_LAYER_NAME, edge_color="#ffffff", face_color="transparent", edge_width=2, units="nm"
            )
        self.viewer.layers.selection.active = layer
        layer.mode = "add_polygon"
        self.roi_choice.setCurrentText(layer.name)
        return layer

    def load(self, path: str | None = None):
        """ROIs from a napari Shapes CSV, as a new Shapes layer."""
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getOpenFileName(self, "Load ROIs", "", "napari Shapes CSV (*.csv)")
            if not path:
                return None
        try:
            regions = read_regions(path)
        except ValueError as error:
            notify_error(str(error))
            return None
        layer = add_regions_layer(self.viewer, regions, Path(path).stem)
        self.roi_choice.setCurrentText(layer.name)
        notify_info(f"{len(regions)} ROI(s) loaded from {Path(path).name}")
        return layer

    def summarise(self, run: ClusteringRun | None = None, quiet: bool = False):
        """The per-ROI summary of the last clustering (every ROI of the chosen layer, or the whole field)."""
        run = run or self.session.last_run
        if run is None:
            if not quiet:
                notify_error("Nothing to summarise yet: run MIRO clustering in the Cluster widget first.")
            return None
        xy = run.table[["x", "y"]].to_numpy()
        labels = run.table["cluster"].to_numpy()
        roi_layer = self.roi_choice.layer()
        if roi_layer is None:
            regions = [Region.bounding_box(xy, run.layer_name)]
        else:
            regions, skipped = shapes_to_regions(roi_layer)
            for note in skipped:
                notify_warning(f"'{roi_layer.name}': {note}; left out")
            if not regions:
                if not quiet:
                    notify_error(f"'{roi_layer.name}' holds no ROI: draw polygons, rectangles or ellipses on it.")
                return None
        summary = region_summary(xy, labels, regions, run.statistics)
        self.summary, self.regions = summary.assign(layer=run.layer_name), regions
        self._fill(summary)
        text = f"'{run.layer_name}' (MIRO + {run.method}): {len(regions)} region(s)"
        if empty := empty_regions(summary):
            text += f"; no localization inside {', '.join(empty)}"
            if not quiet:
                notify_warning(f"No localization of '{run.layer_name}' inside the ROI(s) {', '.join(empty)}.")
        self.status.setText(text)
        return summary

    def _fill(self, summary) -> None:
        self.table.setColumnCount(len(SHOWN))
        self.table.setRowCount(len(summary))
        self.table.setHorizontalHeaderLabels([header for header, _ in SHOWN.values()])
        for row, (_, values) in enumerate(summary.iterrows()):
            for column, (name, (_, shown)) in enumerate(SHOWN.items()):
                self.table.setItem(row, column, QTableWidgetItem(shown(values[name])))
        self.table.resizeColumnsToContents()

    def export(self, path: str | None = None) -> str | None:
        """The summary as CSV, and the ROIs beside it as ``<layer>_rois.csv`` (a napari Shapes CSV; beside the
        layer's file it is the ROI file that ``napari-miro batch`` reads for that file)."""
        if self.summary is None:
            notify_error("No summary yet: press Summarise after clustering.")
            return None
        layer = str(self.summary["layer"].iloc[0])
        path = ask_save_path(self, path, "Export ROI summary", f"{layer}_summary.csv", "CSV (*.csv)")
        if path is None:
            return None
        summary, regions = self.summary[["layer", *REGION_SUMMARY_COLUMNS]], self.regions

        def write() -> str:
            target = check_output(path, ".csv", "summary table")
            with atomic_path(target) as partial:
                summary.to_csv(partial, index=False)
            rois = target.with_name(f"{layer}_rois.csv")
            with atomic_path(rois) as partial:
                write_regions(regions, partial)
            return str(target)

        written = write_or_notify(write, f"Could not write the summary to {path}")
        if written is not None:
            notify_info(f"Summary written to {written}, its ROIs beside it (_rois.csv)")
        return written
