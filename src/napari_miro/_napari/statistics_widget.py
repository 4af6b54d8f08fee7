"""Statistics widget: histograms of any four cluster statistics, MIRO + DBSCAN overlaid on DBSCAN alone; selecting
a range highlights those clusters in the viewer; export to CSV; save the clustered layer through the writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from qtpy.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_miro.output_files import atomic_path, check_output
from napari_miro.plotting import overlay_histograms
from napari_miro.stats import FRAME_COLUMNS, STATISTICS_LABELS, compare_statistics

from ._common import (
    apply_theme,
    ask_save_path,
    in_scroll_area,
    notify_error,
    notify_info,
    theme_colours,
    themed_canvas,
    write_or_notify,
)
from .session import ClusteringRun, session_for
from .writer import write_points

#: the statistics shown first, one per panel (each panel's combo box offers every one of STATISTICS_LABELS)
DEFAULT_HISTOGRAMS = ["n_localizations", "radius_of_gyration_nm", "nearest_neighbour_nm", "elongation"]
MIRO_COLOUR, DBSCAN_COLOUR = "#ff9d2e", "#3cc47c"


class StatisticsWidget(QWidget):
    """Histograms of the last clustering run of this viewer."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.canvas, self.figure, self.axes = themed_canvas(napari_viewer, rows=2, columns=2, height=5.0)
        self.canvas.setMinimumHeight(320)
        self.summary = QLabel("run MIRO + DBSCAN (Cluster widget) to see cluster statistics")
        self.summary.setWordWrap(True)
        self.choosers: list[QComboBox] = []
        choosers = QGridLayout()
        for index, column in enumerate(DEFAULT_HISTOGRAMS):
            chooser = QComboBox()
            for name, label in STATISTICS_LABELS.items():
                chooser.addItem(label, name)
            chooser.setCurrentIndex(chooser.findData(column))
            chooser.setToolTip("the statistic this panel shows")
            chooser.currentIndexChanged.connect(lambda *_: self.show_run(self.run) if self.run is not None else None)
            choosers.addWidget(chooser, index // 2, index % 2)
            self.choosers.append(chooser)
        self.export_button = QPushButton("Export statistics (CSV)...")
        self.save_button = QPushButton("Save clustered layer...")
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(choosers)
        layout.addWidget(in_scroll_area(self.canvas, 120))
        layout.addLayout(buttons)
        self.export_button.clicked.connect(lambda: self.export())
        self.save_button.clicked.connect(lambda: self.save_results())
        self.selectors = []
        self.selected: tuple[str, float, float] | None = None
        self.session = session_for(napari_viewer)
        self.session.clustered.connect(self.show_run)
        if self.session.last_run is not None:
            self.show_run(self.session.last_run)

    @property
    def run(self) -> ClusteringRun | None:
        return self.session.last_run

    @property
    def columns(self) -> list[str]:
        """The statistic each panel shows."""
        return [chooser.currentData() for chooser in self.choosers]

    def show_run(self, run: ClusteringRun) -> None:
        """Draw the chosen histograms of a clustering run."""
        from matplotlib.widgets import SpanSelector

        self.selectors = []
        miro, dbscan = run.statistics, run.dbscan_statistics
        for axis, column in zip(self.axes, self.columns, strict=True):
            axis.clear()
            axis.set_xlabel(STATISTICS_LABELS[column], fontsize=8)
            if column not in miro:
                missing = "frame numbers (a 'frame' column)" if column in FRAME_COLUMNS else column
                axis.text(0.5, 0.5, f"no {missing}\nin '{run.layer_name}'", ha="center", va="center", fontsize=7,
                          transform=axis.transAxes)  # fmt: skip
                axis.set_xticks([])
                axis.set_yticks([])
                continue
            series = [(f"MIRO + {run.method}", miro[column], MIRO_COLOUR)]
            if dbscan is not None and column in dbscan:
                series.insert(0, (f"{run.method} alone", dbscan[column], DBSCAN_COLOUR))
            overlay_histograms(axis, series, fractions=True)
            axis.yaxis.label.set_fontsize(7)
            axis.tick_params(labelsize=7)
            selector = SpanSelector(
                axis,
                lambda low, high, column=column: self.highlight(column, low, high),
                "horizontal",
                useblit=False,
                interactive=True,
                props={"alpha": 0.25, "facecolor": "#ffffff"},
            )
            self.selectors.append(selector)
        apply_theme(self.viewer, self.figure, self.axes)
        # one legend for every histogram, above them, so that it covers no bar and narrows no axis
        for legend in self.figure.legends:
            legend.remove()
        handles, labels = max((axis.get_legend_handles_labels() for axis in self.axes), key=lambda hl: len(hl[1]))
        legend = self.figure.legend(handles, labels, loc="upper center", ncols=2, fontsize=7, frameon=False)
        for text in legend.get_texts():
            text.set_color(theme_colours(self.viewer)["text"])
        self.figure.set_layout_engine("tight", rect=(0, 0, 1, 0.96))
        self.canvas.draw_idle()
        text = f"'{run.layer_name}': MIRO + {run.method} {len(miro)} clusters"
        if dbscan is not None:
            text += f", {run.method} alone {len(dbscan)} clusters"
        classes = miro["class"].replace("", np.nan).dropna().value_counts().sort_index()
        if len(classes):
            text += " (" + ", ".join(f"{name} {count}" for name, count in classes.items()) + ")"
        self.summary.setText(text + ". Drag across a histogram to highlight those clusters.")

    def highlight(self, column: str, low: float, high: float) -> list[int]:
        """Select, in the centroids layer, the MIRO clusters whose statistic lies in [low, high]."""
        run = self.run
        if run is None or run.centroids_layer not in self.viewer.layers:
            return []
        values = run.statistics[column].to_numpy()
        chosen = np.flatnonzero((values >= low) & (values <= high))
        layer = self.viewer.layers[run.centroids_layer]
        layer.selected_data = set(chosen.tolist())
        self.viewer.layers.selection.active = layer
        self.selected = (column, low, high)
        self.summary.setText(
            f"{len(chosen)} cluster(s) with {column} in [{low:.4g}, {high:.4g}] selected in '{run.centroids_layer}'"
        )
        return chosen.tolist()

    def export(self, path: str | None = None) -> str | None:
        run = self.run
        if run is None:
            notify_error("No statistics yet: run MIRO + DBSCAN in the Cluster widget first.")
            return None
        path = ask_save_path(self, path, "Export cluster statistics", f"{run.layer_name}_statistics.csv", "CSV (*.csv)")
        if path is None:
            return None
        table = run.statistics.assign(method=f"MIRO + {run.method}")
        if run.dbscan_statistics is not None:
            table = compare_statistics(run.statistics, run.dbscan_statistics, run.method)
        table.insert(0, "layer", run.layer_name)

        def write() -> str:
            target = check_output(path, ".csv", "statistics table")
            with atomic_path(target) as partial:
                pd.DataFrame(table).to_csv(partial, index=False)
            return str(target)

        written = write_or_notify(write, f"Could not write the statistics to {path}")
        if written is not None:
            notify_info(f"Statistics written to {written}")
        return written

    def save_results(self, path: str | None = None) -> str | None:
        """Write the clustered layer (every column + cluster labels) as a ThunderSTORM CSV via the writer."""
        run = self.run
        name = f"{run.layer_name} clusters" if run is not None else None
        if name is None or name not in self.viewer.layers:
            notify_error("No clustered layer to save: run MIRO + DBSCAN in the Cluster widget first.")
            return None
        path = ask_save_path(
            self, path, "Save clustered localizations", f"{run.layer_name}_clustered.csv", "ThunderSTORM CSV (*.csv)"
        )
        if path is None:
            return None
        layer = self.viewer.layers[name]

        def write() -> str:
            target = check_output(path, ".csv", "clustered table")
            meta = {"features": layer.features, "metadata": layer.metadata}
            return write_points(str(target), layer.data, meta)[0]

        written = write_or_notify(write, f"Could not write the clustered localizations to {path}")
        if written is not None:
            notify_info(f"Clustered localizations written to {written}")
        return written
