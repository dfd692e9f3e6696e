"""The library's front door: mint, parse and verify exe0 tokens in one call each.

These wrap the core (:mod:`sshmint.token`, :mod:`sshmint.keys`) for programs that hold
the key themselves, the way ``jwt.encode``/``jwt.decode`` wrap PyJWT's machinery::

    import sshmint

    signer = sshmint.load_private_key("~/.ssh/id_ed25519")
    token = sshmint.mint(signer, "v0@api.example.com", exp=int(time.time()) + 3600)
    parsed = sshmint.verify(token, signer.public_key, "v0@api.example.com")
    parsed.permissions.exp

Failures raise the leaves of :class:`sshmint.SSHMintError` (see :mod:`sshmint.errors`);
token failures are :class:`sshmint.TokenError` with the message of the failing step
(docs/tokens.md#validation).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sshmint.keys import PublicKey
from sshmint.signing import Signer
from sshmint.strictjson import dumps
from sshmint.token import (
    ParsedToken,
    RawJSON,
    encode_payload,
    mint_exe0,
    parse_exe0,
    verify_exe0,
)

__all__ = ["UNSET", "mint", "parse", "verify"]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()
"""``mint(ctx=...)`` default: no ``ctx`` member (``ctx=None`` writes ``"ctx":null``)."""


def mint(
    signer: Signer,
    namespace: str,
    *,
    exp: int | None = None,
    nbf: int | None = None,
    cmds: Sequence[str] | None = None,
    ctx: object = UNSET,
) -> str:
    """An exe0 token signed by ``signer`` for ``namespace`` (e.g. ``v0@api.example.com``).

    ``exp``/``nbf`` are unix seconds (``None``: no member), ``cmds`` the allowed command
    names (``None``: the server's default list), ``ctx`` any JSON value passed on to VMs.
    The payload is checked like the server checks it, so no unusable token is produced.
    """
    payload = encode_payload(
        [
            ("exp", exp),
            ("nbf", nbf),
            ("cmds", None if cmds is None else list(cmds)),
            ("ctx", None if ctx is UNSET else RawJSON(dumps(ctx))),
        ]
    )
    return mint_exe0(payload, signer, namespace)


def parse(token: str) -> ParsedToken:
    """The token's structure, checked but not verified (validation steps 1–15)."""
    return parse_exe0(token)


def verify(token: str, key: PublicKey, namespace: str, *, now: int | None = None) -> ParsedToken:
    """Parse ``token``, check its claims at ``now`` (default: the current time) and its
    signature by ``key`` under ``namespace``; the parsed token, or a :class:`TokenError`."""
    when = int(time.time()) if now is None else now
    return verify_exe0(token, namespace, lambda fp: key if fp == key.fingerprint else None, when)
