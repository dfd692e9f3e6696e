"""Mutations of valid exe0 tokens, at three levels: the text, the payload, the SSHSIG blob.

:meth:`Mutator.mutate` turns an index into ``(mutator name, bearer string)`` with a
random generator seeded by ``(seed, index)`` alone, so any one case can be replayed
without the ones before it. The SSHSIG-level mutators follow the tests' rule of building
a malformed input by overriding one field of a valid one (magic, version, public key,
namespace, reserved, hash algorithm, signature), besides byte flips, lying length
prefixes, truncations and extensions. Text-level mutators cover what arrives over HTTP:
stray characters (non-ASCII, lone surrogates, NUL), truncation, splices of two tokens,
wrong prefixes, exe1 shapes and strings around the 8192-byte limit.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from fuzz.corpus import EXPECTED_NAMESPACE, Corpus, SeedToken, curve_order, rsa_public_blob
from sshmint.sshsig import MAGIC
from sshmint.token import EXE0_PREFIX, EXE1_PREFIX, MAX_TOKEN_BYTES, b64url_decode, b64url_encode
from sshmint.wire import read_mpint, read_string, write_mpint, write_string, write_uint32

__all__ = ["BLOB_MUTATIONS", "HOSTILE_PAYLOADS", "MUTATORS", "Mutator", "Pools", "mutate_blob"]

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# Characters a hostile client may put in a bearer string.
_STRAY = (
    *"=+/.~ \t\n\r\x00\x7f%",
    "\u00e9",
    "\u00a0",
    "\u2028",
    "\ufeff",
    "\uff0e",
    "\ud800",
    "\udfff",
    "\U0001f600",
    "\u0301",
)
_ED25519_L = 2**252 + 27742317777372353535851937790883648493  # RFC 8032 group order

#: Hostile payloads (docs/tokens.md#strict-json): each must be refused at a parse step or pass cleanly.
HOSTILE_PAYLOADS: tuple[bytes, ...] = (
    b"",
    b"{",
    b"}",
    b"{}}",
    b"{} ",
    b" {}",
    b"\xef\xbb\xbf{}",
    b"{}\xc2\xa0",
    b"{\n}",
    b"{\x00}",
    b"[]",
    b"null",
    b'{"exp":2000000000,"exp":2000000000}',
    b'{"a":1}',
    b'{"Exp":1}',
    b'{"exp":"2000000000"}',
    b'{"exp":2e9}',
    b'{"exp":2000000000.0}',
    b'{"exp":-0}',
    b'{"exp":01}',
    b'{"exp":9223372036854775807}',
    b'{"exp":9223372036854775808}',
    b'{"exp":-9223372036854775809}',
    b'{"exp":' + b"9" * 5000 + b"}",
    b'{"exp":true}',
    b'{"nbf":4102444801}',
    b'{"cmds":"ls"}',
    b'{"cmds":[""]}',
    b'{"cmds":[1]}',
    b'{"cmds":["a","\\u0000"]}',
    b'{"ctx":{"a":1,"\\u0061":2}}',
    b'{"ctx":[{"a":1,"a":1}]}',
    b'{"ctx":NaN}',
    b'{"ctx":Infinity}',
    b'{"ctx":1e99999}',
    b'{"ctx":"\\ud800"}',
    b'{"ctx":"\xed\xa0\x80"}',
    b'{"ctx":"\xff"}',
    b'{"ctx":"\\u12"}',
    b'{"ctx":' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"ctx":' + b'{"a":' * 1500 + b"1" + b"}" * 1500 + b"}",
    b'{"ctx":1}/**/',
    b'{"ctx":1},{}',
    b'{"ctx" : 1 , "exp" : null}',
    b'{"\\u0065xp":1}',
    b'{"exp":2000000000,}',
)


@dataclass(frozen=True)
class _Seed:
    """A seed token taken apart once, for the mutators."""

    token: SeedToken
    payload_part: str
    signature_part: str
    blob: bytes


def _take_apart(seed: SeedToken) -> _Seed:
    payload_part, _, signature_part = seed.token[len(EXE0_PREFIX) :].partition(".")
    return _Seed(seed, payload_part, signature_part, b64url_decode(signature_part))


def _assemble(fields: list[bytes], magic: bytes = MAGIC, version: bytes = b"\0\0\0\1") -> bytes:
    return magic + version + b"".join(write_string(f) for f in fields)


def _token(payload_part: str, blob: bytes) -> str:
    return f"{EXE0_PREFIX}{payload_part}.{b64url_encode(blob)}"


class Mutator:
    """Makes the ``index``-th mutated bearer string of a run (see the module docstring)."""

    def __init__(self, corpus: Corpus, seed: int) -> None:
        self.corpus = corpus
        self.seed = seed
        self.seeds = [_take_apart(t) for t in corpus.tokens]
        self.pools = Pools.of(corpus)
        names, weights = zip(*MUTATORS.items(), strict=True)
        self._names: tuple[str, ...] = names
        self._functions = tuple(w[0] for w in weights)
        self._weights = tuple(w[1] for w in weights)

    def mutate(self, index: int) -> tuple[str, str]:
        rng = random.Random(f"{self.seed}:{index}")
        choice = rng.choices(range(len(self._names)), self._weights)[0]
        seed = rng.choice(self.seeds)
        # Stack a second mutation now and then: a change that survives one check can meet
        # the next one.
        token = self._functions[choice](self, rng, seed)
        name = self._names[choice]
        if rng.random() < 0.1:
            again = rng.choices(range(len(self._names)), self._weights)[0]
            if self._names[again].startswith("text."):
                token = self._functions[again](self, rng, _Text(seed, token))
                name += "+" + self._names[again]
        return name, token


@dataclass(frozen=True)
class _Text:
    """A text-level mutator's input when a mutation is stacked on another one."""

    base: _Seed
    text: str


def _text_of(seed: _Seed | _Text) -> str:
    return seed.text if isinstance(seed, _Text) else seed.token.token


def _base_of(seed: _Seed | _Text) -> _Seed:
    return seed.base if isinstance(seed, _Text) else seed


def _stray(rng: random.Random) -> str:
    return rng.choice(_STRAY) if rng.random() < 0.5 else rng.choice(_B64URL)


# --- text level ---------------------------------------------------------------------------


def _replace_chars(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    text = list(_text_of(seed))
    for _ in range(rng.randint(1, 4)):
        if text:
            text[rng.randrange(len(text))] = _stray(rng)
    return "".join(text)


def _insert_chars(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    text = _text_of(seed)
    at = rng.randrange(len(text) + 1)
    return text[:at] + "".join(_stray(rng) for _ in range(rng.randint(1, 3))) + text[at:]


def _delete_span(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    text = _text_of(seed)
    at = rng.randrange(len(text) + 1)
    return text[:at] + text[at + rng.randint(1, 8) :]


def _truncate(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    text = _text_of(seed)
    return text[: rng.randrange(len(text) + 1) - 1] if text else text


def _splice(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    text, other = _text_of(seed), rng.choice(m.seeds).token.token
    return text[: rng.randrange(len(text) + 1)] + other[rng.randrange(len(other) + 1) :]


def _cross_parts(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    """The payload of one token with the signature of another (often another key's)."""
    base = _base_of(seed)
    other = rng.choice(m.seeds)
    return f"{EXE0_PREFIX}{base.payload_part}.{other.signature_part}"


def _prefix(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    text = _text_of(seed)
    rest = text[len(EXE0_PREFIX) :]
    head = rng.choice(("", "exe0", "EXE0.", "exe1.", "exe2.", "exe0..", " exe0.", "exe0.exe0."))
    return head + rest


def _exe1_shape(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    alphabet = _BASE32 if rng.random() < 0.7 else _BASE32.lower() + "=018" + _B64URL
    body = "".join(rng.choice(alphabet) for _ in range(rng.choice((0, 19, 20, 26, 40, 41, 200))))
    return EXE1_PREFIX + body


def _oversize(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    """A payload or signature part padded so that the string is near 8192 bytes."""
    base = _base_of(seed)
    target = rng.choice((MAX_TOKEN_BYTES - 1, MAX_TOKEN_BYTES, MAX_TOKEN_BYTES + 1, 16384, 70000))
    pad = max(0, target - len(base.token.token))
    if rng.random() < 0.5:
        return f"{EXE0_PREFIX}{base.payload_part}{'A' * pad}.{base.signature_part}"
    return f"{EXE0_PREFIX}{base.payload_part}.{base.signature_part}{'A' * pad}"


def _whitespace(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    around = rng.choice((" ", "\t", "\n", "\r\n", "\u00a0", "\x00"))
    text = _text_of(seed)
    return rng.choice((around + text, text + around, around + text + around))


# --- payload level ------------------------------------------------------------------------


def _payload_bytes(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    base = _base_of(seed)
    data = bytearray(base.token.payload)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        at = rng.randrange(len(data) + 1)
        if op < 0.4 and at < len(data):
            data[at] ^= 1 << rng.randrange(8)
        elif op < 0.7:
            data[at:at] = bytes([rng.choice(b'{}[]",:\\ 0e-\x00\n\x80\xff')])
        elif at < len(data):
            del data[at]
    return f"{EXE0_PREFIX}{b64url_encode(bytes(data))}.{base.signature_part}"


def _payload_hostile(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    base = _base_of(seed)
    payload = rng.choice(HOSTILE_PAYLOADS)
    return f"{EXE0_PREFIX}{b64url_encode(payload)}.{base.signature_part}"


def _payload_trailing_bits(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
    """Change the unused bits of the last base64url character (docs/tokens.md#base64url: ignored)."""
    base = _base_of(seed)
    part = base.payload_part
    if len(part) % 4 in (2, 3) and part:
        part = part[:-1] + rng.choice(_B64URL)
    return f"{EXE0_PREFIX}{part}.{base.signature_part}"


# --- SSHSIG level -------------------------------------------------------------------------


def _hostile_key_blobs(corpus: Corpus) -> list[bytes]:
    """Public key blobs that each break one rule (docs/tokens.md#sshsig-blob, docs/tokens.md#key-and-signature-types, docs/security.md#key-limits)."""
    rsa_blob = next(k.public_key.blob for k in corpus.keys if k.name == "rsa-sha2-512")
    e, pos = read_mpint(rsa_blob, 11)
    n, _ = read_mpint(rsa_blob, pos)
    ec_blob = next(k.public_key.blob for k in corpus.keys if k.name == "ecdsa-sha2-nistp256")
    point = ec_blob[-65:]
    off_curve = point[:-1] + bytes([point[-1] ^ 1])
    ec_head = write_string(b"ecdsa-sha2-nistp256") + write_string(b"nistp256")
    return [
        rsa_public_blob(1, n),
        rsa_public_blob(65536, n),
        rsa_public_blob((1 << 24) + 1, n),
        rsa_public_blob(e, n >> 200),
        rsa_public_blob(e, n + 1),
        rsa_public_blob(n - 2, n),
        ec_head + write_string(off_curve),
        ec_head + write_string(b"\x02" + point[1:33]),
        ec_head + write_string(b"\x00"),
        write_string(b"ssh-ed25519") + write_string(b"\x01" + b"\x00" * 31),
        write_string(b"ssh-ed25519") + write_string(b"\xff" * 32),
        write_string(b"ssh-ed25519-cert-v01@openssh.com") + write_string(b"\x00" * 32),
        write_string(b"ssh-dss") + write_mpint(3) * 4,
        write_string(b"sk-ssh-ed25519@openssh.com") + write_string(b"\x09" * 32),
        rsa_blob + b"\x00",
        rsa_blob[:-1],
    ]


def _signature_variants(rng: random.Random, signature: bytes) -> bytes:
    """One change inside the SSH signature field (RFC 4253 §6.6 envelope)."""
    fmt, pos = read_string(signature)
    sigblob, pos = read_string(signature, pos)
    tail = signature[pos:]
    choice = rng.randrange(8)
    if choice == 0:
        fmt = rng.choice(
            (
                b"ssh-rsa",
                b"rsa-sha2-256",
                b"rsa-sha2-512",
                b"ssh-ed25519",
                b"ecdsa-sha2-nistp256",
                b"sk-ssh-ed25519@openssh.com",
                b"",
                b"rsa-sha2-512\x00",
            )
        )
    elif choice == 1 and sigblob:
        flipped = bytearray(sigblob)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        sigblob = bytes(flipped)
    elif choice == 2:
        sigblob = sigblob[: rng.randrange(len(sigblob) + 1)]
    elif choice == 3:
        sigblob = rng.choice((b"\x00", b"\x00\x00")) + sigblob
    elif choice == 4 and fmt == b"ssh-ed25519" and len(sigblob) == 64:
        s = int.from_bytes(sigblob[32:], "little") + _ED25519_L  # non-canonical S
        sigblob = sigblob[:32] + (s % 2**256).to_bytes(32, "little")
    elif choice == 5 and fmt.startswith(b"ecdsa-sha2-"):
        r, p = read_mpint(sigblob)
        s, _ = read_mpint(sigblob, p)
        order = curve_order(fmt.decode()[len("ecdsa-sha2-") :])
        s = rng.choice((order - s, 0, order, order + s, s + 1))  # malleated / out of range
        sigblob = write_mpint(r) + write_mpint(s)
    elif choice == 6 and tail:
        tail = bytes([tail[0] ^ 1]) + tail[1:] if rng.random() < 0.5 else tail[:-1]
    else:
        tail += rng.randbytes(rng.randint(1, 5))
    return write_string(fmt) + write_string(sigblob) + tail


@dataclass(frozen=True)
class Pools:
    """Replacement values for SSHSIG fields: every corpus key and some hostile ones, and
    every seed's signature field."""

    key_blobs: tuple[bytes, ...]
    signatures: tuple[bytes, ...]

    @classmethod
    def of(cls, corpus: Corpus) -> Pools:
        keys = tuple(k.public_key.blob for k in corpus.keys) + tuple(_hostile_key_blobs(corpus))
        signatures = tuple(
            _fields(b64url_decode(t.token.rpartition(".")[2]))[4] for t in corpus.tokens
        )
        return cls(keys, signatures)


def _fields(blob: bytes) -> list[bytes]:
    """The five strings of a valid SSHSIG blob (PROTOCOL.sshsig §2) after magic and version."""
    pos, fields = 10, []
    for _ in range(5):
        value, pos = read_string(blob, pos)
        fields.append(value)
    return fields


def _override_field(pools: Pools, rng: random.Random, blob: bytes) -> bytes:
    fields = _fields(blob)
    magic, version = MAGIC, b"\0\0\0\1"
    field = rng.randrange(7)
    if field == 0:
        magic = rng.choice((b"SSHSIH", b"sshsig", b"SSHSI", b"SSHSIG\0", b""))
    elif field == 1:
        version = write_uint32(rng.choice((0, 2, 0xFFFFFFFF, 1 << 24)))
    elif field == 2:
        fields[0] = rng.choice(pools.key_blobs)
    elif field == 3:
        fields[1] = rng.choice(
            (
                b"",
                b"v0@myvm.localhost",
                EXPECTED_NAMESPACE.encode() + b"\0",
                EXPECTED_NAMESPACE.upper().encode(),
                EXPECTED_NAMESPACE.encode() * 50,
                rng.randbytes(12),
            )
        )
    elif field == 4:
        fields[2] = rng.randbytes(rng.choice((1, 8, 1000)))
    elif field == 5:
        fields[3] = rng.choice(
            (b"sha384", b"sha1", b"SHA256", b"", b"sha256\0", b"md5", b"sha256", b"sha512")
        )
    elif rng.random() < 0.3:
        fields[4] = rng.choice(pools.signatures)
    else:
        fields[4] = _signature_variants(rng, fields[4])
    return _assemble(fields, magic, version)


def _change_signature(pools: Pools, rng: random.Random, blob: bytes) -> bytes:
    fields = _fields(blob)
    fields[4] = _signature_variants(rng, fields[4])
    return _assemble(fields)


def _lie_about_a_length(pools: Pools, rng: random.Random, blob: bytes) -> bytes:
    """One length prefix of the blob, or of the signature's inner strings, set wrong."""
    data = bytearray(blob)
    offsets, pos = [], 10
    for _ in range(5):
        offsets.append(pos)
        pos += 4 + int.from_bytes(data[pos : pos + 4], "big")
    sig_start = offsets[4] + 4
    offsets += [sig_start, sig_start + 4 + int.from_bytes(data[sig_start : sig_start + 4], "big")]
    at = rng.choice(offsets)
    old = int.from_bytes(data[at : at + 4], "big")
    new = rng.choice((0, old - 1, old + 1, 0x7FFFFFFF, 0xFFFFFFFF, len(data), 1 << 24))
    data[at : at + 4] = write_uint32(max(0, new) & 0xFFFFFFFF)
    return bytes(data)


def _flip_bytes(pools: Pools, rng: random.Random, blob: bytes) -> bytes:
    data = bytearray(blob)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        if rng.random() < 0.6:
            data[at] ^= 1 << rng.randrange(8)
        else:
            data[at] = rng.choice((0x00, 0x7F, 0x80, 0xFF))
    return bytes(data)


def _resize(pools: Pools, rng: random.Random, blob: bytes) -> bytes:
    if rng.random() < 0.5:
        return blob[: rng.randrange(len(blob))]
    return blob + rng.randbytes(rng.choice((1, 4, 100, 60000)))


BlobMutation = Callable[[Pools, random.Random, bytes], bytes]

#: name -> (function, weight): mutations of a valid SSHSIG blob.
BLOB_MUTATIONS: dict[str, tuple[BlobMutation, int]] = {
    "field": (_override_field, 14),
    "signature": (_change_signature, 6),
    "length": (_lie_about_a_length, 8),
    "bytes": (_flip_bytes, 12),
    "resize": (_resize, 4),
}


def mutate_blob(pools: Pools, rng: random.Random, blob: bytes) -> tuple[str, bytes]:
    """One weighted blob mutation of the valid SSHSIG ``blob``: ``(name, new blob)``."""
    names = tuple(BLOB_MUTATIONS)
    name = rng.choices(names, [BLOB_MUTATIONS[n][1] for n in names])[0]
    return name, BLOB_MUTATIONS[name][0](pools, rng, blob)


def _sshsig_level(mutation: BlobMutation) -> _MutatorFunction:
    def mutate(m: Mutator, rng: random.Random, seed: _Seed | _Text) -> str:
        base = _base_of(seed)
        return _token(base.payload_part, mutation(m.pools, rng, base.blob))

    return mutate


_MutatorFunction = Callable[[Mutator, random.Random, "_Seed | _Text"], str]

#: name -> (function, weight). Weights favour the SSHSIG level, where the parsers are.
MUTATORS: dict[str, tuple[_MutatorFunction, int]] = {
    "text.replace": (_replace_chars, 6),
    "text.insert": (_insert_chars, 4),
    "text.delete": (_delete_span, 4),
    "text.truncate": (_truncate, 4),
    "text.splice": (_splice, 4),
    "text.cross-parts": (_cross_parts, 4),
    "text.prefix": (_prefix, 2),
    "text.exe1": (_exe1_shape, 2),
    "text.oversize": (_oversize, 2),
    "text.whitespace": (_whitespace, 2),
    "payload.bytes": (_payload_bytes, 8),
    "payload.hostile": (_payload_hostile, 6),
    "payload.trailing-bits": (_payload_trailing_bits, 2),
    **{f"sshsig.{name}": (_sshsig_level(f), w) for name, (f, w) in BLOB_MUTATIONS.items()},
}
