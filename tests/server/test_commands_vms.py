"""docs/ssh.md#ls: ``ls``, ``new``, ``rm`` (R96–R99), tag scope (docs/permissions.md#tag-scope, R55)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from sshmint.server.commands.globs import BadPattern, compile_glob
from sshmint.server.store.validation import INVALID_VM_NAME
from tests.support.command_helpers import BACKENDS, NOW, SETTINGS, Caller, Env, backend_env, json_of

UP = "http://127.0.0.1:9000"


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with backend_env(request.param, request, tmp_path) as e:
        yield e


async def new(caller: Caller, name: str, *extra: str) -> dict[str, object]:
    body: dict[str, object] = await caller.ok(["new", f"--name={name}", f"--upstream={UP}", *extra])
    return body


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("my*", "myapp", True),
        ("my*", "amy", False),
        ("*", "", True),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXbYY", False),
        ("?", "ab", False),
        ("??", "ab", True),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "bx", False),
        ("[!a-c]x", "dx", True),
        ("[z-a]", "m", False),  # inverted range: matches nothing
        ("[\\]]", "]", True),
        ("\\*", "*", True),
        ("\\*", "a", False),
        ("*a*a*a*a*a*a*a*a*a*a*a*a*b", "a" * 52, False),  # no exponential backtracking
        ("*a*a*a*a*a*a*a*a*a*a*a*a*b", "a" * 51 + "b", True),
    ],
)
def test_s6_6_3_glob_matching(pattern: str, text: str, matches: bool) -> None:
    assert compile_glob(pattern).matches(text) is matches


@pytest.mark.parametrize("pattern", ["[", "[a", "[]", "[]a]", "[a-]", "[-a]", "x\\", "[^]"])
def test_s6_6_3_malformed_globs(pattern: str) -> None:
    with pytest.raises(BadPattern):
        compile_glob(pattern)


async def test_r96_new_json_shape(env: Env) -> None:
    a = await env.caller()
    body = await a.ok(f"new --name=myapp --upstream={UP} --json")
    assert body == {
        "vm_name": "myapp",
        "upstream": UP,
        "share": "private",
        "https_url": "http://myapp.vm.test:8080",
        "tags": [],
    }
    vm = await env.store.vm_by_name("myapp")
    assert vm is not None and vm.owner_user_id == a.user.user_id and vm.share == "private"
    assert await env.store.shares_of_vm(vm.id) == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_s5_6_vm_url_omits_port_80_and_full_host_names_are_reduced(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    async with backend_env(backend, request, tmp_path, replace(SETTINGS, http_port=80)) as env:
        a = await env.caller()
        body = await a.ok("new --name=myapp.vm.test --upstream=http://127.0.0.1/")
        assert body["vm_name"] == "myapp"
        assert body["https_url"] == "http://myapp.vm.test"
        assert body["upstream"] == "http://127.0.0.1"
        listed = await a.ok("ls myapp.vm.test")
        assert [v["vm_name"] for v in listed["vms"]] == ["myapp"]


async def test_s6_6_4_tags_are_split_deduplicated_and_sorted(env: Env) -> None:
    a = await env.caller()
    body = await new(a, "tagged", "--tag=web,prod", "--tag", "api,prod")
    assert body["tags"] == ["api", "prod", "web"]
    vm = await env.store.vm_by_name("tagged")
    assert vm is not None and vm.tags == ("api", "prod", "web")


async def test_r97_new_errors_in_spec_order(env: Env) -> None:
    a = await env.caller()
    assert await a.fail("new") == "--name is required"
    assert await a.fail("new --name= --upstream=ftp://x") == "--name is required"
    assert await a.fail("new --name=Bad_Name") == INVALID_VM_NAME  # before --upstream
    assert await a.fail("new --name=" + "a" * 53 + f" --upstream={UP}") == INVALID_VM_NAME
    assert await a.fail("new --name=ok --tag=BAD") == "--upstream is required"
    assert await a.fail("new --name=ok --upstream=ftp://x --tag=BAD") == (
        'invalid upstream URL "ftp://x": must be http://HOST[:PORT]'
    )
    assert await a.fail("new --name=ok --upstream=http://10.0.0.1:80") == (
        'upstream host "10.0.0.1" is not in an allowed network'
    )
    assert await a.fail(f"new --name=ok --upstream={UP} --tag=a,,b") == (
        "--tag contains an empty tag"
    )
    assert await a.fail(f"new --name=ok --upstream={UP} --tag=") == "--tag contains an empty tag"
    assert await a.fail(f"new --name=ok --upstream={UP} --tag=Prod") == (
        '--tag invalid tag name "Prod": must match [a-z][a-z0-9_-]*'
    )
    await new(a, "myapp")
    assert await a.fail(f"new --name=myapp --upstream={UP}") == 'VM name "myapp" is not available'
    # Names are unique across the server, not per user.
    b = await env.caller()
    assert await b.fail(f"new --name=myapp --upstream={UP}") == 'VM name "myapp" is not available'
    assert await env.store.vm_by_name("ok") is None  # nothing written by the failures


async def test_r98_ls_lists_own_vms_sorted_with_tags(env: Env) -> None:
    a = await env.caller()
    b = await env.caller()
    await new(a, "zeta")
    await new(a, "alpha", "--tag=prod")
    await new(a, "my-api", "--tag=prod,web")
    await new(b, "others")
    body = await a.ok("ls --json")
    assert [v["vm_name"] for v in body["vms"]] == ["alpha", "my-api", "zeta"]
    alpha, my_api, zeta = body["vms"]
    assert alpha == {
        "vm_name": "alpha",
        "upstream": UP,
        "share": "private",
        "https_url": "http://alpha.vm.test:8080",
        "tags": ["prod"],
        "created_at": "2030-03-17T17:46:40Z",
    }
    assert "tags" not in zeta  # omitted when empty
    assert my_api["tags"] == ["prod", "web"]
    assert (await b.ok("ls"))["vms"][0]["vm_name"] == "others"
    text = await a.run("ls")
    assert text.exit_status == 0 and "alpha" in text.stdout and "others" not in text.stdout
    long = await a.run("ls -l")
    assert "prod" in long.stdout and UP in long.stdout


async def test_r98_ls_filters_by_name_tag_and_glob(env: Env) -> None:
    a = await env.caller()
    await new(a, "myapp")
    await new(a, "mysite", "--tag=web")
    await new(a, "other", "--tag=prod")

    async def names(line: str) -> list[str]:
        return [v["vm_name"] for v in (await a.ok(line))["vms"]]

    assert await names("ls my*") == ["myapp", "mysite"]
    assert await names("ls prod") == ["other"]  # a literal matches a tag
    assert await names("ls w?b") == ["mysite"]  # a glob matches tags too
    assert await names("ls myapp.vm.test") == ["myapp"]
    assert await names("ls 'my[a-b]pp' prod myapp") == ["myapp", "other"]  # merged, no dups
    assert await names("ls '[!mw]*'") == ["other"]  # names and tags both judged
    assert await names("ls nosuch") == []
    assert await a.fail("ls 'my[a'") == 'invalid pattern "my[a"'
    assert await a.fail("ls '[]'") == 'invalid pattern "[]"'
    assert await a.fail("ls 'x\\'") == 'invalid pattern "x\\\\"'


async def test_s6_6_3_ls_without_vms_text(env: Env) -> None:
    a = await env.caller()
    result = await a.run("ls")
    assert result.stdout == "No VMs found. Create one with 'new'.\n"
    assert await a.ok("ls") == {"vms": []}


async def test_r99_rm_deletes_with_shares_and_reports_failures(env: Env) -> None:
    a = await env.caller()
    b = await env.caller()
    await new(a, "myapp")
    await a.ok("share add myapp friend@example.com")
    vm = await env.store.vm_by_name("myapp")
    assert vm is not None
    await new(b, "theirs")
    assert await a.ok("rm myapp --json") == {"deleted": ["myapp"], "failed": []}
    assert await env.store.vm_by_name("myapp") is None
    assert await env.store.shares_of_vm(vm.id) == []
    result = await a.run("rm nosuch --json")
    assert result.exit_status == 1
    assert json_of(result) == {
        "deleted": [],
        "failed": ["nosuch"],
        "error": 'VM "nosuch" not found',
    }
    # Someone else's VM fails like a missing one and stays.
    result = await a.run("rm theirs")
    assert (result.exit_status, result.stderr) == (1, 'VM "theirs" not found\n')
    assert await env.store.vm_by_name("theirs") is not None


async def test_s6_6_5_rm_reduces_deduplicates_and_keeps_going(env: Env) -> None:
    a = await env.caller()
    await new(a, "one")
    await new(a, "two")
    result = await a.run("rm one one.vm.test nosuch two BAD", force_json=True)
    assert result.exit_status == 1
    assert json_of(result) == {
        "deleted": ["one", "two"],
        "failed": ["nosuch", "BAD"],
        "error": 'VM "nosuch" not found',
    }
    assert result.stderr == 'VM "nosuch" not found\nVM "BAD" not found\n'
    assert await a.fail("rm") == "please specify at least one VM name to delete"


async def test_r55_tag_scoped_key_sees_and_changes_only_its_tag(env: Env) -> None:
    owner = await env.caller()
    await new(owner, "plain")
    await new(owner, "tagged", "--tag=ci,web")
    row, signer = await env.add_key(owner, permissions='{"tag":"ci"}')
    scoped = replace(owner, key=row, signer=signer)
    assert [v["vm_name"] for v in (await scoped.ok("ls"))["vms"]] == ["tagged"]
    assert [v["vm_name"] for v in (await scoped.ok("ls 'p*'"))["vms"]] == []
    result = await scoped.run("rm plain", force_json=True)
    assert json_of(result)["error"] == 'VM "plain" not found'
    assert await env.store.vm_by_name("plain") is not None
    # new: the key's tag by default; any other --tag is refused.
    assert (await scoped.ok(f"new --name=fresh --upstream={UP}"))["tags"] == ["ci"]
    assert (await scoped.ok(f"new --name=fresh2 --upstream={UP} --tag=ci"))["tags"] == ["ci"]
    for tags in ("prod", "ci,prod"):
        assert await scoped.fail(f"new --name=x --upstream={UP} --tag={tags}") == (
            '--tag SSH key scoped to tag "ci" can only use --tag=ci'
        )
    assert (await scoped.ok("rm tagged"))["deleted"] == ["tagged"]


async def test_s6_6_4_created_at_uses_the_clock(env: Env) -> None:
    a = await env.caller()
    env.now = NOW + 86400
    await new(a, "later")
    assert (await a.ok("ls"))["vms"][0]["created_at"] == "2030-03-18T17:46:40Z"
