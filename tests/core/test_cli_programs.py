"""The programs' traps closed (docs/client.md#client-programs, R172, R173), run as a shell runs them: the
installed ``sshmint``, ``python -m sshmint``, real ``ssh-keygen`` keys and real ``git``.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sshmint.keys import load_public_key_file
from sshmint.token import parse_exe0, verify_exe0
from tests.support.keys import KeyFactory

SSHMINT = str(Path(sys.executable).with_name("sshmint"))
NEVER_EXPIRES = "warning: this token never expires; pass --exp to limit its lifetime\n"
NS = "v0@localhost"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
    env.pop("SSH_AUTH_SOCK", None)
    return env | (extra or {})


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=_env(env),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert "Traceback" not in result.stderr
    return result


def sshmint(*args: str) -> subprocess.CompletedProcess[str]:
    return run(SSHMINT, *args)


def python_m(*args: str) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "sshmint", *args)


@pytest.fixture(scope="module")
def key(ssh_keygen_key: KeyFactory) -> Path:
    return ssh_keygen_key("ed25519")


@pytest.fixture(scope="module")
def other_key(ssh_keygen_key: KeyFactory) -> Path:
    return ssh_keygen_key("ed25519", name="programs-other")


def fingerprint(key: Path) -> str:
    return "SHA256:" + load_public_key_file(f"{key}.pub").fingerprint


# --- python -m sshmint (R172) ------------------------------------------------------------


def test_r172_python_m_sshmint_behaves_as_sshmint(key: Path) -> None:
    """The same help, the same deterministic token, the same failure and exit status."""
    perms = '{"exp":4000000000}'
    cases = [
        ["--help"],
        ["mint", "--help"],
        ["admin", "--help"],
        # Ed25519 signatures are deterministic: one payload, one key, one token.
        ["mint", "--key", str(key), "--perms", perms],
        ["inspect", "exe0.abc"],
        ["no-such-command"],
    ]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # independent processes
        pairs = list(pool.map(lambda args: (python_m(*args), sshmint(*args)), cases))
    for args, (module, installed) in zip(cases[:3], pairs[:3], strict=True):
        assert (module.returncode, module.stdout, module.stderr) == (
            0,
            installed.stdout,
            "",
        ), args
    assert pairs[0][0].stdout.startswith("Usage: sshmint ")
    minted_module, minted_installed = pairs[3]
    assert minted_module.stdout == minted_installed.stdout and minted_module.stdout
    bad_module, bad_installed = pairs[4]
    assert (bad_module.returncode, bad_module.stderr) == (1, bad_installed.stderr)
    assert (pairs[5][0].returncode, pairs[5][1].returncode) == (2, 2)


# --- mint without --exp (R172) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "warned"),
    [
        ([], True),
        (["--cmds", "whoami"], True),
        (["--perms", '{"cmds":["ls"]}'], True),
        (["--perms", '{"exp":null}'], True),  # null is "no expiry" (docs/tokens.md#claims)
        (["--exp", "never"], False),  # deliberate
        (["--perms", '{"exp":4000000000}', "--exp", "never"], False),
        (["--exp", "1h"], False),
        (["--perms", '{"exp":4000000000}'], False),
    ],
)
def test_r172_mint_without_exp_warns_on_stderr_and_still_succeeds(
    key: Path, args: list[str], warned: bool
) -> None:
    result = sshmint("mint", "--key", str(key), *args)
    assert result.returncode == 0
    assert result.stderr == (NEVER_EXPIRES if warned else "")
    token = result.stdout.strip()
    assert result.stdout == token + "\n"  # stdout stays the token alone: $(sshmint mint) works
    assert (parse_exe0(token).permissions.exp is None) == (warned or "never" in args)


def test_r172_a_failed_mint_prints_its_error_and_no_warning(key: Path) -> None:
    result = sshmint("mint", "--key", str(key), "--perms", '{"admin":true}')
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        'invalid token: unknown field "admin"\n',
    )


# --- verify names the cause (R173) -------------------------------------------------------


def test_r173_verify_names_a_namespace_mismatch(key: Path) -> None:
    token = sshmint("mint", "--key", str(key), "--vm", "myapp", "--exp", "1h").stdout.strip()
    result = sshmint("verify", token, "--namespace", NS, "--key", f"{key}.pub")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"namespace mismatch: token is for v0@myapp.localhost, expected {NS}\n",
    )
    ok = sshmint("verify", token, "--namespace", "v0@myapp.localhost", "--key", f"{key}.pub")
    assert (ok.returncode, ok.stdout) == (0, f"valid: signed by {fingerprint(key)}\n")


def test_r173_verify_names_the_signing_key_when_it_is_not_the_given_one(
    key: Path, other_key: Path
) -> None:
    token = sshmint("mint", "--key", str(key), "--exp", "1h").stdout.strip()
    result = sshmint("verify", token, "--namespace", NS, "--key", f"{other_key}.pub")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"signed by {fingerprint(key)}, not by the given key\n",
    )
    # Wrong key and wrong namespace: the key is named first (docs/tokens.md#validation order, step 18).
    both = sshmint("verify", token, "--namespace", "v0@x", "--key", f"{other_key}.pub")
    assert both.stderr == f"signed by {fingerprint(key)}, not by the given key\n"


def test_r173_a_forged_signature_under_the_right_key_and_namespace_is_just_invalid(
    key: Path,
) -> None:
    """Nothing the token says explains the failure: the generic message stays."""
    token = sshmint("mint", "--key", str(key), "--exp", "1h").stdout.strip()
    other = sshmint("mint", "--key", str(key), "--exp", "2h").stdout.strip()
    spliced = ".".join([*token.split(".")[:2], other.split(".")[2]])  # payload of one, sig of other
    result = sshmint("verify", spliced, "--namespace", NS, "--key", f"{key}.pub")
    assert (result.returncode, result.stderr) == (1, "invalid token\n")


def test_r173_a_hostile_namespace_is_quoted_not_sent_to_the_terminal(key: Path) -> None:
    evil = "v0@a\x1b]0;owned\x07b"
    token = sshmint("mint", "--key", str(key), "--namespace", evil, "--exp", "1h").stdout.strip()
    result = sshmint("verify", token, "--namespace", NS, "--key", f"{key}.pub")
    assert result.returncode == 1
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert result.stderr == (
        'namespace mismatch: token is for "v0@a\\u001b]0;owned\\u0007b", expected v0@localhost\n'
    )


# --- git-credential --help ---------------------------------------------------------------


def test_git_credential_help_line_works_when_pasted_into_a_shell(key: Path, tmp_path: Path) -> None:
    """The `git config` example of `--help` keeps its `!`, and pasted as shown it makes git
    ask sshmint for a token of that VM."""
    help_text = sshmint("git-credential", "--help").stdout
    match = re.search(r"^ *(git config .*\\\n.*)$", help_text, flags=re.M)
    assert match, help_text
    command = match.group(1)
    assert "'!sshmint git-credential " in command
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    for suffix in ("", ".pub"):
        (home / ".ssh" / f"id_ed25519{suffix}").write_bytes(Path(f"{key}{suffix}").read_bytes())
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    env = {
        "HOME": str(home),
        "PATH": f"{Path(SSHMINT).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    assert run("bash", "-euc", command, env=env).returncode == 0
    fill = subprocess.run(
        ["git", "credential", "fill"],
        input="protocol=https\nhost=myvm.example.com\n\n",
        capture_output=True,
        text=True,
        env=_env(env),
        timeout=60,
    )
    assert fill.returncode == 0, fill.stderr
    fields = dict(line.split("=", 1) for line in fill.stdout.splitlines())
    public = load_public_key_file(f"{key}.pub")
    parsed = verify_exe0(
        fields["password"],
        "v0@myvm.example.com",
        {public.fingerprint: public}.get,
        int(time.time()),
    )
    assert parsed.permissions.exp is not None
