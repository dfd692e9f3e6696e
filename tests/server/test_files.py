"""Private files (docs/security.md#files-and-modes, R161): the data directory 0700, the database with its
-wal and -shm files and the host key 0600, whatever the umask; a data directory other
users can read is reported at start."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshmint.server.infra.files import create_private_file, loose_mode_warning, make_private_dir
from tests.support.server_fixtures import ServerFactory


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_r161_first_start_makes_private_files_whatever_the_umask(
    server_factory: ServerFactory, tmp_path: Path, mask: int
) -> None:
    data_dir = tmp_path / "fresh" / "data"
    with _umask(mask):
        server = server_factory(f"sqlite:///{data_dir / 'sshmint.db'}", data_dir=data_dir)
    assert server.running
    assert _mode(data_dir) == 0o700
    for name in ("sshmint.db", "sshmint.db-wal", "sshmint.db-shm", "ssh_host_ed25519_key"):
        assert _mode(data_dir / name) == 0o600, name
    assert "accessible to other users" not in server.stderr
    # Stopped at once, with the start-up purge possibly still running: a clean exit.
    assert server.stop() == 0
    assert " ERROR " not in server.stderr and " WARNING " not in server.stderr, server.stderr


def test_r161_admin_add_user_creates_a_private_database(tmp_path: Path) -> None:
    from tests.support.harness import run_sshmint

    data_dir = tmp_path / "admin-made"
    with _umask(0o022):
        result = run_sshmint("admin", "--data-dir", str(data_dir), "add-user", "a@example.com")
    assert result.returncode == 0, result.stderr
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "sshmint.db") == 0o600


def test_s11_5_loose_existing_data_dir_is_reported_once(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    server = server_factory(f"sqlite:///{data_dir / 'sshmint.db'}", data_dir=data_dir)
    lines = [line for line in server.stderr.splitlines() if "accessible to other users" in line]
    assert len(lines) == 1
    assert str(data_dir) in lines[0] and "0755" in lines[0]
    assert _mode(data_dir) == 0o755  # reported, not changed


def test_s11_5_helpers_give_exact_modes_and_leave_existing_paths_alone(tmp_path: Path) -> None:
    with _umask(0o077):
        assert make_private_dir(tmp_path / "a" / "b") is True
        assert create_private_file(tmp_path / "a" / "b" / "f") is True
    assert _mode(tmp_path / "a" / "b") == 0o700
    assert _mode(tmp_path / "a" / "b" / "f") == 0o600
    (tmp_path / "a" / "b" / "f").chmod(0o644)
    assert create_private_file(tmp_path / "a" / "b" / "f") is False
    assert _mode(tmp_path / "a" / "b" / "f") == 0o644
    assert make_private_dir(tmp_path / "a" / "b") is False
    assert loose_mode_warning(tmp_path / "a" / "b") is None
    (tmp_path / "a" / "b").chmod(0o750)
    assert "mode 0750" in (loose_mode_warning(tmp_path / "a" / "b") or "")
