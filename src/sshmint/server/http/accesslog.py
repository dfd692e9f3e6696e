"""The HTTP listener's end-of-request hook: metrics and the access log, one line per
request, never a token (docs/operations.md#logs, docs/security.md#secrets-never-logged).

aiohttp calls the access logger of a connection once per request, after the answer has
been sent, with the time the request took. :class:`AccessLog` is that hook: it hands the
request's :class:`~sshmint.server.infra.observe.Scope` (opened by the front end, filled
by the API, the proxy and the authentication path) to the observer for the metrics, and
writes one :class:`AccessEvent`, rendered as text or JSON by the log handler's formatter.
A request the HTTP parser refused gets no access line (its warning line is its one line)
but is counted.

The query string is never logged, in either format: it may carry credentials of a VM's
application.
"""

from __future__ import annotations

import datetime
import logging
import time as time_module
from typing import ClassVar, Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http import HttpVersion

from sshmint.server.infra.logs import Event, deferred_line_writer, text_value
from sshmint.server.infra.observe import Observer, Scope, current_scope

__all__ = ["ACCESS_LOGGER", "AccessEvent", "AccessLog", "access_log_class"]

ACCESS_LOGGER: Final = "sshmint.access"
_LOG_SOURCE: Final = "sshmint access log"


class AccessEvent(Event):
    """One request. JSON: ``remote``, ``host``, ``method``, ``path`` (no query),
    ``status``, ``bytes``, ``duration_ms``, ``referer`` and ``user_agent`` when sent, and
    what the scope learnt: ``user_id``, ``key``, ``vm``, ``command``, ``auth_failure``.

    Text: aiohttp's common log format (``<remote> [<time>] "<method> <path> HTTP/<v>"
    <status> <bytes> "<referer>" "<user agent>"``) followed by ``host=``, the scope's
    fields as ``name=value`` and the duration in milliseconds."""

    __slots__ = ("started", "version")

    def __init__(self, fields: dict[str, object], started: str, version: str) -> None:
        super().__init__(f"{fields['method']} {fields['path']} {fields['status']}", fields)
        self.started = started
        self.version = version

    def text(self) -> str:
        f = self.fields
        return _text_line(
            f"{f['remote']} {self.started}",
            f"{f['method']} {f['path']} HTTP/{self.version}",
            f"{f['status']} {f['bytes']}",
            f.get("referer", "-"),
            f.get("user_agent", "-"),
            f["host"],
            (f.get("user_id"), f.get("key"), f.get("vm"), f.get("command"), f.get("auth_failure")),
            f["duration_ms"],
        )


# What AccessLog.log reads from a request, its response and its scope (a plain tuple: the
# cheapest thing to keep until the line is rendered): remote, start (unix time), method,
# path, HTTP version, status, body length, Referer, User-Agent, Host, the scope's user_id,
# key, vm, command and auth_failure, and the duration in seconds.
_Seen = tuple[
    str, float, str, str, HttpVersion, int, int, "str | None", "str | None", str,
    "str | None", "str | None", "str | None", "str | None", "str | None", float,
]  # fmt: skip


def _text_line(
    remote_and_time: str,
    request_line: str,
    status_and_bytes: str,
    referer: object,
    agent: object,
    host: object,
    learnt: tuple[object, object, object, object, object],
    duration_ms: object,
) -> str:
    """The text layout of an access line (see :class:`AccessEvent`), in one place for the
    event and for the text rendered without one (:func:`_text_of`). ``learnt``: the scope's
    user_id, key, vm, command and auth_failure (None: not learnt)."""
    user_id, key, vm, command, auth_failure = learnt
    line = (
        f'{remote_and_time} "{request_line}" {status_and_bytes}'
        f' "{referer}" "{agent}" host={host or "-"}'
    )
    if user_id is not None:
        line += f" user_id={text_value(user_id)} key={text_value(key)}"
    if vm is not None:
        line += f" vm={text_value(vm)}"
    if command is not None:
        line += f" command={text_value(command)}"
    if auth_failure is not None:
        line += f" auth_failure={text_value(auth_failure)}"
    return f"{line} {duration_ms}ms"


def _text_of(seen: _Seen) -> str:
    """The text line of a :data:`_Seen` request: :meth:`AccessEvent.text` without the event."""
    remote, start, method, path, version, status, size, referer, agent, host = seen[:10]
    return _text_line(
        f"{remote} {_clf_time(start)}",
        f"{method} {path} HTTP/{version.major}.{version.minor}",
        f"{status} {size}",
        "-" if referer is None else referer,
        "-" if agent is None else agent,
        host,
        seen[10:15],
        round(seen[15] * 1000, 3),
    )


def _event_of(seen: _Seen) -> AccessEvent:
    """The :class:`AccessEvent` of a :data:`_Seen` request."""
    remote, start, method, path, version, status, size, referer, agent, host = seen[:10]
    user_id, key, vm, command, auth_failure, seconds = seen[10:]
    fields: dict[str, object] = {
        "remote": remote,
        "host": host,
        "method": method,
        "path": path,
        "status": status,
        "bytes": size,
        "duration_ms": round(seconds * 1000, 3),
    }
    if referer is not None:
        fields["referer"] = referer
    if agent is not None:
        fields["user_agent"] = agent
    if user_id is not None:
        fields["user_id"] = user_id
        fields["key"] = key
    for name, value in (("vm", vm), ("command", command), ("auth_failure", auth_failure)):
        if value is not None:
            fields[name] = value
    return AccessEvent(fields, _clf_time(start), f"{version.major}.{version.minor}")


_clf_second: tuple[int, str] = (-1, "")  # the last second _clf_time rendered, and its text


def _clf_time(start: float) -> str:
    """``[02/Dec/2026:03:29:41 +0000]``, local time, rendered once per second."""
    global _clf_second
    second = int(start)
    cached, text = _clf_second
    if second != cached:
        local = datetime.datetime.fromtimestamp(second).astimezone()
        text = local.strftime("[%d/%b/%Y:%H:%M:%S %z]")
        _clf_second = (second, text)
    return text


class AccessLog(AbstractAccessLogger):
    """aiohttp's access logger slot, used as the end-of-request hook (see the module
    docstring). ``observer`` is bound by :func:`access_log_class`.

    One per connection (aiohttp makes it with the connection): whether the access log's
    level is enabled, and whether its lines can be left for the log handler to render
    at its next flush (:func:`~sshmint.server.infra.logs.deferred_line_writer`), are
    decided then. A line left that way costs the request only the reading of its fields:
    rendered in a batch, lines take a fraction of the time each takes rendered between
    requests (docs/performance.md#cheap-access-log).
    """

    observer: ClassVar[Observer] = Observer()

    def __init__(self, logger: logging.Logger, log_format: str = "") -> None:
        super().__init__(logger, log_format)
        self._info = logger.isEnabledFor(logging.INFO)
        self._later = deferred_line_writer(logger) if self._info else None
        # In the text format a line is rendered straight from what was seen, with no event
        # (the same text the event would give: _text_line).
        self._render = _text_of if self._later is not None and self._later.text else _event_of

    @property
    def enabled(self) -> bool:
        """Always: the metrics count every request, whatever the log level."""
        return True

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        scope = current_scope()
        status = response.status
        self.observer.http_request(scope, status, time)
        if not self._info or (scope is not None and scope.refused):
            return
        try:
            seen = _seen(request, status, response.body_length, time, scope)
            if self._later is not None:  # it redacts tokens itself
                self._later(self._render, (seen,))
                return
            # logger.info() minus the stack walk for the caller's file and line, which
            # would only ever name aiohttp's protocol module.
            logger = self.logger
            event = _event_of(seen)
            logger.handle(
                logger.makeRecord(logger.name, logging.INFO, _LOG_SOURCE, 0, event, (), None)
            )
        except Exception:
            self.logger.exception("Error in logging")


def _seen(
    request: web.BaseRequest, status: int, size: int, seconds: float, scope: Scope | None
) -> _Seen:
    """What the access line of a request shows (:data:`_Seen`), read now."""
    headers = request.headers
    start = time_module.time() - seconds
    learnt: tuple[str | None, str | None, str | None, str | None, str | None]
    if scope is None:
        learnt = (None, None, None, None, None)
    else:
        user_id = scope.user_id
        key = None if user_id is None else scope.key
        learnt = (user_id, key, scope.vm, scope.command, scope.auth_failure)
    return (
        request.remote or "-", start, request.method, request.path, request.version,
        status, size, headers.get("Referer"), headers.get("User-Agent"),
        headers.get("Host", ""), *learnt, seconds,
    )  # fmt: skip


def access_log_class(observer: Observer) -> type[AccessLog]:
    """:class:`AccessLog` reporting to ``observer``, for aiohttp's ``access_log_class``."""

    class BoundAccessLog(AccessLog):
        pass

    BoundAccessLog.observer = observer
    return BoundAccessLog
