"""The exceptions of sshmint's pure core (tokens, SSHSIG, keys, agent, durations).

Every error the core raises derives from :class:`SSHMintError`, and every leaf carries
the exact text the behaviour reference (docs/) prescribes in ``message`` — precise inside,
generic at the public edge: the edges (``/exec``, the proxy, the CLI) decide how much
of it to show.

::

    SSHMintError                       root; ``.message`` is the user-facing text
    ├── TokenError                     a bearer string was refused (docs/tokens.md#validation)
    │   ├── TokenFormatError           parse steps 1–15 (size, prefix, base64url, JSON, SSHSIG)
    │   │   └── MalformedSignatureError    step 15 / docs/tokens.md#sshsig-blob: "invalid token: malformed signature"
    │   ├── TokenClaimError            steps 16–17
    │   │   ├── TokenExpiredError      "invalid token: token has expired"
    │   │   └── TokenNotYetValidError  "invalid token: token is not yet valid"
    │   ├── TokenVerificationError     steps 18–20, revocation and exe1 failures: always "invalid token"
    │   └── TokenPolicyError           the server's lifetime policy (docs/lifecycle.md#lifetime-policy)
    ├── PublicKeyError                 docs/accounts.md#ssh-keys: "invalid SSH public key: <detail>"
    │   └── PrivateKeyGivenError       a private key where a public one was expected
    ├── PrivateKeyError                a private key file cannot be loaded or used (A.4)
    │   └── KeyEncryptedError          passphrase needed but none available
    ├── AgentError                     ssh-agent missing, refusing, or lacking the identity
    └── DurationError                  docs/ssh.md#ssh-key-generate-api-key duration grammar

Every :class:`TokenError` also names its ``cause``, one word of :data:`FAILURE_CAUSES`
(docs/operations.md#metrics): what metrics count and logs report, never shown to the
client beyond its message.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "FAILURE_CAUSES",
    "INVALID_TOKEN",
    "AgentError",
    "DurationError",
    "FailureCause",
    "KeyEncryptedError",
    "MalformedSignatureError",
    "PrivateKeyError",
    "PrivateKeyGivenError",
    "PublicKeyError",
    "SSHMintError",
    "TokenClaimError",
    "TokenError",
    "TokenExpiredError",
    "TokenFormatError",
    "TokenNotYetValidError",
    "TokenPolicyError",
    "TokenVerificationError",
]

INVALID_TOKEN = "invalid token"

FailureCause = Literal[
    "malformed",
    "expired",
    "not_yet_valid",
    "unknown_key",
    "bad_signature",
    "locked",
    "unknown_exe1",
    "revoked",
    "policy",
    "other",
]
#: Why a token was refused, in one word each (docs/operations.md#metrics).
FAILURE_CAUSES: Final[tuple[FailureCause, ...]] = get_args(FailureCause)


class SSHMintError(Exception):
    """Root of sshmint's errors. ``message`` is the exact user-facing text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TokenError(SSHMintError):
    """A bearer string was refused. ``step`` is the docs/tokens.md#validation step number that
    failed, ``cause`` the one-word reason of :data:`FAILURE_CAUSES`."""

    cause: FailureCause = "other"

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class TokenFormatError(TokenError):
    """Parse steps 1–15: the token is not a well-formed exe0 token."""

    cause: FailureCause = "malformed"


class MalformedSignatureError(TokenFormatError):
    """The SSHSIG blob violates docs/tokens.md#sshsig-blob (step 15). ``detail`` is for tests and logs only."""

    MESSAGE = "invalid token: malformed signature"

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.MESSAGE, 15)
        self.detail = detail


class TokenClaimError(TokenError):
    """Claim steps 16–17 (docs/tokens.md#claims)."""


class TokenExpiredError(TokenClaimError):
    cause: FailureCause = "expired"
    MESSAGE = "invalid token: token has expired"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE, 16)


class TokenNotYetValidError(TokenClaimError):
    cause: FailureCause = "not_yet_valid"
    MESSAGE = "invalid token: token is not yet valid"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE, 17)


class TokenVerificationError(TokenError):
    """Key, signature, lockout and exe1 failures: the constant text ``invalid token``.

    ``reason`` says what really failed, for tests and server-side diagnostics, and
    ``cause`` the same in one word; neither may ever be shown to the client
    (docs/tokens.md#who-sees-which-message).
    """

    def __init__(self, reason: str, step: int = 18, cause: FailureCause = "other") -> None:
        super().__init__(INVALID_TOKEN, step)
        self.reason = reason
        self.cause = cause


class TokenPolicyError(TokenError):
    """The token outlives the server's ``--max-token-lifetime`` (docs/lifecycle.md#lifetime-policy):
    it has no ``exp``, or one later than now plus the maximum.

    Checked after every other check of the token (docs/tokens.md#validation), so it numbers
    its step 21. ``maximum`` is the policy's duration as the message names it (``1h``).
    """

    cause: FailureCause = "policy"
    STEP = 21

    def __init__(self, maximum: str) -> None:
        super().__init__(
            f"invalid token: token lifetime exceeds this server's maximum of {maximum}", self.STEP
        )
        self.maximum = maximum


class PublicKeyError(SSHMintError):
    """An SSH public key line or blob cannot be used (docs/accounts.md#ssh-keys)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid SSH public key: {detail}")
        self.detail = detail


class PrivateKeyGivenError(PublicKeyError):
    MESSAGE = (
        "this is a private key, please use the public key instead (typically found in a .pub file)"
    )

    def __init__(self) -> None:
        SSHMintError.__init__(self, self.MESSAGE)
        self.detail = "private key"


class PrivateKeyError(SSHMintError):
    """A private key file cannot be loaded or cannot sign (docs/client.md#sshmint-mint)."""


class KeyEncryptedError(PrivateKeyError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"key {path} is encrypted; set SSHMINT_KEY_PASSPHRASE or run in a terminal"
        )
        self.path = path


class AgentError(SSHMintError):
    """ssh-agent is unreachable, refused to sign, or lacks the wanted identity."""


class DurationError(SSHMintError):
    """A duration string does not follow docs/ssh.md#ssh-key-generate-api-key."""
