"""``sshmint admin``: manage accounts directly in the database (docs/operations.md#admin-commands, docs/operations.md#a-missing-database,
docs/operations.md#backup).

Every subcommand takes ``--data-dir``, ``--db`` and ``--config`` (also on the group, and from
the ``SSHMINT_*`` environment like ``serve``), creates or migrates the schema, and exits 0 on
success or 1 on failure with the message alone on stderr. It can run while the server runs:
the server caches nothing, so the next request sees the change (R150).

Only ``add-user`` may create a SQLite database (and says so on stderr); the others refuse
a missing file, so that a command run from the wrong directory, or without the server's
``--db``, fails instead of reading or changing a new empty database. ``backup`` copies a
live SQLite database (see :mod:`sshmint.server.store.backup`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from sshmint.duration import rfc3339
from sshmint.server.config import ConfigError, env_name, load_config
from sshmint.server.infra.files import make_private_dir

__all__ = ["admin"]

_T = TypeVar("_T")

_STORE_OPTIONS = ("data-dir", "db", "config")


class AdminError(click.ClickException):
    """A failure: the message alone on stderr, exit status 1 (docs/operations.md#admin-commands)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


def _fail(message: str) -> NoReturn:
    raise AdminError(message)


class _AdminUsageError(click.UsageError):
    """Usage errors are failures too: exit 1 like every other admin failure (docs/operations.md#admin-commands)."""

    exit_code = 1


class _UsageExitsOne:
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc,no-any-return]
        except click.UsageError as exc:
            raise _AdminUsageError(exc.format_message(), exc.ctx) from None


class _AdminCommand(_UsageExitsOne, click.Command):
    pass


class _AdminGroup(_UsageExitsOne, click.Group):
    command_class = _AdminCommand

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _AdminUsageError(exc.format_message(), exc.ctx) from None


def _store_options(func: Callable[..., Any]) -> Callable[..., Any]:
    helps = {
        "data-dir": "Data directory (default ./sshmint-data).",
        "db": "Database URL (default SQLite in the data directory).",
        "config": "TOML configuration file, as for serve.",
    }
    for name in reversed(_STORE_OPTIONS):
        func = click.option(
            f"--{name}",
            f"{name.replace('-', '_')}_option",
            default=None,
            help=f"{helps[name]} [env {env_name(name)}]",
        )(func)
    return func


@dataclass(frozen=True)
class _Database:
    """The database an admin command works on: its URL and, for SQLite, the file's
    absolute path and whether it existed before the command."""

    url: str
    sqlite_path: Path | None
    existed: bool


def _missing_database(path: Path) -> str:
    return f"no sshmint database at {path} (start sshmint serve first, or pass --data-dir or --db)"


def _database(ctx: click.Context, options: dict[str, str | None], *, create: bool) -> _Database:
    """Resolve the database as ``serve`` does: subcommand options beat group options; both
    beat the environment, then the ``--config`` file (docs/operations.md#sshmint-serve, docs/operations.md#admin-commands).

    A SQLite file that does not exist is an error (nothing is created), unless ``create``
    (``add-user``), which also creates the default data directory (docs/operations.md#a-missing-database). The check
    is made on the resolved URL, so a config file naming PostgreSQL never falls back to a
    SQLite file.

    Even ``add-user`` does not create the default database in a data directory that
    already holds a server's host key: a server that had used that database would have
    created it with the key, so that server keeps its data elsewhere (``--db`` given to it
    on its command line or in its environment, not in the shared config file). This is
    how ``admin --config`` used to put users into a new SQLite file while the server ran
    on PostgreSQL.
    """
    from sshmint.server.store import InvalidDatabaseURL
    from sshmint.server.store.engine import parse_database_url

    group: dict[str, str | None] = ctx.obj or {}
    flags = {
        name: options.get(name) if options.get(name) is not None else group.get(name)
        for name in _STORE_OPTIONS
    }
    try:
        config = load_config(flags)
        parsed = parse_database_url(config.db)
    except ConfigError as exc:
        _fail(exc.message)
    except InvalidDatabaseURL as exc:
        _fail(exc.message)
    if parsed.backend != "sqlite":
        return _Database(config.db, None, True)
    path = Path(os.path.abspath(parsed.description))
    found = _exists(path)
    if found is None:  # cannot be examined: opening it reports why
        return _Database(config.db, path, True)
    if not found and not create:
        _fail(_missing_database(path))
    if not found and config.db_is_default and _exists(config.host_key_path):
        _fail(
            f"no sshmint database at {path}, but {config.data_dir} holds a server's host key: "
            "that server keeps its database elsewhere (pass its --db or --config)"
        )
    if not found and config.db_is_default:
        try:
            make_private_dir(config.data_dir)
        except OSError as exc:
            _fail(f"cannot create data directory {config.data_dir}: {exc.strerror}")
    return _Database(config.db, path, found)


def _exists(path: Path) -> bool | None:
    """Whether ``path`` exists; ``None`` when that cannot be told (no permission)."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return None
    return True


def _with_store(db_url: str, action: Callable[[Any], Awaitable[_T]]) -> _T:
    """Open (and migrate) the store, run ``action(store)``, close the store."""
    from sshmint.server.store import Store, StoreError

    async def run() -> _T:
        store = await Store.open(db_url)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        _fail(exc.message)


def _options(**values: str | None) -> dict[str, str | None]:
    return {key.removesuffix("_option").replace("_", "-"): value for key, value in values.items()}


def _echo_json(document: object) -> None:
    click.echo(json.dumps(document, ensure_ascii=False, separators=(",", ":")))


def _now() -> int:
    from sshmint.server.runtime import unix_now

    return unix_now()


@click.group(cls=_AdminGroup)
@_store_options
@click.pass_context
def admin(ctx: click.Context, /, **values: str | None) -> None:
    """Manage accounts (add, lock, unlock, list users) and back up the database."""
    # The failure is reported once, as the command's message; the store's own warning
    # about an unreachable database would only repeat it.
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    ctx.obj = _options(**values)


def _read_key_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        _fail(f"cannot read key file {path}: {exc.strerror or exc}")
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


@admin.command("add-user")
@click.argument("email")
@click.option("--key", "key_line", default=None, help="Public key line to register.")
@click.option("--key-file", default=None, help="File whose first non-empty line is the key.")
@click.option("--json", "as_json", is_flag=True, help="Output in JSON format.")
@_store_options
@click.pass_context
def add_user(
    ctx: click.Context,
    /,
    email: str,
    key_line: str | None,
    key_file: str | None,
    as_json: bool,
    **values: str | None,
) -> None:
    """Create the user EMAIL, optionally with a first SSH key."""
    from sshmint.errors import PublicKeyError
    from sshmint.keys import PublicKey, parse_public_key_line
    from sshmint.server.store.validation import ValidationError, normalize_email, sanitize_name
    from sshmint.strictjson import quote

    if key_line is not None and key_file is not None:
        _fail("--key and --key-file are mutually exclusive")
    try:
        stored_email = normalize_email(email)
    except ValidationError as exc:
        _fail(exc.message)
    public_key: PublicKey | None = None
    if key_file is not None:
        key_line = _read_key_file(key_file)
    if key_line is not None:
        try:
            public_key = parse_public_key_line(key_line)
        except PublicKeyError as exc:
            _fail(exc.message)
    database = _database(ctx, _options(**values), create=True)
    # Imported only now: input errors above are reported without loading the database layer.
    from sshmint.server.store import EmailTaken, KeyTaken, Store

    async def create(store: Store) -> str:
        name = sanitize_name(public_key.comment) if public_key is not None else ""
        try:
            user, _ = await store.create_user(stored_email, _now(), key=public_key, key_name=name)
        except EmailTaken:
            _fail(f"user {quote(stored_email)} already exists")
        except KeyTaken:
            _fail("this SSH key is already associated with another account")
        return user.user_id

    user_id = _with_store(database.url, create)
    if not database.existed:
        click.echo(f"created new database at {database.sqlite_path}", err=True)
    if as_json:
        _echo_json({"user_id": user_id, "email": stored_email})
    else:
        click.echo(f"created user {user_id} {stored_email}")


def _set_locked(
    ctx: click.Context, email: str, locked: bool, values: dict[str, str | None]
) -> None:
    from sshmint.server.store import Store
    from sshmint.strictjson import quote

    stored_email = email.strip().lower()
    database = _database(ctx, _options(**values), create=False)

    async def update(store: Store) -> bool:
        return await store.set_locked(stored_email, locked) is not None

    if not _with_store(database.url, update):
        _fail(f"user {quote(stored_email)} not found")
    click.echo(f"{'locked' if locked else 'unlocked'} {stored_email}")


@admin.command("lock-user")
@click.argument("email")
@_store_options
@click.pass_context
def lock_user(ctx: click.Context, /, email: str, **values: str | None) -> None:
    """Lock EMAIL out: SSH sessions, tokens and VMs stop working (idempotent)."""
    _set_locked(ctx, email, True, values)


@admin.command("unlock-user")
@click.argument("email")
@_store_options
@click.pass_context
def unlock_user(ctx: click.Context, /, email: str, **values: str | None) -> None:
    """Clear the lock-out flag of EMAIL (idempotent)."""
    _set_locked(ctx, email, False, values)


@admin.command("users")
@click.option("--json", "as_json", is_flag=True, help="Output in JSON format.")
@_store_options
@click.pass_context
def users(ctx: click.Context, /, as_json: bool, **values: str | None) -> None:
    """List every user, ordered by email."""
    from sshmint.server.store import Store, User

    database = _database(ctx, _options(**values), create=False)

    async def fetch(store: Store) -> list[tuple[User, int]]:
        return await store.list_users()

    rows = _with_store(database.url, fetch)
    if as_json:
        _echo_json(
            {
                "users": [
                    {
                        "user_id": user.user_id,
                        "email": user.email,
                        "locked": user.locked,
                        "created_at": rfc3339(user.created_at),
                        "ssh_keys": count,
                    }
                    for user, count in rows
                ]
            }
        )
        return
    for user, count in rows:
        state = "locked" if user.locked else "active"
        keys = f"{count} key" + ("" if count == 1 else "s")
        click.echo(
            f"{user.user_id}  {user.email}  {state}  {keys}  created {rfc3339(user.created_at)}"
        )
    sys.stdout.flush()


@admin.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_store_options
@click.pass_context
def backup(ctx: click.Context, /, file: Path, **values: str | None) -> None:
    """Write a consistent copy of the SQLite database to the new file FILE (mode 0600),
    also while the server runs. FILE must not exist yet.

    To restore, stop the server, move sshmint.db and its -wal and -shm files out of the
    data directory together, and copy FILE there as sshmint.db (or serve FILE itself with
    --db sqlite:///FILE). PostgreSQL databases are backed up with pg_dump instead.
    """
    from sshmint.server.store.backup import BackupError, backup_sqlite

    database = _database(ctx, _options(**values), create=False)
    if database.sqlite_path is None:
        _fail(
            "admin backup copies SQLite databases; back up a PostgreSQL database "
            "with pg_dump (pg_dump --format=custom --file=FILE DBNAME)"
        )
    destination = Path(os.path.abspath(file))
    try:
        size = backup_sqlite(database.sqlite_path, destination)
    except BackupError as exc:
        _fail(exc.message)
    click.echo(f"backed up {database.sqlite_path} to {destination} ({size} bytes)")
