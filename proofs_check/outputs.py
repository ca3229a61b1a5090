"""Output paths checked before a run starts, so that a typo in ``--json`` is reported
in a second instead of after minutes of work.

The checks write nothing (no directory is created): a path passes when it is not an
existing directory (for a file) or an existing file (for a directory), and its nearest
existing ancestor is a directory we may write into. Writing itself is atomic
(:func:`proofs_check.report.atomic_write_text`), so a crash leaves the previous file.
"""

from __future__ import annotations

import os
from pathlib import Path

from dynamics.errors import OutputPathError


def _writable_ancestor(path: Path, option: str) -> None:
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(
            f"{option} {path}: {parent} is a file, not a directory; choose a path "
            "whose parent is (or can be created as) a directory"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"{option} {path}: no permission to write in {parent}; choose a writable "
            "location"
        )


def check_file(path: str | os.PathLike | None, option: str) -> Path | None:
    """``path`` (a file to be written) or raise :class:`OutputPathError`."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(
            f"{option} {path} is a directory; give a file name, e.g. "
            f"{path / 'report.json'}"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{option} {path} exists and is not writable")
    _writable_ancestor(path, option)
    return path


def check_dir(path: str | os.PathLike | None, option: str) -> Path | None:
    """``path`` (a directory to be created or filled) or raise
    :class:`OutputPathError`."""
    if path is None:
        return None
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(
            f"{option} {path} is a file; give a directory (it is created if missing)"
        )
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"{option} {path}: no permission to write in it")
        return path
    _writable_ancestor(path, option)
    return path
