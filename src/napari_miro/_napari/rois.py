"""Regions of interest drawn in the viewer: a Shapes layer's polygons, rectangles and ellipses as
:class:`napari_miro.regions.Region` objects, and a chooser of ROI layers."""

from __future__ import annotations

import numpy as np

from napari_miro.regions import REGION_SHAPES, Region

from ._common import LayerChooser
from .session import ANNOTATION_KEY

WHOLE_FIELD = "(whole field)"
ELLIPSE_CORNERS = 64  #: an ellipse becomes a polygon of this many corners


def _ellipse_polygon(box: np.ndarray) -> np.ndarray:
    """napari keeps an ellipse as the 4 corners of its (possibly rotated) bounding box: its outline as a
    polygon."""
    centre = box.mean(axis=0)
    half_u, half_v = (box[1] - box[0]) / 2, (box[3] - box[0]) / 2
    angles = np.linspace(0.0, 2 * np.pi, ELLIPSE_CORNERS, endpoint=False)
    return centre + np.cos(angles)[:, None] * half_u + np.sin(angles)[:, None] * half_v


def shapes_to_regions(layer) -> tuple[list[Region], list[str]]:
    """The layer's areas as regions named ``<layer> <index>`` (x, y in nm), and a note for each shape that
    encloses no area (lines, paths) and was left out."""
    regions, skipped = [], []
    for index, (vertices, kind) in enumerate(zip(layer.data, layer.shape_type, strict=True)):
        corners = np.asarray(vertices, dtype=np.float64)[:, -2:]
        if kind not in REGION_SHAPES:
            skipped.append(f"shape {index} is a {kind}")
            continue
        if kind == "ellipse":
            corners = _ellipse_polygon(corners)
        try:
            regions.append(Region(corners[:, ::-1], f"{layer.name} {index}"))
        except ValueError as error:
            skipped.append(str(error))
    return regions, skipped


def add_regions_layer(viewer, regions: list[Region], name: str):
    """A Shapes layer (polygons, nm) of regions read from a file."""
    return viewer.add_shapes(
        [region.to_napari() for region in regions],
        shape_type="polygon",
        name=name,
        edge_color="#ffffff",
        face_color="transparent",
        edge_width=2,
        units="nm",
    )


class RoiChooser(LayerChooser):
    """The Shapes layers that hold ROIs (annotation lassos left out), after a "whole field" entry."""

    def __init__(self, viewer, parent=None) -> None:
        from napari.layers import Shapes

        super().__init__(viewer, Shapes, parent, exclude=lambda layer: ANNOTATION_KEY in layer.metadata)

    def refresh(self, *_) -> None:
        current = self.currentText()
        super().refresh()
        self.blockSignals(True)
        self.insertItem(0, WHOLE_FIELD)
        self.setCurrentText(current if current and self.findText(current) >= 0 else WHOLE_FIELD)
        self.blockSignals(False)

    def layer(self):
        """The chosen ROI layer, or None for the whole field."""
        return None if self.currentText() == WHOLE_FIELD else super().layer()
