"""The TLS context of the HTTP listener (``--tls-cert``/``--tls-key``)."""

from __future__ import annotations

import ssl

from sshmint.server.config import ServerConfig

__all__ = ["ssl_context_from_config"]


def ssl_context_from_config(config: ServerConfig) -> ssl.SSLContext | None:
    """A server TLS context from ``config.tls_cert``/``config.tls_key``, or None without them.

    Raises ``ValueError`` naming the file when the pair cannot be loaded.
    """
    cert, key = config.tls_cert, config.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key must be given together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ValueError(f"cannot load TLS certificate {cert} / key {key}: {reason}") from None
    return context
