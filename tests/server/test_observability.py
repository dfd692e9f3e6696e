"""Operations against a real server (docs/operations.md#start-up-report,
docs/operations.md#metrics, docs/operations.md#logs): R167, R169, R170.

One server for the module, run with ``--metrics-listen 127.0.0.1:0 --log-format json``;
the ``traffic`` fixture sends it, once, everything the tests look at — a successful and a
refused ``/exec``, a burst that meets the rate limit, a proxied request, SSH commands
(one of them given a token), an SSH login with an unregistered key, a request the HTTP
parser refuses — and every test checks its own rule on what that left. A second server
(PostgreSQL with a password in its URL, ``--log-level warning``) shows the report hides
the password and that the metrics count what the log level leaves out.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sshmint.errors import FAILURE_CAUSES
from sshmint.server.commands import COMMAND_NAMES
from sshmint.server.infra.metrics import (
    COMMAND_STATUSES,
    DURATION_BUCKETS,
    ROUTES,
    SESSION_RESULTS,
    TRANSPORTS,
    UNKNOWN_COMMAND,
)
from tests.support.exec_support import assert_ok, post_exec
from tests.support.harness import SSHMintServer
from tests.support.http_support import RecordingUpstream, curl, via_proxy
from tests.support.keys import Account, AccountFactory, KeyFactory, key_fingerprint
from tests.support.log_checks import leaked
from tests.support.metrics import samples, scrape, value
from tests.support.polling import wait_until
from tests.support.postgres import PostgresServer
from tests.support.raw_http import exchange
from tests.support.server_fixtures import ServerFactory, served

pytestmark = pytest.mark.slow

FAMILIES = {
    "sshmint_http_requests": ("counter", {"route", "code"}),
    "sshmint_http_request_duration_seconds": ("histogram", {"route"}),
    "sshmint_auth_failures": ("counter", {"transport", "reason"}),
    "sshmint_rate_limited": ("counter", set()),
    "sshmint_ssh_sessions": ("counter", {"result"}),
    "sshmint_commands": ("counter", {"transport", "command", "status"}),
    "sshmint_proxy_upstream_duration_seconds": ("histogram", set()),
    "sshmint_proxy_upstream_errors": ("counter", set()),
    "sshmint_db_errors": ("counter", set()),
}
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHMintServer]:
    yield from served(
        tmp_path_factory.mktemp("observed"),
        extra_args=["--metrics-listen", "127.0.0.1:0", "--log-format", "json"],
    )


@dataclass
class Traffic:
    account: Account
    vm: str
    ok_token: str
    refused_token: str
    traded_token: str
    parser_token: str
    limited: int  # 429 answers of the burst

    @property
    def tokens(self) -> tuple[str, ...]:
        return (self.ok_token, self.refused_token, self.traded_token, self.parser_token)


def _log_objects(server: SSHMintServer) -> list[dict[str, object]]:
    """Every complete line of the server's stderr, parsed: each must be one JSON object."""
    complete = server.stderr.rpartition("\n")[0]
    objects = []
    for line in complete.splitlines():
        obj = json.loads(line)  # R170: nothing else on stderr
        assert isinstance(obj, dict), line
        objects.append(obj)
    return objects


@pytest.fixture(scope="module")
def traffic(observed: SSHMintServer, new_account: AccountFactory, fresh_key: KeyFactory) -> Traffic:
    server = observed
    account = new_account(server)
    vm = "vm" + uuid.uuid4().hex[:10]
    upstream = RecordingUpstream().start()
    try:
        owner_token = account.token('{"cmds":["new"]}')
        assert_ok(
            post_exec(
                server, f"new --name={vm} --upstream={upstream.url}".encode(), token=owner_token
            )
        )
        ok_token = account.token()
        assert_ok(post_exec(server, b"whoami", token=ok_token))
        refused_token = account.token('{"exp":1000000000}')
        assert post_exec(server, b"whoami", token=refused_token).status == 401
        reply = via_proxy(
            server,
            vm,
            "/page?q=1",
            "-H",
            f"Authorization: Bearer {account.token(namespace=f'v0@{vm}.localhost')}",
        )
        assert reply.status == 200, reply.body
    finally:
        upstream.stop()
    # R162's burst: the 61st rapid request of one key gets 429 (a key of its own).
    burst = new_account(server)
    burst_token = burst.token()
    with httpx.Client() as client:
        statuses = [
            client.post(
                server.http_url + "/exec",
                content=b"whoami",
                headers={"Authorization": f"Bearer {burst_token}"},
            ).status_code
            for _ in range(62)
        ]
    # SSH: a command, a trade refused (its token must never be logged), an unknown command
    # and a login with a key no account has.
    assert server.ssh(account.key, "whoami").returncode == 0
    traded_token = account.token('{"exp":1000000000}', namespace="v0@localhost")
    assert server.ssh(account.key, "exe0-to-exe1", traded_token).returncode == 1
    assert server.ssh(account.key, "no-such-command").returncode == 1
    assert server.ssh(fresh_key("ed25519"), "whoami").returncode != 0
    # A request the HTTP parser refuses (a space before a header's colon), carrying a token.
    parser_token = account.token()
    refused = exchange(
        server.http_port,
        f"GET / HTTP/1.1\r\nHost: localhost\r\nAuthorization : Bearer {parser_token}\r\n\r\n".encode(),
    )
    assert refused.status == 400
    return Traffic(
        account, vm, ok_token, refused_token, traded_token, parser_token, statuses.count(429)
    )


def test_r167_startup_report_follows_the_listening_lines(observed: SSHMintServer) -> None:
    """R167: after the listening lines, ``data dir`` (absolute), ``database`` and the SSH
    host key's fingerprint as ``ssh-keygen -l`` prints it; the metrics listener's line is
    in the style of the others."""
    lines = observed.stdout.splitlines()
    assert lines[:3] == [
        f"ssh listening on 127.0.0.1:{observed.ssh_port}",
        f"metrics listening on 127.0.0.1:{observed.metrics_port}",
        f"http listening on 127.0.0.1:{observed.http_port}",
    ]
    assert wait_until(lambda: len(observed.stdout.splitlines()) >= 6), observed.stdout
    host_key = observed.data_dir / "ssh_host_ed25519_key"
    listing = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(host_key)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert observed.stdout.splitlines()[3:] == [
        f"data dir {observed.data_dir.resolve()}",
        f"database {observed.db_url}",  # an absolute SQLite path, no password to hide
        f"ssh host key {listing.stdout.split()[1]}",
    ]


def test_r169_metrics_count_requests_refusals_sessions_and_commands(
    observed: SSHMintServer, traffic: Traffic
) -> None:
    """R169: every family of docs/operations.md#metrics with exactly its label names; after
    a successful /exec its 200 is counted, after a refused token an auth failure with its
    cause; proxy, rate limit, SSH sessions and commands are counted too."""
    text = scrape(observed)
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, (kind, labels) in FAMILIES.items():
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"} <= set(
        families
    )
    # Histograms resolve sub-millisecond requests.
    bounds = {
        s.labels["le"]
        for s in families["sshmint_http_request_duration_seconds"].samples
        if "le" in s.labels
    }
    assert {"0.0001", "0.00025", "0.0005"} <= bounds

    assert value(text, "sshmint_http_requests_total", route="exec", code="200") >= 1
    assert value(text, "sshmint_auth_failures_total", transport="exec", reason="expired") >= 1
    assert value(text, "sshmint_auth_failures_total", transport="ssh", reason="expired") >= 1
    assert value(text, "sshmint_auth_failures_total", transport="ssh", reason="unknown_key") >= 1
    assert value(text, "sshmint_http_requests_total", route="proxy", code="200") >= 1
    assert value(text, "sshmint_proxy_upstream_duration_seconds_count") >= 1
    assert value(text, "sshmint_http_requests_total", route="other", code="400") >= 1  # parser
    assert traffic.limited >= 1
    assert value(text, "sshmint_rate_limited_total") >= traffic.limited
    assert value(text, "sshmint_http_requests_total", route="exec", code="429") >= traffic.limited
    assert value(text, "sshmint_ssh_sessions_total", result="accepted") >= 3
    assert value(text, "sshmint_ssh_sessions_total", result="refused") >= 1
    assert (
        value(text, "sshmint_commands_total", transport="exec", command="whoami", status="ok") >= 1
    )
    assert (
        value(text, "sshmint_commands_total", transport="ssh", command="whoami", status="ok") >= 1
    )
    assert (
        value(
            text, "sshmint_commands_total", transport="ssh", command="exe0-to-exe1", status="error"
        )
        >= 1
    )
    assert (
        value(text, "sshmint_commands_total", transport="ssh", command="unknown", status="error")
        >= 1
    )
    # Label sets known in advance are there at zero.
    assert (
        "sshmint_auth_failures_total",
        (("reason", "policy"), ("transport", "proxy")),
    ) in samples(text)


def test_r169_no_label_value_identifies_anyone(observed: SSHMintServer, traffic: Traffic) -> None:
    """R169, docs/operations.md#metrics: label values come from fixed sets, status codes
    and the command tree's names — never a user id, email, VM name, fingerprint, path or
    token, although the traffic carried all of them."""
    text = scrape(observed)
    allowed: dict[str, set[str]] = {
        "route": set(ROUTES),
        "transport": set(TRANSPORTS),
        "reason": set(FAILURE_CAUSES),
        "result": set(SESSION_RESULTS),
        "status": set(COMMAND_STATUSES),
        "command": set(COMMAND_NAMES) | {UNKNOWN_COMMAND},
        "le": {repr(b) for b in DURATION_BUCKETS} | {"+Inf"},
    }
    for (name, labels), _ in samples(text).items():
        for label, label_value in labels:
            if label == "code":
                assert re.fullmatch(r"[1-5]\d\d", label_value), (name, label_value)
            else:
                assert label_value in allowed[label], (name, label, label_value)
    account = traffic.account
    for secret in (account.email, account.user_id, traffic.vm, account.fingerprint, "/page"):
        assert secret not in text, secret
    for token in traffic.tokens:
        assert not leaked(text, token)


def test_metrics_are_served_only_on_the_metrics_listener(observed: SSHMintServer) -> None:
    """docs/operations.md#metrics: ``/metrics`` is never served on the API listener."""
    api = curl(observed.http_url + "/metrics")
    assert (api.status, api.json()) == (404, {"error": "not found"})
    base = observed.metrics_url.removesuffix("/metrics")
    assert curl(base + "/other").status == 404
    assert curl(observed.metrics_url, "-X", "POST").status == 405
    assert curl(observed.metrics_url, "-I").status == 200


def test_r170_every_log_line_is_json_with_access_and_audit_fields(
    observed: SSHMintServer, traffic: Traffic
) -> None:
    """R170, docs/operations.md#logs: under ``--log-format json`` every stderr line is one
    JSON object with ``ts`` (RFC 3339, milliseconds, UTC), ``level``, ``logger``, ``msg``;
    access lines carry the request, who made it and why a token was refused; every SSH
    command has one audit line; the parser refusal has its one warning line; no token
    anywhere."""
    account = traffic.account
    key = key_fingerprint(account.pub)

    def audit(command: str) -> list[dict[str, object]]:
        return [
            o for o in _log_objects(observed)
            if o["logger"] == "sshmint.audit" and o.get("command") == command and o.get("user_id") == account.user_id
        ]  # fmt: skip

    assert wait_until(lambda: len(audit("unknown")) == 1), observed.stderr[-3000:]
    objects = _log_objects(observed)
    for obj in objects:
        assert TS.fullmatch(str(obj["ts"])), obj
        assert obj["level"] in ("debug", "info", "warning", "error", "critical"), obj
        assert isinstance(obj["logger"], str) and isinstance(obj["msg"], str), obj
    access = [o for o in objects if o["logger"] == "sshmint.access"]
    mine = [o for o in access if o.get("user_id") == account.user_id and o["path"] == "/exec"]
    ok = next(o for o in mine if o.get("command") == "whoami" and o["status"] == 200)
    assert ok["method"] == "POST" and ok["key"] == key and ok["remote"] == "127.0.0.1", ok
    assert ok["host"] == f"127.0.0.1:{observed.http_port}", ok
    assert isinstance(ok["bytes"], int) and isinstance(ok["duration_ms"], float), ok
    refused = [o for o in access if o.get("auth_failure") == "expired"]
    assert refused and all(o["status"] == 401 and "user_id" not in o for o in refused), refused
    proxied = next(o for o in access if o.get("vm") == traffic.vm and o["status"] == 200)
    assert proxied["path"] == "/page" and proxied["user_id"] == account.user_id, proxied
    assert proxied["host"] == f"{traffic.vm}.localhost:{observed.http_port}", proxied
    # One audit line per SSH command: the command name and its exit status, no argument.
    (whoami,) = audit("whoami")
    assert (whoami["key"], whoami["exit_status"], whoami["remote"]) == (key, 0, "127.0.0.1")
    assert isinstance(whoami["duration_ms"], float)
    (trade,) = audit("exe0-to-exe1")
    assert trade["exit_status"] == 1 and trade["msg"] == "ssh command", trade
    # The parser refusal: one warning line, no access line.
    warnings = [o for o in objects if "HTTP parser refused a request" in str(o["msg"])]
    assert [o["level"] for o in warnings] == ["warning"], warnings
    assert not [o for o in access if o["status"] == 400 and o["path"] == "/"], access
    for token in traffic.tokens:
        assert not leaked(observed.stderr + observed.stdout, token)


def test_r167_password_hidden_and_metrics_count_what_the_log_level_leaves_out(
    postgres: PostgresServer,
    server_factory: ServerFactory,
    new_account: AccountFactory,
) -> None:
    """R167: the database URL is shown with its password replaced by ``***`` (PostgreSQL;
    the test cluster trusts loopback, so the password is never checked). docs/operations.md#logs:
    ``--log-level warning`` drops the access and audit lines, and the metrics count the
    requests all the same."""
    url = postgres.new_database()
    user, _, rest = url.removeprefix("postgresql://").partition("@")
    secret = "s3cret-" + uuid.uuid4().hex[:8]
    server = server_factory(
        f"postgresql://{user}:{secret}@{rest}",
        extra_args=["--log-level", "warning", "--metrics-listen", ":0"],
    )
    assert wait_until(lambda: "ssh host key" in server.stdout), server.stdout
    assert f"database postgresql://{user}:***@{rest}" in server.stdout.splitlines()
    account = new_account(server)
    assert_ok(post_exec(server, b"whoami", token=account.token()))
    assert server.ssh(account.key, "whoami").returncode == 0
    text = scrape(server)
    assert value(text, "sshmint_http_requests_total", route="exec", code="200") == 1
    assert (
        value(text, "sshmint_commands_total", transport="ssh", command="whoami", status="ok") == 1
    )
    server.stop()  # every line it had is written
    assert secret not in server.stdout + server.stderr
    assert " INFO " not in server.stderr, server.stderr
