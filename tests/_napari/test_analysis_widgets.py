"""The analysis around the clustering in the viewer: Ripley's H of a layer or of each ROI, summaries per ROI,
ROIs drawn, exported and loaded back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_miro._napari.regions_widget import ROI_LAYER_NAME, RegionsWidget
from napari_miro._napari.ripley_widget import RipleyWidget
from napari_miro._napari.rois import WHOLE_FIELD, shapes_to_regions
from napari_miro._napari.session import ClusteringRun, session_for
from napari_miro.cli import sample_file
from napari_miro.stats import cluster_statistics


@pytest.fixture()
def rings(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open(str(sample_file("rings")), plugin="napari-miro")
    return viewer


def _rois(viewer):
    """Two rectangles and an ellipse over the rings sample, and a line (no area), as (y, x)."""
    return viewer.add_shapes(
        [
            np.array([[0, 0], [0, 1500], [3000, 1500], [3000, 0]], dtype=float),
            np.array([[0, 1500], [0, 3200], [3000, 3200], [3000, 1500]], dtype=float),
            np.array([[500, 500], [500, 1500], [1500, 1500], [1500, 500]], dtype=float),
            np.array([[0, 0], [100, 100]], dtype=float),
        ],
        shape_type=["rectangle", "rectangle", "ellipse", "line"],
        name="cells",
    )


def test_shapes_become_regions_and_lines_are_named(rings):
    regions, skipped = shapes_to_regions(_rois(rings))
    assert [r.name for r in regions] == ["cells 0", "cells 1", "cells 2"] and skipped == ["shape 3 is a line"]
    assert regions[0].area == pytest.approx(1500 * 3000)
    assert regions[2].area == pytest.approx(np.pi * 500 * 500, rel=0.01)  # the ellipse as a 64-gon


def test_ripley_of_the_field_and_of_each_roi(qtbot, rings, messages, tmp_path):
    widget = RipleyWidget(rings)
    assert widget.roi_choice.currentText() == WHOLE_FIELD
    widget.simulations.setValue(5)
    widget.compute()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert len(widget.results) == 1 and "H peaks at" in widget.status.text()
    assert len(widget.axes[0].lines) >= 2 and widget.axes[0].collections  # H, zero line, envelope band
    _rois(rings)
    widget.roi_choice.setCurrentText("cells")
    widget.max_radius.setValue(400.0)
    widget.compute()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert [region.name for region, _ in widget.results] == ["cells 0", "cells 1", "cells 2"]
    assert messages["warning"] and "shape 3 is a line" in messages["warning"][-1]
    table = pd.read_csv(widget.export(str(tmp_path / "ripley.csv")))
    assert table["region"].unique().tolist() == ["cells 0", "cells 1", "cells 2"]
    assert table["radius_nm"].max() == pytest.approx(400.0) and (table["layer"] == "rings").all()


def test_ripley_says_when_rois_miss_the_localizations(rings, messages):
    rings.add_shapes([np.array([[-900, -900], [-900, -800], [-800, -800]], dtype=float)], shape_type="polygon",
                     name="elsewhere")  # fmt: skip
    widget = RipleyWidget(rings)
    widget.roi_choice.setCurrentText("elsewhere")
    assert widget.compute() is None and "No ROI of 'elsewhere'" in messages["error"][-1]


def test_roi_summary_of_the_last_run_drawn_exported_and_loaded(rings, messages, tmp_path):
    widget = RegionsWidget(rings)
    assert widget.summarise() is None and "Nothing to summarise" in messages["error"][-1]
    layer = rings.layers["rings"]
    table = layer.features.assign(x=layer.data[:, 1], y=layer.data[:, 0])
    table["cluster"] = table["gt_cluster"]  # the truth stands in for a clustering run
    statistics = cluster_statistics(table[["x", "y"]].to_numpy(), table["cluster"].to_numpy())
    run = ClusteringRun("rings", table, statistics, None)
    session_for(rings).last_run = run
    session_for(rings).clustered.emit(run)  # a new run is summarised at once
    assert widget.table.rowCount() == 1 and widget.table.item(0, 0).text() == "rings"
    _rois(rings)
    rings.add_shapes([np.array([[9000, 9000], [9000, 9500], [9500, 9500]], dtype=float)], shape_type="polygon",
                     name="far")  # fmt: skip
    widget.roi_choice.setCurrentText("cells")
    summary = widget.summarise()
    assert summary["region"].tolist() == ["cells 0", "cells 1", "cells 2"]
    assert summary["n_clusters"].sum() >= statistics.shape[0] - 1 and widget.table.rowCount() == 3
    written = widget.export(str(tmp_path / "rings_summary.csv"))
    assert pd.read_csv(written)["region"].tolist() == ["cells 0", "cells 1", "cells 2"]
    loaded = widget.load(str(tmp_path / "rings_rois.csv"))
    assert loaded.name == "rings_rois" and len(loaded.data) == 3
    assert widget.roi_choice.currentText() == "rings_rois"
    widget.roi_choice.setCurrentText("far")
    assert widget.summarise()["n_localizations"].tolist() == [0]
    assert "No localization of 'rings' inside the ROI(s) far 0" in messages["warning"][-1]
    roi_layer = widget.draw()
    assert roi_layer.name == ROI_LAYER_NAME and roi_layer.mode == "add_polygon"
    assert widget.draw() is roi_layer  # one ROI layer, reused
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    assert widget.load(str(tmp_path / "bad.csv")) is None and "not a napari Shapes CSV" in messages["error"][-1]
