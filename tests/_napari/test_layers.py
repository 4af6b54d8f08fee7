"""Localization tables as Points layers: cluster colours."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_a_reopened_clustered_table_is_coloured_by_its_clusters(tmp_path):
    from napari_miro._napari.layers import LOCALIZATION_COLOR, points_layer_data

    df = pd.DataFrame({"x": [0.0, 10.0, 500.0, 510.0], "y": [0.0, 5.0, 0.0, 5.0], "cluster": [1, 1, 2, 0]})
    _, kwargs, _ = points_layer_data(df, "clustered")
    colours = np.asarray(kwargs["face_color"])
    assert colours.shape == (4, 4) and not np.allclose(colours[0], colours[2]) and np.allclose(colours[0], colours[1])
    _, plain, _ = points_layer_data(df.drop(columns="cluster"), "plain")
    assert plain["face_color"] == LOCALIZATION_COLOR
