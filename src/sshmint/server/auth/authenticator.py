"""The one authentication path for bearer tokens (docs/tokens.md#validation,
docs/tokens.md#exe1-resolution, docs/lifecycle.md, docs/proxy.md#token-validation-at-the-proxy).

One pipeline of checks, in one order, run three ways:

- ``Authenticator.authenticate(bearer, namespace, vm=None)``: ``POST /exec`` (``vm=None``)
  and the VM proxy (``vm=`` the VM) — stops at the first failure with the documented
  refusal;
- ``Authenticator.check_trade``: ``exe0-to-exe1``, the same checks in the trade's order
  (docs/ssh.md#exe0-to-exe1);
- ``Authenticator.evaluate``: ``token explain`` — the same checks, recording where they
  stop instead of refusing, changing nothing (no ``last_used_at`` write).

The checks, each one method below, named as ``token explain`` reports them:

1. ``format`` — exe1 resolution (a live handle by ``exe1_hash``, unsealed; the stored exe0
   then replaces the bearer string), then the strict parse, steps 1–15
   (:func:`sshmint.token.parse_exe0`);
2. ``claims`` — steps 16–17;
3. ``key`` — the registered key by fingerprint, its owner and this token's revocation,
   read together in one query (:meth:`Store.token_lookup`), step 18; a stored key that
   cannot be used — unreadable text, or a key outside the docs/security.md#key-limits
   limits stored by an older version — counts as not registered (also step 18). When a
   caller is named (``exe0-to-exe1``, ``token explain``), the key must be one of theirs;
4. ``namespace`` — the blob's namespace is the expected one (step 19);
5. ``signature`` — the signature verifies (step 19);
6. ``owner`` — the owner exists and is not locked out (step 20);
7. ``revoked`` — the token is not revoked (docs/lifecycle.md#revoking-one-token; it
   counts as step 18, ``invalid token``);
8. ``key_restrictions`` — the key's stored restrictions are readable (else
   :class:`KeyPermissionsError`, which callers treat as an internal error, never as
   "allowed") and admit the use: not expired and, at a VM, a ``vm``/``tag`` admitting it
   (:class:`KeyRestrictionError`: ``/exec`` answers 403, the proxy "not authenticated");
9. ``policy`` — the lifetime policy (:class:`TokenPolicyError`).

Token failures raise :class:`sshmint.errors.TokenError` carrying the documented message
and its ``cause``. A database error during a read propagates as :class:`StoreError` (the
caller answers 500: fail closed).

Caching: a signature check's result never changes for the same token bytes, namespace and
public key, so it is memoised in a bounded LRU keyed by the three (the token by its hash).
Parsing is a pure function of the token string, unsealing of (handle, sealed bytes), and
decoding a stored key of its text, so those are memoised too. Everything that *can*
change — whether the key is registered, its stored public key and restrictions, the
owner's existence and lock-out, revocations, the claims against the clock, exe1 handles —
is read from the database or the clock on every call (docs/storage.md#backends: no cache
may hide a change). Tokens are never logged; a log line names at most a key fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Final,
    Generic,
    Literal,
    TypeVar,
    get_args,
)

from sshmint.errors import PublicKeyError, TokenError, TokenVerificationError
from sshmint.keys import PublicKey, public_key_from_blob
from sshmint.server.auth.exe1 import exe1_hash, unseal
from sshmint.server.auth.permissions import (
    KeyPermissions,
    KeyRestrictionError,
    PermissionsError,
    key_use_refusal,
    parse_key_permissions,
)
from sshmint.server.auth.policy import NO_POLICY, LifetimePolicy
from sshmint.server.store import VM, SSHKeyRow, Store, StoreError, User
from sshmint.token import (
    EXE1_PREFIX,
    ParsedToken,
    Permissions,
    check_claims,
    is_well_formed_exe1,
    parse_exe0,
    verify_signature,
)
from sshmint.valuetypes import value_type

if TYPE_CHECKING:
    from sshmint.server.infra.observe import Observer

__all__ = [
    "CHECKS",
    "Authenticator",
    "Check",
    "Evaluation",
    "KeyPermissionsError",
    "Presented",
    "Principal",
    "token_digest",
]

Presented = Literal["exe0", "exe1"]
# The checks, named as token explain reports them (docs/lifecycle.md#explaining-a-token).
Check = Literal[
    "format",
    "claims",
    "key",
    "namespace",
    "signature",
    "owner",
    "revoked",
    "key_restrictions",
    "policy",
]
#: The checks of :meth:`Authenticator.authenticate`, in the order it runs them.
CHECKS: Final[tuple[Check, ...]] = get_args(Check)

_SECONDS_PER_DAY = 86400

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class KeyPermissionsError(Exception):
    """The signing key's stored restrictions cannot be read (docs/http-api.md#post-exec step 5: fail closed).

    Carries the key's fingerprint for the server log only.
    """

    def __init__(self, fingerprint: str) -> None:
        super().__init__(f"unreadable stored permissions for key SHA256:{fingerprint}")
        self.fingerprint = fingerprint


@value_type
@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for.

    ``permissions`` are the token's (``cmds``, claims, raw ``ctx``); ``key_permissions``
    the signing key's stored restrictions (docs/permissions.md#key-restrictions); ``presented`` says whether the
    client sent the exe0 itself or an exe1 handle for it.
    """

    user: User
    key: SSHKeyRow
    key_permissions: KeyPermissions
    permissions: Permissions
    token: ParsedToken
    presented: Presented
    # Every key of the user, read with the signing key (``with_user_keys=True``).
    user_keys: tuple[SSHKeyRow, ...] | None = None


class _LRU(Generic[_K, _V]):
    """A small bounded mapping that forgets the least recently used entry."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._data: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def token_digest(token: str) -> str:
    """How a token is known without being kept: the lower-case hex SHA-256 of the exe0
    string (revocations, docs/lifecycle.md#revoking-one-token; the memo keys)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _check_namespace(parsed: ParsedToken, namespace: str) -> None:
    """``namespace``, step 19: the token was signed for the namespace this use expects
    (docs/tokens.md#namespaces); the signature covers it, so a mismatch never verifies."""
    if parsed.sshsig.namespace != namespace.encode("utf-8", "surrogatepass"):
        raise TokenVerificationError(
            "the token is signed for another namespace", 19, "bad_signature"
        )


def _check_owner(user: User | None) -> None:
    """``owner``, step 20: the key's owner exists and is not locked out."""
    if user is None:
        raise TokenVerificationError("the key's owner does not exist", 20, "locked")
    if user.locked:
        raise TokenVerificationError("the key's owner is locked out", 20, "locked")


def _check_revoked(revoked_at: int | None) -> None:
    """``revoked``: the token itself is not revoked (docs/lifecycle.md#revoking-one-token;
    step 18: a revoked token counts as one whose key is unknown)."""
    if revoked_at is not None:
        raise TokenVerificationError("the token is revoked", 18, "revoked")


def _registered_key(row: SSHKeyRow) -> PublicKey:
    """The stored ``"<type> <base64>"`` as a key object (cached by blob in keys.py).

    Validated as a key being registered is, docs/security.md#key-limits limits included, so a row written
    before a limit existed is refused here. Raises :class:`PublicKeyError` (the detail
    is for the server log).
    """
    _type, _, b64 = row.public_key.partition(" ")
    try:
        blob = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PublicKeyError("stored key is not valid base64") from None
    return public_key_from_blob(blob)


class Evaluation:
    """One run of the checks over one bearer string: the input, and what each check found.

    ``check`` names the check being run, so after a failure (``failure``) it names the one
    that failed; the other fields are ``None`` until the check that fills them has run.
    ``token explain`` reads them (docs/lifecycle.md#explaining-a-token).
    """

    __slots__ = (
        "bearer",
        "check",
        "failure",
        "key_permissions",
        "namespace",
        "now",
        "owner_of",
        "parsed",
        "presented",
        "revoked_at",
        "row",
        "token",
        "token_hash",
        "user",
        "user_keys",
        "vm",
        "with_user_keys",
    )

    def __init__(
        self,
        bearer: str,
        namespace: str,
        now: int,
        *,
        vm: VM | None = None,
        owner_of: str | None = None,
        with_user_keys: bool = False,
    ) -> None:
        self.bearer = bearer
        self.namespace = namespace
        self.now = now
        self.vm = vm
        # The caller whose key the token must be signed by (None: anyone's).
        self.owner_of = owner_of
        self.with_user_keys = with_user_keys
        self.check: Check = "format"
        self.failure: Exception | None = None
        self.presented: Presented = "exe0"
        self.token = bearer
        self.token_hash = ""
        self.parsed: ParsedToken | None = None
        self.row: SSHKeyRow | None = None
        self.user: User | None = None
        self.revoked_at: int | None = None
        self.user_keys: tuple[SSHKeyRow, ...] | None = None
        self.key_permissions: KeyPermissions | None = None


class Authenticator:
    """Validates bearer strings against the store; one instance per server process."""

    # Told of every token decision (set by the server's runtime).
    observer: Observer | None = None

    SIGNATURE_CACHE_SIZE = 8192
    PARSE_CACHE_SIZE = 1024
    EXE1_CACHE_SIZE = 1024
    KEY_CACHE_SIZE = 4096

    def __init__(
        self,
        store: Store,
        now: Callable[[], int],
        logger: logging.Logger,
        *,
        policy: LifetimePolicy = NO_POLICY,
    ) -> None:
        self._store = store
        self._now = now
        self._logger = logger
        self.policy = policy
        # Keyed by (token hash, namespace, stored "<type> <base64>" of the key).
        self._signatures: _LRU[tuple[str, str, str], bool] = _LRU(self.SIGNATURE_CACHE_SIZE)
        self._parsed: _LRU[str, ParsedToken] = _LRU(self.PARSE_CACHE_SIZE)
        self._unsealed: _LRU[tuple[bytes, bytes], str] = _LRU(self.EXE1_CACHE_SIZE)
        # Stored "<type> <base64>" → the usable key it decodes to.
        self._keys: _LRU[str, PublicKey] = _LRU(self.KEY_CACHE_SIZE)
        # Keys whose last_used_at write is in progress (at most one write per key).
        self._touching: set[int] = set()

    # -- the three ways to run the checks ------------------------------------------------

    async def authenticate(
        self,
        bearer: str,
        namespace: str,
        *,
        vm: VM | None = None,
        with_user_keys: bool = False,
    ) -> Principal:
        """Every check for ``bearer`` under ``namespace``; the first failure raises.

        ``vm`` is the VM whose proxy the token is presented to (its key restrictions then
        apply, docs/proxy.md#token-validation-at-the-proxy). ``with_user_keys`` also reads
        every key of the user in the same statement (for a command that may list them:
        ``/exec``).

        Raises ``TokenError`` (401 on ``/exec``), :class:`KeyRestrictionError` (403 on
        ``/exec``), :class:`KeyPermissionsError` when the key's stored restrictions are
        unreadable, and ``StoreError`` when the database fails.
        """
        v = Evaluation(bearer, namespace, self._now(), vm=vm, with_user_keys=with_user_keys)
        try:
            await self._run(v)
        except TokenError as exc:
            self._refused(exc)
            raise
        row, user, parsed, key_permissions = v.row, v.user, v.parsed, v.key_permissions
        assert row is not None and user is not None and parsed is not None
        assert key_permissions is not None
        observer = self.observer
        if observer is not None:
            observer.token_accepted(user.user_id, row.fingerprint)
        await self.record_use(row, v.now)
        return Principal(
            user, row, key_permissions, parsed.permissions, parsed, v.presented, v.user_keys
        )

    async def check_trade(self, token: str, namespace: str, user_id: str) -> ParsedToken:
        """``exe0-to-exe1`` (docs/ssh.md#exe0-to-exe1 steps 2–5) on the same checks, in the
        trade's order: format (an exe0 only) → the caller's own key → namespace →
        signature → ``exp`` only (docs/tokens.md#claims trade exception: a future ``nbf``
        may be traded) → revoked → policy (no handle outlives the maximum).

        Raises ``TokenFormatError`` (parse), ``TokenVerificationError`` (key, signature,
        revoked), ``TokenExpiredError``, ``TokenPolicyError``; ``StoreError`` when the
        database fails.
        """
        try:
            return await self._trade_checks(
                Evaluation(token, namespace, self._now(), owner_of=user_id)
            )
        except TokenError as exc:
            self._refused(exc)
            raise

    async def _trade_checks(self, v: Evaluation) -> ParsedToken:
        """:meth:`check_trade`'s checks in the trade's order; the first failure raises."""
        namespace = v.namespace
        v.check = "format"
        parsed = self._read_exe0(v)
        v.check = "key"
        row = await self._find_key(v, parsed)
        v.check = "namespace"
        _check_namespace(parsed, namespace)
        v.check = "signature"
        self._check_signature(parsed, v.token_hash, row, namespace)
        v.check = "claims"
        check_claims(parsed.permissions, v.now, check_nbf=False)
        v.check = "revoked"
        _check_revoked(v.revoked_at)
        v.check = "policy"
        self._check_policy(parsed, v.now)
        return parsed

    def _refused(self, exc: TokenError) -> None:
        """Tell the observer the cause of a refused token (docs/operations.md#metrics)."""
        observer = self.observer
        if observer is not None:
            observer.token_refused(exc.cause)

    async def evaluate(
        self, bearer: str, namespace: str, owner_of: str, *, vm: VM | None = None
    ) -> Evaluation:
        """``token explain`` (docs/lifecycle.md#explaining-a-token): the checks of
        :meth:`authenticate`, run the same way, but a failure is recorded
        (``failure``, ``check``) instead of raised, and nothing is written.

        ``owner_of`` is the caller: a token whose key is not theirs fails the ``key``
        check and no later check runs (what the server holds about another account is
        never consulted). Raises ``StoreError`` when the database fails.
        """
        v = Evaluation(bearer, namespace, self._now(), vm=vm, owner_of=owner_of)
        try:
            await self._run(v)
        except (TokenError, KeyRestrictionError, KeyPermissionsError) as exc:
            v.failure = exc
        return v

    async def read_token(self, bearer: str) -> ParsedToken:
        """The ``format`` check alone: an exe1 handle resolved to its exe0, then the exe0
        parsed (steps 1–15). ``token revoke`` names tokens this way. Raises ``TokenError``;
        ``StoreError`` when the database fails."""
        return await self._read_token(Evaluation(bearer, "", self._now()))

    async def _run(self, v: Evaluation) -> None:
        """The checks in their order; the first failure raises, ``v.check`` naming it."""
        v.check = "format"
        parsed = await self._read_token(v)
        v.check = "claims"
        check_claims(parsed.permissions, v.now)
        v.check = "key"
        row = await self._find_key(v, parsed)
        v.check = "namespace"
        _check_namespace(parsed, v.namespace)
        v.check = "signature"
        self._check_signature(parsed, v.token_hash, row, v.namespace)
        v.check = "owner"
        _check_owner(v.user)
        v.check = "revoked"
        _check_revoked(v.revoked_at)
        v.check = "key_restrictions"
        v.key_permissions = self._check_key_use(row, v.now, v.vm)
        v.check = "policy"
        self._check_policy(parsed, v.now)

    # -- the checks ----------------------------------------------------------------------

    async def _read_token(self, v: Evaluation) -> ParsedToken:
        """``format``: resolve an exe1 handle to its exe0 (docs/tokens.md#exe1-resolution),
        then parse the exe0 (steps 1–15)."""
        if v.bearer.startswith(EXE1_PREFIX):
            v.presented = "exe1"
            v.token = await self._resolve_exe1(v.bearer, v.now)
        return self._read_exe0(v)

    def _read_exe0(self, v: Evaluation) -> ParsedToken:
        """``parse_exe0`` memoised by token hash (parsing is pure in the token string)."""
        token = v.token
        token_hash = v.token_hash = token_digest(token)
        parsed = self._parsed.get(token_hash)
        if parsed is None or parsed.token != token:
            parsed = parse_exe0(token)
            self._parsed.put(token_hash, parsed)
        v.parsed = parsed
        return parsed

    async def _resolve_exe1(self, bearer: str, now: int) -> str:
        """docs/tokens.md#exe1-resolution: the exe0 string a live, well-formed handle stands for."""
        if not is_well_formed_exe1(bearer):
            raise TokenVerificationError("malformed exe1 token", 18, "malformed")
        digest = exe1_hash(bearer)
        sealed = await self._store.exe1_lookup(digest, now)
        if sealed is None:
            raise TokenVerificationError("no live exe1 handle", 18, "unknown_exe1")
        cache_key = (hashlib.sha256(bearer.encode("ascii")).digest(), sealed)
        exe0 = self._unsealed.get(cache_key)
        if exe0 is None:
            exe0 = unseal(bearer, sealed)
            if exe0 is None:  # a sealed value that does not open is a dead handle
                self._logger.warning("exe1 handle %s… does not unseal", bearer[5:9])
                raise TokenVerificationError("exe1 handle does not unseal", 18, "unknown_exe1")
            self._unsealed.put(cache_key, exe0)
        return exe0

    async def _find_key(self, v: Evaluation, parsed: ParsedToken) -> SSHKeyRow:
        """``key``, step 18: the registered key (one of ``v.owner_of``'s when named), read
        with its owner and this token's revocation in one statement; it must be usable."""
        fingerprint = parsed.fingerprint
        if v.with_user_keys:
            caller = await self._store.caller_lookup(fingerprint, v.token_hash)
            if caller is None:
                raise TokenVerificationError(
                    "no registered key has this fingerprint", 18, "unknown_key"
                )
            row, user, revoked_at, v.user_keys = caller
        else:
            found = await self._store.token_lookup(fingerprint, v.token_hash)
            if found is None:
                raise TokenVerificationError(
                    "no registered key has this fingerprint", 18, "unknown_key"
                )
            row, user, revoked_at = found
        if v.owner_of is not None and row.user_id != v.owner_of:
            # Nothing read about another account is kept (docs/lifecycle.md#explaining-a-token).
            raise TokenVerificationError(
                "the signing key is not one of the caller's keys", 18, "unknown_key"
            )
        v.row, v.user, v.revoked_at = row, user, revoked_at
        self._usable_key(row)
        return row

    def _usable_key(self, row: SSHKeyRow) -> PublicKey:
        """The stored key as a key object; one that cannot be used counts as not
        registered (step 18). Memoised by the stored text (decoding is pure in it)."""
        key = self._keys.get(row.public_key)
        if key is None:
            try:
                key = _registered_key(row)
            except PublicKeyError as exc:
                self._logger.error(
                    "key SHA256:%s is stored but unusable, treated as not registered: %s",
                    row.fingerprint,
                    exc.detail,
                )
                raise TokenVerificationError(
                    "the stored key is unusable", 18, "unknown_key"
                ) from None
            self._keys.put(row.public_key, key)
        return key

    def _check_signature(
        self, parsed: ParsedToken, token_hash: str, row: SSHKeyRow, namespace: str
    ) -> None:
        """``signature``, step 19, against the key as stored *now*; memoised per (token,
        namespace, key)."""
        cache_key = (token_hash, namespace, row.public_key)
        ok = self._signatures.get(cache_key)
        if ok is None:
            ok = verify_signature(parsed, self._usable_key(row), namespace)
            self._signatures.put(cache_key, ok)
        if not ok:
            raise TokenVerificationError(
                "signature does not verify under the namespace", 19, "bad_signature"
            )

    def _check_key_use(self, row: SSHKeyRow, now: int, vm: VM | None) -> KeyPermissions:
        """``key_restrictions``: the key's stored restrictions, read, and admitting this
        use (:func:`key_use_refusal`)."""
        try:
            key_permissions = parse_key_permissions(row.permissions)
        except PermissionsError:
            self._logger.error("key SHA256:%s has unreadable stored permissions", row.fingerprint)
            raise KeyPermissionsError(row.fingerprint) from None
        if key_permissions.exp is not None or vm is not None:
            refusal = key_use_refusal(key_permissions, now, vm)
            if refusal is not None:
                raise KeyRestrictionError(refusal)
        return key_permissions

    def _check_policy(self, parsed: ParsedToken, now: int) -> None:
        """``policy``: the token does not outlive ``--max-token-lifetime``."""
        policy = self.policy
        if policy.maximum is not None and policy.refuses(parsed.permissions.exp, now):
            raise policy.error()

    async def record_use(self, row: SSHKeyRow, now: int) -> None:
        """docs/accounts.md#ssh-keys: ``last_used_at`` is the day of the most recent use (one write a day),
        for a token and for an SSH login alike.

        Requests arriving while that write is under way do not queue up behind it with
        writes of their own: the day is being recorded already. A failed write is logged
        and otherwise ignored: it never refuses the use itself.
        """
        day_start = now - now % _SECONDS_PER_DAY
        if row.last_used_at is not None and row.last_used_at >= day_start:
            return
        if row.id in self._touching:
            return
        self._touching.add(row.id)
        try:
            await self._store.touch_key_used(row.id, day_start)
        except StoreError:
            self._logger.warning("could not record use of key SHA256:%s", row.fingerprint)
        finally:
            self._touching.discard(row.id)
