"""docs/ssh.md#share-show: ``share show|port|set-public|set-private|add|remove`` (R100–R102)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.command_helpers import BACKENDS, NOW, Caller, Env, backend_env

UP = "http://127.0.0.1:9000"


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with backend_env(request.param, request, tmp_path) as e:
        yield e


async def owner_with_vm(env: Env, name: str = "myapp", *extra: str) -> Caller:
    owner = await env.caller("owner@example.com")
    await owner.ok(["new", f"--name={name}", f"--upstream={UP}", *extra])
    return owner


async def test_s6_6_6_share_show_json_shape(env: Env) -> None:
    owner = await owner_with_vm(env)
    assert await owner.ok("share show myapp") == {
        "vm_name": "myapp",
        "status": "private",
        "port": 9000,
        "url": "http://myapp.vm.test:8080",
        "upstream": UP,
        "users": [],
    }
    assert await owner.fail("share show") == "usage: share show <vm>"
    assert await owner.fail("share show a b") == "usage: share show <vm>"
    assert await owner.fail("share show nosuch") == 'VM "nosuch" not found or access denied'
    # A full host name is reduced.
    assert (await owner.ok("share show myapp.vm.test"))["vm_name"] == "myapp"


async def test_r102_share_add_show_remove(env: Env) -> None:
    owner = await owner_with_vm(env)
    await env.caller("b@example.com")
    body = await owner.ok("share add myapp B@Example.com --message='hi there'")
    assert body == {
        "status": "success",
        "vm_name": "myapp",
        "shared_with": "b@example.com",
        "message": "Access granted",
    }
    env.now = NOW + 10
    await owner.ok("share add myapp pending@example.com")
    shown = await owner.ok("share show myapp")
    assert shown["users"] == [
        {"email": "b@example.com", "status": "active", "invited_at": "2030-03-17T17:46:40Z"},
        {"email": "pending@example.com", "status": "pending", "invited_at": "2030-03-17T17:46:50Z"},
    ]
    vm = await env.store.vm_by_name("myapp")
    assert vm is not None
    shares = await env.store.shares_of_vm(vm.id)
    assert shares[0].message == "hi there"
    assert shares[0].shared_by_user_id == owner.user.user_id
    # The pending share becomes active once such an account exists.
    await env.caller("pending@example.com")
    assert [u["status"] for u in (await owner.ok("share show myapp"))["users"]] == [
        "active",
        "active",
    ]
    assert await owner.fail("share add myapp b@example.com") == (
        "myapp is already shared with b@example.com"
    )
    removed = await owner.ok("share remove myapp B@example.com")
    assert removed == {
        "status": "success",
        "vm_name": "myapp",
        "message": "Removed b@example.com's access",
    }
    assert not await env.store.is_shared_with(vm.id, "b@example.com")
    assert await owner.fail("share remove myapp B@example.com") == (
        "no share found for b@example.com"
    )


async def test_s6_6_10_share_add_errors(env: Env) -> None:
    owner = await owner_with_vm(env)
    usage = "usage: share add <vm> <email> [--message='...']"
    assert await owner.fail("share add") == usage
    assert await owner.fail("share add myapp") == usage
    assert await owner.fail("share add nosuch x@example.com") == (
        'VM "nosuch" not found or access denied'
    )
    assert await owner.fail("share add myapp not-an-email") == (
        'invalid email address: "not-an-email"'
    )
    assert await owner.fail("share remove myapp") == "usage: share remove <vm> <email>"
    assert await owner.fail("share remove nosuch x@example.com") == (
        'VM "nosuch" not found or access denied'
    )


async def test_s6_6_7_share_port_show_and_change(env: Env) -> None:
    owner = await owner_with_vm(env)
    assert await owner.ok("share port myapp") == {
        "vm_name": "myapp",
        "port": 9000,
        "share": "private",
        "upstream": UP,
    }
    assert await owner.ok("share port myapp 9100") == {
        "vm_name": "myapp",
        "port": 9100,
        "share": "private",
        "upstream": "http://127.0.0.1:9100",
        "status": "updated",
    }
    vm = await env.store.vm_by_name("myapp")
    assert vm is not None and vm.upstream == "http://127.0.0.1:9100"
    text = await owner.run("share port myapp 9200")
    assert text.stdout == "http://myapp.vm.test:8080/ now points to port 9200 (private).\n"
    # An upstream without an explicit port is on port 80.
    await owner.ok("new --name=plain --upstream=http://localhost")
    assert (await owner.ok("share port plain"))["port"] == 80


async def test_r101_share_port_errors(env: Env) -> None:
    owner = await owner_with_vm(env)
    usage = "usage: share port <vm> [port]"
    assert await owner.fail("share port") == usage
    assert await owner.fail("share port myapp 1 2") == usage
    for bad in ("70000", "0", "abc", "65536", "1.5", "99999999999999999999"):
        assert await owner.fail(["share", "port", "myapp", bad]) == (
            f'port must be between 1 and 65535, got "{bad}"'
        )
    assert await owner.fail("share port myapp -- -1") == (
        'port must be between 1 and 65535, got "-1"'
    )
    assert (await owner.ok("share port myapp 65535"))["port"] == 65535
    assert (await owner.ok("share port myapp 1"))["port"] == 1


async def test_s6_6_7_share_port_rechecks_the_network(env: Env) -> None:
    owner = await owner_with_vm(env)
    narrowed = replace(env.settings, upstream_allow=())
    env.settings = narrowed
    assert await owner.fail("share port myapp 9001") == (
        'upstream host "127.0.0.1" is not in an allowed network'
    )
    vm = await env.store.vm_by_name("myapp")
    assert vm is not None and vm.upstream == UP  # unchanged


async def test_s6_6_8_set_public_and_private(env: Env) -> None:
    owner = await owner_with_vm(env)
    public = {"vm_name": "myapp", "port": 9000, "share": "public", "upstream": UP}
    assert await owner.ok("share set-public myapp") == {**public, "status": "updated"}
    assert await owner.ok("share set-public myapp") == {**public, "status": "updated"}
    vm = await env.store.vm_by_name("myapp")
    assert vm is not None and vm.share == "public"
    assert (await owner.ok("share show myapp"))["status"] == "public"
    text = await owner.run("share set-private myapp")
    assert text.stdout == "http://myapp.vm.test:8080/ is now private (port 9000).\n"
    text = await owner.run("share set-public myapp")
    assert text.stdout == "http://myapp.vm.test:8080/ is now public (port 9000).\n"
    assert await owner.fail("share set-public") == "usage: share set-public <vm>"
    assert await owner.fail("share set-private a b") == "usage: share set-private <vm>"


async def test_r100_only_the_owner_may_change_a_vm(env: Env) -> None:
    owner = await owner_with_vm(env, "x")
    other = await env.caller("other@example.com")
    # Even a user the VM is shared with is not the owner.
    await owner.ok("share add x other@example.com")
    denied = 'VM "x" not found or access denied'
    for line in (
        "share set-public x",
        "share set-private x",
        "share port x",
        "share port x 9001",
        "share show x",
        "share add x z@example.com",
        "share remove x other@example.com",
    ):
        assert await other.fail(line) == denied, line
    vm = await env.store.vm_by_name("x")
    assert vm is not None and vm.share == "private" and vm.upstream == UP


async def test_r55_tag_scoped_key_shares_only_tagged_vms(env: Env) -> None:
    owner = await owner_with_vm(env, "plain")
    await owner.ok(f"new --name=tagged --upstream={UP} --tag=ci")
    row, signer = await env.add_key(owner, permissions='{"tag":"ci"}')
    scoped = replace(owner, key=row, signer=signer)
    for sub in ("show plain", "port plain", "set-public plain", "add plain q@example.com"):
        assert await scoped.fail(f"share {sub}") == 'VM "plain" not found or access denied'
    assert (await scoped.ok("share set-public tagged"))["share"] == "public"
