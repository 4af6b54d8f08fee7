"""Sample data: every bundled file opens, with ground truth, from the installed package and in napari."""

from __future__ import annotations

import pytest

from napari_miro._napari import samples


@pytest.mark.parametrize("key", sorted(samples.SAMPLES))
def test_sample_layer_data(key):
    [(data, kwargs, layer_type)] = getattr(samples, key)()
    assert layer_type == "points" and len(data) > 500
    features = kwargs["features"]
    assert {"gt_cluster", "gt_class", "gt_subcluster", "frame", "intensity", "uncertainty"} <= set(features.columns)
    assert features["gt_cluster"].nunique() > 5
    assert samples.sample_path(key).is_file()


@pytest.mark.parametrize("key", sorted(samples.SAMPLES))
def test_every_sample_opens_in_the_viewer(make_napari_viewer, key):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-miro", key)
    layer = viewer.layers[-1]
    assert layer.__class__.__name__ == "Points"
    assert "gt_cluster" in layer.features
