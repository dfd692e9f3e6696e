"""The pinned public surface: ``sshmint`` and ``sshmint.client`` export exactly these names.

A rename or removal breaks users; it must show up here first. The façade functions are
checked against the real ``ssh-keygen``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import sshmint
import sshmint.client

SSHMINT_EXPORTS = [
    "AgentError",
    "DurationError",
    "KeyEncryptedError",
    "MalformedSignatureError",
    "ParsedToken",
    "Permissions",
    "PrivateKeyError",
    "PrivateKeyGivenError",
    "PublicKey",
    "PublicKeyError",
    "SSHMintError",
    "Signer",
    "TokenClaimError",
    "TokenError",
    "TokenExpiredError",
    "TokenFormatError",
    "TokenNotYetValidError",
    "TokenPolicyError",
    "TokenVerificationError",
    "__version__",
    "load_private_key",
    "load_public_key_file",
    "mint",
    "parse",
    "parse_public_key_line",
    "verify",
]

CLIENT_EXPORTS = [
    "AsyncClient",
    "BadRequest",
    "BearerTokenAuth",
    "Client",
    "CommandFailed",
    "ConnectionFailed",
    "Forbidden",
    "InvalidResponse",
    "MethodNotAllowed",
    "RateLimited",
    "RequestTooLarge",
    "RevokedToken",
    "SSHMintAuth",
    "SSHMintClientError",
    "ServerError",
    "Timeout",
    "TokenCheck",
    "TokenExplanation",
    "TokenMinter",
    "Unauthorized",
    "UnknownCommand",
]


@pytest.mark.parametrize(
    ("module", "expected"), [(sshmint, SSHMINT_EXPORTS), (sshmint.client, CLIENT_EXPORTS)]
)
def test_exported_members_are_pinned_and_resolve(module: ModuleType, expected: list[str]) -> None:
    exported = module.__all__
    assert sorted(exported) == sorted(expected)
    for name in exported:
        assert getattr(module, name) is not None, name
        assert name in dir(module)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_every_sshmint_exception_shares_one_root() -> None:
    exceptions = [getattr(sshmint, n) for n in SSHMINT_EXPORTS if n.endswith("Error")]
    exceptions += [getattr(sshmint.client, n) for n in CLIENT_EXPORTS]
    for cls in exceptions:
        if isinstance(cls, type) and issubclass(cls, BaseException):
            assert issubclass(cls, sshmint.SSHMintError), cls


def test_facade_mints_what_ssh_keygen_verifies_and_verifies_it_back(
    ssh_keygen_key: Callable[..., Path], tmp_path: Path
) -> None:
    key_path = ssh_keygen_key("ed25519")
    signer = sshmint.load_private_key(str(key_path))
    token = sshmint.mint(
        signer, "v0@api.example.com", exp=4_000_000_000, cmds=["whoami"], ctx={"a": [1]}
    )
    parsed = sshmint.verify(token, signer.public_key, "v0@api.example.com", now=1_800_000_000)
    assert parsed.permissions.exp == 4_000_000_000
    assert parsed.permissions.cmds == ("whoami",)
    assert parsed.permissions.ctx_raw == '{"a":[1]}'
    assert sshmint.parse(token).fingerprint == signer.public_key.fingerprint
    # The signature is an ordinary SSHSIG over the payload: ssh-keygen agrees.
    payload = sshmint.parse(token).payload
    armored = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(key_path), "-n", "v0@api.example.com"],
        input=payload,
        capture_output=True,
        check=True,
    ).stdout
    assert armored.startswith(b"-----BEGIN SSH SIGNATURE-----")
    with pytest.raises(sshmint.TokenVerificationError):
        sshmint.verify(token, signer.public_key, "v0@other.example.com", now=1_800_000_000)
    with pytest.raises(sshmint.TokenExpiredError):
        sshmint.verify(token, signer.public_key, "v0@api.example.com", now=4_000_000_001)
    with pytest.raises(sshmint.TokenFormatError):
        sshmint.parse("exe0.nope")
