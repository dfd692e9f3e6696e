"""ssh-agent client (docs/client.md#sshmint-mint ``--key KEY.pub`` / ``--agent``) against a real ssh-agent."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshmint.agent import AgentSigner, agent_identities, agent_signer
from sshmint.errors import AgentError
from sshmint.keys import load_public_key_file
from sshmint.sshsig import armor, parse_sshsig, sign, verify
from tests.support.keys import KeyFactory
from tests.support.sk_helpers import keygen_sign, keygen_verify
from tests.support.ssh_agent import Agent, running_agent

NS = "v0@localhost"
DATA = b'{"cmds":["whoami"]}'
AGENT_KEYS = [("ed25519", None), ("ecdsa", 256), ("rsa", 2048)]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, ssh_keygen_key: KeyFactory) -> Iterator[Agent]:
    directory = tmp_path_factory.mktemp("agent")
    # The Ed25519 key goes in with a certificate beside it, so ssh-add loads both; the
    # certificate identity is not a docs/tokens.md#key-and-signature-types key and must be skipped.
    ed_source = ssh_keygen_key("ed25519")
    ed = directory / "id_ed25519"
    shutil.copy(ed_source, ed)
    shutil.copy(f"{ed_source}.pub", f"{ed}.pub")
    ca = ssh_keygen_key("ed25519", name="ca")
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(ca), "-I", "id", "-n", "p", f"{ed}.pub"],
        check=True,
        capture_output=True,
    )
    paths = [ed] + [ssh_keygen_key(kind, bits=bits) for kind, bits in AGENT_KEYS[1:]]
    with running_agent(directory) as running:
        running.add(*paths)
        yield running


def test_a4_agent_lists_its_identities_in_order(agent: Agent) -> None:
    listed = subprocess.run(
        ["ssh-add", "-L"], env=agent.env(), capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(listed) == 4 and "-cert-v01@openssh.com" in listed[1]
    identities = agent_identities(agent.sock)
    assert [i.blob for i in identities] == [agent.pub(n).blob for n in range(3)]
    assert all(i.comment == "test" for i in identities)


@pytest.mark.parametrize("index", range(len(AGENT_KEYS)), ids=["ed25519", "ecdsa256", "rsa2048"])
def test_a4_agent_signature_verifies_with_ssh_keygen(
    agent: Agent, index: int, tmp_path: Path
) -> None:
    pub = agent.pub(index)
    signer = agent_signer(pub, sock=agent.sock)
    assert isinstance(signer, AgentSigner) and signer.public_key.blob == pub.blob
    blob = sign(DATA, NS, signer)
    sig = parse_sshsig(blob)
    assert verify(sig, DATA, NS, pub)
    if pub.key_type == "ssh-rsa":
        assert sig.signature_format == "rsa-sha2-512"  # docs/tokens.md#key-and-signature-types
    line = Path(f"{agent.key_files[index]}.pub").read_text()
    result = keygen_verify(tmp_path, line, NS, DATA, armor(blob))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("index", [0, 2], ids=["ed25519", "rsa2048"])
def test_a4_agent_signature_equals_ssh_keygen_file_signature(agent: Agent, index: int) -> None:
    # deterministic algorithms: the agent and ssh-keygen with the file agree byte for byte
    signer = agent_signer(agent.pub(index), sock=agent.sock)
    assert armor(sign(DATA, NS, signer)) == keygen_sign(agent.key_files[index], NS, DATA)


def test_a4_key_pub_picks_the_matching_identity_from_ssh_auth_sock(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", agent.sock)
    for index in (2, 1, 0):
        assert agent_signer(agent.pub(index)).public_key.blob == agent.pub(index).blob


def test_a4_agent_alone_uses_the_first_identity(agent: Agent) -> None:
    signer = agent_signer(sock=agent.sock)
    assert signer.public_key.blob == agent.pub(0).blob
    assert signer.public_key.comment == "test"


def test_a4_missing_identity_names_the_fingerprint(
    agent: Agent, ssh_keygen_key: KeyFactory
) -> None:
    absent = load_public_key_file(f"{ssh_keygen_key('ed25519', name='absent')}.pub")
    with pytest.raises(AgentError) as info:
        agent_signer(absent, sock=agent.sock)
    assert info.value.message == f"no identity SHA256:{absent.fingerprint} in ssh-agent"


def test_a4_agent_refusing_to_sign_is_an_agent_error(
    agent: Agent, ssh_keygen_key: KeyFactory
) -> None:
    absent = load_public_key_file(f"{ssh_keygen_key('ed25519', name='absent')}.pub")
    with pytest.raises(AgentError) as info:
        AgentSigner(absent, agent.sock).sign(b"data")
    assert info.value.message == f"ssh-agent refused to sign with SHA256:{absent.fingerprint}"


def test_a4_no_ssh_auth_sock(agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AgentError) as bare:
        agent_signer()
    assert bare.value.message == "no ssh-agent: SSH_AUTH_SOCK is not set"
    pub = agent.pub(0)
    with pytest.raises(AgentError) as wanted:
        agent_signer(pub)
    assert wanted.value.message == (
        f"cannot use SHA256:{pub.fingerprint}: no ssh-agent: SSH_AUTH_SOCK is not set"
    )


def test_a4_unreachable_agent_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as info:
        agent_signer(sock=str(tmp_path / "no-such.sock"))
    assert info.value.message.startswith(f"cannot connect to ssh-agent at {tmp_path}")
    assert "\n" not in info.value.message


def test_a4_empty_agent(tmp_path: Path) -> None:
    with running_agent(tmp_path) as empty:
        assert agent_identities(empty.sock) == []
        with pytest.raises(AgentError, match="no usable identities"):
            agent_signer(sock=empty.sock)


# A misbehaving peer cannot come from the real ssh-agent, so these two use a socket
# that answers (or does not) on purpose.


@contextlib.contextmanager
def one_shot_server(path: Path, reply: bytes | None) -> Iterator[None]:
    """Accept one connection, read the request, send ``reply`` (None: stay silent)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(10)
    done = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError), server.accept()[0] as conn:
            conn.recv(1024)
            if reply is not None:
                conn.sendall(reply)
            done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(10)
        server.close()


def test_a4_oversized_agent_reply_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.sock"
    with one_shot_server(path, b"\x7f\xff\xff\xff" + b"\x0c"), pytest.raises(AgentError) as info:
        agent_identities(str(path))
    assert "invalid length" in info.value.message


def test_a4_silent_agent_times_out(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    with one_shot_server(path, None), pytest.raises(AgentError) as info:
        agent_identities(str(path), timeout=0.2)
    assert "did not answer" in info.value.message
