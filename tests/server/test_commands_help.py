"""docs/ssh.md#help ``help`` and ``--help`` (R94, R95); command groups alone print help."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sshmint.server.commands import COMMAND_NAMES
from tests.support.command_helpers import BACKENDS, Env, backend_env, json_of


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with backend_env(request.param, request, tmp_path) as e:
        yield e


TOP_LEVEL = ["help", "whoami", "ls", "new", "rm", "share", "ssh-key", "exe0-to-exe1", "token"]
SHARE_SUBS = ["show", "port", "set-public", "set-private", "add", "remove"]
SSH_KEY_SUBS = ["list", "add", "remove", "rename", "generate-api-key"]
TOKEN_SUBS = ["revoke", "revocations", "explain"]


async def test_r94_help_json_lists_the_tree_in_order(env: Env) -> None:
    a = await env.caller()
    body = await a.ok("help")
    assert list(body) == ["commands"]
    commands = body["commands"]
    assert [c["name"] for c in commands] == TOP_LEVEL
    for command in commands:
        assert isinstance(command["description"], str) and command["description"]
        if command["name"] == "share":
            assert [s["name"] for s in command["subcommands"]] == SHARE_SUBS
        elif command["name"] == "ssh-key":
            assert [s["name"] for s in command["subcommands"]] == SSH_KEY_SUBS
        elif command["name"] == "token":  # docs/lifecycle.md
            assert [s["name"] for s in command["subcommands"]] == TOKEN_SUBS
        else:
            assert "subcommands" not in command  # omitted, not empty
        for sub in command.get("subcommands", []):
            assert set(sub) == {"name", "description"}
    text = await a.run("help")
    assert text.exit_status == 0
    for name in TOP_LEVEL + SHARE_SUBS + SSH_KEY_SUBS + TOKEN_SUBS:
        assert name in text.stdout


async def test_r95_new_help_equals_help_new_in_text_and_json(env: Env) -> None:
    a = await env.caller()
    assert (await a.run("new --help")).stdout == (await a.run("help new")).stdout
    body = await a.ok("help new")
    assert body == await a.ok("new --help")
    assert body["command"] == "new"
    assert body["usage"] == "new --name=NAME --upstream=URL [--tag=TAG[,TAG...]]"
    assert [f["name"] for f in body["flags"]] == ["name", "upstream", "tag", "json"]
    assert {"name": "json", "description": "output in JSON format"} in body["flags"]
    assert "subcommands" not in body


async def test_s6_6_1_every_command_has_help_with_json_flag(env: Env) -> None:
    a = await env.caller()
    # "help --help" is "help" with an ignored flag: the tree (docs/ssh.md#help).
    assert "commands" in await a.ok("help --help")
    for name in sorted(COMMAND_NAMES - {"help"}):
        via_help = await a.ok(f"help {name}")
        via_flag = await a.ok(f"{name} --help")
        assert via_help == via_flag, name
        assert via_help["command"] == name.split()[-1]
        assert "json" in [f["name"] for f in via_help["flags"]]
        assert all("-" not in f["name"][:1] for f in via_help["flags"])  # no dashes


async def test_s6_6_1_subcommand_help_and_groups(env: Env) -> None:
    a = await env.caller()
    body = await a.ok("help ssh-key generate-api-key")
    assert body["command"] == "generate-api-key"
    assert [f["name"] for f in body["flags"]] == ["label", "vm", "tag", "cmds", "exp", "json"]
    group = await a.ok("help share")
    assert [s["name"] for s in group["subcommands"]] == SHARE_SUBS
    # "share" and "ssh-key" alone print their own help and exit 0 (docs/ssh.md#commands).
    assert await a.ok("share") == group
    alone = await a.run("ssh-key")
    assert alone.exit_status == 0
    assert alone.stdout == (await a.run("help ssh-key")).stdout
    for sub in SSH_KEY_SUBS:
        assert sub in alone.stdout


async def test_s6_6_1_unknown_help_path(env: Env) -> None:
    a = await env.caller()
    text = await a.run("help ssh-key bogus")
    assert (text.exit_status, text.stderr) == (0, "")
    assert text.stdout == "No help available for unrecognized command: ssh-key bogus\n"
    assert await a.fail("help nosuch --json") == (
        "no help available for unrecognized command: nosuch"
    )
    assert await a.fail("help WHOAMI") == "no help available for unrecognized command: WHOAMI"


async def test_s6_6_1_flags_inside_the_help_path_are_ignored_except_json(env: Env) -> None:
    a = await env.caller()
    assert (await a.ok("help --bogus ls -x"))["command"] == "ls"
    assert json_of(await a.run("help ls --json --whatever"))["command"] == "ls"
    text = await a.run("help --verbose ls")
    assert text.exit_status == 0 and "Usage: ls" in text.stdout
