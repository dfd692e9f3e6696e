"""Output formatting shared by the commands (docs/README.md#conventions, docs/ssh.md#output-and-exit-status, docs/accounts.md#vms)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from sshmint.duration import rfc3339
from sshmint.server.commands.context import CommandSettings

__all__ = ["dump_json", "rfc3339", "vm_url"]


def dump_json(obj: Mapping[str, object], *, indent: bool) -> str:
    """One JSON object and ``\\n``: compact, or indented by two spaces (REPL).

    Not HTML-escaped and not ASCII-escaped: ``<``, ``>``, ``&`` and non-ASCII text appear
    literally (docs/README.md#conventions).
    """
    return (_INDENTED if indent else _COMPACT).encode(obj) + "\n"


# Built once: json.dumps with options constructs a new encoder on every call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_INDENTED = json.JSONEncoder(ensure_ascii=False, indent=2)


def vm_url(settings: CommandSettings, name: str) -> str:
    """``http://<name>.<vm-host>[:<port>]``, the port omitted when 80 (docs/accounts.md#vms)."""
    port = "" if settings.http_port == 80 else f":{settings.http_port}"
    return f"http://{name}.{settings.vm_host}{port}"
