"""asyncssh and the root logger at DEBUG once the server has configured its logging, as an
operator chasing a problem would set them (``tests/server/test_ssh_log_secrets.py``)."""

from __future__ import annotations

import logging

import sshmint.server.app as app

_configure = app.configure_logging


def configure_logging(log_format: str = "text", level: str = "info") -> None:
    _configure(log_format, level)
    logging.getLogger().setLevel(logging.DEBUG)
    logging.getLogger("asyncssh").setLevel(logging.DEBUG)


app.configure_logging = configure_logging
