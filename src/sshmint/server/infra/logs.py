"""Server logging: one record per event, rendered as text or JSON, written in batches.

``configure_logging`` (called by ``sshmint serve``) installs :class:`BatchingStreamHandler`
on the root logger with one of two formatters (docs/operations.md#logs):

- ``--log-format text`` (:class:`LineFormatter`): ``<time> <LEVEL> <logger>: <message>``;
- ``--log-format json`` (:class:`JSONFormatter`): one object per line with ``ts`` (RFC 3339,
  milliseconds, UTC), ``level``, ``logger``, ``msg``, ``exc``/``stack`` when present.

``--log-level`` sets the root logger's level. On the event loop, INFO and DEBUG lines (the
access log) reach stderr within ``FLUSH_DELAY`` seconds in one ``write`` instead of one
each; warnings and errors go out at once.

**Events.** A record whose message is an :class:`Event` carries structured facts (its
``fields``): the access log's lines and the SSH audit lines are events. The JSON
formatter writes the fields as keys of the object (``msg`` is the event's summary); the
text formatter writes the event's text form (``str(event)``: its own layout, or the
summary followed by ``key=value`` pairs). One record, two renderings: a handler of any
other kind sees the text form through ``record.getMessage()``.

The access log writes a line per HTTP request, and the ``logging`` module's per-record
work (a ``LogRecord``, handler locking, filtering) is a measurable share of a proxied
request, and so is rendering the line between two requests: :func:`deferred_line_writer`
gives it a way to leave the line with this handler — a render function and what it
read of the request — whenever nothing else (another handler, a filter, a level) would
see the record. The handler renders such lines with its formatter at its next flush, in
one batch, and before any other line, so the output keeps its order
(docs/performance.md#cheap-access-log).

Secrets (docs/tokens.md#who-sees-which-message, docs/security.md#secrets-never-logged):
the handler carries a :class:`SecretsFilter`, so every record that reaches stderr — from
sshmint, aiohttp, asyncssh, SQLAlchemy, asyncpg, a traceback — is scrubbed by
:func:`scrub_secrets`: its message, arguments, exception and stack text, and every string
field of an event (in either format). Two rules, in this order:

1. a whole token (``exe0.``/``exe1.`` and everything up to the next space or quote, also
   percent-encoded as ``exe0%2E``) becomes ``<redacted token>`` (:func:`redact_tokens`);
2. what is left of a token once a library has truncated or split it (SQLAlchemy keeps the
   tail of a long parameter, a parser quotes one line of a folded header): a run of 24 or
   more base64url characters mixing upper case, lower case and a digit, ``-`` or ``_``,
   or of 24 or more RFC 4648 base32 characters (an exe1 body), becomes ``<redacted>``.
   Key fingerprints (``SHA256:`` + 43 characters) are kept. The rule is a heuristic: a
   24-character window of a signature lacks one of the three classes with probability
   below 1 %, and a longer fragment far less often; rule 1 is what makes the guarantee.

A deferred line gets rule 1 only, to its text or to every string field of its event:
an access line holds request fields verbatim, never truncated, so a token in one always
keeps its prefix (and the line must stay cheap: rule 2 costs microseconds per line).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final, TextIO

__all__ = [
    "LEVELS",
    "REDACTED",
    "BatchingStreamHandler",
    "DeferredLineWriter",
    "Event",
    "JSONFormatter",
    "LineFormatter",
    "LogFormatter",
    "Render",
    "SecretsFilter",
    "configure_logging",
    "deferred_line_writer",
    "redact_tokens",
    "scrub_secrets",
    "text_value",
]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: What renders a deferred line's message from its arguments.
Render = Callable[..., "str | Event"]
#: ``--log-level`` words (docs/operations.md#logs).
LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Libraries whose INFO and DEBUG lines are noise (asyncssh: one per channel event, and its
# exec lines can carry tokens; alembic: one per migration plugin): never below WARNING.
_QUIET_LIBRARIES: Final = ("asyncssh", "alembic")

# Rule 1: anything that looks like a token; clients do put tokens in query strings and
# Referers, and asyncssh logs exec command lines (``exe0-to-exe1 TOKEN``).
_TOKEN_LIKE = re.compile(r"exe[01](?:\.|%2[eE])[^\s\"']*")
REDACTED = "<redacted token>"


def _may_hold_token(text: str) -> bool:
    """The cheap test before :data:`_TOKEN_LIKE`, which only ever matches from ``exe0``
    or ``exe1`` (``/exec`` in a path is not one)."""
    return "exe0" in text or "exe1" in text


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
    if _may_hold_token(text):
        text = _TOKEN_LIKE.sub(REDACTED, text)
    return _LONG_RUN.sub(_fragment, text)


def text_value(value: object) -> str:
    """A field's value in a text line: bare when it is one plain word, else JSON-quoted."""
    if isinstance(value, str):
        # Three substring tests first: much cheaper than one generator over the value.
        if (
            value
            and " " not in value
            and '"' not in value
            and "=" not in value
            and (value.isprintable())
        ):
            return value
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


class Event:
    """A log message with structured facts (see the module docstring).

    ``summary`` is the JSON ``msg``; ``fields`` are the JSON object's other keys (names
    that never clash with ``ts``, ``level``, ``logger``, ``msg``, ``exc``, ``stack``;
    values are strings, numbers, booleans or None). :meth:`text` is the text form:
    subclasses with a layout of their own (the access line) override it.
    """

    __slots__ = ("fields", "summary")

    def __init__(self, summary: str, fields: dict[str, object]) -> None:
        self.summary = summary
        self.fields = fields

    def text(self) -> str:
        pairs = " ".join(f"{key}={text_value(value)}" for key, value in self.fields.items())
        return f"{self.summary} {pairs}" if pairs else self.summary

    def __str__(self) -> str:
        return self.text()

    def scrub(self, scrub: Callable[[str], str]) -> None:
        """Apply ``scrub`` to the summary and every string field, in place."""
        self.summary = scrub(self.summary)
        fields = self.fields
        for key, value in fields.items():
            if isinstance(value, str):
                fields[key] = scrub(value)

    def redact_tokens(self) -> None:
        """Rule 1 alone (whole tokens), behind its cheap test, in place: a deferred line's
        scrub (see :func:`deferred_line_writer`)."""
        if _may_hold_token(self.summary):
            self.summary = _TOKEN_LIKE.sub(REDACTED, self.summary)
        fields = self.fields
        for key, value in fields.items():
            if type(value) is str and _may_hold_token(value):
                fields[key] = _TOKEN_LIKE.sub(REDACTED, value)


class SecretsFilter(logging.Filter):
    """Scrubs every record it sees, whichever library made it (installed on the handler,
    so records propagated from any logger pass through it).

    An :class:`Event` message has its summary and string fields scrubbed and stays an
    event. Any other message is rendered (``msg % args``) and scrubbed, and the record
    then carries only the scrubbed text (``args`` emptied). The exception and stack text
    are formatted and scrubbed (``exc_info`` replaced by ``exc_text``), which every
    ``logging.Formatter`` prints as it would have printed the original.
    """

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, Event) and not record.args:
            record.msg.scrub(scrub_secrets)
        else:
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


class LogFormatter(logging.Formatter):
    """What both formats share: the time stamp rendered once per second (``time.strftime``
    for every record costs more than the rest of the line), and :meth:`line`, which
    renders a record without exception or stack exactly as ``format`` would, with no
    ``LogRecord`` (deferred lines)."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._second = -1
        self._stamp = ""

    def _second_stamp(self, second: int) -> str:
        raise NotImplementedError

    def stamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._stamp = self._second_stamp(second)
            self._second = second
        return self._stamp

    def line(self, name: str, levelno: int, created: float, message: str | Event) -> str:
        raise NotImplementedError


class LineFormatter(LogFormatter):
    """``--log-format text``: ``LOG_FORMAT``, the local date and time with milliseconds."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

    def _second_stamp(self, second: int) -> str:
        return time.strftime(self.default_time_format, self.converter(second))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """``asctime`` for the unix time ``created``: ``YYYY-MM-DD HH:MM:SS,mmm``."""
        return f"{super().stamp(created)},{int((created - int(created)) * 1000):03d}"

    def line(self, name: str, levelno: int, created: float, message: str | Event) -> str:
        return f"{self.stamp(created)} {logging.getLevelName(levelno)} {name}: {message}"


class JSONFormatter(LogFormatter):
    """``--log-format json``: one JSON object per record, on one line (newlines inside
    values are escaped; the output is ASCII, so any byte a client sent stays valid JSON).

    Keys: ``ts`` (``2026-12-01T10:00:00.123Z``), ``level`` (``debug``, ``info``,
    ``warning``, ``error``, ``critical``), ``logger``, ``msg``, then an event's fields,
    then ``exc`` (the traceback) and ``stack`` when the record has them."""

    _encode = json.JSONEncoder(separators=(",", ":")).encode

    def _second_stamp(self, second: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))

    def stamp(self, created: float) -> str:
        return f"{super().stamp(created)}.{int((created - int(created)) * 1000):03d}Z"

    def _object(
        self, name: str, levelname: str, created: float, message: str | Event
    ) -> dict[str, Any]:
        if isinstance(message, Event):
            return {
                "ts": self.stamp(created),
                "level": levelname.lower(),
                "logger": name,
                "msg": message.summary,
                **message.fields,
            }
        return {
            "ts": self.stamp(created),
            "level": levelname.lower(),
            "logger": name,
            "msg": message,
        }

    def line(self, name: str, levelno: int, created: float, message: str | Event) -> str:
        return self._encode(self._object(name, logging.getLevelName(levelno), created, message))

    def format(self, record: logging.LogRecord) -> str:
        message = record.msg if isinstance(record.msg, Event) and not record.args else None
        obj = self._object(
            record.name, record.levelname, record.created, message or record.getMessage()
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            obj["exc"] = record.exc_text
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return self._encode(obj)


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines to its stream, flushing at once for warnings and errors (and off the
    event loop), otherwise within ``FLUSH_DELAY`` seconds."""

    FLUSH_DELAY = 0.05
    MAX_DEFERRED = 1000  # deferred lines rendered at once, however soon the flush

    def __init__(self, stream: TextIO, formatter: LogFormatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self.line_formatter = formatter
        self._flush_pending = False
        # Lines left to render at the next flush: (logger name, time, render, its arguments).
        self._deferred: list[tuple[str, float, Render, tuple[Any, ...]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._deferred:  # lines keep their order
                self._write_deferred()
            self.stream.write(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self._schedule_flush(record.levelno)

    def defer_info_line(self, logger_name: str, render: Render, args: tuple[Any, ...]) -> None:
        """An INFO line of ``logger_name`` whose message is ``render(*args)``, rendered at
        the next flush (or before any other line, which keeps the order) exactly as
        ``emit`` would render that record (without exception or stack), after rule 1 of
        the module docstring. Its time is now. The caller holds the handler's lock."""
        deferred = self._deferred
        deferred.append((logger_name, time.time(), render, args))
        if len(deferred) >= self.MAX_DEFERRED:
            self._write_deferred()
        self._schedule_flush(logging.INFO)

    def _write_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        line, write, terminator = self.line_formatter.line, self.stream.write, self.terminator
        for name, created, render, args in deferred:
            try:
                message = render(*args)
                if isinstance(message, Event):
                    message.redact_tokens()
                elif _may_hold_token(message):
                    message = _TOKEN_LIKE.sub(REDACTED, message)
                write(line(name, logging.INFO, created, message) + terminator)
            except Exception as exc:  # its type only: the text could hold request bytes
                failure = f"a line could not be rendered: {type(exc).__name__}"
                write(line(name, logging.ERROR, created, failure) + terminator)

    def flush(self) -> None:
        self.acquire()
        try:
            if self._deferred:
                self._write_deferred()
            super().flush()
        finally:
            self.release()

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


def configure_logging(log_format: str = "text", level: str = "info") -> None:
    """Log to stderr in ``log_format`` (``text`` or ``json``) from ``level`` up (a word of
    :data:`LEVELS`), through a :class:`SecretsFilter`; Python warnings and exceptions
    nobody could catch (``sys.unraisablehook``) take the same path.

    asyncssh logs exec command lines at INFO, and those can carry tokens
    (``exe0-to-exe1 TOKEN``): the filter scrubs them, and its logger is held at WARNING
    (or above, with ``--log-level error``) anyway."""
    # The formats use none of these; collecting them costs time on every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    formatter: LogFormatter = JSONFormatter() if log_format == "json" else LineFormatter()
    handler = BatchingStreamHandler(_buffered_stderr(), formatter)
    handler.addFilter(SecretsFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    levelno = LEVELS[level]
    root.setLevel(levelno)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(levelno, logging.WARNING))
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


class DeferredLineWriter:
    """Leaves INFO lines of one logger to the one :class:`BatchingStreamHandler` that
    would receive them, to render at its next flush
    (:meth:`BatchingStreamHandler.defer_info_line`): ``writer(render, args)``. ``text``
    says whether the handler writes the text format, where an event's line is its
    :meth:`Event.text`: ``render`` may then return that text, rendered its own cheaper
    way, instead of the event (the access log does)."""

    __slots__ = ("_handler", "_name", "text")

    def __init__(self, handler: BatchingStreamHandler, name: str) -> None:
        self._handler = handler
        self._name = name
        self.text = isinstance(handler.line_formatter, LineFormatter)

    def __call__(self, render: Render, args: tuple[Any, ...]) -> None:
        handler = self._handler
        handler.acquire()
        try:
            handler.defer_info_line(self._name, render, args)
        finally:
            handler.release()


def deferred_line_writer(logger: logging.Logger) -> DeferredLineWriter | None:
    """A :class:`DeferredLineWriter` for ``logger``'s INFO lines, or None when a record
    would meet anything else on its way (another handler, a filter other than the
    handler's :class:`SecretsFilter`, a disabled level) and must go through ``logging``.
    Decide after logging is configured (the access log decides per connection).

    The handler applies rule 1 of the module docstring (whole tokens) to each rendered
    message, or to an event's summary and every string field, whatever the caller did."""
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
    return DeferredLineWriter(handler, logger.name)
