"""sshmint: API tokens that users mint offline with their SSH keys (exe0/exe1 format).

The public surface of the library (pinned by ``tests/core/test_public_api.py``):

- :func:`mint`, :func:`parse`, :func:`verify` — exe0 tokens in one call each;
- keys: :func:`load_private_key` (a private key file, returns a :class:`Signer`),
  :func:`load_public_key_file`, :func:`parse_public_key_line` (:class:`PublicKey`);
- results: :class:`ParsedToken`, :class:`Permissions`;
- the exception tree rooted at :class:`SSHMintError` (drawn in :mod:`sshmint.errors`);
  :class:`sshmint.client.SSHMintClientError` hangs below the same root.

Names are imported on first use, so ``import sshmint`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sshmint.lazy import lazy_exports

if TYPE_CHECKING:
    from sshmint.api import mint, parse, verify
    from sshmint.errors import (
        AgentError,
        DurationError,
        KeyEncryptedError,
        MalformedSignatureError,
        PrivateKeyError,
        PrivateKeyGivenError,
        PublicKeyError,
        SSHMintError,
        TokenClaimError,
        TokenError,
        TokenExpiredError,
        TokenFormatError,
        TokenNotYetValidError,
        TokenPolicyError,
        TokenVerificationError,
    )
    from sshmint.keys import PublicKey, load_public_key_file, parse_public_key_line
    from sshmint.signing import Signer, load_private_key
    from sshmint.token import ParsedToken, Permissions

__version__ = "0.1.0"

__all__ = [
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

_HOME = {
    "mint": "api",
    "parse": "api",
    "verify": "api",
    "PublicKey": "keys",
    "Signer": "signing",
    "load_private_key": "signing",
    "load_public_key_file": "keys",
    "parse_public_key_line": "keys",
    "ParsedToken": "token",
    "Permissions": "token",
}


__getattr__, __dir__ = lazy_exports(globals(), __all__, _HOME, "errors")
