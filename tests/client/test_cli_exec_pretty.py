"""``sshmint exec --pretty``: text for people instead of the JSON body (the issue's "no
human-readable output option"), with the real CLI against a live server. Without the flag
the body is printed as received (docs/client.md#sshmint-exec), terminal or not.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from sshmint.cli.pretty import render
from sshmint.client import Client, SSHMintAuth
from tests.support.client_fixtures import StatusServer
from tests.support.harness import SSHMintServer
from tests.support.keys import Account

SSHMINT = str(Path(sys.executable).with_name("sshmint"))


def sshmint_exec(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
    env.pop("SSH_AUTH_SOCK", None)
    result = subprocess.run(
        [SSHMINT, "exec", "--url", url, *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert "Traceback" not in result.stderr
    return result


def test_pretty_whoami_lists_the_account_and_its_keys(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    result = sshmint_exec(sqlite_server.http_url, "--pretty", "--key", str(account.key), "whoami")
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("user_id: usr")
    assert f"email:   {account.email}" in lines
    assert "ssh_keys:" in lines
    assert "  current:     yes" in lines  # the key that signed this request
    assert "{" not in result.stdout  # no JSON left


def test_pretty_shows_vms_and_an_empty_list(
    sqlite_server: SSHMintServer, account: Account, tmp_path: Path
) -> None:
    key = ["--key", str(account.key)]
    with Client(sqlite_server.http_url, auth=SSHMintAuth(key=account.key)) as client:
        owned = {vm["vm_name"] for vm in client.exec("ls")["vms"]}
        if "pretty" not in owned:
            client.exec(["new", "--name=pretty", "--upstream=http://127.0.0.1:9", "--tag=demo"])
    listed = sshmint_exec(sqlite_server.http_url, "--pretty", *key, "ls", "pretty")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[:3] == [
        "vms:",
        "  vm_name:    pretty",
        "  upstream:   http://127.0.0.1:9",
    ]
    assert "  tags:       demo" in listed.stdout.splitlines()
    none = sshmint_exec(sqlite_server.http_url, "--pretty", *key, "ls", "no-such-vm-*")
    assert (none.returncode, none.stdout) == (0, "vms: (none)\n")


def test_pretty_failure_prints_the_message_alone_on_stderr(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    args = ["--key", str(account.key), "--cmds", "whoami"]
    refused = sshmint_exec(sqlite_server.http_url, "--pretty", *args, "ls")
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1,
        "",
        "command not allowed by token permissions\n",
    )
    failed = sshmint_exec(sqlite_server.http_url, "--pretty", "--key", str(account.key), "rm")
    assert failed.returncode == 1 and failed.stdout == ""
    assert not failed.stderr.startswith("{")


def test_without_pretty_the_body_is_printed_as_received_even_on_a_terminal(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    """The default does not depend on the terminal: a command tried by hand prints what a
    script would get (docs/client.md#sshmint-exec)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
    env.pop("SSH_AUTH_SOCK", None)
    argv = [SSHMINT, "exec", "--url", sqlite_server.http_url, "--key", str(account.key), "whoami"]
    primary, secondary = pty.openpty()
    with subprocess.Popen(argv, stdout=secondary, stderr=subprocess.PIPE, env=env) as proc:
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(60) == 0
    os.close(primary)
    out = b"".join(chunks).decode().replace("\r\n", "\n")
    assert json.loads(out)["email"] == account.email


@pytest.mark.parametrize(
    ("status", "body", "stream", "expected"),
    [
        (200, b"", "stdout", ""),  # a command with no output
        (502, b"<html>bad gateway</html>\n", "stderr", "<html>bad gateway</html>\n"),
        (500, b'{"error":"internal error"}\n', "stderr", "internal error\n"),
        (200, b"not json\n", "stdout", "not json\n"),
    ],
)
def test_pretty_with_bodies_of_other_shapes(
    status_server: StatusServer, status: int, body: bytes, stream: str, expected: str
) -> None:
    url = status_server(status, body)
    result = sshmint_exec(url, "--pretty", "--token", "exe0.x.y", "whoami")
    assert result.returncode == (0 if status == 200 else 1)
    assert getattr(result, stream) == expected
    assert getattr(result, "stderr" if stream == "stdout" else "stdout") == ""


def test_render_quotes_control_characters_from_other_users() -> None:
    """A share message or upstream chosen by someone else must not drive the terminal."""
    document: dict[str, object] = {
        "vm_name": "app",
        "users": [{"email": "a@example.com", "message": "hi\x1b]0;owned\x07\x1b[2J"}],
        "tags": ["x\u202ey"],
        "n": None,
        "ok": False,
        "port": 8080,
        "permissions": {},
    }
    text = render(document)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert text.splitlines() == [
        "vm_name:     app",
        "users:",
        "  email:   a@example.com",
        '  message: "hi\\u001b]0;owned\\u0007\\u001b[2J"',
        'tags:        "x\\u202ey"',
        "n:           -",
        "ok:          no",
        "port:        8080",
        "permissions: (none)",
    ]
