"""SSH wire encoding (RFC 4251 §5): small readers and writers.

Each reader takes the buffer and the offset of the field and returns ``(value, offset
after the field)``, so a parser reads field after field and then checks, with
:func:`expect_end`, that the structure used up its bytes exactly. Offsets rather than
``(value, rest)`` slices because re-slicing the remainder at every field made token
verification measurably slower (~3x the parse time) for no gain in clarity.

Every failure raises :class:`WireError` (a ``ValueError``); callers turn it into their own
error type. Lengths are checked against the bytes actually present before anything is
sliced or decoded. Length prefixes are read with a precompiled :class:`struct.Struct`
(``unpack_from`` needs no intermediate slice: the readers run several times per token).
"""

from __future__ import annotations

import struct

__all__ = [
    "MAX_MPINT_BYTES",
    "WireError",
    "expect_end",
    "read_byte",
    "read_mpint",
    "read_string",
    "read_uint32",
    "write_mpint",
    "write_string",
    "write_uint32",
]

# OpenSSH's SSHBUF_MAX_BIGNUM (16384 bits) plus one byte for the sign: the largest
# mpint OpenSSH accepts (sshbuf-getput-crypto.c).
MAX_MPINT_BYTES = 16384 // 8 + 1

_from_bytes = int.from_bytes
_unpack_uint32 = struct.Struct(">I").unpack_from


class WireError(ValueError):
    """Bytes that do not follow the SSH wire encoding; ``str()`` says what is wrong."""


def read_uint32(data: bytes, pos: int = 0) -> tuple[int, int]:
    """RFC 4251 ``uint32``: four bytes, big-endian."""
    if pos + 4 > len(data):
        raise WireError("truncated uint32")
    return _unpack_uint32(data, pos)[0], pos + 4


def read_byte(data: bytes, pos: int = 0) -> tuple[int, int]:
    """RFC 4251 ``byte``."""
    if pos >= len(data):
        raise WireError("truncated byte")
    return data[pos], pos + 1


def read_string(data: bytes, pos: int = 0) -> tuple[bytes, int]:
    """RFC 4251 ``string``: uint32 length, then that many bytes (which must be present)."""
    start = pos + 4
    size = len(data)
    if start > size:
        raise WireError("truncated string length")
    end = start + _unpack_uint32(data, pos)[0]
    if end > size:
        raise WireError("string length points past the end")
    return data[start:end], end


def read_mpint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """RFC 4251 ``mpint``, non-negative only.

    As OpenSSH's ``sshbuf_get_bignum2``: negative values (high bit of the first byte set)
    and values longer than :data:`MAX_MPINT_BYTES` are refused; redundant leading zero
    bytes are tolerated.
    """
    value, end = read_string(data, pos)
    if value and value[0] & 0x80:
        raise WireError("negative mpint")
    if len(value) > MAX_MPINT_BYTES:
        raise WireError("mpint too large")
    return _from_bytes(value, "big"), end


def expect_end(data: bytes, pos: int, what: str) -> None:
    """The structure ``what`` must end exactly at ``pos`` (no trailing bytes)."""
    if pos != len(data):
        raise WireError(f"trailing bytes after {what}")


def write_uint32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def write_string(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def write_mpint(value: int) -> bytes:
    """Minimal two's-complement encoding of a non-negative integer (zero is empty)."""
    if value < 0:
        raise ValueError("negative mpint")
    # (bits + 8) // 8 leaves room for a leading zero byte when the top bit is set.
    return write_string(value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b"")
