"""``sshmint serve``: run the SSH interface and the HTTP API/proxy (docs/operations.md#sshmint-serve)."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from sshmint.server.config import OPTIONS, ConfigError, OptionSpec, env_name, load_config

__all__ = ["serve"]


def _option(spec: OptionSpec) -> click.Option:
    default = f" Default {spec.default}." if spec.default is not None else ""
    return click.Option(
        [f"--{spec.name}"],
        default=None,
        metavar=spec.metavar,
        help=f"{spec.help}{default} [env {env_name(spec.name)}]",
    )


_OPTIONS = [_option(spec) for spec in OPTIONS]


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def _serve(**values: str | None) -> None:
    """Run the sshmint server until SIGTERM or SIGINT.

    Options come from the command line, else SSHMINT_<NAME> environment variables, else the
    --config TOML file, else the defaults.
    """
    # Until the event loop takes SIGTERM over, it means a clean exit 0 (docs/operations.md#sshmint-serve).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    flags = {name.replace("_", "-"): value for name, value in values.items()}
    try:
        config = load_config(flags)
    except ConfigError as exc:
        click.echo(f"sshmint: {exc.message}", err=True)
        sys.exit(1)
    from sshmint.server.app import configure_logging, run_server

    configure_logging(config.log_format, config.log_level)
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
