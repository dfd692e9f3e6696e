"""ssh-agent client (CONTRACT STUB — to be implemented).

Public surface:

- ``AgentSigner``: a ``keys.Signer`` backed by the agent at ``SSH_AUTH_SOCK``.
- ``agent_identities(sock: str | None = None) -> list[PublicKey]``.
- ``agent_signer(public_key: PublicKey | None = None, sock: str | None = None) -> AgentSigner``:
  the identity equal to ``public_key`` (``AgentError`` naming ``SHA256:<fp>`` when absent), or the
  first identity. RSA signs with the ``rsa-sha2-512`` flag.
"""
