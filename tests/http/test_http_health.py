"""When the database cannot be queried (docs/http-api.md#post-exec, docs/proxy.md#order-of-processing): ``/healthz`` says 503, ``/exec``
answers 500 ``internal error``, the proxy 500 ``internal server error`` — and the server
keeps running, without tracebacks."""

from __future__ import annotations

from pathlib import Path

from tests.support.exec_support import assert_error, assert_ok, check_api_headers, post_exec
from tests.support.harness import SSHMintServer
from tests.support.http_support import RecordingUpstream, curl
from tests.support.keys import new_key, recipe_token
from tests.support.postgres import PostgresServer


def test_s7_s8_a_vanished_database_is_503_on_healthz_and_500_elsewhere(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.new_database()
    server = SSHMintServer(tmp_path / "data", url).start()
    upstream = RecordingUpstream().start()
    try:
        key = new_key(tmp_path / "key")
        server.add_user("db@example.com", key.with_name("key.pub"))
        token = recipe_token(key)
        assert_ok(
            post_exec(server, f"new --name=dbvm --upstream={upstream.url}".encode(), token=token)
        )
        healthz = server.http_url + "/healthz"
        assert curl(healthz).status == 200

        postgres.psql(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

        reply = curl(healthz)
        check_api_headers(reply)
        assert (reply.status, reply.json()) == (
            503,
            {"status": "error", "error": "database unavailable"},
        )
        assert curl(healthz, "-I").status == 503
        assert_error(post_exec(server, b"whoami", token=token), 500, "internal error")
        proxied = curl(
            f"http://dbvm.localhost:{server.http_port}/",
            "--resolve", f"dbvm.localhost:{server.http_port}:{server.http_host}",
            "-H", f"Authorization: Bearer {recipe_token(key, '{}', 'v0@dbvm.localhost')}",
        )  # fmt: skip
        assert (proxied.status, proxied.body) == (500, b"internal server error\n")
        assert proxied.header("Content-Type") == "text/plain; charset=utf-8"
        assert upstream.requests == []
        assert server.running
    finally:
        server.stop()
        upstream.stop()
    assert "Traceback" not in server.stderr
    assert "exe0." not in server.stderr and "exe1." not in server.stderr
