"""SSH public and private keys: parsing, fingerprints, signing (CONTRACT STUB — to be implemented).

Public surface (other modules rely on exactly these names):

- ``KEY_TYPES``: the seven public key types of SPEC §1.5, in table order.
- ``PublicKey``: frozen dataclass ``(key_type: str, blob: bytes, comment: str = "")`` with
  ``fingerprint`` (43-char unpadded standard base64 SHA-256 of ``blob``, no prefix),
  ``openssh`` (canonical ``"<type> <base64>"``), ``bits`` (RSA modulus size or curve size)
  and ``verify(signature: bytes, data: bytes) -> bool`` where ``signature`` is an SSH
  signature (``string format, string sigblob`` [+ ``byte flags, uint32 counter`` for sk]).
  ``verify`` never raises on garbage: any malformed or mismatching signature is ``False``.
- ``public_key_from_blob(blob) -> PublicKey``: raises ``PublicKeyError``.
- ``parse_public_key_line(line) -> PublicKey``: SPEC §5.2 (``PrivateKeyGivenError`` first).
- ``fingerprint(blob) -> str`` and ``format_fingerprint(fp) -> "SHA256:" + fp``.
- ``Signer`` protocol: ``public_key: PublicKey``; ``sign(data: bytes) -> bytes`` returning an SSH
  signature (Ed25519, ECDSA with the curve's hash, RSA with ``rsa-sha2-512``).
- ``load_private_key(path, passphrase: bytes | None = None) -> Signer`` (OpenSSH or PEM;
  ``KeyEncryptedError`` when a passphrase is needed and missing, ``PrivateKeyError`` otherwise).
- ``generate_ed25519() -> Signer`` (in-memory key pair, used by ``generate-api-key``).
"""
