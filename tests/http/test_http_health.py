"""``/healthz`` reports the database (SPEC §7): 503 once the server's database is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exec_support import check_api_headers
from harness import SSHMintServer
from http_support import curl


def test_s7_healthz_is_503_when_the_database_cannot_be_queried(
    postgres: Any, tmp_path: Path
) -> None:
    url = postgres.new_database()
    server = SSHMintServer(tmp_path / "data", url).start()
    try:
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
        assert server.running  # a failing database is reported, not fatal
    finally:
        server.stop()
    assert "Traceback" not in server.stderr
