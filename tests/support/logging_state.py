"""``configured``: a fixture for tests that call ``configure_logging()`` in-process and
must leave logging's global state as they found it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

__all__ = ["configured"]


@pytest.fixture
def configured() -> Iterator[None]:
    """``configure_logging()`` for one test, with logging's global state put back."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.unraisablehook)
    saved_levels = {n: logging.getLogger(n).level for n in ("asyncssh", "alembic")}
    yield
    root.handlers[:], level, sys.unraisablehook = saved
    root.setLevel(level)
    for name, lvl in saved_levels.items():
        logging.getLogger(name).setLevel(lvl)
    logging.captureWarnings(False)
