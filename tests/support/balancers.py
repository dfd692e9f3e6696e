"""Real load balancers in front of sshmint nodes, run from the files under ``examples/``:
nginx (HTTP, and SSH through its stream module) and HAProxy (both, with active checks of
``/healthz``).

The example files name example addresses (nodes ``10.0.0.11`` and ``10.0.0.12``, HTTP on
8080 and SSH on 2222; the balancer on ``:80`` and ``:2222``) and system paths (pid file,
logs). :func:`render_nginx` and :func:`render_haproxy` replace exactly those with the
nodes' free ports and a temporary directory, and nothing else; every replaced text must
be in the file, so an example that changes shape fails here instead of testing something
else. The processes run in the foreground (no daemon) and are stopped at teardown.

- ``Balancer.start()`` waits until both front ports accept connections;
- ``http_url``, ``ssh_port``; ``stop()`` (safe to call twice); ``log()`` for assertions.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.harness import REPO_ROOT
from tests.support.polling import free_port, port_accepts

__all__ = [
    "EXAMPLE_HAPROXY",
    "EXAMPLE_NGINX",
    "Balancer",
    "NodePorts",
    "haproxy",
    "nginx",
    "render_haproxy",
    "render_nginx",
]

EXAMPLE_NGINX = REPO_ROOT / "examples" / "nginx.conf"
EXAMPLE_HAPROXY = REPO_ROOT / "examples" / "haproxy.cfg"
# The example nodes, in the order of the examples' server lines.
_EXAMPLE_NODES = ("10.0.0.11", "10.0.0.12")


@dataclass(frozen=True)
class NodePorts:
    """Where one node listens on 127.0.0.1."""

    http: int
    ssh: int


def _substitute(text: str, replacements: Sequence[tuple[str, str]]) -> str:
    for old, new in replacements:
        assert old in text, f"the example no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def _node_addresses(nodes: Sequence[NodePorts]) -> list[tuple[str, str]]:
    pairs = []
    for example, node in zip(_EXAMPLE_NODES, nodes, strict=True):
        pairs += [(f"{example}:8080", f"127.0.0.1:{node.http}")]
        pairs += [(f"{example}:2222", f"127.0.0.1:{node.ssh}")]
    return pairs


def render_nginx(nodes: Sequence[NodePorts], http_port: int, ssh_port: int, run: Path) -> str:
    """``examples/nginx.conf`` for these nodes, listening on 127.0.0.1, files in ``run``."""
    temp_paths = "".join(
        f"\n    {kind}_temp_path {run}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return _substitute(
        EXAMPLE_NGINX.read_text(),
        [
            *_node_addresses(nodes),
            ("listen 80 default_server;", f"listen 127.0.0.1:{http_port} default_server;"),
            ("listen 2222;", f"listen 127.0.0.1:{ssh_port};"),
            ("pid /run/nginx.pid;", f"pid {run}/nginx.pid;"),
            ("error_log /var/log/nginx/error.log;", f"error_log {run}/error.log;"),
            ("access_log /var/log/nginx/access.log;", f"access_log {run}/access.log;"),
            # Keep the system's nginx directories out of it (and usable without root).
            ("\nhttp {", "\nhttp {" + temp_paths),
        ],
    )


def render_haproxy(nodes: Sequence[NodePorts], http_port: int, ssh_port: int) -> str:
    """``examples/haproxy.cfg`` for these nodes, listening on 127.0.0.1."""
    checks = [
        (f"127.0.0.1:{node.ssh} check port 8080", f"127.0.0.1:{node.ssh} check port {node.http}")
        for node in nodes
    ]
    return _substitute(
        _substitute(
            EXAMPLE_HAPROXY.read_text(),
            [
                *_node_addresses(nodes),
                ("bind :80\n", f"bind 127.0.0.1:{http_port}\n"),
                ("bind :2222\n", f"bind 127.0.0.1:{ssh_port}\n"),
            ],
        ),
        checks,
    )


def _program(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    assert found, f"{name} is missing: run scripts/ensure-test-tools (as root; make test does)"
    return found


class Balancer:
    """One balancer process in the foreground, from a rendered configuration."""

    def __init__(self, argv: list[str], http_port: int, ssh_port: int, log_path: Path) -> None:
        self.argv = argv
        self.http_port = http_port
        self.ssh_port = ssh_port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 15.0) -> Balancer:
        with open(self.log_path.with_suffix(".out"), "wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not (port_accepts(self.http_port) and port_accepts(self.ssh_port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.argv[0]} did not start: {self.log()}")
            time.sleep(0.02)
        return self

    def log(self) -> str:
        texts = [
            path.read_text(errors="replace")
            for path in (self.log_path, self.log_path.with_suffix(".out"))
            if path.exists()
        ]
        return "\n".join(texts)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def nginx(nodes: Sequence[NodePorts], run: Path) -> Balancer:
    """nginx from ``examples/nginx.conf`` on free ports; files (config, logs) in ``run``."""
    run.mkdir(parents=True, exist_ok=True)
    http_port, ssh_port = free_port(), free_port()
    conf = run / "nginx.conf"
    conf.write_text(render_nginx(nodes, http_port, ssh_port, run))
    argv = [_program("nginx"), "-p", str(run), "-c", str(conf), "-e", str(run / "error.log")]
    return Balancer([*argv, "-g", "daemon off;"], http_port, ssh_port, run / "error.log")


def haproxy(nodes: Sequence[NodePorts], run: Path) -> Balancer:
    """HAProxy from ``examples/haproxy.cfg`` on free ports, in the foreground."""
    run.mkdir(parents=True, exist_ok=True)
    http_port, ssh_port = free_port(), free_port()
    conf = run / "haproxy.cfg"
    conf.write_text(render_haproxy(nodes, http_port, ssh_port))
    return Balancer(
        [_program("haproxy"), "-db", "-f", str(conf)], http_port, ssh_port, run / "haproxy.log"
    )
