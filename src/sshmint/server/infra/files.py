"""Private files and directories of a server (docs/security.md#files-and-modes).

The data directory is made with mode 0700 and the files that hold secrets (the SQLite
database with its ``-wal`` and ``-shm`` files, the SSH host key) with mode 0600, whatever
the process umask: a umask can only take permission bits away, so creating with these
modes and setting them once more after creation gives exactly these modes. SQLite creates
its ``-wal`` and ``-shm`` files with the permissions of the database file, so a database
file made here brings private companions with it.

A directory or file that already exists is never changed; a data directory that other
users can enter or read is reported (:func:`loose_mode_warning`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "create_private_file",
    "loose_mode_warning",
    "make_private_dir",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> bool:
    """Create ``path`` (and missing parents) with the directory itself at mode 0700;
    ``False`` if it existed already (left as it is). Raises ``OSError``."""
    if path.is_dir():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        return False  # made by a concurrent start, or a file in the way (caught later)
    os.chmod(path, PRIVATE_DIR_MODE)
    return True


def create_private_file(path: Path) -> bool:
    """Create an empty ``path`` with mode 0600 unless it exists; ``True`` if made here.
    Raises ``OSError``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return True


def loose_mode_warning(path: Path) -> str | None:
    """One line naming ``path`` and its mode when users other than its owner may read or
    enter it, else ``None`` (also when it cannot be examined)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"data directory {path} is accessible to other users (mode {mode:04o}); "
        f"it holds the host key and the database: chmod 700 {path}"
    )
