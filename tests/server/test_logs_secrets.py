"""docs/security.md#secrets-never-logged: the log handler's :class:`SecretsFilter` keeps token material out of every
record, whichever library made it — messages, their arguments, tracebacks, stack dumps —
and the access log's deferred path still works beside it.
"""

from __future__ import annotations

import gc
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sshmint.server.infra.logs import (
    REDACTED,
    BatchingStreamHandler,
    LineFormatter,
    SecretsFilter,
    configure_logging,
    deferred_line_writer,
    scrub_secrets,
)
from sshmint.signing import load_private_key
from sshmint.token import mint_exe0

LIBRARIES = ["aiohttp.server", "asyncssh", "sqlalchemy.engine.Engine", "asyncpg", "sshmint.http"]
EXE1 = "exe1.MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"  # docs/tokens.md#exe1-tokens shape: 32 base32 characters


@pytest.fixture(scope="module")
def token(ssh_keygen_key: Callable[..., Path]) -> str:
    signer = load_private_key(ssh_keygen_key("ed25519", name="logs-secrets"))
    return mint_exe0(b'{"exp":4000000000}', signer, "v0@localhost")


def secret_windows(token: str) -> set[str]:
    secret = token.split(".")[2] if token.startswith("exe0.") else token.split(".", 1)[1]
    return {secret[i : i + 24] for i in range(len(secret) - 23)}


def assert_clean(text: str, *tokens: str) -> None:
    for token in tokens:
        found = [window for window in secret_windows(token) if window in text]
        assert not found, (found[:3], text)


@pytest.fixture
def captured() -> Iterator[tuple[Callable[[str], logging.Logger], io.StringIO]]:
    """``logger(name)``: a logger outside logging's registry whose records reach a
    BatchingStreamHandler with the SecretsFilter, writing to the returned stream."""
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream, LineFormatter())
    handler.addFilter(SecretsFilter())
    top = logging.Logger("secrets-test")
    top.handlers[:] = [handler]
    top.setLevel(logging.DEBUG)

    def logger(name: str) -> logging.Logger:
        child = logging.Logger(f"secrets-test.{name}")
        child.parent = top
        return child

    yield logger, stream
    top.handlers[:] = []


@pytest.mark.parametrize("name", LIBRARIES)
def test_r156_messages_arguments_tracebacks_and_stacks_are_scrubbed(
    captured: tuple[Callable[[str], logging.Logger], io.StringIO], token: str, name: str
) -> None:
    logger, stream = captured
    log = logger(name)
    log.info("Command: exe0-to-exe1 %s", token)
    log.warning("header %r refused", f"Authorization: Bearer {token}\x01".encode())
    log.debug("values %(a)s and %(b)s", {"a": token, "b": EXE1})
    log.error(f"an f-string carrying {token} and %d", 7)
    try:
        raise ValueError(f"Invalid header value char: b'Bearer {token}'")
    except ValueError:
        log.exception("Error handling request from %s", "127.0.0.1")
    log.warning("stack below", stack_info=True, extra={"unused": token})
    text = stream.getvalue()
    assert_clean(text, token, EXE1)
    # What is not secret survives: the text around, the exception type and its frames.
    assert f"secrets-test.{name}: Command: exe0-to-exe1 {REDACTED}" in text
    assert "values <redacted token> and <redacted token>" in text
    assert "an f-string carrying <redacted token> and 7" in text
    assert "Traceback (most recent call last):" in text
    assert "ValueError: Invalid header value char: b'Bearer <redacted token>" in text
    assert "Stack (most recent call last):" in text


def test_r156_fragments_of_a_token_without_its_prefix_are_scrubbed(token: str) -> None:
    """What a library leaves of a token after truncating or splitting it."""
    signature = token.split(".")[2]
    tail = signature[-150:]
    truncated = f"[parameters: ('{token[:40]} ... (212 characters truncated) ... {tail}',)]"
    folded = f"b'  {signature[30:90]}'"  # one line of a folded header
    exe1_body = f"handle {EXE1[5:]} unknown"
    for text in (truncated, folded, exe1_body):
        scrubbed = scrub_secrets(text)
        assert_clean(scrubbed, token, EXE1)
        assert "<redacted" in scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "SSH session for usr0123456789abcdef with key "
        "SHA256:1BXRo7H/iCbmrEhXkGIOMe9CMXsIl9KSq3Q6ACG3Xa8",
        "data dir /tmp/pytest-of-root/pytest-12/test_r156_parser_refusals_never0/data",
        'File "/x/aiohttp/web_protocol.py", line 446, in _resume_reading_if_drained',
        "aiohttp.client_exceptions.ClientConnectorCertificateError: failed",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "SSHMINT_HTTP_LISTEN_ADDRESS_FROM_ENVIRONMENT=127.0.0.1:8080",
    ],
)
def test_ordinary_log_text_is_left_alone(text: str) -> None:
    assert scrub_secrets(text) == text


def test_the_deferred_access_path_stays_with_the_filter_and_redacts_tokens(
    captured: tuple[Callable[[str], logging.Logger], io.StringIO], token: str
) -> None:
    logger, stream = captured
    later = deferred_line_writer(logger("aiohttp.access"))
    assert later is not None  # the SecretsFilter alone does not turn the fast path off
    later(str, (f'127.0.0.1 "GET /?t={token} HTTP/1.1" 200 2 "-" "curl"',))
    line = stream.getvalue()
    assert f'"GET /?t={REDACTED} HTTP/1.1"' in line
    assert_clean(line, token)


def test_configure_logging_routes_every_output_through_the_filter(
    configured: None, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging()
    (handler,) = logging.getLogger().handlers
    assert [type(f) for f in handler.filters] == [SecretsFilter]
    logging.getLogger("sqlalchemy.pool").warning("connection for %s invalidated", token)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"unclosed transport carrying {token}", UserWarning, stacklevel=1)

    class Leaky:
        def __del__(self) -> None:
            raise RuntimeError(f"cleanup of {token} failed")

    Leaky()
    gc.collect()
    handler.flush()
    err = capsys.readouterr().err
    assert "WARNING sqlalchemy.pool: connection for <redacted token> invalidated" in err
    assert "py.warnings" in err and "unclosed transport carrying <redacted token>" in err
    assert "RuntimeError: cleanup of <redacted token> failed" in err
    assert_clean(err, token)
