"""Server logging: one line per record on stderr, written in batches.

``configure_logging`` (called by ``sshmint serve``) installs :class:`BatchingStreamHandler`
on the root logger with the format ``<time> <LEVEL> <logger>: <message>``. On the event
loop, INFO and DEBUG lines (the access log) reach stderr within ``FLUSH_DELAY`` seconds
in one ``write`` instead of one each; warnings and errors go out at once.

The access log writes a line per HTTP request, and the ``logging`` module's per-record
work (a ``LogRecord``, handler locking, formatting) was a measurable share of a proxied
request: :func:`direct_line_writer` gives it a way to write the same line straight to this
handler whenever nothing else (another handler, a filter, a level) would see the record.

Secrets (docs/tokens.md#who-sees-which-message, docs/security.md#secrets-never-logged): the handler carries a :class:`SecretsFilter`, so every record
that reaches stderr — from sshmint, aiohttp, asyncssh, SQLAlchemy, asyncpg, a traceback —
is formatted and then scrubbed by :func:`scrub_secrets`. Two rules, in this order:

1. a whole token (``exe0.``/``exe1.`` and everything up to the next space or quote, also
   percent-encoded as ``exe0%2E``) becomes ``<redacted token>`` (:func:`redact_tokens`);
2. what is left of a token once a library has truncated or split it (SQLAlchemy keeps the
   tail of a long parameter, a parser quotes one line of a folded header): a run of 24 or
   more base64url characters mixing upper case, lower case and a digit, ``-`` or ``_``,
   or of 24 or more RFC 4648 base32 characters (an exe1 body), becomes ``<redacted>``.
   Key fingerprints (``SHA256:`` + 43 characters) are kept. The rule is a heuristic: a
   24-character window of a signature lacks one of the three classes with probability
   below 1 %, and a longer fragment far less often; rule 1 is what makes the guarantee.

The access log's direct path applies rule 1 only: an access line holds request fields
verbatim, never truncated, so a token in it always keeps its prefix (and the line must
stay cheap: rule 2 costs microseconds per line).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = [
    "REDACTED",
    "BatchingStreamHandler",
    "LineFormatter",
    "SecretsFilter",
    "configure_logging",
    "direct_line_writer",
    "redact_tokens",
    "scrub_secrets",
]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Rule 1: anything that looks like a token; clients do put tokens in query strings and
# Referers, and asyncssh logs exec command lines (``exe0-to-exe1 TOKEN``).
_TOKEN_LIKE = re.compile(r"exe[01](?:\.|%2[eE])[^\s\"']*")
REDACTED = "<redacted token>"
# Rule 2: a fingerprint (kept) or a long run of token alphabet (examined).
_LONG_RUN = re.compile(r"SHA256:[A-Za-z0-9+/]{43}|[A-Za-z0-9_-]{24,}+")
_BASE32_RUN = re.compile(r"[A-Z2-7]{24}")
_FRAGMENT = "<redacted>"


def redact_tokens(text: str) -> str:
    """Rule 1: every exe0/exe1-looking substring of ``text`` becomes ``<redacted token>``."""
    return _TOKEN_LIKE.sub(REDACTED, text)


def _fragment(match: re.Match[str]) -> str:
    run = match.group()
    if run.startswith("SHA256:"):
        return run
    if _BASE32_RUN.search(run):  # an exe1 body, or base64url that happens to contain one
        return _FRAGMENT
    if run.islower() or run.isupper() or run.isalpha():
        # Words, identifiers, hex digests, constants: no signature fragment of this length
        # lacks a class so often that these are worth mangling.
        return run
    return _FRAGMENT


def scrub_secrets(text: str) -> str:
    """Rules 1 and 2 of the module docstring: whole tokens, then token fragments."""
    if "exe" in text:
        text = _TOKEN_LIKE.sub(REDACTED, text)
    return _LONG_RUN.sub(_fragment, text)


class SecretsFilter(logging.Filter):
    """Scrubs every record it sees, whichever library made it (installed on the handler,
    so records propagated from any logger pass through it).

    The message is rendered (``msg % args``) and scrubbed, the exception and stack text
    formatted and scrubbed; the record then carries only the scrubbed text (``args``
    emptied, ``exc_info`` replaced by ``exc_text``), which every ``logging.Formatter``
    prints as it would have printed the original.
    """

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: logging would report them, with the arguments
            message = f"{record.msg!s} (unformattable log arguments)"
        record.msg = scrub_secrets(message)
        record.args = ()
        if record.exc_info:
            record.exc_text = self._exceptions.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_secrets(record.stack_info)
        return True


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
    """Log to stderr through a :class:`SecretsFilter`; Python warnings and exceptions
    nobody could catch (``sys.unraisablehook``) take the same path.

    asyncssh logs exec command lines at INFO, and those can carry tokens
    (``exe0-to-exe1 TOKEN``): the filter scrubs them, and its logger is held at WARNING
    anyway (one line per channel event is noise)."""
    # The format uses none of these; collecting them costs time on every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchingStreamHandler(_buffered_stderr(), LineFormatter())
    handler.addFilter(SecretsFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration plugin
    logging.captureWarnings(True)
    sys.unraisablehook = _log_unraisable


def _log_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """Python's default prints straight to stderr, past the filter."""
    exc = unraisable.exc_value
    info: tuple[type[BaseException], BaseException, TracebackType | None] | None = None
    if exc is not None:
        info = (type(exc), exc, unraisable.exc_traceback)
    message = unraisable.err_msg or "Exception ignored in"
    logging.getLogger("sshmint").error("%s: %r", message, unraisable.object, exc_info=info)


def direct_line_writer(logger: logging.Logger) -> Callable[[str], None] | None:
    """A function writing an INFO message of ``logger`` straight to the one
    :class:`BatchingStreamHandler` that would receive it, or None when the record would
    meet anything else on its way (another handler, a filter other than the handler's
    :class:`SecretsFilter`, a disabled level) and must go through ``logging``. Decide
    after logging is configured (the access log decides per connection).

    The function applies rule 1 of the module docstring (whole tokens) to every message,
    whatever the caller did already."""
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
        or any(type(f) is not SecretsFilter for f in handler.filters)
        or handler.level > logging.INFO
        or handler.formatter is not handler.line_formatter
    ):
        return None
    name = logger.name

    def write(message: str) -> None:
        if "exe" in message:
            message = _TOKEN_LIKE.sub(REDACTED, message)
        handler.acquire()
        try:
            handler.write_info_line(name, message)
        except Exception:
            handler.handleError(logging.LogRecord(name, logging.INFO, "", 0, message, (), None))
        finally:
            handler.release()

    return write
