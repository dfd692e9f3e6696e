"""Minting from command-line options (docs/client.md#shared-behaviour, docs/client.md#sshmint-mint), shared by ``mint`` and ``exec``.

:func:`mint_options` adds the mint options to a click command; :meth:`MintOptions.pop_from`
takes their values back out of the command's keyword arguments; and
:func:`mint_token_from_options` validates every value, picks the key and signs. Failures
raise :class:`~sshmint.errors.SSHMintError` with a one-line message; :func:`cli_failures`
turns them into that message on stderr and exit status 1 (docs/client.md#shared-behaviour).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from sshmint.duration import parse_when
from sshmint.errors import KeyEncryptedError, SSHMintError
from sshmint.keys import load_public_key_file
from sshmint.keytypes import KEY_TYPES
from sshmint.signing import Signer, load_private_key
from sshmint.token import KEEP, build_payload, mint_exe0, parse_exe0

__all__ = [
    "DEFAULT_KEY_FILES",
    "NEVER_EXPIRES_WARNING",
    "PASSPHRASE_ENV",
    "MintOptions",
    "cli_failures",
    "fail",
    "mint_options",
    "mint_token_from_options",
    "never_expires_warning",
    "payload_from_options",
    "resolve_namespace",
    "select_signer",
]

PASSPHRASE_ENV = "SSHMINT_KEY_PASSPHRASE"
NEVER_EXPIRES_WARNING = "warning: this token never expires; pass --exp to limit its lifetime"
# docs/client.md#sshmint-mint: tried in this order when neither --key nor --agent is given.
DEFAULT_KEY_FILES = ("id_ed25519", "id_ecdsa", "id_rsa")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    """Print a one-line message on stderr and exit 1 (docs/client.md#shared-behaviour)."""
    click.echo(" ".join(message.split()) or "error", err=True)
    raise click.exceptions.Exit(1)


@contextmanager
def cli_failures() -> Iterator[None]:
    """Run a client command body: errors become one line on stderr and exit 1, never a
    traceback. click's own exits (usage errors: 2, ``--help``, aborts) pass through."""
    try:
        yield
    except (click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except SSHMintError as exc:
        fail(exc.message)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}")
    except (
        Exception
    ) as exc:  # fail closed, but never show a traceback (docs/client.md#shared-behaviour)
        fail(f"unexpected error: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class MintOptions:
    """The values of the docs/client.md#sshmint-mint options, as given on the command line (unparsed)."""

    key: str | None = None
    agent: bool = False
    perms: str | None = None
    exp: str | None = None
    nbf: str | None = None
    cmds: str | None = None
    ctx: str | None = None
    namespace: str | None = None
    vm: str | None = None
    web_host: str = "localhost"
    vm_host: str = "localhost"

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> MintOptions:
        """Remove the mint options from a click command's ``kwargs`` and return them."""
        return cls(**{f.name: kwargs.pop(f.name) for f in fields(cls) if f.name in kwargs})


_OPTIONS: tuple[Callable[[F], F], ...] = (
    click.option(
        "--key",
        metavar="PATH",
        help="Private key file, or a .pub file to sign with that identity in ssh-agent. "
        "Default: the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa.",
    ),
    click.option("--agent", is_flag=True, help="Sign with the first identity in ssh-agent."),
    click.option("--perms", metavar="JSON", help="Starting permissions object (strict JSON)."),
    click.option(
        "--exp",
        metavar="WHEN",
        help="Expiry: unix time, a duration (15min, 12h, 30d, 2mo, 1y) from now, or never.",
    ),
    click.option(
        "--nbf", metavar="WHEN", help="Not valid before: unix time or a duration from now."
    ),
    click.option("--cmds", metavar="A,B", help="Commands the token may run, comma-separated."),
    click.option("--ctx", metavar="JSON", help="Context value passed to VMs verbatim."),
    click.option("--namespace", metavar="NS", help="Signing namespace (default v0@<web-host>)."),
    click.option(
        "--vm", metavar="NAME", help="Mint a token for VM NAME (namespace v0@NAME.<vm-host>)."
    ),
    click.option(
        "--web-host",
        metavar="HOST",
        default="localhost",
        show_default=True,
        help="The server's web host.",
    ),
    click.option(
        "--vm-host",
        metavar="HOST",
        default="localhost",
        show_default=True,
        help="The server's VM host.",
    ),
)


def mint_options(command: F) -> F:
    """Decorator: add the docs/client.md#sshmint-mint mint options to a click command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def resolve_namespace(options: MintOptions) -> str:
    """docs/client.md#sshmint-mint: ``--namespace``, or ``v0@<vm>.<vm-host>`` for ``--vm``, else ``v0@<web-host>``."""
    if options.namespace is not None and options.vm is not None:
        raise SSHMintError("--namespace and --vm are mutually exclusive")
    if options.namespace is not None:
        namespace = options.namespace
    elif options.vm is not None:
        if not options.vm:
            raise SSHMintError("--vm must not be empty")
        namespace = f"v0@{options.vm}.{options.vm_host}"
    else:
        namespace = f"v0@{options.web_host}"
    if not namespace:
        raise SSHMintError("--namespace must not be empty")
    return namespace


def _split_cmds(text: str) -> list[str]:
    # docs/client.md#sshmint-mint: split on ",", trimmed, empties dropped. Nothing left is an empty list,
    # which permits nothing (docs/permissions.md#token-cmds): an explicit --cmds never widens a token.
    return [c.strip() for c in text.split(",") if c.strip()]


def payload_from_options(options: MintOptions, now: int) -> bytes:
    """The payload of docs/client.md#sshmint-mint, checked against docs/tokens.md#validation steps 5–13."""
    return build_payload(
        options.perms,
        exp=KEEP if options.exp is None else parse_when(options.exp, now),
        nbf=KEEP if options.nbf is None else parse_when(options.nbf, now),
        cmds=KEEP if options.cmds is None else _split_cmds(options.cmds),
        ctx_text=KEEP if options.ctx is None else options.ctx,
    )


def _passphrase(path: str) -> bytes:
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env.encode("utf-8", "surrogateescape")
    if not sys.stdin.isatty():
        raise KeyEncryptedError(path)
    text: str = click.prompt(f"Enter passphrase for {path}", hide_input=True, err=True)
    return text.encode("utf-8", "surrogateescape")


def _load_private(path: str) -> Signer:
    try:
        return load_private_key(path)
    except KeyEncryptedError:
        return load_private_key(path, _passphrase(path))


def _is_public_key_file(path: str) -> bool:
    """Whether the file's first meaningful line names a public key type (``KEY.pub``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False  # the private-key loader reports the error
    for line in head.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(b"#"):
            first = stripped.split(None, 1)[0].decode("ascii", "replace")
            return first in KEY_TYPES
    return False


def _agent(public_key_path: str | None) -> Signer:
    from sshmint.agent import agent_signer  # imported only when the agent is used

    wanted = None if public_key_path is None else load_public_key_file(public_key_path)
    return agent_signer(wanted)


def select_signer(options: MintOptions) -> Signer:
    """docs/client.md#sshmint-mint key selection: --key (private key file or ``.pub`` via the agent), --agent,
    else the first existing default key."""
    if options.key is not None and options.agent:
        raise SSHMintError("--key and --agent are mutually exclusive")
    if options.agent:
        return _agent(None)
    if options.key is not None:
        if _is_public_key_file(options.key):
            return _agent(options.key)
        return _load_private(options.key)
    ssh_dir = Path.home() / ".ssh"
    for name in DEFAULT_KEY_FILES:
        candidate = ssh_dir / name
        if candidate.exists():
            return _load_private(str(candidate))
    raise SSHMintError(
        "no key: none of ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa, ~/.ssh/id_rsa exists; "
        "use --key PATH or --agent"
    )


def mint_token_from_options(options: MintOptions, *, now: int | None = None) -> str:
    """Validate every option value, then pick the key and sign (docs/client.md#sshmint-mint).

    Option values are checked before any key is touched, so a bad value never prompts
    for a passphrase.
    """
    when = int(time.time()) if now is None else now
    payload = payload_from_options(options, when)
    namespace = resolve_namespace(options)
    signer = select_signer(options)
    return mint_exe0(payload, signer, namespace)


def never_expires_warning(options: MintOptions, token: str) -> str | None:
    """docs/client.md#client-programs: the warning for a token minted without any expiry, unless ``--exp never``
    said so on purpose (an ``exp`` given in ``--perms`` counts as an expiry)."""
    if options.exp is not None or parse_exe0(token).permissions.exp is not None:
        return None
    return NEVER_EXPIRES_WARNING
