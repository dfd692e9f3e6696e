"""The one command tree, shared by the SSH interface and ``POST /exec`` (SPEC §6.6).

CONTRACT STUB — the command layer's owner replaces this with the implementation, keeping
these names. No transport code lives here: a transport builds a ``CommandContext`` and calls
``run_words``.

- ``CommandSettings(web_host: str, vm_host: str, http_port: int, upstream_allow:
  tuple[ipaddress network, ...])`` — frozen dataclass.
- ``CommandContext(store: Store, settings: CommandSettings, user: User, key: SSHKeyRow,
  now: Callable[[], int], stdin: Callable[[int], Awaitable[bytes]] | None, indent_json: bool)``
  — ``key`` is the calling key (SSH login key, or the key that signed the /exec token);
  ``stdin(limit)`` reads up to ``limit`` bytes to EOF (exec mode only, else ``None``).
- ``CommandResult(stdout: str, stderr: str, exit_status: int)``.
- ``COMMAND_NAMES: frozenset[str]`` — every resolvable name (``"ssh-key list"``, ``"share"``...).
- ``resolve_command_name(words: Sequence[str]) -> str | None`` — SPEC §4.2.
- ``run_words(ctx, words: list[str], *, force_json: bool) -> CommandResult`` (async): runs one
  already split command line exactly per §6.3–6.6 (``command not found: %q`` for an unknown
  first word; flag parsing; ``--help``; ``--json`` or ``force_json``). Never raises for user
  errors; ``StoreUnavailable`` becomes a one-line error with exit status 1.
- ``split_command_line(line: str) -> list[str]`` raising ``CommandSyntaxError`` (§6.3).
- ``key_permission_error(key: SSHKeyRow | None, name: str | None, now: int) -> str | None`` —
  the SSH pre-command checks of §6.5 in order (revoked, expired, vm, cmds, tag); ``/exec`` uses
  the subset of §4.4 via ``key_restriction_error(key, name)``.
"""
