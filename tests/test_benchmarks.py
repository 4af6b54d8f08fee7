"""Smoke runs of the benchmark scripts, so that they keep working (their figures come from full runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_paper_table_smoke(tmp_path):
    out = tmp_path / "benchmark.md"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "paper_table.py"),
            "--settings",
            "simulated/rings",
            "--modes",
            "single",
            "--minutes",
            "0.02",
            "--fovs",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert "simulated/rings, single-shot" in text and "MIRO + DBSCAN" in text and "paper's MIRO" in text


def test_io_speed_smoke():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "io_speed.py"), "--rows", "2000", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "read ratio" in result.stdout
