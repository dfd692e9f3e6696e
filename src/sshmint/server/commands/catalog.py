"""The product command tree, in ``help`` order (docs/ssh.md#commands)."""

from __future__ import annotations

from sshmint.server.commands.apikey import run_generate_api_key
from sshmint.server.commands.help import run_help
from sshmint.server.commands.share import (
    run_share_add,
    run_share_port,
    run_share_remove,
    run_share_set_private,
    run_share_set_public,
    run_share_show,
)
from sshmint.server.commands.sshkey import (
    run_ssh_key_add,
    run_ssh_key_list,
    run_ssh_key_remove,
    run_ssh_key_rename,
)
from sshmint.server.commands.token import run_token_explain, run_token_revocations, run_token_revoke
from sshmint.server.commands.trade import run_exe0_to_exe1
from sshmint.server.commands.tree import CommandNode, FlagSpec, add_node, iter_nodes
from sshmint.server.commands.vms import run_ls, run_new, run_rm
from sshmint.server.commands.whoami import run_whoami

__all__ = ["COMMAND_NAMES"]

_VM_FLAG = FlagSpec("vm", "VM name the key or token is for", takes_value=True)
_CMDS_FLAG = FlagSpec("cmds", "comma-separated commands the key may run", takes_value=True)
_TAG_FLAG = FlagSpec("tag", "only see VMs carrying this tag", takes_value=True)
_EXP_FLAG = FlagSpec("exp", "expiry as a duration (e.g. 30d, 12h, 15min) or never", True)

_PRODUCT = (
    CommandNode(
        ("help",),
        "show help for commands",
        usage="help [command [subcommand]]",
        examples=("help", "help ssh-key add", "help --json"),
        handler=run_help,
        takes_args=True,
        lenient_flags=True,
    ),
    CommandNode(
        ("whoami",),
        "show your account and SSH keys",
        usage="whoami",
        handler=run_whoami,
    ),
    CommandNode(
        ("ls",),
        "list your VMs",
        usage="ls [-l] [name|pattern ...]",
        flags=(FlagSpec("l", "long format"),),
        examples=("ls", "ls -l", "ls 'web-*'", "ls prod"),
        handler=run_ls,
        takes_args=True,
    ),
    CommandNode(
        ("new",),
        "create a VM: a named HTTP backend",
        usage="new --name=NAME --upstream=URL [--tag=TAG[,TAG...]]",
        flags=(
            FlagSpec("name", "VM name", takes_value=True),
            FlagSpec("upstream", "backend URL, http://HOST[:PORT]", takes_value=True),
            FlagSpec("tag", "tags, comma-separated (repeatable)", True, repeatable=True),
        ),
        examples=("new --name=myapp --upstream=http://127.0.0.1:3000 --tag=prod",),
        handler=run_new,
    ),
    CommandNode(
        ("rm",),
        "delete VMs",
        usage="rm <vm>...",
        examples=("rm myapp",),
        handler=run_rm,
        takes_args=True,
    ),
    CommandNode(("share",), "manage VM sharing", usage="share <subcommand> [args...]"),
    CommandNode(
        ("share", "show"),
        "show a VM's sharing status",
        usage="share show <vm>",
        handler=run_share_show,
        takes_args=True,
    ),
    CommandNode(
        ("share", "port"),
        "show or change the upstream port of a VM",
        usage="share port <vm> [port]",
        examples=("share port myapp 8080",),
        handler=run_share_port,
        takes_args=True,
    ),
    CommandNode(
        ("share", "set-public"),
        "make a VM reachable without authentication",
        usage="share set-public <vm>",
        handler=run_share_set_public,
        takes_args=True,
    ),
    CommandNode(
        ("share", "set-private"),
        "require authentication for a VM",
        usage="share set-private <vm>",
        handler=run_share_set_private,
        takes_args=True,
    ),
    CommandNode(
        ("share", "add"),
        "share a VM with an email address",
        usage="share add <vm> <email> [--message='...']",
        flags=(FlagSpec("message", "note stored with the share", takes_value=True),),
        examples=("share add myapp friend@example.com",),
        handler=run_share_add,
        takes_args=True,
    ),
    CommandNode(
        ("share", "remove"),
        "stop sharing a VM with an email address",
        usage="share remove <vm> <email>",
        handler=run_share_remove,
        takes_args=True,
    ),
    CommandNode(("ssh-key",), "manage your SSH keys", usage="ssh-key <subcommand> [args...]"),
    CommandNode(
        ("ssh-key", "list"),
        "list your SSH keys",
        usage="ssh-key list",
        handler=run_ssh_key_list,
    ),
    CommandNode(
        ("ssh-key", "add"),
        "add an SSH public key, optionally restricted",
        usage="ssh-key add [--cmds=C1,C2] [--vm=VM | --tag=TAG] [--exp=DURATION] [<public-key>]",
        flags=(_CMDS_FLAG, _VM_FLAG, _TAG_FLAG, _EXP_FLAG),
        examples=(
            "ssh-key add 'ssh-ed25519 AAAA... laptop'",
            "cat key.pub | ssh HOST ssh-key add --cmds=whoami,ls --exp=30d",
        ),
        handler=run_ssh_key_add,
        takes_args=True,
    ),
    CommandNode(
        ("ssh-key", "remove"),
        "remove an SSH key (revokes its tokens)",
        usage="ssh-key remove <name|fingerprint|public-key>",
        handler=run_ssh_key_remove,
        takes_args=True,
    ),
    CommandNode(
        ("ssh-key", "rename"),
        "rename an SSH key",
        usage="ssh-key rename <old-name> <new-name>",
        handler=run_ssh_key_rename,
        takes_args=True,
    ),
    CommandNode(
        ("ssh-key", "generate-api-key"),
        "generate an API key and return its exe1 token",
        usage=(
            "ssh-key generate-api-key [--label=NAME] [--vm=VMNAME] [--cmds=CMD1,CMD2] [--exp=30d]"
        ),
        flags=(
            FlagSpec("label", "name of the new key", takes_value=True),
            _VM_FLAG,
            _TAG_FLAG,
            _CMDS_FLAG,
            _EXP_FLAG,
        ),
        examples=("ssh-key generate-api-key --label=ci --cmds=whoami,ls --exp=90d",),
        handler=run_generate_api_key,
    ),
    CommandNode(
        ("exe0-to-exe1",),
        "trade an exe0 token for a short exe1 token",
        usage="exe0-to-exe1 [--vm=VMNAME] <exe0-token>",
        flags=(FlagSpec("vm", "VM the token is signed for", takes_value=True),),
        handler=run_exe0_to_exe1,
        takes_args=True,
    ),
    CommandNode(
        ("token",),
        "revoke a token, list revocations, explain why a token fails",
        usage="token <subcommand> [args...]",
    ),
    CommandNode(
        ("token", "revoke"),
        "revoke one token (exe0 or exe1); its key and other tokens keep working",
        usage="token revoke TOKEN",
        examples=('token revoke "$TOKEN"', 'token revoke "$EXE1"'),
        handler=run_token_revoke,
        takes_args=True,
    ),
    CommandNode(
        ("token", "revocations"),
        "list the tokens you revoked that have not expired",
        usage="token revocations [--json]",
        handler=run_token_revocations,
    ),
    CommandNode(
        ("token", "explain"),
        "show every check the server makes on a token, and which one fails",
        usage="token explain TOKEN [--vm NAME] [--command 'CMD LINE']",
        flags=(
            FlagSpec("vm", "explain the token at this VM's proxy", takes_value=True),
            FlagSpec("command", "also check whether /exec would run this command", True),
        ),
        examples=(
            'token explain "$TOKEN"',
            "token explain \"$TOKEN\" --command 'ssh-key list'",
            'token explain "$VMTOKEN" --vm myapp',
        ),
        handler=run_token_explain,
        takes_args=True,
    ),
)

for _node in _PRODUCT:
    add_node(_node)

# Every resolvable name of the product tree (never commands added by tests).
COMMAND_NAMES: frozenset[str] = frozenset(node.full_name for node in iter_nodes())
