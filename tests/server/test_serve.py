"""``sshmint serve`` as a process: listening lines, signals, configuration, start-up failures,
host key (docs/operations.md#sshmint-serve, docs/ssh.md#connection-and-login, R147–R149, R151)."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sshmint.server.config import ConfigError, load_config, parse_listen_address
from tests.support.harness import SSHMintServer, host_keys, run_sshmint
from tests.support.keys import Account
from tests.support.polling import free_port, wait_until
from tests.support.server_fixtures import ServerFactory


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


def test_r147_r148_r151_listening_lines_signals_and_a_host_key_that_survives_restarts(
    server: SSHMintServer, new_account: Callable[..., Account]
) -> None:
    # R147: one line per listener with the real bound port, printed once it accepts; then
    # the start-up report (R167, tests/server/test_observability.py), and nothing else.
    assert server.stdout.splitlines()[:2] == [
        f"ssh listening on 127.0.0.1:{server.ssh_port}",
        f"http listening on 127.0.0.1:{server.http_port}",
    ]
    assert wait_until(lambda: "ssh host key SHA256:" in server.stdout)
    assert [line.split()[0] for line in server.stdout.splitlines()[2:]] == [
        "data",
        "database",
        "ssh",
    ]
    assert server.ssh_port != 0 and server.http_port != 0
    assert httpx.get(f"{server.http_url}/healthz").json() == {"status": "ok"}

    # docs/ssh.md#connection-and-login: Ed25519, OpenSSH format, mode 0600, in the data directory.
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
    session.kill()  # release the pipes

    server.start()
    assert host_keys("127.0.0.1", server.ssh_port) == offered  # R151
    assert server.ssh(account.key, "whoami").returncode == 0
    assert server.stop(signal.SIGINT) == 0
    _assert_clean(server.stderr + server.stdout)
    assert key_file.stat().st_mode & 0o077 == 0


def test_r149_flag_beats_environment_beats_config_file(
    server_factory: ServerFactory,
    tmp_path: Path,
    new_account: Callable[..., Account],
) -> None:
    """Options are resolved before any database is opened, so one backend suffices."""
    file_ssh, file_http, env_ssh, env_http, flag_ssh = (free_port() for _ in range(5))
    config = tmp_path / "sshmint.toml"
    # Both spellings of option names are accepted as keys (docs/operations.md#sshmint-serve).
    config.write_text(
        f'ssh-listen = "127.0.0.1:{file_ssh}"\n'
        f'http_listen = "127.0.0.1:{file_http}"\n'
        'web_host = "file.example"\n'
    )
    server = server_factory(
        f"sqlite:///{tmp_path / 'p.db'}",
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
    server_factory: ServerFactory, tmp_path: Path
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
    assert server.stdout.splitlines()[:2] == [
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
    # The listeners bind before the database is opened: ports 0, never the defaults.
    listen = ["--ssh-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    result = run_sshmint("serve", "--data-dir", str(tmp_path / "d"), "--db", url, *listen)
    line = _one_error_line(result)
    assert line.startswith("sshmint: cannot open database")
    assert "hunter2" not in result.stderr


# -- option parsing in-process (docs/operations.md#sshmint-serve); the process-level tests above cover the wiring --


def test_a1_defaults_and_the_default_database_inside_the_data_directory(tmp_path: Path) -> None:
    config = load_config({}, {})
    assert config.data_dir == Path("./sshmint-data")
    assert config.db == f"sqlite:///{Path('./sshmint-data/sshmint.db').absolute()}"
    assert config.db_is_default
    assert (str(config.ssh_listen), str(config.http_listen)) == ("127.0.0.1:2222", "127.0.0.1:8080")
    assert (config.web_host, config.vm_host) == ("localhost", "localhost")
    assert [str(n) for n in config.upstream_allow] == ["127.0.0.0/8", "::1/128"]
    moved = load_config({"data-dir": str(tmp_path)}, {})
    assert moved.db == f"sqlite:///{tmp_path / 'sshmint.db'}"


def test_r149_precedence_per_option_and_empty_environment_values_count_as_unset(
    tmp_path: Path,
) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        'vm_host = "file.vm"\nweb-host = "file.web"\nupstream-allow = ["10.1.0.0/16"]\n'
    )
    env = {"SSHMINT_CONFIG": str(toml), "SSHMINT_WEB_HOST": "env.web", "SSHMINT_VM_HOST": ""}
    config = load_config({"upstream-allow": "192.168.0.0/24, ::1"}, env)
    assert (config.web_host, config.vm_host) == ("env.web", "file.vm")
    assert [str(n) for n in config.upstream_allow] == ["192.168.0.0/24", "::1/128"]
    assert config.config == toml


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:2222", ("::1", 2222)),
        ("localhost:65535", ("localhost", 65535)),
        (" 0.0.0.0:80 ", ("0.0.0.0", 80)),
    ],
)
def test_a1_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    address = parse_listen_address(text)
    assert (address.host, address.port) == expected
    assert parse_listen_address(str(address)) == address  # printed form round-trips


@pytest.mark.parametrize(
    "text", ["127.0.0.1", "::1:22", "[::1]22", "[not-v6]:22", ":22", "h:65536", "h:-1", "h:２２"]
)
def test_a1_malformed_listen_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen_address(text)


def test_a1_config_file_problems_are_one_line_errors(tmp_path: Path) -> None:
    cases = {
        'data-dir = "a"\ndata_dir = "b"\n': "given twice",
        "ssh-listen = 2222\n": "expected a string",
        "upstream-allow = 5\n": "upstream-allow",
        "[section]\nx = 1\n": "unknown config key 'section'",
        "not toml at all": "invalid config file",
    }
    for text, fragment in cases.items():
        toml = tmp_path / "bad.toml"
        toml.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_config({"config": str(toml)}, {})
        assert fragment in caught.value.message and "\n" not in caught.value.message
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config({"config": str(tmp_path / "missing.toml")}, {})
