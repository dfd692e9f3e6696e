"""``git clone``/``git push`` through the VM proxy to ``git http-backend`` (docs/proxy.md#vm-proxy).

The VM's upstream is a small aiohttp CGI gateway running the real ``git http-backend``;
git authenticates with a VM token as the Basic password, from a credential helper in a
temporary ``$HOME`` (no global configuration is touched) or from the URL. The gateway
hands the proxy's ``X-ExeDev-Email`` to git as ``REMOTE_USER``, which enables pushing.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.exec_support import assert_ok, post_exec, ssh_ok
from tests.support.git_http import GitBackend, git_backend_app
from tests.support.harness import SSHMintServer
from tests.support.http_support import ThreadedApp
from tests.support.keys import Account


@pytest.fixture(scope="module")
def live(sqlite_server: SSHMintServer) -> SSHMintServer:
    """SQLite only (overrides the two-backend fixture of conftest.py)."""
    return sqlite_server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitBackend]:
    """``git http-backend`` serving an empty ``repo.git``."""
    root = tmp_path_factory.mktemp("git-root")
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", str(root / "repo.git")], check=True
    )
    backend = GitBackend(root)
    server = ThreadedApp(git_backend_app(backend)).start()
    backend.url = server.url
    yield backend
    server.stop()


def git(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Tester",
        "GIT_AUTHOR_EMAIL": "tester@example.com",
        "GIT_COMMITTER_NAME": "Tester",
        "GIT_COMMITTER_EMAIL": "tester@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_s8_git_clone_and_push_through_the_proxy(
    live: SSHMintServer, account: Account, gateway: GitBackend, tmp_path: Path
) -> None:
    vm = "git" + os.urandom(4).hex()
    token = account.token('{"cmds":["new","ssh-key generate-api-key"]}')
    assert_ok(post_exec(live, f"new --name={vm} --upstream={gateway.url}".encode(), token=token))
    port = live.http_port
    url = f"http://{vm}.localhost:{port}/repo.git"
    vm_exe0 = account.token(namespace=f"v0@{vm}.localhost")
    generated = ssh_ok(live, account.key, "ssh-key", "generate-api-key", "--json", f"--vm={vm}")
    vm_exe1 = json.loads(generated)["token"]

    home = tmp_path / "home"
    home.mkdir()
    resolve = f"{vm}.localhost:{port}:{live.http_host}"
    helper = f"!f() {{ echo username=git; echo password={vm_exe1}; }}; f"
    for key, value in (("http.curloptResolve", resolve), ("credential.helper", helper)):
        assert git(home, "config", "--global", key, value).returncode == 0

    # Without credentials the private VM answers 401 and git gives up.
    bare = git(home, "-c", "credential.helper=", "ls-remote", url)
    assert bare.returncode != 0

    # Push a commit with the exe1 handle from the credential helper.
    work = tmp_path / "work"
    assert git(home, "init", "-q", "-b", "main", str(work)).returncode == 0
    (work / "README").write_text("through the proxy\n")
    assert git(home, "add", "README", cwd=work).returncode == 0
    assert git(home, "commit", "-q", "-m", "first", cwd=work).returncode == 0
    pushed = git(home, "push", url, "main", cwd=work)
    assert pushed.returncode == 0, pushed.stderr

    # Clone it back with the exe0 token as the password in the URL.
    clone = tmp_path / "clone"
    token_url = f"http://git:{vm_exe0}@{vm}.localhost:{port}/repo.git"
    cloned = git(home, "-c", "credential.helper=", "clone", "-q", token_url, str(clone))
    assert cloned.returncode == 0, cloned.stderr
    assert (clone / "README").read_text() == "through the proxy\n"

    # The backend saw who pushed, and never a token.
    log = subprocess.run(
        ["git", "--git-dir", str(gateway.repo), "log", "--format=%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.stdout.strip() == "first"
    emails = {
        v for headers in gateway.raw_requests for n, v in headers if n.lower() == b"x-exedev-email"
    }
    assert emails == {account.email.encode()}
    for headers in gateway.raw_requests:
        for _name, header_value in headers:
            assert b"exe0." not in header_value and b"exe1." not in header_value
