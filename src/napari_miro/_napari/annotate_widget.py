"""Annotate widget: lasso clusters on a localization layer, optionally with a class name or as fine scale."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QCheckBox, QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from napari_miro.annotations import DEFAULT_CLASS, PolygonAnnotations, annotations_from_polygons

from ._common import LayerChooser
from .session import ANNOTATION_KEY, layer_xy

FINE_SUFFIX = " fine"


def annotation_layer_name(points_name: str, fine: bool = False) -> str:
    return f"{points_name} annotations{FINE_SUFFIX if fine else ''}"


def shapes_for(viewer, points_name: str, fine: bool = False):
    """The Shapes layer that annotates ``points_name`` (coarse or fine), or None."""
    name = annotation_layer_name(points_name, fine)
    return viewer.layers[name] if name in viewer.layers else None


def read_annotations(viewer, points_layer) -> PolygonAnnotations:
    """The polygons drawn on a localization layer, as annotated clusters."""
    coarse = shapes_for(viewer, points_layer.name)
    fine = shapes_for(viewer, points_layer.name, fine=True)
    polygons = list(coarse.data) if coarse is not None else []
    classes = None
    if coarse is not None and "class" in coarse.features and len(coarse.features) == len(polygons):
        classes = [str(c) for c in coarse.features["class"]]
    fine_polygons = list(fine.data) if fine is not None and len(fine.data) else None
    return annotations_from_polygons(layer_xy(points_layer), polygons, classes, fine_polygons)


class AnnotateWidget(QWidget):
    """Choose the localization layer; draw polygons (lasso) around clusters to train from."""

    def __init__(self, napari_viewer) -> None:
        from napari.layers import Points

        super().__init__()
        self.viewer = napari_viewer
        self.layer_choice = LayerChooser(napari_viewer, Points)
        self.class_name = QLineEdit(DEFAULT_CLASS)
        self.class_name.setToolTip(
            "Shape class of the next polygons (e.g. ring, spot); two or more different names train shape classification"
        )
        self.fine = QCheckBox("fine scale (sub-clusters inside a cluster, e.g. NPC corners)")
        self.start = QPushButton("Annotate: draw polygons (lasso)")
        self.summary = QLabel("no annotation yet")
        self.summary.setWordWrap(True)
        form = QFormLayout()
        form.addRow("localizations", self.layer_choice)
        form.addRow("class of new polygons", self.class_name)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.fine)
        layout.addWidget(self.start)
        layout.addWidget(self.summary)
        layout.addStretch()
        self.start.clicked.connect(self.start_annotating)
        self.class_name.textChanged.connect(self._set_class_default)
        self.layer_choice.currentTextChanged.connect(lambda *_: self.update_summary())

    def start_annotating(self):
        """Open (or make) the Shapes layer for the chosen layer and switch it to the polygon lasso."""
        from ._common import notify_error

        points = self.layer_choice.layer()
        if points is None:
            notify_error("Open a localization file first: there is no Points layer to annotate.")
            return None
        fine = self.fine.isChecked()
        shapes = shapes_for(self.viewer, points.name, fine)
        if shapes is None:
            shapes = self.viewer.add_shapes(
                name=annotation_layer_name(points.name, fine),
                shape_type="polygon",
                edge_color="#ff4fd8" if fine else "#00e5ff",
                face_color="transparent",
                edge_width=max(2.0, float(np.mean(points.size)) / 4),
                features={"class": np.array([], dtype=object)},
                metadata={ANNOTATION_KEY: points.name},
                units=points.units,  # the localizations' (nm): one unit across layers, no napari warning
            )
            shapes.events.data.connect(lambda *_: self.update_summary())
        self._set_class_default()
        self.viewer.layers.selection.active = shapes
        shapes.mode = "add_polygon_lasso"
        self.update_summary()
        return shapes

    def _set_class_default(self, *_):
        points = self.layer_choice.layer()
        if points is None:
            return
        shapes = shapes_for(self.viewer, points.name)
        if shapes is not None:
            shapes.feature_defaults["class"] = self.class_name.text().strip() or DEFAULT_CLASS

    def update_summary(self) -> None:
        points = self.layer_choice.layer()
        if points is None:
            self.summary.setText("no localization layer")
            return
        annotations = read_annotations(self.viewer, points)
        text = f"{len(annotations.clusters)} annotated cluster(s), {annotations.n_points} localizations"
        if len(set(annotations.classes)) >= 2:
            counts = {c: annotations.classes.count(c) for c in sorted(set(annotations.classes))}
            text += "; classes: " + ", ".join(f"{c} ({n})" for c, n in counts.items())
        if annotations.fine_labels is not None:
            text += f"; {len(shapes_for(self.viewer, points.name, True).data)} fine polygon(s)"
        if annotations.empty_polygons:
            text += f"; {len(annotations.empty_polygons)} polygon(s) hold fewer than 3 localizations and are ignored"
        self.summary.setText(text)
