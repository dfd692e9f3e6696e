"""SSHSIG blobs (OpenSSH PROTOCOL.sshsig) (CONTRACT STUB — to be implemented).

Public surface:

- ``SSHSig``: frozen dataclass ``(public_key: bytes, namespace: bytes, reserved: bytes,
  hash_algorithm: str, signature: bytes)``; ``signature`` is the SSH signature (format +
  sigblob [+ flags + counter]); property ``signature_format: str``.
- ``parse_sshsig(blob: bytes) -> SSHSig``: every SPEC §1.3 rule; any failure raises
  ``MalformedSignatureError(detail)`` (never another exception).
- ``encode_sshsig(sig) -> bytes``; ``armor(blob) -> str`` / ``dearmor(text) -> bytes``
  (the ``-----BEGIN SSH SIGNATURE-----`` form, 70-column lines as ssh-keygen writes).
- ``signed_data(namespace: bytes, hash_algorithm: str, message: bytes) -> bytes`` (§1.4).
- ``sign(message: bytes, namespace: str, signer: Signer, hash_algorithm="sha512") -> bytes``
  returns the binary blob.
- ``verify(sig: SSHSig, message: bytes, namespace: str, key: PublicKey) -> bool``: §1.4 rules
  1–3 (blob key identical to ``key.blob``, namespace equal, signature valid).
"""
