"""Writing results: the place is checked before any work starts, and files appear whole or not at all.

:func:`check_output` is called before minutes of training or clustering, so that a missing folder or a wrong
file type is said at once instead of after the work; :func:`atomic_path` writes under a temporary name beside the
target and renames it into place, so that a failure or an interruption never leaves half a file (or destroys the
previous one), and gives the file the permissions the user's umask asks for.

Pure core (standard library): imports neither Qt nor napari.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["OutputPathError", "atomic_path", "check_output"]


class OutputPathError(ValueError):
    """A result cannot be written where it was asked to go; the message says why."""


def check_output(path: str | Path, suffix: str | None = None, what: str = "output") -> Path:
    """The file to write, checked before the work: its folder exists and may be written to, and it is not a
    folder. With ``suffix`` (e.g. ".csv"), a name without it gets it added (``name`` -> ``name.csv``) and a name
    with another one is refused, so that what is written is what is reported."""
    path = Path(path).expanduser()
    if suffix is not None and path.suffix.lower() != suffix:
        if path.suffix:
            raise OutputPathError(f"The {what} is written as a {suffix} file; {path.name} ends in {path.suffix}.")
        path = path.with_name(path.name + suffix)
    if path.is_dir():
        raise OutputPathError(f"The {what} {path} is a folder; give a file name.")
    folder = path.parent
    if not folder.is_dir():
        raise OutputPathError(f"Cannot write the {what} to {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise OutputPathError(f"Cannot write the {what} to {path}: the folder {folder} is not writable.")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"Cannot write the {what} to {path}: the file exists and is read-only.")
    return path


def _default_mode() -> int:
    """Permissions of a new file under the current umask (0o644 under the usual umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed onto ``path`` when the block succeeds, removed when
    it fails (the previous file, if any, is then left as it was)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        os.chmod(partial, _default_mode())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
