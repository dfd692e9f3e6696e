"""exe0/exe1 tokens: strict parsing (SPEC §2), claims (§3), cmds (§4.1), minting (CONTRACT STUB).

Public surface:

- ``MAX_TOKEN_BYTES = 8192``, ``DEFAULT_CMDS`` (SPEC §4.1 tuple), ``EXE0_PREFIX``, ``EXE1_PREFIX``.
- ``Permissions``: frozen dataclass ``(exp: int | None, nbf: int | None, cmds: tuple[str, ...] | None,
  ctx_raw: str | None, has_ctx: bool)``; property ``effective_cmds`` (default list when ``cmds`` is
  None); ``allows(command_name) -> bool`` (exact match, §4.1).
- ``ParsedToken``: frozen dataclass ``(token: str, payload: bytes, permissions: Permissions,
  sshsig: SSHSig, public_key: PublicKey)``; property ``fingerprint``.
- ``parse_exe0(token: str) -> ParsedToken``: steps 1–15 in order, raising ``TokenFormatError``
  (or ``MalformedSignatureError``) with the exact message.
- ``check_claims(perms, now: int, *, check_nbf: bool = True)``: steps 16–17.
- ``verify_exe0(token, namespace, lookup, now) -> ParsedToken``: steps 1–19 where
  ``lookup(fingerprint) -> PublicKey | None`` returns the registered key; failures of 18/19
  raise ``TokenVerificationError``.
- ``verify_signature(parsed, key, namespace) -> bool`` (memoizable: pure in its inputs).
- ``encode_payload(...)`` / ``mint_exe0(payload: bytes, signer, namespace) -> str``.
- ``is_well_formed_exe1(token) -> bool`` (§1.9).
- ``b64url_decode(part) -> bytes`` / ``b64url_encode(data) -> str`` (§1.2).
"""
