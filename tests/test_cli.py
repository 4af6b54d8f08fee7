"""The napari-miro command line: every command on a sample, one-line errors with exit code 2."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from napari_miro import simulate
from napari_miro.cli import SAMPLES, main, sample_background, sample_file, sample_files
from napari_miro.io import read_localizations, write_thunderstorm
from napari_miro.model_file import TrainedMIRO

FAST = ["--max-steps", "30", "--quiet"]


@pytest.fixture()
def rings_csv(tmp_path):
    df = simulate.rings(n_clusters=6, fov_nm=2000, seed=5).rename(columns={"class": "shape"})
    return write_thunderstorm(df, tmp_path / "rings.csv")


def test_info_describes_files(capsys):
    assert main(["info", str(sample_file("rings"))]) == 0
    out = capsys.readouterr().out
    assert "rings.csv" in out and "ground truth: 14 structures" in out
    assert len(sample_files()) == 4


def test_train_then_cluster(tmp_path, rings_csv, capsys, trained_rings):
    model = tmp_path / "model.safetensors"
    assert (
        main(["train", str(rings_csv), "--labels", "cluster", "--clusters", "1", "2", "--out", str(model), *FAST]) == 0
    )
    loaded = TrainedMIRO.load(model)
    assert loaded.settings.training["optimizer_steps"] == 30
    assert loaded.settings.eps_nm > 0 and loaded.settings.dbscan_eps_nm > 0
    # cluster with the better-trained session model, through a saved file
    trained, _ = trained_rings
    trained.save(tmp_path / "trained.safetensors")
    out, stats = tmp_path / "out.csv", tmp_path / "stats.csv"
    assert (
        main(
            [
                "cluster",
                str(rings_csv),
                "--model",
                str(tmp_path / "trained.safetensors"),
                "--out",
                str(out),
                "--stats",
                str(stats),
                "--quiet",
            ]
        )
        == 0
    )
    result = read_localizations(out)
    source = read_localizations(rings_csv)
    renamed = ["cluster_input" if name == "cluster" else name for name in source.columns]
    assert list(result.columns) == [*renamed, "cluster", "x_collapsed", "y_collapsed"]
    np.testing.assert_array_equal(result["cluster_input"], source["cluster"])  # the input column is kept
    assert result["cluster"].max() > 0
    table = pd.read_csv(stats)
    assert len(table) == result["cluster"].max()
    assert "clusters" in capsys.readouterr().out


def test_cluster_with_explicit_dbscan_parameters(tmp_path, rings_csv, trained_rings):
    trained, _ = trained_rings
    model = trained.save(tmp_path / "m.safetensors")
    out = tmp_path / "o.csv"
    assert (
        main(
            [
                "cluster",
                str(rings_csv),
                "--model",
                str(model),
                "--eps",
                "1",
                "--min-samples",
                "500",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert read_localizations(out)["cluster"].max() == 0  # nothing is that dense


def test_cluster_with_hdbscan(tmp_path, rings_csv, trained_rings, capsys):
    from napari_miro.cli import CLI_METHODS
    from napari_miro.inference import CLUSTERING_METHODS

    assert CLI_METHODS == CLUSTERING_METHODS
    trained, _ = trained_rings
    model = trained.save(tmp_path / "m.safetensors")
    out, stats = tmp_path / "o.csv", tmp_path / "s.csv"
    arguments = ["cluster", str(rings_csv), "--model", str(model), "--method", "hdbscan", "--out", str(out)]
    assert main([*arguments, "--stats", str(stats), "--quiet"]) == 0
    size = trained.settings.hdbscan_min_cluster_size
    assert f"MIRO + HDBSCAN, min_cluster_size {size})" in capsys.readouterr().out
    assert read_localizations(out)["cluster"].max() > 0 and len(pd.read_csv(stats)) > 0
    assert main([*arguments, "--min-cluster-size", "100000", "--quiet"]) == 0
    assert read_localizations(out)["cluster"].max() == 0  # no cluster is that large
    assert "min_cluster_size 100000" in capsys.readouterr().out


def test_cluster_warns_when_the_file_is_at_another_scale(tmp_path, rings_csv, trained_rings, capsys):
    trained, _ = trained_rings
    model = trained.save(tmp_path / "m.safetensors")
    table = read_localizations(rings_csv)
    table[["x", "y"]] = table[["x", "y"]] / 1000  # micrometres written as nm
    shrunk = tmp_path / "um.csv"
    write_thunderstorm(table, shrunk)
    capsys.readouterr()
    assert main(["cluster", str(shrunk), "--model", str(model), "--out", str(tmp_path / "o.csv"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "are the coordinates in nm" in err


def test_train_with_classes(tmp_path):
    df = simulate.shape_mixture(("spot", "ring"), n_per_shape=3, fov_nm=3000, seed=6)
    path = write_thunderstorm(df, tmp_path / "mix.csv")
    model = tmp_path / "classes.safetensors"
    assert main(["train", str(path), "--labels", "cluster", "--classes", "class", "--out", str(model), *FAST]) == 0
    loaded = TrainedMIRO.load(model)
    assert loaded.settings.class_names == ["background", "ring", "spot"]
    out = tmp_path / "mix_out.csv"
    assert main(["cluster", str(path), "--model", str(model), "--out", str(out), "--quiet"]) == 0
    assert "class" in read_localizations(out).columns and "class_input" in read_localizations(out).columns


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--minutes", "0.1", "--out", str(out), "--quiet"]) == 0
    for name in (
        "clustered.csv",
        "statistics_miro.csv",
        "statistics_dbscan.csv",
        "model.safetensors",
        "demo.png",
        "demo.json",
    ):
        assert (out / name).is_file(), name
    report = json.loads((out / "demo.json").read_text())
    methods = [row["method"] for row in report["results"]]
    assert methods == ["MIRO + DBSCAN", "DBSCAN alone", "DBSCAN alone, best on the ground truth"]
    assert all(0 <= row["JI_c"] <= 1 and row["eps_nm"] > 0 for row in report["results"])
    printed = capsys.readouterr().out
    assert "MIRO + DBSCAN" in printed and "DBSCAN alone" in printed
    assert report["background"] == "uniform"  # the rings sample: one localization per molecule


def test_blinking_sample_is_trained_with_the_blinking_background():
    assert sample_background("nanoclusters") == "blinking"
    assert {sample_background(name) for name in SAMPLES if name != "nanoclusters"} == {"uniform"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["info", "missing.csv"], "no such file"),
        (["train", "{rings}", "--labels", "nope", "--out", "{tmp}/m.safetensors"], "no column 'nope'"),
        (
            ["train", "{rings}", "--labels", "cluster", "--clusters", "99", "--out", "{tmp}/m.safetensors"],
            "no localization carries",
        ),
        (
            ["train", "{rings}", "--labels", "cluster", "--preset", "huge", "--out", "{tmp}/m.safetensors"],
            "unknown preset",
        ),
        (
            ["train", "{rings}", "--labels", "cluster", "--device", "tpu", "--out", "{tmp}/m.safetensors"],
            "unknown device",
        ),
        (["cluster", "{rings}", "--model", "{rings}", "--out", "{tmp}/o.csv"], "not a napari-miro model file"),
        (["cluster", "{rings}", "--model", "{tmp}/none.safetensors", "--out", "{tmp}/o.csv"], "no such model file"),
        (["demo", "--sample", "stars"], "unknown sample"),
        (
            ["train", "{rings}", "--labels", "cluster", "--out", "{tmp}/missing/m.safetensors"],
            "folder {tmp}/missing does not exist",
        ),
        (["cluster", "{rings}", "--model", "{tmp}/none.safetensors", "--out", "{tmp}/no/o.csv"], "does not exist"),
        (["cluster", "{rings}", "--model", "{rings}", "--out", "{tmp}"], "is a folder"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_code_2(arguments, message, tmp_path, rings_csv, capsys):
    filled = [a.format(rings=rings_csv, tmp=tmp_path) for a in arguments]
    start = time.perf_counter()
    assert main(filled) == 2
    assert time.perf_counter() - start < 10  # said before any training or clustering
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("napari-miro:") and message.format(tmp=tmp_path) in error[-1]


def test_ctrl_c_during_training_keeps_the_best_model_so_far(tmp_path, rings_csv, monkeypatch, capsys):
    import os
    import signal

    from napari_miro import cli

    steps = []
    report = cli._TrainingBar.__call__

    def interrupt_at_step_5(self, info):
        if info["phase"] == "training":
            steps.append(info["step"])
            if info["step"] == 5:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
        return report(self, info)

    monkeypatch.setattr(cli._TrainingBar, "__call__", interrupt_at_step_5)
    before = signal.getsignal(signal.SIGINT)
    model = tmp_path / "m.safetensors"
    arguments = ["train", str(rings_csv), "--labels", "cluster", "--clusters", "1", "--out", str(model)]
    assert main([*arguments, "--max-steps", "500", "--base", "none", "--quiet"]) == 0
    assert max(steps) < 20
    trained = TrainedMIRO.load(model)
    assert trained.settings.training["stopped_early"] is True
    assert "stopped early" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C works as before afterwards


@pytest.mark.parametrize(
    "arguments", [["cluster"], ["cluster", "a.csv", "--model", "m", "--out", "o", "--threads", "0"]]
)
def test_argparse_errors_also_exit_with_2(arguments):
    with pytest.raises(SystemExit) as info:
        main(arguments)
    assert info.value.code == 2


def test_base_models_listed_chosen_and_skipped(tmp_path, rings_csv, capsys, trained_rings):
    assert main(["info", "--bases"]) == 0
    out = capsys.readouterr().out
    assert "nanoclusters:" in out and "rings:" in out and "JI_c / ARI_c" in out
    model = tmp_path / "model.safetensors"
    assert main(["train", str(rings_csv), "--labels", "cluster", "--clusters", "1", "--out", str(model), *FAST]) == 0
    assert TrainedMIRO.load(model).settings.training["base_model"] == "rings"  # a hollow cluster: the rings base
    assert main(["train", str(rings_csv), "--labels", "cluster", "--clusters", "1", "--base", "none",
                 "--out", str(model), *FAST]) == 0  # fmt: skip
    assert TrainedMIRO.load(model).settings.training["base_model"] is None
    assert main(["train", str(rings_csv), "--labels", "cluster", "--base", "stars", "--out", str(model)]) == 2
    assert "no base model named 'stars'" in capsys.readouterr().err
    # --passes overrides the model's number of passes
    trained_rings[0].save(tmp_path / "trained.safetensors")
    for passes in ("1", "2"):
        out = tmp_path / f"out{passes}.csv"
        assert main(["cluster", str(rings_csv), "--model", str(tmp_path / "trained.safetensors"), "--out", str(out),
                     "--passes", passes, "--quiet"]) == 0  # fmt: skip
    one, two = read_localizations(tmp_path / "out1.csv"), read_localizations(tmp_path / "out2.csv")
    assert not np.allclose(one["x_collapsed"], two["x_collapsed"])
    assert main(["info"]) == 2


def test_ripley_writes_a_table_and_a_figure_per_roi(tmp_path, rings_csv, trained_rings, capsys):
    from napari_miro.regions import Region, write_regions

    trained, _ = trained_rings
    model = trained.save(tmp_path / "m.safetensors")
    out, png = tmp_path / "ripley.csv", tmp_path / "ripley.png"
    arguments = ["ripley", str(rings_csv), "--out", str(out), "--png", str(png), "--simulations", "5"]
    assert main([*arguments, "--model", str(model)]) == 0
    table = pd.read_csv(out)
    assert {"region", "radius_nm", "K_nm2", "L_nm", "H_nm", "H_csr_low_nm", "H_csr_high_nm"} <= set(table)
    assert table["H_nm"].max() > table["H_csr_high_nm"].max()  # rings: clustered
    assert png.stat().st_size > 10_000 and "rings: 457 localizations, 3.56 um^2, H " in capsys.readouterr().out
    rois = write_regions(
        [Region.rectangle(0, 0, 1500, 1500), Region.rectangle(1500, 0, 3000, 3000)], tmp_path / "r.csv"
    )
    assert main([*arguments, "--roi", str(rois), "--max-radius", "300", "--radii", "10"]) == 0
    table = pd.read_csv(out)
    assert table["region"].unique().tolist() == ["r 0", "r 1"] and table["radius_nm"].max() == 300
    empty = write_regions([Region.rectangle(-500, -500, -100, -100)], tmp_path / "empty.csv")
    assert main([*arguments, "--roi", str(empty)]) == 2
    assert "holds 0 localization" in capsys.readouterr().err


def test_cluster_summarises_each_roi_and_can_cluster_inside_them_only(tmp_path, rings_csv, trained_rings, capsys):
    from napari_miro.regions import Region, write_regions

    trained, _ = trained_rings
    model = trained.save(tmp_path / "m.safetensors")
    out, summary = tmp_path / "o.csv", tmp_path / "summary.csv"
    base = ["cluster", str(rings_csv), "--model", str(model), "--out", str(out), "--summary", str(summary), "--quiet"]
    assert main(base) == 0
    whole = pd.read_csv(summary)
    assert len(whole) == 1 and whole.loc[0, "region"] == rings_csv.stem and whole.loc[0, "n_clusters"] > 0
    n_all = len(read_localizations(out))
    rois = write_regions(
        [Region.rectangle(0, 0, 1500, 3000), Region.rectangle(9000, 9000, 9500, 9500)], tmp_path / "cells.csv"
    )
    assert main([*base, "--roi", str(rois)]) == 0
    per_roi = pd.read_csv(summary)
    assert per_roi["region"].tolist() == ["cells 0", "cells 1"] and per_roi.loc[1, "n_localizations"] == 0
    assert "no localization inside the ROI(s) cells 1" in capsys.readouterr().err
    assert main([*base, "--roi", str(rois), "--inside-roi"]) == 0
    inside = read_localizations(out)
    assert 0 < len(inside) < n_all and inside["x"].max() <= 1500
    assert main([*base, "--inside-roi"]) == 2
    assert "--inside-roi needs --roi" in capsys.readouterr().err
