"""What a running server shares with its transports: options, store, clock, logger, ports,
observer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sshmint.server.config import ServerConfig
from sshmint.server.infra.observe import Observer

if TYPE_CHECKING:
    from sshmint.server.auth import Authenticator
    from sshmint.server.commands import CommandSettings
    from sshmint.server.store import Store

__all__ = ["ServerRuntime", "unix_now"]


def unix_now() -> int:
    """docs/README.md#conventions: "now" is the current UTC time truncated to whole seconds."""
    return int(time.time())


@dataclass
class ServerRuntime:
    """One per ``sshmint serve`` process.

    ``ssh_port`` and ``http_port`` are the ports actually bound (0 until the listener is up);
    the command layer needs ``http_port`` to build VM URLs (docs/accounts.md#vms).
    """

    config: ServerConfig
    store: Store
    now: Callable[[], int] = unix_now
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("sshmint.server"))
    ssh_port: int = 0
    http_port: int = 0
    # The instrumentation layer: metrics (with --metrics-listen) and audit lines.
    observer: Observer = field(default_factory=Observer)

    @cached_property
    def authenticator(self) -> Authenticator:
        """The one authentication path (and its memo) shared by /exec, the proxy and the
        commands (``exe0-to-exe1``, ``token``), with the lifetime policy of
        ``--max-token-lifetime`` (docs/lifecycle.md#lifetime-policy); it reports every
        token decision to the observer."""
        from sshmint.server.auth import Authenticator, LifetimePolicy

        policy = LifetimePolicy(self.config.max_token_lifetime)
        authenticator = Authenticator(self.store, self.now, self.logger, policy=policy)
        authenticator.observer = self.observer
        return authenticator

    def command_settings(self) -> CommandSettings:
        from sshmint.server.commands import CommandSettings

        return CommandSettings(
            web_host=self.config.web_host,
            vm_host=self.config.vm_host,
            http_port=self.http_port,
            upstream_allow=self.config.upstream_allow,
        )
