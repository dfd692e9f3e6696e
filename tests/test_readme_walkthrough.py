"""The README's offline walkthrough runs verbatim (issue: token core; SPEC §1.10).

The fenced ``bash`` blocks of the "A five-minute walkthrough" section are concatenated and run
in one real bash, from the project root, with ``HOME`` pointing at a fresh directory so the
example key path (``~/.ssh/sshmint_api``) is private to the test.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_bash_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return re.findall(r"```bash\n(.*?)```", body, flags=re.S)


def test_readme_offline_walkthrough_mints_inspects_and_verifies(tmp_path: Path) -> None:
    blocks = readme_bash_blocks("A five-minute walkthrough")
    assert len(blocks) >= 4, "walkthrough lost its steps"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    # Also check the shell-recipe token and the CLI-minted one both verify.
    script += (
        "\nCLI_TOKEN=$(.venv/bin/sshmint mint --key ~/.ssh/sshmint_api --exp 1h --cmds whoami,ls)\n"
        '.venv/bin/sshmint verify "$CLI_TOKEN" --namespace v0@localhost --key ~/.ssh/sshmint_api.pub\n'
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("SSH_AUTH_SOCK", None)
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("valid: signed by SHA256:") == 2, result.stdout
    assert "ssh-ed25519" in result.stdout  # inspect shows the key type
