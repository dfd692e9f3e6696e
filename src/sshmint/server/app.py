"""``sshmint serve``: one process running the SSH interface and the HTTP listener (docs/operations.md#sshmint-serve).

Start-up order: data directory, host key, sockets (bound before any server starts, so the
command layer knows the real HTTP port), database (migrated by ``Store.open``), SSH server,
metrics listener (with ``--metrics-listen``), HTTP server. Each listener prints its
``... listening on HOST:PORT`` line once it accepts connections; then the start-up report
(docs/operations.md#start-up-report): ``data dir``, ``database`` (no password) and ``ssh
host key``. SIGTERM/SIGINT stop accepting, close the listeners and the store, exit 0.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import resource
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import sqlalchemy as sa

from sshmint.keys import fingerprint, format_fingerprint
from sshmint.server.config import ListenAddress, ServerConfig, format_host_port
from sshmint.server.infra.files import loose_mode_warning, make_private_dir
from sshmint.server.infra.logs import configure_logging
from sshmint.server.infra.metrics import Metrics, MetricsListener
from sshmint.server.infra.observe import Observer
from sshmint.server.runtime import ServerRuntime

if TYPE_CHECKING:
    import asyncssh

    from sshmint.server.store import Store

__all__ = [
    "StartupError",
    "bind_sockets",
    "configure_logging",
    "display_database_url",
    "raise_open_file_limit",
    "run_server",
]

# How long the HTTP listener lets in-flight requests finish on shutdown.
HTTP_SHUTDOWN_TIMEOUT = 3.0
# Connections the kernel holds for a listener that is not accepting (at --max-connections,
# docs/security.md#slow-and-idle-clients); the kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096
# Descriptors a server needs besides its HTTP connections (database, SSH, upstreams).
_SPARE_FILES = 256
_log = logging.getLogger("sshmint.server")


class StartupError(Exception):
    """The server cannot start; ``str(exc)`` is the one line printed on stderr."""


def bind_sockets(address: ListenAddress) -> list[socket.socket]:
    """Bind and listen on every address ``address.host`` resolves to, all on one port.

    With port 0 the first socket picks a free port and the others reuse it, so a name such
    as ``localhost`` gets the same port on 127.0.0.1 and ::1.
    """
    try:
        infos = socket.getaddrinfo(
            address.host or None,
            address.port,
            family=socket.AF_UNSPEC,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {address}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    port = address.port
    last_error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        if (family, str(sockaddr[0])) in seen:
            continue
        seen.add((family, str(sockaddr[0])))
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((sockaddr[0], port, *sockaddr[2:]))
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            # An address family the host lacks (e.g. ::1 without IPv6) is skipped; anything
            # else (address in use, permission) fails the start.
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) and len(infos) > 1:
                last_error = exc
                continue
            for s in sockets:
                s.close()
            reason = exc.strerror or str(exc)
            raise StartupError(f"cannot listen on {address}: {reason.lower()}") from None
        if port == 0:
            port = int(sock.getsockname()[1])
        sockets.append(sock)
    if not sockets:
        reason = last_error.strerror if last_error and last_error.strerror else "no usable address"
        raise StartupError(f"cannot listen on {address}: {reason.lower()}")
    return sockets


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _bound(sockets: list[socket.socket]) -> str:
    host, port = sockets[0].getsockname()[:2]
    return format_host_port(str(host), int(port))


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft limit on open files to the hard limit (every HTTP connection is a
    descriptor); returns the soft limit now in force. Warns when it stays below
    ``wanted`` (``--max-connections`` plus what the rest of the server needs): accepting
    then pauses whenever descriptors run out, instead of the connection limit holding."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        _log.warning(
            "open file limit %d is below --max-connections plus %d: raise it (ulimit -n)",
            soft,
            _SPARE_FILES,
        )
    return soft


def _announce(line: str) -> None:
    print(line, flush=True)


_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def display_database_url(db_url: str) -> str:
    """``db_url`` as the start-up report shows it (docs/operations.md#start-up-report): any
    password, in the authority or as a ``password=`` parameter, replaced by ``***``; a
    SQLite path made absolute."""
    try:
        url = sa.make_url(db_url.strip())
    except sa.exc.ArgumentError:  # cannot happen for a URL the store opened
        return "***"
    if (
        url.drivername.startswith("sqlite")
        and url.database
        and not Path(url.database).is_absolute()
    ):
        url = url.set(database=str(Path(url.database).absolute()))
    return _PASSWORD_PARAMETER.sub(r"\1***", url.render_as_string(hide_password=True))


def _report(config: ServerConfig, host_key: asyncssh.SSHKey) -> None:
    """The start-up report of docs/operations.md#start-up-report, after the listening lines."""
    _announce(f"data dir {config.data_dir.resolve()}")
    _announce(f"database {display_database_url(config.db)}")
    _announce(f"ssh host key {format_fingerprint(fingerprint(host_key.public_data))}")


def _redact(text: str, db_url: str) -> str:
    """Remove the database password from an error text, should a driver echo it."""
    password = urlsplit(db_url).password
    text = " ".join(text.split())  # one line
    return text.replace(password, "***") if password else text


async def run_server(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop, 1 when start-up fails."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    cleanups: list[Callable[[], object]] = []
    try:
        try:
            await _serve(config, stop, cleanups)
        except StartupError as exc:
            print(f"sshmint: {exc}", file=sys.stderr, flush=True)
            return 1
        return 0
    finally:
        for cleanup in reversed(cleanups):
            try:
                result = cleanup()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                _log.exception("error during shutdown")
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _prepare_data_dir(data_dir: Path) -> None:
    """docs/security.md#files-and-modes: a new data directory is private (0700); an existing one that other
    users can read is reported once."""
    try:
        created = make_private_dir(data_dir)
    except OSError as exc:
        raise StartupError(f"cannot create data directory {data_dir}: {exc.strerror}") from None
    warning = None if created else loose_mode_warning(data_dir)
    if warning is not None:
        _log.warning("%s", warning)


def _load_keys(config: ServerConfig) -> tuple[asyncssh.SSHKey, ssl.SSLContext | None]:
    """The SSH host key (made on first start) and the TLS context of --tls-cert/--tls-key;
    :class:`StartupError` with one line when either cannot be loaded."""
    from sshmint.server.http import ssl_context_from_config
    from sshmint.server.ssh import load_or_create_host_key

    try:
        host_key = load_or_create_host_key(config.host_key_path)
    except Exception as exc:  # asyncssh raises several types for unreadable or corrupt keys
        raise StartupError(f"cannot load SSH host key {config.host_key_path}: {exc}") from None
    try:
        tls = ssl_context_from_config(config)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load TLS certificate or key: {exc}") from None
    return host_key, tls


async def _serve(
    config: ServerConfig, stop: asyncio.Event, cleanups: list[Callable[[], object]]
) -> None:
    from sshmint.server.http import HTTPFrontEnd, build_http_listener
    from sshmint.server.http.ratelimit import BURST
    from sshmint.server.ssh import start_ssh_server
    from sshmint.server.store.housekeeping import Housekeeping

    _prepare_data_dir(config.data_dir)
    host_key, tls = _load_keys(config)
    # Sockets first: a port conflict fails fast, and connections arriving while the schema
    # is migrated wait in the listen backlog.
    raise_open_file_limit(config.max_connections + _SPARE_FILES)
    ssh_sockets = bind_sockets(config.ssh_listen)
    cleanups.append(lambda: _close_all(ssh_sockets))
    http_sockets = bind_sockets(config.http_listen)
    cleanups.append(lambda: _close_all(http_sockets))
    metrics_sockets: list[socket.socket] = []
    if config.metrics_listen is not None:
        metrics_sockets = bind_sockets(config.metrics_listen)
        cleanups.append(lambda: _close_all(metrics_sockets))

    store = await _open_store(config)
    cleanups.append(store.close)

    # docs/operations.md#metrics: without --metrics-listen no numbers are kept at all.
    metrics = Metrics() if metrics_sockets else None
    observer = Observer(metrics)
    store.on_unavailable = observer.db_error
    runtime = ServerRuntime(config=config, store=store, observer=observer)
    runtime.ssh_port = int(ssh_sockets[0].getsockname()[1])
    runtime.http_port = int(http_sockets[0].getsockname()[1])
    housekeeping = Housekeeping(store, runtime.now, rate_limit_burst=BURST)
    housekeeping.start()
    cleanups.append(housekeeping.close)

    ssh_listener = await start_ssh_server(runtime, ssh_sockets, host_key)
    cleanups.append(ssh_listener.close)
    _announce(f"ssh listening on {_bound(ssh_sockets)}")

    if metrics is not None:
        metrics_listener = MetricsListener(metrics)
        await metrics_listener.start(metrics_sockets)
        cleanups.append(metrics_listener.close)
        _announce(f"metrics listening on {_bound(metrics_sockets)}")

    front_end = HTTPFrontEnd(runtime)
    await front_end.start()
    cleanups.append(front_end.close)  # after the listener (cleanups run in reverse)
    listener = build_http_listener(front_end, config, tls, HTTP_SHUTDOWN_TIMEOUT)
    await listener.start(http_sockets)
    cleanups.append(listener.close)
    _announce(f"http listening on {_bound(http_sockets)}")
    _report(config, host_key)
    _log.info("sshmint serving (data dir %s)", config.data_dir.resolve())

    await stop.wait()
    _log.info("shutting down")


async def _open_store(config: ServerConfig) -> Store:
    """The store, migrated; :class:`StartupError` with one line (no password) if it cannot
    be opened."""
    from sshmint.server.store import Store, StoreError

    # A start-up failure is reported once, as the one line below; the store's own warning
    # about an unreachable database would repeat it.
    store_log = logging.getLogger("sshmint.store")
    level = store_log.level
    store_log.setLevel(logging.ERROR)
    try:
        return await Store.open(config.db, timeout=config.db_timeout, pool_size=config.db_pool_size)
    except StoreError as exc:
        raise StartupError(f"cannot open database: {_redact(exc.message, config.db)}") from None
    except Exception as exc:
        raise StartupError(
            f"cannot open database: {_redact(str(exc) or type(exc).__name__, config.db)}"
        ) from None
    finally:
        store_log.setLevel(level)
