"""Load widget: pick a file, give a pixel size when it is in px, filter on any numeric column (and a region)
with the number of localizations kept shown live, then add the filtered Points layer. The file is untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_miro.io import LocalizationFileError, read_localizations

from ._common import notify_error
from .layers import METADATA_KEY, points_layer_data

REGION = ("x", "y")


def _spin(value: float, low: float, high: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(3)
    span = max(abs(low), abs(high), 1.0) * 10
    box.setRange(-span, span)
    box.setValue(value)
    box.setKeyboardTracking(False)
    return box


def apply_filters(df: pd.DataFrame, ranges: dict[str, tuple[float, float]]) -> np.ndarray:
    """Mask of rows whose every filtered column lies in its [low, high] range (NaN fails)."""
    keep = np.ones(len(df), bool)
    for column, (low, high) in ranges.items():
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
        keep &= (values >= low) & (values <= high)
    return keep


class LoadWidget(QWidget):
    """Read a localization file, filter it, and add the kept localizations as a new Points layer."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.path = QLineEdit()
        self.path.setPlaceholderText("ThunderSTORM or x,y CSV file")
        self.browse = QPushButton("...")
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setRange(0.0, 10_000.0)
        self.pixel_size.setSuffix(" nm")
        self.pixel_size.setToolTip("camera pixel size; needed only when the file's coordinates are in px (0 = none)")
        self.read_button = QPushButton("Read file")
        self.filters = QGridLayout()
        self.count = QLabel("")
        self.add_button = QPushButton("Add filtered layer")
        self.add_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(self.browse)
        form = QFormLayout()
        form.addRow("file", row)
        form.addRow("pixel size", self.pixel_size)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.read_button)
        layout.addLayout(self.filters)
        layout.addWidget(self.count)
        layout.addWidget(self.add_button)
        layout.addStretch()
        self.browse.clicked.connect(self._browse)
        self.read_button.clicked.connect(lambda: self.read())
        self.add_button.clicked.connect(lambda: self.add_layer())
        self.table: pd.DataFrame | None = None
        self.rows: dict[str, tuple[QCheckBox, QDoubleSpinBox, QDoubleSpinBox]] = {}

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open localizations", "", "Localizations (*.csv *.txt);;All (*)")
        if path:
            self.path.setText(path)
            self.read()

    def read(self) -> pd.DataFrame | None:
        """Read the file and offer a range filter per numeric column."""
        from napari.utils.notifications import show_warning

        pixel = self.pixel_size.value() or None
        try:
            table = read_localizations(self.path.text().strip(), pixel_size_nm=pixel, on_warning=show_warning)
        except LocalizationFileError as error:
            notify_error(str(error))
            return None
        self.table = table
        self._build_filters(table)
        self.add_button.setEnabled(True)
        self.update_count()
        return table

    def _build_filters(self, table: pd.DataFrame) -> None:
        while self.filters.count():
            item = self.filters.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.rows = {}
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        for index, column in enumerate(numeric):
            values = table[column].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
            unit = self.table.attrs.get("columns", {}).get(column, {}).get("unit_out", "")
            check = QCheckBox(f"{column} [{unit}]" if unit else column)
            check.setToolTip("x and y make a rectangular region" if column in REGION else "")
            low_box, high_box = _spin(low, low, high), _spin(high, low, high)
            for widget in (check, low_box, high_box):
                signal = widget.toggled if widget is check else widget.valueChanged
                signal.connect(lambda *_: self.update_count())
            self.filters.addWidget(check, index, 0)
            self.filters.addWidget(low_box, index, 1)
            self.filters.addWidget(high_box, index, 2)
            self.rows[column] = (check, low_box, high_box)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The active filters: column -> (low, high)."""
        return {c: (low.value(), high.value()) for c, (check, low, high) in self.rows.items() if check.isChecked()}

    def set_filter(self, column: str, low: float, high: float) -> None:
        """Turn on a filter (used by scripts and tests as well as by the controls)."""
        check, low_box, high_box = self.rows[column]
        low_box.setValue(low)
        high_box.setValue(high)
        check.setChecked(True)

    def update_count(self) -> int:
        if self.table is None:
            return 0
        kept = int(apply_filters(self.table, self.ranges()).sum())
        self.count.setText(f"{kept:,} of {len(self.table):,} localizations kept")
        return kept

    def add_layer(self):
        """Add the filtered localizations as a new Points layer (filters recorded in its metadata)."""
        if self.table is None:
            notify_error("Read a file first.")
            return None
        ranges = self.ranges()
        keep = apply_filters(self.table, ranges)
        if keep.sum() < 3:
            notify_error(f"The filters keep {int(keep.sum())} localization(s); widen them to keep at least 3.")
            return None
        filtered = self.table.loc[keep].reset_index(drop=True)
        filtered.attrs = self.table.attrs
        name = Path(self.path.text()).stem + (" filtered" if ranges else "")
        data, kwargs, _ = points_layer_data(filtered, name)
        kwargs["metadata"][METADATA_KEY]["filters"] = {c: list(r) for c, r in ranges.items()}
        return self.viewer.add_points(data, **kwargs)
