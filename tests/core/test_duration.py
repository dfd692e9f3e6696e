"""Durations (docs/ssh.md#ssh-key-generate-api-key) and client WHEN values (docs/client.md#sshmint-mint)."""

from __future__ import annotations

import pytest

from sshmint.duration import parse_duration, parse_when
from sshmint.errors import DurationError, SSHMintError

AMBIGUOUS = 'ambiguous duration unit "m": use "min" for minutes or "mo" for months'
NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15min", 15 * 60),
        ("12h", 12 * 3600),
        ("30d", 30 * 86400),
        ("2w", 14 * 86400),
        ("2mo", 60 * 86400),
        ("1y", 365 * 86400),
        ("1Y", 365 * 86400),  # case-insensitive
        ("15MIN", 900),
        ("3Mo", 3 * 30 * 86400),
        ("  7d ", 7 * 86400),  # surrounding spaces ignored
        ("007h", 7 * 3600),
    ],
)
def test_s6_6_16_units(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "   ", "never", "NEVER", " Never "])
def test_s6_6_16_empty_or_never_means_no_expiry(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["15m", "1M", " 30m "])
def test_s6_6_16_bare_m_is_ambiguous(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert info.value.message == AMBIGUOUS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", 'invalid duration "abc"'),  # no digits
        ("h", 'invalid duration "h"'),
        ("m", 'invalid duration "m"'),  # no digits comes before the unit
        ("-5h", 'invalid duration "-5h"'),  # non-digits
        ("0h", 'invalid duration "0h"'),  # zero
        ("000d", 'invalid duration "000d"'),
        (" x1h ", 'invalid duration "x1h"'),  # quoted text is trimmed
        ("99999999999999999999999y", 'invalid duration "99999999999999999999999y"'),
        ("15x", 'invalid duration unit "x" (use s, min, h, d, w, mo, or y)'),
        ("15mins", 'invalid duration unit "mins" (use s, min, h, d, w, mo, or y)'),
        ("1.5h", 'invalid duration unit ".5h" (use s, min, h, d, w, mo, or y)'),
        ("5 h", 'invalid duration unit " h" (use s, min, h, d, w, mo, or y)'),
        ("15", 'invalid duration unit "" (use s, min, h, d, w, mo, or y)'),
        ("1MS", 'invalid duration unit "MS" (use s, min, h, d, w, mo, or y)'),
    ],
)
def test_s6_6_16_errors_have_the_exact_messages(text: str, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert info.value.message == message
    assert isinstance(info.value, SSHMintError)


def test_a4_when_digits_are_a_unix_timestamp() -> None:
    assert parse_when("2000000000", NOW) == 2_000_000_000
    assert parse_when(" 946684800 ", NOW) == 946_684_800


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15min", NOW + 900),
        ("12h", NOW + 43200),
        ("30d", NOW + 2_592_000),
        ("1y", NOW + 31_536_000),
    ],
)
def test_a4_when_duration_is_now_plus(text: str, expected: int) -> None:
    assert parse_when(text, NOW) == expected


def test_a4_when_never_is_none() -> None:
    assert parse_when("never", NOW) is None
    assert parse_when("", NOW) is None


def test_a4_when_errors_are_duration_errors() -> None:
    with pytest.raises(DurationError) as info:
        parse_when("15m", NOW)
    assert info.value.message == AMBIGUOUS
    with pytest.raises(DurationError) as info:
        parse_when("tomorrow", NOW)
    assert info.value.message == 'invalid duration "tomorrow"'
    with pytest.raises(DurationError) as info:
        parse_when("1" * 30, NOW)
    assert info.value.message == f'invalid timestamp "{"1" * 30}"'
