"""A consistent copy of a live SQLite database (docs/operations.md#backup, ``sshmint admin backup``).

How: SQLite's online backup API (``sqlite3.Connection.backup``) in a single step. One step
copies every page inside one read transaction, so the copy is the database as it was at
one instant: everything committed before the step began, nothing half-written. Under WAL
(the store always uses it) that read transaction never blocks the server's writers, and
no writer can make the copy restart, which a multi-step backup would do each time the
source changed between steps. ``VACUUM INTO`` would give the same snapshot guarantee and
a compacted file; the backup API was chosen because it copies pages as they are (fast,
no rebuild of every index) and hands us the destination connection, on a file we create
ourselves with mode 0600.

Safety of the result:

- The copy is written to a temporary file (``mkstemp``: mode 0600, whatever the umask) in
  the destination's directory, checked with ``PRAGMA quick_check``, switched to the
  rollback journal so that it is one self-contained file, and flushed to disk; only then
  is it given its name, with ``link(2)``, which never replaces an existing file. An
  interrupted backup leaves no file under the requested name.
- An existing destination is refused: the file there may be the last good backup, or the
  live database itself.
- The source is opened read-only, so a mistyped path is an error, never an empty
  database created to be copied (``sshmint admin`` also says so before it gets here).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import quote

__all__ = ["BackupError", "backup_sqlite"]

# How long the source may be locked (WAL recovery, a checkpoint restarting the log)
# before the backup gives up.
_BUSY_TIMEOUT_S = 10.0
# link(2) failures that mean "this filesystem has no hard links", not a real conflict.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK}


class BackupError(Exception):
    """The backup was not made; ``message`` is one line for stderr."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def backup_sqlite(source: Path, destination: Path) -> int:
    """Copy the SQLite database ``source`` to the new file ``destination``; returns the
    copy's size in bytes. Raises :class:`BackupError`."""
    if os.path.lexists(destination):
        raise BackupError(f"{destination} already exists; a backup never replaces a file")
    try:
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent
        )
    except OSError as exc:
        raise BackupError(f"cannot write {destination}: {exc.strerror or exc}") from None
    os.close(fd)
    temp = Path(temp_name)
    try:
        _copy(source, temp)
        _publish(temp, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return destination.stat().st_size


def _copy(source: Path, temp: Path) -> None:
    uri = f"file:{quote(str(source))}?mode=ro"
    try:
        src = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S)
        try:
            dst = sqlite3.connect(temp)
            try:
                src.backup(dst)  # pages=-1: every page in one step, one snapshot
                dst.execute("PRAGMA journal_mode = DELETE")
                verdict = dst.execute("PRAGMA quick_check").fetchall()
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from None
    if verdict != [("ok",)]:
        raise BackupError(f"the copy of {source} failed its integrity check: {verdict[0][0]}")
    try:
        with temp.open("rb") as fh:
            os.fsync(fh.fileno())
    except OSError as exc:
        raise BackupError(f"cannot write {temp}: {exc.strerror or exc}") from None


def _publish(temp: Path, destination: Path) -> None:
    """Give ``temp`` the name ``destination`` unless that name is taken, then sync the
    directory so that the name survives a crash."""
    try:
        try:
            os.link(temp, destination)
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            # No hard links here (some network and FAT filesystems): a rename, after a
            # second look for a file that appeared meanwhile.
            if os.path.lexists(destination):
                raise FileExistsError(errno.EEXIST, "File exists") from None
            os.rename(temp, destination)
        else:
            temp.unlink()
    except FileExistsError:
        raise BackupError(f"{destination} already exists; a backup never replaces a file") from None
    except OSError as exc:
        raise BackupError(f"cannot write {destination}: {exc.strerror or exc}") from None
    with contextlib.suppress(OSError):
        dir_fd = os.open(destination.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
