"""Speed and peak memory of reading ThunderSTORM files, against a bare pyarrow read of the same file.

Writes a ThunderSTORM file with N rows and 10 columns (default 1e6), then, each in a fresh process so that
peak memory is its own, times ``read_localizations`` and ``pyarrow.csv.read_csv`` (best of R repeats) and
prints a table. Target: read_localizations / pyarrow <= 1.3.

    python benchmarks/io_speed.py [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = r"""
import json, resource, sys, time
path, what, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
if what == "read_localizations":
    from napari_miro.io import read_localizations as read
    run = lambda: read(path)
elif what == "write_thunderstorm":
    from napari_miro.io import read_localizations, write_thunderstorm
    df = read_localizations(path)
    run = lambda: write_thunderstorm(df, path + ".out.csv")
else:
    import pyarrow.csv as pacsv
    run = lambda: pacsv.read_csv(path)
times = []
for _ in range(repeats):
    start = time.perf_counter(); result = run(); times.append(time.perf_counter() - start); del result
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"best_s": min(times), "peak_mb": peak_mb}))
"""


def make_file(path: Path, rows: int, seed: int = 0) -> None:
    """A realistic ThunderSTORM export: 10 columns, positions over a 40 um field."""
    from napari_miro.io import write_thunderstorm

    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "id": np.arange(1, rows + 1, dtype=np.float64),
            "frame": np.sort(rng.integers(1, 20000, rows)).astype(np.float64),
            "x": rng.uniform(0, 40000, rows),
            "y": rng.uniform(0, 40000, rows),
            "sigma": rng.normal(130, 20, rows),
            "intensity": rng.lognormal(7, 0.5, rows),
            "offset": rng.normal(30, 5, rows),
            "bkgstd": rng.normal(8, 1, rows),
            "chi2": rng.lognormal(12, 1, rows),
            "uncertainty": rng.lognormal(2.6, 0.4, rows),
        }
    )
    write_thunderstorm(df, path)


def measure(path: Path, what: str, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), what, str(repeats)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.csv"
        start = time.perf_counter()
        make_file(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(
            f"file: {args.rows:,} rows x 10 columns, {size_mb:.0f} MB (written in {time.perf_counter() - start:.1f} s)"
        )
        results = {
            what: measure(path, what, args.repeats) for what in ("pyarrow", "read_localizations", "write_thunderstorm")
        }
    base = results["pyarrow"]["best_s"]
    print()
    print("| step | best time (s) | vs bare pyarrow read | peak RSS (MB) |")
    print("|---|---|---|---|")
    for what, label in (
        ("pyarrow", "pyarrow.csv.read_csv (baseline)"),
        ("read_localizations", "napari_miro.io.read_localizations"),
        ("write_thunderstorm", "napari_miro.io.write_thunderstorm"),
    ):
        r = results[what]
        print(f"| {label} | {r['best_s']:.3f} | {r['best_s'] / base:.2f} | {r['peak_mb']:.0f} |")
    ratio = results["read_localizations"]["best_s"] / base
    print(f"\nread ratio {ratio:.2f} (target <= 1.3): {'OK' if ratio <= 1.3 else 'MISSED'}")


if __name__ == "__main__":
    main()
