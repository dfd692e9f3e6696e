"""The one instrumentation layer (docs/operations.md#metrics, docs/operations.md#logs): what
the transports report, turned into metrics and log lines.

Hooks, one per place a fact is known:

- the HTTP front end opens a :class:`Scope` for every request (its route, and the VM a
  proxied request is for); the access log closes it once the answer is sent
  (:meth:`Observer.http_request`: requests, durations, rate-limit refusals, /exec
  commands) and writes the access line from it;
- the authentication path reports each token it refuses or accepts
  (:meth:`Observer.token_refused`, :meth:`Observer.token_accepted`): the failure is
  counted under the current scope's transport and the scope learns the cause, or the
  user and key, for the access line;
- the SSH session opens a scope of transport ``ssh`` and reports its login
  (:meth:`Observer.ssh_session`) and each command (:meth:`Observer.ssh_command`: counted,
  and one audit line);
- the proxy times the wait for an upstream's response head (:meth:`Observer.upstream`);
- the store reports each database error (:meth:`Observer.db_error`).

The current scope travels in a context variable: aiohttp runs every request in a task of
its own, and asyncssh every session, so a scope set there is seen by everything the
request or session awaits (the authenticator included) and by nothing else. Without
``--metrics-listen`` the observer keeps no numbers; logs are written either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import Final, TypeVar

from sshmint.errors import FailureCause
from sshmint.server.infra.logs import Event
from sshmint.server.infra.metrics import UNKNOWN_COMMAND, Metrics, Route, Transport

__all__ = ["AUDIT_LOGGER", "Observer", "Scope", "current_scope", "note_command", "open_scope"]

AUDIT_LOGGER: Final = "sshmint.audit"

_T = TypeVar("_T")

# The transport whose authentication a route's requests go through.
_TRANSPORT_OF_ROUTE: Final[dict[Route, Transport | None]] = {
    "exec": "exec",
    "proxy": "proxy",
    "healthz": None,
    "other": None,
}


class Scope:
    """What one HTTP request or one SSH session has shown so far.

    ``route`` (HTTP only) and ``transport`` are fixed when it opens; the rest is learnt on
    the way: ``vm`` (the VM label a proxied request names), ``user_id`` and ``key`` (the
    fingerprint, ``SHA256:...``) of a token that verified, ``auth_failure`` (the cause of
    the latest refused token), ``command`` (the command name /exec resolved, ``unknown``
    for a line naming none, None before resolution), ``refused`` (a request the HTTP
    parser refused: its warning line is its only line).
    """

    __slots__ = (
        "auth_failure",
        "command",
        "key",
        "refused",
        "route",
        "transport",
        "user_id",
        "vm",
    )

    def __init__(self, route: Route, transport: Transport | None) -> None:
        self.route: Route = route
        self.transport = transport
        self.vm: str | None = None
        self.user_id: str | None = None
        self.key: str | None = None
        self.auth_failure: FailureCause | None = None
        self.command: str | None = None
        self.refused = False


_SCOPE: ContextVar[Scope | None] = ContextVar("sshmint_scope", default=None)


def open_scope(route: Route, transport: Transport | None = None) -> Scope:
    """Start the scope of the running request or session (see the module docstring).
    HTTP passes its route (the transport follows from it); SSH passes ``"other"`` and
    ``transport="ssh"``."""
    scope = Scope(route, transport or _TRANSPORT_OF_ROUTE[route])
    _SCOPE.set(scope)
    return scope


def current_scope() -> Scope | None:
    return _SCOPE.get()


def note_command(name: str | None) -> None:
    """/exec resolved its command line to ``name`` (a command of the tree), or to none."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.command = name or UNKNOWN_COMMAND


class Observer:
    """Turns reports into metrics (when ``metrics`` is given) and audit lines."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._audit = logging.getLogger(AUDIT_LOGGER)

    # -- the authentication path -----------------------------------------------------------

    def token_refused(self, cause: FailureCause) -> None:
        scope = _SCOPE.get()
        if scope is None:
            return
        scope.auth_failure = cause
        if self.metrics is not None and scope.transport is not None:
            self.metrics.auth_failure(scope.transport, cause)

    def token_accepted(self, user_id: str, fingerprint: str) -> None:
        scope = _SCOPE.get()
        if scope is not None:
            scope.user_id = user_id
            scope.key = f"SHA256:{fingerprint}"

    # -- HTTP ------------------------------------------------------------------------------

    def http_request(self, scope: Scope | None, status: int, seconds: float) -> None:
        """One HTTP request answered (``scope`` None: it never reached the front end)."""
        metrics = self.metrics
        if metrics is None:
            return
        route: Route = "other" if scope is None else scope.route
        metrics.http_request(route, status, seconds)
        if route == "exec":
            assert scope is not None
            if status == 429:  # docs/http-api.md#post-exec: only step 7 answers 429
                metrics.rate_limited += 1
            if scope.command is not None:
                metrics.command("exec", scope.command, status == 200)

    async def upstream(self, call: Awaitable[_T]) -> _T:
        """``call``'s result: the wait for an upstream's response head, timed; a failure
        (unreachable, closed, timed out) is counted."""
        metrics = self.metrics
        if metrics is None:
            return await call
        started = time.perf_counter()
        try:
            result = await call
        except Exception:
            metrics.upstream_errors += 1
            raise
        metrics.upstream_duration.observe(time.perf_counter() - started)
        return result

    # -- the store -------------------------------------------------------------------------

    def db_error(self) -> None:
        if self.metrics is not None:
            self.metrics.db_errors += 1

    # -- SSH -------------------------------------------------------------------------------

    def ssh_session(self, accepted: bool, cause: FailureCause | None = None) -> None:
        """A session's login: accepted, or refused for ``cause`` (also an auth failure)."""
        if self.metrics is None:
            return
        self.metrics.ssh_session(accepted)
        if cause is not None:
            self.metrics.auth_failure("ssh", cause)

    def ssh_command(
        self,
        *,
        user_id: str,
        fingerprint: str,
        command: str | None,
        exit_status: int,
        seconds: float,
        remote: str,
    ) -> None:
        """One SSH command line: counted, and one audit line — never its arguments, which
        may hold a token (``exe0-to-exe1 TOKEN``)."""
        if self.metrics is not None:
            self.metrics.command("ssh", command, exit_status == 0)
        if self._audit.isEnabledFor(logging.INFO):
            self._audit.info(
                Event(
                    "ssh command",
                    {
                        "user_id": user_id,
                        "key": f"SHA256:{fingerprint}",
                        "command": command or UNKNOWN_COMMAND,
                        "exit_status": exit_status,
                        "duration_ms": round(seconds * 1000, 3),
                        "remote": remote,
                    },
                )
            )
