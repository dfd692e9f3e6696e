"""``sshmint git-credential``: a git credential helper that mints short-lived VM tokens.

git runs ``sshmint git-credential get`` with ``key=value`` lines on stdin (gitcredentials(7),
"Custom helpers"; git-credential(1), "Input/Output format"). For ``protocol=http|https`` and a
``host`` of the form ``<vm>.<vm-host>`` (port ignored, docs/proxy.md#host-routing) it answers a fresh exe0 token
for namespace ``v0@<vm>.<vm-host>`` (docs/tokens.md#namespaces) as the password; the VM proxy accepts it
through Basic auth (docs/proxy.md#credentials) and strips it before the upstream (docs/proxy.md#what-the-upstream-receives). Any other host
gets no output at all, so the next configured helper is asked. ``store`` and ``erase`` do
nothing: a token is minted per use and never kept.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

import click

from sshmint.duration import parse_duration
from sshmint.errors import KeyEncryptedError, SSHMintError

__all__ = ["DEFAULT_TTL", "DEFAULT_USERNAME", "git_credential", "parse_request", "vm_for_host"]

DEFAULT_TTL = "10min"
DEFAULT_USERNAME = "sshmint"
_MAX_INPUT_BYTES = 1 << 20  # git's requests are a few hundred bytes
# docs/accounts.md#vms: VM names.
_VM_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MAX_VM_NAME = 52


class _Failure(Exception):
    """A one-line message for stderr, then exit status 1."""


def parse_request(data: bytes) -> dict[str, str]:
    """git-credential(1) input: ``key=value`` lines up to a blank line or EOF.

    Repeated keys (``wwwauth[]``) keep their last value; they are not used here.
    """
    if len(data) > _MAX_INPUT_BYTES:
        raise _Failure("credential request too large")
    fields: dict[str, str] = {}
    for raw in data.decode("utf-8", "surrogateescape").split("\n"):
        line = raw.removesuffix("\r")
        if not line:
            break
        key, sep, value = line.partition("=")
        if not sep or not key:
            # Do not echo the line: it may hold someone's password.
            raise _Failure("invalid credential request line (expected key=value)")
        fields[key] = value
    return fields


def _host_without_port(host: str) -> str:
    """docs/proxy.md#host-routing: lower-case, port removed, one trailing dot removed."""
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal: never a VM host
        return host.partition("]")[0] + "]"
    host = host.rpartition(":")[0] if ":" in host else host
    return host.removesuffix(".")


def vm_for_host(host: str, vm_hosts: Sequence[str]) -> tuple[str, str] | None:
    """``(vm, vm_host)`` when ``host`` is ``<vm>.<vm_host>`` for one of ``vm_hosts``."""
    name = _host_without_port(host)
    # Longest vm-host first, so "a.b.example.com" prefers vm-host "b.example.com" if given.
    for vm_host in sorted({h.strip().lower().removesuffix(".") for h in vm_hosts}, key=len)[::-1]:
        if not vm_host or not name.endswith("." + vm_host):
            continue
        label = name[: -len(vm_host) - 1]
        if len(label) <= _MAX_VM_NAME and _VM_NAME.fullmatch(label):
            return label, vm_host
    return None


def _ttl_seconds(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except SSHMintError as exc:
        raise _Failure(f"--ttl: {exc.message}") from None
    if seconds is None:
        raise _Failure("--ttl must be a duration such as 10min; tokens here always expire")
    return seconds


def _answer(
    fields: dict[str, str], vm_hosts: Sequence[str], key: str | None, agent: bool, ttl: int
) -> str:
    if fields.get("protocol", "").lower() not in ("http", "https"):
        return ""
    match = vm_for_host(fields.get("host", ""), vm_hosts)
    if match is None:
        return ""
    vm, vm_host = match
    # Imported only now: git asks every helper about every host, and most need no crypto.
    from sshmint.client.minting import PASSPHRASE_ENV, TokenMinter, load_signer

    try:
        signer = load_signer(key, agent=agent)
    except KeyEncryptedError as exc:
        raise _Failure(f"key {exc.path} is encrypted; set {PASSPHRASE_ENV}") from None
    now = time.time()
    minter = TokenMinter(signer, f"v0@{vm}.{vm_host}", ttl=ttl, clock=lambda: now)
    token = minter.token()
    username = fields.get("username") or DEFAULT_USERNAME
    # password_expiry_utc (git >= 2.41) keeps git from reusing the token once it expires.
    return f"username={username}\npassword={token}\npassword_expiry_utc={int(now) + ttl}\n"


@click.command(
    "git-credential",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.argument("action")
@click.option(
    "--key",
    "key",
    metavar="PATH",
    help="Private key file, or PATH.pub to sign through ssh-agent with that identity.",
)
@click.option("--agent", is_flag=True, help="Sign with the ssh-agent's first identity.")
@click.option(
    "--vm-host",
    "vm_hosts",
    multiple=True,
    default=("localhost",),
    show_default=True,
    metavar="HOST",
    help="Serve hosts <vm>.HOST (repeatable).",
)
@click.option(
    "--ttl",
    default=DEFAULT_TTL,
    show_default=True,
    metavar="DURATION",
    help="Token lifetime (s, min, h, d, ...).",
)
def git_credential(
    action: str, key: str | None, agent: bool, vm_hosts: tuple[str, ...], ttl: str
) -> None:
    """git credential helper: answer `get` for <vm>.<vm-host> with a fresh VM token.

    \b
    git config --global credential.https://myvm.example.com.helper \\
      '!sshmint git-credential --key ~/.ssh/id_ed25519 --vm-host example.com'

    The leading ! makes git run the line as a shell command; `sshmint` must be on git's
    PATH (or write its full path after the !). Other hosts get no answer, so other helpers
    keep working; `store` and `erase` do nothing.
    """
    try:
        data = sys.stdin.buffer.read(_MAX_INPUT_BYTES + 1)
        if action != "get":  # store, erase, and future actions: ignore (gitcredentials(7))
            return
        if key is not None and agent:
            raise _Failure("--key and --agent are mutually exclusive")
        seconds = _ttl_seconds(ttl)
        answer = _answer(parse_request(data), vm_hosts, key, agent, seconds)
    except _Failure as exc:
        _fail(str(exc))
    except SSHMintError as exc:
        _fail(exc.message)
    except (ValueError, OSError) as exc:
        _fail(str(exc) or type(exc).__name__)
    except Exception as exc:  # never a traceback in git's output
        _fail(f"unexpected error: {type(exc).__name__}")
    if answer:
        sys.stdout.write(answer)
        sys.stdout.flush()


def _fail(message: str) -> NoReturn:
    click.echo(f"sshmint git-credential: {message}", err=True)
    sys.exit(1)
