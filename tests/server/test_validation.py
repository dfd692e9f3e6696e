"""docs/accounts.md#users (emails), docs/accounts.md#name-sanitising (name sanitising), docs/accounts.md#vms (VM names, tags, host names), docs/README.md#conventions (%q)."""

from __future__ import annotations

import pytest

from sshmint.server.store.validation import (
    INVALID_VM_NAME,
    ValidationError,
    is_valid_tag,
    is_valid_vm_name,
    normalize_email,
    reduce_vm_name,
    sanitize_name,
)
from sshmint.strictjson import quote


def test_s0_quote_is_json_style() -> None:
    assert quote("foo") == '"foo"'
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert quote("tab\there") == '"tab\\there"'
    assert quote("<&>é") == '"<&>é"'  # not HTML- or ASCII-escaped


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("a@example.com", "a@example.com"),
        ("  A@Example.COM \t", "a@example.com"),  # R59: trimmed and lower-cased
        ("x+tag@sub.example", "x+tag@sub.example"),
        ("a@b", "a@b"),
    ],
)
def test_s5_1_valid_emails_are_trimmed_and_lowercased(given: str, stored: str) -> None:
    assert normalize_email(given) == stored


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        "no-at-sign",
        "@example.com",  # empty local part
        "a@",  # empty domain
        "a@b@c",  # two @
        "a b@example.com",  # inner whitespace
        "a@exa\u00a0mple.com",  # Unicode whitespace
        "a\x00@example.com",  # control character
        "a@example.com\x7f",
        "a@" + "x" * 253,  # 255 bytes
        "é" * 127 + "@x",  # 256 bytes in UTF-8 though 129 characters
    ],
)
def test_s5_1_invalid_emails_are_refused_with_quoted_input(given: str) -> None:
    with pytest.raises(ValidationError) as err:
        normalize_email(given)
    assert err.value.message == f"invalid email address: {quote(given)}"


def test_s5_1_email_of_exactly_254_bytes_is_valid() -> None:
    email = "a@" + "x" * 252
    assert normalize_email(email) == email


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("my laptop", "my-laptop"),  # R61
        ("  a   b  ", "a-b"),
        ("--evil", "evil"),
        ("foo;rm -rf /", "foorm--rf"),
        ("$(x)", "x"),
        ("|&;$`\\\"'<>(){}[]!#*?~/", ""),
        ("tab\tand\nnewline", "tabandnewline"),  # control characters are removed first
        ("a\u00a0b\u2003c", "a-b-c"),  # Unicode whitespace separates
        ("- - x", "x"),
        ("ok_name.1@host", "ok_name.1@host"),
        ("x" * 70, "x" * 64),  # cut to 64 code points
        ("é" * 70, "é" * 64),
    ],
)
def test_s5_3_name_sanitising_examples(given: str, expected: str) -> None:
    assert sanitize_name(given) == expected


@pytest.mark.parametrize("name", ["a", "foo", "a-vm-name", "x1", "a1-b2-c3", "a" * 52])
def test_s5_6_valid_vm_names(name: str) -> None:
    assert is_valid_vm_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "Bad_Name", "1abc", "-a", "a-", "a--b", "a_b", "A", "a.b", "a" * 53, "é", "a b"],
)
def test_s5_6_invalid_vm_names(name: str) -> None:
    assert not is_valid_vm_name(name)


def test_s5_6_invalid_vm_name_message_is_exact() -> None:
    assert INVALID_VM_NAME == (
        "invalid VM name, must be 1-52 characters: start with a lowercase letter, then "
        "lowercase letters or digits, with optional single hyphen separators (e.g., a-vm-name)"
    )


@pytest.mark.parametrize("tag", ["a", "prod", "ci_2", "a-b", "z9"])
def test_s4_3_valid_tags(tag: str) -> None:
    assert is_valid_tag(tag)


@pytest.mark.parametrize("tag", ["", "Prod", "1a", "_a", "-a", "a b", "a.b", "a,b"])
def test_s4_3_invalid_tags(tag: str) -> None:
    assert not is_valid_tag(tag)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("myapp.vm.test", "myapp"),
        ("myapp.VM.Test", "myapp"),  # host names compare case-insensitively
        ("myapp", "myapp"),
        (".vm.test", ".vm.test"),  # nothing before the suffix: left alone
        ("myapp.other.test", "myapp.other.test"),
        ("a.b.vm.test", "a.b"),  # reduced, then refused as a VM name
    ],
)
def test_s5_6_host_name_reduction(given: str, expected: str) -> None:
    assert reduce_vm_name(given, "vm.test") == expected
