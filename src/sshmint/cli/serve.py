"""``sshmint serve``: run the SSH interface and the HTTP API/proxy (SPEC Appendix A.1)."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from sshmint.server.config import ConfigError, env_name, load_config

__all__ = ["serve"]


def _option(name: str, help_text: str, metavar: str) -> click.Option:
    return click.Option(
        [f"--{name}"],
        default=None,
        metavar=metavar,
        help=f"{help_text} [env {env_name(name)}]",
    )


_OPTIONS = [
    _option(
        "data-dir", "Data directory (host key, SQLite database). Default ./sshmint-data.", "DIR"
    ),
    _option(
        "db",
        "Database URL: sqlite:///PATH or postgresql://... Default: SQLite in the data dir.",
        "URL",
    ),
    _option("ssh-listen", "SSH listen address. Default 127.0.0.1:2222.", "HOST:PORT"),
    _option("http-listen", "HTTP listen address. Default 127.0.0.1:8080.", "HOST:PORT"),
    _option(
        "web-host",
        "Host name of the API (tokens are signed for v0@WEB_HOST). Default localhost.",
        "HOST",
    ),
    _option(
        "vm-host", "Domain under which VMs are served as NAME.VM_HOST. Default localhost.", "HOST"
    ),
    _option(
        "upstream-allow", "Networks VM upstreams may use. Default 127.0.0.0/8,::1/128.", "CIDR,..."
    ),
    _option("tls-cert", "TLS certificate chain (PEM) for the HTTP listener.", "PATH"),
    _option("tls-key", "TLS private key (PEM) for the HTTP listener.", "PATH"),
    _option("config", "TOML file with any of these options (keys without the dashes).", "PATH"),
]


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def _serve(**values: str | None) -> None:
    """Run the sshmint server until SIGTERM or SIGINT.

    Options come from the command line, else SSHMINT_<NAME> environment variables, else the
    --config TOML file, else the defaults.
    """
    # Until the event loop takes SIGTERM over, it means a clean exit 0 (SPEC A.1).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    flags = {name.replace("_", "-"): value for name, value in values.items()}
    try:
        config = load_config(flags)
    except ConfigError as exc:
        click.echo(f"sshmint: {exc.message}", err=True)
        sys.exit(1)
    from sshmint.server.app import configure_logging, run_server

    configure_logging()
    try:
        status = asyncio.run(run_server(config))
    except KeyboardInterrupt:  # SIGINT before the handlers were installed
        status = 0
    sys.exit(status)


serve = click.Command(
    "serve",
    callback=_serve,
    params=list(_OPTIONS),
    help=_serve.__doc__,
    short_help="Run the sshmint server.",
)
