"""docs/ssh.md#words-and-flags (word splitting, flags), docs/permissions.md#resolving-a-command-name (resolution), docs/ssh.md#output-and-exit-status (output and errors)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sshmint.server.auth import Authenticator
from sshmint.server.commands import (
    COMMAND_NAMES,
    DATABASE_UNAVAILABLE,
    INTERNAL_ERROR,
    CommandContext,
    CommandError,
    CommandSyntaxError,
    Invocation,
    Output,
    resolve_command_name,
    run_words,
    split_command_line,
    unknown_command_message,
    wants_json,
)
from sshmint.server.store import StoreUnavailable
from tests.support.command_helpers import BACKENDS, Env, backend_env, json_of, open_env
from tests.support.extra_commands import register_command


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with backend_env(request.param, request, tmp_path) as e:
        yield e


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("whoami", ["whoami"]),
        ("  ls   -l  ", ["ls", "-l"]),
        ("a 'b c' d", ["a", "b c", "d"]),
        ("a 'x\\y' z", ["a", "x\\y", "z"]),  # single quotes keep backslashes
        ('a "x\\"y\\\\z\\n" b', ["a", 'x"y\\z\\n', "b"]),  # \" and \\ only, inside "
        ("a\\ b c", ["a b", "c"]),  # outside quotes a backslash escapes
        ("share add vm#1 x", ["share", "add", "vm#1", "x"]),  # '#' is ordinary
        ("say '#' # not a comment", ["say", "#", "#", "not", "a", "comment"]),
        ("''", [""]),
        ("$HOME `x` *", ["$HOME", "`x`", "*"]),  # no expansion
        ("a\tb\nc", ["a", "b", "c"]),
        ("", []),
    ],
)
def test_s6_3_word_splitting_is_posix_without_expansion(line: str, words: list[str]) -> None:
    assert split_command_line(line) == words


@pytest.mark.parametrize("line", ["ls 'unterminated", 'ls "open', "ls trailing\\", "a 'b\" c"])
def test_s6_3_unterminated_quote_or_lone_backslash_is_a_syntax_error(line: str) -> None:
    with pytest.raises(CommandSyntaxError) as err:
        split_command_line(line)
    assert err.value.message == "invalid command syntax"


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("ssh-key list --json", "ssh-key list"),
        ("ssh-key", "ssh-key"),
        ("ssh-key bogus", "ssh-key"),
        ("ssh-key --json list", "ssh-key"),
        ("share show myvm", "share show"),
        ("whoami extra", "whoami"),
        ("help ls", "help"),
        ("exe0-to-exe1 --vm=x TOKEN", "exe0-to-exe1"),
        ("ssh-key generate-api-key --label=x", "ssh-key generate-api-key"),
        ("token explain TOKEN --command ls", "token explain"),
        ("WHOAMI", None),
        ("Ls", None),
        ("notacommand", None),
        ("--json whoami", None),
        ("''", None),
    ],
)
def test_s4_2_resolving_command_names(line: str, name: str | None) -> None:
    assert resolve_command_name(split_command_line(line)) == name


def test_s6_6_command_tree_names() -> None:
    assert {
        "help",
        "whoami",
        "ls",
        "new",
        "rm",
        "share",
        "share show",
        "share port",
        "share set-public",
        "share set-private",
        "share add",
        "share remove",
        "ssh-key",
        "ssh-key list",
        "ssh-key add",
        "ssh-key remove",
        "ssh-key rename",
        "ssh-key generate-api-key",
        "exe0-to-exe1",
        "token",  # docs/lifecycle.md
        "token revoke",
        "token revocations",
        "token explain",
    } == COMMAND_NAMES


def test_s6_3_unknown_command_message() -> None:
    assert unknown_command_message(["notacommand", "x"]) == 'command not found: "notacommand x"'


async def test_r103_unknown_flag_text_and_json(env: Env) -> None:
    a = await env.caller()
    result = await a.run("whoami --bogus")
    assert (result.exit_status, result.stdout) == (1, "")
    assert result.stderr == "flag parsing error: unknown flag --bogus\n"
    # One dash is the same flag; --json later on the line still selects JSON errors.
    result = await a.run("ls -bogus --json")
    assert result.exit_status == 1
    assert json_of(result) == {"error": "flag parsing error: unknown flag --bogus"}
    assert result.stderr == "flag parsing error: unknown flag --bogus\n"
    assert await a.fail("new --name") == "flag parsing error: flag needs an argument: --name"
    assert await a.fail("whoami --json=maybe") == (
        'flag parsing error: invalid boolean value "maybe" for --json'
    )


async def test_r104_positional_words_and_unknown_subcommands(env: Env) -> None:
    a = await env.caller()
    result = await a.run("whoami extra")
    assert result.exit_status == 1
    assert result.stderr == (
        '"whoami" command has no subcommands and does not take positional arguments\n'
    )
    assert await a.fail("ssh-key list extra") == (
        '"list" command has no subcommands and does not take positional arguments'
    )
    assert await a.fail("share bogus") == (
        '"share" subcommand "bogus" not found, valid "share" subcommands are: '
        "show, port, set-public, set-private, add, remove"
    )
    assert await a.fail("ssh-key --json list") == (
        '"ssh-key" subcommand "list" not found, valid "ssh-key" subcommands are: '
        "list, add, remove, rename, generate-api-key"
    )


async def test_s6_3_unknown_first_word(env: Env) -> None:
    a = await env.caller()
    result = await a.run("notacommand x")
    assert (result.exit_status, result.stdout) == (1, "")
    assert result.stderr == 'command not found: "notacommand x"\n'
    assert await a.fail("WHOAMI") == 'command not found: "WHOAMI"'


async def test_s6_3_flags_anywhere_last_value_wins_and_double_dash(env: Env) -> None:
    a = await env.caller()
    created = await a.ok(
        ["new", "--name", "first", "--upstream=http://127.0.0.1:1", "--name=second"]
    )
    assert created["vm_name"] == "second"
    # Flags between positional words; "--name value" form.
    assert (await a.ok("share add second --message hello b@example.com"))["shared_with"] == (
        "b@example.com"
    )
    # After "--" every word is positional, even one that looks like a flag.
    assert await a.fail("whoami -- --json") == (
        '"whoami" command has no subcommands and does not take positional arguments'
    )
    # "-" alone is a positional word.
    assert (await a.run("rm -", force_json=True)).stdout.startswith('{"deleted":[],"failed":["-"]')


async def test_s6_3_boolean_flag_values(env: Env) -> None:
    a = await env.caller()
    text = await a.run("whoami --json=false")
    assert text.exit_status == 0 and text.stdout.startswith("User ID: ")
    for spelling in ("--json", "-json", "--json=true", "-json=true"):
        result = await a.run(f"whoami {spelling}")
        assert json_of(result)["user_id"] == a.user.user_id
    # /exec forces JSON whatever the line says.
    forced = await a.run("whoami --json=false", force_json=True)
    assert json_of(forced)["user_id"] == a.user.user_id


def test_s6_3_wants_json_is_the_flag_parser_s_answer() -> None:
    """The one --json decision, for the command layer and for refusals made before a
    command runs (docs/ssh.md#words-and-flags, docs/ssh.md#output-and-exit-status)."""
    for spelling in ("--json", "-json", "--json=true", "-json=true", "--json=1", "-json=T"):
        assert wants_json(["whoami", spelling]), spelling
    assert not wants_json(["whoami"])
    assert not wants_json(["whoami", "--json", "--json=false"])  # the last value counts
    assert not wants_json(["whoami", "--", "--json"])  # after "--": a positional word
    assert not wants_json(["exe0-to-exe1", "--vm", "--json"])  # the value of --vm
    assert not wants_json(["whoami", "--json=maybe"])  # not a boolean: not JSON
    # No command resolves: every word is read as a flag would be.
    assert wants_json(["notacommand", "x", "--json"])
    assert wants_json(["--json"])
    assert not wants_json(["notacommand", "--", "--json"])


async def test_s6_3_help_flags_print_help_and_exit_0(env: Env) -> None:
    a = await env.caller()
    for spelling in ("-h", "-help", "--help"):
        result = await a.run(f"ls {spelling}")
        assert result.exit_status == 0 and result.stderr == ""
        assert "Usage: ls [-l] [name|pattern ...]" in result.stdout
    # Help requested before a bad flag wins; after one, the error does.
    assert (await a.run("ls --help --bogus")).exit_status == 0
    assert await a.fail("ls --bogus --help") == "flag parsing error: unknown flag --bogus"


async def test_s6_4_json_is_compact_indented_in_repl_and_not_html_escaped(env: Env) -> None:
    a = await env.caller("x<y>&z@example.com")
    compact = await a.run("whoami --json")
    assert compact.stdout.count("\n") == 1
    assert '"email":"x<y>&z@example.com"' in compact.stdout
    indented = await a.run("whoami --json", indent_json=True)
    assert indented.stdout.startswith('{\n  "user_id": ')
    assert indented.stdout.endswith("}\n")
    assert json.loads(indented.stdout) == json.loads(compact.stdout)
    error = await a.run("whoami x --json", indent_json=True)
    assert error.stdout == (
        '{\n  "error": "\\"whoami\\" command has no subcommands and does not take '
        'positional arguments"\n}\n'
    )


async def test_s6_4_errors_in_text_mode_go_to_stderr_only(env: Env) -> None:
    a = await env.caller()
    result = await a.run("rm")
    assert result == type(result)("", "please specify at least one VM name to delete\n", 1)
    result = await a.run("rm", force_json=True)
    assert result.stdout == '{"error":"please specify at least one VM name to delete"}\n'
    assert result.stderr == "please specify at least one VM name to delete\n"


async def test_s6_2_empty_word_list_does_nothing(env: Env) -> None:
    a = await env.caller()
    result = await a.run([])
    assert (result.stdout, result.stderr, result.exit_status) == ("", "", 0)


async def _fail_with(inv: Invocation) -> Output:
    kind = inv.args[0] if inv.args else ""
    if kind == "store":
        raise StoreUnavailable("database unavailable (x): connection refused")
    if kind == "user":
        raise CommandError("a user error")
    if kind == "slow":
        await asyncio.sleep(0)
        return Output({"slept": True}, "slept")
    raise RuntimeError(f"boom with secret {inv.args[1]}")


async def test_registry_extra_command_is_resolvable_and_removable(env: Env) -> None:
    a = await env.caller()
    unregister = register_command(("zz-test",), _fail_with, "test command")
    try:
        assert resolve_command_name(["zz-test", "x"]) == "zz-test"
        assert "zz-test" not in COMMAND_NAMES
        assert await a.ok("zz-test slow") == {"slept": True}
        assert await a.fail("zz-test user") == "a user error"
    finally:
        unregister()
    assert resolve_command_name(["zz-test"]) is None
    assert await a.fail("zz-test slow") == 'command not found: "zz-test slow"'


async def test_s6_4_unexpected_exception_is_internal_error_and_logged_without_tokens(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    a = await env.caller()
    secret = a.token()
    unregister = register_command(("zz-test",), _fail_with, "test command")
    try:
        with caplog.at_level(logging.ERROR, logger="sshmint.commands"):
            result = await a.run(["zz-test", "crash", secret])
    finally:
        unregister()
    assert (result.stdout, result.stderr, result.exit_status) == ("", f"{INTERNAL_ERROR}\n", 1)
    assert "RuntimeError" in caplog.text
    assert "exe0." not in caplog.text and secret not in caplog.text


async def test_s6_4_store_unavailable_is_one_line(env: Env) -> None:
    a = await env.caller()
    unregister = register_command(("zz-test",), _fail_with, "test command")
    try:
        assert await a.fail("zz-test store") == DATABASE_UNAVAILABLE
    finally:
        unregister()


async def test_s6_4_real_database_outage_is_database_unavailable(db_url: str) -> None:
    async with open_env(db_url) as env:
        a = await env.caller()
        row = await env.store.key_by_id(a.key.id)
        assert row is not None
        auth = Authenticator(env.store, env.clock, logging.getLogger("sshmint.server"))
        ctx = CommandContext(env.store, env.settings, a.user, row, env.clock, auth)
        await env.store.close()  # drop pooled connections, then take the database away
        if db_url.startswith("sqlite"):
            path = Path(db_url.removeprefix("sqlite:///"))
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            path.write_bytes(b"not a database " * 512)  # "file is not a database"
        else:
            name = db_url.rsplit("/", 1)[1]
            admin = db_url.rsplit("/", 1)[0] + "/postgres"
            subprocess.run(
                ["psql", "-X", "-q", "-d", admin, "-c", f'DROP DATABASE "{name}" WITH (FORCE)'],
                check=True,
                capture_output=True,
                env={**os.environ},
            )
        for line in (
            ["whoami"],
            ["ssh-key", "list"],
            ["new", "--name=x", "--upstream=http://[::1]"],
        ):
            result = await run_words(ctx, line, force_json=False)
            assert (result.stdout, result.stderr, result.exit_status) == (
                "",
                f"{DATABASE_UNAVAILABLE}\n",
                1,
            )
        result = await run_words(ctx, ["ls"], force_json=True)
        assert json_of(result) == {"error": DATABASE_UNAVAILABLE}


@given(st.text(alphabet=" \t\r\n\x0b\x0c\xa0\u2028ab#-=$*é'\"\\", max_size=16))
def test_s6_3_splitting_equals_posix_shlex_for_every_line(line: str) -> None:
    """The quote-free fast path and shlex agree on words and on syntax errors."""
    try:
        expected: list[str] | None = shlex.split(line, comments=False, posix=True)
    except ValueError:
        expected = None
    try:
        got: list[str] | None = split_command_line(line)
    except CommandSyntaxError:
        got = None
    assert got == expected
