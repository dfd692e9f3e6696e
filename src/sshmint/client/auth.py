"""``SSHMintAuth``: one auth object for httpx (sync and async) and for requests.

It is a single class over :class:`~sshmint.client.minting.TokenMinter`:

- for **httpx** it is an ``httpx.Auth`` (when httpx is installed): ``auth_flow`` serves
  ``httpx.Client``; ``async_auth_flow`` serves ``httpx.AsyncClient`` and mints, when it has to,
  in a worker thread so a slow ssh-agent never blocks the event loop;
- for **requests** it is a callable auth (the ``requests.auth.AuthBase`` protocol:
  ``__call__(request) -> request``); requests accepts any such callable.

Either way it sets ``Authorization: Bearer <token>``. The token never appears in ``repr``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, Generator, MutableMapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from sshmint.client.minting import (
    DEFAULT_TTL,
    Clock,
    TokenMinter,
    load_signer,
    resolve_namespace,
)
from sshmint.signing import Signer

if TYPE_CHECKING:
    import httpx
    from httpx import Auth as _HttpxAuth
else:
    try:  # httpx is optional: without it the class still serves requests
        from httpx import Auth as _HttpxAuth
    except ImportError:
        _HttpxAuth = object

__all__ = ["BearerTokenAuth", "SSHMintAuth"]


class _HasHeaders(Protocol):
    @property
    def headers(self) -> MutableMapping[str, str]: ...


_RequestT = TypeVar("_RequestT", bound=_HasHeaders)


class SSHMintAuth(_HttpxAuth):
    """Signs requests with short-lived exe0 tokens minted from an SSH key.

    Key source (docs/client.md#sshmint-mint): ``key=PATH`` (private key file; passphrase from ``passphrase`` or
    ``$SSHMINT_KEY_PASSPHRASE``), ``key=PATH.pub`` (that identity in ssh-agent),
    ``agent=True`` (the agent's first identity), or ``signer=`` (any ``sshmint.signing.Signer``);
    with none of them, the first of ``~/.ssh/id_ed25519``, ``id_ecdsa``, ``id_rsa``.

    Namespace (docs/tokens.md#namespaces): ``namespace=``, or ``vm=NAME`` → ``v0@NAME.<vm_host>``, else
    ``v0@<web_host>``; both hosts default to ``localhost``.

    Each token carries ``exp = now + ttl`` (default 300 s) and the optional ``cmds`` and
    ``ctx``; it is reused until 80 % of its lifetime has passed, then replaced. Safe to share
    between threads and coroutines.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        key: str | os.PathLike[str] | None = None,
        *,
        agent: bool = False,
        passphrase: str | bytes | None = None,
        agent_sock: str | None = None,
        signer: Signer | None = None,
        namespace: str | None = None,
        web_host: str = "localhost",
        vm: str | None = None,
        vm_host: str = "localhost",
        ttl: int | None = DEFAULT_TTL,
        cmds: Sequence[str] | None = None,
        ctx: object = None,
        clock: Clock = time.time,
    ) -> None:
        if signer is not None and (key is not None or agent):
            raise ValueError("signer excludes key and agent")
        if signer is None:
            signer = load_signer(key, agent=agent, passphrase=passphrase, agent_sock=agent_sock)
        ns = resolve_namespace(namespace, vm=vm, web_host=web_host, vm_host=vm_host)
        self.minter = TokenMinter(signer, ns, ttl=ttl, cmds=cmds, ctx=ctx, clock=clock)

    @property
    def namespace(self) -> str:
        return self.minter.namespace

    def token(self) -> str:
        """A currently valid token (minting one when the cached one is stale)."""
        return self.minter.token()

    async def atoken(self) -> str:
        """``token()`` for coroutines: mints in a worker thread, never blocking the loop."""
        fresh = self.minter.cached_token()
        if fresh is not None:
            return fresh
        return await asyncio.to_thread(self.minter.token)

    # requests: AuthBase protocol (also usable on any object with a mutable ``headers``)
    def __call__(self, request: _RequestT) -> _RequestT:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    # httpx: Client
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request

    # httpx: AsyncClient
    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self.atoken()}"
        yield request

    def __repr__(self) -> str:
        signer = self.minter.signer
        return (
            f"SSHMintAuth(namespace={self.namespace!r}, "
            f"key='SHA256:{signer.public_key.fingerprint}', ttl={self.minter.ttl!r})"
        )


class BearerTokenAuth(_HttpxAuth):
    """A fixed token, for httpx and requests alike; ``repr`` hides it."""

    requires_request_body = False
    requires_response_body = False

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: _RequestT) -> _RequestT:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerTokenAuth(<token hidden>)"
