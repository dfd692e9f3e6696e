"""``sshmint serve`` as a process: listening lines, signals, configuration, start-up failures,
host key (SPEC Appendix A.1, §6.1, R147–R149, R151)."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from server.harness import Account, SSHMintServer, free_port, host_keys, run_sshmint


def _assert_clean(text: str) -> None:
    assert "Traceback" not in text, text


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Start-up failures: non-zero exit, exactly one line on stderr, nothing on stdout."""
    assert result.returncode != 0
    _assert_clean(result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "listening" not in result.stdout
    return lines[0]


def test_r147_listening_lines_name_the_real_bound_ports(module_server: SSHMintServer) -> None:
    server = module_server
    assert server.stdout.splitlines() == [
        f"ssh listening on 127.0.0.1:{server.ssh_port}",
        f"http listening on 127.0.0.1:{server.http_port}",
    ]
    assert server.ssh_port != 0 and server.http_port != 0
    # Both listeners accept connections once their line is printed.
    assert len(host_keys("127.0.0.1", server.ssh_port)) == 1
    assert httpx.get(f"{server.http_url}/healthz").json() == {"status": "ok"}


def test_r148_r151_sigterm_and_sigint_exit_0_and_the_host_key_survives_restarts(
    server: SSHMintServer, new_account: Callable[..., Account]
) -> None:
    # §6.1: Ed25519, OpenSSH format, mode 0600, in the data directory.
    key_file = server.data_dir / "ssh_host_ed25519_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, text=True, check=True
    ).stdout.split()
    offered = host_keys("127.0.0.1", server.ssh_port)
    assert offered == {f"{derived[0]} {derived[1]}"}
    assert derived[0] == "ssh-ed25519"

    # A live REPL session must not keep the server from stopping.
    account = new_account(server)
    session = server.interactive(account.key, tty=False)
    session.expect("sshmint> ")
    assert server.stop(signal.SIGTERM) == 0
    _assert_clean(server.stderr + server.stdout)
    session.wait()

    server.start()
    assert host_keys("127.0.0.1", server.ssh_port) == offered  # R151
    assert server.ssh(account.key, "whoami").returncode == 0
    assert server.stop(signal.SIGINT) == 0
    _assert_clean(server.stderr + server.stdout)
    assert key_file.stat().st_mode & 0o077 == 0


def test_r149_flag_beats_environment_beats_config_file(
    server_factory: Callable[..., SSHMintServer],
    db_url: str,
    tmp_path: Path,
    new_account: Callable[..., Account],
) -> None:
    file_ssh, file_http, env_ssh, env_http, flag_ssh = (free_port() for _ in range(5))
    config = tmp_path / "sshmint.toml"
    # Both spellings of option names are accepted as keys (SPEC A.1).
    config.write_text(
        f'ssh-listen = "127.0.0.1:{file_ssh}"\n'
        f'http_listen = "127.0.0.1:{file_http}"\n'
        'web_host = "file.example"\n'
    )
    server = server_factory(
        db_url,
        ssh_listen=None,
        http_listen=None,
        extra_args=["--config", str(config), "--ssh-listen", f"127.0.0.1:{flag_ssh}"],
        env={
            "SSHMINT_SSH_LISTEN": f"127.0.0.1:{env_ssh}",
            "SSHMINT_HTTP_LISTEN": f"127.0.0.1:{env_http}",
        },
    )
    assert server.ssh_port == flag_ssh  # flag > environment > file
    assert server.http_port == env_http  # environment > file
    # An option set only in the file applies: tokens are signed for v0@<web-host>.
    account = new_account(server)
    result = server.ssh(account.key, "ssh-key", "generate-api-key", "--json")
    assert result.returncode == 0, result.stderr
    assert '"namespace":"v0@file.example"' in result.stdout


def test_r147_r149_config_file_named_by_environment_and_ipv6_lines_in_brackets(
    server_factory: Callable[..., SSHMintServer], tmp_path: Path
) -> None:
    config = tmp_path / "env.toml"
    config.write_text(
        'ssh-listen = "[::1]:0"\nhttp-listen = "[::1]:0"\nupstream-allow = ["127.0.0.0/8"]\n'
    )
    server = server_factory(
        f"sqlite:///{tmp_path / 'c.db'}",
        ssh_listen=None,
        http_listen=None,
        env={"SSHMINT_CONFIG": str(config)},
    )
    assert server.stdout.splitlines() == [
        f"ssh listening on [::1]:{server.ssh_port}",
        f"http listening on [::1]:{server.http_port}",
    ]
    assert len(host_keys("::1", server.ssh_port)) == 1
    assert httpx.get(f"http://[::1]:{server.http_port}/healthz").status_code == 200


def test_r149_unknown_config_key_is_a_startup_error_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('ssh-listen = "127.0.0.1:0"\nlisten_backlog = 5\n')
    result = run_sshmint("serve", "--data-dir", str(tmp_path / "d"), "--config", str(config))
    line = _one_error_line(result)
    assert result.returncode == 1
    assert "listen_backlog" in line
    assert not (tmp_path / "d").exists()  # nothing was started or created


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--ssh-listen", "nonsense"], {}, "--ssh-listen"),
        (["--http-listen", "::1:8080"], {}, "--http-listen"),
        (["--ssh-listen", "127.0.0.1:70000"], {}, "--ssh-listen"),
        ([], {"SSHMINT_UPSTREAM_ALLOW": "127.0.0.0/8,10.0.0.0/33"}, "SSHMINT_UPSTREAM_ALLOW"),
        (["--db", "mysql://u:secret@h/db"], {}, "--db"),
        (["--tls-cert", "/nonexistent.pem"], {}, "--tls-key"),
    ],
)
def test_a1_bad_option_values_fail_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    result = run_sshmint("serve", "--data-dir", str(tmp_path / "d"), *args, env=env)
    line = _one_error_line(result)
    assert named in line
    assert "secret" not in line  # a database password is never echoed


def test_a1_port_in_use_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_sshmint(
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--ssh-listen",
            "127.0.0.1:0",
            "--http-listen",
            f"127.0.0.1:{port}",
        )
    line = _one_error_line(result)
    assert line == f"sshmint: cannot listen on 127.0.0.1:{port}: address already in use"


def test_a1_unreachable_database_fails_with_one_line(tmp_path: Path) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/sshmint"
    result = run_sshmint("serve", "--data-dir", str(tmp_path / "d"), "--db", url)
    line = _one_error_line(result)
    assert line.startswith("sshmint: cannot open database")
    assert "hunter2" not in result.stderr


def test_harness_preload_imports_a_module_before_serving(
    server_factory: Callable[..., SSHMintServer], tmp_path: Path
) -> None:
    """The harness option other suites use to register test-only commands."""
    modules = tmp_path / "mods"
    modules.mkdir()
    (modules / "preload_marker.py").write_text(
        "import sys\nprint('preload_marker imported', file=sys.stderr, flush=True)\n"
    )
    server = server_factory(
        f"sqlite:///{tmp_path / 'p.db'}", preload="preload_marker", pythonpath=[modules]
    )
    assert "preload_marker imported" in server.stderr
    assert server.stop() == 0
