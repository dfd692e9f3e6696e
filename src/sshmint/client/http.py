"""Typed clients for ``POST /exec`` (docs/http-api.md#post-exec), built on httpx.

``Client(url, auth=SSHMintAuth(...))`` or ``Client(url, token="exe0...")``; ``exec(command)``
returns the command's JSON output as a dict and raises a
:class:`~sshmint.client.errors.SSHMintClientError` subclass for every other outcome.
``revoke(token)`` and ``explain(token, vm=, command=)`` run ``token revoke`` and ``token
explain`` (docs/lifecycle.md) and return typed results (:mod:`sshmint.client.results`);
the calling token needs those commands in its ``cmds``.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sshmint.client.auth import BearerTokenAuth
from sshmint.client.errors import (
    ConnectionFailed,
    InvalidResponse,
    SSHMintClientError,
    Timeout,
    error_for_status,
)
from sshmint.client.results import RevokedToken, TokenExplanation, explanation, revoked_token

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_URL", "URL_ENV", "AsyncClient", "Client", "command_line"]

DEFAULT_URL = "http://127.0.0.1:8080"  # docs/client.md#sshmint-exec
URL_ENV = "SSHMINT_URL"
# Above the server's 30 s command limit, so a slow command is answered by its 504 first.
DEFAULT_TIMEOUT = 60.0
_MAX_MESSAGE = 500  # characters of a non-JSON error body kept in an exception


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise ImportError(
            "sshmint.client.Client needs httpx: install sshmint from its checkout with the"
            " httpx extra, pip install '/path/to/sshmint[httpx]', or pip install httpx"
        ) from None
    return httpx


def command_line(command: str | Sequence[str]) -> str:
    """docs/client.md#sshmint-exec: a string is sent verbatim; a list is POSIX-shell-quoted and space-joined."""
    if isinstance(command, str):
        return command
    words = list(command)
    if not words or not all(isinstance(word, str) for word in words):
        raise ValueError("command must be a string or a non-empty list of strings")
    return shlex.join(words)


def _select_auth(auth: httpx.Auth | None, token: str | None) -> httpx.Auth:
    if (auth is None) == (token is None):
        raise ValueError("give exactly one of auth= or token=")
    if token is not None:
        if not token.strip():
            raise ValueError("token must not be empty")
        return BearerTokenAuth(token.strip())
    assert auth is not None
    return auth


def _exec_url(url: str | None) -> str:
    base = url if url is not None else os.environ.get(URL_ENV, DEFAULT_URL)
    return base.rstrip("/") + "/exec"


def _error_message(body: bytes, reason: str) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return str(document["error"])
    if text:
        return text[:_MAX_MESSAGE]  # e.g. a proxy's text/plain error, or a foreign server
    return reason


def _result(status: int, reason: str, body: bytes) -> dict[str, Any]:
    if status != 200:
        raise error_for_status(status, _error_message(body, reason))
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return {}  # docs/http-api.md#post-exec: a command with no output answers an empty body
    try:
        document = json.loads(text)
    except ValueError:
        raise InvalidResponse(status, "response is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidResponse(status, "response is not a JSON object")
    return document


def _explain_words(token: str, vm: str | None, command: str | None) -> list[str]:
    """``token explain TOKEN [--vm NAME] [--command LINE]`` as words (docs/ssh.md#token-explain)."""
    words = ["token", "explain", token]
    if vm is not None:
        words += ["--vm", vm]
    if command is not None:
        words += ["--command", command]
    return words


def _transport_error(exc: Exception, url: str) -> SSHMintClientError:
    if isinstance(exc, _httpx().TimeoutException):
        return Timeout(None, f"no answer from {url} in time")
    return ConnectionFailed(None, f"cannot reach {url}: {exc or type(exc).__name__}")


_HEADERS = {"Content-Type": "text/plain; charset=utf-8", "Accept": "application/json"}


class Client:
    """Synchronous ``/exec`` client. Use as a context manager, or call ``close()``.

    ``url`` is the server's base URL (``/exec`` is appended), by default ``$SSHMINT_URL`` or
    ``http://127.0.0.1:8080``; ``auth`` is an :class:`~sshmint.client.SSHMintAuth` (or any
    ``httpx.Auth``); ``token`` a fixed token. A key that cannot sign (e.g. the agent went
    away) surfaces as the core's ``sshmint.errors.SSHMintError``, not as a client error.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        auth: httpx.Auth | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        hx = _httpx()
        self.url = _exec_url(url)
        self._http: httpx.Client = hx.Client(
            auth=_select_auth(auth, token), timeout=timeout, transport=transport
        )

    def exec(self, command: str | Sequence[str]) -> dict[str, Any]:
        """Run one command line; return its JSON output (``{}`` when it printed nothing)."""
        body = command_line(command).encode("utf-8")
        hx = _httpx()
        try:
            response = self._http.post(self.url, content=body, headers=_HEADERS)
        except hx.TransportError as exc:
            raise _transport_error(exc, self.url) from None
        return _result(response.status_code, response.reason_phrase, response.content)

    def revoke(self, token: str) -> RevokedToken:
        """Revoke one token, exe0 or exe1 (docs/ssh.md#token-revoke); its key and other
        tokens keep working. A token that does not parse or is not signed by one of your
        keys raises :class:`~sshmint.client.errors.CommandFailed` (``token not found``)."""
        return revoked_token(self.exec(["token", "revoke", token]))

    def explain(
        self, token: str, vm: str | None = None, command: str | None = None
    ) -> TokenExplanation:
        """Why ``token`` does or does not work at ``/exec`` (or, with ``vm``, at that VM's
        proxy), and with ``command`` whether ``/exec`` would run that command line
        (docs/ssh.md#token-explain). Changes nothing on the server."""
        return explanation(self.exec(_explain_words(token, vm, command)))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url[: -len('/exec')]!r})"


class AsyncClient:
    """Asynchronous ``/exec`` client (httpx.AsyncClient); same arguments as :class:`Client`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        auth: httpx.Auth | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        hx = _httpx()
        self.url = _exec_url(url)
        self._http: httpx.AsyncClient = hx.AsyncClient(
            auth=_select_auth(auth, token), timeout=timeout, transport=transport
        )

    async def exec(self, command: str | Sequence[str]) -> dict[str, Any]:
        """Run one command line; return its JSON output (``{}`` when it printed nothing)."""
        body = command_line(command).encode("utf-8")
        hx = _httpx()
        try:
            response = await self._http.post(self.url, content=body, headers=_HEADERS)
        except hx.TransportError as exc:
            raise _transport_error(exc, self.url) from None
        return _result(response.status_code, response.reason_phrase, response.content)

    async def revoke(self, token: str) -> RevokedToken:
        """:meth:`Client.revoke`."""
        return revoked_token(await self.exec(["token", "revoke", token]))

    async def explain(
        self, token: str, vm: str | None = None, command: str | None = None
    ) -> TokenExplanation:
        """:meth:`Client.explain`."""
        return explanation(await self.exec(_explain_words(token, vm, command)))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url[: -len('/exec')]!r})"
