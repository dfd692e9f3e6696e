"""Strict JSON for token payloads, SPEC §2.2 (CONTRACT STUB — to be implemented).

Public surface:

- ``StrictJSONError(Exception)`` with ``message`` (the SPEC §2.1 step-9 text).
- ``parse_object_members(text: str) -> list[tuple[str, object, str]]``: exactly one JSON object,
  no duplicate names at any depth, no NaN/Infinity; returns each top-level member as
  ``(name, value, raw_value_text)`` where ``raw_value_text`` is the value exactly as written.
- ``WHITESPACE``: the characters of SPEC §2.2's whitespace rule.
"""
