"""Smoke runs of the benchmark scripts, so that they keep working (their figures come from full runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_paper_table_smoke(tmp_path):
    out = tmp_path / "benchmark.md"
    (tmp_path / "benchmark.md").write_text("old table\n\n## Real data: kept\n\nreading\n")
    settings = ["simulated/rings", "simulated/spots+rings", "simulated/npc", "simulated/pairs"]
    command = [sys.executable, str(BENCHMARKS / "paper_table.py"), "--settings", *settings, "--modes", "single",
               "--minutes", "0.02", "--fovs", "2", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert "simulated/rings, single-shot" in text and "MIRO + DBSCAN" in text and "paper's MIRO" in text
    assert "## Targets at a glance" in text and "| simulated/rings |" in text
    assert "Shape classes, single-shot" in text and "| ring |" in text  # the mixture's confusion matrix
    assert "MIRO + DBSCAN, corners" in text and "DBSCAN tuned, corners" in text  # NPC: both scales
    assert "against the centre distance" in text  # pairs: JI_c against distance
    assert text.endswith("## Real data: kept\n\nreading\n") and "old table" not in text
    assert (tmp_path / "images" / "benchmark_boxplots.png").stat().st_size > 10_000


def test_io_speed_smoke():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "io_speed.py"), "--rows", "2000", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "read ratio" in result.stdout


def test_time_to_accuracy_smoke(tmp_path):
    out, rows = tmp_path / "tta.md", tmp_path / "rows.jsonl"
    command = [sys.executable, str(BENCHMARKS / "time_to_accuracy.py"), "--settings", "simulated/rings",
               "--minutes", "0.05", "--checkpoints", "0.02", "--n-eval", "1", "--passes", "1", "2",
               "--out", str(out), "--json", str(rows)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert text.count("| simulated/rings | MIRO + DBSCAN |") == 4  # 2 checkpoints x 2 passes
    assert "DBSCAN tuned on the training data" in text
    plotted = tmp_path / "curves.png"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "time_to_accuracy.py"), "--json", str(rows), "--plot", str(plotted)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and plotted.stat().st_size > 10_000, result.stderr[-2000:]


def test_time_to_accuracy_default_length_trains_the_preset_steps(tmp_path):
    rows = tmp_path / "rows.jsonl"
    command = [sys.executable, str(BENCHMARKS / "time_to_accuracy.py"), "--settings", "simulated/rings",
               "--default-length", "--set", "optimizer_steps=12", "validate_every=4", "--n-eval", "1",
               "--json", str(rows)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    miro = [row for row in map(json.loads, rows.read_text().splitlines()) if row["method"] == "MIRO + DBSCAN"]
    assert len(miro) == 1 and miro[0]["steps"] == 12
    assert 0 < miro[0]["minutes"] < 5  # the training's own wall time, not a budget
