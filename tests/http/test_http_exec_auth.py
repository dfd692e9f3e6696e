"""``POST /exec`` authentication against a live ``sshmint serve`` on SQLite and PostgreSQL
(docs/tokens.md#validation–docs/accounts.md#accounts-keys-and-vms as seen through /exec, R1–R40, R49–R50, R65–R67, R80–R89, R124).

Tokens are made with the user page's ssh-keygen recipe; exe1 handles come from
``exe0-to-exe1`` and ``generate-api-key`` over the real OpenSSH client. One server per
backend; every test signs with its own fresh key.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest

from tests.support.exec_support import assert_error, assert_ok, post_exec, ssh_ok
from tests.support.harness import SSHMintServer
from tests.support.http_support import add_key, db_execute
from tests.support.keys import Account, new_key, public_line, recipe_token


def test_r1_r118_recipe_token_runs_whoami_as_json(live: SSHMintServer, account: Account) -> None:
    data = assert_ok(post_exec(live, b"whoami", token=account.token()))
    assert data["email"] == account.email
    assert data["user_id"] == account.user_id
    keys = data["ssh_keys"]
    assert isinstance(keys, list) and keys[0]["current"] is True
    assert keys[0]["fingerprint"] == "SHA256:" + account.fingerprint


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_r2_ecdsa_and_rsa_recipe_tokens_are_accepted(
    live: SSHMintServer, owner: Account, tmp_path: Path, kind: str
) -> None:
    account = add_key(live, owner, new_key(tmp_path / kind, kind))
    assert assert_ok(post_exec(live, b"whoami", token=account.token()))["email"] == account.email


def test_r36_r38_claims_use_the_server_clock(live: SSHMintServer, account: Account) -> None:
    now = int(time.time())
    future = account.token(f'{{"nbf":{now + 3600}}}')
    assert_error(
        post_exec(live, b"whoami", token=future), 401, "invalid token: token is not yet valid"
    )
    both = account.token(f'{{"exp":{now - 3600},"nbf":{now + 3600}}}')
    assert_error(post_exec(live, b"whoami", token=both), 401, "invalid token: token has expired")
    valid = account.token(f'{{"exp":{now + 3600},"nbf":{now - 3600}}}')
    assert_ok(post_exec(live, b"whoami", token=valid))


@pytest.mark.parametrize("namespace", ["v0@evil.com", "v0@myapp.localhost", "v0@LOCALHOST"])
def test_r7_r8_tokens_for_another_namespace_are_invalid(
    live: SSHMintServer, account: Account, namespace: str
) -> None:
    token = account.token(namespace=namespace)
    assert_error(post_exec(live, b"whoami", token=token), 401, "invalid token")


def test_r9_a_payload_changed_by_one_byte_is_invalid(live: SSHMintServer, account: Account) -> None:
    token = account.token('{"exp":4000000000}')
    prefix, payload, signature = token.split(".")
    other = base64.urlsafe_b64encode(b'{"exp":4000000001}').decode().rstrip("=")
    assert other != payload
    assert_error(
        post_exec(live, b"whoami", token=f"{prefix}.{other}.{signature}"), 401, "invalid token"
    )


def test_r32_a_key_not_registered_is_invalid(live: SSHMintServer, tmp_path: Path) -> None:
    stranger = new_key(tmp_path / "stranger")
    assert_error(post_exec(live, b"whoami", token=recipe_token(stranger)), 401, "invalid token")


def test_r33_r67_locked_out_owner_is_invalid_until_unlocked(
    live: SSHMintServer, account: Account
) -> None:
    token = account.token()
    live.set_locked(account.email, True)
    assert_error(post_exec(live, b"whoami", token=token), 401, "invalid token")
    live.set_locked(account.email, False)
    assert_ok(post_exec(live, b"whoami", token=token))


def test_r65_r66_r89_removing_the_key_revokes_its_exe0_and_exe1_at_once(
    live: SSHMintServer, account: Account, tmp_path: Path
) -> None:
    # A second key of the same user keeps an SSH session open to the account after removal.
    second = new_key(tmp_path / "second", comment="second")
    ssh_ok(live, account.key, "ssh-key", "add", public_line(second))

    exe0 = account.token('{"cmds":["whoami","ls"]}')
    exe1 = ssh_ok(live, account.key, "exe0-to-exe1", exe0)  # over the real OpenSSH client
    assert exe1.startswith("exe1.") and len(exe1) == 5 + 26
    via_exe0 = assert_ok(post_exec(live, b"whoami", token=exe0))
    via_exe1 = assert_ok(post_exec(live, b"whoami", token=exe1))
    assert via_exe0 == via_exe1  # R89: same output
    assert_error(
        post_exec(live, b"help", token=exe1), 403, "command not allowed by token permissions"
    )

    ssh_ok(live, second, "ssh-key", "remove", "SHA256:" + account.fingerprint)
    assert_error(post_exec(live, b"whoami", token=exe0), 401, "invalid token")
    assert_error(post_exec(live, b"whoami", token=exe1), 401, "invalid token")

    ssh_ok(live, second, "ssh-key", "add", public_line(account.key))  # R66
    assert_ok(post_exec(live, b"whoami", token=exe0))
    assert_ok(post_exec(live, b"whoami", token=exe1))


def test_r80_r83_r86_generated_api_key_works_until_its_key_is_removed(
    live: SSHMintServer, account: Account
) -> None:
    out = ssh_ok(
        live, account.key, "ssh-key", "generate-api-key", "--json", "--label=ci", "--cmds=whoami"
    )
    generated = json.loads(out)
    token = generated["token"]
    assert generated["namespace"] == "v0@localhost"
    data = assert_ok(post_exec(live, b"whoami", token=token))
    assert data["email"] == account.email
    ssh_keys = data["ssh_keys"]
    assert isinstance(ssh_keys, list)
    current = [k for k in ssh_keys if k["current"]]
    assert current[0]["fingerprint"] == generated["fingerprint"]
    assert_error(
        post_exec(live, b"ls", token=token), 403, "command not allowed by token permissions"
    )
    ssh_ok(live, account.key, "ssh-key", "remove", "ci")
    assert_error(post_exec(live, b"whoami", token=token), 401, "invalid token")


def test_r39_traded_handle_waits_for_nbf(live: SSHMintServer, account: Account) -> None:
    exe0 = account.token(f'{{"nbf":{int(time.time()) + 3600}}}')
    exe1 = ssh_ok(live, account.key, "exe0-to-exe1", exe0)
    assert_error(
        post_exec(live, b"whoami", token=exe1), 401, "invalid token: token is not yet valid"
    )


def test_r124_vm_api_key_is_invalid_on_exec(live: SSHMintServer, account: Account) -> None:
    vm = "v" + uuid.uuid4().hex[:10]
    assert_ok(
        post_exec(
            live, f"new --name={vm} --upstream=http://127.0.0.1:9".encode(), token=account.token()
        )
    )
    out = ssh_ok(live, account.key, "ssh-key", "generate-api-key", "--json", f"--vm={vm}")
    token = json.loads(out)["token"]
    assert_error(post_exec(live, b"whoami", token=token), 401, "invalid token")


def test_r49_r56_key_restrictions_apply_after_token_cmds(
    live: SSHMintServer, account: Account, tmp_path: Path
) -> None:
    restricted = new_key(tmp_path / "restricted")
    ssh_ok(live, account.key, "ssh-key", "add", "--cmds=whoami", public_line(restricted))
    token = recipe_token(restricted)
    assert_ok(post_exec(live, b"whoami", token=token))
    assert_error(
        post_exec(live, b"ls", token=token), 403, "command not allowed by SSH key permissions"
    )
    # Token cmds are checked first (docs/permissions.md#how-they-combine).
    assert_error(
        post_exec(live, b"rm x", token=token), 403, "command not allowed by token permissions"
    )


def test_r50_expired_key_is_403_and_unreadable_permissions_are_500(
    live: SSHMintServer, account: Account
) -> None:
    token = account.token()
    sql = "UPDATE ssh_keys SET permissions = ? WHERE fingerprint = ?"
    db_execute(live.db_url, sql, ('{"exp":946684800}', account.fingerprint))
    assert_error(post_exec(live, b"whoami", token=token), 403, "SSH key has expired")
    db_execute(live.db_url, sql, ("{not json", account.fingerprint))
    assert_error(post_exec(live, b"whoami", token=token), 500, "internal error")
    db_execute(live.db_url, sql, ("", account.fingerprint))
    assert_ok(post_exec(live, b"whoami", token=token))
