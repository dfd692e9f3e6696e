"""The README's walkthroughs run verbatim (issue: token core; docs/tokens.md#minting-offline, docs/operations.md#operations).

The fenced ``bash`` blocks of a section are run in a real bash, from the project root, with
``HOME`` pointing at a fresh directory so the example paths (``~/.ssh/sshmint_api``,
``~/sshmint-backup``) are private to the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from sshmint.keys import parse_public_key_line
from sshmint.signing import load_private_key
from sshmint.token import mint_exe0
from tests.support.harness import REPO_ROOT, SSH_OPTIONS, SSHMintServer, host_keys
from tests.support.keys import new_key
from tests.support.polling import free_port
from tests.support.postgres import PostgresServer


def readme_bash_blocks(section: str) -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return re.findall(r"```bash\n(.*?)```", body, flags=re.S)


def _wait_for_port(port: int, seconds: int = 30) -> str:
    """A bash line that polls 127.0.0.1:``port`` until it accepts, failing after ``seconds``."""
    probe = f"until (: </dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.05; done"
    return f"timeout {seconds} bash -c '{probe}'"


def test_readme_offline_walkthrough_mints_inspects_and_verifies(tmp_path: Path) -> None:
    blocks = readme_bash_blocks("A five-minute walkthrough")
    assert len(blocks) >= 4, "walkthrough lost its steps"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    # Also check the shell-recipe token and the CLI-minted one both verify.
    script += (
        "\nCLI_TOKEN=$(.venv/bin/sshmint mint --key ~/.ssh/sshmint_api --exp 1h --cmds whoami,ls)\n"
        '.venv/bin/sshmint verify "$CLI_TOKEN" --namespace v0@localhost --key ~/.ssh/sshmint_api.pub\n'
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("SSH_AUTH_SOCK", None)
    result = subprocess.run(
        ["bash", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("valid: signed by SHA256:") == 2, result.stdout
    assert "ssh-ed25519" in result.stdout  # inspect shows the key type


def test_readme_server_walkthrough_from_serve_to_git_clone_backup_and_restore(
    tmp_path: Path,
) -> None:
    """README "Run the server", then "Back up and restore" (SQLite): add-user, ssh, ssh-key
    add, curl /exec, sshmint exec, /healthz, exe1, VM, git clone, admin backup while the
    server runs; then a server on the restored data directory (R171).

    The blocks run verbatim in one bash after the offline walkthrough's first two steps
    (the API key and ``$TOKEN``; the test above runs all of it), except for what a test
    must change: the server is started by the harness on free ports instead of ``make
    serve`` (its first block), the ports 2222/8080/9000 become those free ports, ``./sshmint-data`` becomes the harness's data directory,
    ``ssh -p 2222 localhost`` gains options that isolate it from the machine's SSH
    configuration (OpenSSH reads ``~/.ssh`` from the password database, not ``$HOME``), and
    the script waits for the backend it starts with ``&`` to accept connections.
    The README itself makes the login key ``~/.ssh/id_ed25519``.
    """
    home = tmp_path / "home"
    home.mkdir()
    login_key = home / ".ssh" / "id_ed25519"  # made by the README's first server block
    offline = readme_bash_blocks("A five-minute walkthrough")[:2]
    assert "TOKEN=" in offline[1], offline
    server_blocks = readme_bash_blocks("Run the server")
    assert server_blocks[0].strip() == "make serve"
    backup_blocks = readme_bash_blocks("Back up and restore")
    assert len(backup_blocks) == 3 and "pg_dump" in backup_blocks[2]
    upstream_port = free_port()
    data = tmp_path / "data"
    server = SSHMintServer(data, f"sqlite:///{data / 'sshmint.db'}")
    server.start()
    ssh_cmd = " ".join(
        ["ssh", "-p", str(server.ssh_port), *SSH_OPTIONS, "-i", str(login_key), "localhost"]
    )
    script = "\n".join(offline + server_blocks[1:] + backup_blocks[:2])
    script = (
        script.replace("ssh -p 2222 localhost", ssh_cmd)
        .replace("8080", str(server.http_port))
        .replace("9000", str(upstream_port))
        .replace("./sshmint-data", str(data))
    )
    # The README starts its backend in the background and a reader waits for it by eye;
    # the script waits until it accepts connections (bounded), so no clone meets a 502.
    backend = next(line for line in script.splitlines() if "-m http.server" in line)
    assert backend.rstrip().endswith("&"), backend
    script = script.replace(backend, f"{backend}\n{_wait_for_port(upstream_port)}", 1)
    script += '\nprintf "TOKEN=%s\\nEXE1=%s\\n" "$TOKEN" "$EXE1"\n'
    env = {**os.environ, "HOME": str(home), "SSHMINT_DATA_DIR": str(data)}
    env.pop("SSH_AUTH_SOCK", None)
    proc = subprocess.Popen(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the README starts a backend with `&`: stop it with the group
    )
    try:
        out, err = proc.communicate(timeout=180)
        original_host_keys = host_keys(server.ssh_host, server.ssh_port)
    finally:
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        server.stop()
    assert proc.returncode == 0, err
    assert '"email":"you@example.com"' in out  # curl /exec whoami with the offline token
    assert '"ssh_keys":[' in out  # curl /exec 'ssh-key list' with the exe1 handle
    assert re.search(r"^  current: +yes$", out, flags=re.M)  # sshmint exec --pretty
    assert '{"status":"ok"}' in out  # curl /healthz
    assert "hello" in out  # git log of the clone made through the proxy
    assert "exe0." not in server.stderr and "exe1." not in server.stderr
    assert re.search(r"^backed up .* bytes\)$", out, flags=re.M), out
    variables = dict(re.findall(r"^(TOKEN|EXE1)=(\S+)$", out, flags=re.M))

    # The restore block made ~/sshmint-restored; serve it as the README says.
    restored_dir = home / "sshmint-restored"
    restored = SSHMintServer(restored_dir, f"sqlite:///{restored_dir / 'sshmint.db'}")
    restored.start()
    try:
        assert host_keys(restored.ssh_host, restored.ssh_port) == original_host_keys
        # The README's `ssh-keygen -lf` printed the fingerprint users compare.
        (offered,) = original_host_keys
        fingerprint = "SHA256:" + parse_public_key_line(offered).fingerprint
        assert re.search(rf"^256 {re.escape(fingerprint)} .*\(ED25519\)$", out, flags=re.M)
        for name in ("TOKEN", "EXE1"):
            reply = httpx.post(
                f"{restored.http_url}/exec",
                content="ls",
                headers={"Authorization": f"Bearer {variables[name]}"},
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
            assert [vm["vm_name"] for vm in reply.json()["vms"]] == ["myapp"]
    finally:
        restored.stop()


def test_readme_shell_completion_completes_commands_and_options() -> None:
    """README "Set-up", shell completion: the documented lines, then what bash's
    completion calls for ``sshmint admin b<TAB>`` and ``sshmint exec --pr<TAB>``."""
    blocks = readme_bash_blocks("Set-up")
    completion = next(b for b in blocks if "_SSHMINT_COMPLETE=bash_source" in b)
    script = (
        completion
        + "COMP_WORDS=(sshmint admin b); COMP_CWORD=2; _sshmint_completion sshmint\n"
        + 'printf "%s\\n" "${COMPREPLY[@]}"; COMPREPLY=()\n'
        + "COMP_WORDS=(sshmint exec --pr); COMP_CWORD=2; _sshmint_completion sshmint\n"
        + 'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
    result = subprocess.run(
        ["bash", "-euc", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, "backup\n--pretty\n"), result.stderr


def test_readme_postgresql_backup_and_restore(tmp_path: Path, postgres: PostgresServer) -> None:
    """README "Back up and restore", PostgreSQL: ``pg_dump`` while a server runs, then
    ``createdb`` and ``pg_restore`` into a new database, on which a new server authenticates
    the existing token and exe1 handle and serves the VM. Only the host (``db.internal``
    becomes the suite's private cluster) and the database names change."""
    postgres.execute(
        "DO $$ BEGIN CREATE ROLE sshmint LOGIN CREATEDB; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    tag = uuid.uuid4().hex[:8]
    source, target = f"sshmint_{tag}", f"sshmint_restored_{tag}"
    postgres.execute(f'CREATE DATABASE "{source}" OWNER sshmint')
    host = f"{postgres.host}:{postgres.port}"
    live = SSHMintServer(tmp_path / "live", f"postgresql://sshmint@{host}/{source}")
    live.start()
    try:
        key = new_key(tmp_path / "key")
        live.add_user("pg@example.com", Path(f"{key}.pub"))
        token = mint_exe0(
            b'{"exp":%d}' % (time.time() + 3600), load_private_key(key), "v0@localhost"
        )
        ssh = ["ssh", "-p", str(live.ssh_port), *SSH_OPTIONS, "-i", str(key), "127.0.0.1"]
        exe1 = subprocess.run(
            [*ssh, "exe0-to-exe1", token], capture_output=True, text=True, check=True
        ).stdout.strip()
        subprocess.run([*ssh, "new", "--name=pgapp", "--upstream=http://127.0.0.1:9"], check=True)
        block = readme_bash_blocks("Back up and restore")[2]
        script = (
            block.replace("db.internal", host)
            .replace("/sshmint'", f"/{source}'")
            .replace("sshmint_restored", target)
        )
        result = subprocess.run(
            ["bash", "-euc", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    finally:
        live.stop()
    restored = SSHMintServer(tmp_path / "restored", f"postgresql://sshmint@{host}/{target}")
    restored.start()
    try:
        for credential in (token, exe1):
            reply = httpx.post(
                f"{restored.http_url}/exec",
                content="ls",
                headers={"Authorization": f"Bearer {credential}"},
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
            assert [vm["vm_name"] for vm in reply.json()["vms"]] == ["pgapp"]
    finally:
        restored.stop()
        for name in (source, target):
            with contextlib.suppress(Exception):
                postgres.drop_database(f"postgresql://x@h/{name}")


def test_readme_service_section_installs_the_example_files() -> None:
    """README "Run as a service" cannot run systemd here (tests/test_examples.py checks the
    files); its block is valid bash and installs exactly the example files where the unit
    and the config expect them."""
    block = readme_bash_blocks("Run as a service")[0]
    assert subprocess.run(["bash", "-n", "-c", block], timeout=30).returncode == 0
    # Readable by the service's group only: the database URL may carry a password.
    assert "install -D -m 0640 -g sshmint examples/sshmint.toml /etc/sshmint/sshmint.toml" in block
    assert block.index("useradd") < block.index("-g sshmint")
    assert "install -m 0644 examples/sshmint.service /etc/systemd/system/sshmint.service" in block
    assert "python3 -m venv /opt/sshmint" in block and "/opt/sshmint/bin/pip install ." in block
    unit = (REPO_ROOT / "examples" / "sshmint.service").read_text()
    assert "ExecStart=/opt/sshmint/bin/sshmint serve --config /etc/sshmint/sshmint.toml" in unit
    assert "useradd --system --home-dir /var/lib/sshmint" in block and "User=sshmint" in unit
    assert "systemctl enable --now sshmint" in block


def test_readme_metrics_section_scrapes_a_running_server_with_curl(tmp_path: Path) -> None:
    """README "Metrics" (R169): the documented ``serve`` line, then the documented ``curl``
    lines, print the documented sample. What a test must change: free ports instead of
    2222/8080/9464 (the SSH and HTTP ports are given as flags: the README's line leaves
    them at their defaults) and a private data directory."""
    serve_block, curl_block = readme_bash_blocks("Metrics")
    http_port, metrics_port = free_port(), free_port()
    data = tmp_path / "data"
    serve = (
        serve_block.strip().replace("9464", str(metrics_port)).replace("./sshmint-data", str(data))
    )
    server = subprocess.Popen(
        [
            "bash",
            "-c",
            f"exec {serve} --ssh-listen 127.0.0.1:0 --http-listen 127.0.0.1:{http_port}",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline().strip() for _ in range(3)]
        assert lines[1] == f"metrics listening on 127.0.0.1:{metrics_port}", lines
        script = curl_block.replace("9464", str(metrics_port)).replace("8080", str(http_port))
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(15)
    assert result.returncode == 0, result.stderr
    assert 'sshmint_http_requests_total{code="200",route="healthz"} 1.0' in result.stdout


def _readme_python_blocks(section: str) -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_readme_when_a_token_fails_explains_then_revokes(tmp_path: Path) -> None:
    """README "When a token fails" (R174, R176, R177, docs/lifecycle.md): its bash blocks run
    verbatim in one bash against a live server, with a registered ``~/.ssh/sshmint_api`` and
    ``$TOKEN`` as the walkthrough leaves them; then its Python example explains the revoked
    ``$TOKEN``. What a test must change: free ports, and ``ssh`` options that isolate it from
    the machine's SSH configuration."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    api_key = new_key(home / ".ssh" / "sshmint_api", comment="api")
    data = tmp_path / "data"
    server = SSHMintServer(data, f"sqlite:///{data / 'sshmint.db'}").start()
    try:
        server.add_user("you@example.com", api_key.with_name("sshmint_api.pub"))
        token = mint_exe0(b'{"exp":4000000000}', load_private_key(api_key), "v0@localhost")
        ssh_cmd = " ".join(
            ["ssh", "-p", str(server.ssh_port), *SSH_OPTIONS, "-i", str(api_key), "localhost"]
        )
        explain, revoke = readme_bash_blocks("When a token fails")
        script = (explain + revoke).replace("ssh -p 2222 localhost", ssh_cmd)
        script = script.replace("8080", str(server.http_port))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
        env |= {"HOME": str(home), "TOKEN": token}
        env.pop("SSH_AUTH_SOCK", None)
        shell = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        (python,) = _readme_python_blocks("When a token fails")
        env |= {"SSHMINT_URL": server.http_url, "SSHMINT_KEY": str(api_key)}
        report = subprocess.run(
            [sys.executable, "-c", python], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.stop()
    assert shell.returncode == 0, shell.stderr
    out = shell.stdout
    # The VM's token at /exec: refused, then explained down to its namespace.
    assert out.startswith('{"error":"invalid token"}\ntoken at /exec (v0@localhost): NOT valid\n')
    assert re.search(
        r"^  FAIL  namespace  signed for v0@myapp\.localhost, this server expects v0@localhost$",
        out, flags=re.M,
    )  # fmt: skip
    assert "\n/exec answers: 401 invalid token\n" in out
    # The leaked token: revoked, listed, refused.
    assert re.search(r"^revoked token signed by api \(SHA256:\S+\), expires 2096-", out, re.M)
    assert re.search(r"^[0-9a-f]{12}  revoked \S+  api \(SHA256:", out, flags=re.M)
    assert out.endswith('{"error":"invalid token"}\n'), out
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("fails revoked: revoked "), report.stdout
    assert "exe0." not in server.stderr
