"""``git clone``/``git push`` through the VM proxy to ``git http-backend`` (docs/proxy.md#vm-proxy).

The VM's upstream is a small aiohttp CGI gateway running the real ``git http-backend``;
git authenticates with a VM token as the Basic password, from a credential helper in a
temporary ``$HOME`` (no global configuration is touched) or from the URL. The gateway
hands the proxy's ``X-ExeDev-Email`` to git as ``REMOTE_USER``, which enables pushing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from exec_support import assert_ok, post_exec, ssh_ok
from harness import SSHMintServer
from http_support import Account, ThreadedApp


@pytest.fixture(scope="module")
def live(sqlite_server: SSHMintServer) -> SSHMintServer:
    """SQLite only (overrides the two-backend fixture of conftest.py)."""
    return sqlite_server


class GitGateway:
    """A CGI gateway for ``git http-backend`` that records the headers it receives."""

    def __init__(self, project_root: Path) -> None:
        self.project_root = project_root
        self.seen_headers: list[list[tuple[bytes, bytes]]] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = ThreadedApp(app)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen_headers.append(list(request.raw_headers))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.project_root),
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_ADDR": request.remote or "",
            "REMOTE_USER": request.headers.get("X-ExeDev-Email", ""),
        }
        if "Content-Length" in request.headers:
            env["CONTENT_LENGTH"] = request.headers["Content-Length"]
        if "Content-Encoding" in request.headers:
            env["HTTP_CONTENT_ENCODING"] = request.headers["Content-Encoding"]
        if "Git-Protocol" in request.headers:
            env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        async def feed() -> None:
            async for chunk in request.content.iter_any():
                stdin.write(chunk)
                await stdin.drain()
            stdin.close()

        feeder = asyncio.ensure_future(feed())
        status, headers = 200, []
        while (line := await stdout.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name.strip(), value.strip()))
        response = web.StreamResponse(status=status)
        for name, value in headers:
            response.headers.add(name, value)
        await response.prepare(request)
        while chunk := await stdout.read(65536):
            await response.write(chunk)
        await feeder
        await proc.wait()
        await response.write_eof()
        return response


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitGateway]:
    root = tmp_path_factory.mktemp("git-root")
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", str(root / "repo.git")], check=True
    )
    gateway = GitGateway(root)
    gateway.server.start()
    yield gateway
    gateway.server.stop()


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
    live: SSHMintServer, account: Account, gateway: GitGateway, tmp_path: Path
) -> None:
    vm = "git" + os.urandom(4).hex()
    token = account.token('{"cmds":["new","ssh-key generate-api-key"]}')
    assert_ok(
        post_exec(live, f"new --name={vm} --upstream={gateway.server.url}".encode(), token=token)
    )
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
        ["git", "--git-dir", str(gateway.project_root / "repo.git"), "log", "--format=%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.stdout.strip() == "first"
    emails = {
        v for headers in gateway.seen_headers for n, v in headers if n.lower() == b"x-exedev-email"
    }
    assert emails == {account.email.encode()}
    for headers in gateway.seen_headers:
        for _name, value in headers:
            assert b"exe0." not in value and b"exe1." not in value
