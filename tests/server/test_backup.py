"""``sshmint admin backup FILE`` (docs/operations.md#backup, R171) against a real server taking
writes over SSH and ``POST /exec`` while the backup runs, and the restore: a new server on
``--db sqlite:///COPY`` serves every user, key, VM and exe1 handle committed before the
backup began, and authenticates the tokens minted before it.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from sshmint.signing import load_private_key
from sshmint.token import mint_exe0
from tests.support.harness import SSHMINT, SSHMintServer, client_environment, run_sshmint
from tests.support.keys import Account, fresh_public_key
from tests.support.server_fixtures import ServerFactory

EXP = b'{"exp":%d}'


def _token(account: Account) -> str:
    """An exe0 token for the API, valid for an hour, signed by the account's login key."""
    payload = EXP % (int(time.time()) + 3600)
    return mint_exe0(payload, load_private_key(str(account.key)), "v0@localhost")


# One client for every request (it is thread-safe): no new TLS context per request.
_HTTP = httpx.Client(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    _HTTP.close()


def _exec(server: SSHMintServer, token: str, line: str) -> httpx.Response:
    return _HTTP.post(
        f"{server.http_url}/exec", content=line, headers={"Authorization": f"Bearer {token}"}
    )


@dataclass
class Write:
    """One write made while the backup may run: when it was sent and when it was answered."""

    name: str
    sent: float
    answered: float = 0.0
    ok: bool = False
    detail: str = ""


@dataclass
class Writer:
    """A thread making one write after another until stopped; each write names a new
    row, so its presence in the copy can be checked."""

    do: Callable[[int], tuple[str, bool, str]]
    writes: list[Write] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            sent = time.monotonic()
            name, ok, detail = self.do(number)
            self.writes.append(Write(name, sent, time.monotonic(), ok, detail))

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(60)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.writes) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.writes) >= count, "the writer stalled"


def _prefix_in_copy(writer: Writer, present: set[str], began: float, ended: float) -> None:
    """The copy is one snapshot: of one writer's sequential writes it holds exactly the
    first k, with every write answered before the backup began and none sent after it
    ended."""
    names = [w.name for w in writer.writes]
    k = sum(1 for name in names if name in present)
    assert set(names[:k]) <= present and not set(names[k:]) & present, "not a snapshot"
    assert all(w.name in present for w in writer.writes if w.answered < began)
    assert not any(w.name in present for w in writer.writes if w.sent > ended)


@pytest.mark.slow
def test_r171_backup_under_concurrent_writes_restores_everything_committed_before(
    server_factory: ServerFactory,
    new_account: Callable[..., Account],
    tmp_path: Path,
) -> None:
    live_dir = tmp_path / "live"
    live = server_factory(f"sqlite:///{live_dir / 'sshmint.db'}", data_dir=live_dir)
    accounts = [new_account(live) for _ in range(4)]
    keyless = "keyless@example.com"
    locked = "locked@example.com"
    live.add_user(keyless)
    live.add_user(locked)
    live.set_locked(locked, True)

    # State committed before the backup: an API key, a VM and an exe1 handle per account,
    # plus a generated API key (key and exe1 in one transaction).
    tokens = {a.email: _token(a) for a in accounts}

    def prepare(i: int) -> str:
        """Account ``i``'s key ``before<i>`` and VM ``before<i>``; returns its exe1 handle."""
        account, token = accounts[i], tokens[accounts[i].email]
        added = live.ssh(account.key, "ssh-key", "add", fresh_public_key(f"before{i}"))
        assert added.returncode == 0, added.stderr
        made = _exec(live, token, f"new --name=before{i} --upstream=http://127.0.0.1:9")
        assert made.status_code == 200, made.text
        traded = live.ssh(account.key, "exe0-to-exe1", token)
        assert traded.returncode == 0, traded.stderr
        return traded.stdout.strip()

    with concurrent.futures.ThreadPoolExecutor(len(accounts)) as pool:  # one thread each
        exe1s = dict(zip(tokens, pool.map(prepare, range(len(accounts))), strict=True))
    generated = live.ssh(accounts[0].key, "ssh-key", "generate-api-key", "--label=ci", "--json")
    generated_exe1 = json.loads(generated.stdout)["token"]

    # Writers: keys over SSH for one account, VMs over /exec spread over the others (so
    # that no key meets the rate limit).
    def add_key(n: int) -> tuple[str, bool, str]:
        result = live.ssh(accounts[0].key, "ssh-key", "add", fresh_public_key(f"during{n}"))
        return f"during{n}", result.returncode == 0, result.stderr

    def new_vm(n: int) -> tuple[str, bool, str]:
        owner = accounts[1 + n % 3]
        reply = _exec(
            live, tokens[owner.email], f"new --name=during{n} --upstream=http://127.0.0.1:9"
        )
        return f"during{n}", reply.status_code == 200, reply.text

    key_writer, vm_writer = Writer(add_key), Writer(new_vm)
    key_writer.start()
    vm_writer.start()
    try:
        key_writer.wait_for(2)
        vm_writer.wait_for(5)
        copy = tmp_path / "backups" / "copy.db"
        copy.parent.mkdir()
        began = time.monotonic()
        backup = run_sshmint("admin", "backup", str(copy), "--data-dir", str(live_dir))
        ended = time.monotonic()
        key_count, vm_count = len(key_writer.writes), len(vm_writer.writes)
        key_writer.wait_for(key_count + 2)
        vm_writer.wait_for(vm_count + 5)
    finally:
        key_writer.finish()
        vm_writer.finish()
    assert backup.returncode == 0, backup.stderr
    assert backup.stdout == (
        f"backed up {live_dir / 'sshmint.db'} to {copy} ({copy.stat().st_size} bytes)\n"
    )
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert sorted(os.listdir(copy.parent)) == ["copy.db"]  # no temporary file left over
    # The server kept writing while the copy was made, and no write failed.
    for writer in (key_writer, vm_writer):
        failed = [w for w in writer.writes if not w.ok]
        assert failed == [], failed[:3]
        assert any(began < w.answered < ended for w in writer.writes), "no overlap"

    # Restore: a new server on the copy, in a fresh data directory.
    restored = server_factory(f"sqlite:///{copy}", data_dir=tmp_path / "restored")
    users = restored.stored_users().values()
    assert {u.email: u.locked for u in users} == {
        **{a.email: False for a in accounts},
        keyless: False,
        locked: True,
    }
    for i, account in enumerate(accounts):
        for token in (tokens[account.email], exe1s[account.email]):  # minted before
            whoami = _exec(restored, token, "whoami")
            assert (whoami.status_code, whoami.json()["email"]) == (200, account.email)
        keys = _exec(restored, tokens[account.email], "ssh-key list").json()["ssh_keys"]
        assert f"before{i}" in {k["name"] for k in keys}
    assert _exec(restored, generated_exe1, "whoami").json()["email"] == accounts[0].email
    keys = _exec(restored, tokens[accounts[0].email], "ssh-key list").json()["ssh_keys"]
    _prefix_in_copy(key_writer, {k["name"] for k in keys}, began, ended)
    vms: set[str] = set()
    for owner in accounts:
        listed = _exec(restored, tokens[owner.email], "ls").json()["vms"]
        vms |= {vm["vm_name"] for vm in listed}
    assert {f"before{i}" for i in range(4)} <= vms
    _prefix_in_copy(vm_writer, vms, began, ended)


def _backup_with_umask_000(data: Path, target: Path) -> subprocess.CompletedProcess[str]:
    """``sshmint admin backup`` under umask 000: the copy must be 0600 by itself, not by
    the caller's umask."""
    argv = [str(SSHMINT), "admin", "backup", "--data-dir", str(data), str(target)]
    return subprocess.run(
        ["bash", "-c", 'umask 000 && exec "$0" "$@"', *argv],
        env=client_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _data_dir_with_a_database(tmp_path: Path) -> Path:
    """A data directory holding an (empty) sshmint database, made in-process."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    SSHMintServer(data, f"sqlite:///{data / 'sshmint.db'}").stored_users()  # makes the schema
    return data


def test_r171_backup_file_is_private_and_never_replaces_a_file(tmp_path: Path) -> None:
    data = _data_dir_with_a_database(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    first = _backup_with_umask_000(data, out / "a.db")
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE((out / "a.db").stat().st_mode) == 0o600
    before = (out / "a.db").read_bytes()
    again = _backup_with_umask_000(data, out / "a.db")
    assert (again.returncode, again.stdout, again.stderr) == (
        1,
        "",
        f"{out / 'a.db'} already exists; a backup never replaces a file\n",
    )
    assert (out / "a.db").read_bytes() == before
    # Least of all the database itself.
    live_db = data / "sshmint.db"
    live_bytes = live_db.read_bytes()
    onto_live = _backup_with_umask_000(data, live_db)
    assert onto_live.returncode == 1 and "already exists" in onto_live.stderr
    assert live_db.read_bytes() == live_bytes
    assert sorted(os.listdir(out)) == ["a.db"]  # no temporary file left over


def test_r171_backup_writes_nothing_through_a_dangling_link_or_into_a_missing_directory(
    tmp_path: Path,
) -> None:
    data = _data_dir_with_a_database(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    # A dangling symlink is a name taken too: nothing is written through it.
    (out / "link.db").symlink_to(out / "elsewhere.db")
    assert _backup_with_umask_000(data, out / "link.db").returncode == 1
    assert not (out / "elsewhere.db").exists()
    missing_dir = _backup_with_umask_000(data, out / "no" / "such" / "dir.db")
    assert missing_dir.returncode == 1 and missing_dir.stderr.startswith("cannot write ")
    assert sorted(os.listdir(out)) == ["link.db"]  # no temporary file left over
