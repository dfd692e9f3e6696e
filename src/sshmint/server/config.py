"""Server options: command line > ``SSHMINT_<NAME>`` environment > TOML file > default.

docs/operations.md#sshmint-serve. The options are read once at start-up into a frozen :class:`ServerConfig`;
every problem (unknown config key, unparsable listen address, bad network) is a
:class:`ConfigError` whose message is one line naming the option and where it came from.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sshmint.duration import parse_duration
from sshmint.errors import DurationError

__all__ = [
    "DEFAULTS",
    "HOST_KEY_FILENAME",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "OPTIONS",
    "OPTION_NAMES",
    "ConfigError",
    "IPNetwork",
    "ListenAddress",
    "OptionSpec",
    "ServerConfig",
    "env_name",
    "format_host_port",
    "load_config",
    "parse_listen_address",
    "parse_networks",
    "parse_timeout",
]

_T = TypeVar("_T")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HOST_KEY_FILENAME = "ssh_host_ed25519_key"


@dataclass(frozen=True)
class OptionSpec:
    """One option of ``sshmint serve``: its name (``--NAME``, env ``SSHMINT_NAME``, config
    key ``NAME``), the metavar and help shown by ``serve --help``, and the default."""

    name: str
    metavar: str
    help: str
    default: str | None = None


# Every option, in help order: the one table that ``serve --help``, the loader and the
# example configuration follow.
OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("data-dir", "DIR", "Data directory (host key, SQLite database).", "./sshmint-data"),
    OptionSpec(
        "db",
        "URL",
        "Database URL: sqlite:///PATH or postgresql://... Default: SQLite in the data dir.",
    ),
    OptionSpec("ssh-listen", "HOST:PORT", "SSH listen address.", "127.0.0.1:2222"),
    OptionSpec("http-listen", "HOST:PORT", "HTTP listen address.", "127.0.0.1:8080"),
    OptionSpec(
        "web-host", "HOST", "Host name of the API (tokens are signed for v0@WEB_HOST).", "localhost"
    ),
    OptionSpec(
        "vm-host", "HOST", "Domain under which VMs are served as NAME.VM_HOST.", "localhost"
    ),
    OptionSpec(
        "upstream-allow", "CIDR,...", "Networks VM upstreams may use.", "127.0.0.0/8,::1/128"
    ),
    OptionSpec("tls-cert", "PATH", "TLS certificate chain (PEM) for the HTTP listener."),
    OptionSpec("tls-key", "PATH", "TLS private key (PEM) for the HTTP listener."),
    OptionSpec(
        "host-key",
        "PATH",
        "SSH host key file (created when missing). Default DATA_DIR/ssh_host_ed25519_key.",
    ),
    OptionSpec(
        "header-timeout",
        "DURATION",
        "Close a connection that has not sent a complete request head in this time.",
        "10s",
    ),
    OptionSpec("body-timeout", "DURATION", "Time a /exec request body may take to arrive.", "10s"),
    OptionSpec("idle-timeout", "DURATION", "Close idle keep-alive connections after this.", "75s"),
    OptionSpec("exec-timeout", "DURATION", "Time limit of a command run through /exec.", "30s"),
    OptionSpec("max-connections", "N", "Most HTTP connections held at once (more wait).", "4096"),
    OptionSpec(
        "upstream-timeout",
        "DURATION",
        "Time a VM upstream may take to send its response head.",
        "60s",
    ),
    OptionSpec("db-timeout", "DURATION", "Deadline of every database call.", "5s"),
    OptionSpec(
        "db-pool-size",
        "N",
        "Most connections this node opens to PostgreSQL (nodes x N <= max_connections).",
        "10",
    ),
    OptionSpec(
        "max-token-lifetime",
        "DURATION|off",
        "Refuse tokens without exp or living longer than this.",
        "off",
    ),
    OptionSpec(
        "metrics-listen",
        "HOST:PORT|off",
        "Serve Prometheus metrics at /metrics on this address.",
        "off",
    ),
    OptionSpec("log-format", "text|json", "Log line format.", "text"),
    OptionSpec(
        "log-level", "LEVEL", "Least severe level logged: debug, info, warning, error.", "info"
    ),
    OptionSpec("config", "PATH", "TOML file with any of these options (keys as named here)."),
)

# Option names as written on the command line (without "--"); the order is the help order.
OPTION_NAMES: tuple[str, ...] = tuple(option.name for option in OPTIONS)

# Defaults of docs/operations.md#sshmint-serve; "db" defaults to SQLite inside the data directory.
DEFAULTS: Mapping[str, str] = {
    option.name: option.default for option in OPTIONS if option.default is not None
}

LOG_FORMATS: tuple[str, ...] = ("text", "json")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
MAX_CONNECTIONS_LIMIT = 1_000_000
# PostgreSQL's own max_connections rarely goes beyond a few thousand.
MAX_POOL_SIZE = 10_000


class ConfigError(Exception):
    """A start-up option is unusable; ``message`` is one line for stderr."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ListenAddress:
    """A ``HOST:PORT`` to bind; ``port`` 0 asks the kernel for a free port."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    db: str
    ssh_listen: ListenAddress
    http_listen: ListenAddress
    web_host: str
    vm_host: str
    upstream_allow: tuple[IPNetwork, ...]
    tls_cert: Path | None = None
    tls_key: Path | None = None
    config: Path | None = None
    # True when ``db`` is the default SQLite file inside ``data_dir`` (docs/storage.md#backends).
    db_is_default: bool = False
    # None: the default file inside ``data_dir`` (see ``host_key_path``).
    host_key: Path | None = None
    # Deadlines in seconds (docs/security.md#slow-and-idle-clients).
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    idle_timeout: float = 75.0
    exec_timeout: float = 30.0
    max_connections: int = 4096
    upstream_timeout: float = 60.0
    db_timeout: float = 5.0
    # The most PostgreSQL connections of this process (docs/storage.md#connections).
    db_pool_size: int = 10
    # Seconds, or None for no lifetime policy (docs/lifecycle.md#lifetime-policy).
    max_token_lifetime: int | None = None
    # None: no metrics listener (docs/operations.md#metrics).
    metrics_listen: ListenAddress | None = None
    log_format: str = "text"
    log_level: str = "info"

    @property
    def host_key_path(self) -> Path:
        return self.host_key if self.host_key is not None else self.data_dir / HOST_KEY_FILENAME


def env_name(option: str) -> str:
    """``data-dir`` -> ``SSHMINT_DATA_DIR`` (docs/operations.md#sshmint-serve)."""
    return "SSHMINT_" + option.upper().replace("-", "_")


def format_host_port(host: str, port: int) -> str:
    """``127.0.0.1:80``; IPv6 hosts in brackets: ``[::1]:80``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``HOST:PORT`` or ``[IPV6]:PORT``; raises ``ValueError`` with the reason."""
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close == -1 or text[close + 1 : close + 2] != ":":
            raise ValueError("expected [IPV6]:PORT")
        host, port_text = text[1:close], text[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("expected HOST:PORT")
        if ":" in host:
            raise ValueError("IPv6 addresses must be in brackets, e.g. [::1]:2222")
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise ValueError("missing or malformed host")
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError("port must be a number from 0 to 65535")
    return ListenAddress(host, int(port_text))


def parse_networks(value: str | list[str]) -> tuple[IPNetwork, ...]:
    """``127.0.0.0/8,::1/128`` (or a TOML list) -> networks; a bare address is a /32 or /128."""
    items = value if isinstance(value, list) else value.split(",")
    networks: list[IPNetwork] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("networks must be strings")
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP network") from None
    return tuple(networks)


def _parse_host_name(text: str) -> str:
    text = text.strip()
    if not text or any(c.isspace() or c in "/@:" for c in text):
        raise ValueError("expected a host name")
    return text


def _parse_db_url(text: str) -> str:
    """A first check of the scheme; the store validates the rest when it opens the URL."""
    text = text.strip()
    scheme, sep, rest = text.partition("://")
    if (
        not sep
        or not rest
        or scheme.split("+")[0].lower() not in ("sqlite", "postgresql", "postgres")
    ):
        # Never echo the value: a PostgreSQL URL may carry a password.
        raise ValueError("expected sqlite:///PATH or postgresql://...")
    return text


def parse_timeout(text: str) -> float:
    """A deadline in the duration grammar of ``ssh-key add --exp`` (``10s``, ``5min``),
    as seconds; ``never`` and empty are refused (every deadline is finite)."""
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise ValueError(exc.message) from None
    if seconds is None:
        raise ValueError("expected a duration such as 10s or 5min")
    return float(seconds)


def _parse_lifetime(text: str) -> int | None:
    """``off`` (no policy) or a duration in seconds (docs/lifecycle.md#lifetime-policy)."""
    if text.strip().lower() == "off":
        return None
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise ValueError(exc.message) from None
    if seconds is None:
        raise ValueError("expected a duration such as 90d, or off")
    return seconds


def _parse_count(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_CONNECTIONS_LIMIT:
        raise ValueError(f"expected a whole number from 1 to {MAX_CONNECTIONS_LIMIT}")
    return int(text)


def _parse_pool_size(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or not 2 <= int(text) <= MAX_POOL_SIZE:
        raise ValueError(f"expected a whole number from 2 to {MAX_POOL_SIZE}")
    return int(text)


def _parse_optional_listen(text: str) -> ListenAddress | None:
    """``off``, ``HOST:PORT`` or ``:PORT`` (loopback)."""
    text = text.strip()
    if text.lower() == "off":
        return None
    if text.startswith(":"):
        text = "127.0.0.1" + text
    return parse_listen_address(text)


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid config file {path}: {exc}") from None
    known = set(OPTION_NAMES) - {"config"}
    values: dict[str, object] = {}
    for key, value in data.items():
        option = key.replace("_", "-")
        if option not in known:
            raise ConfigError(f"unknown config key {key!r} in {path}")
        if option in values:
            raise ConfigError(f"config key {key!r} is given twice in {path}")
        values[option] = value
    return values


def load_config(
    flags: Mapping[str, str | None], environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """Resolve every option (docs/operations.md#sshmint-serve precedence) and validate it.

    ``flags`` maps option names (``"data-dir"``) to command-line values, ``None`` when absent.
    An empty environment variable counts as unset. Options are checked in help order, so
    the first bad one is the one reported.
    """
    for name in flags:
        if name not in OPTION_NAMES:
            raise ConfigError(f"unknown option --{name}")
    sources = _Sources(flags, os.environ if environ is None else environ)
    data_dir = Path(sources.required("data-dir", str)).expanduser()
    db_text, db_source = sources.text("db")
    if db_text is None:
        db = f"sqlite:///{(data_dir / 'sshmint.db').absolute()}"
    else:
        db = _checked("db", db_text, db_source, _parse_db_url)
    ssh_listen = sources.required("ssh-listen", parse_listen_address)
    http_listen = sources.required("http-listen", parse_listen_address)
    web_host = sources.required("web-host", _parse_host_name)
    vm_host = sources.required("vm-host", _parse_host_name)
    upstream_allow = sources.networks("upstream-allow")
    tls_cert, tls_key, host_key = (sources.path(o) for o in ("tls-cert", "tls-key", "host-key"))
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key must be given together")
    timeouts = {option: sources.scalar(option, parse_timeout) for option in _TIMEOUTS}
    return ServerConfig(
        data_dir=data_dir,
        db=db,
        ssh_listen=ssh_listen,
        http_listen=http_listen,
        web_host=web_host,
        vm_host=vm_host,
        upstream_allow=upstream_allow,
        tls_cert=tls_cert,
        tls_key=tls_key,
        config=sources.config_path,
        db_is_default=db_text is None,
        host_key=host_key,
        header_timeout=timeouts["header-timeout"],
        body_timeout=timeouts["body-timeout"],
        idle_timeout=timeouts["idle-timeout"],
        exec_timeout=timeouts["exec-timeout"],
        max_connections=sources.scalar("max-connections", _parse_count),
        upstream_timeout=timeouts["upstream-timeout"],
        db_timeout=timeouts["db-timeout"],
        db_pool_size=sources.scalar("db-pool-size", _parse_pool_size),
        max_token_lifetime=sources.scalar("max-token-lifetime", _parse_lifetime),
        metrics_listen=sources.scalar("metrics-listen", _parse_optional_listen),
        log_format=sources.scalar("log-format", _choice(LOG_FORMATS)),
        log_level=sources.scalar("log-level", _choice(LOG_LEVELS)),
    )


# Options given as plain numbers (no unit).
_COUNTS = frozenset({"max-connections", "db-pool-size"})

_TIMEOUTS = (
    "header-timeout",
    "body-timeout",
    "idle-timeout",
    "exec-timeout",
    "upstream-timeout",
    "db-timeout",
)


class _Sources:
    """Where each option's value comes from, in precedence order: the command line, the
    ``SSHMINT_<NAME>`` environment, the config file, the default."""

    def __init__(self, flags: Mapping[str, str | None], environ: Mapping[str, str]) -> None:
        self._flags = flags
        self._environ = environ
        config_text = flags.get("config") or self._from_env("config")
        self.config_path = Path(config_text) if config_text else None
        self._file = _read_toml(self.config_path) if self.config_path else {}

    def _from_env(self, option: str) -> str | None:
        value = self._environ.get(env_name(option))
        return value if value else None

    def raw(self, option: str) -> tuple[object | None, str]:
        """The winning value for ``option`` and a description of where it came from."""
        flag = self._flags.get(option)
        if flag is not None:
            return flag, f"--{option}"
        env_value = self._from_env(option)
        if env_value is not None:
            return env_value, env_name(option)
        if option in self._file:
            return self._file[option], f"{option} in {self.config_path}"
        return DEFAULTS.get(option), f"default {option}"

    def text(self, option: str) -> tuple[str | None, str]:
        value, source = self.raw(option)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"invalid {source}: expected a string")
        return value, source

    def required(self, option: str, parse: Callable[[str], _T]) -> _T:
        """An option that has a default, parsed."""
        value, source = self.text(option)
        assert value is not None
        return _checked(option, value, source, parse)

    def path(self, option: str) -> Path | None:
        value, _ = self.text(option)
        return Path(value).expanduser() if value else None

    def networks(self, option: str) -> tuple[IPNetwork, ...]:
        """A comma-separated string, or a list in the config file."""
        value, source = self.raw(option)
        if not isinstance(value, str | list):
            raise ConfigError(f"invalid {source}: expected a comma-separated string or a list")
        try:
            return parse_networks(value)
        except ValueError as exc:
            raise ConfigError(f"invalid {source}: {exc}") from None

    def scalar(self, option: str, parse: Callable[[str], _T]) -> _T:
        """An option that TOML may also give as a number (seconds, a count)."""
        value, source = self.raw(option)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value) + ("" if option in _COUNTS else "s")
        if not isinstance(value, str):
            raise ConfigError(f"invalid {source}: expected a string")
        return _checked(option, value, source, parse)


def _checked(option: str, value: str, source: str, parse: Callable[[str], _T]) -> _T:
    try:
        return parse(value)
    except ValueError as exc:
        shown = "" if option == "db" else f" {value!r}"
        raise ConfigError(f"invalid {source}{shown}: {exc}") from None
