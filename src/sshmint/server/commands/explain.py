"""``token explain`` (docs/lifecycle.md#explaining-a-token): why a token does or does not work.

Nothing here decides whether a token is valid. The checks are the server's own:

- :meth:`Authenticator.evaluate` runs the token path's pipeline (format … policy) exactly
  as ``/exec`` and the proxy run it, recording where it stops instead of refusing;
- ``vm_access`` asks :func:`has_vm_access`, the proxy's access rule;
- ``command`` splits and resolves the line as ``/exec`` does (steps 11–14) and asks
  :func:`command_refusal`, ``/exec``'s steps 15–16.

This module renders what they found: one line (or JSON member) per check up to the first
failure, each with a detail. It changes nothing and consumes no rate limit.

Disclosure: until the ``key`` check has found the token's key among the caller's keys, the
report shows no more than ``/exec`` tells anyone who presents the token (a parse or claim
message, without dates) plus the key's fingerprint, which the token carries in the clear;
for any other token the ``key`` check fails with ``key is not registered to your
account`` and no later check runs. Keys a tag-scoped caller cannot see count as not theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sshmint.duration import rfc3339
from sshmint.errors import (
    TokenError,
    TokenExpiredError,
    TokenFormatError,
    TokenVerificationError,
)
from sshmint.keys import format_fingerprint
from sshmint.server.auth import (
    CHECKS,
    Evaluation,
    KeyRestrictionError,
    Refusal,
    command_refusal,
    has_vm_access,
)
from sshmint.server.commands.access import reduce, visible_keys
from sshmint.server.commands.context import CommandContext
from sshmint.server.commands.runner import resolve_command_name
from sshmint.server.commands.tree import CommandError, Output
from sshmint.server.commands.words import CommandSyntaxError, split_command_line
from sshmint.server.store import VM
from sshmint.server.store.validation import is_valid_vm_name
from sshmint.strictjson import quote

__all__ = ["NOT_YOURS", "explain_token"]

NOT_YOURS = "key is not registered to your account"
_PROXY_UNAUTHENTICATED = "401 invalid or missing authentication"


@dataclass(frozen=True, slots=True)
class _Result:
    check: str
    ok: bool
    detail: str
    # What the server answers when this check fails (text output only).
    answer: str = ""


def _span(seconds: int) -> str:
    """A rough length of time: ``45s``, ``12min``, ``3h``, ``2d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _relative(when: int, now: int) -> str:
    return f"{_span(when - now)} from now" if when >= now else f"{_span(now - when)} ago"


def _printable(text: str) -> str:
    """Token text as shown to a person: as is when plain, else quoted (no control bytes)."""
    return text if text.isprintable() and " " not in text else quote(text)


class _Explainer:
    """The findings of one evaluation, as checks with details."""

    def __init__(self, ctx: CommandContext, v: Evaluation, owned: bool, at_vm: VM | None) -> None:
        self.ctx = ctx
        self.v = v
        self.owned = owned
        self.at_vm = at_vm

    # -- passed checks -------------------------------------------------------------------

    def passed(self, check: str) -> str:
        v = self.v
        row, perms = v.row, v.key_permissions
        if check == "format" and v.presented == "exe1":
            return "exe1 handle for a well-formed exe0 token"
        if check == "claims":
            return self._claims_ok()
        if check == "key" and row is not None:
            fingerprint = format_fingerprint(row.fingerprint)
            return f"key {quote(row.name)} ({fingerprint}) is registered to your account"
        if check == "namespace":
            return f"signed for {v.namespace}, as this server expects"
        if check == "key_restrictions" and perms is not None:
            expiry = "does not expire" if perms.exp is None else f"expires {rfc3339(perms.exp)}"
            where = "" if self.at_vm is None else f", and may be used at VM {self.at_vm.name}"
            return f"the key {expiry}{where}"
        if check == "policy":
            policy = self.ctx.authenticator.policy
            if policy.maximum is None:
                return "no lifetime policy on this server"
            return f"expires within this server's maximum lifetime of {policy.text}"
        return _PASSED[check]

    def _claims_ok(self) -> str:
        parsed = self.v.parsed
        if parsed is None or not self.owned:
            return "not expired and already valid"
        exp, nbf = parsed.permissions.exp, parsed.permissions.nbf
        text = (
            "never expires"
            if exp is None
            else f"expires {rfc3339(exp)} ({_relative(exp, self.v.now)})"
        )
        return text if nbf is None else f"{text}; valid since {rfc3339(nbf)}"

    # -- the failed check ----------------------------------------------------------------

    def failed(self, check: str, failure: Exception) -> str:
        v = self.v
        if check == "format":
            if isinstance(failure, TokenFormatError):
                return failure.message
            if isinstance(failure, TokenVerificationError) and failure.cause == "malformed":
                return "not a well-formed exe1 token (exe1. and 20 to 40 characters A-Z, 2-7)"
            return "exe1 handle is unknown or has expired"
        if check == "claims":
            return self._claims_failed(failure)
        if check == "key":
            if v.row is not None and self.owned:  # the caller's own key, stored unusable
                return "the key is registered but cannot be used (it breaks the key limits)"
            return NOT_YOURS
        if check == "namespace" and v.parsed is not None:
            signed = _printable(v.parsed.sshsig.namespace.decode("utf-8", "replace"))
            return f"signed for {signed}, this server expects {v.namespace}"
        if check == "owner":
            return "your account is locked"
        if check == "revoked" and v.revoked_at is not None:
            return f"revoked {rfc3339(v.revoked_at)}"
        if check == "key_restrictions":
            if isinstance(failure, KeyRestrictionError):
                return failure.detail
            return "the key's stored restrictions cannot be read"
        if check == "policy" and v.parsed is not None:
            return self._policy_failed(failure)
        return _FAILED[check]

    def _claims_failed(self, failure: Exception) -> str:
        message = failure.message if isinstance(failure, TokenError) else str(failure)
        short = message.removeprefix("invalid token: ")
        parsed = self.v.parsed
        if parsed is None or not self.owned:
            return short  # what /exec tells anyone presenting the token
        exp, nbf = parsed.permissions.exp, parsed.permissions.nbf
        when = exp if isinstance(failure, TokenExpiredError) else nbf
        if when is None:
            return short
        return f"{short} ({rfc3339(when)}, {_relative(when, self.v.now)})"

    def _policy_failed(self, failure: Exception) -> str:
        assert self.v.parsed is not None
        exp = self.v.parsed.permissions.exp
        short = str(failure).removeprefix("invalid token: ")
        if exp is None:
            return f"{short}: it never expires"
        return f"{short}: it expires {rfc3339(exp)} ({_relative(exp, self.v.now)})"

    def answer(self, failure: Exception) -> str:
        """What the real path answers the token with (the text output names it)."""
        if self.at_vm is not None:
            if self.at_vm.share == "public":
                return "forwarded without identity (the VM is public)"
            return _PROXY_UNAUTHENTICATED
        if isinstance(failure, TokenError):
            return f"401 {failure.message}"
        if isinstance(failure, KeyRestrictionError):
            return f"403 {failure.message}"
        return "500 internal error"


_PASSED = {
    "format": "well-formed exe0 token",
    "key": "the key is registered to your account",
    "namespace": "signed for the namespace this server expects",
    "signature": "the signature verifies",
    "owner": "your account is not locked",
    "revoked": "not revoked",
    "key_restrictions": "the key's restrictions allow this use",
}
_FAILED = {
    "signature": "the signature does not verify: the token was altered after it was signed",
    "revoked": "the token is revoked",
    "policy": "the token outlives this server's lifetime policy",
}


async def _proxied_vm(ctx: CommandContext, name: str) -> VM:
    """The VM as its proxy sees it (docs/proxy.md#unknown-vms): a VM whose name is invalid,
    that does not exist or whose owner is locked out is not found, as it is there."""
    found = await ctx.store.proxy_lookup(name) if is_valid_vm_name(name) else None
    if found is None or found[1] is None or found[1].locked:
        raise CommandError(f"VM {quote(name)} not found")
    return found[0]


async def _vm_access(ctx: CommandContext, v: Evaluation, vm: VM) -> _Result:
    """``vm_access``: the proxy's access rule for this token's user (docs/proxy.md#access-rules)."""
    user = v.user
    assert user is not None
    if vm.share == "public":
        return _Result("vm_access", True, f"VM {vm.name} is public: every request is forwarded")
    if await has_vm_access(ctx.store, vm, user):
        how = "you own" if vm.owner_user_id == user.user_id else "shared with you:"
        return _Result("vm_access", True, f"{how} VM {vm.name}")
    detail = f"VM {vm.name} is neither yours nor shared with you"
    return _Result("vm_access", False, detail, "403 access denied")


def _command(v: Evaluation, line: str) -> _Result:
    """``command``: would ``/exec`` run this line with this token (steps 11–16)?"""
    parsed, perms = v.parsed, v.key_permissions
    assert parsed is not None and perms is not None
    try:
        words = split_command_line(line.strip())
    except CommandSyntaxError:
        return _Result("command", False, "invalid command syntax", "400 invalid command syntax")
    if not words:
        return _Result("command", False, "missing command", "400 missing command in request body")
    name = resolve_command_name(words)
    if name is None:
        return _Result(
            "command", False, f"{quote(words[0])} is not a command", "404 unknown command"
        )
    refusal: Refusal | None = command_refusal(parsed.permissions, perms, name)
    if refusal is not None:
        return _Result("command", False, refusal.detail, f"403 {refusal.message}")
    return _Result("command", True, f"command {quote(name)} is allowed")


async def explain_token(
    ctx: CommandContext, bearer: str, *, vm: str | None, command: str | None
) -> Output:
    """The report of docs/lifecycle.md#explaining-a-token for ``bearer`` at ``/exec`` or,
    with ``vm``, at that VM's proxy; with ``command``, whether ``/exec`` would run it."""
    settings = ctx.settings
    at_vm: VM | None = None
    if vm is not None:
        name = reduce(ctx, vm)
        at_vm = await _proxied_vm(ctx, name)
        namespace, where = f"v0@{name}.{settings.vm_host}", f"VM {name}'s proxy"
    else:
        namespace, where = f"v0@{settings.web_host}", "/exec"
    v = await ctx.authenticator.evaluate(bearer, namespace, ctx.user.user_id, vm=at_vm)
    seen = {row.fingerprint for row in await visible_keys(ctx)}
    owned = v.parsed is not None and v.parsed.fingerprint in seen
    failure = v.failure
    if v.row is not None and not owned:
        # The caller's key, hidden from a tag-scoped caller (docs/permissions.md#tag-scope):
        # not theirs to explain, as it is not theirs to list.
        v.check, failure = "key", TokenVerificationError("hidden by tag scope", 18, "unknown_key")
    explainer = _Explainer(ctx, v, owned, at_vm)
    results: list[_Result] = []
    for check in CHECKS:
        if failure is not None and check == v.check:
            results.append(
                _Result(check, False, explainer.failed(check, failure), explainer.answer(failure))
            )
            break
        results.append(_Result(check, True, explainer.passed(check)))
    else:
        if at_vm is not None:
            results.append(await _vm_access(ctx, v, at_vm))
        if command is not None:
            results.append(_command(v, command))
    return _output(v, owned, results, namespace, where)


def _output(
    v: Evaluation, owned: bool, results: list[_Result], namespace: str, where: str
) -> Output:
    failed = next((r for r in results if not r.ok), None)
    parsed = v.parsed
    shown = parsed if owned else None
    permissions = None if shown is None else shown.permissions
    data: dict[str, object] = {
        "valid": failed is None,
        "reason": None if failed is None else failed.detail,
        "checks": [{"check": r.check, "ok": r.ok, "detail": r.detail} for r in results],
        "namespace": (None if shown is None else shown.sshsig.namespace.decode("utf-8", "replace")),
        "expected_namespace": namespace,
        "fingerprint": None if parsed is None else format_fingerprint(parsed.fingerprint),
        "exp": None if permissions is None or permissions.exp is None else rfc3339(permissions.exp),
        "nbf": None if permissions is None or permissions.nbf is None else rfc3339(permissions.nbf),
    }
    verdict = "valid" if failed is None else "NOT valid"
    lines = [f"token at {where} ({namespace}): {verdict}"]
    width = max(len(r.check) for r in results)
    lines += [
        f"  {'ok  ' if r.ok else 'FAIL'}  {r.check.ljust(width)}  {r.detail}" for r in results
    ]
    if failed is None:
        lines.append(f"{where}: accepted")
    else:
        lines.append(f"{where} answers: {failed.answer}")
    return Output(data, "\n".join(lines))
