"""The ``napari-miro`` command line (headless; imports neither Qt nor napari).

    napari-miro info FILE [FILE ...] [--pixel-size NM]
    napari-miro demo [--out DIR]

Every bad argument or file gives a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import pandas as pd

from napari_miro.io import LocalizationFileError, read_localizations

EXIT_BAD_INPUT = 2


def sample_files() -> list[Path]:
    """The bundled sample files (inside the installed package)."""
    folder = files("napari_miro") / "sample_data"
    return sorted(Path(str(item)) for item in folder.iterdir() if item.name.endswith(".csv"))


def describe(df: pd.DataFrame, name: str) -> str:
    """One paragraph about a localization table: size, extent, columns, ground truth if any."""
    width = df["x"].max() - df["x"].min()
    height = df["y"].max() - df["y"].min()
    lines = [
        f"{name}: {len(df):,} localizations over {width / 1000:.2f} x {height / 1000:.2f} um",
        f"  columns: {', '.join(df.columns)}",
    ]
    if "cluster" in df:
        clustered = df["cluster"] > 0
        lines.append(
            f"  ground truth: {df.loc[clustered, 'cluster'].nunique()} structures, "
            f"{clustered.mean():.0%} of localizations clustered"
        )
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> int:
    for path in args.files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = read_localizations(path, pixel_size_nm=args.pixel_size)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        print(describe(df, Path(path).name))
    return 0


def _demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in sample_files():
        df = read_localizations(path)
        print(describe(df, path.name))
    print(f"(the full MIRO demo writes its results to {out})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-miro", description="MIRO clustering of SMLM localizations.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="describe localization files")
    info.add_argument("files", nargs="+", help="ThunderSTORM or x/y CSV files")
    info.add_argument("--pixel-size", type=float, default=None, help="camera pixel size in nm (files in px)")
    info.set_defaults(run=_info)
    demo = commands.add_parser("demo", help="run the pipeline on a bundled sample")
    demo.add_argument("--out", default="demo_output", help="folder for the demo's results")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-miro`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except LocalizationFileError as error:
        print(f"napari-miro: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
