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

from sshmint.server.infra.logs import Event, direct_line_writer, text_value
from sshmint.server.infra.observe import Observer, Scope, current_scope

__all__ = ["ACCESS_LOGGER", "AccessEvent", "AccessLog", "access_log_class"]

ACCESS_LOGGER: Final = "sshmint.access"
_LOG_SOURCE: Final = "sshmint access log"
# Fields an access event may carry after its fixed ones, in the order the text line shows them.
_TEXT_EXTRAS: Final = ("user_id", "key", "vm", "command", "auth_failure")


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
            f["method"],
            f["path"],
            self.version,
            f"{f['status']} {f['bytes']}",
            f.get("referer", "-"),
            f.get("user_agent", "-"),
            f["host"],
            [(name, f.get(name)) for name in _TEXT_EXTRAS],
            f["duration_ms"],
        )


def _text_line(
    remote_and_time: str,
    method: object,
    path: object,
    version: str,
    status_and_bytes: str,
    referer: object,
    agent: object,
    host: object,
    extras: list[tuple[str, object]],
    duration_ms: object,
) -> str:
    """The text layout of an access line (see :class:`AccessEvent`), in one place for the
    event and for :meth:`AccessLog.log`'s direct text path."""
    line = (
        f'{remote_and_time} "{method} {path} HTTP/{version}" {status_and_bytes}'
        f' "{referer}" "{agent}" host={host or "-"}'
    )
    for name, value in extras:
        if value is not None:
            line += f" {name}={text_value(value)}"
    return f"{line} {duration_ms}ms"


class AccessLog(AbstractAccessLogger):
    """aiohttp's access logger slot, used as the end-of-request hook (see the module
    docstring). ``observer`` is bound by :func:`access_log_class`.

    One per connection (aiohttp makes it with the connection): whether the access log's
    level is enabled, and whether its lines can take the direct path of
    :func:`~sshmint.server.infra.logs.direct_line_writer`, are decided then.
    """

    observer: ClassVar[Observer] = Observer()

    def __init__(self, logger: logging.Logger, log_format: str = "") -> None:
        super().__init__(logger, log_format)
        self._info = logger.isEnabledFor(logging.INFO)
        # In the text format the line is rendered straight from the request, with no
        # event (the same text the event would give: _text_line); otherwise an event.
        self._write_text = direct_line_writer(logger, text_only=True) if self._info else None
        self._write = direct_line_writer(logger) if self._info else None
        self._stamp_second = -1
        self._stamp = ""

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
            if self._write_text is not None:  # it redacts tokens itself
                self._write_text(self._line(request, response, time, scope))
                return
            event = self._event(request, response, time, scope)
            if self._write is not None:  # it redacts tokens itself
                self._write(event)
                return
            # logger.info() minus the stack walk for the caller's file and line, which
            # would only ever name aiohttp's protocol module.
            logger = self.logger
            logger.handle(
                logger.makeRecord(logger.name, logging.INFO, _LOG_SOURCE, 0, event, (), None)
            )
        except Exception:
            self.logger.exception("Error in logging")

    def _event(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        seconds: float,
        scope: Scope | None,
    ) -> AccessEvent:
        headers = request.headers
        fields: dict[str, object] = {
            "remote": request.remote or "-",
            "host": headers.get("Host", ""),
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(seconds * 1000, 3),
        }
        referer = headers.get("Referer")
        if referer is not None:
            fields["referer"] = referer
        agent = headers.get("User-Agent")
        if agent is not None:
            fields["user_agent"] = agent
        if scope is not None:
            if scope.user_id is not None:
                fields["user_id"] = scope.user_id
                fields["key"] = scope.key
            if scope.vm is not None:
                fields["vm"] = scope.vm
            if scope.command is not None:
                fields["command"] = scope.command
            if scope.auth_failure is not None:
                fields["auth_failure"] = scope.auth_failure
        version = request.version
        started = self._timestamp(time_module.time() - seconds)
        return AccessEvent(fields, started, f"{version.major}.{version.minor}")

    def _line(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        seconds: float,
        scope: Scope | None,
    ) -> str:
        """:meth:`_event`'s text, without the event."""
        headers = request.headers
        version = request.version
        extras: list[tuple[str, object]] = []
        if scope is not None:
            extras = [
                ("user_id", scope.user_id),
                ("key", scope.key if scope.user_id is not None else None),
                ("vm", scope.vm),
                ("command", scope.command),
                ("auth_failure", scope.auth_failure),
            ]
        return _text_line(
            f"{request.remote or '-'} {self._timestamp(time_module.time() - seconds)}",
            request.method,
            request.path,
            f"{version.major}.{version.minor}",
            f"{response.status} {response.body_length}",
            headers.get("Referer", "-"),
            headers.get("User-Agent", "-"),
            headers.get("Host", ""),
            extras,
            round(seconds * 1000, 3),
        )

    def _timestamp(self, start: float) -> str:
        second = int(start)
        if second != self._stamp_second:
            local = datetime.datetime.fromtimestamp(second).astimezone()
            self._stamp = local.strftime("[%d/%b/%Y:%H:%M:%S %z]")
            self._stamp_second = second
        return self._stamp


def access_log_class(observer: Observer) -> type[AccessLog]:
    """:class:`AccessLog` reporting to ``observer``, for aiohttp's ``access_log_class``."""

    class BoundAccessLog(AccessLog):
        pass

    BoundAccessLog.observer = observer
    return BoundAccessLog
