"""``sshmint mint``, ``inspect`` and ``verify``: offline token tools (docs/client.md#shared-behaviour).

Exit status 0 on success, 1 on failure (message on stderr), 2 for usage errors.
"""

from __future__ import annotations

import time
from typing import Any

import click

from sshmint.cli.minting import (
    MintOptions,
    cli_failures,
    fail,
    mint_options,
    mint_token_from_options,
    never_expires_warning,
)
from sshmint.cli.pretty import printable
from sshmint.duration import rfc3339
from sshmint.errors import PublicKeyError, SSHMintError, TokenClaimError, TokenVerificationError
from sshmint.keys import PublicKey, format_fingerprint, load_public_key_file, parse_public_key_line
from sshmint.strictjson import dumps
from sshmint.token import (
    EXE1_PREFIX,
    ParsedToken,
    RawJSON,
    check_claims,
    is_well_formed_exe1,
    parse_exe0,
    verify_exe0,
)

__all__ = ["inspect", "load_allowed_keys", "mint", "verify"]

_SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.command(context_settings=_SETTINGS)
@mint_options
def mint(**kwargs: Any) -> None:
    """Mint an exe0 token offline by signing a permissions document with an SSH key.

    The payload starts from --perms (used verbatim when it is the only option) and
    --exp/--nbf/--cmds/--ctx set members; with nothing given it is {}. WHEN is a unix
    time or a duration from now: 30s, 15min, 12h, 30d, 2w, 2mo, 1y (a bare "m" is refused as
    ambiguous), or "never".

    \b
    Examples:
      sshmint mint --key ~/.ssh/id_ed25519 --exp 1h
      sshmint mint --key ~/.ssh/id_ed25519 --cmds whoami,ls --exp 30d
      sshmint mint --key ~/.ssh/id_ed25519.pub --exp 12h      # sign via ssh-agent
      sshmint mint --agent --vm myapp --ctx '{"role":"ci"}'
      sshmint mint --perms '{"cmds":["whoami"]}' --web-host api.example.com
    """
    options = MintOptions.pop_from(kwargs)
    with cli_failures():
        token = mint_token_from_options(options)
        warning = never_expires_warning(options, token)
    click.echo(token)
    if warning is not None:
        click.echo(warning, err=True)


def _utc(ts: int) -> str:
    try:
        return rfc3339(ts)
    except (OverflowError, OSError, ValueError):
        return "out of range"


def _inspection(parsed: ParsedToken) -> dict[str, Any]:
    """docs/client.md#sshmint-inspect members; ``permissions`` and ``ctx`` as :class:`RawJSON` text.

    The payload passed strict parsing, so its text is itself the JSON object: copying it
    keeps number formatting exact (``1e400`` is valid JSON but no float).
    """
    perms = parsed.permissions
    sig = parsed.sshsig
    payload_text = parsed.payload.decode("utf-8")  # step 9 guarantees UTF-8
    return {
        "format": "exe0",
        "payload": payload_text,
        "permissions": RawJSON(payload_text),
        "exp": perms.exp,
        "nbf": perms.nbf,
        "cmds": list(perms.effective_cmds),
        "cmds_default": perms.cmds is None,
        "ctx": RawJSON("null" if perms.ctx_raw is None else perms.ctx_raw),
        "key_type": parsed.public_key.key_type,
        "fingerprint": format_fingerprint(parsed.fingerprint),
        "public_key": parsed.public_key.openssh,
        "namespace": sig.namespace.decode("utf-8", "replace"),
        "hash_algorithm": sig.hash_algorithm,
        "signature_algorithm": sig.signature_format,
    }


def _json_object(members: dict[str, Any]) -> str:
    return (
        "{"
        + ",".join(
            f"{dumps(name)}:{value.text if isinstance(value, RawJSON) else dumps(value)}"
            for name, value in members.items()
        )
        + "}"
    )


def _validity_now(parsed: ParsedToken) -> str:
    try:
        check_claims(parsed.permissions, int(time.time()))
    except TokenClaimError as exc:
        return f"no ({exc.message.removeprefix('invalid token: ')})"
    return "yes (by its claims; the signature is not checked here, see `sshmint verify`)"


def _inspection_text(parsed: ParsedToken, info: dict[str, Any]) -> str:
    perms = parsed.permissions

    def when(ts: int | None) -> str:
        return "none" if ts is None else f"{ts} ({_utc(ts)})"

    cmds = dumps(info["cmds"]) + (" (default)" if info["cmds_default"] else "")
    rows = [
        ("format", "exe0"),
        ("payload", info["payload"]),
        ("exp", when(perms.exp)),
        ("nbf", when(perms.nbf)),
        ("cmds", cmds),
        ("ctx", perms.ctx_raw if perms.has_ctx else "(absent)"),
        ("key type", info["key_type"]),
        ("fingerprint", info["fingerprint"]),
        ("public key", info["public_key"]),
        ("namespace", printable(info["namespace"])),
        ("hash", info["hash_algorithm"]),
        ("signature", printable(info["signature_algorithm"])),
        ("valid now", _validity_now(parsed)),
    ]
    return "\n".join(f"{name + ':':<13}{printable(str(value))}" for name, value in rows)


@click.command(context_settings=_SETTINGS)
@click.argument("token")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def inspect(token: str, as_json: bool) -> None:
    """Show what a token contains, offline and without verifying the signature.

    exe0 tokens are parsed strictly; exe1 tokens are opaque handles, so only their
    form is checked.

    \b
    Examples:
      sshmint inspect "$TOKEN"
      sshmint inspect --json "$TOKEN" | jq .permissions
    """
    if token.startswith(EXE1_PREFIX):
        well_formed = is_well_formed_exe1(token)
        if as_json:
            click.echo(dumps({"format": "exe1", "well_formed": well_formed}))
        else:
            click.echo(f"format:      exe1\nwell-formed: {'yes' if well_formed else 'no'}")
        if not well_formed:
            fail("not a well-formed exe1 token")
        return
    with cli_failures():
        parsed = parse_exe0(token)
        info = _inspection(parsed)
        text = _json_object(info) if as_json else _inspection_text(parsed, info)
    click.echo(text)


def load_allowed_keys(path: str) -> dict[str, PublicKey]:
    """docs/client.md#sshmint-verify ``--allowed-keys``: ``<type> <base64> [comment]`` per line; blank lines and
    ``#`` comments ignored. Keyed by fingerprint (no prefix)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SSHMintError(f"{path}: not a UTF-8 text file") from None
    keys: dict[str, PublicKey] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            key = parse_public_key_line(stripped)
        except PublicKeyError as exc:
            raise SSHMintError(f"{path}:{number}: {exc.message}") from None
        keys[key.fingerprint] = key
    return keys


@click.command(context_settings=_SETTINGS)
@click.argument("token")
@click.option(
    "--namespace", required=True, metavar="NS", help="Namespace the token must be signed for."
)
@click.option(
    "--key", "key_file", metavar="PUBFILE", help="Public key file of the expected signer."
)
@click.option(
    "--allowed-keys", metavar="FILE", help="File of public keys, one per line; any may sign."
)
def verify(token: str, namespace: str, key_file: str | None, allowed_keys: str | None) -> None:
    """Verify an exe0 token offline: format, claims and signature under NS.

    Prints "valid: signed by SHA256:..." and exits 0, or prints the reason on stderr
    and exits 1.

    \b
    Examples:
      sshmint verify "$TOKEN" --namespace v0@localhost --key ~/.ssh/id_ed25519.pub
      sshmint verify "$TOKEN" --namespace v0@myapp.localhost --allowed-keys keys.txt
    """
    if key_file is None and allowed_keys is None:
        raise click.UsageError("one of --key or --allowed-keys is required")
    with cli_failures():
        if key_file is not None and allowed_keys is not None:
            raise SSHMintError("--key and --allowed-keys are mutually exclusive")
        if token.startswith(EXE1_PREFIX):
            raise SSHMintError("exe1 tokens are opaque; verify needs an exe0 token")
        if key_file is not None:
            key = load_public_key_file(key_file)
            keys = {key.fingerprint: key}
        else:
            assert allowed_keys is not None
            keys = load_allowed_keys(allowed_keys)
        parsed = parse_exe0(token)
        try:
            verify_exe0(token, namespace, keys.get, int(time.time()))
        except TokenVerificationError:
            given = "the given key" if key_file is not None else "any of the allowed keys"
            raise SSHMintError(_verification_failure(parsed, namespace, keys, given)) from None
    click.echo(f"valid: signed by {format_fingerprint(parsed.fingerprint)}")


def _verification_failure(
    parsed: ParsedToken, namespace: str, keys: dict[str, PublicKey], given: str
) -> str:
    """docs/client.md#client-programs: name the cause when the token alone tells it, in the order of docs/tokens.md#validation
    (step 18, the signing key, before step 19, the signature under the namespace)."""
    if parsed.fingerprint not in keys:
        return f"signed by {format_fingerprint(parsed.fingerprint)}, not by {given}"
    signed_for = parsed.sshsig.namespace.decode("utf-8", "replace")
    if signed_for != namespace:
        return (
            f"namespace mismatch: token is for {printable(signed_for)}, "
            f"expected {printable(namespace)}"
        )
    return "invalid token"  # the right key and namespace, but the signature does not verify
