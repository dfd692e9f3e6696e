"""The README's "Use from Python" and "Use with git" examples run verbatim against a live server.

Only documented knobs change between the README and this test: ``SSHMINT_URL`` and
``SSHMINT_KEY`` (read by the Python examples), the server port in the local git example
(``8080`` becomes the live server's port), and ``HOME`` (a fresh directory holding the
account's key as ``~/.ssh/id_ed25519``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sshmint.client import Client, SSHMintAuth
from sshmint.keys import load_public_key_file
from sshmint.token import verify_exe0
from tests.support.client_support import find_tokens
from tests.support.git_http import GitBackend, git
from tests.support.harness import REPO_ROOT, SSHMINT, SSHMintServer
from tests.support.keys import Account


def readme_blocks(section: str, language: str) -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)


def test_readme_sections_have_their_examples() -> None:
    assert len(readme_blocks("Use from Python", "python")) == 4
    assert len(readme_blocks("Use with git", "bash")) == 2
    # Every fenced block of both sections is one of those run below.
    for section in ("Use from Python", "Use with git"):
        assert len(readme_blocks(section, r"\w*")) == len(readme_blocks(section, "python")) + len(
            readme_blocks(section, "bash")
        )


@pytest.fixture
def home(tmp_path: Path, account: Account) -> Path:
    """A fresh HOME whose ~/.ssh/id_ed25519 and ~/.ssh/sshmint_api are the account's key."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    for name in ("id_ed25519", "sshmint_api"):  # the login key, and the walkthrough's API key
        shutil.copy(account.key, home / ".ssh" / name)
        shutil.copy(f"{account.key}.pub", home / ".ssh" / f"{name}.pub")
    return home


@pytest.mark.parametrize("index", range(4))
def test_readme_python_examples_run_verbatim(
    sqlite_server: SSHMintServer, account: Account, index: int
) -> None:
    block = readme_blocks("Use from Python", "python")[index]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
    env |= {"SSHMINT_URL": sqlite_server.http_url, "SSHMINT_KEY": str(account.key)}
    result = subprocess.run(
        [sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    expected = [
        rf"^{re.escape(account.email)}$",
        rf"^{re.escape(account.email)} \d+ VMs$",
        r"\(signing this token\)$",
        r"^command failed: ",
    ]
    assert re.search(expected[index], result.stdout, flags=re.M), result.stdout
    assert "exe0." not in result.stdout + result.stderr


def git_env(home: Path) -> dict[str, str]:
    path = f"{SSHMINT.parent}{os.pathsep}{os.environ.get('PATH', '')}"  # `sshmint` on PATH
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SSHMINT_"))}
    env.pop("SSH_AUTH_SOCK", None)
    return env | {
        "HOME": str(home),
        "PATH": path,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def test_readme_remote_git_config_answers_for_the_vm(home: Path, account: Account) -> None:
    """The example.com block, then git's own ``credential fill`` asks the configured helper."""
    block = readme_blocks("Use with git", "bash")[0]
    env = git_env(home)
    subprocess.run(["bash", "-euc", block], env=env, check=True, timeout=60)
    fill = subprocess.run(
        ["git", "credential", "fill"],
        input="protocol=https\nhost=myvm.example.com\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    fields = dict(line.split("=", 1) for line in fill.stdout.splitlines())
    key = load_public_key_file(f"{account.key}.pub")
    verify_exe0(
        fields["password"], "v0@myvm.example.com", {key.fingerprint: key}.get, int(time.time())
    )
    # Another host is not answered by this helper (git would fall back to a prompt: none here).
    other = subprocess.run(
        ["git", "credential", "fill"],
        input="protocol=https\nhost=other.example.com\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode != 0 and "password=" not in other.stdout


def test_readme_local_git_example_clones_through_the_proxy(
    sqlite_server: SSHMintServer, account: Account, git_backend: GitBackend, home: Path
) -> None:
    """The local block continues the server walkthrough: the ``myapp`` VM, the API key
    ``~/.ssh/sshmint_api``, run from the checkout (its helper line names
    ``$PWD/.venv/bin/sshmint``, so git needs no ``sshmint`` on its ``PATH``)."""
    with Client(sqlite_server.http_url, auth=SSHMintAuth(key=account.key)) as client:
        existing = {vm["vm_name"] for vm in client.exec("ls")["vms"]}
        if "myapp" not in existing:
            client.exec(["new", "--name=myapp", f"--upstream={git_backend.url}"])
    block = readme_blocks("Use with git", "bash")[1]
    assert block.count("8080") == 2 and "myvm" not in block
    script = block.replace("8080", str(sqlite_server.http_port))
    env = git_env(home)
    env["PATH"] = os.pathsep.join(  # no sshmint on git's PATH: the helper line names it
        d for d in env["PATH"].split(os.pathsep) if d != str(SSHMINT.parent)
    )
    result = subprocess.run(
        ["bash", "-euc", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    clone = home / "sshmint-demo" / "clone-with-helper"
    assert (clone / "README").read_text() == "hello\n"
    # And a push works with the same configuration.
    (clone / "more.txt").write_text("more\n")
    git("add", "more.txt", cwd=clone, env={"HOME": str(home)})
    git("commit", "-q", "-m", "from the readme test", cwd=clone, env={"HOME": str(home)})
    push = subprocess.run(
        ["git", "push", "-q", "origin", "HEAD:main"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert push.returncode == 0, push.stderr
    assert git("--git-dir", str(git_backend.repo), "log", "-1", "--format=%s", "main").strip() == (
        "from the readme test"
    )
    assert find_tokens(home, clone / ".git") == []
