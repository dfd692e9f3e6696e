"""TLS on the HTTP listener (``--tls-cert``/``--tls-key``): a self-signed certificate made
with ``cryptography``, checked by the real curl (``--cacert``) and ``sshmint exec``.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from tests.support.harness import SSHMintServer, run_sshmint
from tests.support.http_support import RecordingUpstream, curl
from tests.support.keys import new_key, recipe_token
from tests.support.upstream_client_support import RawPeer, ThreadedRawUpstream, response


def test_tls_healthz_exec_and_proxy_over_https(
    tls_server: tuple[SSHMintServer, Path], tmp_path: Path
) -> None:
    server, cert = tls_server
    port = server.http_port
    resolve = ("--resolve", f"localhost:{port}:127.0.0.1", "--cacert", str(cert))
    reply = curl(f"https://localhost:{port}/healthz", *resolve)
    assert (reply.status, reply.json()) == (200, {"status": "ok"})
    # Without the CA curl refuses the certificate (exit 60); plain HTTP gets no answer.
    untrusted = ["curl", "-sS", "--resolve", resolve[1], f"https://localhost:{port}/healthz"]
    assert subprocess.run(untrusted, capture_output=True).returncode == 60
    plain = ["curl", "-sS", "--max-time", "20", f"http://127.0.0.1:{port}/healthz"]
    assert subprocess.run(plain, capture_output=True).returncode != 0

    key = new_key(tmp_path / "key")
    server.add_user("tls@example.com", key.with_name("key.pub"))
    token = recipe_token(key)
    reply = curl(
        f"https://localhost:{port}/exec",
        *resolve,
        "-H",
        f"Authorization: Bearer {token}",
        data=b"whoami",
    )
    assert reply.status == 200 and reply.json()["email"] == "tls@example.com"

    # sshmint exec verifies the certificate through the standard SSL_CERT_FILE.
    result = run_sshmint(
        "exec", "--url", f"https://127.0.0.1:{port}", "--token", token, "whoami",
        env={"SSL_CERT_FILE": str(cert)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"tls@example.com"' in result.stdout

    # The proxy over TLS tells the upstream the original scheme.
    upstream = RecordingUpstream().start()
    try:
        reply = curl(
            f"https://localhost:{port}/exec", *resolve, "-H", f"Authorization: Bearer {token}",
            data=f"new --name=tlsvm --upstream={upstream.url}".encode(),
        )  # fmt: skip
        assert reply.status == 200, reply.body
        vm_token = recipe_token(key, "{}", "v0@tlsvm.localhost")
        reply = curl(
            f"https://tlsvm.localhost:{port}/x",
            "--resolve", f"tlsvm.localhost:{port}:127.0.0.1", "--cacert", str(cert),
            "-H", f"Authorization: Bearer {vm_token}",
        )  # fmt: skip
        assert (reply.status, reply.body) == (200, b"upstream saw GET /x")
        assert upstream.last().all("X-Forwarded-Proto") == [b"https"]
    finally:
        upstream.stop()


async def _large_body_script(peer: RawPeer) -> None:
    while await peer.read_request() is not None:
        await peer.send(response(LARGE_BODY))


LARGE_BODY = hashlib.sha256(b"tls").digest() * (3 * 1024 * 1024 // 32) + b"end"


def test_s88_large_bodies_over_tls_are_copied_whole(
    tls_server: tuple[SSHMintServer, Path], tmp_path: Path
) -> None:
    # A TLS listener rules out the splice(2) relay (the bytes must be encrypted): the
    # copying relay carries the body, byte-exact, twice on one connection.
    server, cert = tls_server
    port = server.http_port
    key = new_key(tmp_path / "key")
    server.add_user("tls-large@example.com", key.with_name("key.pub"))
    upstream = ThreadedRawUpstream(_large_body_script).start()
    try:
        reply = curl(
            f"https://localhost:{port}/exec",
            "--resolve", f"localhost:{port}:127.0.0.1", "--cacert", str(cert),
            "-H", f"Authorization: Bearer {recipe_token(key)}",
            data=f"new --name=tlsbig --upstream={upstream.url}".encode(),
        )  # fmt: skip
        assert reply.status == 200, reply.body
        vm_token = recipe_token(key, "{}", "v0@tlsbig.localhost")
        url = f"https://tlsbig.localhost:{port}/big"
        result = subprocess.run(
            [
                "curl", "-sS", "--fail", "--max-time", "60",
                "--resolve", f"tlsbig.localhost:{port}:127.0.0.1", "--cacert", str(cert),
                "-H", f"Authorization: Bearer {vm_token}", url, url,
            ],
            capture_output=True, timeout=90, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout == LARGE_BODY + LARGE_BODY
        assert upstream.connections == 1
    finally:
        upstream.stop()
