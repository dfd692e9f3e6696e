"""The ``sshmint`` command line: one click group, each command in its own module.

Subcommands are imported lazily, so ``sshmint inspect`` does not pay for the server's imports.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

# command name -> "module:attribute" (relative to this package)
_COMMANDS: dict[str, str] = {
    "mint": "tokens:mint",
    "inspect": "tokens:inspect",
    "verify": "tokens:verify",
    "exec": "exec:exec_command",
    "serve": "serve:serve",
    "admin": "admin:admin",
    "git-credential": "git_credential:git_credential",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(f"{__name__}.{module_name}")
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sshmint")
def main() -> None:
    """sshmint: API tokens minted offline with your SSH key.

    \b
    Examples:
      sshmint mint --key ~/.ssh/id_ed25519 --exp 1h
      sshmint inspect "$TOKEN"
      sshmint verify "$TOKEN" --namespace v0@localhost --key ~/.ssh/id_ed25519.pub
      sshmint serve --data-dir ./sshmint-data
    """
