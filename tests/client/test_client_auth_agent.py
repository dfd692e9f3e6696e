"""SSHMintAuth with keys held by a real ``ssh-agent`` (docs/client.md#sshmint-mint: ``--key KEY.pub``, ``--agent``).

Tokens are cross-checked with the real ``ssh-keygen -Y verify``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sshmint.client import SSHMintAuth
from sshmint.errors import AgentError
from sshmint.keys import load_public_key_file
from tests.support.keys import KeyFactory
from tests.support.sk_helpers import keygen_verify_token
from tests.support.ssh_agent import Agent


def ssh_keygen_verifies(token: str, pub: Path, namespace: str) -> bool:
    return keygen_verify_token(token, pub, namespace).returncode == 0


@pytest.mark.parametrize(("kind", "bits"), [("ed25519", None), ("rsa", 3072), ("ecdsa", 256)])
def test_a4_key_pub_signs_through_the_agent_identity(
    ssh_keygen_key: KeyFactory, ssh_agent: Agent, tmp_path: Path, kind: str, bits: int | None
) -> None:
    key = ssh_keygen_key(kind, bits=bits)
    ssh_agent.add(key)
    auth = SSHMintAuth(key=f"{key}.pub", agent_sock=ssh_agent.sock, vm="box")
    token = auth.token()
    assert ssh_keygen_verifies(token, Path(f"{key}.pub"), "v0@box.localhost")
    assert not ssh_keygen_verifies(token, Path(f"{key}.pub"), "v0@localhost")


def test_a4_key_pub_uses_ssh_auth_sock_from_the_environment(
    ssh_keygen_key: KeyFactory, ssh_agent: Agent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ssh_keygen_key("ed25519")
    ssh_agent.add(key)
    monkeypatch.setenv("SSH_AUTH_SOCK", ssh_agent.sock)
    token = SSHMintAuth(key=f"{key}.pub").token()
    assert ssh_keygen_verifies(token, Path(f"{key}.pub"), "v0@localhost")


def test_a4_agent_true_uses_the_first_identity(
    ssh_keygen_key: KeyFactory, ssh_agent: Agent, tmp_path: Path
) -> None:
    first = ssh_keygen_key("ed25519", name="first")
    second = ssh_keygen_key("ed25519", name="second")
    ssh_agent.add(first)
    ssh_agent.add(second)
    auth = SSHMintAuth(agent=True, agent_sock=ssh_agent.sock)
    assert f"SHA256:{load_public_key_file(f'{first}.pub').fingerprint}" in repr(auth)
    assert ssh_keygen_verifies(auth.token(), Path(f"{first}.pub"), "v0@localhost")


def test_a4_identity_missing_from_agent_names_the_fingerprint(
    ssh_keygen_key: KeyFactory, ssh_agent: Agent
) -> None:
    ssh_agent.add(ssh_keygen_key("ed25519"))
    absent = ssh_keygen_key("ed25519", name="absent")
    fp = load_public_key_file(f"{absent}.pub").fingerprint
    with pytest.raises(AgentError, match=re.escape(f"SHA256:{fp}")):
        SSHMintAuth(key=f"{absent}.pub", agent_sock=ssh_agent.sock)


def test_a4_no_agent_is_a_clear_error(
    ssh_keygen_key: KeyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AgentError, match="SSH_AUTH_SOCK is not set"):
        SSHMintAuth(agent=True)
    with pytest.raises(AgentError):
        SSHMintAuth(key=f"{ssh_keygen_key('ed25519')}.pub")
