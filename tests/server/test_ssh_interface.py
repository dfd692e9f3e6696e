"""The SSH command interface with the real OpenSSH client (docs/ssh.md#connection-and-login, R67–R74,
R103–R106, R146): the session's shared server of each backend, one account per mutating
test."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.harness import SSHMintServer
from tests.support.keys import Account, key_fingerprint

KEY_NOT_ALLOWED = "command not allowed by SSH key permissions"


@dataclass(frozen=True)
class Reader:
    """An account that tests only read: ``first`` registered by admin, ``second`` added later."""

    account: Account
    second: Path


@pytest.fixture(scope="module")
def reader(live: SSHMintServer, ssh_keygen_key: Callable[..., Path]) -> Reader:
    tag = uuid.uuid4().hex[:10]
    first = ssh_keygen_key("ed25519", name=f"reader1-{tag}", comment="first key")
    second = ssh_keygen_key("ecdsa", name=f"reader2-{tag}", comment="second key")
    email = f"reader-{tag}@example.com"
    user_id = live.add_user(email, first.with_name(first.name + ".pub"))
    added = live.ssh(
        first, "ssh-key", "add", stdin=second.with_name(second.name + ".pub").read_text()
    )
    assert added.returncode == 0, added.stderr
    return Reader(Account(email, first, user_id), second)


@pytest.fixture(scope="module")
def writer(live: SSHMintServer, ssh_keygen_key: Callable[..., Path]) -> Account:
    """An account several tests add keys to; each test checks only the keys it added."""
    tag = uuid.uuid4().hex[:10]
    key = ssh_keygen_key("ed25519", name=f"writer-{tag}", comment="writer")
    email = f"writer-{tag}@example.com"
    return Account(email, key, live.add_user(email, key.with_name(key.name + ".pub")))


def _json(text: str) -> dict[str, object]:
    assert text.endswith("\n") and text.count("\n") == 1, text  # one compact object
    document = json.loads(text)
    assert isinstance(document, dict)
    return document


def _keys(server: SSHMintServer, key: Path) -> list[dict[str, object]]:
    result = server.ssh(key, "ssh-key", "list", "--json")
    assert result.returncode == 0, result.stderr
    keys = _json(result.stdout)["ssh_keys"]
    assert isinstance(keys, list)
    return keys


def test_r69_any_user_name_logs_into_the_account_of_the_key(
    live: SSHMintServer, reader: Reader
) -> None:
    for user in ("sshmint", "root", "no-such-user", "A.Name"):
        result = live.ssh(reader.account.key, "whoami", "--json", user=user)
        assert result.returncode == 0, result.stderr
        assert _json(result.stdout)["user_id"] == reader.account.user_id


def test_r70_unregistered_key_is_refused_for_exec_and_for_the_shell(
    live: SSHMintServer, fresh_key: Callable[..., Path]
) -> None:
    key = fresh_key()
    fp = key_fingerprint(key.with_name(key.name + ".pub"))
    expected = f"sshmint: SSH key {fp} is not registered to any account\n"
    for words in (("whoami",), ()):
        result = live.ssh(key, *words)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", expected)


def test_r71_whoami_json_lists_the_login_key_first(live: SSHMintServer, reader: Reader) -> None:
    for login in (reader.second, reader.account.key):
        result = live.ssh(login, "whoami", "--json")
        assert result.returncode == 0, result.stderr
        document = _json(result.stdout)
        assert document["email"] == reader.account.email
        keys = document["ssh_keys"]
        assert isinstance(keys, list) and len(keys) == 2
        assert keys[0]["fingerprint"] == key_fingerprint(login.with_name(login.name + ".pub"))
        assert [k["current"] for k in keys] == [True, False]
        assert {k["name"] for k in keys} == {"first-key", "second-key"}


def test_spec_5_2_a_session_records_the_day_the_key_was_last_used(
    live: SSHMintServer, reader: Reader
) -> None:
    before = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
    keys = _keys(live, reader.account.key)
    after = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
    used = {k["name"]: k.get("last_used_at") for k in keys}
    assert used["first-key"] in {before, after}


def test_r72_failing_command_exits_1_with_stderr_or_json_error(
    live: SSHMintServer, reader: Reader
) -> None:
    message = 'no matching SSH key found for "nosuch"'
    text = live.ssh(reader.account.key, "ssh-key", "remove", "nosuch")
    assert (text.returncode, text.stdout, text.stderr) == (1, "", message + "\n")
    as_json = live.ssh(reader.account.key, "ssh-key", "remove", "nosuch", "--json")
    assert as_json.returncode == 1
    assert _json(as_json.stdout) == {"error": message}
    assert as_json.stderr == message + "\n"


def test_r103_unknown_flag(live: SSHMintServer, reader: Reader) -> None:
    result = live.ssh(reader.account.key, "whoami", "--bogus")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "flag parsing error: unknown flag --bogus\n"


def test_r104_positional_argument_to_a_command_without_any(
    live: SSHMintServer, reader: Reader
) -> None:
    result = live.ssh(reader.account.key, "whoami", "extra")
    assert result.returncode == 1
    assert result.stderr == (
        '"whoami" command has no subcommands and does not take positional arguments\n'
    )


def test_spec_6_2_6_3_syntax_errors_and_blank_command_lines(
    live: SSHMintServer, reader: Reader
) -> None:
    # The client joins its words with spaces: the server receives  ls 'unterminated
    broken = live.ssh(reader.account.key, "ls", "'unterminated")
    assert (broken.returncode, broken.stdout, broken.stderr) == (
        1,
        "",
        "invalid command syntax\n",
    )
    blank = live.ssh(reader.account.key, "   ")
    assert (blank.returncode, blank.stdout, blank.stderr) == (0, "", "")
    quoted = live.ssh(reader.account.key, "help", "'ssh-key'", '"list"', "--json")
    assert quoted.returncode == 0, quoted.stderr
    assert _json(quoted.stdout)["command"] == "list"


def test_r73_r74_ssh_key_add_from_stdin_and_from_unquoted_words(
    live: SSHMintServer,
    writer: Account,
    fresh_key: Callable[..., Path],
) -> None:
    account = writer
    piped = fresh_key(comment="piped key")
    piped_pub = piped.with_name(piped.name + ".pub")
    # cat key.pub | ssh HOST ssh-key add
    result = live.ssh(account.key, "ssh-key", "add", stdin=piped_pub.read_text())
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == "Added SSH key.\n"
    login = live.ssh(piped, "whoami", "--json")
    assert _json(login.stdout)["user_id"] == account.user_id

    for stdin in ("", None):  # empty stdin, and stdin closed at once
        empty = live.ssh(account.key, "ssh-key", "add", stdin=stdin)
        assert (empty.returncode, empty.stderr) == (
            1,
            "please provide the SSH public key to add\n",
        )

    # Unquoted words are joined back with single spaces; stdin is then not read.
    worded = fresh_key(comment="unused")
    key_type, blob = worded.with_name(worded.name + ".pub").read_text().split()[:2]
    result = live.ssh(
        account.key, "ssh-key", "add", key_type, blob, "my", "laptop", stdin="not a key\n"
    )
    assert result.returncode == 0, result.stderr
    names = {k["fingerprint"]: k["name"] for k in _keys(live, account.key)}
    assert names[key_fingerprint(worded.with_name(worded.name + ".pub"))] == "my-laptop"
    assert names[key_fingerprint(piped_pub)] == "piped-key"


def test_r67_r150_lockout_refuses_sessions_and_unlock_restores_them(
    live: SSHMintServer, new_account: Callable[..., Account]
) -> None:
    account = new_account(live)
    live.set_locked(account.email, True)
    for words in (("whoami",), ()):  # exec and shell
        refused = live.ssh(account.key, *words)
        assert (refused.returncode, refused.stdout, refused.stderr) == (
            1,
            "",
            "sshmint: this account is locked\n",
        )
    live.set_locked(account.email, False)
    assert live.ssh(account.key, "whoami").returncode == 0


def test_r47_r56_spec_6_5_key_restrictions_are_checked_before_every_command(
    live: SSHMintServer,
    writer: Account,
    fresh_key: Callable[..., Path],
) -> None:
    account = writer
    limited, vm_scoped = fresh_key(), fresh_key()
    vm = f"vm{uuid.uuid4().hex[:8]}"
    setup = [
        (
            "ssh-key",
            "add",
            "--cmds=whoami,ls",
            limited.with_name(limited.name + ".pub").read_text(),
        ),
        ("new", f"--name={vm}", "--upstream=http://127.0.0.1:9"),
        ("ssh-key", "add", f"--vm={vm}", vm_scoped.with_name(vm_scoped.name + ".pub").read_text()),
    ]
    for words in setup:
        result = live.ssh(account.key, *words)
        assert result.returncode == 0, result.stderr

    assert live.ssh(limited, "whoami").returncode == 0
    assert live.ssh(limited, "ls", "--json").returncode == 0
    for words in (("ssh-key", "list"), ("new",), ("notacommand",)):
        refused = live.ssh(limited, *words)
        assert (refused.returncode, refused.stdout, refused.stderr) == (
            1,
            "",
            KEY_NOT_ALLOWED + "\n",
        )
    as_json = live.ssh(limited, "ssh-key", "list", "--json")
    assert _json(as_json.stdout) == {"error": KEY_NOT_ALLOWED}
    # R56: a VM-scoped key runs no SSH command at all.
    for words in (("whoami",), ("help",)):
        refused = live.ssh(vm_scoped, *words)
        assert (refused.returncode, refused.stderr) == (1, KEY_NOT_ALLOWED + "\n")


def test_r50_expired_key_is_refused_over_ssh(
    live: SSHMintServer,
    writer: Account,
    fresh_key: Callable[..., Path],
) -> None:
    account = writer
    short = fresh_key()
    added = live.ssh(
        account.key, "ssh-key", "add", "--exp=1s", short.with_name(short.name + ".pub").read_text()
    )
    assert added.returncode == 0, added.stderr
    time.sleep(2.1)  # docs/permissions.md#key-expiry: expired once now > exp (whole seconds)
    refused = live.ssh(short, "whoami")
    assert (refused.returncode, refused.stderr) == (1, "SSH key has expired\n")


def test_r105_repl_over_a_pty(live: SSHMintServer, reader: Reader) -> None:
    session = live.interactive(reader.account.key, tty=True)
    try:
        session.expect("\r\nsshmint> ")  # greeting line, then the prompt
        session.send("whoami --json\r")
        shown = session.expect("\r\nsshmint> ")
        # Indented by two spaces, CRLF line endings under a PTY (docs/ssh.md#exec-mode-and-the-repl, docs/ssh.md#output-and-exit-status).
        assert f'\r\n  "user_id": "{reader.account.user_id}",\r\n' in shown
        # Ctrl-C drops the partial line and prompts again; the next line runs alone.
        session.send("who")
        session.send("\x03")
        session.expect("sshmint> ")
        session.send("whoami\r")
        shown = session.expect("sshmint> ")
        assert reader.account.email in shown and "command not found" not in shown
        session.send("\r")  # empty lines are ignored
        session.expect("sshmint> ")
        session.send("exit\r")
        assert session.wait() == 0
    finally:
        session.kill()


def test_spec_6_2_repl_without_pty_plain_lines_and_end_of_input(
    live: SSHMintServer, reader: Reader
) -> None:
    script = "whoami --json\n\n   \nbogus\nls 'open\nwhoami --bogus\nquit\nwhoami\n"
    result = live.ssh(reader.account.key, stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out and "\r" not in out  # no escapes, no CRLF without a PTY
    assert out.count("sshmint> ") == 7  # quit ends the session before the last line
    assert '  "user_id": ' in out
    assert 'command not found: "bogus"\n' in out
    assert "invalid command syntax\n" in out
    assert "flag parsing error: unknown flag --bogus\n" in out
    # End of input ends the REPL with status 0 as well.
    eof = live.ssh(reader.account.key, stdin="whoami\n")
    assert eof.returncode == 0 and reader.account.email in eof.stdout


def test_r106_key_removed_during_a_session_refuses_the_next_command(
    live: SSHMintServer,
    new_account: Callable[..., Account],
    fresh_key: Callable[..., Path],
) -> None:
    account = new_account(live)
    other = fresh_key()
    added = live.ssh(
        account.key, "ssh-key", "add", other.with_name(other.name + ".pub").read_text()
    )
    assert added.returncode == 0, added.stderr
    session = live.interactive(account.key, tty=False)
    try:
        session.expect("sshmint> ")
        session.send("whoami\n")
        assert account.email in session.expect("sshmint> ")
        fp = key_fingerprint(account.pub)
        removed = live.ssh(other, "ssh-key", "remove", fp)
        assert removed.returncode == 0, removed.stderr
        session.send("whoami\n")
        session.expect("SSH key has been revoked\n")
        assert session.wait() == 1
    finally:
        session.kill()
    # docs/accounts.md#key-removal-and-revocation: new sessions with the removed key are refused as an unknown key.
    again = live.ssh(account.key, "whoami")
    assert again.stderr == f"sshmint: SSH key {fp} is not registered to any account\n"


# Messages docs/ssh.md#ssh-key-add allow when clients race on one account.
RACE_MESSAGES = {'a key named "shared" already exists'}


def test_r146_twenty_parallel_clients_keep_one_users_key_list_consistent(
    live: SSHMintServer,
    new_account: Callable[..., Account],
    fresh_key: Callable[..., Path],
) -> None:
    account = new_account(live)
    clients = 20
    keys = [fresh_key(comment=f"k{i}") for i in range(clients)]
    results: dict[int, dict[str, tuple[int, str]]] = {}
    unexpected: list[str] = []
    # Three phases, each run by all clients at once: add, rename onto one name, remove half.
    phase = threading.Barrier(clients, timeout=120)

    def client(i: int) -> None:
        pub = keys[i].with_name(keys[i].name + ".pub")
        outcome: dict[str, tuple[int, str]] = {}
        steps = [
            ("add", ("ssh-key", "add", pub.read_text().strip())),
            ("rename", ("ssh-key", "rename", f"k{i}", "shared")),
            ("remove", ("ssh-key", "remove", key_fingerprint(pub)) if i % 2 else ()),
        ]
        try:
            for step, words in steps:
                phase.wait()
                if words:
                    result = live.ssh(account.key, *words)
                    outcome[step] = (result.returncode, result.stderr.strip())
        except Exception as exc:  # collected: assertions in threads would be lost
            phase.abort()
            unexpected.append(repr(exc))
        results[i] = outcome

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not unexpected
    assert len(results) == clients

    renamed = [i for i, r in results.items() if r["rename"][0] == 0]
    for i, outcome in results.items():
        assert outcome["add"] == (0, ""), outcome
        if "remove" in outcome:
            assert outcome["remove"] == (0, ""), outcome
        if i not in renamed:
            assert outcome["rename"][0] == 1 and outcome["rename"][1] in RACE_MESSAGES, outcome
    assert len(renamed) == 1  # exactly one client won the name

    final = _keys(live, account.key)
    expected = {key_fingerprint(account.pub)} | {
        key_fingerprint(keys[i].with_name(keys[i].name + ".pub")) for i in range(0, clients, 2)
    }
    assert {k["fingerprint"] for k in final} == expected
    names = [k["name"] for k in final]
    assert len(names) == len(set(names))  # rename keeps names unique
    assert ("shared" in names) == (renamed[0] % 2 == 0)


def test_security_command_lines_carrying_tokens_stay_out_of_the_server_log(
    live: SSHMintServer, reader: Reader
) -> None:
    payload = "eyJleHAiOjQwMDAwMDAwMDB9"  # {"exp":4000000000}
    token = f"exe0.{payload}.U1NIU0lHAAAAAQ"
    result = live.ssh(reader.account.key, "exe0-to-exe1", token)
    assert result.returncode == 1 and result.stderr.startswith("invalid token")
    assert payload not in live.stderr
