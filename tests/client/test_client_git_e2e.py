"""git clone and push through the VM proxy, authenticated only by ``sshmint git-credential``.

Real parts throughout: ``sshmint serve``, the real git client (libcurl), the helper run by
git, and ``git http-backend`` as the VM's upstream. docs/proxy.md#credentials (Basic password as token),
docs/proxy.md#access-rules (private VM), docs/proxy.md#what-the-upstream-receives (token never reaches the upstream).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sshmint.client import Client, SSHMintAuth
from tests.support.client_support import find_tokens
from tests.support.git_http import GitBackend, git
from tests.support.harness import SSHMINT, SSHMintServer
from tests.support.keys import Account


def make_vm(server: SSHMintServer, account: Account, upstream: str) -> str:
    name = "git" + uuid.uuid4().hex[:8]
    with Client(server.http_url, auth=SSHMintAuth(key=account.key)) as client:
        client.exec(["new", f"--name={name}", f"--upstream={upstream}"])
    return name


def test_git_clone_and_push_through_the_proxy_with_only_the_credential_helper(
    sqlite_server: SSHMintServer, account: Account, git_backend: GitBackend, tmp_path: Path
) -> None:
    vm = make_vm(sqlite_server, account, git_backend.url)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    remote = f"http://{vm}.localhost:{sqlite_server.http_port}/repo.git"
    work = tmp_path / "work"

    # Without credentials the private VM refuses (401) and git, unable to prompt, fails.
    with pytest.raises(AssertionError, match=r"(?i)authentication failed|could not read Username"):
        git("clone", "-q", remote, str(tmp_path / "refused"), env=env)

    helper = (
        "-c",
        "credential.helper=",
        "-c",
        f"credential.helper=!{SSHMINT} git-credential --key {account.key}",
    )
    git(*helper, "clone", "-q", remote, str(work), env=env)
    assert (work / "README").read_text() == "hello\n"

    (work / "change.txt").write_text("pushed through sshmint\n")
    git("add", "change.txt", cwd=work, env=env)
    git("commit", "-q", "-m", "through the proxy", cwd=work, env=env)
    git(*helper, "push", "-q", "origin", "HEAD:main", cwd=work, env=env)

    pushed = git("--git-dir", str(git_backend.repo), "log", "-1", "--format=%s", "main")
    assert pushed.strip() == "through the proxy"

    # The upstream saw the proxy's identity and never a token (docs/proxy.md#what-the-upstream-receives).
    authenticated = [r for r in git_backend.requests if "X-ExeDev-Email" in r]
    assert authenticated and {r["X-ExeDev-Email"] for r in authenticated} == {account.email}
    assert any(
        r.get("Content-Type") == "application/x-git-receive-pack-request" for r in authenticated
    )
    for headers in git_backend.requests:
        assert "Authorization" not in headers
        assert not any("exe0." in v or "exe1." in v for v in headers.values())

    # Nothing kept the token: not git's config or credential files, not the repository.
    assert find_tokens(home, work / ".git") == []
