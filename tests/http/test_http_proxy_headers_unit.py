"""The proxy's header rules as pure functions (docs/proxy.md#host-routing, docs/proxy.md#credentials, docs/proxy.md#what-the-upstream-receives, docs/proxy.md#responses)."""

from __future__ import annotations

import base64

import pytest
from multidict import CIMultiDict

from sshmint.server.http import route_host
from sshmint.server.infra.logs import redact_tokens
from sshmint.server.proxy import (
    Identity,
    basic_password,
    bearer_credential,
    carries_exe_token,
    is_ambiguous,
    is_upgrade_request,
    upstream_request_headers,
    upstream_response_headers,
)

EXE0 = "exe0.e30.U1NIU0lH"
EXE1 = "exe1.ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def basic(password: str, user: str = "git") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def forward(
    lines: list[tuple[str, str]],
    identity: Identity | None = None,
    upgrade: bool = False,
) -> list[tuple[str, str]]:
    headers = CIMultiDict(lines)
    return upstream_request_headers(
        lines,
        consumed=bearer_credential(headers),
        client_ip="127.0.0.9",
        default_proto="http",
        identity=identity,
        upgrade=upgrade,
    )


def names(lines: list[tuple[str, str]]) -> list[str]:
    return [n.lower() for n, _ in lines]


# --- docs/proxy.md#host-routing host routing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "label"),
    [
        ("localhost:8080", None),
        ("LOCALHOST", None),
        ("localhost.", None),
        ("myapp.localhost:8080", "myapp"),
        ("MyApp.LocalHost.", "myapp"),
        ("a.b.localhost", None),
        (".localhost", None),
        ("example.org", None),
        ("[::1]:8080", None),
        ("", None),
    ],
)
def test_s81_route_host_with_default_hosts(host: str, label: str | None) -> None:
    assert route_host(host, "localhost", "localhost") == label


def test_s81_route_host_with_distinct_web_and_vm_hosts() -> None:
    assert route_host("sshmint.example.com", "sshmint.example.com", "vm.example.com") is None
    assert route_host("vm.example.com", "sshmint.example.com", "vm.example.com") is None
    assert route_host("app.vm.example.com:443", "sshmint.example.com", "vm.example.com") == "app"
    assert route_host("app.sshmint.example.com", "sshmint.example.com", "vm.example.com") is None


# --- docs/proxy.md#credentials credentials ------------------------------------------------------------------


def test_r129_identical_values_are_ambiguous_whatever_the_scheme() -> None:
    assert is_ambiguous(CIMultiDict([("Authorization", "x"), ("X-Exedev-Authorization", "x")]))
    assert is_ambiguous(
        CIMultiDict(
            [("Authorization", "a"), ("Authorization", "b"), ("X-Exedev-Authorization", "b")]
        )
    )
    assert not is_ambiguous(CIMultiDict([("Authorization", ""), ("X-Exedev-Authorization", "")]))
    assert not is_ambiguous(CIMultiDict([("Authorization", "x"), ("X-Exedev-Authorization", "y")]))


def test_r130_x_exedev_authorization_comes_first_and_only_one_bearer_is_chosen() -> None:
    headers = CIMultiDict(
        [
            ("Authorization", "Bearer from-authorization"),
            ("X-Exedev-Authorization", "Basic abc"),
            ("X-Exedev-Authorization", "bEaReR   from-x-exedev  "),
        ]
    )
    chosen = bearer_credential(headers)
    assert chosen is not None
    assert (chosen.token, chosen.header_name) == ("from-x-exedev", "X-Exedev-Authorization")
    assert bearer_credential(CIMultiDict([("Authorization", "Token x")])) is None


def test_s84_basic_password_is_the_text_after_the_first_colon() -> None:
    assert basic_password(CIMultiDict([("Authorization", basic("pa:ss"))])) == "pa:ss"
    assert basic_password(CIMultiDict([("Authorization", "BASIC " + basic("p")[6:])])) == "p"
    assert basic_password(CIMultiDict([("Authorization", "Basic !!!")])) is None
    no_colon = "Basic " + base64.b64encode(b"nocolon").decode()
    assert basic_password(CIMultiDict([("Authorization", no_colon)])) is None
    # Only the first Authorization value counts.
    assert (
        basic_password(CIMultiDict([("Authorization", "Bearer x"), ("Authorization", basic("p"))]))
        is None
    )


def test_s87_step4_which_authorization_values_carry_exe_tokens() -> None:
    assert carries_exe_token([f"Bearer {EXE0}"])
    assert carries_exe_token(["Bearer app-secret", f"bearer {EXE1}"])
    assert carries_exe_token([basic(EXE1)])
    assert not carries_exe_token(["Bearer app-secret"])
    assert not carries_exe_token([basic("hunter2")])
    assert not carries_exe_token(["Bearer app", basic(EXE0)])  # Basic only as the first value


# --- docs/proxy.md#what-the-upstream-receives what the upstream receives -----------------------------------------------------


def test_s87_hop_by_hop_and_connection_named_headers_are_removed() -> None:
    out = forward(
        [
            ("Host", "myapp.localhost:8080"),
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-T"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("X-Secret-Hop", "1"),
            ("Accept", "*/*"),
        ]
    )
    assert names(out)[:2] == ["host", "accept"]
    for gone in (
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-secret-hop",
    ):
        assert gone not in names(out)


def test_r136_r137_consumed_and_x_exedev_headers_never_reach_the_upstream() -> None:
    out = forward(
        [
            ("Host", "h"),
            ("X-Exedev-Authorization", f"Bearer {EXE0}"),
            ("X-ExeDev-UserID", "usr-spoofed"),
            ("x-exedev-email", "spoof@example.com"),
            ("X-EXEDEV-TOKEN-CTX", "{}"),
            ("X-ExeDev-Anything", "x"),
            ("Authorization", f"Bearer {EXE1}"),
        ],
        identity=Identity("usr1", "a@example.com", None),
    )
    assert [(n, v) for n, v in out if n.lower().startswith("x-exedev-")] == [
        ("X-ExeDev-UserID", "usr1"),
        ("X-ExeDev-Email", "a@example.com"),
    ]
    assert "authorization" not in names(out)
    assert not any("exe0." in v or "exe1." in v for _, v in out)


def test_r138_a_backend_bearer_sent_alongside_x_exedev_authorization_passes() -> None:
    out = forward(
        [("X-Exedev-Authorization", f"Bearer {EXE0}"), ("Authorization", "Bearer app-secret")]
    )
    assert ("Authorization", "Bearer app-secret") in out


def test_s87_step2_the_consumed_bearer_is_removed_even_when_it_is_no_exe_token() -> None:
    out = forward([("Authorization", "Bearer garbage"), ("Authorization", "Bearer app-secret")])
    assert [v for n, v in out if n == "Authorization"] == ["Bearer app-secret"]


def test_s87_step4_a_basic_exe_password_removes_authorization() -> None:
    assert "authorization" not in names(forward([("Authorization", basic(EXE0))]))
    assert ("Authorization", basic("hunter2")) in forward([("Authorization", basic("hunter2"))])


def test_r140_x_forwarded_headers() -> None:
    out = dict(forward([("Host", "myapp.localhost:8080"), ("X-Forwarded-Proto", "ftp")]))
    assert out["X-Forwarded-Proto"] == "http"
    assert out["X-Forwarded-Host"] == "myapp.localhost:8080"
    assert out["X-Forwarded-For"] == "127.0.0.9"
    out = dict(
        forward(
            [
                ("Host", "h"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-For", " 10.0.0.1 "),
                ("X-Forwarded-Host", "spoofed"),
            ]
        )
    )
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-For"] == "10.0.0.1, 127.0.0.9"
    assert out["X-Forwarded-Host"] == "h"


def test_r134_r135_ctx_is_forwarded_verbatim_and_only_when_present() -> None:
    raw = '{"z":   1,\t"a":  2,  "foo":"bar"}'
    with_ctx = dict(forward([("Host", "h")], Identity("u", "e", raw)))
    assert with_ctx["X-ExeDev-Token-Ctx"] == raw
    null_ctx = dict(forward([("Host", "h")], Identity("u", "e", "null")))
    assert null_ctx["X-ExeDev-Token-Ctx"] == "null"
    assert "x-exedev-token-ctx" not in names(forward([("Host", "h")], Identity("u", "e", None)))


def test_s88_upgrade_keeps_connection_upgrade_and_upgrade_only() -> None:
    lines = [
        ("Host", "h"),
        ("Connection", "Upgrade, X-Hop"),
        ("Upgrade", "websocket"),
        ("X-Hop", "1"),
    ]
    assert is_upgrade_request(CIMultiDict(lines))
    out = forward(lines, upgrade=True)
    assert ("Connection", "Upgrade") in out and ("Upgrade", "websocket") in out
    assert "x-hop" not in names(out)
    assert not is_upgrade_request(CIMultiDict([("Upgrade", "websocket")]))


def test_s88_response_hop_by_hop_headers_are_removed() -> None:
    lines = [
        ("Content-Type", "text/plain"),
        ("Connection", "close, X-Hop"),
        ("X-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    assert upstream_response_headers(lines, switching=False) == [
        ("Content-Type", "text/plain"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    switching = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Accept", "x")]
    assert upstream_response_headers(switching, switching=True) == switching


def test_s24_access_log_redaction() -> None:
    line = f'"GET /?t={EXE0} HTTP/1.1" 200 "{EXE1}" exe0%2Eabc'
    redacted = redact_tokens(line)
    assert "exe0" not in redacted and "exe1" not in redacted
    assert redacted.startswith('"GET /?t=<redacted token> HTTP/1.1" 200')
