"""The one authentication path for bearer tokens (docs/tokens.md#validation, docs/tokens.md#exe1-resolution, docs/accounts.md#key-removal-and-revocation, docs/proxy.md#token-validation-at-the-proxy).

``Authenticator.authenticate(bearer, namespace)`` is used by ``POST /exec`` and the VM
proxy alike (``check_trade`` runs the same steps in ``exe0-to-exe1``'s order):

1. exe1 resolution (docs/tokens.md#exe1-resolution): shape check, live handle by ``exe1_hash``, unseal; the stored
   exe0 string then replaces the bearer string;
2. strict parse, steps 1–15 (:func:`sshmint.token.parse_exe0`);
3. claims, steps 16–17;
4. the registered key by fingerprint and its owner, read together in one query
   (:meth:`Store.auth_lookup`), step 18; a stored key that cannot be used — unreadable
   text, or a key outside the docs/security.md#key-limits limits stored by an older version — counts as
   not registered (also step 18, checked with the signature: it is never verified);
5. the signature under the expected namespace, step 19;
6. the owner exists and is not locked out, step 20;
7. the key's stored restrictions are parsed (unreadable text → :class:`KeyPermissionsError`,
   which callers treat as an internal error, never as "allowed").

Failures raise :class:`sshmint.errors.TokenError` carrying the documented message. A database
error during the key/owner read propagates as :class:`StoreError` (the caller answers
500: fail closed).

Caching: a signature check's result never changes for the same token bytes, namespace and
public key, so it is memoised in a bounded LRU keyed by the three (the token by digest).
Parsing is a pure function of the token string and unsealing of (handle, sealed bytes),
so both are memoised too. Everything that *can* change — whether the key is registered,
its stored public key and restrictions, the owner's existence and lock-out, the claims
against the clock, exe1 handles — is read from the database or the clock on every call
(docs/storage.md#backends: no cache may hide a change). Tokens are never logged; a log line names at
most a key fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Concatenate, Generic, Literal, ParamSpec, TypeVar

from sshmint.errors import PublicKeyError, TokenError, TokenVerificationError
from sshmint.keys import PublicKey, public_key_from_blob
from sshmint.server.auth.exe1 import exe1_hash, unseal
from sshmint.server.auth.permissions import KeyPermissions, PermissionsError, parse_key_permissions
from sshmint.server.store import SSHKeyRow, Store, StoreError, User
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

__all__ = ["Authenticator", "KeyPermissionsError", "Presented", "Principal"]

Presented = Literal["exe0", "exe1"]

_SECONDS_PER_DAY = 86400

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")
_P = ParamSpec("_P")
_R = TypeVar("_R")


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


def _observed(
    method: Callable[Concatenate[Authenticator, _P], Awaitable[_R]],
) -> Callable[Concatenate[Authenticator, _P], Awaitable[_R]]:
    """Report a method's outcome to ``self.observer`` (docs/operations.md#metrics): the
    cause of a refused token, or who a valid one speaks for."""

    @functools.wraps(method)
    async def observed(self: Authenticator, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        observer = self.observer
        if observer is None:
            return await method(self, *args, **kwargs)
        try:
            result = await method(self, *args, **kwargs)
        except TokenError as exc:
            observer.token_refused(exc.cause)
            raise
        if isinstance(result, Principal):
            observer.token_accepted(result.user.user_id, result.key.fingerprint)
        return result

    return observed


class Authenticator:
    """Validates bearer strings against the store; one instance per server process."""

    # Told of every token decision (set by the server's runtime).
    observer: Observer | None = None

    SIGNATURE_CACHE_SIZE = 8192
    PARSE_CACHE_SIZE = 1024
    EXE1_CACHE_SIZE = 1024

    def __init__(self, store: Store, now: Callable[[], int], logger: logging.Logger) -> None:
        self._store = store
        self._now = now
        self._logger = logger
        # Keyed by (token digest, namespace, stored "<type> <base64>" of the key).
        self._signatures: _LRU[tuple[bytes, str, str], bool] = _LRU(self.SIGNATURE_CACHE_SIZE)
        self._parsed: _LRU[bytes, ParsedToken] = _LRU(self.PARSE_CACHE_SIZE)
        self._unsealed: _LRU[tuple[bytes, bytes], str] = _LRU(self.EXE1_CACHE_SIZE)
        # Keys whose last_used_at write is in progress (at most one write per key).
        self._touching: set[int] = set()

    @_observed
    async def authenticate(
        self, bearer: str, namespace: str, *, with_user_keys: bool = False
    ) -> Principal:
        """docs/tokens.md#validation/docs/tokens.md#exe1-resolution for ``bearer`` under ``namespace``; raises ``TokenError``.

        ``with_user_keys`` also reads every key of the user in the same statement (for a
        command that may list them: ``/exec``).

        Raises :class:`KeyPermissionsError` when the token is valid but the key's stored
        restrictions are unreadable, and ``StoreError`` when the database fails.
        """
        now = self._now()
        presented: Presented = "exe0"
        token = bearer
        if bearer.startswith(EXE1_PREFIX):
            presented = "exe1"
            token = await self._resolve_exe1(bearer, now)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        parsed = self._parse(token, digest)  # steps 1–15
        check_claims(parsed.permissions, now)  # steps 16–17
        # Steps 18 and 20: one read.
        user_keys: tuple[SSHKeyRow, ...] | None = None
        if with_user_keys:
            caller = await self._store.caller_lookup(parsed.fingerprint)
            if caller is None:  # step 18
                raise TokenVerificationError(
                    "no registered key has this fingerprint", 18, "unknown_key"
                )
            row, user, user_keys = caller
        else:
            found = await self._store.auth_lookup(parsed.fingerprint)
            if found is None:  # step 18
                raise TokenVerificationError(
                    "no registered key has this fingerprint", 18, "unknown_key"
                )
            row, user = found
        self._check_signature(parsed, digest, row, namespace)  # steps 18 (key usable) and 19
        if user is None:  # step 20
            raise TokenVerificationError("the key's owner does not exist", 20, "locked")
        if user.locked:
            raise TokenVerificationError("the key's owner is locked out", 20, "locked")
        try:
            key_permissions = parse_key_permissions(row.permissions)
        except PermissionsError:
            self._logger.error("key SHA256:%s has unreadable stored permissions", row.fingerprint)
            raise KeyPermissionsError(row.fingerprint) from None
        await self.record_use(row, now)
        return Principal(
            user, row, key_permissions, parsed.permissions, parsed, presented, user_keys
        )

    @_observed
    async def check_trade(self, token: str, namespace: str, user_id: str) -> ParsedToken:
        """``exe0-to-exe1`` (docs/ssh.md#exe0-to-exe1 steps 2–5) on the same parse, key and signature
        steps, in the trade's order: parse → the caller's own key → signature → ``exp``
        only (docs/tokens.md#claims trade exception: a future ``nbf`` may be traded).

        Raises ``TokenFormatError`` (parse), ``TokenVerificationError`` (key or
        signature), ``TokenExpiredError``; ``StoreError`` when the database fails.
        """
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        parsed = self._parse(token, digest)
        found = await self._store.auth_lookup(parsed.fingerprint)
        if found is None or found[0].user_id != user_id:
            raise TokenVerificationError(
                "the signing key is not one of the caller's keys", 18, "unknown_key"
            )
        self._check_signature(parsed, digest, found[0], namespace)
        check_claims(parsed.permissions, self._now(), check_nbf=False)
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

    def _parse(self, token: str, digest: bytes) -> ParsedToken:
        """``parse_exe0`` memoised by token digest (parsing is pure in the token string)."""
        parsed = self._parsed.get(digest)
        if parsed is None or parsed.token != token:
            parsed = parse_exe0(token)
            self._parsed.put(digest, parsed)
        return parsed

    def _check_signature(
        self, parsed: ParsedToken, digest: bytes, row: SSHKeyRow, namespace: str
    ) -> None:
        """Step 19 against the key as stored *now*; memoised per (token, namespace, key).

        A stored key that cannot be used is step 18 (not registered) and is never cached,
        so a cached result always belongs to a usable key.
        """
        cache_key = (digest, namespace, row.public_key)
        ok = self._signatures.get(cache_key)
        if ok is None:
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
            ok = verify_signature(parsed, key, namespace)
            self._signatures.put(cache_key, ok)
        if not ok:
            raise TokenVerificationError(
                "signature does not verify under the namespace", 19, "bad_signature"
            )

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
