"""MIROClusterer: the scikit-learn-style API, the README's example as written, files, and the background decision."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from napari_miro import MIROClusterer, simulate
from napari_miro.io import write_thunderstorm

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    block = re.search(r"## From Python\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    table = simulate.rings(n_clusters=8, fov_nm=3000, seed=5)
    write_thunderstorm(table, tmp_path / "cell.csv")
    monkeypatch.chdir(tmp_path)
    cell = np.array([[0.0, 0.0], [1500.0, 0.0], [1500.0, 3000.0], [0.0, 3000.0]])  # the left half
    namespace = {"marked": np.flatnonzero(table["cluster"].to_numpy() == 1), "polygon_xy": cell}
    exec(compile(block, "README.md", "exec"), namespace)
    labels = namespace["labels"]
    assert len(labels) == len(table) and labels.max() >= 4  # most of the 8 rings found
    assert (tmp_path / "model.safetensors").is_file()
    summary = namespace["summary"]
    assert summary["region"].tolist() == ["cell 1"] and 0 < summary.loc[0, "n_localizations"] < len(table)


def test_parameters_are_stored_as_given_and_the_recipe_follows_them(small_settings):
    clusterer = MIROClusterer(minutes=1.5, delta_nm=120.0, background="blinking", base_model="none", random_state=3)
    assert clone(clusterer).get_params() == clusterer.get_params()  # scikit-learn can clone it
    settings = clusterer.training_settings()
    assert (settings.max_minutes, settings.optimizer_steps, settings.delta_nm) == (1.5, None, 120.0)
    assert (settings.background, settings.base_model, settings.seed) == ("blinking", None, 3)
    assert MIROClusterer(max_steps=20).training_settings().optimizer_steps == 20
    assert MIROClusterer().training_settings().background == "auto"
    recipe = small_settings(seed=7)
    assert MIROClusterer(recipe=recipe).training_settings() == recipe  # None parameters leave the recipe alone
    for bad, message in (({"preset": "huge"}, "unknown preset"), ({"background": "dark"}, "unknown background"),
                         ({"minutes": 0}, "positive"), ({"delta_nm": -1}, "positive")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            MIROClusterer(**bad).training_settings()


def test_fit_predict_save_load(small_settings, tmp_path):
    table = simulate.rings(n_clusters=6, fov_nm=3000, seed=6)
    xy, truth = table[["x", "y"]].to_numpy(), table["cluster"].to_numpy()
    clusterer = MIROClusterer(recipe=small_settings(background="auto"), device="cpu")
    with pytest.raises(RuntimeError, match="not fitted"):
        clusterer.predict(xy)
    with pytest.raises(ValueError, match="either as clusters"):
        clusterer.fit(xy)
    labels = clusterer.fit_predict(xy, labels=truth, which=[1])
    assert labels.shape == (len(xy),) and clusterer.eps_nm_ > 0 and clusterer.min_samples_ >= 2
    assert clusterer.history_ and clusterer.base_model_ is None
    decision = clusterer.background_decision_
    assert clusterer.background_ == decision.background == "uniform"  # single localizations
    assert clusterer.model_.settings.training["background_decision"]["reason"] == decision.reason
    clusterer.save(tmp_path / "model.safetensors")
    loaded = MIROClusterer.load(tmp_path / "model.safetensors", device="cpu")
    np.testing.assert_array_equal(loaded.predict(xy), labels)
    assert loaded.background_decision_.reason == decision.reason
    result = MIROClusterer.load(tmp_path / "model.safetensors", eps_nm=1.0, min_samples=50).cluster(xy)
    assert result.labels.max() == 0 and result.collapsed.positions.shape == xy.shape  # the overrides apply
    out, statistics, _ = loaded.cluster_table(table)
    assert {"cluster", "x_collapsed", "y_collapsed"} <= set(out) and len(statistics) == labels.max()
    # HDBSCAN instead of DBSCAN, with its tuned min_cluster_size, with and without MIRO
    hdbscan = MIROClusterer.load(tmp_path / "model.safetensors", method="hdbscan")
    assert hdbscan.min_cluster_size_ >= 2 and hdbscan.alone_min_cluster_size_ >= 2
    found = hdbscan.cluster(xy)
    assert found.method == "hdbscan" and found.min_cluster_size == hdbscan.min_cluster_size_
    _, hdbscan_statistics, _ = hdbscan.cluster_table(table)
    assert len(hdbscan_statistics) == found.labels.max()
    alone = hdbscan.cluster_alone(xy)
    assert alone.shape == (len(xy),) and not np.array_equal(alone, loaded.cluster_alone(xy))
    named = MIROClusterer(recipe=small_settings(optimizer_steps=2), device="cpu").fit(
        xy, clusters=[np.flatnonzero(truth == 1), np.flatnonzero(truth == 2)], classes=["ring", "arc"]
    )
    assert named.model_.settings.class_names == ["background", "arc", "ring"]
