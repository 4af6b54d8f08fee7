"""The npe2 reader: sniffing, layer conventions, clear messages for bad tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_miro._napari.reader import NULL_LAYER, napari_get_reader

HEADER = '"id","frame","x [nm]","y [nm]","uncertainty [nm]"\n'


def _write(tmp_path: Path, text: str, name: str = "cell.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_declines_what_is_not_a_table_file(tmp_path):
    assert napari_get_reader(str(_write(tmp_path, HEADER + "1,1,2,3,4\n", "image.tif"))) is None
    assert napari_get_reader(str(tmp_path / "missing.csv")) is None
    assert napari_get_reader([]) is None
    empty_folder = tmp_path / "images"
    empty_folder.mkdir()
    _write(empty_folder, "name,value\na,1\n", "notes.csv")
    assert napari_get_reader(str(empty_folder)) is None  # no localization table: other folder readers get it


@pytest.mark.parametrize(("text", "message"), [("name,value\na,1\n", "no x and y columns"), ("", "is empty")])
def test_a_table_napari_miro_cannot_read_gets_its_own_message(tmp_path, monkeypatch, text, message):
    """When the user picks napari-miro for a CSV without x/y (or an empty one), they read why, not napari's
    'Reader refused the file'."""
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_error", messages.append)
    path = _write(tmp_path, text, "table.csv")
    reader = napari_get_reader(str(path))
    assert reader is not None and reader(str(path)) == NULL_LAYER
    assert len(messages) == 1 and message in messages[0] and "table.csv" in messages[0]


def test_a_folder_of_tables_opens_each_as_a_layer(tmp_path):
    for name in ("b.csv", "a.csv"):
        _write(tmp_path, HEADER + "1,1,100.0,200.0,10\n2,3,300.0,400.0,12\n", name)
    _write(tmp_path, "name,value\na,1\n", "notes.csv")
    reader = napari_get_reader(str(tmp_path))
    assert reader is not None
    assert [kwargs["name"] for _, kwargs, _ in reader(str(tmp_path))] == ["a", "b"]


def test_layer_data_follows_napari_conventions(tmp_path):
    path = _write(tmp_path, HEADER + "1,1,100.0,200.0,10\n2,3,300.0,400.0,12\n")
    reader = napari_get_reader(str(path))
    assert reader is not None
    [(data, kwargs, layer_type)] = reader(str(path))
    assert layer_type == "points"
    np.testing.assert_array_equal(data, [[200.0, 100.0], [400.0, 300.0]])  # (y, x), nm
    assert kwargs["name"] == "cell"
    assert list(kwargs["features"].columns) == ["id", "frame", "x", "y", "uncertainty"]
    assert 10 <= kwargs["size"] <= 50
    assert kwargs["border_width"] == 0
    assert kwargs["metadata"]["napari_miro"]["columns"]["x"]["unit_out"] == "nm"


def test_a_bad_localization_table_gives_a_message_not_a_traceback(tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_error", messages.append)
    path = _write(tmp_path, '"x [nm]","y [nm]"\n1,abc\n')
    reader = napari_get_reader(str(path))
    assert reader is not None
    assert reader(str(path)) == NULL_LAYER
    assert len(messages) == 1 and "not a number" in messages[0] and "cell.csv" in messages[0]


def test_dropped_rows_are_reported(tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", messages.append)
    path = _write(tmp_path, HEADER + "1,1,NaN,2,3\n2,1,5,6,7\n")
    [(data, _, _)] = napari_get_reader(str(path))(str(path))
    assert len(data) == 1
    assert messages and "dropped 1 of 2 rows" in messages[0]


def test_several_files_at_once(tmp_path):
    first = _write(tmp_path, HEADER + "1,1,1,2,3\n", "a.csv")
    second = _write(tmp_path, HEADER + "1,1,4,5,6\n", "b.csv")
    layers = napari_get_reader([str(first), str(second)])([str(first), str(second)])
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["a", "b"]


def test_viewer_opens_a_thunderstorm_file_through_the_plugin(make_napari_viewer, tmp_path):
    path = _write(tmp_path, HEADER + "1,1,100.0,200.0,10\n2,3,300.0,400.0,12\n")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-miro")
    assert len(layers) == 1
    layer = viewer.layers["cell"]
    assert layer.__class__.__name__ == "Points"
    np.testing.assert_array_equal(layer.data, [[200.0, 100.0], [400.0, 300.0]])
    assert layer.features["uncertainty"].tolist() == [10, 12]
    assert layer.units[0] == layer.units[1]
    assert str(layer.units[0]) == "nanometer"


def test_viewer_opens_the_real_thunderstorm_file(make_napari_viewer, shared_data):
    viewer = make_napari_viewer()
    viewer.open(str(shared_data / "thunderstorm" / "locan-thunderstorm-dstorm.csv"), plugin="napari-miro")
    layer = viewer.layers[-1]
    assert len(layer.data) == 19 and "intensity" in layer.features


def test_viewer_says_why_a_plain_table_is_not_opened(make_napari_viewer, tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_error", messages.append)
    path = _write(tmp_path, "name,value\na,1\n", "table.csv")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-miro")  # no exception: one message, no layer
    assert len(viewer.layers) == 0
    assert len(messages) == 1 and "no x and y columns" in messages[0]
