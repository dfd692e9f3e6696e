"""The minting core shared by the HTTP auth adapters and ``sshmint git-credential``.

It turns a key source (a private key file, a public key whose private half is in ssh-agent,
or the agent's first identity; docs/client.md#sshmint-mint) and a namespace (docs/tokens.md#namespaces) into short-lived exe0
tokens, and caches each token until 80 % of its lifetime has passed. It imports no HTTP
library, so the git credential helper starts fast.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sshmint.agent import agent_signer
from sshmint.errors import PrivateKeyError, TokenFormatError
from sshmint.keys import load_public_key_file
from sshmint.signing import Signer, load_private_key
from sshmint.token import build_payload as token_payload
from sshmint.token import mint_exe0

__all__ = [
    "DEFAULT_KEY_NAMES",
    "DEFAULT_TTL",
    "PASSPHRASE_ENV",
    "REFRESH_FRACTION",
    "Clock",
    "TokenMinter",
    "build_payload",
    "load_signer",
    "resolve_namespace",
]

Clock = Callable[[], float]

DEFAULT_TTL = 300
REFRESH_FRACTION = 0.8
PASSPHRASE_ENV = "SSHMINT_KEY_PASSPHRASE"
DEFAULT_KEY_NAMES = (
    "id_ed25519",
    "id_ecdsa",
    "id_rsa",
)  # docs/client.md#sshmint-mint, in this order


def _default_key() -> Path:
    ssh_dir = Path.home() / ".ssh"
    for name in DEFAULT_KEY_NAMES:
        candidate = ssh_dir / name
        if candidate.exists():
            return candidate
    tried = ", ".join(f"~/.ssh/{name}" for name in DEFAULT_KEY_NAMES)
    raise PrivateKeyError(f"no key given and none of {tried} exists")


def load_signer(
    key: str | os.PathLike[str] | None = None,
    *,
    agent: bool = False,
    passphrase: str | bytes | None = None,
    agent_sock: str | None = None,
) -> Signer:
    """Open the signing key the way ``sshmint mint`` does (docs/client.md#sshmint-mint).

    - ``key=PATH`` (``~`` expanded): an OpenSSH or PEM private key; an encrypted one is unlocked with
      ``passphrase`` or else ``$SSHMINT_KEY_PASSPHRASE``.
    - ``key=PATH.pub``: sign through ssh-agent with the identity equal to that public key.
    - ``agent=True``: the agent's first identity.
    - neither: the first existing of ``~/.ssh/id_ed25519``, ``~/.ssh/id_ecdsa``, ``~/.ssh/id_rsa``.

    Raises the core's ``PrivateKeyError`` (``KeyEncryptedError``), ``PublicKeyError`` or
    ``AgentError``, each with a one-line message.
    """
    if key is not None and agent:
        raise ValueError("key and agent are mutually exclusive")
    if agent:
        return agent_signer(None, sock=agent_sock)
    path = Path(key).expanduser() if key is not None else _default_key()
    if path.name.endswith(".pub"):
        return agent_signer(load_public_key_file(path), sock=agent_sock)
    if passphrase is None:
        passphrase = os.environ.get(PASSPHRASE_ENV)
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    return load_private_key(str(path), secret)


def resolve_namespace(
    namespace: str | None = None,
    *,
    vm: str | None = None,
    web_host: str = "localhost",
    vm_host: str = "localhost",
) -> str:
    """docs/tokens.md#namespaces: ``namespace`` verbatim, ``v0@<vm>.<vm_host>`` for a VM, else ``v0@<web_host>``."""
    if namespace is not None and vm is not None:
        raise ValueError("namespace and vm are mutually exclusive")
    if namespace is not None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        return namespace
    if vm is not None:
        if not vm or "." in vm:
            raise ValueError(f"invalid VM name {vm!r}")
        return f"v0@{vm}.{vm_host}"
    return f"v0@{web_host}"


def build_payload(
    *, exp: int | None = None, cmds: Sequence[str] | None = None, ctx: object = None
) -> bytes:
    """A compact payload in docs/client.md#sshmint-mint member order: ``exp``, ``cmds``, ``ctx``.

    ``cmds=None`` leaves the server's default list; ``ctx`` is any JSON-serialisable value,
    ``None`` leaves it out. The payload passes docs/tokens.md#validation steps 5-13, else ``ValueError``
    carries the message of the failing step.
    """
    if isinstance(cmds, str):
        raise ValueError("cmds must be a list of command names, not a string")
    ctx_text = None
    if ctx is not None:
        try:
            # ASCII escapes keep the raw ctx safe to relay in an HTTP header (docs/proxy.md#what-the-upstream-receives).
            ctx_text = json.dumps(ctx, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ctx is not JSON-serialisable: {exc}") from None
    try:
        return token_payload(
            exp=exp, nbf=None, cmds=None if cmds is None else list(cmds), ctx_text=ctx_text
        )
    except TokenFormatError as exc:  # e.g. an empty command name, keys 1 and "1" in ctx
        raise ValueError(exc.message) from None


class TokenMinter:
    """Mints exe0 tokens for one namespace and reuses each for 80 % of its lifetime.

    ``token()`` is thread-safe: concurrent callers that find the cached token stale wait on
    one lock, and only the first of them mints. ``ttl=None`` mints one token without ``exp``
    and keeps it. ``clock`` returns unix seconds (default ``time.time``).
    """

    def __init__(
        self,
        signer: Signer,
        namespace: str,
        *,
        ttl: int | None = DEFAULT_TTL,
        cmds: Sequence[str] | None = None,
        ctx: object = None,
        clock: Clock = time.time,
    ) -> None:
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1):
            raise ValueError("ttl must be a positive number of seconds")
        build_payload(cmds=cmds, ctx=ctx)  # fail now, not at the first request
        self.signer = signer
        self.namespace = namespace
        self.ttl = ttl
        self.cmds = tuple(cmds) if cmds is not None else None
        self.ctx = ctx
        self.clock = clock
        self.mint_count = 0
        self._lock = threading.Lock()
        # (token, refresh_at): replaced as a whole, so a lock-free read sees a consistent pair.
        self._cached: tuple[str, float] | None = None

    def cached_token(self) -> str | None:
        """The cached token if it is still fresh, without minting or blocking."""
        cached = self._cached
        if cached is not None and self.clock() < cached[1]:
            return cached[0]
        return None

    def token(self) -> str:
        """A token valid now: the cached one while fresh, else a newly minted one."""
        fresh = self.cached_token()
        if fresh is not None:
            return fresh
        with self._lock:
            fresh = self.cached_token()  # another thread may have minted meanwhile
            if fresh is not None:
                return fresh
            now = self.clock()
            if self.ttl is None:
                exp, refresh_at = None, float("inf")
            else:
                exp = int(now) + self.ttl
                refresh_at = now + REFRESH_FRACTION * self.ttl
            payload = build_payload(exp=exp, cmds=self.cmds, ctx=self.ctx)
            token = mint_exe0(payload, self.signer, self.namespace)
            self.mint_count += 1
            self._cached = (token, refresh_at)
            return token

    def __repr__(self) -> str:
        return (
            f"TokenMinter(namespace={self.namespace!r}, "
            f"key='SHA256:{self.signer.public_key.fingerprint}', ttl={self.ttl!r})"
        )
