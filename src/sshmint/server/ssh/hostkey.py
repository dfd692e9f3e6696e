"""The SSH host key (docs/ssh.md#connection-and-login, ``--host-key``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import asyncssh

from sshmint.server.infra.files import PRIVATE_FILE_MODE

__all__ = ["load_or_create_host_key"]


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The persistent host key at ``path`` (docs/ssh.md#connection-and-login, ``--host-key``): an Ed25519 key created
    once when missing, mode 0600, OpenSSH format; an existing file of any type asyncssh
    reads is used as it is.

    The key is written to a private temporary file and linked into place, so a crash or a
    concurrent start never leaves a truncated key behind.
    """
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="sshmint host key")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        try:
            os.fchmod(
                fd, PRIVATE_FILE_MODE
            )  # exactly 0600, whatever the umask (docs/security.md#files-and-modes)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key.export_private_key("openssh"))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(tmp, path)
        finally:
            tmp.unlink()
    host_key = asyncssh.read_private_key(path)
    pub = path.with_name(path.name + ".pub")
    if not pub.exists():  # for people who want to pin the key in known_hosts
        # Best effort: a shared key may live in a directory this node cannot write.
        with contextlib.suppress(OSError):
            pub.write_bytes(host_key.export_public_key("openssh"))
    return host_key
