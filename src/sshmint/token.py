"""exe0/exe1 tokens: strict parsing (docs/tokens.md#validation), claims (docs/tokens.md#claims), token ``cmds`` (docs/permissions.md#token-cmds), minting.

An exe0 token is ``exe0.<base64url payload>.<base64url SSHSIG blob>`` (docs/tokens.md#exe0-layout). The
payload is signed byte for byte; nothing here re-serialises it. Parsing runs docs/tokens.md#validation
steps 1–15 in order and the first failing step decides the message; verification adds
the claim steps 16–17 and the key steps 18–19. The clock and the key store are passed
in (``now``, ``lookup``), so this module stays pure.
"""

from __future__ import annotations

import binascii
import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from sshmint import sshsig as _sshsig
from sshmint.errors import (
    MalformedSignatureError,
    PublicKeyError,
    TokenExpiredError,
    TokenFormatError,
    TokenNotYetValidError,
    TokenVerificationError,
)
from sshmint.keys import PublicKey, embedded_public_key, limit_violation
from sshmint.signing import Signer
from sshmint.sshsig import SSHSig, parse_sshsig
from sshmint.strictjson import (
    INVALID_JSON,
    WHITESPACE_UTF8,
    StrictJSONError,
    dumps,
    parse_object,
    parse_object_members,
    parse_value,
    quote,
)
from sshmint.valuetypes import value_type

__all__ = [
    "DEFAULT_CMDS",
    "EXE0_PREFIX",
    "EXE1_PREFIX",
    "KEEP",
    "KNOWN_FIELDS",
    "MAX_CLAIM_TIME",
    "MAX_TOKEN_BYTES",
    "MIN_CLAIM_TIME",
    "KeyLookup",
    "ParsedToken",
    "Permissions",
    "RawJSON",
    "b64url_decode",
    "b64url_encode",
    "build_payload",
    "check_claims",
    "encode_payload",
    "is_well_formed_exe1",
    "mint_exe0",
    "parse_exe0",
    "validate_payload",
    "verify_exe0",
    "verify_signature",
]

MAX_TOKEN_BYTES: Final = 8192  # docs/tokens.md#validation step 1
EXE0_PREFIX: Final = "exe0."
EXE1_PREFIX: Final = "exe1."
# docs/permissions.md#token-cmds: the commands a token without ``cmds`` may run, in this order.
DEFAULT_CMDS: Final[tuple[str, ...]] = (
    "help",
    "ls",
    "new",
    "whoami",
    "ssh-key list",
    "share show",
    "exe0-to-exe1",
)
KNOWN_FIELDS: Final = frozenset({"exp", "nbf", "cmds", "ctx"})  # docs/tokens.md#validation step 9
# docs/tokens.md#validation steps 10–11: 2000-01-01T00:00:00Z to 2100-01-01T00:00:00Z inclusive.
MIN_CLAIM_TIME: Final = 946684800
MAX_CLAIM_TIME: Final = 4102444800
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# docs/tokens.md#validation messages, by step.
_MSG_SIZE = "invalid token: exceeds maximum size"
_MSG_PREFIX = "invalid token format: missing exe0. prefix"
_MSG_LAYOUT = "invalid token format: expected exe0.<payload>.<sigblob>"
_MSG_PAYLOAD_B64 = "invalid token: payload is not valid base64url"
_MSG_WHITESPACE = "invalid token: payload must not have leading or trailing whitespace"
_MSG_NEWLINE = "invalid token: payload must not contain newlines"
_MSG_NUL = "invalid token: payload must not contain null bytes"
_MSG_NOT_OBJECT = "invalid token: payload must be a JSON object"
_MSG_EXP_RANGE = "invalid token: exp out of valid range"
_MSG_NBF_RANGE = "invalid token: nbf out of valid range"
_MSG_CMDS_EMPTY = "invalid token: cmds elements must be non-empty strings"
_MSG_SIG_B64 = "invalid token: signature is not valid base64url"


def _b64url_to_std_table() -> bytes:
    # docs/tokens.md#base64url: RFC 4648 §5 alphabet, no padding. One translation both maps the URL-safe
    # alphabet onto the standard one and turns every other byte (``+``, ``/``, ``=``,
    # whitespace, ...) into ``!``, which the strict decoder refuses.
    table = bytearray(b"!" * 256)
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789":
        table[c] = c
    table[ord("-")] = ord("+")
    table[ord("_")] = ord("/")
    return bytes(table)


_B64URL_TO_STD = _b64url_to_std_table()
_STD_TO_B64URL = bytes.maketrans(b"+/", b"-_")
_B64_PAD = (b"", b"", b"==", b"=")  # by len % 4; a remainder of 1 is refused before this
# docs/tokens.md#exe1-tokens: exe1 body of 20–40 upper-case RFC 4648 base32 characters.
_EXE1 = re.compile(r"exe1\.[A-Z2-7]{20,40}")


def b64url_decode(part: str) -> bytes:
    """Decode docs/tokens.md#base64url base64url: alphabet only, no padding, unused trailing bits ignored.

    Raises :class:`ValueError` for anything else (``len % 4 == 1`` included). ``""`` is
    valid and decodes to ``b""``.
    """
    if len(part) % 4 == 1:
        raise ValueError("not valid base64url: impossible length")
    try:
        raw = part.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("not valid base64url: non-ASCII character") from None
    # Strict mode refuses the "!" that stands for any character outside the alphabet and
    # still ignores unused trailing bits, as docs/tokens.md#base64url requires. binascii.Error is a
    # ValueError.
    return binascii.a2b_base64(
        raw.translate(_B64URL_TO_STD) + _B64_PAD[len(part) % 4], strict_mode=True
    )


def b64url_encode(data: bytes) -> str:
    """Canonical unpadded base64url (docs/tokens.md#base64url, what encoders must emit)."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_STD_TO_B64URL).decode()


@value_type
@dataclass(frozen=True, slots=True)
class Permissions:
    """The validated claims of a payload (docs/tokens.md#strict-json, docs/tokens.md#claims, docs/permissions.md#token-cmds).

    ``exp``/``nbf``/``cmds`` are ``None`` when absent or ``null``. ``ctx_raw`` is the raw
    text of the ``ctx`` value as written in the payload (docs/proxy.md#what-the-upstream-receives); ``has_ctx`` is true
    whenever the member is present, even with the value ``null``.
    """

    exp: int | None = None
    nbf: int | None = None
    cmds: tuple[str, ...] | None = None
    ctx_raw: str | None = None
    has_ctx: bool = False

    @property
    def effective_cmds(self) -> tuple[str, ...]:
        """docs/permissions.md#token-cmds: the token's list, or the default list when ``cmds`` is absent."""
        return DEFAULT_CMDS if self.cmds is None else self.cmds

    def allows(self, command_name: str) -> bool:
        """docs/permissions.md#token-cmds: exact match of a resolved command name; ``[]`` permits nothing."""
        return command_name in self.effective_cmds


@value_type
@dataclass(frozen=True, slots=True)
class ParsedToken:
    """An exe0 token that passed docs/tokens.md#validation steps 1–15 (not yet verified)."""

    token: str
    payload: bytes
    permissions: Permissions
    sshsig: SSHSig
    public_key: PublicKey

    @property
    def fingerprint(self) -> str:
        """docs/tokens.md#fingerprints fingerprint of the signing key in the blob, without ``SHA256:``."""
        return self.public_key.fingerprint


KeyLookup = Callable[[str], PublicKey | None]
"""``lookup(fingerprint)``: the registered key with that fingerprint (no prefix), or None."""


def validate_payload(payload: bytes) -> Permissions:
    """docs/tokens.md#validation steps 5–13 on the decoded payload bytes; raises :class:`TokenFormatError`."""
    # Step 5 (docs/tokens.md#strict-json whitespace set); the common case is decided by one byte each side.
    if (payload[:1] != b"{" and payload.startswith(WHITESPACE_UTF8)) or (
        payload[-1:] != b"}" and payload.endswith(WHITESPACE_UTF8)
    ):
        raise TokenFormatError(_MSG_WHITESPACE, 5)
    if b"\n" in payload or b"\r" in payload:  # step 6
        raise TokenFormatError(_MSG_NEWLINE, 6)
    if b"\x00" in payload:  # step 7
        raise TokenFormatError(_MSG_NUL, 7)
    if payload[:1] != b"{":  # step 8
        raise TokenFormatError(_MSG_NOT_OBJECT, 8)
    # Step 9: strict UTF-8, strict JSON (duplicates at any depth, so step 12 is covered),
    # known fields, strict types.
    try:
        obj = parse_object(payload.decode("utf-8"))
    except (UnicodeDecodeError, StrictJSONError):
        raise TokenFormatError(INVALID_JSON, 9) from None
    exp: int | None = None
    nbf: int | None = None
    cmds: tuple[str, ...] | None = None
    ctx_raw: str | None = None
    has_ctx = False
    for name, value in obj.items():
        if name == "exp" or name == "nbf":
            # docs/tokens.md#strict-json "Strict integers": null, or an integer literal within int64. The
            # scanner yields float for fractions and exponents; bool is excluded by type.
            if value is not None and (
                type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX
            ):
                raise TokenFormatError(INVALID_JSON, 9)
            if name == "exp":
                exp = value
            else:
                nbf = value
        elif name == "cmds":
            if value is not None:
                if type(value) is not list:
                    raise TokenFormatError(INVALID_JSON, 9)
                for command in value:
                    if type(command) is not str:
                        raise TokenFormatError(INVALID_JSON, 9)
                cmds = tuple(value)
        elif name == "ctx":
            has_ctx = True
        else:
            raise TokenFormatError(f"invalid token: unknown field {quote(name)}", 9)
    if has_ctx:
        ctx_raw = _raw_ctx(payload)
    if exp is not None and not MIN_CLAIM_TIME <= exp <= MAX_CLAIM_TIME:  # step 10
        raise TokenFormatError(_MSG_EXP_RANGE, 10)
    if nbf is not None and not MIN_CLAIM_TIME <= nbf <= MAX_CLAIM_TIME:  # step 11
        raise TokenFormatError(_MSG_NBF_RANGE, 11)
    if cmds is not None and "" in cmds:  # step 13
        raise TokenFormatError(_MSG_CMDS_EMPTY, 13)
    return Permissions(exp, nbf, cmds, ctx_raw, has_ctx)


def _raw_ctx(payload: bytes) -> str:
    """The raw text of ``ctx``, forwarded verbatim (docs/proxy.md#what-the-upstream-receives):
    only for a payload that has one is the top level walked member by member."""
    return next(raw for name, _, raw in parse_object_members(payload.decode()) if name == "ctx")


def parse_exe0(token: str) -> ParsedToken:
    """docs/tokens.md#validation steps 1–15, in order; raises :class:`TokenFormatError` with the exact text.

    Step 15 failures are :class:`MalformedSignatureError`. Nothing is verified here.
    """
    size = len(token) if token.isascii() else len(token.encode("utf-8", "surrogatepass"))
    if size > MAX_TOKEN_BYTES:  # step 1: the whole bearer string
        raise TokenFormatError(_MSG_SIZE, 1)
    if not token.startswith(EXE0_PREFIX):  # step 2
        raise TokenFormatError(_MSG_PREFIX, 2)
    # Step 3: split at the first dot; a dot inside the signature part fails step 14.
    payload_part, dot, signature_part = token[5:].partition(".")
    if not dot:
        raise TokenFormatError(_MSG_LAYOUT, 3)
    try:
        payload = b64url_decode(payload_part)  # step 4
    except ValueError:
        raise TokenFormatError(_MSG_PAYLOAD_B64, 4) from None
    permissions = validate_payload(payload)  # steps 5–13
    try:
        blob = b64url_decode(signature_part)  # step 14
    except ValueError:
        raise TokenFormatError(_MSG_SIG_B64, 14) from None
    sig = parse_sshsig(blob)  # step 15 (docs/tokens.md#sshsig-blob)
    try:
        public_key = embedded_public_key(sig.public_key)
    except PublicKeyError as exc:  # parse_sshsig vets the key; keep the step-15 contract
        raise MalformedSignatureError(f"public key: {exc.detail}") from None
    return ParsedToken(token, payload, permissions, sig, public_key)


def check_claims(perms: Permissions, now: int, *, check_nbf: bool = True) -> None:
    """docs/tokens.md#claims (steps 16–17): ``exp`` first, then ``nbf`` unless ``check_nbf`` is false.

    ``exp < now`` is expired and ``nbf > now`` is not yet valid; equality is valid. The
    trade exception of ``exe0-to-exe1`` passes ``check_nbf=False``.
    """
    if perms.exp is not None and perms.exp < now:
        raise TokenExpiredError
    if check_nbf and perms.nbf is not None and perms.nbf > now:
        raise TokenNotYetValidError


def verify_signature(parsed: ParsedToken, key: PublicKey, namespace: str) -> bool:
    """docs/tokens.md#signed-data: the blob's key is ``key``, its namespace is ``namespace``, and it verifies."""
    return _sshsig.verify(parsed.sshsig, parsed.payload, namespace, key)


def verify_exe0(token: str, namespace: str, lookup: KeyLookup, now: int) -> ParsedToken:
    """docs/tokens.md#validation steps 1–19: parse, claims, registered key, signature.

    Steps 18–19 raise :class:`TokenVerificationError` (``invalid token``; the reason is
    kept on the exception for diagnostics). A registered key outside the docs/security.md#key-limits limits
    counts as not registered (step 18). Step 20 (owner lock-out) is the caller's.
    """
    parsed = parse_exe0(token)
    check_claims(parsed.permissions, now)
    key = lookup(parsed.public_key.fingerprint)
    if key is None:
        raise TokenVerificationError(
            "no registered key has the signing key's fingerprint", 18, "unknown_key"
        )
    if limit_violation(key.blob) is not None:
        raise TokenVerificationError("the registered key breaks the key limits", 18, "unknown_key")
    if not _sshsig.verify(parsed.sshsig, parsed.payload, namespace, key):
        raise TokenVerificationError(
            "signature does not verify under the namespace", 19, "bad_signature"
        )
    return parsed


def mint_exe0(payload: bytes, signer: Signer, namespace: str, *, validate: bool = True) -> str:
    """Sign ``payload`` (SSHSIG, ``sha512``) under ``namespace`` and build the exe0 token.

    With ``validate`` (the default) the payload must pass docs/tokens.md#validation steps 5–13 and the
    token must fit step 1, so no unusable token is ever produced; tests that need broken
    tokens pass ``validate=False``.
    """
    if validate:
        validate_payload(payload)
    blob = _sshsig.sign(payload, namespace, signer, "sha512")
    token = f"{EXE0_PREFIX}{b64url_encode(payload)}.{b64url_encode(blob)}"
    if validate and len(token) > MAX_TOKEN_BYTES:
        raise TokenFormatError(_MSG_SIZE, 1)
    return token


def is_well_formed_exe1(token: str) -> bool:
    """docs/tokens.md#exe1-tokens: ``exe1.`` and 20–40 characters of ``A–Z2–7``."""
    return _EXE1.fullmatch(token) is not None


# --- building payloads (docs/client.md#sshmint-mint, docs/ssh.md#ssh-key-generate-api-key step 4) ---------------------------------------


@dataclass(frozen=True, slots=True)
class RawJSON:
    """A JSON value to be emitted exactly as written (the ``ctx`` text, docs/client.md#sshmint-mint)."""

    text: str


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""``build_payload`` argument meaning "leave this member as the starting object has it"."""


def _utf8(text: str) -> bytes:
    # Command-line text carries undecodable bytes as surrogate escapes: restore them so the
    # UTF-8 rule of step 9 judges the real bytes.
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise TokenFormatError(INVALID_JSON, 9) from None


def encode_payload(members: Iterable[tuple[str, object]]) -> bytes:
    """Compact JSON object of ``members`` in the given order; ``None`` values are omitted.

    :class:`RawJSON` values are copied verbatim; other values are JSON-encoded compactly
    (UTF-8, no ASCII escaping). The result is not validated: see :func:`validate_payload`.
    """
    parts = []
    for name, value in members:
        if value is None:
            continue
        text = value.text if isinstance(value, RawJSON) else dumps(value)
        parts.append(f"{dumps(name)}:{text}")
    return _utf8("{" + ",".join(parts) + "}")


def build_payload(
    perms_text: str | None = None,
    *,
    exp: int | _Keep | None = KEEP,
    nbf: int | _Keep | None = KEEP,
    cmds: Sequence[str] | _Keep | None = KEEP,
    ctx_text: str | _Keep | None = KEEP,
) -> bytes:
    """The payload ``sshmint mint`` signs (docs/client.md#sshmint-mint).

    ``perms_text`` is the starting object (``--perms``); ``exp``/``nbf``/``cmds``/``ctx_text``
    set a member, ``None`` removes it (``--exp never``), :data:`KEEP` leaves it alone. With
    only ``perms_text`` its bytes are used verbatim; otherwise the payload is re-emitted
    compactly in the order ``exp``, ``nbf``, ``cmds``, ``ctx`` with the ``ctx`` text copied
    verbatim; with nothing at all it is ``{}``. The result passes docs/tokens.md#validation steps 5–13, or
    :class:`TokenFormatError` carries the message of the failing step.
    """
    overridden = any(v is not KEEP for v in (exp, nbf, cmds, ctx_text))
    base = Permissions()
    if perms_text is not None:
        verbatim = _utf8(perms_text)
        base = validate_payload(verbatim)  # --perms must itself pass docs/tokens.md#strict-json
        if not overridden:
            return verbatim
    elif not overridden:
        return b"{}"
    new_exp = base.exp if exp is KEEP else exp
    new_nbf = base.nbf if nbf is KEEP else nbf
    new_cmds = base.cmds if cmds is KEEP else (None if cmds is None else tuple(cmds))
    if ctx_text is KEEP:
        new_ctx = base.ctx_raw if base.has_ctx else None
    elif ctx_text is None:
        new_ctx = None
    else:
        # The ctx text must be one JSON value on its own, else it could smuggle members
        # into the object (``1,"exp":5``). Whitespace around it is not part of the value.
        new_ctx = ctx_text.strip(" \t\n\r")
        try:
            parse_value(new_ctx)
        except StrictJSONError:
            raise TokenFormatError(INVALID_JSON, 9) from None
    payload = encode_payload(
        [
            ("exp", new_exp),
            ("nbf", new_nbf),
            ("cmds", None if new_cmds is None else list(new_cmds)),
            ("ctx", None if new_ctx is None else RawJSON(new_ctx)),
        ]
    )
    validate_payload(payload)
    return payload
