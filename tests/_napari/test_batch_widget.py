"""The Batch widget: a folder of files with the model trained in the viewer, on local Dask workers, in the
background; Stop; per-group statistics shown at the end; bad settings give messages."""

from __future__ import annotations

import pandas as pd
import pytest

from napari_miro import simulate
from napari_miro._napari.batch_widget import MODEL_FILE, BatchWidget
from napari_miro._napari.session import MODEL_KEY
from napari_miro.batch import BATCH_STATISTICS
from napari_miro.io import write_thunderstorm


@pytest.fixture()
def folder(tmp_path):
    for condition, seed in (("control", 1), ("treated", 2)):
        (tmp_path / "cells" / condition).mkdir(parents=True)
        field = simulate.rings(n_clusters=5, fov_nm=2000, seed=seed)
        write_thunderstorm(field, tmp_path / "cells" / condition / "cell.csv")
    return tmp_path / "cells"


def test_batch_widget_runs_the_viewers_model_over_a_folder(qtbot, make_napari_viewer, trained_rings, folder, messages):
    viewer = make_napari_viewer()
    layer = viewer.add_points([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]], name="trained here")
    widget = BatchWidget(viewer)
    assert widget.model_source.currentText() == MODEL_FILE  # no model in the viewer yet
    widget.start()
    assert messages["error"] and "Add localization files" in messages["error"][-1]
    layer.metadata[MODEL_KEY] = trained_rings[0]
    widget.refresh_models()
    assert widget.model_source.currentText() == "trained here"
    widget.add_inputs([folder])
    widget.add_inputs([folder])  # each input once
    assert widget.input_paths() == [str(folder)]
    assert widget.out_dir.text().endswith("napari-miro-batch")
    widget.workers.setValue(2)
    worker = widget.start()
    assert worker is not None and widget.run_button.text() == "Stop"
    qtbot.waitUntil(lambda: widget.worker is None, timeout=180_000)
    assert widget.run_button.text() == "Run batch"
    result = widget.result
    assert result is not None and result.complete, messages
    assert (result.out_dir / "model.safetensors").is_file()  # the viewer's model is kept with its results
    statistics = pd.read_csv(result.out_dir / BATCH_STATISTICS)
    assert set(statistics["group"]) == {"control", "treated"}
    assert widget.table.rowCount() == 2 and widget.table.item(0, 0).text() == "control"
    assert any(axis.patches for axis in widget.axes)
    assert widget.axes[3].lines  # box plots per group of the fraction clustered per file
    assert messages["info"] and "Batch finished" in messages["info"][-1]
    assert layer.data.shape == (3, 2)  # the viewer's layers are untouched
    widget.eps.setValue(30.0)
    widget.method.setCurrentIndex(widget.method.findData("hdbscan"))
    parameters = widget.parameters()
    assert parameters.method == "hdbscan" and parameters.eps_nm is None  # DBSCAN's eps does not apply
    assert not parameters.ripley
    widget.ripley.setChecked(True)
    widget.inside_rois.setChecked(True)
    assert widget.parameters().ripley and widget.parameters().inside_rois


def test_batch_widget_stop_and_bad_model(qtbot, make_napari_viewer, trained_rings, folder, tmp_path, messages):
    viewer = make_napari_viewer()
    widget = BatchWidget(viewer)
    widget.add_inputs([folder])
    widget.start()
    assert "Choose a model file" in messages["error"][-1]
    widget.model_path.setText(str(folder / "control" / "cell.csv"))  # not a model
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert "not a napari-miro model" in messages["error"][-1]
    widget.model_path.setText(str(trained_rings[0].save(tmp_path / "model.safetensors")))
    widget.workers.setValue(1)
    widget.start()
    widget.toggle()  # Stop, before the workers have started
    assert widget._stop.is_set() and "stopping" in widget.status.text()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert "not run" in set(widget.result.report["status"])
    assert widget.run_button.text() == "Run batch"
