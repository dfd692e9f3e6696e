"""``sshmint exec``: run one command through ``POST /exec`` (docs/client.md#sshmint-exec).

The token is ``--token``, else ``$SSHMINT_TOKEN``, else minted on the fly from the mint
options (docs/client.md#sshmint-mint). A single COMMAND word is sent verbatim; several words are each
shell-quoted and joined with spaces, so ``sshmint exec ssh-key list`` and
``sshmint exec 'ssh-key list'`` send the same line.

Output: the response body as it came (docs/client.md#sshmint-exec), whether or not stdout is a terminal, so
that a command tried by hand behaves the same in a script. ``--pretty`` asks for text
instead (:mod:`sshmint.cli.pretty`): the result's members one per line, and on failure the
error message alone on stderr, as the SSH interface prints them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from typing import Any

import aiohttp
import click

from sshmint.cli.minting import (
    MintOptions,
    cli_failures,
    fail,
    mint_options,
    mint_token_from_options,
)

__all__ = ["DEFAULT_URL", "TOKEN_ENV", "command_body", "exec_command"]

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENV = "SSHMINT_TOKEN"
_TIMEOUT_SECONDS = 60.0  # the server gives up on a command after 30 s


def command_body(words: tuple[str, ...]) -> str:
    """docs/client.md#sshmint-exec: one word verbatim; several words POSIX-shell-quoted and space-joined."""
    if len(words) == 1:
        return words[0]
    return " ".join(shlex.quote(word) for word in words)


async def _post(url: str, token: str, body: str) -> tuple[int, bytes]:
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            url,
            data=body.encode("utf-8"),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "text/plain; charset=utf-8",
            },
        ) as response,
    ):
        return response.status, await response.read()


def _exec_url(base: str) -> str:
    base = base.strip()
    if not base.startswith(("http://", "https://")):
        # An invalid option value is a failure (exit 1), not a usage error (docs/client.md#shared-behaviour).
        fail(f"invalid --url {base!r}: must start with http:// or https://")
    return base.rstrip("/") + "/exec"


def _mint_options_given(options: MintOptions) -> bool:
    return options != MintOptions()


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--url",
    envvar="SSHMINT_URL",
    default=DEFAULT_URL,
    show_default=True,
    metavar="URL",
    help="The server's base URL (env SSHMINT_URL); the request goes to URL/exec.",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="An exe0 or exe1 token (default: $SSHMINT_TOKEN, else one minted from the options).",
)
@click.option(
    "--pretty",
    is_flag=True,
    help="Print the result as text for people (default: the JSON body as received).",
)
@mint_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(
    url: str, token: str | None, pretty: bool, command: tuple[str, ...], **kwargs: Any
) -> None:
    """Run COMMAND on the server through POST /exec and print its JSON result.

    Options go before COMMAND: what follows it is sent to the server.

    \b
    Examples:
      sshmint exec --token "$TOKEN" whoami
      sshmint exec --pretty --token "$TOKEN" ssh-key list
      sshmint exec --key ~/.ssh/exe_dev_api --cmds ls --exp 5min ls
      SSHMINT_URL=https://sshmint.example.com sshmint exec 'ssh-key list'
    """
    options = MintOptions.pop_from(kwargs)
    with cli_failures():
        endpoint = _exec_url(url)
        if token is not None and _mint_options_given(options):
            fail("--token cannot be combined with mint options")
        if token is None:
            token = os.environ.get(TOKEN_ENV) or None
        if token is None:
            token = mint_token_from_options(options)
        try:
            status, data = asyncio.run(_post(endpoint, token.strip(), command_body(command)))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            fail(f"cannot reach {endpoint}: {reason}")
    if pretty:
        _print_pretty(status, data)
    else:
        stream = sys.stdout.buffer if status == 200 else sys.stderr.buffer
        stream.write(data)
        stream.flush()
    if status != 200:
        raise click.exceptions.Exit(1)


def _print_pretty(status: int, data: bytes) -> None:
    """``--pretty``: the result rendered as text on stdout, or the error message alone on
    stderr. A body that is not JSON (an intermediary's error page) is shown as received."""
    from sshmint.cli.pretty import render

    try:
        document = json.loads(data) if data.strip() else None
    except ValueError:
        document = None
    if status != 200:
        error = document.get("error") if isinstance(document, dict) else None
        if isinstance(error, str):
            click.echo(render(error), err=True)
        else:
            sys.stderr.buffer.write(data)
            sys.stderr.flush()
    elif document is not None:
        click.echo(render(document))
    elif data.strip():
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
