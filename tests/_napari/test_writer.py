"""The npe2 writer: a Points layer with features -> ThunderSTORM CSV -> the same table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_miro._napari.layers import points_layer_data
from napari_miro._napari.writer import write_points
from napari_miro.io import read_localizations


def test_writer_round_trip_with_added_cluster_labels(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text('"frame","x [um]","y [um]","intensity [ADU]"\n1,1.5,2.5,300.25\n2,3.5,4.5,400.5\n')
    df = read_localizations(source)
    data, kwargs, _ = points_layer_data(df, "in")
    features = kwargs["features"].copy()
    features["cluster"] = [0, 3]
    [written] = write_points(str(tmp_path / "out"), data, {"features": features, "metadata": kwargs["metadata"]})
    assert written.endswith("out.csv")
    header = open(written).readline()
    assert '"intensity [ADU]"' in header and '"x [nm]"' in header and '"cluster"' in header
    back = read_localizations(written)
    expected = df.assign(cluster=[0, 3])
    back.attrs, expected.attrs = {}, {}
    pd.testing.assert_frame_equal(back, expected, check_exact=True)


def test_writer_uses_layer_coordinates_and_adds_x_y_when_features_lack_them(tmp_path):
    data = np.array([[10.0, 20.0], [30.0, 40.0]])
    [written] = write_points(str(tmp_path / "p.csv"), data, {"features": pd.DataFrame({"label": [1, 2]})})
    back = read_localizations(written)
    assert list(back.columns) == ["x", "y", "label"]
    assert back["x"].tolist() == [20.0, 40.0] and back["y"].tolist() == [10.0, 30.0]


def test_viewer_saves_a_points_layer_through_the_plugin(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    layer = viewer.add_points(np.array([[1.0, 2.0], [3.0, 4.0]]), features={"cluster": [1, 2]})
    out = tmp_path / "saved.csv"
    layer.save(str(out), plugin="napari-miro")
    back = read_localizations(out)
    assert back["cluster"].tolist() == [1, 2] and back["x"].tolist() == [2.0, 4.0]
