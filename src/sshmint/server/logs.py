"""Server logging: one line per record on stderr, written in batches.

``configure_logging`` (called by ``sshmint serve``) installs :class:`BatchingStreamHandler`
on the root logger with the format ``<time> <LEVEL> <logger>: <message>``. On the event
loop, INFO and DEBUG lines (the access log) reach stderr within ``FLUSH_DELAY`` seconds
in one ``write`` instead of one each; warnings and errors go out at once.

The access log writes a line per HTTP request, and the ``logging`` module's per-record
work (a ``LogRecord``, handler locking, formatting) was a measurable share of a proxied
request: :func:`direct_line_writer` gives it a way to write the same line straight to this
handler whenever nothing else (another handler, a filter, a level) would see the record.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["BatchingStreamHandler", "LineFormatter", "configure_logging", "direct_line_writer"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LineFormatter(logging.Formatter):
    """``LOG_FORMAT`` with the date and time rendered once per second (``time.strftime``
    for every record costs more than the rest of the line)."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """``asctime`` for the unix time ``created``: ``YYYY-MM-DD HH:MM:SS,mmm``."""
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._stamp},{int((created - second) * 1000):03d}"


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines to its stream, flushing at once for warnings and errors (and off the
    event loop), otherwise within ``FLUSH_DELAY`` seconds."""

    FLUSH_DELAY = 0.05

    def __init__(self, stream: TextIO, formatter: LineFormatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self.line_formatter = formatter
        self._flush_pending = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self._schedule_flush(record.levelno)

    def write_info_line(self, logger_name: str, message: str) -> None:
        """Exactly what ``emit`` writes for an INFO record of ``logger_name``."""
        stamp = self.line_formatter.stamp(time.time())
        self.stream.write(f"{stamp} INFO {logger_name}: {message}{self.terminator}")
        self._schedule_flush(logging.INFO)

    def _schedule_flush(self, level: int) -> None:
        if level >= logging.WARNING:
            self.flush()
            return
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop's thread
            self.flush()
            return
        self._flush_pending = True
        loop.call_later(self.FLUSH_DELAY, self._flush_later)

    def _flush_later(self) -> None:
        self._flush_pending = False
        self.flush()


def _buffered_stderr() -> TextIO:
    """A block-buffered text stream on file descriptor 2 (``sys.stderr`` writes through on
    every line, or on every write under ``PYTHONUNBUFFERED``), so that the handler decides
    when lines go out."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a stream without a file
        return sys.stderr
    return open(
        fd, "w", buffering=1 << 16, encoding="utf-8", errors="backslashreplace", closefd=False
    )


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr. asyncssh logs exec command lines at INFO, and those can carry tokens
    (``exe0-to-exe1 TOKEN``), so its logger is held at WARNING."""
    # The format uses none of these; collecting them costs time on every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [BatchingStreamHandler(_buffered_stderr(), LineFormatter())]
    root.setLevel(level)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration plugin


def direct_line_writer(logger: logging.Logger) -> Callable[[str], None] | None:
    """A function writing an INFO message of ``logger`` straight to the one
    :class:`BatchingStreamHandler` that would receive it, or None when the record would
    meet anything else on its way (another handler, a filter, a disabled level) and must
    go through ``logging``. Decide after logging is configured (the access log decides
    per connection)."""
    if logger.disabled or not logger.isEnabledFor(logging.INFO):
        return None
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        handlers.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if (
        not isinstance(handler, BatchingStreamHandler)
        or handler.filters
        or handler.level > logging.INFO
        or handler.formatter is not handler.line_formatter
    ):
        return None
    name = logger.name

    def write(message: str) -> None:
        handler.acquire()
        try:
            handler.write_info_line(name, message)
        except Exception:
            handler.handleError(logging.LogRecord(name, logging.INFO, "", 0, message, (), None))
        finally:
            handler.release()

    return write
