"""docs/ssh.md#whoami ``whoami`` and docs/ssh.md#ssh-key-list ``ssh-key list|add|remove|rename``;
key restrictions and inheritance through ``ssh-key add`` (docs/permissions.md#key-restrictions, R47–R57, R60–R64,
R68, R71–R79, R106)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from sshmint.server.commands import (
    key_permission_error,
    resolve_command_name,
    split_command_line,
)
from sshmint.server.store import SSHKeyRow
from sshmint.signing import generate_ed25519
from tests.support.command_helpers import (
    BACKENDS,
    NOW,
    Caller,
    Env,
    backend_env,
    json_of,
    pub_line,
)
from tests.support.keys import KeyFactory, fresh_public_key
from tests.support.store_audit import key_by_public_key

NOT_ALLOWED = "command not allowed by SSH key permissions"


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with backend_env(request.param, request, tmp_path) as e:
        yield e


async def ssh_check(caller: Caller, line: str) -> str | None:
    """What the SSH transport does before each command (docs/ssh.md#key-checks-before-every-command)."""
    row = await caller.env.store.key_by_id(caller.key.id)
    name = resolve_command_name(split_command_line(line))
    return key_permission_error(row, name, caller.env.now)


async def add_and_login(caller: Caller, flags: str = "", comment: str = "k") -> Caller:
    """``ssh-key add`` a fresh key with ``flags`` as ``caller``; return a session of it."""
    signer = generate_ed25519()
    line = ["ssh-key", "add", *split_command_line(flags), pub_line(signer.public_key, comment)]
    await caller.ok(line)
    row = await caller.env.store.key_by_fingerprint(signer.public_key.fingerprint)
    assert row is not None
    return replace(caller, key=row, signer=signer)


async def stored_permissions(caller: Caller) -> dict[str, object]:
    row = await caller.env.store.key_by_id(caller.key.id)
    assert row is not None
    return json.loads(row.permissions) if row.permissions else {}


async def test_r71_whoami_json_lists_the_login_key_first(env: Env) -> None:
    a = await env.caller("a@example.com")
    second, signer = await env.add_key(a, name="second")
    third, _ = await env.add_key(a, name="third")
    as_second = replace(a, key=second, signer=signer)
    body = await as_second.ok("whoami --json")
    assert body["user_id"] == a.user.user_id and body["user_id"].startswith("usr")
    assert body["email"] == "a@example.com"
    assert [k["name"] for k in body["ssh_keys"]] == ["second", "login", "third"]
    assert [k["current"] for k in body["ssh_keys"]] == [True, False, False]
    assert body["ssh_keys"][0] == {
        "public_key": second.public_key,
        "fingerprint": "SHA256:" + second.fingerprint,
        "name": "second",
        "current": True,
    }
    assert third.public_key in {k["public_key"] for k in body["ssh_keys"]}


async def test_s6_6_12_ssh_key_list_json(env: Env) -> None:
    a = await env.caller()
    restricted, _ = await env.add_key(a, name="ci", permissions='{"cmds":["whoami"],"exp":2}')
    await env.store.touch_key_used(a.key.id, NOW - NOW % 86400)
    body = await a.ok("ssh-key list")
    login, ci = body["ssh_keys"]  # insertion order
    assert login == {
        "public_key": a.key.public_key,
        "fingerprint": "SHA256:" + a.key.fingerprint,
        "name": "login",
        "added_at": "2030-03-17T17:46:40Z",
        "last_used_at": "2030-03-17T00:00:00Z",
        "current": True,
    }
    assert ci["current"] is False
    assert "last_used_at" not in ci and "api_key_hint" not in ci
    assert ci["permissions"] == {"cmds": ["whoami"], "exp": 2}  # R68
    assert ci["fingerprint"] == "SHA256:" + restricted.fingerprint
    text = await a.run("ssh-key list")
    assert "login" in text.stdout and "ci" in text.stdout
    # No known member: unrestricted. Unreadable: shown as stored, never as unrestricted.
    await env.add_key(a, name="odd", permissions='{"other":1}')
    await env.add_key(a, name="bad", permissions='{"cmds":"x"}')
    listed = {k["name"]: k for k in (await a.ok("ssh-key list"))["ssh_keys"]}
    assert "permissions" not in listed["odd"]
    assert listed["bad"]["permissions"] == {"cmds": "x"}


async def test_r60_default_names_use_the_key_counter(env: Env) -> None:
    a = await env.caller()  # its login key took number 1
    first = await a.ok(["ssh-key", "add", fresh_public_key()])
    named = await a.ok(["ssh-key", "add", fresh_public_key("laptop")])
    third = await a.ok(["ssh-key", "add", fresh_public_key("$$$")])  # empty after sanitising
    assert (first["name"], named["name"], third["name"]) == ("key-2", "laptop", "key-4")


async def test_r61_r74_comments_are_sanitised_and_joined_from_words(
    env: Env, ssh_keygen_key: KeyFactory
) -> None:
    a = await env.caller()
    pub = ssh_keygen_key("ed25519", name="laptop", comment="my laptop").with_suffix(".pub")
    key_type, b64, *_ = pub.read_text().split()
    # R74: unquoted words, as the OpenSSH client sends them.
    result = await a.run(f"ssh-key add {key_type} {b64} my laptop --json")
    assert json_of(result) == {
        "public_key": f"{key_type} {b64}",
        "status": "added",
        "name": "my-laptop",
    }
    for comment, name in (
        ("--evil", "evil"),
        ("$(x)", "x"),
        ("foo;rm -rf /", "foorm--rf"),
        ("x" * 80, "x" * 64),
    ):
        body = await a.ok(["ssh-key", "add", fresh_public_key(comment)])
        assert body["name"] == name


async def test_r62_already_registered_keys(env: Env) -> None:
    a = await env.caller()
    b = await env.caller()
    assert await a.fail(["ssh-key", "add", a.key.public_key]) == (
        "this SSH key is already associated with your account"
    )
    assert await a.fail(["ssh-key", "add", b.key.public_key + " stolen"]) == (
        "this SSH key is already associated with another account"
    )
    assert len(await env.store.keys_of_user(a.user.user_id)) == 1


async def test_r63_r64_private_key_and_garbage_are_refused(
    env: Env, ssh_keygen_key: KeyFactory
) -> None:
    a = await env.caller()
    private_text = ssh_keygen_key("ed25519").read_text()
    message = (
        "this is a private key, please use the public key instead (typically found in a .pub file)"
    )
    # As words (the armour's "-----BEGIN" is not a flag) and on stdin.
    assert await a.fail(["ssh-key", "add", *private_text.split()]) == message
    assert await a.fail("ssh-key add", stdin=private_text.encode()) == message
    for garbage in ("totalgarbage", "ssh-ed25519 !!!", "ssh-dss AAAAB3NzaC1kc3M="):
        assert (await a.fail(["ssh-key", "add", garbage])).startswith("invalid SSH public key: ")
    assert len(await env.store.keys_of_user(a.user.user_id)) == 1


async def test_r73_public_key_on_stdin(env: Env, ssh_keygen_key: KeyFactory) -> None:
    a = await env.caller()
    pub = ssh_keygen_key("ecdsa", name="stdin", comment="from stdin").with_suffix(".pub")
    body = await a.ok("ssh-key add", stdin=pub.read_bytes())
    assert body["name"] == "from-stdin"
    assert body["public_key"] == " ".join(pub.read_text().split()[:2])
    assert await a.fail("ssh-key add", stdin=b"") == "please provide the SSH public key to add"
    assert await a.fail("ssh-key add", stdin=b"  \n") == "please provide the SSH public key to add"
    assert await a.fail("ssh-key add") == "please provide the SSH public key to add"  # no stdin
    too_big = (fresh_public_key() + " " + "c" * 16384).encode()
    assert await a.fail("ssh-key add", stdin=too_big) == "public key on stdin exceeds 16 KiB"
    # With positional words stdin is not read (its garbage would fail otherwise).
    assert (await a.ok(["ssh-key", "add", fresh_public_key("arg")], stdin=b"junk"))["name"] == "arg"


async def test_r75_add_json_with_and_without_permissions(env: Env) -> None:
    a = await env.caller()
    line = fresh_public_key("plain")
    assert await a.ok(["ssh-key", "add", line]) == {
        "public_key": line.rsplit(" ", 1)[0],
        "status": "added",
        "name": "plain",
    }
    text = await a.run(["ssh-key", "add", fresh_public_key()])
    assert text.stdout == "Added SSH key.\n"
    body = await a.ok(["ssh-key", "add", "--cmds= whoami, ,ls ", "--tag=ci", fresh_public_key()])
    assert body["permissions"] == {"cmds": ["whoami", "ls"], "tag": "ci"}
    row = await key_by_public_key(env.store, body["public_key"])
    assert row is not None and json.loads(row.permissions) == {
        "cmds": ["whoami", "ls"],
        "tag": "ci",
    }
    # --cmds with nothing left stores nothing.
    body = await a.ok(["ssh-key", "add", "--cmds=,,", fresh_public_key()])
    assert "permissions" not in body
    row = await key_by_public_key(env.store, body["public_key"])
    assert row is not None and row.permissions == ""


async def test_r57_vm_and_tag_flags(env: Env) -> None:
    a = await env.caller("a@example.com")
    b = await env.caller("b@example.com")
    await b.ok("new --name=shared --upstream=http://127.0.0.1:1")
    await b.ok("new --name=private --upstream=http://127.0.0.1:1")
    await b.ok("share add shared a@example.com")
    key = fresh_public_key()
    assert await a.fail(["ssh-key", "add", "--vm=x", "--tag=y", key]) == (
        "--vm and --tag are mutually exclusive"
    )
    assert await a.fail(["ssh-key", "add", "--vm=private", key]) == (
        'VM "private" not found or access denied'
    )
    assert (
        await a.fail(["ssh-key", "add", "--vm=nosuch"]) == 'VM "nosuch" not found or access denied'
    )
    assert await a.fail(["ssh-key", "add", "--tag=Bad", key]) == (
        'invalid tag name "Bad": must match [a-z][a-z0-9_-]*'
    )
    # Restriction flags are checked before the key text (docs/ssh.md#ssh-key-add order).
    assert await a.fail("ssh-key add --tag=Bad") == (
        'invalid tag name "Bad": must match [a-z][a-z0-9_-]*'
    )
    body = await a.ok(["ssh-key", "add", "--vm=shared.vm.test", key])
    assert body["permissions"] == {"vm": "shared"}
    assert len(await env.store.keys_of_user(a.user.user_id)) == 2


async def test_r85_s6_6_13_exp_durations(env: Env) -> None:
    a = await env.caller()
    body = await a.ok(["ssh-key", "add", "--exp=1h", fresh_public_key()])
    assert body["permissions"] == {"exp": NOW + 3600}
    body = await a.ok(["ssh-key", "add", "--exp=never", fresh_public_key()])
    assert "permissions" not in body
    assert await a.fail(["ssh-key", "add", "--exp=2m", fresh_public_key()]) == (
        'ambiguous duration unit "m": use "min" for minutes or "mo" for months'
    )
    assert await a.fail(["ssh-key", "add", "--exp=30x", fresh_public_key()]) == (
        'invalid duration unit "x" (use s, min, h, d, w, mo, or y)'
    )
    assert await a.fail(["ssh-key", "add", "--exp=0d", fresh_public_key()]) == (
        'invalid duration "0d"'
    )


async def test_r47_r48_key_cmds_over_ssh(env: Env) -> None:
    a = await env.caller()
    limited = await add_and_login(a, "--cmds=whoami,ls")
    assert await ssh_check(limited, "whoami") is None
    assert await ssh_check(limited, "ls --json") is None
    assert await ssh_check(limited, "new --name=x") == NOT_ALLOWED
    assert await ssh_check(limited, "ssh-key list") == NOT_ALLOWED
    assert await ssh_check(limited, "notacommand") == NOT_ALLOWED
    parent = await add_and_login(a, "--cmds=ssh-key")
    assert await ssh_check(parent, "ssh-key list") is None
    assert await ssh_check(parent, "ssh-key add x") is None
    assert await ssh_check(parent, "ls") == NOT_ALLOWED


async def test_r50_key_expiry_over_ssh(env: Env) -> None:
    a = await env.caller()
    short = await add_and_login(a, "--exp=1h")
    assert await ssh_check(short, "whoami") is None
    env.now = NOW + 3600  # exp == now is still usable
    assert await ssh_check(short, "whoami") is None
    env.now = NOW + 3601
    assert await ssh_check(short, "whoami") == "SSH key has expired"


async def test_r51_cmds_are_inherited(env: Env) -> None:
    a = await env.caller()
    limited = await add_and_login(a, "--cmds='ssh-key add,whoami'")
    child = await add_and_login(limited)
    assert await stored_permissions(child) == {"cmds": ["ssh-key add", "whoami"]}
    assert await ssh_check(child, "ls") == NOT_ALLOWED
    assert await ssh_check(child, "whoami") is None


async def test_r52_new_key_cannot_get_more_cmds(env: Env) -> None:
    a = await env.caller()
    limited = await add_and_login(a, "--cmds='ssh-key add,whoami'")
    before = len(await env.store.keys_of_user(a.user.user_id))
    assert await limited.fail(["ssh-key", "add", "--cmds=ls", fresh_public_key()]) == (
        'calling key does not allow command "ls"; cannot grant it to new key'
    )
    assert len(await env.store.keys_of_user(a.user.user_id)) == before
    narrower = await add_and_login(limited, "--cmds=whoami")
    assert await stored_permissions(narrower) == {"cmds": ["whoami"]}


async def test_r53_exp_is_inherited_unless_earlier(env: Env) -> None:
    a = await env.caller()
    limited = await add_and_login(a, "--exp=2h")
    expiry = NOW + 7200
    assert (await stored_permissions(await add_and_login(limited)))["exp"] == expiry
    later = await add_and_login(limited, "--exp=1d")
    assert (await stored_permissions(later))["exp"] == expiry
    never = await add_and_login(limited, "--exp=never")
    assert (await stored_permissions(never))["exp"] == expiry
    earlier = await add_and_login(limited, "--exp=1h")
    assert (await stored_permissions(earlier))["exp"] == NOW + 3600


async def test_r54_tag_is_inherited(env: Env) -> None:
    a = await env.caller()
    scoped = await add_and_login(a, "--tag=ci")
    assert await scoped.fail(["ssh-key", "add", "--tag=prod", fresh_public_key()]) == (
        'calling key is scoped to tag "ci"; cannot create key with tag "prod"'
    )
    child = await add_and_login(scoped)
    assert await stored_permissions(child) == {"tag": "ci"}
    assert await ssh_check(child, "exe0-to-exe1 x") == NOT_ALLOWED  # R55


async def test_r56_vm_key_cannot_run_commands(env: Env) -> None:
    a = await env.caller()
    await a.ok("new --name=myapp --upstream=http://127.0.0.1:1")
    vm_key = await add_and_login(a, "--vm=myapp")
    for line in ("whoami", "ls", "help", "ssh-key list", "exe0-to-exe1 x"):
        assert await ssh_check(vm_key, line) == NOT_ALLOWED


async def test_r76_remove_by_name_fingerprint_bare_fingerprint_and_key_line(env: Env) -> None:
    a = await env.caller()
    rows: list[SSHKeyRow] = [(await env.add_key(a, name=f"k{i}"))[0] for i in range(4)]
    by_name = await a.ok("ssh-key remove k0")
    assert by_name == {
        "public_key": rows[0].public_key,
        "fingerprint": "SHA256:" + rows[0].fingerprint,
        "name": "k0",
        "status": "deleted",
    }
    assert (await a.ok(["ssh-key", "remove", "SHA256:" + rows[1].fingerprint]))["name"] == "k1"
    assert (await a.ok(["ssh-key", "remove", rows[2].fingerprint]))["name"] == "k2"
    # A full key line, as unquoted words with a comment.
    assert (await a.ok(f"ssh-key remove {rows[3].public_key} some comment"))["name"] == "k3"
    for row in rows:
        assert await env.store.key_by_id(row.id) is None
    assert [k.name for k in await env.store.keys_of_user(a.user.user_id)] == ["login"]


async def test_r77_r78_ambiguous_and_missing_keys(env: Env) -> None:
    a = await env.caller()
    one, _ = await env.add_key(a, name="twin")
    two, _ = await env.add_key(a, name="twin")
    message = await a.fail("ssh-key remove twin")
    assert message == (
        "multiple keys match, please specify by fingerprint:\n"
        f"  SHA256:{one.fingerprint} (twin)\n"
        f"  SHA256:{two.fingerprint} (twin)"
    )
    assert await a.fail("ssh-key remove nosuch") == 'no matching SSH key found for "nosuch"'
    blank = "please specify a key to remove (name, fingerprint, or full public key)"
    assert await a.fail("ssh-key remove") == blank
    assert await a.fail("ssh-key remove '  '") == blank
    # Another user's key is not found (by line or fingerprint).
    b = await env.caller()
    assert await a.fail(["ssh-key", "remove", b.key.public_key]) == (
        f'no matching SSH key found for "{b.key.public_key}"'
    )
    assert await a.fail(["ssh-key", "remove", "SHA256:" + b.key.fingerprint]) == (
        f'no matching SSH key found for "SHA256:{b.key.fingerprint}"'
    )
    assert await env.store.key_by_id(b.key.id) is not None


async def test_r106_removing_the_calling_key_revokes_the_session(env: Env) -> None:
    a = await env.caller()
    assert (await a.ok("ssh-key remove login"))["status"] == "deleted"
    assert await ssh_check(a, "whoami") == "SSH key has been revoked"


async def test_r79_rename(env: Env) -> None:
    a = await env.caller()
    row, _ = await env.add_key(a, name="a")
    await env.add_key(a, name="b")
    body = await a.ok("ssh-key rename a 'new name'")
    assert body == {
        "public_key": row.public_key,
        "fingerprint": "SHA256:" + row.fingerprint,
        "old_name": "a",
        "new_name": "new-name",
        "status": "renamed",
    }
    renamed = await env.store.key_by_id(row.id)
    assert renamed is not None and renamed.name == "new-name"
    assert await a.fail("ssh-key rename new-name b") == 'a key named "b" already exists'
    assert await a.fail("ssh-key rename new-name '$$$'") == (
        "new name is empty (special characters like ; | $ are removed)"
    )
    by_fp = await a.ok(["ssh-key", "rename", "SHA256:" + row.fingerprint, "again"])
    assert by_fp["old_name"] == "new-name" and by_fp["new_name"] == "again"
    usage = "usage: ssh-key rename <old-name> <new-name>"
    assert await a.fail("ssh-key rename onlyone") == usage
    assert await a.fail("ssh-key rename a b c") == usage
    assert await a.fail("ssh-key rename '' x") == "old name cannot be empty"
    assert await a.fail("ssh-key rename x ' '") == "new name cannot be empty"
    assert await a.fail("ssh-key rename nosuch x") == 'no matching SSH key found for "nosuch"'
    # Renaming a key to its own name is allowed.
    assert (await a.ok("ssh-key rename again again"))["new_name"] == "again"


async def test_s4_7_tag_scoped_key_sees_only_keys_with_its_tag(env: Env) -> None:
    a = await env.caller()
    scoped = await add_and_login(a, "--tag=ci", comment="scoped")
    sibling = await add_and_login(a, "--tag=ci", comment="sibling")
    await add_and_login(a, "--tag=prod", comment="prod")
    whoami = await scoped.ok("whoami")
    assert [k["name"] for k in whoami["ssh_keys"]] == ["scoped", "sibling"]
    listed = await scoped.ok("ssh-key list")
    assert [k["name"] for k in listed["ssh_keys"]] == ["scoped", "sibling"]
    assert all(k["permissions"] == {"tag": "ci"} for k in listed["ssh_keys"])
    assert await scoped.fail("ssh-key remove login") == 'no matching SSH key found for "login"'
    assert await scoped.fail("ssh-key rename prod x") == 'no matching SSH key found for "prod"'
    assert (await scoped.ok("ssh-key rename sibling sib"))["new_name"] == "sib"
    assert (await scoped.ok("ssh-key remove sib"))["name"] == "sib"
    assert await env.store.key_by_id(sibling.key.id) is None
    # An unrestricted key sees them all.
    assert len((await a.ok("ssh-key list"))["ssh_keys"]) == 3
