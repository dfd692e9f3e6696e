"""``sshmint admin`` (docs/operations.md#admin-commands, R58, R59, R150) with the real CLI, run against the
database of a running server on both backends."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.harness import SSHMintServer, run_sshmint
from tests.support.keys import AccountFactory

USER_ID = re.compile(r"usr[0-9a-f]{16}")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _users(server: SSHMintServer) -> list[dict[str, object]]:
    result = server.admin("users", "--json")
    assert result.returncode == 0, result.stderr
    users = json.loads(result.stdout)["users"]
    assert isinstance(users, list)
    return users


def _email(user: dict[str, object]) -> str:
    email = user["email"]
    assert isinstance(email, str)
    return email


def _pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def test_r58_add_user_with_key_prints_json_and_names_the_key_from_its_comment(
    live: SSHMintServer, fresh_key: Callable[..., Path]
) -> None:
    key = fresh_key(comment="laptop")
    email = f"r58-{_tag()}@example.com"
    result = live.admin("add-user", email, "--key", _pub(key).read_text().strip(), "--json")
    assert (result.returncode, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert result.stdout == json.dumps(document, separators=(",", ":")) + "\n"  # compact
    assert set(document) == {"user_id", "email"} and document["email"] == email
    assert USER_ID.fullmatch(document["user_id"])
    # R150: the running server sees the new account at once.
    whoami = json.loads(live.ssh(key, "whoami", "--json").stdout)
    assert whoami["user_id"] == document["user_id"]
    assert [k["name"] for k in whoami["ssh_keys"]] == ["laptop"]


def test_r59_emails_are_trimmed_and_lower_cased_and_key_file_first_line_is_used(
    live: SSHMintServer, fresh_key: Callable[..., Path], tmp_path: Path
) -> None:
    key = fresh_key(comment="")
    key_file = tmp_path / "key.txt"
    key_file.write_text("\n   \n" + _pub(key).read_text() + "ssh-ed25519 ignored-second-line\n")
    tag = _tag()
    result = live.admin("add-user", f"  R59-{tag}@Example.COM ", "--key-file", str(key_file))
    assert result.returncode == 0, result.stderr
    email = f"r59-{tag}@example.com"
    match = re.fullmatch(rf"created user (usr[0-9a-f]{{16}}) {re.escape(email)}\n", result.stdout)
    assert match, result.stdout
    whoami = json.loads(live.ssh(key, "whoami", "--json").stdout)
    assert whoami["email"] == email
    assert [k["name"] for k in whoami["ssh_keys"]] == [
        "key-1"
    ]  # empty comment (docs/accounts.md#name-sanitising)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-email"], 'invalid email address: "not-an-email"'),
        (["a@b@example.com"], 'invalid email address: "a@b@example.com"'),
        (
            ["x@example.com", "--key", "k", "--key-file", "f"],
            "--key and --key-file are mutually exclusive",
        ),
        (["x@example.com", "--key", "ssh-ed25519 AAAA"], "invalid SSH public key: "),
        (["x@example.com", "--key", "ssh-ed25519 !!!notbase64"], "invalid SSH public key: "),
        (
            ["x@example.com", "--key-file", "{private}"],
            "this is a private key, please use the public key instead (typically found in a .pub file)",
        ),
        (["x@example.com", "--key-file", "{missing}"], "cannot read key file "),
    ],
)
def test_a2_bad_input_exits_1_with_the_message_and_writes_nothing(
    tmp_path: Path, fresh_key: Callable[..., Path], args: list[str], message: str
) -> None:
    private = fresh_key()
    args = [a.format(private=private, missing=tmp_path / "missing.pub") for a in args]
    data_dir = tmp_path / "data"
    result = run_sshmint("admin", "add-user", *args, "--data-dir", str(data_dir))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert not data_dir.exists()  # failed before touching the database


def test_a2_usage_errors_exit_1(tmp_path: Path) -> None:
    for args in (["add-user"], ["no-such-subcommand"], ["users", "--bogus"]):
        result = run_sshmint("admin", *args, "--data-dir", str(tmp_path))
        assert result.returncode == 1, args
        assert "Traceback" not in result.stderr


def test_a2_existing_user_and_registered_key_are_refused_in_one_transaction(
    live: SSHMintServer, fresh_key: Callable[..., Path]
) -> None:
    key = _pub(fresh_key())
    tag = _tag()
    first = f"first-{tag}@example.com"
    live.add_user(first, key)
    again = live.admin("add-user", first.upper())
    assert (again.returncode, again.stdout, again.stderr) == (
        1,
        "",
        f'user "{first}" already exists\n',
    )
    second = f"second-{tag}@example.com"
    taken = live.admin("add-user", second, "--key-file", str(key))
    assert (taken.returncode, taken.stderr) == (
        1,
        "this SSH key is already associated with another account\n",
    )
    assert second not in live.stored_users()  # no partial write


def _run_twice(live: SSHMintServer, command: str, email: str, done: str) -> None:
    """The command twice (by the email in capitals): the same answer both times."""
    for _ in range(2):
        result = live.admin(command, email.upper())
        assert (result.returncode, result.stdout) == (0, f"{done} {email}\n")


def test_a2_lock_is_idempotent_and_refuses_the_accounts_sessions(
    live: SSHMintServer, new_account: AccountFactory
) -> None:
    account = new_account(live)
    _run_twice(live, "lock-user", account.email, "locked")
    assert live.ssh(account.key, "whoami").stderr == "sshmint: this account is locked\n"


def test_a2_unlock_is_idempotent_and_lets_the_account_in_again(
    live: SSHMintServer, new_account: AccountFactory
) -> None:
    account = new_account(live)
    live.set_locked(account.email, True)
    assert live.ssh(account.key, "whoami").returncode != 0
    _run_twice(live, "unlock-user", account.email, "unlocked")
    assert live.ssh(account.key, "whoami").returncode == 0


@pytest.mark.parametrize("command", ["lock-user", "unlock-user"])
def test_a2_lock_and_unlock_of_an_unknown_email_fail(live: SSHMintServer, command: str) -> None:
    unknown = f"nobody-{_tag()}@example.com"
    result = live.admin(command, unknown)
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f'user "{unknown}" not found\n',
    )


def test_a2_users_lists_every_user_ordered_by_email_in_json_and_text(
    live: SSHMintServer, fresh_key: Callable[..., Path]
) -> None:
    tag = _tag()
    # Punctuation that collation-aware orderings would sort differently.
    emails = [
        f"{tag}-b@example.com",
        f"{tag}.a@example.com",
        f"{tag}a@example.com",
        f"{tag}_z@x.org",
    ]
    for i, email in enumerate(emails):  # the listing is under test here, not add-user
        live.add_user(email, _pub(fresh_key()) if i == 0 else None)
    live.set_locked(emails[1], True)
    users = _users(live)
    listed = [_email(u) for u in users]
    assert listed == sorted(listed)
    ours = [u for u in users if str(u["email"]).startswith(tag)]
    assert [u["email"] for u in ours] == sorted(emails)
    for user in ours:
        assert set(user) == {"user_id", "email", "locked", "created_at", "ssh_keys"}
        assert USER_ID.fullmatch(str(user["user_id"]))
        assert user["locked"] is (user["email"] == emails[1])
        assert RFC3339.fullmatch(str(user["created_at"]))
        assert user["ssh_keys"] == (1 if user["email"] == emails[0] else 0)

    text = live.admin("users")
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert len(lines) == len(users)
    assert [next(e for e in listed if e in line.split()) for line in lines] == listed


def test_a2_admin_takes_database_options_from_environment_and_group(
    live: SSHMintServer, tmp_path: Path
) -> None:
    email = f"env-{_tag()}@example.com"
    created = run_sshmint("admin", "add-user", email, env={"SSHMINT_DB": live.db_url})
    assert created.returncode == 0, created.stderr
    grouped = run_sshmint("admin", "--db", live.db_url, "users", "--json")
    assert email in {u["email"] for u in json.loads(grouped.stdout)["users"]}


def test_a2_admin_takes_a_fresh_data_directory_from_the_environment(tmp_path: Path) -> None:
    """add-user creates the database there, with the schema made on first use
    (docs/storage.md#backends, docs/operations.md#a-missing-database), and the listing
    reads it."""
    email = f"env-{_tag()}@example.com"
    data_dir = tmp_path / "fresh"
    env = {"SSHMINT_DATA_DIR": str(data_dir)}
    first = run_sshmint("admin", "add-user", email, env=env)
    assert first.stderr == f"created new database at {data_dir / 'sshmint.db'}\n"
    listed = run_sshmint("admin", "users", "--json", env=env)
    assert [u["email"] for u in json.loads(listed.stdout)["users"]] == [email]
