import os
import stat

import pytest

from napari_miro.output_files import OutputPathError, atomic_path, check_output


def test_check_output_says_what_is_wrong_before_any_work(tmp_path):
    with pytest.raises(OutputPathError, match=r"folder .* does not exist"):
        check_output(tmp_path / "missing" / "model.safetensors")
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output(tmp_path)
    with pytest.raises(OutputPathError, match=r"written as a \.csv file; table\.txt ends in \.txt"):
        check_output(tmp_path / "table.txt", ".csv")
    assert check_output(tmp_path / "table", ".csv") == tmp_path / "table.csv"  # what is reported is written
    assert check_output(tmp_path / "table.CSV", ".csv") == tmp_path / "table.CSV"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match="not writable"):
            check_output(folder / "out.csv")
    finally:
        folder.chmod(0o755)


def test_a_failed_write_leaves_the_previous_file_and_no_partial_file(tmp_path):
    target = tmp_path / "stats.csv"
    target.write_text("previous results\n")
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_text("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.csv"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "model.safetensors") as partial:
            partial.write_bytes(b"x")
            partial.chmod(0o600)  # as safetensors writes
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o644
