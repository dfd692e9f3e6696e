"""The proxy's own answers (docs/proxy.md#order-of-processing): the messages, and the
``text/plain`` response that carries one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiohttp import web

__all__ = [
    "MSG_AMBIGUOUS",
    "MSG_FORBIDDEN",
    "MSG_INTERNAL",
    "MSG_NOT_FOUND",
    "MSG_TIMED_OUT",
    "MSG_UNAUTHENTICATED",
    "MSG_UNAVAILABLE",
    "answer",
]


# docs/proxy.md#order-of-processing table, and docs/security.md#slow-and-idle-clients's 504.
MSG_AMBIGUOUS: Final = "Authorization and X-Exedev-Authorization must not be identical"
MSG_UNAUTHENTICATED: Final = "invalid or missing authentication"
MSG_FORBIDDEN: Final = "access denied"
MSG_NOT_FOUND: Final = "VM not found"
MSG_INTERNAL: Final = "internal server error"
MSG_UNAVAILABLE: Final = "upstream unavailable"
MSG_TIMED_OUT: Final = "upstream timed out"


def answer(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """A proxy-generated response (docs/proxy.md#order-of-processing): text/plain, nosniff, ``<message>\\n``."""
    response = web.Response(
        status=status,
        body=(message + "\n").encode("utf-8"),
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )
    if headers:
        response.headers.update(headers)
    return response
