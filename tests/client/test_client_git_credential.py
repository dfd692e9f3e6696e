"""``sshmint git-credential``: git's credential-helper protocol, run as the installed program.

gitcredentials(7) "Custom helpers": the helper reads ``key=value`` lines up to a blank line,
answers ``get`` with the fields it can fill, and says nothing for hosts it does not serve.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from sshmint.keys import PublicKey, load_public_key_file
from sshmint.token import b64url_decode, verify_exe0
from tests.support.harness import SSHMINT
from tests.support.keys import KeyFactory
from tests.support.ssh_agent import Agent


def helper(
    *args: str, stdin: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "SSHMINT_KEY_PASSPHRASE")
    }
    return subprocess.run(
        [str(SSHMINT), "git-credential", *args],
        input=stdin,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def answer_fields(stdout: str) -> dict[str, str]:
    assert stdout.endswith("\n")
    return dict(line.split("=", 1) for line in stdout.splitlines())


def check_token(token: str, namespace: str, key: PublicKey) -> dict[str, object]:
    import json

    lookup = {key.fingerprint: key}.get
    parsed = verify_exe0(token, namespace, lookup, int(time.time()))
    payload = json.loads(parsed.payload)
    assert isinstance(payload, dict)
    return payload


@pytest.fixture
def key(ssh_keygen_key: KeyFactory) -> Path:
    return ssh_keygen_key("ed25519")


@pytest.fixture
def pub(key: Path) -> PublicKey:
    return load_public_key_file(f"{key}.pub")


def test_get_answers_a_fresh_vm_token_for_vm_dot_vm_host_ignoring_the_port(
    key: Path, pub: PublicKey
) -> None:
    before = int(time.time())
    out = helper(
        "get",
        "--key",
        str(key),
        "--vm-host",
        "example.com",
        stdin="protocol=https\nhost=myvm.example.com:8443\npath=repo.git\n\n",
    )
    after = int(time.time())
    assert out.returncode == 0 and out.stderr == ""
    fields = answer_fields(out.stdout)
    assert list(fields) == ["username", "password", "password_expiry_utc"]
    assert fields["username"] == "sshmint"
    payload = check_token(fields["password"], "v0@myvm.example.com", pub)
    assert list(payload) == ["exp"]
    exp = payload["exp"]
    assert isinstance(exp, int)
    assert before + 600 <= exp <= after + 600  # default --ttl 10min
    assert fields["password_expiry_utc"] == str(payload["exp"])


def test_get_keeps_a_given_username_and_honours_ttl(key: Path, pub: PublicKey) -> None:
    before = int(time.time())
    out = helper(
        "get",
        "--key",
        str(key),
        "--ttl",
        "2h",
        stdin="protocol=http\nhost=app.localhost:8080\nusername=alice\n\n",
    )
    fields = answer_fields(out.stdout)
    assert fields["username"] == "alice"
    payload = check_token(fields["password"], "v0@app.localhost", pub)  # default --vm-host
    exp = payload["exp"]
    assert isinstance(exp, int)
    assert before + 7200 <= exp <= int(time.time()) + 7200


def test_host_matching_is_case_insensitive_and_ignores_one_trailing_dot(
    key: Path, pub: PublicKey
) -> None:
    out = helper("get", "--key", str(key), stdin="protocol=https\nhost=MyVM.LocalHost.:443\n")
    check_token(answer_fields(out.stdout)["password"], "v0@myvm.localhost", pub)


def test_vm_host_is_repeatable(key: Path, pub: PublicKey) -> None:
    args = ("get", "--key", str(key), "--vm-host", "a.test", "--vm-host", "b.test")
    for host, namespace in (("x.a.test", "v0@x.a.test"), ("y.b.test:1", "v0@y.b.test")):
        out = helper(*args, stdin=f"protocol=https\nhost={host}\n\n")
        check_token(answer_fields(out.stdout)["password"], namespace, pub)


@pytest.mark.parametrize(
    "request_text",
    [
        "protocol=https\nhost=github.com\n\n",
        "protocol=https\nhost=example.com\n\n",  # the vm-host itself: the API host, no VM
        "protocol=https\nhost=a.b.example.com\n\n",  # a label with a dot is no VM (docs/proxy.md#host-routing)
        "protocol=https\nhost=bad_name.example.com\n\n",  # not a VM name (docs/accounts.md#vms)
        "protocol=ssh\nhost=myvm.example.com\n\n",
        "protocol=https\n\n",
        "\n",
        "",
    ],
)
def test_hosts_it_does_not_serve_get_no_output_at_all(key: Path, request_text: str) -> None:
    out = helper("get", "--key", str(key), "--vm-host", "example.com", stdin=request_text)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


@pytest.mark.parametrize("action", ["store", "erase", "future-action"])
def test_store_erase_and_unknown_actions_do_nothing(key: Path, action: str) -> None:
    request_text = "protocol=https\nhost=myvm.localhost\nusername=sshmint\npassword=exe0.x.y\n\n"
    out = helper(action, "--key", str(key), stdin=request_text)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_signs_through_ssh_agent_with_key_pub_or_agent(
    ssh_keygen_key: KeyFactory, ssh_agent: Agent
) -> None:
    key = ssh_keygen_key("ed25519", name="agent")
    ssh_agent.add(key)
    pub = load_public_key_file(f"{key}.pub")
    env = {"SSH_AUTH_SOCK": ssh_agent.sock}
    for args in (("--key", f"{key}.pub"), ("--agent",)):
        out = helper("get", *args, stdin="protocol=https\nhost=box.localhost\n\n", env=env)
        assert out.returncode == 0, out.stderr
        check_token(answer_fields(out.stdout)["password"], "v0@box.localhost", pub)


def one_line_failure(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    return out.stderr.strip()


def test_errors_are_one_line_on_stderr_exit_1(
    key: Path, tmp_path: Path, ssh_keygen_key: KeyFactory
) -> None:
    vm_request = "protocol=https\nhost=myvm.localhost\n\n"
    missing = one_line_failure(helper("get", "--key", str(tmp_path / "nokey"), stdin=vm_request))
    assert (
        missing
        == f"sshmint git-credential: cannot read key {tmp_path / 'nokey'}: No such file or directory"
    )
    encrypted = ssh_keygen_key("ed25519", name="gitcred", passphrase="pw")
    message = one_line_failure(helper("get", "--key", str(encrypted), stdin=vm_request))
    assert (
        message
        == f"sshmint git-credential: key {encrypted} is encrypted; set SSHMINT_KEY_PASSPHRASE"
    )
    ok = helper(
        "get", "--key", str(encrypted), stdin=vm_request, env={"SSHMINT_KEY_PASSPHRASE": "pw"}
    )
    assert ok.returncode == 0 and "password=exe0." in ok.stdout
    bad_ttl = one_line_failure(helper("get", "--key", str(key), "--ttl", "10m", stdin=vm_request))
    assert bad_ttl.startswith("sshmint git-credential: --ttl: ambiguous duration unit")
    never = one_line_failure(helper("get", "--key", str(key), "--ttl", "never", stdin=vm_request))
    assert "--ttl must be a duration" in never
    both = one_line_failure(helper("get", "--key", str(key), "--agent", stdin=vm_request))
    assert both == "sshmint git-credential: --key and --agent are mutually exclusive"
    no_agent = one_line_failure(helper("get", "--agent", stdin=vm_request))
    assert "SSH_AUTH_SOCK" in no_agent


def test_malformed_request_line_is_refused_without_echoing_it(key: Path) -> None:
    secret = "hunter2-secret"
    out = helper("get", "--key", str(key), stdin=f"protocol=https\n{secret}\n\n")
    message = one_line_failure(out)
    assert secret not in message
    assert message == "sshmint git-credential: invalid credential request line (expected key=value)"


def test_unserved_host_needs_no_key_at_all(tmp_path: Path) -> None:
    """Other helpers keep working even where this one has no usable key."""
    out = helper(
        "get", "--key", str(tmp_path / "nokey"), stdin="protocol=https\nhost=github.com\n\n"
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_payload_is_exactly_exp(key: Path) -> None:
    out = helper("get", "--key", str(key), stdin="protocol=https\nhost=myvm.localhost\n\n")
    payload = b64url_decode(answer_fields(out.stdout)["password"].split(".")[1])
    assert payload.startswith(b'{"exp":') and payload.endswith(b"}")


def test_short_helper_form_runs_git_credential_sshmint_through_real_git(
    key: Path, pub: PublicKey, tmp_path: Path
) -> None:
    """`credential.helper = sshmint --key K` makes git run `git credential-sshmint ... get`."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "SSHMINT_KEY_PASSPHRASE")
    }
    env.update(HOME=str(tmp_path), GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    # git looks helpers up on PATH: the virtualenv's bin holds git-credential-sshmint.
    env["PATH"] = f"{SSHMINT.parent}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run(
        ["git", "-c", f"credential.helper=sshmint --key {key}", "credential", "fill"],
        input="protocol=http\nhost=myvm.localhost:8080\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    fields = answer_fields(out.stdout)
    assert fields["host"] == "myvm.localhost:8080"
    payload = check_token(fields["password"], "v0@myvm.localhost", pub)
    assert list(payload) == ["exp"]
