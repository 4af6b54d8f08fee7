"""Read and write localization tables (ThunderSTORM CSV and generic x/y CSV), always in nm.

Pure core: imports neither Qt nor napari.

``read_localizations`` returns a :class:`pandas.DataFrame` with columns ``x`` and ``y`` (and ``z`` when
present) in nm; every other column is kept under a normalised name (``frame``, ``intensity``,
``uncertainty``...). The original labels and units are recorded in ``df.attrs["columns"]``.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from napari_miro.output_files import atomic_path

__all__ = [
    "ColumnSpec",
    "LocalizationFileError",
    "looks_like_localization_table",
    "parse_header",
    "read_localizations",
    "write_thunderstorm",
]

#: Length units that are converted to nm (px needs a pixel size).
LENGTH_UNITS_NM: dict[str, float] = {
    "nm": 1.0,
    "um": 1000.0,
    "µm": 1000.0,
    "μm": 1000.0,
    "micron": 1000.0,
    "mm": 1e6,
    "m": 1e9,
    "px": math.nan,  # resolved with the pixel size
    "pixel": math.nan,
    "pixels": math.nan,
}

#: Columns whose values are lengths (converted to nm when their unit is a length unit).
LENGTH_COLUMNS = {"x", "y", "z", "sigma", "sigma1", "sigma2", "uncertainty", "uncertainty_z", "z_rel"}

#: Other spellings of the coordinate and standard ThunderSTORM columns, after normalisation.
ALIASES: dict[str, str] = {
    "x_nm": "x",
    "xnm": "x",
    "position_x": "x",
    "pos_x": "x",
    "y_nm": "y",
    "ynm": "y",
    "position_y": "y",
    "pos_y": "y",
    "z_nm": "z",
    "znm": "z",
    "position_z": "z",
    "pos_z": "z",
    "uncertainty_xy": "uncertainty",
    "precision": "uncertainty",
    "localization_precision": "uncertainty",
    "photons": "intensity",
}

#: Units written for the standard columns when a table carries no unit of its own.
DEFAULT_UNITS: dict[str, str] = {
    "x": "nm",
    "y": "nm",
    "z": "nm",
    "z_rel": "nm",
    "sigma": "nm",
    "sigma1": "nm",
    "sigma2": "nm",
    "uncertainty": "nm",
    "uncertainty_z": "nm",
    "intensity": "photon",
    "offset": "photon",
    "bkgstd": "photon",
    "x_collapsed": "nm",
    "y_collapsed": "nm",
}

_LABEL_WITH_UNIT = re.compile(r"^(?P<name>.*?)\s*[\[(](?P<unit>[^\])]*)[\])]\s*$")
_QUOTES = "\"'`"
_HEADER_BYTES = 64 * 1024
_NULL_VALUES = ["", "NaN", "nan", "NAN", "NA", "N/A", "null", "NULL", "None"]


class LocalizationFileError(ValueError):
    """A localization file that cannot be read, with a message that says what to do."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a localization table: its label in the file and what we make of it."""

    original: str  #: the label as written in the file, e.g. ``x [um]``
    name: str  #: the normalised name, e.g. ``x``
    unit: str  #: the unit written in the file ('' when none)


def _normalise_name(raw: str) -> str:
    name = raw.strip().strip(_QUOTES).strip().lower()
    name = re.sub(r"[^0-9a-zA-Zµμ]+", "_", name).strip("_")
    return ALIASES.get(name, name) or "column"


def _split_label(label: str) -> tuple[str, str]:
    """``'x [nm]'`` -> ``('x', 'nm')``; ``'frame'`` -> ``('frame', '')``."""
    match = _LABEL_WITH_UNIT.match(label)
    if match and match.group("name").strip():
        return match.group("name").strip(), match.group("unit").strip()
    return label.strip(), ""


def _unwrap_header(line: str) -> str:
    """Undo a whole header line wrapped in one more pair of quotes with doubled inner quotes."""
    stripped = line.strip()
    if len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"' and '""' in stripped:
        inner = stripped[1:-1]
        # A wrapped line has no field separator outside doubled quotes that is followed by a lone quote.
        if inner.count('""') >= 1 and '","' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return stripped


def _sniff_delimiter(line: str) -> str:
    for delimiter in (",", "\t", ";"):
        if delimiter in line:
            return delimiter
    return ","


def parse_header(line: str) -> tuple[list[ColumnSpec], str]:
    """Parse a header line into column specifications and the field delimiter.

    Handles quoted and unquoted labels, a UTF-8 byte-order mark, CR line ends and a whole line
    wrapped in an extra pair of quotes. Normalised names are made unique with a numeric suffix.
    """
    line = line.lstrip("\ufeff").rstrip("\r\n")
    line = _unwrap_header(line)
    delimiter = _sniff_delimiter(line)
    fields = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])
    specs: list[ColumnSpec] = []
    seen: dict[str, int] = {}
    for field in fields:
        label = field.strip().strip(_QUOTES).strip()
        base, unit = _split_label(label)
        name = _normalise_name(base)
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        specs.append(ColumnSpec(original=label, name=name, unit=unit))
    return specs, delimiter


def _read_first_line(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(_HEADER_BYTES)
    if not head:
        return ""
    text = head.decode("utf-8-sig", errors="replace")
    return text.splitlines()[0] if text.splitlines() else ""


def looks_like_localization_table(path: str | Path) -> bool:
    """True when the file's header names x and y columns (cheap: reads only the first line)."""
    try:
        specs, _ = parse_header(_read_first_line(Path(path)))
    except (OSError, csv.Error):
        return False
    names = {spec.name for spec in specs}
    return {"x", "y"} <= names


def _length_factor(spec: ColumnSpec, pixel_size_nm: float | None, path: Path) -> float | None:
    """Factor that converts the column to nm, or None when the column is not converted."""
    unit = spec.unit.lower().replace("μ", "µ")
    if unit in ("", "nm") or unit not in LENGTH_UNITS_NM:
        return None
    if unit in ("px", "pixel", "pixels"):
        if pixel_size_nm is None:
            if spec.name in ("x", "y", "z"):
                raise LocalizationFileError(
                    f"{path.name}: column '{spec.original}' is in camera pixels. Give the pixel size in nm "
                    f"(pixel_size_nm=..., or --pixel-size in the command line, or 'Pixel size' in the Load "
                    f"widget) so that positions can be converted to nm."
                )
            return None
        if not pixel_size_nm > 0:
            raise LocalizationFileError(f"pixel_size_nm must be a positive number of nm, not {pixel_size_nm}")
        return float(pixel_size_nm)
    return LENGTH_UNITS_NM[unit]


def read_localizations(
    path: str | Path, pixel_size_nm: float | None = None, on_warning: Callable[[str], None] | None = None
) -> pd.DataFrame:
    """Read a ThunderSTORM (or generic x/y) CSV into a DataFrame in nm.

    Args:
        path: the file to read.
        pixel_size_nm: camera pixel size, needed only when coordinates are in px.
        on_warning: receives the messages about dropped rows (default: a UserWarning), e.g. a notification.

    Returns:
        A DataFrame with ``x``, ``y`` (and ``z``) in nm and every other column under its normalised name.
        ``df.attrs`` holds ``source``, ``columns`` (``name -> {"original", "unit", "unit_out"}``),
        ``pixel_size_nm`` and ``n_dropped`` (rows dropped for a missing or infinite x/y).

    Raises:
        LocalizationFileError: the file is missing, empty, has no x/y columns, non-numeric x/y or no valid row.
    """
    path = Path(path)
    if not path.exists():
        raise LocalizationFileError(f"{path}: no such file. Check the path and try again.")
    if path.is_dir():
        raise LocalizationFileError(f"{path} is a folder, not a localization file.")
    if path.stat().st_size == 0:
        raise LocalizationFileError(f"{path.name} is empty: it holds no header and no localization.")

    header = _read_first_line(path)
    if not header.strip().strip(_QUOTES):
        raise LocalizationFileError(f"{path.name} is empty: its first line holds no column names.")
    specs, delimiter = parse_header(header)
    names = [spec.name for spec in specs]
    if not {"x", "y"} <= set(names):
        shown = ", ".join(repr(spec.original) for spec in specs[:12]) or "nothing"
        raise LocalizationFileError(
            f"{path.name}: no x and y columns found (the header has {shown}). A localization table needs "
            f"columns named like 'x [nm]' and 'y [nm]' (ThunderSTORM) or 'x' and 'y' in nm."
        )

    column_types = {"x": pa.float64(), "y": pa.float64()}
    if "z" in names:
        column_types["z"] = pa.float64()
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(skip_rows=1, column_names=names, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types, null_values=_NULL_VALUES, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as error:
        raise LocalizationFileError(_explain_arrow_error(path, str(error))) from None

    if table.num_rows == 0:
        raise LocalizationFileError(
            f"{path.name} has a header but no localization rows. Export the localizations again."
        )
    df = table.to_pandas()

    columns_info: dict[str, dict[str, str]] = {}
    for spec in specs:
        factor = _length_factor(spec, pixel_size_nm, path) if spec.name in LENGTH_COLUMNS else None
        unit_out = spec.unit
        if factor is not None:
            df[spec.name] = df[spec.name].to_numpy(dtype=np.float64) * factor
            unit_out = "nm"
        columns_info[spec.name] = {"original": spec.original, "unit": spec.unit, "unit_out": unit_out}

    coordinates = df[["x", "y"]].to_numpy()
    valid = np.isfinite(coordinates).all(axis=1)
    n_dropped = int((~valid).sum())
    if n_dropped:
        if n_dropped == len(df):
            raise LocalizationFileError(
                f"{path.name}: none of its {len(df)} rows has a finite x and y (all are empty, NaN or Inf)."
            )
        message = f"{path.name}: dropped {n_dropped} of {len(df)} rows whose x or y is empty, NaN or infinite."
        if on_warning is not None:
            on_warning(message)
        else:
            warnings.warn(message, UserWarning, stacklevel=2)
        df = df.loc[valid].reset_index(drop=True)

    df.attrs = {
        "source": str(path),
        "columns": columns_info,
        "pixel_size_nm": pixel_size_nm,
        "n_dropped": n_dropped,
    }
    return df


def _explain_arrow_error(path: Path, message: str) -> str:
    column = re.search(r"column #(\d+)", message)
    value = re.search(r"invalid value '([^']*)'", message)
    if "conversion error" in message and value:
        where = f" (column {int(column.group(1)) + 1})" if column else ""
        return (
            f"{path.name}: a coordinate{where} holds '{value.group(1)}', which is not a number. "
            f"x and y must be plain numbers with a '.' as decimal separator."
        )
    if "Expected" in message and "columns" in message:
        return (
            f"{path.name}: a row has a different number of fields than the header ({message.strip()}). "
            f"The file may be truncated or mixed with another table."
        )
    return f"{path.name} could not be read as a localization table: {message.strip()}"


def _column_as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Render one column as CSV fields: floats exact (shortest round-trip form, NaN/Infinity as
    ThunderSTORM writes them, integral floats with '.0' so that they read back as floats), strings quoted
    where needed, missing values empty."""
    kind = column.type
    if pa.types.is_floating(kind):
        column = pc.cast(column, pa.float64())
        text = pc.cast(column, pa.string())
        text = pc.if_else(
            pc.match_substring_regex(text, r"^-?[0-9]+$"), pc.binary_join_element_wise(text, ".0", ""), text
        )
        text = pc.if_else(pc.is_nan(column), "NaN", text)
        text = pc.if_else(pc.equal(column, math.inf), "Infinity", text)
        text = pc.if_else(pc.equal(column, -math.inf), "-Infinity", text)
        text = pc.fill_null(text, "NaN")  # pandas' NaN arrives here as a null
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        text = pc.cast(column, pa.string())
    else:
        text = pc.cast(column, pa.string())
        needs_quotes = pc.match_substring_regex(text, r'[",\r\n]|^\s|\s$')
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        text = pc.if_else(needs_quotes, quoted, text)
    return pc.cast(pc.fill_null(text, ""), pa.large_string())


def _join_lines(chunk: pa.Array) -> bytes:
    """The rows of one chunk as newline-terminated UTF-8 bytes, without a Python loop over rows."""
    newline = pa.scalar("\n", pa.large_string())
    lines = pc.binary_join_element_wise(chunk, newline, pa.scalar("", pa.large_string()))
    _, offsets_buffer, data = lines.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(data)[offsets[0] : offsets[-1]]


def _label(name: str, unit: str) -> str:
    return f"{name} [{unit}]" if unit else name


def write_thunderstorm(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a ThunderSTORM-style CSV: quoted ``name [unit]`` labels, lossless float values.

    Units come from ``df.attrs["columns"]`` (as set by :func:`read_localizations`) or, for the standard
    columns, ThunderSTORM's defaults (nm for lengths, photon for intensities). Reading the written file
    back gives the same columns and values.
    """
    path = Path(path)
    if not {"x", "y"} <= set(df.columns):
        raise LocalizationFileError("A localization table needs columns 'x' and 'y' (nm) to be written.")
    info = df.attrs.get("columns", {}) if isinstance(df.attrs, dict) else {}
    labels = []
    for name in df.columns:
        unit = info.get(name, {}).get("unit_out", DEFAULT_UNITS.get(name, ""))
        labels.append('"' + _label(str(name), unit).replace('"', "'") + '"')
    table = pa.Table.from_pandas(df, preserve_index=False)
    lines = pc.binary_join_element_wise(
        *[_column_as_text(column) for column in table.columns], pa.scalar(",", pa.large_string())
    )
    with atomic_path(path) as partial, open(partial, "wb") as handle:
        handle.write((",".join(labels) + "\n").encode("utf-8"))
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            if len(chunk):
                handle.write(_join_lines(chunk))
    return path
