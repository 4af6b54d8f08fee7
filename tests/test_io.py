"""Reading and writing localization tables: every ThunderSTORM variant, generic CSVs, bad files."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_miro.io import (
    LocalizationFileError,
    looks_like_localization_table,
    parse_header,
    read_localizations,
    write_thunderstorm,
)

THUNDERSTORM_HEADER = '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]","uncertainty_xy [nm]"'
ROWS = ["1.0,1.0,100.5,200.25,120.0,500.0,10.5", "2.0,1.0,300.0,400.0,130.0,600.0,12.0"]


def write(tmp_path: Path, text: str, name: str = "locs.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_quoted_thunderstorm_header(tmp_path):
    df = read_localizations(write(tmp_path, "\n".join([THUNDERSTORM_HEADER, *ROWS]) + "\n"))
    assert list(df.columns) == ["id", "frame", "x", "y", "sigma", "intensity", "uncertainty"]
    assert df["x"].tolist() == [100.5, 300.0]
    assert df.attrs["columns"]["uncertainty"] == {"original": "uncertainty_xy [nm]", "unit": "nm", "unit_out": "nm"}
    assert df.attrs["n_dropped"] == 0


def test_unquoted_header(tmp_path):
    header = THUNDERSTORM_HEADER.replace('"', "")
    df = read_localizations(write(tmp_path, "\n".join([header, *ROWS])))
    assert df["y"].tolist() == [200.25, 400.0]


def test_whole_header_wrapped_in_quotes(tmp_path):
    header = '"id,""frame"",""x [nm]"",""y [nm]"",""sigma [nm]"",""intensity [photon]"",""uncertainty_xy [nm]"""'
    df = read_localizations(write(tmp_path, "\n".join([header, *ROWS])))
    assert list(df.columns) == ["id", "frame", "x", "y", "sigma", "intensity", "uncertainty"]
    assert df.attrs["columns"]["x"]["original"] == "x [nm]"


def test_crlf_and_byte_order_mark(tmp_path):
    path = write(tmp_path, "\r\n".join([THUNDERSTORM_HEADER, *ROWS]) + "\r\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    df = read_localizations(path)
    assert next(iter(df.columns)) == "id"
    assert df["uncertainty"].tolist() == [10.5, 12.0]


def test_micrometres_are_converted_to_nm(tmp_path):
    df = read_localizations(write(tmp_path, '"x [um]","y [µm]","sigma [um]"\n1.5,2.25,0.1\n'))
    assert df["x"].tolist() == [1500.0]
    assert df["y"].tolist() == [2250.0]
    assert df["sigma"].tolist() == pytest.approx([100.0])
    assert df.attrs["columns"]["x"] == {"original": "x [um]", "unit": "um", "unit_out": "nm"}


def test_pixels_need_a_pixel_size(tmp_path):
    path = write(tmp_path, '"frame","x [px]","y [px]","intensity [ADU]"\n1,10,20,300\n')
    with pytest.raises(LocalizationFileError, match="pixel_size_nm"):
        read_localizations(path)
    df = read_localizations(path, pixel_size_nm=106.5)
    assert df["x"].tolist() == [1065.0]
    assert df["y"].tolist() == [2130.0]
    assert df["intensity"].tolist() == [300]  # not a length: untouched
    assert df.attrs["pixel_size_nm"] == 106.5


def test_3d_file_keeps_z_in_nm(tmp_path):
    text = (
        '"frame","x [nm]","y [nm]","z [um]","sigma1 [nm]","sigma2 [nm]","uncertainty_z [nm]"\n1,1,2,0.25,100,120,30\n'
    )
    df = read_localizations(write(tmp_path, text))
    assert df["z"].tolist() == [250.0]
    assert {"sigma1", "sigma2", "uncertainty_z"} <= set(df.columns)


def test_unknown_extra_columns_are_kept(tmp_path):
    text = '"x [nm]","y [nm]","my weird column [a.u.]","detections"\n1,2,3.5,4\n'
    df = read_localizations(write(tmp_path, text))
    assert df["my_weird_column"].tolist() == [3.5]
    assert df.attrs["columns"]["my_weird_column"]["unit"] == "a.u."
    assert df["detections"].tolist() == [4]


def test_generic_xy_csv_keeps_index_column(tmp_path):
    df = read_localizations(write(tmp_path, '"x","y","index"\n1.5,2.5,0\n3.5,4.5,7\n'))
    assert list(df.columns) == ["x", "y", "index"]
    assert df["index"].dtype.kind == "i"


def test_tab_separated_txt(tmp_path):
    df = read_localizations(write(tmp_path, "x [nm]\ty [nm]\tframe\n1\t2\t3\n", name="locs.txt"))
    assert df["frame"].tolist() == [3]


def test_rows_with_missing_coordinates_are_dropped_with_a_count(tmp_path):
    text = '"x [nm]","y [nm]","frame"\n1,2,1\nNaN,3,2\n,4,3\n5,Infinity,4\n-Infinity,6,5\n7,8,6\n'
    with pytest.warns(UserWarning, match="dropped 4 of 6 rows"):
        df = read_localizations(write(tmp_path, text))
    assert df["frame"].tolist() == [1, 6]
    assert df.attrs["n_dropped"] == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ('"x [nm]","y [nm]"\n', "no localization rows"),
        ('"frame","intensity"\n1,2\n', "no x and y columns"),
        ('"x [nm]","y [nm]"\n1,abc\n', "not a number"),
        ('"x [nm]","y [nm]"\nNaN,1\n2,NaN\n', "none of its 2 rows"),
        ('"x [nm]","y [nm]"\n1,2,3,4\n', "number of fields"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, text, message):
    path = write(tmp_path, text, name="bad.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LocalizationFileError, match=message) as info:
            read_localizations(path)
    assert "bad.csv" in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(LocalizationFileError, match="no such file"):
        read_localizations(tmp_path / "nothing.csv")
    with pytest.raises(LocalizationFileError, match="folder"):
        read_localizations(tmp_path)


def test_parse_header_makes_names_unique():
    specs, delimiter = parse_header('"x [nm]","y [nm]","uncertainty [nm]","uncertainty_xy [nm]"')
    assert delimiter == ","
    assert [spec.name for spec in specs] == ["x", "y", "uncertainty", "uncertainty_1"]


def test_looks_like_localization_table(tmp_path):
    assert looks_like_localization_table(write(tmp_path, '"x [nm]","y [nm]"\n1,2\n', "a.csv"))
    assert not looks_like_localization_table(write(tmp_path, "name,value\na,1\n", "b.csv"))
    assert not looks_like_localization_table(tmp_path / "missing.csv")


def test_write_read_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    n = 2000
    df = pd.DataFrame(
        {
            "id": np.arange(1, n + 1, dtype=np.float64),  # integral floats stay floats
            "frame": rng.integers(1, 1000, n),
            "x": rng.uniform(0, 4e4, n),
            "y": rng.uniform(0, 4e4, n) / 3,
            "tiny": rng.normal(size=n) * 1e-300,
            "huge": rng.normal(size=n) * 1e300,
            "class": rng.choice(["ring", "spot, large", 'quote"d', " padded "], n),
            "cluster": rng.integers(0, 20, n),
        }
    )
    df.loc[3, "tiny"] = math.nan
    df.loc[4, "tiny"] = math.inf
    df.loc[5, "huge"] = -math.inf
    path = write_thunderstorm(df, tmp_path / "out.csv")
    header = path.read_text().splitlines()[0]
    assert header.startswith('"id","frame","x [nm]","y [nm]","tiny"')
    back = read_localizations(path)
    back.attrs = {}
    pd.testing.assert_frame_equal(back, df, check_exact=True)


def test_round_trip_of_a_read_file_keeps_units(tmp_path):
    source = write(tmp_path, '"x [um]","y [um]","intensity [ADU]","frame"\n1.5,2.5,300.5,1\n', "um.csv")
    first = read_localizations(source)
    second = read_localizations(write_thunderstorm(first, tmp_path / "again.csv"))
    assert second.attrs["columns"]["intensity"]["unit"] == "ADU"
    assert second.attrs["columns"]["x"]["unit"] == "nm"
    first.attrs, second.attrs = {}, {}
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_write_needs_x_and_y(tmp_path):
    with pytest.raises(LocalizationFileError):
        write_thunderstorm(pd.DataFrame({"a": [1]}), tmp_path / "x.csv")


def test_real_thunderstorm_file_with_wrapped_header(shared_data):
    df = read_localizations(shared_data / "thunderstorm" / "locan-thunderstorm-dstorm.csv")
    assert list(df.columns) == [
        "id",
        "frame",
        "x",
        "y",
        "sigma",
        "intensity",
        "offset",
        "bkgstd",
        "chi2",
        "uncertainty",
    ]
    assert len(df) == 19
    assert df["x"].between(0, 1e5).all() and df["uncertainty"].between(0, 100).all()


def test_every_shared_benchmark_file_opens(shared_data):
    files = sorted((shared_data / "nieves2023").rglob("*.csv"))
    assert len(files) >= 450
    for path in files:
        df = read_localizations(path)
        assert {"x", "y"} <= set(df.columns) and len(df) > 100
        assert df[["x", "y"]].notna().all().all()
        if "ground-truth" in path.parts or "blinking" in path.parts:
            assert df["index"].dtype.kind == "i"
        else:
            assert {"frame", "uncertainty"} <= set(df.columns)


def test_dropped_rows_can_be_reported_to_a_callback(tmp_path):
    messages = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning is raised when a callback takes the message
        df = read_localizations(write(tmp_path, '"x [nm]","y [nm]"\n1,2\nNaN,3\n'), on_warning=messages.append)
    assert len(df) == 1 and messages == ["locs.csv: dropped 1 of 2 rows whose x or y is empty, NaN or infinite."]
