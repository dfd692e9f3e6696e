"""Python client for sshmint: auto-minting auth for httpx and requests, and ``/exec`` clients.

``SSHMintAuth`` mints short-lived exe0 tokens from an SSH key (file or ssh-agent) and works as
an ``httpx`` auth (``Client`` and ``AsyncClient``) and as a ``requests`` auth.
``Client``/``AsyncClient`` call ``POST /exec`` and raise one exception per error status;
their ``revoke`` and ``explain`` return ``RevokedToken`` and ``TokenExplanation`` (a tuple
of ``TokenCheck``).

httpx and requests are optional (extras ``sshmint[httpx]``, ``sshmint[requests]``); the names
below are imported on first use, so ``import sshmint.client`` needs neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sshmint.lazy import lazy_exports

if TYPE_CHECKING:
    from sshmint.client.auth import BearerTokenAuth, SSHMintAuth
    from sshmint.client.errors import (
        BadRequest,
        CommandFailed,
        ConnectionFailed,
        Forbidden,
        InvalidResponse,
        MethodNotAllowed,
        RateLimited,
        RequestTooLarge,
        ServerError,
        SSHMintClientError,
        Timeout,
        Unauthorized,
        UnknownCommand,
    )
    from sshmint.client.http import AsyncClient, Client
    from sshmint.client.minting import TokenMinter
    from sshmint.client.results import RevokedToken, TokenCheck, TokenExplanation

__all__ = [
    "AsyncClient",
    "BadRequest",
    "BearerTokenAuth",
    "Client",
    "CommandFailed",
    "ConnectionFailed",
    "Forbidden",
    "InvalidResponse",
    "MethodNotAllowed",
    "RateLimited",
    "RequestTooLarge",
    "RevokedToken",
    "SSHMintAuth",
    "SSHMintClientError",
    "ServerError",
    "Timeout",
    "TokenCheck",
    "TokenExplanation",
    "TokenMinter",
    "Unauthorized",
    "UnknownCommand",
]

_HOME = {
    "SSHMintAuth": "auth",
    "BearerTokenAuth": "auth",
    "Client": "http",
    "AsyncClient": "http",
    "TokenMinter": "minting",
    "RevokedToken": "results",
    "TokenCheck": "results",
    "TokenExplanation": "results",
}


__getattr__, __dir__ = lazy_exports(globals(), __all__, _HOME, "errors")
