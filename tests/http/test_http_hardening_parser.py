"""docs/security.md#secrets-never-logged (R156): a request aiohttp's HTTP parser refuses never puts a token in the
server's output or in the answer.

Each shape below carries a real token (made with the ssh-keygen recipe, or an exe1 handle
traded for one over SSH) where the parser chokes. The answer must be the fixed 400/431
body, and the server's output must gain exactly one line for it — a warning naming the
peer and the parser's error class — and no 24-character window of the token's signature
part or exe1 body. A sentinel request after each refusal marks where its output ends.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.harness import SSHMintServer
from tests.support.keys import new_key, recipe_token
from tests.support.log_checks import leaked
from tests.support.polling import wait_until
from tests.support.raw_http import (
    RawResponse,
    closed_within,
    exchange,
    read_all_responses,
    read_response,
)

pytestmark = pytest.mark.slow

BAD_REQUEST = b'{"error":"bad request"}\n'
TOO_LARGE = b'{"error":"request header fields too large"}\n'
OVER_LIMIT = "A" * 33 * 1024  # longer than the 32 KiB line limit


@dataclass(frozen=True)
class Refused:
    """A malformed request around token ``t`` and what the server must make of it."""

    name: str
    build: Callable[[str], bytes]
    status: int
    body: bytes
    error: str  # the parser's error class, as the warning names it


def _post(header_lines: str, body: str = "whoami") -> bytes:
    return (
        f"POST /exec HTTP/1.1\r\nHost: localhost\r\n{header_lines}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode("latin-1")


SHAPES = [
    Refused(
        "space-before-colon",
        lambda t: _post(f"Authorization : Bearer {t}\r\n"),
        400,
        BAD_REQUEST,
        "BadHttpMessage",
    ),
    Refused(
        "control-character-after-token",
        lambda t: _post(f"Authorization: Bearer {t}\x01\r\n"),
        400,
        BAD_REQUEST,
        "BadHttpMessage",
    ),
    Refused(
        "control-character-inside-token",
        lambda t: _post(f"Authorization: Bearer {t[:60]}\x7f{t[60:]}\r\n"),
        400,
        BAD_REQUEST,
        "BadHttpMessage",
    ),
    Refused(
        "obs-fold",
        lambda t: _post(f"Authorization: Bearer\r\n {t}\r\n"),
        400,
        BAD_REQUEST,
        "BadHttpMessage",
    ),
    Refused(
        "token-in-malformed-request-line",
        lambda t: f"POST /exec?token={t} HTTP/1.1 x\r\nHost: localhost\r\n\r\n".encode(),
        400,
        BAD_REQUEST,
        "BadStatusLine",
    ),
    Refused(
        "token-in-request-line-with-bad-version",
        lambda t: f"GET /{t} HTTP/1.1\x01\r\nHost: localhost\r\n\r\n".encode(),
        400,
        BAD_REQUEST,
        "BadStatusLine",
    ),
    Refused(
        "header-line-over-32-KiB",
        lambda t: _post(f"Authorization: Bearer {t}{OVER_LIMIT}\r\n"),
        431,
        TOO_LARGE,
        "LineTooLong",
    ),
    Refused(
        "request-line-over-32-KiB",
        lambda t: f"GET /?t={t}&pad={OVER_LIMIT} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode(),
        431,
        TOO_LARGE,
        "LineTooLong",
    ),
    Refused(
        "token-as-chunk-size",
        lambda t: (
            "POST /exec HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"{t}\r\nwhoami\r\n0\r\n\r\n"
        ).encode(),
        400,
        BAD_REQUEST,
        "BadHttpMessage",
    ),
]

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) ([\w.]+): (.*)$")


@pytest.fixture(scope="module")
def refusing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHMintServer]:
    base = tmp_path_factory.mktemp("refusals")
    server = SSHMintServer(base / "data", f"sqlite:///{base / 'sshmint.db'}").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def signer(refusing_server: SSHMintServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registered user's key (it also logs in over SSH)."""
    key = new_key(tmp_path_factory.mktemp("signer") / "key")
    refusing_server.add_user("refusals@example.com", key.with_name("key.pub"))
    return key


_minted = iter(range(1, 1_000_000))


def fresh_exe0(key: Path) -> str:
    """A valid exe0 token with its own signature (each one a new ``exp``)."""
    return recipe_token(key, f'{{"exp":{4_000_000_000 + next(_minted)}}}')


def fresh_exe1(server: SSHMintServer, key: Path) -> str:
    result = server.ssh(key, "exe0-to-exe1", fresh_exe0(key))
    assert result.returncode == 0, result.stderr
    exe1 = result.stdout.strip()
    assert exe1.startswith("exe1."), exe1
    return exe1


def _sentinel(server: SSHMintServer) -> str:
    """Make a request whose access line is unique; returns that line's marker once the
    server has written it (everything logged before it is then written too)."""
    marker = f"sentinel-{uuid.uuid4().hex}"
    probe = exchange(
        server.http_port,
        f"GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {marker}\r\n\r\n".encode(),
    )
    assert probe.status == 200
    assert wait_until(lambda: marker in server.stderr), server.stderr[-2000:]
    return marker


def output_of(server: SSHMintServer, send: Callable[[], None]) -> list[str]:
    """The log lines the server writes while ``send`` runs (between two sentinels)."""
    before = _sentinel(server)
    send()
    after = _sentinel(server)
    output = server.stderr
    between = output[output.index(before) : output.index(after)]
    return between.splitlines()[1:-1]


def send_refused(
    server: SSHMintServer, data: bytes, replies: list[RawResponse], *, half_close: bool = False
) -> None:
    """Send ``data`` (then shut down the sending side, as ``nc -q 1`` does, with
    ``half_close``), keep the answer, and check that the server then closes."""
    import socket

    with socket.create_connection(("127.0.0.1", server.http_port), 10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        replies.append(read_response(sock))
        assert closed_within(sock, 5) is not None


def assert_one_warning(lines: list[str], error: str) -> None:
    """docs/security.md#secrets-never-logged: one line, a warning with the peer and the error class, no traceback."""
    assert len(lines) == 1, lines
    match = LINE.match(lines[0])
    assert match is not None, lines
    assert match.groups() == (
        "WARNING",
        "sshmint.http",
        f"HTTP parser refused a request from 127.0.0.1: {error}",
    ), lines


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_r156_a_refused_request_answers_a_fixed_body_and_logs_one_line_without_the_token(
    refusing_server: SSHMintServer, signer: Path, shape: Refused
) -> None:
    """R156: fixed 400/431 body, one warning line, no window of the signature anywhere."""
    token = fresh_exe0(signer)
    replies: list[RawResponse] = []
    lines = output_of(
        refusing_server, lambda: send_refused(refusing_server, shape.build(token), replies)
    )
    (reply,) = replies
    assert (reply.status, reply.body) == (shape.status, shape.body)
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    assert_one_warning(lines, shape.error)
    assert not leaked(reply.head + reply.body, token)
    assert not leaked(refusing_server.stdout + refusing_server.stderr, token)


@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[6]], ids=["space-before-colon", "over-32-KiB"])
def test_r156_an_exe1_handle_in_a_refused_request_never_reaches_the_output(
    refusing_server: SSHMintServer, signer: Path, shape: Refused
) -> None:
    """R156 for exe1 bodies (20–40 characters: every 24-character window)."""
    exe1 = fresh_exe1(refusing_server, signer)
    replies: list[RawResponse] = []
    lines = output_of(
        refusing_server, lambda: send_refused(refusing_server, shape.build(exe1), replies)
    )
    assert (replies[0].status, replies[0].body) == (shape.status, shape.body)
    assert_one_warning(lines, shape.error)
    assert not leaked(refusing_server.stdout + refusing_server.stderr, exe1)


def test_r156_a_client_that_half_closes_still_gets_the_fixed_answer(
    refusing_server: SSHMintServer, signer: Path
) -> None:
    """``printf ... | nc -q 1``: the client shuts down its side right after the request;
    the refusal is still answered (aiohttp alone would close without a word)."""
    token = fresh_exe0(signer)
    replies: list[RawResponse] = []
    lines = output_of(
        refusing_server,
        lambda: send_refused(refusing_server, SHAPES[0].build(token), replies, half_close=True),
    )
    assert (replies[0].status, replies[0].body) == (400, BAD_REQUEST)
    assert_one_warning(lines, "BadHttpMessage")
    assert not leaked(refusing_server.stdout + refusing_server.stderr, token)


def test_r156_a_malformed_request_on_a_kept_alive_connection(
    refusing_server: SSHMintServer, signer: Path
) -> None:
    """A refusal after a good request on the same connection: the first is answered, the
    second gets the fixed body; the good request's access line is the only other line.
    (In one packet, aiohttp's parser drops both: the good one is never seen.)"""
    import socket

    token = fresh_exe0(signer)
    replies: list[RawResponse] = []

    def send() -> None:
        with socket.create_connection(("127.0.0.1", refusing_server.http_port), 10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            replies.append(read_response(sock))
            sock.sendall(SHAPES[0].build(token))
            replies.extend(read_all_responses(sock))

    lines = output_of(refusing_server, send)
    assert [(r.status, r.body) for r in replies] == [
        (200, b'{"status":"ok"}\n'),
        (400, BAD_REQUEST),
    ]
    assert len(lines) == 2 and '"GET /healthz HTTP/1.1" 200' in lines[0], lines
    assert_one_warning(lines[1:], "BadHttpMessage")
    assert not leaked(refusing_server.stdout + refusing_server.stderr, token)


def test_r156_a_malformed_chunk_after_the_exec_head_fails_the_body_at_once(
    refusing_server: SSHMintServer, signer: Path
) -> None:
    """A chunked /exec body that turns malformed once the request is being handled: the
    body read fails at once (docs/http-api.md#post-exec step 8, 400), nothing of the token is logged, and
    the connection closes."""
    import socket

    token = fresh_exe0(signer)
    head = (
        "POST /exec HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    replies: list[RawResponse] = []

    def send() -> None:
        with socket.create_connection(("127.0.0.1", refusing_server.http_port), 10) as sock:
            sock.sendall(head + b"3\r\nwho\r\n")
            sock.settimeout(0.3)  # the handler is now waiting for the rest of the body
            with pytest.raises(TimeoutError):
                sock.recv(1)
            sock.sendall(f"{token}\r\n".encode())  # not a chunk size
            replies.append(read_response(sock, timeout=5))
            sock.settimeout(5)
            assert sock.recv(1) == b""  # closed: nothing else follows

    lines = output_of(refusing_server, send)
    (reply,) = replies
    assert (reply.status, reply.body) == (400, b'{"error":"failed to read request body"}\n')
    assert len(lines) == 1 and '"POST /exec HTTP/1.1" 400' in lines[0], lines
    assert not leaked(refusing_server.stdout + refusing_server.stderr, token)
