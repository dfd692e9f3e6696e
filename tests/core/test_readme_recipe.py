"""The offline shell recipe of the user documentation (docs/tokens.md#minting-offline), run by bash exactly as
written (``tests/support/keys.py``), produces tokens that sshmint parses and verifies (R1) — and, for deterministic
key types, the very token ``sshmint mint`` produces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from sshmint.cli import main
from sshmint.keys import load_public_key_file
from sshmint.token import b64url_decode, verify_exe0
from tests.support.keys import recipe_token

# Long enough that base64 wraps the payload and the signature spans several armor lines.
LONG_PERMISSIONS = (
    '{"exp":4102444800,"cmds":["whoami","ls","ssh-key list"],"ctx":{"team":"ci","n":[1,2,3]}}'
)


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
@pytest.mark.parametrize("permissions", ["{}", LONG_PERMISSIONS])
def test_r1_recipe_token_parses_and_verifies(
    ssh_keygen_key: Callable[..., Path], kind: str, permissions: str
) -> None:
    key = ssh_keygen_key(kind)
    public_key = load_public_key_file(f"{key}.pub")
    token = recipe_token(key, permissions)
    assert b64url_decode(token.split(".")[1]) == permissions.encode()
    parsed = verify_exe0(
        token, "v0@localhost", {public_key.fingerprint: public_key}.get, int(time.time())
    )
    assert parsed.payload == permissions.encode()
    result = CliRunner().invoke(
        main, ["verify", token, "--namespace", "v0@localhost", "--key", f"{key}.pub"]
    )
    assert (result.exit_code, result.stdout) == (
        0,
        f"valid: signed by SHA256:{public_key.fingerprint}\n",
    )


def test_r1_recipe_and_mint_produce_the_same_ed25519_token(
    ssh_keygen_key: Callable[..., Path],
) -> None:
    key = ssh_keygen_key("ed25519")
    for permissions in ("{}", LONG_PERMISSIONS):
        result = CliRunner().invoke(main, ["mint", "--key", str(key), "--perms", permissions])
        assert result.exit_code == 0, result.stderr
        assert result.stdout == recipe_token(key, permissions) + "\n"
        # A payload without exp is minted with the never-expires warning (docs/client.md#client-programs).
        assert ("never expires" in result.stderr) == (permissions == "{}")


def test_s1_8_recipe_vm_token_is_valid_only_for_that_vm(
    ssh_keygen_key: Callable[..., Path],
) -> None:
    key = ssh_keygen_key("ed25519")
    token = recipe_token(key, "{}", "v0@myvm.localhost")
    runner = CliRunner()
    ok = runner.invoke(
        main, ["verify", token, "--namespace", "v0@myvm.localhost", "--key", f"{key}.pub"]
    )
    assert ok.exit_code == 0
    for namespace in ("v0@localhost", "v0@other.localhost"):
        bad = runner.invoke(
            main, ["verify", token, "--namespace", namespace, "--key", f"{key}.pub"]
        )
        assert (bad.exit_code, bad.stderr) == (
            1,
            f"namespace mismatch: token is for v0@myvm.localhost, expected {namespace}\n",
        )
