"""The access log of the HTTP listener: aiohttp's format, one line per request, never a
token (docs/security.md#secrets-never-logged)."""

from __future__ import annotations

import datetime
import logging
import time as time_module
from collections.abc import Iterable

from aiohttp import web
from aiohttp.web_log import AccessLogger

from sshmint.server.infra.logs import direct_line_writer, redact_tokens

__all__ = ["RedactingAccessLogger"]

_LOG_SOURCE = "aiohttp access log"


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log with token-like strings removed from every field.

    The default format (``%a %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"``) is rendered
    directly, with the timestamp formatted once per second: aiohttp's generic field
    machinery costs more than the rest of a proxied request's own work. Any other format
    goes through aiohttp's formatter.
    """

    def __init__(self, logger: logging.Logger, log_format: str = AccessLogger.LOG_FORMAT) -> None:
        super().__init__(logger, log_format)
        self._default_format = log_format == AccessLogger.LOG_FORMAT
        # One per connection: logging's configuration is looked at when it opens.
        self._write_line = direct_line_writer(logger)
        self._stamp_second = -1
        self._stamp = ""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self._default_format:
            super().log(request, response, time)
            return
        try:
            headers = request.headers
            version = request.version
            line = (
                f"{request.remote or '-'} {self._timestamp(time_module.time() - time)}"
                f' "{request.method} {request.path_qs} HTTP/{version.major}.{version.minor}"'
                f" {response.status} {response.body_length}"
                f' "{headers.get("Referer", "-")}" "{headers.get("User-Agent", "-")}"'
            )
            if self._write_line is not None:  # it redacts tokens itself
                self._write_line(line)
                return
            if "exe0" in line or "exe1" in line:  # cheap tests before the pattern
                line = redact_tokens(line)
            # logger.info() minus the stack walk for the caller's file and line, which
            # would only ever name aiohttp's protocol module.
            logger = self.logger
            logger.handle(
                logger.makeRecord(logger.name, logging.INFO, _LOG_SOURCE, 0, line, (), None)
            )
        except Exception:
            self.logger.exception("Error in logging")

    def _timestamp(self, start: float) -> str:
        second = int(start)
        if second != self._stamp_second:
            local = datetime.datetime.fromtimestamp(second).astimezone()
            self._stamp = local.strftime("[%d/%b/%Y:%H:%M:%S %z]")
            self._stamp_second = second
        return self._stamp

    def _format_line(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [
            (key, redact_tokens(value) if isinstance(value, str) else value)
            for key, value in super()._format_line(request, response, time)
        ]
