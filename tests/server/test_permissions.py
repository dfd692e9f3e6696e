"""docs/permissions.md#key-restrictions: key-level permissions, the SSH pre-command checks (docs/ssh.md#key-checks-before-every-command), the /exec
key checks (docs/permissions.md#how-they-combine) and inheritance (docs/permissions.md#inheritance)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sshmint.server.auth.permissions import (
    KEY_EXPIRED,
    KEY_NOT_ALLOWED,
    KEY_REVOKED,
    InheritanceError,
    KeyPermissions,
    PermissionsError,
    cmds_allow,
    inherit,
    key_permission_error,
    key_restriction_error,
    parse_key_permissions,
)
from sshmint.server.commands import COMMAND_NAMES

NOW = 1_900_000_000


@dataclass(frozen=True)
class Row:
    """The one field of a stored key row the checks read."""

    permissions: str


@dataclass(frozen=True)
class VM:
    """The fields of a VM the vm/tag restriction reads."""

    name: str
    tags: tuple[str, ...] = ()


def test_s4_3_vm_and_tag_keys_use_only_their_vms() -> None:
    """docs/permissions.md#key-restrictions, docs/permissions.md#tag-scope: the one rule the
    proxy and the commands' tag scope ask."""
    web, ci = VM("web", ("ci", "prod")), VM("db", ("prod",))
    assert KeyPermissions().allows_vm(web) and KeyPermissions().allows_vm(ci)
    assert KeyPermissions(vm="web").allows_vm(web)
    assert not KeyPermissions(vm="web").allows_vm(ci)
    assert KeyPermissions(tag="ci").allows_vm(web)
    assert not KeyPermissions(tag="ci").allows_vm(ci)
    assert not KeyPermissions(tag="ci").allows_vm(VM("bare"))


@pytest.mark.parametrize("text", ["", "{}", '{"other":1}', '{"cmds":null,"exp":null}'])
def test_s4_3_empty_permissions_are_unrestricted(text: str) -> None:
    perms = parse_key_permissions(text)
    assert perms.unrestricted
    assert perms.to_text() == ""
    for name in COMMAND_NAMES:
        assert key_permission_error(Row(text), name, NOW) is None


def test_s4_3_round_trip_of_stored_text() -> None:
    perms = KeyPermissions(cmds=("whoami", "ls"), tag="ci", exp=NOW)
    assert perms.to_text() == f'{{"cmds":["whoami","ls"],"tag":"ci","exp":{NOW}}}'
    assert parse_key_permissions(perms.to_text()) == perms
    assert perms.to_object() == {"cmds": ["whoami", "ls"], "tag": "ci", "exp": NOW}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '"x"',
        "null",
        '{"cmds":"ls"}',
        '{"cmds":[1]}',
        '{"vm":1}',
        '{"tag":["a"]}',
        '{"exp":"1"}',
        '{"exp":1.5}',
        '{"exp":true}',
        '{"exp":NaN}',
        "{",
    ],
)
def test_s4_3_unreadable_permissions_fail_closed(text: str) -> None:
    with pytest.raises(PermissionsError):
        parse_key_permissions(text)
    with pytest.raises(PermissionsError):
        key_permission_error(Row(text), "whoami", NOW)
    with pytest.raises(PermissionsError):
        key_restriction_error(Row(text), "whoami")


def test_s4_3_stored_empty_cmds_allow_nothing() -> None:
    assert key_permission_error(Row('{"cmds":[]}'), "whoami", NOW) == KEY_NOT_ALLOWED


@pytest.mark.parametrize(
    ("cmds", "name", "allowed"),
    [
        (["ssh-key"], "ssh-key list", True),  # R48: parent allows children
        (["ssh-key"], "ssh-key add", True),
        (["ssh-key"], "ssh-key", True),
        (["ssh-key list"], "ssh-key", False),
        (["ssh-key list"], "ssh-key add", False),
        (["ssh"], "ssh-key list", False),  # prefix must end at a word boundary
        (["whoami", "ls"], "ls", True),
        (["whoami", "ls"], "new", False),
        ([], "whoami", False),
    ],
)
def test_s4_3_parent_prefix_rule(cmds: list[str], name: str, allowed: bool) -> None:
    assert cmds_allow(cmds, name) is allowed


def test_r47_key_cmds_allow_only_listed_commands() -> None:
    row = Row('{"cmds":["whoami","ls"]}')
    assert key_permission_error(row, "whoami", NOW) is None
    assert key_permission_error(row, "ls", NOW) is None
    assert key_permission_error(row, "new", NOW) == KEY_NOT_ALLOWED
    assert key_permission_error(row, "ssh-key list", NOW) == KEY_NOT_ALLOWED


def test_s6_5_unresolvable_line_is_not_allowed_by_key_cmds() -> None:
    assert key_permission_error(Row('{"cmds":["whoami"]}'), None, NOW) == KEY_NOT_ALLOWED
    assert key_permission_error(Row(""), None, NOW) is None  # then "command not found"


def test_r106_removed_key_is_revoked() -> None:
    assert key_permission_error(None, "whoami", NOW) == KEY_REVOKED


def test_r50_s4_6_key_expiry_is_now_greater_than_exp() -> None:
    assert key_permission_error(Row(f'{{"exp":{NOW}}}'), "whoami", NOW) is None
    assert key_permission_error(Row(f'{{"exp":{NOW - 1}}}'), "whoami", NOW) == KEY_EXPIRED


def test_r56_vm_key_may_run_no_command() -> None:
    row = Row('{"vm":"myapp"}')
    for name in COMMAND_NAMES:
        assert key_permission_error(row, name, NOW) == KEY_NOT_ALLOWED
        assert key_restriction_error(row, name) == KEY_NOT_ALLOWED


def test_r55_tag_key_may_not_trade_tokens() -> None:
    row = Row('{"tag":"ci"}')
    assert key_permission_error(row, "exe0-to-exe1", NOW) == KEY_NOT_ALLOWED
    for name in COMMAND_NAMES - {"exe0-to-exe1"}:
        assert key_permission_error(row, name, NOW) is None


def test_s6_5_checks_run_in_order() -> None:
    # Expired beats vm, vm beats cmds, cmds beats tag.
    assert key_permission_error(Row('{"exp":1,"vm":"x"}'), "ls", NOW) == KEY_EXPIRED
    everything = Row('{"cmds":["ls"],"tag":"t","vm":"x"}')
    assert key_permission_error(everything, "ls", NOW) == KEY_NOT_ALLOWED


def test_s4_4_exec_subset_ignores_expiry_and_takes_parsed_permissions() -> None:
    expired = KeyPermissions(exp=1)
    assert key_restriction_error(expired, "whoami") is None  # /exec checks expiry earlier
    assert key_restriction_error(KeyPermissions(cmds=("whoami",)), "ls") == KEY_NOT_ALLOWED
    assert key_restriction_error(KeyPermissions(tag="t"), "exe0-to-exe1") == KEY_NOT_ALLOWED
    assert key_restriction_error(KeyPermissions(cmds=("whoami",)), None) == KEY_NOT_ALLOWED


def test_r51_cmds_are_inherited_when_none_given() -> None:
    caller = KeyPermissions(cmds=("ssh-key add", "whoami"))
    assert inherit(KeyPermissions(), caller).cmds == ("ssh-key add", "whoami")


def test_r52_cmds_outside_the_callers_are_refused() -> None:
    caller = KeyPermissions(cmds=("ssh-key add", "whoami"))
    with pytest.raises(InheritanceError) as err:
        inherit(KeyPermissions(cmds=("ls",)), caller)
    assert err.value.message == (
        'calling key does not allow command "ls"; cannot grant it to new key'
    )
    # A narrower command under a parent entry is fine (parent-prefix rule).
    parent = KeyPermissions(cmds=("ssh-key",))
    assert inherit(KeyPermissions(cmds=("ssh-key list",)), parent).cmds == ("ssh-key list",)


def test_r53_exp_takes_the_earlier_of_caller_and_new() -> None:
    caller = KeyPermissions(exp=NOW + 100)
    assert inherit(KeyPermissions(), caller).exp == NOW + 100
    assert inherit(KeyPermissions(exp=NOW + 200), caller).exp == NOW + 100
    assert inherit(KeyPermissions(exp=NOW + 50), caller).exp == NOW + 50


def test_r54_tag_is_inherited_and_cannot_change() -> None:
    caller = KeyPermissions(tag="ci")
    assert inherit(KeyPermissions(), caller).tag == "ci"
    assert inherit(KeyPermissions(tag="ci"), caller).tag == "ci"
    with pytest.raises(InheritanceError) as err:
        inherit(KeyPermissions(tag="prod"), caller)
    assert (
        err.value.message == 'calling key is scoped to tag "ci"; cannot create key with tag "prod"'
    )


def test_s4_5_vm_is_inherited_and_cannot_change() -> None:
    caller = KeyPermissions(vm="a")
    assert inherit(KeyPermissions(), caller).vm == "a"
    with pytest.raises(InheritanceError) as err:
        inherit(KeyPermissions(vm="b"), caller)
    assert err.value.message == 'calling key is scoped to VM "a"; cannot create key with VM "b"'


def test_s4_5_rules_apply_in_order_tag_first() -> None:
    caller = KeyPermissions(cmds=("whoami",), tag="ci")
    with pytest.raises(InheritanceError) as err:
        inherit(KeyPermissions(cmds=("ls",), tag="prod"), caller)
    assert "scoped to tag" in err.value.message


def test_s4_5_unrestricted_caller_adds_nothing() -> None:
    new = KeyPermissions(cmds=("ls",), tag="x", exp=NOW)
    assert inherit(new, KeyPermissions()) == new
