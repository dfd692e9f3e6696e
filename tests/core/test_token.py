"""exe0/exe1 tokens: docs/tokens.md#wire-format wire format, docs/tokens.md#validation parsing order and messages, docs/tokens.md#claims claims, docs/permissions.md#token-cmds cmds.

Malformed tokens are built by overriding one field of a valid token signed by a real
``ssh-keygen`` key; every message is compared exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sshmint import sshsig
from sshmint.errors import (
    INVALID_TOKEN,
    MalformedSignatureError,
    TokenError,
    TokenExpiredError,
    TokenFormatError,
    TokenNotYetValidError,
    TokenVerificationError,
)
from sshmint.keys import PublicKey
from sshmint.signing import PrivateKeySigner, load_private_key
from sshmint.strictjson import WHITESPACE
from sshmint.token import (
    DEFAULT_CMDS,
    KEEP,
    MAX_TOKEN_BYTES,
    ParsedToken,
    Permissions,
    RawJSON,
    b64url_decode,
    b64url_encode,
    build_payload,
    check_claims,
    encode_payload,
    is_well_formed_exe1,
    mint_exe0,
    parse_exe0,
    validate_payload,
    verify_exe0,
    verify_signature,
)

NS = "v0@localhost"
NOW = 1_800_000_000

WS = "invalid token: payload must not have leading or trailing whitespace"
NEWLINES = "invalid token: payload must not contain newlines"
NULS = "invalid token: payload must not contain null bytes"
NOT_OBJECT = "invalid token: payload must be a JSON object"
INVALID_JSON = "invalid token: invalid JSON"
EXP_RANGE = "invalid token: exp out of valid range"
NBF_RANGE = "invalid token: nbf out of valid range"
CMDS_EMPTY = "invalid token: cmds elements must be non-empty strings"
PAYLOAD_B64 = "invalid token: payload is not valid base64url"
SIG_B64 = "invalid token: signature is not valid base64url"
MALFORMED = "invalid token: malformed signature"
SIZE = "invalid token: exceeds maximum size"
PREFIX = "invalid token format: missing exe0. prefix"
LAYOUT = "invalid token format: expected exe0.<payload>.<sigblob>"


@pytest.fixture(scope="module")
def key_files(ssh_keygen_key: Callable[..., Path]) -> dict[str, Path]:
    return {
        "ed25519": ssh_keygen_key("ed25519"),
        "ecdsa": ssh_keygen_key("ecdsa"),
        "rsa": ssh_keygen_key("rsa"),
    }


@pytest.fixture(scope="module")
def signers(key_files: dict[str, Path]) -> dict[str, PrivateKeySigner]:
    return {kind: load_private_key(path) for kind, path in key_files.items()}


@pytest.fixture(scope="module")
def ed(signers: dict[str, PrivateKeySigner]) -> PrivateKeySigner:
    return signers["ed25519"]


def lookup_for(*keys: PublicKey) -> Callable[[str], PublicKey | None]:
    return {k.fingerprint: k for k in keys}.get


def signed(signer: PrivateKeySigner, payload: bytes = b"{}", namespace: str = NS) -> str:
    """A correctly signed token, even for a payload that the parser must refuse."""
    return mint_exe0(payload, signer, namespace, validate=False)


def override(token: str, *, payload: bytes | None = None, blob: bytes | None = None) -> str:
    """``token`` with one part replaced (the other part stays valid)."""
    _, payload_part, signature_part = token.split(".", 2)
    if payload is not None:
        payload_part = b64url_encode(payload)
    if blob is not None:
        signature_part = b64url_encode(blob)
    return f"exe0.{payload_part}.{signature_part}"


def unsigned(payload: bytes, signature_part: str) -> str:
    return f"exe0.{b64url_encode(payload)}.{signature_part}"


def parse_failure(token: str) -> TokenFormatError:
    with pytest.raises(TokenFormatError) as info:
        parse_exe0(token)
    return info.value


def signature_part(token: str) -> str:
    return token.split(".", 2)[2]


# --- docs/tokens.md#strict-json examples --------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"{}", Permissions()),
        (b'{"ctx":{"nested":1}}', Permissions(ctx_raw='{"nested":1}', has_ctx=True)),
        (b'{"exp":2000000000,"nbf":1000000000}', Permissions(exp=2000000000, nbf=1000000000)),
        (b'{"exp":946684800}', Permissions(exp=946684800)),
        (b'{"exp":4102444800}', Permissions(exp=4102444800)),
        (b'{"cmds":[]}', Permissions(cmds=())),
        (b'{"exp":null}', Permissions()),
        (b'{"cmds":null}', Permissions()),
        (b'{"ctx":[1,2,3]}', Permissions(ctx_raw="[1,2,3]", has_ctx=True)),
        (b'{"ctx":"hello"}', Permissions(ctx_raw='"hello"', has_ctx=True)),
        (b'{"exp": 2000000000}', Permissions(exp=2000000000)),  # inner whitespace
        (b'{"nbf":null,"cmds":["whoami"]}', Permissions(cmds=("whoami",))),
    ],
)
def test_r28_r30_s2_2_examples_that_must_pass(
    ed: PrivateKeySigner, payload: bytes, expected: Permissions
) -> None:
    parsed = parse_exe0(signed(ed, payload))
    assert parsed.payload == payload
    assert parsed.permissions == expected


SPEC_2_2_FAILURES = [
    (b" {}", WS),
    (b"{} ", WS),
    (b"\t{}", WS),
    (b'{\n"exp":2000000000}', NEWLINES),
    (b'{\r"exp":2000000000}', NEWLINES),
    (b'{"exp":4000000000\x00}', NULS),
    (b"\x00{}", NULS),
    (b"", NOT_OBJECT),
    (b"[]", NOT_OBJECT),
    (b"null", NOT_OBJECT),
    (b'"x"', NOT_OBJECT),
    (b"not json", NOT_OBJECT),
    (b'{"admin":true}', 'invalid token: unknown field "admin"'),
    (b'{"exp":2000000000,"exp":2100000000}', INVALID_JSON),
    (b'{"ctx":{"a":1,"a":2}}', INVALID_JSON),
    (b'{"ctx":{"a":{"b":1,"b":2}}}', INVALID_JSON),
    (b'{"exp":"2000000000"}', INVALID_JSON),
    (b'{"exp":2000000000.5}', INVALID_JSON),
    (b'{"exp":2e9}', INVALID_JSON),
    (b'{"exp":99999999999999999999}', INVALID_JSON),
    (b'{"cmds":"ls"}', INVALID_JSON),
    (b'{"cmds":[1]}', INVALID_JSON),
    (b'{"cmds":[{"cmd":"rm"}]}', INVALID_JSON),
    (b'{"exp":100}', EXP_RANGE),
    (b'{"exp":946684799}', EXP_RANGE),
    (b'{"exp":4102444801}', EXP_RANGE),
    (b'{"exp":-1}', EXP_RANGE),
    (b'{"nbf":100}', NBF_RANGE),
    (b'{"cmds":["ls",""]}', CMDS_EMPTY),
]


@pytest.mark.parametrize(("payload", "message"), SPEC_2_2_FAILURES)
def test_r19_r29_s2_2_examples_that_must_fail(
    ed: PrivateKeySigner, payload: bytes, message: str
) -> None:
    assert parse_failure(signed(ed, payload)).message == message
    with pytest.raises(TokenFormatError) as info:
        validate_payload(payload)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"foo":"bar"}', 'invalid token: unknown field "foo"'),
        (b'{"EXP":1}', 'invalid token: unknown field "EXP"'),
        (b'{"Exp":2000000000}', 'invalid token: unknown field "Exp"'),
        (b'{"\\u00e9":1}', 'invalid token: unknown field "\xe9"'),
        (b'{"a\\"b":1}', 'invalid token: unknown field "a\\"b"'),
    ],
)
def test_r23_unknown_fields_are_named_with_q_quoting(
    ed: PrivateKeySigner, payload: bytes, message: str
) -> None:
    failure = parse_failure(signed(ed, payload))
    assert (failure.message, failure.step) == (message, 9)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"exp":2000000000.0}',
        b'{"exp":2E9}',
        b'{"exp":2e+9}',
        b'{"exp":true}',
        b'{"exp":false}',
        b'{"nbf":[2000000000]}',
        b'{"nbf":{}}',
        b'{"exp":02000000000}',
        b'{"exp":9223372036854775808}',  # int64 max + 1
        b'{"exp":-9223372036854775809}',  # int64 min - 1
        b'{"exp":NaN}',
        b'{"ctx":Infinity}',
        b'{"cmds":[null]}',
        b'{"cmds":{}}',
        b'{"cmds":true}',
        b'{"ctx":[{"a":1,"a":2}]}',  # duplicate inside an object inside an array
        b'{"ctx":{"a":1,"\\u0061":2}}',  # names compare after decoding escapes
        b'{"exp":null,"exp":2000000000}',
        b"{}x",
        b"{}{}",
        b'{"exp":1,}',
        b'{"ctx":"\xff"}',  # invalid UTF-8
        b'{"ctx":"\xc0\xaf"}',  # overlong encoding
        b'{"ctx":"\xed\xa0\x80"}',  # UTF-8-encoded surrogate
        b'{"ctx":"\xe2\x82"}',  # truncated sequence
        b'{"ctx":"\xe2\x82\xac\xff"}',
        b'{"exp":\xc2\xa02000000000}',  # U+00A0 is no JSON whitespace
    ],
)
def test_r26_s2_2_step_9_failures_are_invalid_json(ed: PrivateKeySigner, payload: bytes) -> None:
    failure = parse_failure(signed(ed, payload))
    assert (failure.message, failure.step) == (INVALID_JSON, 9)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"exp":9223372036854775807}', EXP_RANGE),  # int64, so it passes step 9
        (b'{"exp":-9223372036854775808}', EXP_RANGE),
        (b'{"exp":-0}', EXP_RANGE),
        (b'{"nbf":4102444801}', NBF_RANGE),
        (b'{"nbf":946684799}', NBF_RANGE),
        (b'{"cmds":[""]}', CMDS_EMPTY),
    ],
)
def test_r27_range_and_cmds_steps(ed: PrivateKeySigner, payload: bytes, message: str) -> None:
    assert parse_failure(signed(ed, payload)).message == message


@pytest.mark.parametrize("char", list(WHITESPACE))
def test_r19_every_specified_whitespace_character_is_refused_at_either_end(
    ed: PrivateKeySigner, char: str
) -> None:
    ws = char.encode("utf-8")
    for payload in (ws + b"{}", b"{}" + ws):
        failure = parse_failure(signed(ed, payload))
        assert (failure.message, failure.step) == (WS, 5)


def test_s2_2_whitespace_inside_the_document_is_allowed(ed: PrivateKeySigner) -> None:
    payload = b'{ "exp" :\t2000000000 , "ctx" : [ 1 ,\t2 ] }'
    perms = parse_exe0(signed(ed, payload)).permissions
    assert perms == Permissions(exp=2000000000, ctx_raw="[ 1 ,\t2 ]", has_ctx=True)


def test_s2_2_lone_surrogate_escape_in_ctx_is_valid_json(ed: PrivateKeySigner) -> None:
    perms = parse_exe0(signed(ed, b'{"ctx":"\\ud800"}')).permissions
    assert perms.ctx_raw == '"\\ud800"'


def test_permissions_and_parsed_token_are_frozen_values(ed: PrivateKeySigner) -> None:
    perms = Permissions(exp=2000000000, cmds=("ls",))
    assert perms == Permissions(2000000000, None, ("ls",), None, False)
    assert hash(perms) == hash(Permissions(exp=2000000000, cmds=("ls",)))
    assert dataclasses.replace(perms, exp=None) == Permissions(cmds=("ls",))
    assert repr(Permissions()) == (
        "Permissions(exp=None, nbf=None, cmds=None, ctx_raw=None, has_ctx=False)"
    )
    parsed = parse_exe0(signed(ed))
    for obj, field in ((perms, "exp"), (parsed, "payload")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, None)
    assert dataclasses.replace(parsed, token="x").payload == parsed.payload == b"{}"


# --- docs/proxy.md#what-the-upstream-receives / docs/tokens.md#strict-json: ctx raw text and null members ---------------------------------


def test_s8_7_ctx_raw_text_is_the_exact_value_text(ed: PrivateKeySigner) -> None:
    payload = b'{"ctx":  {"b" : 1.50, "a":[1e3, "\\u00e9"]} ,"exp":2000000000}'
    perms = parse_exe0(signed(ed, payload)).permissions
    assert perms.ctx_raw == '{"b" : 1.50, "a":[1e3, "\\u00e9"]}'
    assert perms.has_ctx


def test_s2_2_null_ctx_is_present_other_nulls_are_absent(ed: PrivateKeySigner) -> None:
    perms = parse_exe0(signed(ed, b'{"exp":null,"nbf":null,"cmds":null,"ctx":null}')).permissions
    assert perms == Permissions(exp=None, nbf=None, cmds=None, ctx_raw="null", has_ctx=True)
    assert perms.effective_cmds == DEFAULT_CMDS
    absent = parse_exe0(signed(ed, b"{}")).permissions
    assert (absent.has_ctx, absent.ctx_raw) == (False, None)


# --- docs/tokens.md#validation: every step with its message, in order --------------------------------


def test_r14_token_of_8193_bytes_is_rejected_before_the_prefix_check(ed: PrivateKeySigner) -> None:
    assert parse_failure("x" * 8193).message == SIZE
    valid = token_of_length(ed, MAX_TOKEN_BYTES + 1)
    failure = parse_failure(valid)
    assert (failure.message, failure.step) == (SIZE, 1)


def test_r14_size_counts_bytes_not_characters() -> None:
    token = "exe0." + "\xe9" * 4094  # 4099 characters, 8193 bytes
    assert parse_failure(token).message == SIZE
    assert parse_failure("exe0." + "\xe9" * 4093).message == LAYOUT  # 8191 bytes


def token_of_length(signer: PrivateKeySigner, length: int) -> str:
    """A correctly signed token of exactly ``length`` bytes (namespace and ctx padded)."""
    for extra in range(8):
        namespace = "v0@" + "a" * extra + "localhost"
        sig_len = len(b64url_encode(sshsig.sign(b"{}", namespace, signer)))
        payload_len = length - len("exe0.") - 1 - sig_len
        if payload_len % 4 == 1:
            continue  # no base64url text has this length
        size = payload_len * 3 // 4
        payload = b'{"ctx":"' + b"a" * (size - 10) + b'"}'
        token = signed(signer, payload, namespace)
        assert len(token) == length
        return token
    raise AssertionError("no padding reaches the length")


def test_r15_token_of_exactly_8192_bytes_is_accepted(ed: PrivateKeySigner) -> None:
    token = token_of_length(ed, MAX_TOKEN_BYTES)
    namespace = parse_exe0(token).sshsig.namespace.decode()
    assert verify_exe0(token, namespace, lookup_for(ed.public_key), NOW).token == token


@pytest.mark.parametrize(
    "token", ["", "payload.sigblob", "exe2.a.b", "EXE0.e30.x", "exe1.e30.x", "exe0"]
)
def test_r16_step_2_missing_prefix(token: str) -> None:
    failure = parse_failure(token)
    assert (failure.message, failure.step) == (PREFIX, 2)


@pytest.mark.parametrize("token", ["exe0.abc", "exe0.onlyonepart", "exe0."])
def test_r17_step_3_needs_two_parts(token: str) -> None:
    failure = parse_failure(token)
    assert (failure.message, failure.step) == (LAYOUT, 3)


@pytest.mark.parametrize(
    "payload_part", ["!!!", "e30=", "e3+9", "e3/9", "e30ab", "e3 0", "\xe930", "e30."]
)
def test_r6_r18_step_4_payload_not_base64url(ed: PrivateKeySigner, payload_part: str) -> None:
    token = f"exe0.{payload_part}.{signature_part(signed(ed))}"
    if payload_part == "e30.":
        token = "exe0.e30..x"  # the first dot splits: payload "e30", signature ".x"
        assert parse_failure(token).message == SIG_B64
        return
    failure = parse_failure(token)
    assert (failure.message, failure.step) == (PAYLOAD_B64, 4)


def test_s2_1_exe0_dot_dot_fails_at_step_8() -> None:
    failure = parse_failure("exe0..")
    assert (failure.message, failure.step) == (NOT_OBJECT, 8)


@pytest.mark.parametrize("suffix", ["!!!", "=", "+", "/", ".x", " ", "A"])
def test_r6_r31_step_14_signature_not_base64url(ed: PrivateKeySigner, suffix: str) -> None:
    token = signed(ed)
    if suffix == "!!!":
        token = "exe0.e30.!!!"
    elif suffix == "A":
        # Pad the signature part to a length of 1 modulo 4.
        part = signature_part(token)
        part += "A" * ((1 - len(part)) % 4)
        token = f"exe0.e30.{part}"
    else:
        token += suffix
    failure = parse_failure(token)
    assert (failure.message, failure.step) == (SIG_B64, 14)


def test_r31_step_15_empty_or_non_sshsig_signature(ed: PrivateKeySigner) -> None:
    for token in ("exe0.e30.", "exe0.e30.AAAA", "exe0.e30." + b64url_encode(b"SSHSIG")):
        failure = parse_failure(token)
        assert isinstance(failure, MalformedSignatureError)
        assert (failure.message, failure.step) == (MALFORMED, 15)


def test_r4_step_15_blob_field_overrides_are_malformed(
    signers: dict[str, PrivateKeySigner],
) -> None:
    token = signed(signers["ed25519"])
    blob = b64url_decode(signature_part(token))
    sig = sshsig.parse_sshsig(blob)
    broken = [
        b"SSHSIH" + blob[6:],  # magic
        blob[:6] + (2).to_bytes(4, "big") + blob[10:],  # version 2
        blob + b"\x00",  # trailing byte
        blob[:-1],  # truncated
        sshsig.encode_sshsig(dataclasses.replace(sig, hash_algorithm="md5")),
        sshsig.encode_sshsig(dataclasses.replace(sig, hash_algorithm="sha384")),
    ]
    for bad in broken:
        failure = parse_failure(override(token, blob=bad))
        assert (failure.message, failure.step) == (MALFORMED, 15)


def test_r5_step_15_rsa_with_sha1_signature_format_is_malformed(
    signers: dict[str, PrivateKeySigner],
) -> None:
    token = signed(signers["rsa"])
    sig = sshsig.parse_sshsig(b64url_decode(signature_part(token)))
    assert sig.signature_format == "rsa-sha2-512"
    sigblob = sig.signature[4 + len(b"rsa-sha2-512") :]
    sha1_format = dataclasses.replace(sig, signature=b"\x00\x00\x00\x07ssh-rsa" + sigblob)
    failure = parse_failure(override(token, blob=sshsig.encode_sshsig(sha1_format)))
    assert (failure.message, failure.step) == (MALFORMED, 15)


def test_r35_step_16_expired(ed: PrivateKeySigner) -> None:
    token = signed(ed, b'{"exp":%d}' % (NOW - 3600))
    with pytest.raises(TokenExpiredError) as info:
        verify_exe0(token, NS, lookup_for(ed.public_key), NOW)
    assert (info.value.message, info.value.step) == ("invalid token: token has expired", 16)


def test_r36_step_17_not_yet_valid(ed: PrivateKeySigner) -> None:
    token = signed(ed, b'{"nbf":%d}' % (NOW + 3600))
    with pytest.raises(TokenNotYetValidError) as info:
        verify_exe0(token, NS, lookup_for(ed.public_key), NOW)
    assert (info.value.message, info.value.step) == ("invalid token: token is not yet valid", 17)


def test_r32_step_18_unregistered_key(signers: dict[str, PrivateKeySigner]) -> None:
    token = signed(signers["ed25519"])
    seen: list[str] = []

    def lookup(fp: str) -> PublicKey | None:
        seen.append(fp)
        return None

    with pytest.raises(TokenVerificationError) as info:
        verify_exe0(token, NS, lookup, NOW)
    assert (info.value.message, info.value.step) == (INVALID_TOKEN, 18)
    assert seen == [signers["ed25519"].public_key.fingerprint]


@pytest.mark.parametrize(
    "namespace", ["v0@evil.com", "v0@myvm.localhost", "V0@localhost", "v0@localhost "]
)
def test_r7_r8_step_19_wrong_namespace(ed: PrivateKeySigner, namespace: str) -> None:
    with pytest.raises(TokenVerificationError) as info:
        verify_exe0(signed(ed, b"{}", namespace), NS, lookup_for(ed.public_key), NOW)
    assert (info.value.message, info.value.step) == (INVALID_TOKEN, 19)


def test_r9_step_19_one_changed_payload_byte(ed: PrivateKeySigner) -> None:
    token = signed(ed, b'{"exp":2000000000}')
    tampered = override(token, payload=b'{"exp":2000000001}')
    assert parse_exe0(tampered).permissions.exp == 2000000001  # still parses
    with pytest.raises(TokenVerificationError) as info:
        verify_exe0(tampered, NS, lookup_for(ed.public_key), NOW)
    assert (info.value.message, info.value.step) == (INVALID_TOKEN, 19)


def test_s1_4_step_19_lookup_returning_another_key_fails(
    signers: dict[str, PrivateKeySigner],
) -> None:
    token = signed(signers["ed25519"])
    other = signers["ecdsa"].public_key
    with pytest.raises(TokenVerificationError) as info:
        verify_exe0(token, NS, lambda fp: other, NOW)
    assert info.value.step == 19


def test_s2_1_first_failing_step_decides(ed: PrivateKeySigner) -> None:
    assert parse_failure("y" * 9000).message == SIZE  # 1 before 2
    assert parse_failure("exe0.!!!.!!!").message == PAYLOAD_B64  # 4 before 14
    assert parse_failure(unsigned(b" {\n}", "!!!")).message == WS  # 5 before 6, 14
    assert parse_failure(unsigned(b"{\n\x00}", "")).message == NEWLINES  # 6 before 7
    assert parse_failure(unsigned(b"\x00[]", "")).message == NULS  # 7 before 8
    unknown_and_range = b'{"exp":100,"foo":1}'
    assert (
        parse_failure(signed(ed, unknown_and_range)).message == 'invalid token: unknown field "foo"'
    )
    assert (
        parse_failure(signed(ed, b'{"cmds":[""],"exp":100}')).message == EXP_RANGE
    )  # 10 before 13
    assert parse_failure(signed(ed, b'{"exp":100,"nbf":100}')).message == EXP_RANGE  # 10 before 11
    assert (
        parse_failure(signed(ed, b'{"nbf":100,"cmds":[""]}')).message == NBF_RANGE
    )  # 11 before 13
    assert parse_failure(unsigned(b'{"cmds":[""]}', "!!!")).message == CMDS_EMPTY  # 13 before 14
    # 16 before 18: an expired token from an unknown key reports expiry.
    with pytest.raises(TokenExpiredError):
        verify_exe0(signed(ed, b'{"exp":946684800}'), NS, lookup_for(), NOW)


def test_s2_1_exe0_e30_dot_fails_at_step_15() -> None:
    failure = parse_failure("exe0.e30.")
    assert (failure.message, failure.step) == (MALFORMED, 15)


# --- docs/tokens.md#claims claims -------------------------------------------------------------------


def test_r37_exp_and_nbf_equal_to_now_are_valid() -> None:
    check_claims(Permissions(exp=NOW), NOW)
    check_claims(Permissions(nbf=NOW), NOW)
    with pytest.raises(TokenExpiredError):
        check_claims(Permissions(exp=NOW - 1), NOW)
    with pytest.raises(TokenNotYetValidError):
        check_claims(Permissions(nbf=NOW + 1), NOW)


def test_r37_token_with_exp_or_nbf_at_now_verifies(ed: PrivateKeySigner) -> None:
    lookup = lookup_for(ed.public_key)
    for payload in (b'{"exp":%d}' % NOW, b'{"nbf":%d}' % NOW, b'{"exp":%d,"nbf":%d}' % (NOW, NOW)):
        assert verify_exe0(signed(ed, payload), NS, lookup, NOW).payload == payload


def test_s3_exp_equal_nbf_is_valid_only_during_that_second() -> None:
    perms = Permissions(exp=NOW, nbf=NOW)
    with pytest.raises(TokenNotYetValidError):
        check_claims(perms, NOW - 1)
    check_claims(perms, NOW)
    with pytest.raises(TokenExpiredError):
        check_claims(perms, NOW + 1)


def test_r38_nbf_after_exp_is_never_valid_and_reports_expired_between() -> None:
    perms = Permissions(exp=NOW, nbf=NOW + 10)
    with pytest.raises(TokenExpiredError):
        check_claims(perms, NOW + 5)
    with pytest.raises(TokenExpiredError):
        check_claims(perms, NOW + 20)
    with pytest.raises(TokenNotYetValidError):
        check_claims(perms, NOW - 5)


def test_r39_trade_rule_checks_exp_only() -> None:
    check_claims(Permissions(nbf=NOW + 3600), NOW, check_nbf=False)
    with pytest.raises(TokenExpiredError):
        check_claims(Permissions(exp=NOW - 1, nbf=NOW + 3600), NOW, check_nbf=False)


def test_r28_exp_lower_bound_passes_parsing_then_fails_as_expired(ed: PrivateKeySigner) -> None:
    token = signed(ed, b'{"exp":946684800}')
    assert parse_exe0(token).permissions.exp == 946684800
    with pytest.raises(TokenExpiredError):
        verify_exe0(token, NS, lookup_for(ed.public_key), NOW)
    upper = signed(ed, b'{"exp":4102444800}')
    assert verify_exe0(upper, NS, lookup_for(ed.public_key), NOW).permissions.exp == 4102444800


# --- docs/permissions.md#token-cmds cmds -------------------------------------------------------------------


def test_r41_default_cmds_exact_list_and_order() -> None:
    assert DEFAULT_CMDS == (
        "help",
        "ls",
        "new",
        "whoami",
        "ssh-key list",
        "share show",
        "exe0-to-exe1",
    )
    perms = Permissions()
    assert perms.effective_cmds == DEFAULT_CMDS
    assert all(perms.allows(c) for c in DEFAULT_CMDS)
    assert not perms.allows("rm")
    assert not perms.allows("ssh-key")


def test_r42_empty_cmds_permit_nothing() -> None:
    perms = Permissions(cmds=())
    assert perms.effective_cmds == ()
    assert not any(perms.allows(c) for c in (*DEFAULT_CMDS, "rm", ""))


def test_r44_cmds_match_exactly_without_parent_or_child_rule() -> None:
    assert not Permissions(cmds=("ssh-key",)).allows("ssh-key list")
    assert Permissions(cmds=("ssh-key list",)).allows("ssh-key list")
    assert not Permissions(cmds=("ssh-key list",)).allows("ssh-key")
    assert not Permissions(cmds=("whoami",)).allows("WHOAMI")
    assert Permissions(cmds=("whoami",)).allows("whoami")


# --- docs/tokens.md#base64url base64url, docs/tokens.md#exe1-tokens exe1 ---------------------------------------------------


def test_s1_2_base64url_rules() -> None:
    assert b64url_decode("") == b""
    assert b64url_decode("e30") == b"{}"
    assert b64url_decode("QQ") == b64url_decode("QR") == b"A"  # unused trailing bits ignored
    assert b64url_decode("-_8") == b"\xfb\xff"
    for bad in ("e30=", "QQ==", "+w", "/w", "Q", "QUJDR", "a b", "é", "e30\n"):
        with pytest.raises(ValueError):
            b64url_decode(bad)
    for n in range(0, 20):
        data = bytes(range(250, 250 - n, -1))
        text = b64url_encode(data)
        assert "=" not in text and "+" not in text and "/" not in text
        assert b64url_decode(text) == data


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        ("exe1." + "A" * 26, True),
        ("exe1." + "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[:26], True),
        ("exe1." + "B" * 20, True),
        ("exe1." + "7" * 40, True),
        ("exe1." + "A" * 19, False),
        ("exe1." + "A" * 41, False),
        ("exe1." + "a" * 26, False),
        ("exe1." + "A" * 25 + "0", False),
        ("exe1." + "A" * 25 + "1", False),
        ("exe1." + "A" * 25 + "8", False),
        ("exe1." + "A" * 25 + "9", False),
        ("exe1." + "A" * 25 + " ", False),
        ("exe1." + "A" * 26 + "\n", False),
        ("exe1." + "A" * 25 + "=", False),
        ("exe0." + "A" * 26, False),
        ("exe1.", False),
    ],
)
def test_r11_exe1_well_formedness(token: str, ok: bool) -> None:
    assert is_well_formed_exe1(token) is ok


# --- signing and verification across key types (docs/tokens.md#sshsig-blob) ------------------------


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_r2_mint_and_verify_each_key_type(
    signers: dict[str, PrivateKeySigner], key_files: dict[str, Path], kind: str
) -> None:
    signer = signers[kind]
    token = mint_exe0(b'{"exp":2000000000,"cmds":["whoami"]}', signer, NS)
    parsed = verify_exe0(token, NS, lookup_for(signer.public_key), NOW)
    assert isinstance(parsed, ParsedToken)
    assert (
        parsed.sshsig.hash_algorithm == "sha512"
    )  # docs/tokens.md#key-and-signature-types: sshmint signs with sha512
    assert parsed.public_key == signer.public_key
    assert verify_signature(parsed, signer.public_key, NS)
    assert not verify_signature(parsed, signer.public_key, "v0@other")
    keygen = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{key_files[kind]}.pub"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert keygen.stdout.split()[1] == "SHA256:" + parsed.fingerprint
    if kind == "rsa":
        assert parsed.sshsig.signature_format == "rsa-sha2-512"


def test_r3_sha256_sshsig_is_accepted(ed: PrivateKeySigner) -> None:
    blob = sshsig.sign(b"{}", NS, ed, "sha256")
    token = f"exe0.e30.{b64url_encode(blob)}"
    assert verify_exe0(token, NS, lookup_for(ed.public_key), NOW).sshsig.hash_algorithm == "sha256"


def test_r1_mint_matches_ssh_keygen_byte_for_byte(
    ed: PrivateKeySigner, key_files: dict[str, Path]
) -> None:
    payload = b'{"exp":2000000000}'
    armored = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(key_files["ed25519"]), "-n", NS],
        input=payload,
        check=True,
        capture_output=True,
    ).stdout.decode()
    assert (
        mint_exe0(payload, ed, NS)
        == f"exe0.{b64url_encode(payload)}.{b64url_encode(sshsig.dearmor(armored))}"
    )


def test_mint_refuses_payloads_that_would_not_parse(ed: PrivateKeySigner) -> None:
    with pytest.raises(TokenFormatError) as info:
        mint_exe0(b'{"foo":1}', ed, NS)
    assert info.value.message == 'invalid token: unknown field "foo"'
    with pytest.raises(TokenFormatError) as info:
        mint_exe0(b'{"ctx":"' + b"a" * 7000 + b'"}', ed, NS)
    assert (info.value.message, info.value.step) == (SIZE, 1)


# --- docs/client.md#sshmint-mint payload building ----------------------------------------------------------


def test_a4_payload_with_nothing_is_empty_object() -> None:
    assert build_payload() == b"{}"
    assert build_payload(None, exp=None, nbf=None, cmds=None, ctx_text=None) == b"{}"


def test_a4_only_perms_is_used_verbatim() -> None:
    perms = '{"cmds": ["whoami"],  "exp":2000000000 }'
    assert build_payload(perms) == perms.encode()


def test_a4_options_reemit_compactly_in_order_with_ctx_verbatim() -> None:
    perms = '{"ctx": {"z" : 1.50}, "cmds": ["ls"], "nbf": 1000000000}'
    assert build_payload(perms, exp=2000000000) == (
        b'{"exp":2000000000,"nbf":1000000000,"cmds":["ls"],"ctx":{"z" : 1.50}}'
    )
    assert build_payload(None, cmds=["whoami", "ssh-key list"], ctx_text=' [1, "\xe9"] ') == (
        '{"cmds":["whoami","ssh-key list"],"ctx":[1, "\xe9"]}'.encode()
    )
    assert build_payload(None, ctx_text="null") == b'{"ctx":null}'


def test_a4_exp_never_removes_exp() -> None:
    assert build_payload('{"exp":2000000000,"cmds":[]}', exp=None) == b'{"cmds":[]}'
    assert build_payload('{"exp":2000000000}', nbf=KEEP, cmds=KEEP, exp=None) == b"{}"


class PayloadOptions(TypedDict, total=False):
    """Keyword arguments of :func:`build_payload`, as the cases below give them."""

    perms_text: str
    exp: int
    nbf: int
    cmds: list[str]
    ctx_text: str


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"perms_text": '{"foo":1}'}, 'invalid token: unknown field "foo"'),
        ({"perms_text": " {}"}, WS),
        ({"perms_text": "[]"}, NOT_OBJECT),
        ({"perms_text": '{"exp":1}', "cmds": ["ls"]}, EXP_RANGE),
        ({"exp": 100}, EXP_RANGE),
        ({"nbf": 5_000_000_000}, NBF_RANGE),
        ({"cmds": ["ls", ""]}, CMDS_EMPTY),
        ({"ctx_text": '1,"exp":5'}, INVALID_JSON),  # no member smuggling through ctx
        ({"ctx_text": '{"a":1,"a":2}'}, INVALID_JSON),
        ({"ctx_text": ""}, INVALID_JSON),
        ({"ctx_text": '{"a":\n1}'}, NEWLINES),
        ({"ctx_text": '"\udcff"'}, INVALID_JSON),  # undecodable command-line byte
    ],
)
def test_a4_payload_must_pass_steps_5_to_13(kwargs: PayloadOptions, message: str) -> None:
    with pytest.raises(TokenFormatError) as info:
        build_payload(**kwargs)
    assert info.value.message == message


def test_s6_6_16_encode_payload_keeps_given_order_and_skips_none() -> None:
    assert encode_payload([("cmds", ["a"]), ("exp", 2000000000), ("nbf", None)]) == (
        b'{"cmds":["a"],"exp":2000000000}'
    )
    assert encode_payload([("ctx", RawJSON('{"k" : 1}'))]) == b'{"ctx":{"k" : 1}}'
    assert encode_payload([]) == b"{}"


# --- robustness (R10, hypothesis) ------------------------------------------------------


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_r10_every_single_bit_flip_of_the_signature_fails(
    signers: dict[str, PrivateKeySigner], kind: str
) -> None:
    signer = signers[kind]
    token = mint_exe0(b'{"exp":2000000000}', signer, NS)
    lookup = lookup_for(signer.public_key)
    verify_exe0(token, NS, lookup, NOW)
    blob = b64url_decode(signature_part(token))
    for bit in range(len(blob) * 8):
        flipped = bytearray(blob)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((MalformedSignatureError, TokenVerificationError)):
            verify_exe0(override(token, blob=bytes(flipped)), NS, lookup, NOW)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(max_size=60).map(lambda s: "exe0." + s)))
def test_random_strings_only_raise_token_errors(text: str) -> None:
    with contextlib.suppress(TokenError):
        parse_exe0(text)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=40), blob=st.binary(max_size=120))
def test_random_bytes_in_both_parts_only_raise_token_errors(payload: bytes, blob: bytes) -> None:
    token = f"exe0.{b64url_encode(payload)}.{b64url_encode(b'SSHSIG' + blob)}"
    with contextlib.suppress(TokenError):
        verify_exe0(token, NS, lambda fp: None, NOW)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=60))
def test_random_payload_bytes_with_a_valid_signature_only_raise_token_errors(
    ed: PrivateKeySigner, payload: bytes
) -> None:
    with contextlib.suppress(TokenError):
        parse_exe0(signed(ed, payload))


_MUTATION_CHARS = "AZaz09-_=+/.! \x00\xe9"


@pytest.fixture(scope="module")
def valid_tokens(signers: dict[str, PrivateKeySigner]) -> dict[str, str]:
    # Minted once: ECDSA signatures are randomised and hypothesis needs a fixed input.
    payload = b'{"exp":2000000000,"ctx":{"a":[1]}}'
    return {kind: mint_exe0(payload, signer, NS) for kind, signer in signers.items()}


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_single_character_mutations_only_raise_token_errors(
    signers: dict[str, PrivateKeySigner],
    valid_tokens: dict[str, str],
    kind: str,
    data: st.DataObject,
) -> None:
    token = valid_tokens[kind]
    original = parse_exe0(token)
    pos = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(st.sampled_from(_MUTATION_CHARS))
    mutated = token[:pos] + char + token[pos + 1 :]
    try:
        parsed = verify_exe0(mutated, NS, lookup_for(signers[kind].public_key), NOW)
    except TokenError:
        return
    # Only a change that decodes to the same bytes (unused trailing bits) can pass.
    assert parsed.payload == original.payload
    assert parsed.sshsig == original.sshsig
