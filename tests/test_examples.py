"""The files under ``examples/``: the configuration (every option of ``sshmint serve``,
commented, loadable, accepted by a real server) and the systemd unit (checked by the real
``systemd-analyze verify`` and ``systemd-analyze security``, which scripts/ensure-test-tools
installs; systemd itself cannot run here).
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from sshmint.server.config import OPTION_NAMES, ListenAddress, load_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "examples" / "sshmint.toml"
EXAMPLE_UNIT = ROOT / "examples" / "sshmint.service"
SSHMINT = Path(sys.executable).with_name("sshmint")
KEY_LINE = re.compile(r"^(# )?([a-z][a-z0-9_-]*) = (.+)$")


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: run scripts/ensure-test-tools (Debian: systemd)"
    return found


def _key_lines(text: str) -> dict[str, tuple[bool, int]]:
    """Option name -> (set, not commented out; its line index)."""
    found: dict[str, tuple[bool, int]] = {}
    for index, line in enumerate(text.splitlines()):
        match = KEY_LINE.match(line)
        if match:
            found[match.group(2)] = (match.group(1) is None, index)
    return found


def test_example_config_loads_with_metrics_on_loopback() -> None:
    config = load_config({"config": str(EXAMPLE_CONFIG)}, {})
    assert config.metrics_listen == ListenAddress("127.0.0.1", 9464)  # docs/operations.md#metrics
    assert config.data_dir == Path("/var/lib/sshmint") and config.db_is_default
    assert config.http_listen == ListenAddress("127.0.0.1", 8080)


def test_example_config_names_and_explains_every_serve_option() -> None:
    """Every option of the table behind ``serve --help`` is in the file (set, or shown
    commented out), right under a comment; ``config`` itself is explained in a comment."""
    text = EXAMPLE_CONFIG.read_text()
    lines = text.splitlines()
    keys = _key_lines(text)
    expected = set(OPTION_NAMES) - {"config"}
    assert set(keys) == expected, set(keys) ^ expected
    for name, (_, index) in keys.items():
        above = next(line for line in reversed(lines[:index]) if not KEY_LINE.match(line))
        assert above.startswith("# ") and len(above) > 4, f"{name} has no comment above it"
    assert "`--config`" in text and "SSHMINT_CONFIG" in text


def test_example_config_with_every_commented_option_switched_on_still_loads(
    tmp_path: Path,
) -> None:
    """The commented-out lines are valid too: switched on, they load with their values."""
    text = EXAMPLE_CONFIG.read_text()
    switched = "\n".join(
        line[2:] if (m := KEY_LINE.match(line)) and m.group(1) else line
        for line in text.splitlines()
    )
    config_file = tmp_path / "all-options.toml"
    config_file.write_text(switched)
    config = load_config({"config": str(config_file)}, {})
    assert config.db.startswith("postgresql://") and config.tls_cert is not None
    assert config.host_key == Path("/var/lib/sshmint/ssh_host_ed25519_key")
    assert config.max_token_lifetime == 90 * 86400


def test_example_config_is_accepted_by_a_real_server(tmp_path: Path) -> None:
    """``sshmint serve --config examples/sshmint.toml`` starts; only what a test must
    change (paths, free ports) is overridden on the command line, which wins (docs/operations.md#sshmint-serve)."""
    from tests.support.harness import SSHMintServer

    server = SSHMintServer(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'data' / 'sshmint.db'}",
        extra_args=["--config", str(EXAMPLE_CONFIG), "--metrics-listen", ":0"],
    )
    server.start()
    try:
        health = httpx.get(f"{server.http_url}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
    finally:
        assert server.stop() == 0


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(EXAMPLE_UNIT.read_text())
    return parser


def test_systemd_unit_runs_sshmint_as_a_dedicated_sandboxed_user() -> None:
    service = _unit()["Service"]
    assert service.get("User") == "sshmint" or service.get("DynamicUser") == "yes"
    assert service["ExecStart"] == (
        "/opt/sshmint/bin/sshmint serve --config /etc/sshmint/sshmint.toml"
    )
    expected = {
        "StateDirectory": "sshmint",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "Restart": "on-failure",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }
    assert {k: service.get(k) for k in expected} == expected
    # Independent of the caller's environment: nothing that could override the file.
    assert not any(k.startswith(("Environment", "PassEnvironment")) for k in service)
    # The unit's state directory is the example configuration's data directory.
    config = load_config({"config": str(EXAMPLE_CONFIG)}, {})
    assert config.data_dir == Path("/var/lib") / service["StateDirectory"]
    assert service["WorkingDirectory"] == str(config.data_dir)


def _installed_copy(tmp_path: Path, replace: tuple[str, str] = ("", "")) -> Path:
    """The unit with ExecStart pointing at this checkout's sshmint (``verify`` checks that
    the program exists)."""
    text = EXAMPLE_UNIT.read_text().replace("/opt/sshmint/bin/sshmint", str(SSHMINT))
    unit = tmp_path / "sshmint.service"
    unit.write_text(text.replace(*replace) if replace[0] else text)
    return unit


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    unit = _installed_copy(tmp_path)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # verify reports unknown or malformed directives as warnings with exit status 0.
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    # The check is live: a misspelt directive in the same unit is reported.
    broken = _installed_copy(tmp_path, ("ProtectSystem=strict", "ProtectSytem=strict"))
    result = subprocess.run(
        [analyze, "verify", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert "ProtectSytem" in result.stderr


def test_systemd_unit_exposure_is_low(tmp_path: Path) -> None:
    """``systemd-analyze security``'s exposure score (0 best, 10 worst) stays at most 2.0;
    the unit scores 1.3 today (the network access it needs is most of the rest)."""
    result = subprocess.run(
        [
            _systemd_analyze(),
            "security",
            "--offline=true",
            "--threshold=20",
            str(_installed_copy(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert "Overall exposure level for sshmint.service" in result.stdout


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def test_readme_several_nodes_shows_the_balancer_examples_as_shipped() -> None:
    """docs/operations.md#several-nodes: the README's section shows ``examples/nginx.conf``
    and ``examples/haproxy.cfg`` verbatim (the files tests/nodes runs), and its node
    settings load, naming every setting the nodes must share."""
    section = _readme_section("Run several nodes")
    for name, language in (("nginx.conf", "nginx"), ("haproxy.cfg", "haproxy")):
        shipped = (ROOT / "examples" / name).read_text()
        assert f"```{language}\n{shipped}```" in section, f"README differs from examples/{name}"
    (settings,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    keys = {line.split(" = ")[0] for line in settings.splitlines() if " = " in line}
    assert {"db", "web-host", "vm-host", "upstream-allow", "host-key", "db-pool-size"} <= keys
    for option in ("`--db`", "`--web-host`", "`--vm-host`", "`--upstream-allow`", "`--host-key"):
        assert option in section
    for topic in ("max_connections", "/healthz", "exe1", "at the same time"):
        assert topic in section


def test_readme_several_nodes_settings_load(tmp_path: Path) -> None:
    section = _readme_section("Run several nodes")
    (settings,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    path = tmp_path / "node.toml"
    path.write_text(settings)
    config = load_config({"config": str(path)}, {})
    assert config.db.startswith("postgresql://") and config.db_pool_size == 10
    assert config.host_key == Path("/etc/sshmint/ssh_host_ed25519_key")
    assert (config.web_host, config.vm_host) == ("api.example.com", "vm.example.com")
