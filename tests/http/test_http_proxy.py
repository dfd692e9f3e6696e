"""The authenticating VM proxy against a live ``sshmint serve`` on SQLite and PostgreSQL
(docs/proxy.md#vm-proxy, R125–R145), with real curl, ssh-keygen tokens, the real OpenSSH client for exe1
handles, an aiohttp WebSocket client, and an upstream that records everything it receives.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.exec_support import assert_ok, post_exec, ssh_ok
from tests.support.harness import SSHMintServer
from tests.support.http_support import (
    RecordingUpstream,
    add_key,
    assert_proxy_error,
    curl,
    db_execute,
    via_proxy,
)
from tests.support.keys import Account, AccountFactory, new_key
from tests.support.log_checks import leaked
from tests.support.polling import wait_until

OWNER_CMDS = json.dumps(
    {
        "cmds": [
            "new",
            "share set-public",
            "share add",
            "share remove",
            "exe0-to-exe1",
            "ssh-key generate-api-key",
        ]
    }
)
UNAUTHENTICATED = b"invalid or missing authentication\n"


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    """The module's recording upstream; when the module is done, R137 over everything it
    received: no token in any header or body, whichever test sent it."""
    server = RecordingUpstream().start()
    yield server
    server.stop()
    for seen in server.requests:
        for name, value in seen.raw_headers:
            assert b"exe0." not in value and b"exe1." not in value, (name, seen.raw_path)
        assert b"exe0." not in seen.body and b"exe1." not in seen.body


@pytest.fixture(scope="module")
def stranger(live: SSHMintServer, new_account: AccountFactory) -> Account:
    """A second user: no access to the owner's VMs until shared."""
    return new_account(live)


VMFactory = Callable[..., str]


@pytest.fixture
def make_vm(live: SSHMintServer, owner: Account, upstream: RecordingUpstream) -> VMFactory:
    """``make_vm(upstream_url=None, public=False, tags=(), holder=owner)``: a fresh VM."""

    def make(
        upstream_url: str | None = None,
        public: bool = False,
        tags: tuple[str, ...] = (),
        holder: Account | None = None,
    ) -> str:
        who = holder or owner
        name = "vm" + uuid.uuid4().hex[:10]
        token = who.token(OWNER_CMDS)
        line = f"new --name={name} --upstream={upstream_url or upstream.url}"
        if tags:
            line += " --tag=" + ",".join(tags)
        assert_ok(post_exec(live, line.encode(), token=token))
        if public:
            assert_ok(post_exec(live, f"share set-public {name}".encode(), token=token))
        return name

    return make


def vm_token(account: Account, vm: str, permissions: str = "{}") -> str:
    return account.token(permissions, namespace=f"v0@{vm}.localhost")


def basic(password: str, user: str = "anyone") -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- routing, lookup, authentication ------------------------------------------------------


def test_r125_r128_owner_tokens_reach_the_upstream_by_every_route(
    live: SSHMintServer, account: Account, make_vm: VMFactory, upstream: RecordingUpstream
) -> None:
    vm = make_vm()
    exe0 = vm_token(account, vm)
    for header in (
        f"Authorization: Bearer {exe0}",
        f"X-Exedev-Authorization: Bearer {exe0}",
        basic(exe0),
        basic(exe0, user=""),
    ):
        reply = via_proxy(live, vm, "/hello", "-H", header)
        assert (reply.status, reply.body) == (200, b"upstream saw GET /hello"), header
        assert upstream.last().header("X-ExeDev-Email") == account.email.encode()  # R133
        assert upstream.last().header("X-ExeDev-UserID") == account.user_id.encode()
    # exe1 handles: traded over real SSH, and generated for the VM.
    exe1 = ssh_ok(live, account.key, "exe0-to-exe1", f"--vm={vm}", exe0)
    assert via_proxy(live, vm, "/", "-H", f"Authorization: Bearer {exe1}").status == 200
    generated = json.loads(
        ssh_ok(
            live,
            account.key,
            "ssh-key",
            "generate-api-key",
            "--json",
            f"--vm={vm}",
            f"--label=k{vm}",
        )
    )
    assert generated["namespace"] == f"v0@{vm}.localhost"
    assert via_proxy(live, vm, "/", "-H", basic(generated["token"])).status == 200
    # The API host is not the proxy (R125); an absolute-form target names the VM (docs/proxy.md#host-routing).
    assert curl(live.http_url + "/hello").status == 404
    absolute = curl(
        live.http_url + "/",
        "--request-target", f"http://{vm}.localhost:{live.http_port}/abs?x=1",
        "-H", f"Authorization: Bearer {exe0}",
    )  # fmt: skip
    assert (absolute.status, absolute.body) == (200, b"upstream saw GET /abs?x=1")


def test_r126_unknown_and_invalid_vm_names_are_404(live: SSHMintServer, account: Account) -> None:
    for name in ("nosuchvm" + uuid.uuid4().hex[:6], "bad--name", "x" * 53):
        for args in ((), ("-H", f"Authorization: Bearer {vm_token(account, name)}")):
            assert_proxy_error(via_proxy(live, name, "/", *args), 404, b"VM not found\n")


def test_r127_private_vm_refuses_every_unusable_credential(
    live: SSHMintServer, account: Account, make_vm: VMFactory, tmp_path: Path
) -> None:
    vm = make_vm()
    other_vm = make_vm()
    revoked = add_key(live, account, new_key(tmp_path / "revoked"))
    revoked_token = vm_token(revoked, vm)
    assert via_proxy(live, vm, "/", "-H", f"Authorization: Bearer {revoked_token}").status == 200
    ssh_ok(live, account.key, "ssh-key", "remove", "SHA256:" + revoked.fingerprint)
    expired = vm_token(account, vm, '{"exp":946684800}')
    credentials = {
        "none": (),
        "garbage": ("-H", "Authorization: Bearer not-a-token"),
        "expired": ("-H", f"Authorization: Bearer {expired}"),
        "api namespace": ("-H", f"Authorization: Bearer {account.token()}"),
        "other vm": ("-H", f"Authorization: Bearer {vm_token(account, other_vm)}"),
        "revoked": ("-H", f"Authorization: Bearer {revoked_token}"),
        "basic garbage": ("-H", basic("exe0.nope")),
    }
    for what, args in credentials.items():
        reply = via_proxy(live, vm, "/", *args)
        assert (what, reply.status) == (what, 401)
        assert_proxy_error(reply, 401, UNAUTHENTICATED)


def test_r129_identical_credentials_are_400_before_anything_else(
    live: SSHMintServer, account: Account, make_vm: VMFactory
) -> None:
    public = make_vm(public=True)
    token = vm_token(account, public)
    both = ("-H", f"Authorization: Bearer {token}", "-H", f"X-Exedev-Authorization: Bearer {token}")
    message = b"Authorization and X-Exedev-Authorization must not be identical\n"
    assert_proxy_error(via_proxy(live, public, "/", *both), 400, message)
    assert_proxy_error(via_proxy(live, "nosuch" + uuid.uuid4().hex[:6], "/", *both), 400, message)


def test_r130_r131_only_the_first_bearer_is_tried(
    live: SSHMintServer, account: Account, make_vm: VMFactory, upstream: RecordingUpstream
) -> None:
    vm = make_vm()
    good = vm_token(account, vm, '{"ctx":{"via":"x-exedev"}}')
    reply = via_proxy(
        live,
        vm,
        "/",
        "-H",
        "Authorization: Bearer invalid",
        "-H",
        f"X-Exedev-Authorization: Bearer {good}",
    )
    assert reply.status == 200
    assert upstream.last().header("X-ExeDev-Token-Ctx") == b'{"via":"x-exedev"}'
    reply = via_proxy(
        live,
        vm,
        "/",
        "-H",
        f"Authorization: Bearer {vm_token(account, vm)}",
        "-H",
        "X-Exedev-Authorization: Bearer invalid",
    )
    assert_proxy_error(reply, 401, UNAUTHENTICATED)


def test_r132_access_follows_shares(
    live: SSHMintServer, owner: Account, stranger: Account, make_vm: VMFactory
) -> None:
    vm = make_vm()
    header = f"Authorization: Bearer {vm_token(stranger, vm)}"
    assert_proxy_error(via_proxy(live, vm, "/", "-H", header), 403, b"access denied\n")
    token = owner.token(OWNER_CMDS)
    assert_ok(post_exec(live, f"share add {vm} {stranger.email}".encode(), token=token))
    assert via_proxy(live, vm, "/", "-H", header).status == 200
    assert_ok(post_exec(live, f"share remove {vm} {stranger.email}".encode(), token=token))
    assert_proxy_error(via_proxy(live, vm, "/", "-H", header), 403, b"access denied\n")


def test_r144_vms_of_a_locked_out_owner_are_404(
    live: SSHMintServer, stranger: Account, make_vm: VMFactory
) -> None:
    vm = make_vm(public=True, holder=stranger)
    assert via_proxy(live, vm, "/").status == 200
    live.set_locked(stranger.email, True)
    try:
        assert_proxy_error(via_proxy(live, vm, "/"), 404, b"VM not found\n")
    finally:
        live.set_locked(stranger.email, False)
    assert via_proxy(live, vm, "/").status == 200


def test_r145_key_restrictions_at_the_proxy(
    live: SSHMintServer, account: Account, make_vm: VMFactory, tmp_path: Path
) -> None:
    tagged_vm = make_vm(tags=("web",))
    other_vm = make_vm()

    def status(key_account: Account, vm: str) -> int:
        return via_proxy(
            live, vm, "/", "-H", f"Authorization: Bearer {vm_token(key_account, vm)}"
        ).status

    vm_scoped = add_key(live, account, new_key(tmp_path / "vmkey"), f"--vm={other_vm}")
    assert status(vm_scoped, other_vm) == 200
    assert status(vm_scoped, tagged_vm) == 401
    tag_web = add_key(live, account, new_key(tmp_path / "webkey"), "--tag=web")
    assert status(tag_web, tagged_vm) == 200
    assert status(tag_web, other_vm) == 401
    expiring = add_key(live, account, new_key(tmp_path / "expkey"))
    assert status(expiring, other_vm) == 200
    db_execute(
        live.db_url,
        "UPDATE ssh_keys SET permissions = ? WHERE fingerprint = ?",
        ('{"exp":946684800}', expiring.fingerprint),
    )
    assert status(expiring, other_vm) == 401
    # Key cmds do not apply at the proxy.
    cmds_only = add_key(live, account, new_key(tmp_path / "cmdskey"), "--cmds=whoami")
    assert status(cmds_only, other_vm) == 200


# --- what the upstream receives -----------------------------------------------------------


def test_r133_r134_r136_r137_identity_ctx_and_stripped_headers(
    live: SSHMintServer, account: Account, make_vm: VMFactory, upstream: RecordingUpstream
) -> None:
    vm = make_vm()
    ctx = '{"z":   1,\t"a":  2,  "foo":"bar"}'
    token = vm_token(account, vm, f'{{"exp":4000000000,"ctx":{ctx}}}')
    reply = via_proxy(
        live,
        vm,
        "/",
        "-H", f"X-Exedev-Authorization: Bearer {token}",
        "-H", "X-ExeDev-UserID: usr0000000000000000",
        "-H", "X-ExeDev-Email: spoof@example.com",
        "-H", "X-ExeDev-Token-Ctx: spoofed",
        "-H", "X-ExeDev-Anything: spoofed",
        "-H", "Authorization: Bearer exe1.AAAAAAAAAAAAAAAAAAAAAAAAAA",
    )  # fmt: skip
    assert reply.status == 200
    seen = upstream.last()
    assert seen.all("X-ExeDev-Token-Ctx") == [ctx.encode()]  # byte for byte, TAB included
    assert seen.all("X-ExeDev-UserID") == [account.user_id.encode()]
    assert seen.all("X-ExeDev-Email") == [account.email.encode()]
    assert seen.all("X-ExeDev-Anything") == []
    assert seen.all("X-Exedev-Authorization") == [] and seen.all("Authorization") == []


def test_r135_r138_no_ctx_no_header_and_backend_bearer_passes(
    live: SSHMintServer, account: Account, make_vm: VMFactory, upstream: RecordingUpstream
) -> None:
    vm = make_vm()
    reply = via_proxy(
        live,
        vm,
        "/",
        "-H", f"X-Exedev-Authorization: Bearer {vm_token(account, vm)}",
        "-H", "Authorization: Bearer app-secret",
    )  # fmt: skip
    assert reply.status == 200
    seen = upstream.last()
    assert seen.all("X-ExeDev-Token-Ctx") == []
    assert seen.all("Authorization") == [b"Bearer app-secret"]


def test_r139_public_vm_forwards_anonymous_and_foreign_tokens_without_identity(
    live: SSHMintServer, account: Account, make_vm: VMFactory, upstream: RecordingUpstream
) -> None:
    vm = make_vm(public=True)
    other = make_vm()
    assert via_proxy(live, vm, "/", "-H", "X-ExeDev-Email: spoof@example.com").status == 200
    assert upstream.last().all("X-ExeDev-Email") == []
    foreign = vm_token(account, other)
    assert via_proxy(live, vm, "/", "-H", f"Authorization: Bearer {foreign}").status == 200
    seen = upstream.last()
    assert seen.all("X-ExeDev-UserID") == [] and seen.all("Authorization") == []
    mine = vm_token(account, vm, '{"ctx":null}')
    assert via_proxy(live, vm, "/", "-H", basic(mine)).status == 200
    seen = upstream.last()
    assert seen.all("X-ExeDev-Email") == [account.email.encode()]
    assert seen.all("X-ExeDev-Token-Ctx") == [b"null"]


def test_r140_forwarded_headers(
    live: SSHMintServer, account: Account, make_vm: VMFactory, upstream: RecordingUpstream
) -> None:
    vm = make_vm(public=True)
    assert via_proxy(live, vm, "/").status == 200
    seen = upstream.last()
    assert seen.all("X-Forwarded-Proto") == [b"http"]
    assert seen.all("X-Forwarded-Host") == [f"{vm}.localhost:{live.http_port}".encode()]
    assert seen.all("X-Forwarded-For") == [live.http_host.encode()]
    assert seen.all("Host") == [f"{vm}.localhost:{live.http_port}".encode()]
    reply = via_proxy(
        live, vm, "/", "-H", "X-Forwarded-For: 203.0.113.7", "-H", "X-Forwarded-Proto: https"
    )
    assert reply.status == 200
    seen = upstream.last()
    assert seen.all("X-Forwarded-For") == [f"203.0.113.7, {live.http_host}".encode()]
    assert seen.all("X-Forwarded-Proto") == [b"https"]


def test_r141_request_and_response_pass_unchanged(
    live: SSHMintServer, account: Account, make_vm: VMFactory, upstream: RecordingUpstream
) -> None:
    vm = make_vm()
    body = bytes(range(256)) * 64
    path = "/status/418/a%2Fb/./c/../d%20e?q=%41%2b&x=1&x=2&empty"
    reply = via_proxy(
        live,
        vm,
        path,
        "-X", "PUT",
        "-H", f"Authorization: Bearer {vm_token(account, vm)}",
        "-H", "Content-Type: application/x-custom",
        "-H", "Accept-Encoding: gzip",
        data=body,
    )  # fmt: skip
    seen = upstream.last()
    assert (seen.method, seen.raw_path, seen.body) == ("PUT", path, body)
    assert seen.all("Content-Type") == [b"application/x-custom"]
    assert seen.all("Accept-Encoding") == [b"gzip"]
    assert seen.all("User-Agent")[0].startswith(b"curl/")
    assert reply.status == 418
    assert reply.body == f"upstream saw PUT {path}".encode()
    assert reply.all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert reply.all("Server") == ["recording-upstream"]
    assert reply.all("Content-Type") == ["text/x-upstream"]
    assert reply.all("X-Upstream") == ["yes"]
    assert reply.all("X-Content-Type-Options") == []  # only proxy-made responses add it


def test_r142_streamed_responses_arrive_before_the_upstream_finishes(
    live: SSHMintServer, account: Account, make_vm: VMFactory, upstream: RecordingUpstream
) -> None:
    vm = make_vm()
    request = (
        f"GET /stream HTTP/1.1\r\nHost: {vm}.localhost\r\n"
        f"Authorization: Bearer {vm_token(account, vm)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((live.http_host, live.http_port), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while b"first chunk" not in received:  # the upstream is still holding the rest
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        assert b"second chunk" not in received
        upstream.release()
        while chunk := sock.recv(65536):
            received += chunk
    assert b"second chunk" in received


def test_r143_unreachable_upstreams_are_502(
    live: SSHMintServer, account: Account, make_vm: VMFactory
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = make_vm(upstream_url=f"http://127.0.0.1:{dead_port}")
    reply = via_proxy(live, dead, "/", "-H", f"Authorization: Bearer {vm_token(account, dead)}")
    assert_proxy_error(reply, 502, b"upstream unavailable\n")

    # An upstream that accepts and closes before sending a response header.
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def slam() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=slam, daemon=True)
    thread.start()
    try:
        rude = make_vm(upstream_url=f"http://127.0.0.1:{listener.getsockname()[1]}")
        reply = via_proxy(live, rude, "/", "-H", f"Authorization: Bearer {vm_token(account, rude)}")
        assert_proxy_error(reply, 502, b"upstream unavailable\n")
    finally:
        stop.set()
        thread.join(5)
        listener.close()


# --- upgrades -------------------------------------------------------------------------------


def test_s88_websocket_echo_through_the_proxy(
    live: SSHMintServer, account: Account, make_vm: VMFactory, upstream: RecordingUpstream
) -> None:
    vm = make_vm()
    token = vm_token(account, vm)

    async def talk() -> list[object]:
        url = f"http://{live.http_host}:{live.http_port}/ws"
        headers = {"Host": f"{vm}.localhost", "Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, headers=headers) as ws,
        ):
            await ws.send_str("hello")
            text = await ws.receive_str(timeout=10)
            await ws.send_bytes(b"\x00\x01" * 50_000)
            data = await ws.receive_bytes(timeout=10)
            return [text, data]

    text, data = asyncio.run(talk())
    assert text == "echo: hello"
    assert data == b"\x00\x01" * 50_000
    seen = upstream.last()
    assert seen.raw_path == "/ws"
    assert seen.all("Authorization") == []
    assert seen.all("X-ExeDev-Email") == [account.email.encode()]
    # Authentication happens before the upgrade.
    refused = via_proxy(
        live, vm, "/ws", "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
        "-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    )  # fmt: skip
    assert_proxy_error(refused, 401, UNAUTHENTICATED)


# --- nothing secret leaks ----------------------------------------------------------------------


def test_r137_a_proxied_token_reaches_neither_the_upstream_nor_the_log(
    live: SSHMintServer, upstream: RecordingUpstream, new_account: AccountFactory
) -> None:
    """docs/security.md#secrets-never-logged: a request through the proxy with a token in
    Authorization is answered and logged (its access line, found by a User-Agent of its
    own), and neither the upstream nor the server's output holds any of the token."""
    owner = new_account(live)
    vm = "lk" + uuid.uuid4().hex[:8]
    assert_ok(
        post_exec(
            live,
            f"new --name={vm} --upstream={upstream.url}".encode(),
            token=owner.token('{"cmds":["new"]}'),
        )
    )
    token = owner.token(namespace=f"v0@{vm}.localhost")
    agent = f"leak-check-{uuid.uuid4().hex}"
    reply = via_proxy(
        live, vm, "/", "-H", f"Authorization: Bearer {token}", "-H", f"User-Agent: {agent}"
    )
    assert reply.status == 200, reply.body
    assert wait_until(lambda: agent in live.stderr), live.stderr[-2000:]
    seen = upstream.requests[-1]
    assert all(token.encode() not in value for _, value in seen.raw_headers)
    assert leaked(live.stdout + live.stderr, token) == []
