"""Annotated clusters: validation, label columns, fields laid side by side."""

from __future__ import annotations

import numpy as np
import pytest

from napari_miro import simulate
from napari_miro.annotations import AnnotatedData


def test_annotations_are_validated_with_clear_messages():
    positions = np.random.default_rng(0).uniform(0, 100, (50, 2))
    with pytest.raises(ValueError, match="no annotated cluster"):
        AnnotatedData(positions, [])
    with pytest.raises(ValueError, match="at least 3"):
        AnnotatedData(positions, [np.array([1, 2])])
    with pytest.raises(ValueError, match="do not exist"):
        AnnotatedData(positions, [np.array([1, 2, 99])])
    with pytest.raises(ValueError, match="label"):
        AnnotatedData.from_labels(positions, np.zeros(50, int), which=[3])


def test_annotations_from_labels_with_classes_and_fine_labels():
    df = simulate.shape_mixture(("spot", "ring"), n_per_shape=4, seed=1)
    data = AnnotatedData.from_labels(
        df[["x", "y"]].to_numpy(),
        df["cluster"].to_numpy(),
        classes=df["class"].to_numpy(),
        fine=df["subcluster"].to_numpy(),
    )
    assert len(data.clusters) == 8
    assert data.class_names == ["background", "ring", "spot"]
    assert sorted(set(data.class_ids)) == [1, 2] and data.n_classes == 3
    assert all(len(f) == len(c) for f, c in zip(data.fine_labels, data.clusters, strict=True))


def test_fields_are_laid_side_by_side_far_apart():
    import pandas as pd

    from napari_miro.annotations import lay_side_by_side

    first = pd.DataFrame({"x": [10.0, 110.0, 10.0], "y": [0.0, 0.0, 100.0]})
    second = pd.DataFrame({"x": [500.0, 600.0, 500.0], "y": [5.0, 5.0, 105.0]})
    positions, field, area = lay_side_by_side([first, second])
    assert field.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(positions[:3], [[0, 0], [100, 0], [0, 100]])
    assert positions[3:, 0].min() == pytest.approx(100 + 100_000)  # 100 um after the first field ends
    np.testing.assert_allclose(positions[3:, 1], second["y"])
    assert area == pytest.approx(2 * 5000.0)  # two right triangles of 100 x 100 nm
