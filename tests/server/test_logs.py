"""Server logging (src/sshmint/server/infra/logs.py): the access log's deferred line writer
writes exactly what ``logging`` would, in order with every other line, and only when
nothing else would see the record; INFO lines on the event loop are rendered and flushed
in batches, warnings at once."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator

import pytest

from sshmint.server.infra.logs import BatchingStreamHandler, LineFormatter, deferred_line_writer

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


def said(message: str) -> str:
    """A deferred line's render function: the message it was given."""
    return message


def broken(message: str) -> str:
    raise ValueError(message)


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.fixture
def tree() -> Iterator[
    tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream]
]:
    """A private logger tree, outside logging's registry (where pytest adds its capture
    handlers): ``top`` with the handler, ``top.access`` below it."""
    top = logging.Logger("sshmint-test-logs")
    child = logging.Logger("sshmint-test-logs.access")
    child.parent = top
    stream = CountingStream()
    handler = BatchingStreamHandler(stream, LineFormatter())
    top.handlers[:] = [handler]
    top.setLevel(logging.INFO)
    top.propagate = False
    yield top, child, handler, stream
    top.handlers[:] = []
    child.handlers[:] = []
    child.filters[:] = []
    child.setLevel(logging.NOTSET)


def test_deferred_writer_writes_what_logging_writes(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
) -> None:
    _top, child, _handler, stream = tree
    later = deferred_line_writer(child)
    assert later is not None and later.text
    child.info("GET / 200 %s", "ünïcode")
    later(said, ("GET / 200 ünïcode",))  # off the event loop: written at once
    first, second = stream.getvalue().splitlines()
    pattern = rf"{STAMP} INFO sshmint-test-logs\.access: GET / 200 ünïcode"
    assert re.fullmatch(pattern, first) and re.fullmatch(pattern, second), (first, second)


def test_deferred_writer_steps_aside_for_other_handlers_filters_and_levels(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
) -> None:
    top, child, _handler, _stream = tree
    assert deferred_line_writer(child) is not None
    child.addHandler(logging.NullHandler())  # a second handler would miss the line
    assert deferred_line_writer(child) is None
    child.handlers[:] = []
    child.addFilter(lambda record: True)
    assert deferred_line_writer(child) is None
    child.filters[:] = []
    quiet = logging.Logger("sshmint-test-logs.quiet", logging.WARNING)
    quiet.parent = top
    assert deferred_line_writer(quiet) is None
    top.handlers[0].setFormatter(logging.Formatter("%(message)s"))  # another format
    assert deferred_line_writer(child) is None


async def test_info_lines_are_flushed_in_batches_and_warnings_at_once(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
) -> None:
    _top, child, handler, stream = tree
    later = deferred_line_writer(child)
    assert later is not None
    for n in range(50):
        later(said, (f"line {n}",))
        child.info("record %d", n)
    assert stream.flushes == 0  # on the loop: one flush later for all of them
    await asyncio.sleep(handler.FLUSH_DELAY * 4)
    assert stream.flushes == 1
    child.warning("disk full")
    assert stream.flushes == 2  # at once
    assert len(stream.getvalue().splitlines()) == 101


def test_off_the_event_loop_every_line_is_flushed(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
) -> None:
    _top, child, _handler, stream = tree
    child.info("no loop here")
    assert stream.flushes == 1


async def test_deferred_lines_keep_their_order_with_every_other_line(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
) -> None:
    """A line left for the flush is rendered before any later record is written, so the
    output reads in the order things were logged."""
    top, child, _handler, stream = tree
    later = deferred_line_writer(child)
    assert later is not None
    later(said, ("first",))
    later(said, ("second",))
    assert stream.getvalue() == ""  # on the loop: not rendered yet
    top.info("third")
    later(said, ("fourth",))
    child.warning("fifth")  # a warning: everything goes out at once
    messages = [line.rsplit(": ", 1)[1] for line in stream.getvalue().splitlines()]
    assert messages == ["first", "second", "third", "fourth", "fifth"]
    assert stream.flushes == 1


async def test_deferred_lines_are_bounded_and_rendered_at_the_cap(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
) -> None:
    """However long the flush waits (a busy loop), at most MAX_DEFERRED lines wait to be
    rendered: the one that reaches the cap renders them all."""
    _top, child, handler, stream = tree
    later = deferred_line_writer(child)
    assert later is not None
    for n in range(handler.MAX_DEFERRED - 1):
        later(said, (f"line {n}",))
    assert stream.getvalue() == ""
    later(said, ("the last",))
    lines = stream.getvalue().splitlines()
    assert len(lines) == handler.MAX_DEFERRED and lines[-1].endswith(": the last")
    assert stream.flushes == 0  # rendered into the stream's buffer; flushed later
    handler.flush()


async def test_a_line_that_fails_to_render_is_reported_by_type_and_the_others_written(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A render that raises leaves an ERROR line naming the exception's type, never its
    text (which could carry request bytes), and the lines around it are written."""
    _top, child, handler, stream = tree
    later = deferred_line_writer(child)
    assert later is not None
    later(said, ("before",))
    later(broken, ("exe0.secret-looking",))
    later(said, ("after",))
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "INFO sshmint-test-logs.access: before",
        "ERROR sshmint-test-logs.access: a line could not be rendered: ValueError",
        "INFO sshmint-test-logs.access: after",
    ]
    assert "secret" not in stream.getvalue() + "".join(capsys.readouterr())
