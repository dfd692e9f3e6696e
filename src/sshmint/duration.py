"""Durations and WHEN values (docs/ssh.md#ssh-key-generate-api-key, docs/client.md#sshmint-mint).

One grammar serves the server (``ssh-key add --exp``, ``generate-api-key --exp``) and the
client (``mint --exp/--nbf``): case-insensitive, surrounding spaces ignored, empty or
``never`` for no expiry, otherwise ``<digits><unit>``. The bare unit ``m`` is refused
rather than guessed (minutes or months).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sshmint.errors import DurationError
from sshmint.strictjson import quote

__all__ = [
    "MAX_DURATION_SECONDS",
    "UNIT_SECONDS",
    "format_duration",
    "parse_duration",
    "parse_when",
    "rfc3339",
]

# docs/ssh.md#ssh-key-generate-api-key units.
UNIT_SECONDS: dict[str, int] = {
    "s": 1,
    "min": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "mo": 30 * 86400,
    "y": 365 * 86400,
}

# Beyond this a duration cannot be added to a timestamp within a signed 64-bit integer;
# such a value is reported as an invalid duration instead of overflowing storage later.
MAX_DURATION_SECONDS = 2**62

_DIGITS = re.compile(r"[0-9]+")
_SPLIT = re.compile(r"([0-9]*)(.*)", re.DOTALL)


def parse_duration(text: str) -> int | None:
    """Seconds of a docs/ssh.md#ssh-key-generate-api-key duration, or ``None`` for ``never``/empty.

    Raises :class:`DurationError` with the exact message of the specification.
    """
    stripped = text.strip()
    lowered = stripped.lower() if stripped.isascii() else stripped
    if lowered in ("", "never"):
        return None
    match = _SPLIT.fullmatch(stripped)
    assert match is not None  # the pattern matches every string
    digits, unit_text = match.groups()
    if not digits:
        raise DurationError(f"invalid duration {quote(stripped)}")
    unit = unit_text.lower() if unit_text.isascii() else unit_text
    if unit == "m":
        raise DurationError('ambiguous duration unit "m": use "min" for minutes or "mo" for months')
    unit_seconds = UNIT_SECONDS.get(unit)
    if unit_seconds is None:
        raise DurationError(
            f"invalid duration unit {quote(unit_text)} (use s, min, h, d, w, mo, or y)"
        )
    if len(digits) > 20:  # far beyond MAX_DURATION_SECONDS; avoid converting huge numbers
        raise DurationError(f"invalid duration {quote(stripped)}")
    seconds = int(digits) * unit_seconds
    if seconds == 0 or seconds > MAX_DURATION_SECONDS:
        raise DurationError(f"invalid duration {quote(stripped)}")
    return seconds


# The units format_duration writes, largest first: exact calendar-free ones only, so that
# 90 days stays "90d" rather than turning into "3mo".
_FORMAT_UNITS = ("y", "d", "h", "min", "s")


def format_duration(seconds: int) -> str:
    """A positive number of seconds in the grammar above, with the largest of ``y``, ``d``,
    ``h``, ``min`` and ``s`` that divides it exactly: ``3600`` → ``1h``, ``7776000`` →
    ``90d``. :func:`parse_duration` reads the result back to the same number.
    """
    if seconds <= 0:
        raise ValueError("a duration is a positive number of seconds")
    for unit in _FORMAT_UNITS:
        count, rest = divmod(seconds, UNIT_SECONDS[unit])
        if rest == 0:
            return f"{count}{unit}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


def parse_when(text: str, now: int) -> int | None:
    """A client WHEN value (docs/client.md#sshmint-mint): unix seconds, or ``None`` for ``never``/empty.

    Digits alone are a unix timestamp; anything else is a duration added to ``now``.
    """
    stripped = text.strip()
    if _DIGITS.fullmatch(stripped):
        if len(stripped) > 20:  # far outside int64; refuse before converting
            raise DurationError(f"invalid timestamp {quote(stripped)}")
        return int(stripped)
    seconds = parse_duration(text)
    return None if seconds is None else now + seconds


def rfc3339(unix_seconds: int) -> str:
    """A point in time as every output shows it: RFC 3339, UTC, whole seconds, ``Z``
    (``2030-12-05T00:00:00Z``, docs/README.md#conventions)."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
