"""Exceptions raised by :class:`sshmint.client.Client` for ``POST /exec`` (docs/http-api.md#post-exec).

One root, :class:`SSHMintClientError` (itself below :class:`sshmint.SSHMintError`), carrying the HTTP ``status`` (``None`` when no response
arrived) and the server's ``message`` (the ``"error"`` member of its JSON body)::

    SSHMintClientError
    ├── BadRequest          400  body unreadable, null bytes, empty command, bad syntax
    ├── Unauthorized        401  missing header or a refused token (message says why)
    ├── Forbidden           403  token or key permissions, expired key
    ├── UnknownCommand      404  the command line names no command
    ├── MethodNotAllowed    405
    ├── RequestTooLarge     413  body over 64 KiB
    ├── CommandFailed       422  the command ran and exited non-zero
    ├── RateLimited         429  per-key token bucket empty
    ├── Timeout             504  the command ran over 30 s (also: no answer in time)
    ├── ServerError         any other 5xx
    ├── ConnectionFailed    no HTTP response at all (refused, reset, DNS)
    └── InvalidResponse     a response that is not what docs/http-api.md#post-exec describes
"""

from __future__ import annotations

from sshmint.errors import SSHMintError

__all__ = [
    "BadRequest",
    "CommandFailed",
    "ConnectionFailed",
    "Forbidden",
    "InvalidResponse",
    "MethodNotAllowed",
    "RateLimited",
    "RequestTooLarge",
    "SSHMintClientError",
    "ServerError",
    "Timeout",
    "Unauthorized",
    "UnknownCommand",
    "error_for_status",
]


class SSHMintClientError(SSHMintError):
    """A ``POST /exec`` call did not succeed. ``status`` is ``None`` when no response came.

    Below :class:`sshmint.SSHMintError`, so one ``except`` clause catches every sshmint
    failure, local (a key, a token) or remote.
    """

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.status}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r})"


class BadRequest(SSHMintClientError):
    """400: the request body is not a usable command line."""


class Unauthorized(SSHMintClientError):
    """401: no bearer token, or the token was refused (docs/tokens.md#who-sees-which-message gives the reason)."""


class Forbidden(SSHMintClientError):
    """403: the token's or the key's permissions do not allow the command."""


class UnknownCommand(SSHMintClientError):
    """404: the command line does not start with a known command."""


class MethodNotAllowed(SSHMintClientError):
    """405: only POST is served on ``/exec``."""


class RequestTooLarge(SSHMintClientError):
    """413: the command line exceeds 64 KiB."""


class CommandFailed(SSHMintClientError):
    """422: the command ran and failed; ``message`` is the command's own error."""


class RateLimited(SSHMintClientError):
    """429: the signing key's request budget is spent; retry after a pause."""


class Timeout(SSHMintClientError):
    """504: the command ran over the server's limit, or the server did not answer in time."""


class ServerError(SSHMintClientError):
    """Any other 5xx: the server failed."""


class ConnectionFailed(SSHMintClientError):
    """The server could not be reached or closed the connection without answering."""


class InvalidResponse(SSHMintClientError):
    """The response does not have the shape docs/http-api.md#post-exec prescribes (e.g. not JSON)."""


_BY_STATUS: dict[int, type[SSHMintClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: UnknownCommand,
    405: MethodNotAllowed,
    413: RequestTooLarge,
    422: CommandFailed,
    429: RateLimited,
    504: Timeout,
}


def error_for_status(status: int, message: str) -> SSHMintClientError:
    """The exception for a non-200 ``/exec`` response."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if 500 <= status <= 599 else SSHMintClientError
    return cls(status, message)
