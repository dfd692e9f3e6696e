"""Server logging (src/sshmint/server/infra/logs.py): the access log's direct line writer writes
exactly what ``logging`` would, and only when nothing else would see the record; INFO
lines on the event loop are flushed in batches, warnings at once."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator

import pytest

from sshmint.server.infra.logs import BatchingStreamHandler, LineFormatter, direct_line_writer

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


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


def test_direct_writer_writes_what_logging_writes(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
) -> None:
    _top, child, _handler, stream = tree
    write = direct_line_writer(child)
    assert write is not None
    child.info("GET / 200 %s", "ünïcode")
    write("GET / 200 ünïcode")
    first, second = stream.getvalue().splitlines()
    pattern = rf"{STAMP} INFO sshmint-test-logs\.access: GET / 200 ünïcode"
    assert re.fullmatch(pattern, first) and re.fullmatch(pattern, second), (first, second)


def test_direct_writer_steps_aside_for_other_handlers_filters_and_levels(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
) -> None:
    top, child, _handler, _stream = tree
    assert direct_line_writer(child) is not None
    child.addHandler(logging.NullHandler())  # a second handler would miss the line
    assert direct_line_writer(child) is None
    child.handlers[:] = []
    child.addFilter(lambda record: True)
    assert direct_line_writer(child) is None
    child.filters[:] = []
    quiet = logging.Logger("sshmint-test-logs.quiet", logging.WARNING)
    quiet.parent = top
    assert direct_line_writer(quiet) is None
    top.handlers[0].setFormatter(logging.Formatter("%(message)s"))  # another format
    assert direct_line_writer(child) is None


async def test_info_lines_are_flushed_in_batches_and_warnings_at_once(
    tree: tuple[logging.Logger, logging.Logger, BatchingStreamHandler, CountingStream],
) -> None:
    _top, child, handler, stream = tree
    write = direct_line_writer(child)
    assert write is not None
    for n in range(50):
        write(f"line {n}")
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
