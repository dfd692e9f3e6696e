"""``python -m sshmint``: the ``sshmint`` command line (docs/client.md#client-programs).

The program name is pinned to ``sshmint`` so that usage lines, help text and shell
completion (``_SSHMINT_COMPLETE``) are those of the installed command.
"""

from sshmint.cli import main

if __name__ == "__main__":
    main(prog_name="sshmint")
