"""docs/proxy.md#header-names-with-underscores (R157): header names that a WSGI/CGI upstream reads as a protected one.

WSGI and CGI turn every ``-`` of a header name into ``_``, so ``X_ExeDev_UserID`` and
``X-ExeDev-UserID`` both become ``HTTP_X_EXEDEV_USERID`` (values of both joined with a
comma). The proxy removes any name with ``_`` that, read that way, is an ``X-ExeDev-*``,
``X-Forwarded-*`` or ``Authorization`` header.

- The rule itself, ``normalises_to_protected``, against a table of spellings;
- ``upstream_request_headers`` with spoofed lines, anonymous and authenticated;
- a live ``sshmint serve`` in front of a WSGI application served by ``wsgiref`` (the
  standard library's reference server), reached with curl: the application's ``environ``
  holds only the proxy's values. The same request sent to the application directly shows
  what the spoofed headers would otherwise have done.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from multidict import CIMultiDict

from sshmint.server.proxy import (
    Identity,
    bearer_credential,
    normalises_to_protected,
    upstream_request_headers,
)
from tests.support.exec_support import assert_ok, post_exec
from tests.support.harness import SSHMintServer
from tests.support.http_support import curl, via_proxy
from tests.support.keys import Account, AccountFactory

# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "X_ExeDev_UserID",
        "X_EXEDEV_EMAIL",
        "x_exedev_token_ctx",
        "X_Exedev_Authorization",
        "X-ExeDev_UserID",  # mixed: "-" where 8.7 looks, "_" after the prefix
        "X_ExeDev-Email",
        "X_Exedev_",  # normalises to exactly the prefix
        "X-Exedev-_",
        "x_exedev__double",
        "X_Exedev_Anything_At_All",
        "X_Forwarded_For",
        "X_FORWARDED_FOR",
        "X_Forwarded-Host",
        "x-forwarded_host",
        "X_Forwarded_Proto",
        "x-forwarded_proto",
    ],
)
def test_r157_underscore_spellings_of_protected_names_are_removed(name: str) -> None:
    assert normalises_to_protected(name)


@pytest.mark.parametrize(
    "name",
    [
        "X_Custom",
        "X_Exedev",  # "x-exedev": no trailing "-", so not the prefix
        "X-Exedev",
        "X_ExedevUserID",
        "Y_Exedev_UserID",
        "X__Exedev_UserID",  # "x--exedev-userid"
        "_X_Exedev_UserID",
        "Authorization_",  # only exact equality counts for the listed names
        "_Authorization",
        "Authori_zation",
        "X_Forwarded_Fo",
        "X_Forwarded_For_",
        "X_Forwarded_Server",  # not one of the names docs/proxy.md#what-the-upstream-receives sets
        "X_Real_IP",
        "Forwarded",
        # Names without "_" are docs/proxy.md#what-the-upstream-receives's business, not this rule's.
        "X-ExeDev-UserID",
        "X-Forwarded-For",
        "Authorization",
    ],
)
def test_r157_other_names_are_left_alone(name: str) -> None:
    assert not normalises_to_protected(name)


SPOOFED = [
    ("X_ExeDev_UserID", "spoofed-user"),
    ("X_EXEDEV_EMAIL", "spoofed@example.com"),
    ("x_exedev_token_ctx", '{"spoofed":true}'),
    ("X-ExeDev_UserID", "spoofed-mixed"),
    ("X_Exedev_Authorization", "Bearer exe0.spoofed.token"),
    ("X_Forwarded_For", "203.0.113.9"),
    ("X_Forwarded-Host", "spoofed.example"),
    ("X_FORWARDED_PROTO", "https"),
]
KEPT = [("X_Custom", "kept"), ("X-Exedev", "kept-too")]


def forward(lines: list[tuple[str, str]], identity: Identity | None) -> list[tuple[str, str]]:
    return upstream_request_headers(
        lines,
        consumed=bearer_credential(CIMultiDict(lines)),
        client_ip="127.0.0.9",
        default_proto="http",
        identity=identity,
        upgrade=False,
    )


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "authenticated"])
def test_r157_spoofed_lines_never_reach_the_upstream_and_the_proxy_values_do(
    authenticated: bool,
) -> None:
    identity = Identity("usr-real", "real@example.com", '{"a":1}') if authenticated else None
    out = forward([("Host", "vm.localhost:8080"), *SPOOFED, *KEPT], identity)
    expected = [
        ("Host", "vm.localhost:8080"),
        *KEPT,
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "vm.localhost:8080"),
        ("X-Forwarded-For", "127.0.0.9"),  # the spoofed X_Forwarded_For is no chain link
    ]
    if identity is not None:
        expected += [
            ("X-ExeDev-UserID", "usr-real"),
            ("X-ExeDev-Email", "real@example.com"),
            ("X-ExeDev-Token-Ctx", '{"a":1}'),
        ]
    assert out == expected


# --- live: a WSGI application behind the proxy -------------------------------------------------

# The environ keys the application reports: everything the identity and forwarding
# headers (and a harmless custom one) can turn into.
_REPORTED = ("HTTP_X_EXEDEV", "HTTP_X_FORWARDED", "HTTP_AUTHORIZATION", "HTTP_X_CUSTOM")


def _environ_echo(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A WSGI application that answers with the reported part of its environ as JSON."""
    seen = {key: value for key, value in environ.items() if key.startswith(_REPORTED)}
    body = json.dumps(seen, sort_keys=True).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class WSGIUpstream:
    """``wsgiref``'s server on a free loopback port, serving from a thread."""

    def __init__(self) -> None:
        self.server: WSGIServer = make_server(
            "127.0.0.1", 0, _environ_echo, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> WSGIUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture(scope="module")
def live(sqlite_server: SSHMintServer) -> SSHMintServer:
    """SQLite only (overrides the two-backend fixture of conftest.py): nothing here
    depends on the database."""
    return sqlite_server


@pytest.fixture(scope="module")
def wsgi_upstream() -> Iterator[WSGIUpstream]:
    upstream = WSGIUpstream().start()
    yield upstream
    upstream.stop()


def new_vm(live: SSHMintServer, account: Account, upstream_url: str, *, public: bool) -> str:
    name = "wsgi" + uuid.uuid4().hex[:10]
    token = account.token('{"cmds":["new","share set-public"]}')
    assert_ok(post_exec(live, f"new --name={name} --upstream={upstream_url}".encode(), token=token))
    if public:
        assert_ok(post_exec(live, f"share set-public {name}".encode(), token=token))
    return name


def curl_headers(lines: Iterable[tuple[str, str]]) -> list[str]:
    args = []
    for name, value in lines:
        args += ["-H", f"{name}: {value}"]
    return args


def test_r157_the_attack_works_on_a_wsgi_application_reached_directly(
    wsgi_upstream: WSGIUpstream,
) -> None:
    """Without the proxy in between, the underscore spellings become the identity the
    application reads (this is what the proxy has to prevent)."""
    reply = curl(wsgi_upstream.url + "/", *curl_headers([*SPOOFED, *KEPT]))
    seen = json.loads(reply.body)
    assert seen["HTTP_X_EXEDEV_USERID"] == "spoofed-user,spoofed-mixed"
    assert seen["HTTP_X_EXEDEV_EMAIL"] == "spoofed@example.com"
    assert seen["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"
    assert seen["HTTP_X_CUSTOM"] == "kept"


@pytest.mark.parametrize(
    ("public", "authenticated"),
    [(True, False), (True, True), (False, True)],
    ids=["public-anonymous", "public-authenticated", "private-authenticated"],
)
def test_r157_a_wsgi_application_behind_the_proxy_sees_only_the_proxy_values(
    live: SSHMintServer,
    new_account: AccountFactory,
    wsgi_upstream: WSGIUpstream,
    public: bool,
    authenticated: bool,
) -> None:
    account = new_account(live)
    vm = new_vm(live, account, wsgi_upstream.url, public=public)
    args = curl_headers([*SPOOFED, *KEPT])
    if authenticated:
        token = account.token('{"ctx":{"team":"blue"}}', namespace=f"v0@{vm}.localhost")
        args += ["-H", f"Authorization: Bearer {token}"]
    reply = via_proxy(live, vm, "/whoami", *args)
    assert reply.status == 200, reply.body
    expected = {
        "HTTP_X_CUSTOM": "kept",
        "HTTP_X_EXEDEV": "kept-too",  # X-Exedev: no "-" after it, not protected
        "HTTP_X_FORWARDED_FOR": "127.0.0.1",
        "HTTP_X_FORWARDED_HOST": f"{vm}.localhost:{live.http_port}",
        "HTTP_X_FORWARDED_PROTO": "http",
    }
    if authenticated:
        expected |= {
            "HTTP_X_EXEDEV_USERID": account.user_id,
            "HTTP_X_EXEDEV_EMAIL": account.email,
            "HTTP_X_EXEDEV_TOKEN_CTX": '{"team":"blue"}',
        }
    # No HTTP_AUTHORIZATION (the token was consumed), no HTTP_X_EXEDEV_AUTHORIZATION, and
    # nothing spoofed folded into any value.
    assert json.loads(reply.body) == expected
