"""The README's offline walkthrough runs verbatim (issue: token core; SPEC §1.10).

The fenced ``bash`` blocks of the "A five-minute walkthrough" section are concatenated and run
in one real bash, from the project root, with ``HOME`` pointing at a fresh directory so the
example key path (``~/.ssh/sshmint_api``) is private to the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_bash_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return re.findall(r"```bash\n(.*?)```", body, flags=re.S)


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
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("valid: signed by SHA256:") == 2, result.stdout
    assert "ssh-ed25519" in result.stdout  # inspect shows the key type


def test_readme_server_walkthrough_from_serve_to_git_clone(tmp_path: Path) -> None:
    """README "Run the server": add-user, ssh, ssh-key add, curl /exec, exe1, VM, git clone.

    The blocks run verbatim in one bash after the offline walkthrough (which defines
    ``$TOKEN``), except for what a test must change: the server is started by the harness on
    free ports instead of ``make serve`` (its first block), the ports 2222/8080/9000 become
    those free ports, and ``ssh -p 2222 localhost`` gains options that isolate it from the
    machine's SSH configuration (OpenSSH reads ``~/.ssh`` from the password database, not
    ``$HOME``).
    """
    from server.harness import SSH_OPTIONS, SSHMintServer, free_port

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    login_key = home / ".ssh" / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", str(login_key)],
        check=True,
    )
    offline = readme_bash_blocks("A five-minute walkthrough")
    server_blocks = readme_bash_blocks("Run the server")
    assert server_blocks[0].strip() == "make serve"
    upstream_port = free_port()
    server = SSHMintServer(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'sshmint.db'}")
    server.start()
    ssh_cmd = " ".join(
        ["ssh", "-p", str(server.ssh_port), *SSH_OPTIONS, "-i", str(login_key), "localhost"]
    )
    script = "\n".join(offline + server_blocks[1:])
    script = (
        script.replace("ssh -p 2222 localhost", ssh_cmd)
        .replace("8080", str(server.http_port))
        .replace("9000", str(upstream_port))
    )
    env = {**os.environ, "HOME": str(home), "SSHMINT_DATA_DIR": str(tmp_path / "data")}
    env.pop("SSH_AUTH_SOCK", None)
    proc = subprocess.Popen(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the README starts a backend with `&`: stop it with the group
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        server.stop()
    assert proc.returncode == 0, err
    assert '"email":"you@example.com"' in out  # curl /exec whoami with the offline token
    assert '"ssh_keys":[' in out  # curl /exec 'ssh-key list' with the exe1 handle
    assert "hello" in out  # git log of the clone made through the proxy
    assert "exe0." not in server.stderr and "exe1." not in server.stderr
