"""How a relayed response is framed for the client (docs/proxy.md#responses, RFC 9112 §6–7, RFC 9110
§8.6), as a pure function: the status line, which headers are added or dropped, whether a
body follows, whether it is chunked and whether the connection stays open."""

from __future__ import annotations

import pytest

from sshmint.server.proxy import LAST_CHUNK, ResponseHead, chunk, relay_head

LINES = [("X-A", "1"), ("set-cookie", "a=1"), ("Set-Cookie", "b=2")]


def frame(
    status: int = 200,
    lines: list[tuple[str, str]] | None = None,
    length: int | None = 5,
    *,
    method: str = "GET",
    version: tuple[int, int] = (1, 1),
    keep_alive: bool = True,
    reason: str = "OK",
) -> tuple[list[str], bool, bool, bool]:
    """(head lines, has_body, chunked, keep_alive); a valid relay is expected."""
    headers = list(LINES if lines is None else lines)
    if length is not None:
        headers.append(("Content-Length", str(length)))
    relay = relay_head(
        ResponseHead(status, reason, headers),
        headers,
        length,
        method=method,
        version=version,
        keep_alive=keep_alive,
    )
    assert relay is not None
    assert relay.data.endswith(b"\r\n\r\n")
    text = relay.data[:-4].decode("utf-8", "surrogateescape").split("\r\n")
    return text, relay.has_body, relay.chunked, relay.keep_alive


def test_s88_sized_response_keeps_status_reason_and_headers_in_order_adding_nothing() -> None:
    assert frame() == (
        ["HTTP/1.1 200 OK", "X-A: 1", "set-cookie: a=1", "Set-Cookie: b=2", "Content-Length: 5"],
        True,
        False,
        True,
    )


def test_s88_reason_phrase_is_kept_verbatim_even_empty() -> None:
    assert frame(reason="")[0][0] == "HTTP/1.1 200 "
    assert frame(203, reason="Odd  Reason")[0][0] == "HTTP/1.1 203 Odd  Reason"


def test_s88_unsized_body_is_chunked_for_http_1_1() -> None:
    lines, has_body, chunked, keep_alive = frame(length=None)
    assert lines[-1] == "Transfer-Encoding: chunked"
    assert (has_body, chunked, keep_alive) == (True, True, True)


def test_s88_unsized_body_ends_the_connection_for_http_1_0() -> None:
    lines, has_body, chunked, keep_alive = frame(length=None, version=(1, 0))
    assert lines[0] == "HTTP/1.0 200 OK"
    assert not any(n.startswith(("Transfer-Encoding", "Connection")) for n in lines)
    assert (has_body, chunked, keep_alive) == (True, False, False)


def test_s88_http_1_0_keep_alive_is_confirmed_and_http_1_1_close_is_announced() -> None:
    assert frame(version=(1, 0))[0][-1] == "Connection: keep-alive"
    lines, _, _, keep_alive = frame(keep_alive=False)
    assert (lines[-1], keep_alive) == ("Connection: close", False)
    lines, _, _, keep_alive = frame(version=(1, 0), keep_alive=False)
    assert not any(n.startswith("Connection") for n in lines) and not keep_alive


def test_s88_head_response_keeps_content_length_and_has_no_body() -> None:
    lines, has_body, chunked, _ = frame(method="HEAD", length=1000)
    assert "Content-Length: 1000" in lines
    assert (has_body, chunked) == (False, False)
    # Nor is an unsized HEAD response made chunked.
    lines, has_body, chunked, keep_alive = frame(method="HEAD", length=None)
    assert not any(n.startswith("Transfer-Encoding") for n in lines)
    assert (has_body, chunked, keep_alive) == (False, False, True)


@pytest.mark.parametrize("status", [204, 304])
def test_rfc9110_s8_6_no_content_length_on_204_and_304(status: int) -> None:
    lines, has_body, chunked, keep_alive = frame(status, length=7)
    assert not any(n.lower().startswith("content-length") for n in lines)
    assert (has_body, chunked, keep_alive) == (False, False, True)


def test_rfc9110_s8_6_no_body_for_a_2xx_to_connect() -> None:
    lines, has_body, _, _ = frame(method="CONNECT", length=3)
    assert not any(n.lower().startswith("content-length") for n in lines)
    assert not has_body


def test_s88_non_utf8_header_bytes_survive_exactly() -> None:
    value = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    relay = relay_head(
        ResponseHead(200, "OK", []),
        [("X-Latin1", value)],
        0,
        method="GET",
        version=(1, 1),
        keep_alive=True,
    )
    assert relay is not None
    assert b"X-Latin1: caf\xe9 \xff\r\n" in relay.data


@pytest.mark.parametrize(
    ("reason", "lines"),
    [
        ("OK\r\nX-Evil: 1", []),
        ("OK\n", []),
        ("OK", [("X-A", "1\r\nX-Evil: 1")]),
        ("OK", [("X-A\n", "1")]),
        ("OK", [("X-A", "1\r")]),
    ],
)
def test_s88_a_line_break_anywhere_in_the_head_is_refused(
    reason: str, lines: list[tuple[str, str]]
) -> None:
    head = ResponseHead(200, reason, lines)
    assert relay_head(head, lines, None, method="GET", version=(1, 1), keep_alive=True) is None


def test_rfc9112_s7_1_chunks() -> None:
    assert chunk(b"") == b""
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_s88_a_switch_keeps_the_upstreams_connection_upgrade_and_adds_nothing() -> None:
    lines = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "x")]
    relay = relay_head(
        ResponseHead(101, "Switching Protocols", lines),
        lines,
        None,
        method="GET",
        version=(1, 1),
        keep_alive=False,
    )
    assert relay is not None
    assert relay.data == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: x\r\n\r\n"
    )
    assert (relay.has_body, relay.chunked, relay.keep_alive) == (False, False, False)
