"""Batch clustering on Dask: a real LocalCluster of 2 worker processes and a scheduler started on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_miro import simulate
from napari_miro.batch import (
    DONE,
    FAILED,
    NOT_RUN,
    SKIPPED,
    ClusterParameters,
    OutputPaths,
    find_inputs,
    group_of,
    group_summary,
    run_batch,
    run_fingerprint,
)
from napari_miro.cli import main
from napari_miro.io import read_localizations, write_thunderstorm
from napari_miro.regions import Region, write_regions


@pytest.fixture(scope="module")
def model_file(trained_rings, tmp_path_factory) -> Path:
    trained, _ = trained_rings
    return trained.save(tmp_path_factory.mktemp("model") / "rings.safetensors")


@pytest.fixture
def inputs(tmp_path) -> Path:
    """Two conditions of simulated ring fields (one file per condition with the same name) and a corrupt file."""
    root = tmp_path / "cells"
    for condition, seed in (("control", 3), ("treated", 4)):
        folder = root / condition
        folder.mkdir(parents=True)
        field = simulate.rings(n_clusters=6, fov_nm=2500, seed=seed)
        write_thunderstorm(simulate.add_thunderstorm_columns(field, seed=seed), folder / "cell1.csv")
    write_thunderstorm(simulate.rings(n_clusters=4, fov_nm=2000, seed=5), root / "treated" / "cell2.csv")
    # two cells drawn in control/cell1 (napari Shapes CSV beside the file): summarised one by one, not an input
    write_regions([Region.rectangle(0, 0, 1200, 2500), Region.rectangle(1200, 0, 2500, 2500)],
                  root / "control" / "cell1_rois.csv")  # fmt: skip
    (root / "treated" / "broken.csv").write_text('"frame","intensity [photon]"\n1,200\n')
    return root


def _cluster_one_by_one(path: Path, model: Path, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert main(["cluster", str(path), "--model", str(model), "--out", str(out / "t.csv"),
                 "--stats", str(out / "s.csv"), "--quiet"]) == 0  # fmt: skip
    return read_localizations(out / "t.csv"), pd.read_csv(out / "s.csv")


def test_batch_matches_cluster_one_by_one_resumes_and_reports_bad_files(inputs, model_file, tmp_path, capsys):
    out = tmp_path / "results"
    result = run_batch([inputs], model_file, out, workers=2, group_by="folder", figure=True)
    assert result.workers == 2
    report = result.report.set_index(result.report["file"].map(lambda f: Path(f).name + Path(f).parent.name))
    assert report.loc["broken.csvtreated", "status"] == FAILED
    assert "no x and y columns" in report.loc["broken.csvtreated", "error"]
    assert (report.drop("broken.csvtreated")["status"] == DONE).all()
    assert result.n_failed == 1 and not result.complete
    assert sorted(result.statistics["group"].unique()) == ["control", "treated"]
    assert (out / "batch_statistics.csv").is_file() and (out / "batch_report.csv").is_file()
    assert result.figure is not None and result.figure.stat().st_size > 10_000

    # every finished file equals `napari-miro cluster` on that file alone
    for path in find_inputs([inputs]):
        if path.name == "broken.csv":
            continue
        paths = OutputPaths.for_input(path, inputs.resolve(), out)
        expected_table, expected_statistics = _cluster_one_by_one(path, model_file, tmp_path)
        table = read_localizations(paths.table)
        assert list(table.columns) == list(expected_table.columns)
        np.testing.assert_array_equal(table["cluster"], expected_table["cluster"])
        collapsed = ["x_collapsed", "y_collapsed"]
        np.testing.assert_allclose(table[collapsed], expected_table[collapsed], atol=1e-6)
        pd.testing.assert_frame_equal(pd.read_csv(paths.statistics), expected_statistics)
        batch_rows = result.statistics[result.statistics["file"] == str(path)].drop(columns=["file", "group"])
        assert len(batch_rows) == len(expected_statistics)
    assert len(result.statistics) == int(result.report["n_clusters"].sum())
    # one summary row per ROI where the file has ROIs, one per file elsewhere; box plots per group drawn
    regions = pd.read_csv(out / "batch_regions.csv")
    assert sorted(regions["region"]) == ["cell1", "cell1_rois 0", "cell1_rois 1", "cell2"]
    assert regions.groupby("group").size().to_dict() == {"control": 2, "treated": 2}
    assert (regions["fraction_clustered"] > 0).all() and len(result.regions) == 4

    # a rerun skips the finished files and retries the failed one; --force redoes them
    written = {p: p.stat().st_mtime_ns for p in (out / "files").rglob("*_clustered.csv")}
    again = run_batch([inputs], model_file, out, workers=2, group_by="folder", figure=False)
    assert sorted(again.report["status"]) == [FAILED, SKIPPED, SKIPPED, SKIPPED]
    assert written == {p: p.stat().st_mtime_ns for p in (out / "files").rglob("*_clustered.csv")}
    pd.testing.assert_frame_equal(again.statistics, result.statistics)
    # changed ROIs make their file run again
    write_regions([Region.rectangle(0, 0, 2500, 2500)], inputs / "control" / "cell1_rois.csv")
    redrawn = run_batch([inputs], model_file, out, workers=1, group_by="folder", figure=False)
    assert sorted(redrawn.report["status"]) == [DONE, FAILED, SKIPPED, SKIPPED]
    assert sorted(redrawn.regions["region"]) == ["cell1", "cell1_rois 0", "cell2"]
    other = run_batch([inputs / "control"], model_file, out / "eps", ClusterParameters(eps_nm=25.0), workers=1)
    assert other.report["status"].tolist() == [DONE]
    forced = run_batch([inputs / "control"], model_file, out / "eps", ClusterParameters(eps_nm=25.0), workers=1,
                       force=True)  # fmt: skip
    assert forced.report["status"].tolist() == [DONE]
    hdbscan = run_batch([inputs / "control"], model_file, out / "hdbscan",
                        ClusterParameters(method="hdbscan", ripley=True), workers=1)  # fmt: skip
    row = hdbscan.report.iloc[0]
    assert row["status"] == DONE and row["method"] == "hdbscan" and row["min_cluster_size"] >= 2
    # Ripley's functions per ROI of the file, gathered over the batch and drawn per group
    ripley = pd.read_csv(out / "hdbscan" / "batch_ripley.csv")
    assert ripley["region"].unique().tolist() == ["cell1_rois 0"]  # the ROI file as redrawn above
    assert {"file", "group", "radius_nm", "H_nm", "H_csr_high_nm"} <= set(ripley.columns)
    assert (ripley.groupby("region")["H_nm"].max() > ripley.groupby("region")["H_csr_high_nm"].max()).all()
    assert hdbscan.figure is not None and hdbscan.figure.stat().st_size > 10_000
    # clustering only inside each file's ROIs; a file without an ROI file says what it lacks
    write_regions([Region.rectangle(0, 0, 1200, 2500)], inputs / "control" / "cell1_rois.csv")
    inside = run_batch([inputs], model_file, out / "inside", ClusterParameters(inside_rois=True), workers=1)
    report = inside.report.set_index(inside.report["file"].map(lambda f: Path(f).parent.name + "/" + Path(f).name))
    assert report.loc["control/cell1.csv", "status"] == DONE
    assert "add cell2_rois.csv beside it" in report.loc["treated/cell2.csv", "error"]
    clustered = read_localizations(report.loc["control/cell1.csv", "clustered_table"])
    whole = read_localizations(inputs / "control" / "cell1.csv")
    assert 0 < len(clustered) < len(whole) and clustered["x"].max() <= 1200


def test_batch_stop_leaves_files_not_run(inputs, model_file, tmp_path):
    calls = []
    result = run_batch(
        [inputs / "treated" / "cell2.csv", inputs / "control" / "cell1.csv"],
        model_file,
        tmp_path / "out",
        workers=1,
        should_stop=lambda: calls.append(1) or len(calls) > 1,
    )
    statuses = result.report["status"].tolist()
    assert NOT_RUN in statuses
    assert set(statuses) <= {DONE, NOT_RUN}


def test_batch_on_a_scheduler_started_on_loopback(inputs, model_file, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard", "--scheduler-file", str(scheduler_file)]
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", *common],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out = tmp_path / "remote"
        code = main(["batch", str(inputs / "control"), "--model", str(model_file), "--out", str(out),
                     "--scheduler", address, "--quiet"])  # fmt: skip
        assert code == 0
        local = run_batch([inputs / "control"], model_file, tmp_path / "local", workers=1)
        remote = pd.read_csv(out / "batch_statistics.csv")
        pd.testing.assert_frame_equal(remote.drop(columns="file"), local.statistics.drop(columns="file"),
                                      check_dtype=False)  # fmt: skip
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def test_cli_batch_exit_codes_and_messages(inputs, model_file, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["batch", str(inputs), "--model", str(model_file), "--out", str(out), "--workers", "2",
                 "--group-by", r"(control|treated)/", "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1  # some files failed
    assert "broken.csv" in captured.err and "1 failed" in captured.out
    assert set(pd.read_csv(out / "batch_statistics.csv")["group"]) == {"control", "treated"}
    assert main(["batch", str(tmp_path / "nothing"), "--model", str(model_file), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["batch", str(inputs), "--model", str(inputs / "control" / "cell1.csv"), "--out", str(out)]) == 2
    assert "model" in capsys.readouterr().err
    assert main(["batch", str(inputs), "--model", str(model_file), "--out", str(out), "--group-by", "(["]) == 2
    assert "regular expression" in capsys.readouterr().err


def test_find_inputs_folders_globs_and_duplicates(inputs):
    every = find_inputs([inputs])
    assert [p.name for p in every] == ["cell1.csv", "broken.csv", "cell1.csv", "cell2.csv"]
    assert find_inputs([inputs / "treated" / "cell2.csv", str(inputs / "*" / "cell2.csv")]) == [
        (inputs / "treated" / "cell2.csv").resolve()
    ]
    with pytest.raises(ValueError, match="no file matches"):
        find_inputs([str(inputs / "*.tif")])


def test_groups_outputs_and_fingerprints(tmp_path):
    root = tmp_path
    path = root / "day1" / "control" / "cell_07.csv"
    assert group_of(path, root, None) == "all"
    assert group_of(path, root, "folder") == "control"
    assert group_of(path, root, r"day\d") == "day1"
    assert group_of(path, root, r"cell_(\d+)") == "07"
    assert group_of(path, root, "treated") == "ungrouped"
    paths = OutputPaths.for_input(path, root, tmp_path / "out")
    assert paths.table == tmp_path / "out" / "files" / "day1" / "control" / "cell_07_clustered.csv"
    model = b"weights"
    base = run_fingerprint(model, ClusterParameters())
    assert base == run_fingerprint(model, ClusterParameters(device="cuda"))
    assert base != run_fingerprint(model, ClusterParameters(eps_nm=20.0))
    assert base != run_fingerprint(model, ClusterParameters(method="hdbscan"))
    assert base != run_fingerprint(b"other weights", ClusterParameters())


def test_group_summary_medians():
    statistics = pd.DataFrame(
        {
            "file": ["a", "a", "b"],
            "group": ["x", "x", "y"],
            "n_localizations": [10, 30, 5],
            "radius_of_gyration_nm": [20.0, 40.0, 10.0],
            "nearest_neighbour_nm": [100.0, 100.0, np.nan],
        }
    )
    summary = group_summary(statistics).set_index("group")
    assert summary.loc["x", "clusters"] == 2 and summary.loc["x", "median_n_localizations"] == 20
    assert summary.loc["y", "files"] == 1
