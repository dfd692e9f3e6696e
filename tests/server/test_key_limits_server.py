"""docs/security.md#key-limits key limits (R158) through the real server, admin CLI and OpenSSH client, on
both databases: an RSA key whose public exponent breaks the rule is refused by ``ssh-key
add`` and ``admin add-user``; one stored by an older version (written straight into the
table here) counts as not registered: its tokens get ``invalid token`` and it cannot log
in over SSH, while the account can still remove it by fingerprint or by its line."""

from __future__ import annotations

import base64
import functools
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fuzz.corpus import make_token, rsa_public_blob, rsa_test_key, with_huge_exponent
from sshmint.keys import PublicKey
from sshmint.signing import load_private_key
from sshmint.token import mint_exe0
from tests.support.harness import SSHMintServer, run_sshmint
from tests.support.keys import Account

API = "v0@localhost"
PAYLOAD = b'{"exp":4102444800,"cmds":["whoami"]}'
REMOVE_ONLY = '{"cmds":["ssh-key remove"]}'  # not among a token's default commands


@functools.cache
def huge_exponent_key() -> rsa.RSAPrivateKey:
    return with_huge_exponent(rsa.generate_private_key(65537, 2048))


def exponent_bits() -> int:
    return huge_exponent_key().public_key().public_numbers().e.bit_length()


def public_line(e: int, n: int, comment: str = "odd exponent") -> str:
    return f"ssh-rsa {base64.b64encode(rsa_public_blob(e, n)).decode()} {comment}"


def exec_as(server: SSHMintServer, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.http_url}/exec",
        content="whoami",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_r158_ssh_key_add_refuses_a_25_bit_exponent_and_accepts_65537(
    live: SSHMintServer,
    new_account: Callable[..., Account],
    fresh_key: Callable[..., Path],
) -> None:
    """R158 over the real ssh client: exponent 2^24+1 refused with the docs/accounts.md#ssh-keys message,
    a 3071-bit exponent too; a real ssh-keygen RSA key (e = 65537) is added."""
    account = new_account(live)
    n = rsa.generate_private_key(65537, 3072).public_key().public_numbers().n
    for e, bits in (((1 << 24) + 1, 25), ((1 << 3070) + 1, 3071)):
        result = live.ssh(account.key, "ssh-key", "add", stdin=public_line(e, n) + "\n")
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        assert result.stderr == (
            f"invalid SSH public key: RSA public exponent of {bits} bits is too large "
            "(at most 24 bits)\n"
        )
    rsa_key = fresh_key("rsa", comment="rsa 65537")
    added = live.ssh(account.key, "ssh-key", "add", stdin=Path(f"{rsa_key}.pub").read_text())
    assert (added.returncode, added.stdout, added.stderr) == (0, "Added SSH key.\n", "")
    listed = live.ssh(account.key, "ssh-key", "list", "--json")
    names = [k["name"] for k in json.loads(listed.stdout)["ssh_keys"]]
    assert names.count("rsa-65537") == 1 and len(names) == 2  # nothing else was stored


def test_s113_admin_add_user_refuses_a_key_outside_the_limits(
    live: SSHMintServer, tmp_path: Path
) -> None:
    n = huge_exponent_key().public_key().public_numbers().n
    pub = tmp_path / "even.pub"
    pub.write_text(public_line(65536, n) + "\n")
    email = f"even-{uuid.uuid4().hex[:8]}@example.com"
    result = live.admin("add-user", email, "--key-file", str(pub))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "invalid SSH public key: RSA public exponent 65536 is even\n"
    assert email not in live.stored_users()  # nothing was written


def test_s113_stored_key_outside_the_limits_counts_as_not_registered(
    live: SSHMintServer, new_account: Callable[..., Account], tmp_path: Path
) -> None:
    """docs/security.md#key-limits: a row an older version stored with a 2047-bit exponent. Its genuine token
    and a garbage-signature token both get 401 ``invalid token`` (step 18, not a parse
    message), the key cannot log in, and the account removes it by fingerprint."""
    account = new_account(live)
    legacy = rsa_test_key(huge_exponent_key(), b"rsa-sha2-512", "legacy")
    stored = PublicKey("ssh-rsa", legacy.public_key.blob)
    # As an older version did: Store.add_key validates nothing.
    live.with_store(
        lambda store: store.add_key(account.user_id, stored, "legacy", "", 1_700_000_000)
    )

    ours = mint_exe0(PAYLOAD, load_private_key(account.key), API)
    assert exec_as(live, ours).json()["email"] == account.email  # the path works
    genuine = make_token(legacy, PAYLOAD, API, "sha512")
    payload_part, _, signature_part = genuine.rpartition(".")
    garbage = f"{payload_part}.{signature_part[:-40]}{'A' * 40}"
    for token in (genuine, garbage):
        response = exec_as(live, token)
        assert (response.status_code, response.json()) == (401, {"error": "invalid token"})
    log = live.stderr
    assert f"key SHA256:{stored.fingerprint} is stored but unusable" in log
    assert f"RSA public exponent of {exponent_bits()} bits is too large" in log
    assert signature_part[-60:] not in log and signature_part[:60] not in log

    private = tmp_path / "legacy_rsa"
    private.write_bytes(
        huge_exponent_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    login = live.ssh(private, "whoami")
    assert login.returncode == 255 and "Permission denied (publickey)" in login.stderr

    removed = live.ssh(account.key, "ssh-key", "remove", f"SHA256:{stored.fingerprint}")
    assert (removed.returncode, removed.stderr) == (0, ""), removed.stderr
    assert "legacy" in removed.stdout
    keys = json.loads(live.ssh(account.key, "ssh-key", "list", "--json").stdout)
    assert [k["name"] for k in keys["ssh_keys"]] == ["test"]


def test_s113_sshmint_verify_refuses_a_key_outside_the_limits(tmp_path: Path) -> None:
    """The offline CLI refuses such a key as a verification key too (the same parser)."""
    n = huge_exponent_key().public_key().public_numbers().n
    pub = tmp_path / "huge.pub"
    pub.write_text(public_line(huge_exponent_key().public_key().public_numbers().e, n) + "\n")
    legacy = rsa_test_key(huge_exponent_key(), b"rsa-sha2-512", "legacy")
    token = make_token(legacy, PAYLOAD, API, "sha512")
    result = run_sshmint("verify", token, "--namespace", API, "--key", str(pub))
    assert result.returncode != 0
    assert f"RSA public exponent of {exponent_bits()} bits is too large" in result.stderr


def test_s113_stored_key_outside_the_limits_is_removed_by_its_full_line(
    live: SSHMintServer, new_account: Callable[..., Account]
) -> None:
    """docs/ssh.md#ssh-key-remove: the line of a key an older version stored, which no
    longer parses as a key, still names it for ``ssh-key remove`` — the owner's only:
    another account giving the same line finds nothing."""
    owner, other = new_account(live), new_account(live)
    legacy = with_huge_exponent(rsa.generate_private_key(65537, 2048))  # this test's own
    stored = PublicKey("ssh-rsa", rsa_test_key(legacy, b"rsa-sha2-512", "old").public_key.blob)
    live.with_store(lambda store: store.add_key(owner.user_id, stored, "legacy", "", 1_700_000_000))
    line = f"ssh-rsa {base64.b64encode(stored.blob).decode()} the comment is not compared"

    def remove(account: Account) -> httpx.Response:
        return httpx.post(
            f"{live.http_url}/exec",
            content=f"ssh-key remove {line}",
            headers={"Authorization": f"Bearer {account.token(REMOVE_ONLY)}"},
            timeout=30,
        )

    refused = remove(other)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"].startswith("no matching SSH key found for ")
    removed = remove(owner)
    assert removed.status_code == 200, removed.text
    assert removed.json()["name"] == "legacy"
    assert removed.json()["fingerprint"] == f"SHA256:{stored.fingerprint}"
    keys = json.loads(live.ssh(owner.key, "ssh-key", "list", "--json").stdout)
    assert [k["name"] for k in keys["ssh_keys"]] == ["test"]
