"""``sshmint admin`` and a missing database (docs/operations.md#a-missing-database, R168), and a config file
naming PostgreSQL: every admin subcommand uses it and nothing lands in a local SQLite file.

Everything runs the real CLI, from a fresh working directory, so that a stray
``./sshmint-data`` would show.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.harness import SSHMintServer, run_sshmint

MISSING = "no sshmint database at {} (start sshmint serve first, or pass --data-dir or --db)\n"
READ_COMMANDS = [
    ["users"],
    ["users", "--json"],
    ["lock-user", "a@example.com"],
    ["unlock-user", "a@example.com"],
    ["backup", "copy.db"],
]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    work = tmp_path / "cwd"
    work.mkdir()
    return work


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: "-".join(a))
def test_r168_reading_commands_on_a_missing_default_database_fail_and_create_nothing(
    cwd: Path, args: list[str]
) -> None:
    """Run from the wrong directory: the default ``./sshmint-data/sshmint.db`` is named,
    absolute, and neither the directory nor the file appears."""
    result = run_sshmint("admin", *args, cwd=cwd)
    expected = MISSING.format(cwd / "sshmint-data" / "sshmint.db")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", expected)
    assert _tree(cwd) == []


@pytest.mark.parametrize(
    "where",
    ["--data-dir", "group --data-dir", "SSHMINT_DATA_DIR", "--db", "SSHMINT_DB", "config"],
)
def test_r168_every_way_of_naming_a_missing_sqlite_database_is_refused(
    cwd: Path, tmp_path: Path, where: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    db_file = empty / "sshmint.db"
    config = tmp_path / "sshmint.toml"
    config.write_text(f'db = "sqlite:///{db_file}"\n')
    argv, env = {
        "--data-dir": (["users", "--data-dir", str(empty)], {}),
        "group --data-dir": (["--data-dir", str(empty), "users"], {}),
        "SSHMINT_DATA_DIR": (["users"], {"SSHMINT_DATA_DIR": str(empty)}),
        "--db": (["users", "--db", f"sqlite:///{db_file}"], {}),
        "SSHMINT_DB": (["users"], {"SSHMINT_DB": f"sqlite:///{db_file}"}),
        "config": (["users", "--config", str(config)], {}),
    }[where]
    result = run_sshmint("admin", *argv, env=env, cwd=cwd)
    assert (result.returncode, result.stderr) == (1, MISSING.format(db_file))
    assert _tree(empty) == [] and _tree(cwd) == []


def test_r168_a_relative_db_path_is_reported_absolute(cwd: Path) -> None:
    result = run_sshmint(
        "admin", "lock-user", "a@example.com", "--db", "sqlite:///x/../s.db", cwd=cwd
    )
    assert (result.returncode, result.stderr) == (1, MISSING.format(cwd / "s.db"))


def test_r168_add_user_creates_the_database_and_says_so_once(cwd: Path) -> None:
    db_file = cwd / "sshmint-data" / "sshmint.db"
    first = run_sshmint("admin", "add-user", "first@example.com", "--json", cwd=cwd)
    assert first.returncode == 0
    assert first.stderr == f"created new database at {db_file}\n"
    assert json.loads(first.stdout)["email"] == "first@example.com"  # stdout stays the output
    # Private from the start (docs/security.md#files-and-modes), like a database the server creates.
    assert stat.S_IMODE(db_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    second = run_sshmint("admin", "add-user", "second@example.com", cwd=cwd)
    assert (second.returncode, second.stderr) == (0, "")
    listed = run_sshmint("admin", "users", "--json", cwd=cwd)
    assert [u["email"] for u in json.loads(listed.stdout)["users"]] == [
        "first@example.com",
        "second@example.com",
    ]


def test_r168_add_user_that_fails_on_its_input_creates_nothing(cwd: Path) -> None:
    result = run_sshmint("admin", "add-user", "not-an-email", cwd=cwd)
    assert result.returncode == 1 and "created new database" not in result.stderr
    assert _tree(cwd) == []


def _config_admin(config: Path, cwd: Path, where: str) -> Callable[..., tuple[int, str, str]]:
    """``sshmint admin`` with ``--config`` on the group, on the subcommand, or in the
    environment, run from ``cwd``."""

    def admin(*args: str) -> tuple[int, str, str]:
        if where == "group":
            result = run_sshmint("admin", "--config", str(config), *args, cwd=cwd)
        elif where == "subcommand":
            result = run_sshmint("admin", *args, "--config", str(config), cwd=cwd)
        else:
            result = run_sshmint("admin", *args, env={"SSHMINT_CONFIG": str(config)}, cwd=cwd)
        return result.returncode, result.stdout, result.stderr

    return admin


def _pg_config(server: SSHMintServer, tmp_path: Path) -> Path:
    config = tmp_path / "sshmint.toml"
    config.write_text(f'db = "{server.db_url}"\ndata-dir = "{tmp_path / "unused-data"}"\n')
    return config


def test_admin_config_naming_postgresql_is_used_by_the_writing_subcommands(
    postgresql_server: SSHMintServer, tmp_path: Path, cwd: Path
) -> None:
    """The issue's trap: ``admin --config FILE`` while the server runs on PostgreSQL.
    ``add-user``, ``lock-user`` and ``unlock-user`` work on the server's PostgreSQL
    database (the server's own view shows the change), and no SQLite file or data
    directory appears anywhere."""
    admin = _config_admin(_pg_config(postgresql_server, tmp_path), cwd, "group")
    email = f"pg-{uuid.uuid4().hex[:8]}@example.com"
    code, out, err = admin("add-user", email, "--json")
    assert (code, err) == (0, "")  # no "created new database": PostgreSQL was used
    user_id = json.loads(out)["user_id"]
    assert admin("lock-user", email) == (0, f"locked {email}\n", "")
    stored = postgresql_server.stored_users()[email]  # in the server's database
    assert (stored.user_id, stored.locked) == (user_id, True)
    assert admin("unlock-user", email) == (0, f"unlocked {email}\n", "")
    assert postgresql_server.stored_users()[email].locked is False
    assert _tree(cwd) == [] and not (tmp_path / "unused-data").exists()
    assert not list(tmp_path.rglob("*.db*"))


def test_admin_config_naming_postgresql_is_used_by_the_reading_subcommands(
    postgresql_server: SSHMintServer, tmp_path: Path, cwd: Path
) -> None:
    """The same trap for ``users`` (it lists the server's users) and ``backup`` (it names
    ``pg_dump``, the tool for a PostgreSQL database)."""
    admin = _config_admin(_pg_config(postgresql_server, tmp_path), cwd, "group")
    email = f"pg-{uuid.uuid4().hex[:8]}@example.com"
    user_id = postgresql_server.add_user(email)
    listed = json.loads(admin("users", "--json")[1])["users"]
    assert [u["locked"] for u in listed if u["user_id"] == user_id] == [False]
    code, out, err = admin("backup", "copy.db")
    assert (code, out) == (1, "") and "pg_dump" in err
    assert _tree(cwd) == [] and not (tmp_path / "unused-data").exists()
    assert not list(tmp_path.rglob("*.db*"))


@pytest.mark.parametrize("where", ["subcommand", "SSHMINT_CONFIG"])
def test_admin_config_naming_postgresql_wherever_it_is_given(
    postgresql_server: SSHMintServer, tmp_path: Path, cwd: Path, where: str
) -> None:
    admin = _config_admin(_pg_config(postgresql_server, tmp_path), cwd, where)
    email = f"pg-{uuid.uuid4().hex[:8]}@example.com"
    assert admin("add-user", email)[0::2] == (0, "")
    assert email in postgresql_server.stored_users()
    assert _tree(cwd) == [] and not list(tmp_path.rglob("*.db*"))


def test_admin_with_an_unreadable_config_fails_before_touching_any_database(
    cwd: Path, tmp_path: Path
) -> None:
    result = run_sshmint(
        "admin", "add-user", "a@example.com", "--config", str(tmp_path / "no.toml"), cwd=cwd
    )
    assert result.returncode == 1 and result.stderr.startswith("cannot read config file ")
    assert _tree(cwd) == []
    assert os.listdir(tmp_path) == ["cwd"]


def test_admin_config_without_the_servers_db_cannot_create_a_stray_sqlite_database(
    postgresql_server: SSHMintServer, tmp_path: Path, cwd: Path
) -> None:
    """The trap as it happened: the server runs on PostgreSQL with ``--db`` on its command
    line (or in its environment), and the config file both share names only the data
    directory. ``admin --config`` then resolved the default SQLite file in that directory
    and created it. Now every subcommand refuses: reading ones because the file is missing
    (docs/operations.md#a-missing-database), ``add-user`` because the directory holds the server's host key, which a
    server on that SQLite file would have made together with the database."""
    config = tmp_path / "sshmint.toml"
    config.write_text(f'data-dir = "{postgresql_server.data_dir}"\n')
    db_file = postgresql_server.data_dir / "sshmint.db"
    assert (postgresql_server.data_dir / "ssh_host_ed25519_key").is_file() and not db_file.exists()
    admin = _config_admin(config, cwd, "group")
    email = f"stray-{uuid.uuid4().hex[:8]}@example.com"
    assert admin("add-user", email) == (
        1,
        "",
        f"no sshmint database at {db_file}, but {postgresql_server.data_dir} holds a server's host "
        "key: that server keeps its database elsewhere (pass its --db or --config)\n",
    )
    assert admin("users") == (1, "", MISSING.format(db_file))
    assert not db_file.exists() and _tree(cwd) == []
    assert email not in postgresql_server.stored_users()
