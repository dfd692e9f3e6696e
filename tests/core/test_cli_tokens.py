"""``sshmint mint``, ``inspect``, ``verify`` (docs/client.md#shared-behaviour) with real keys, a real ssh-agent
and the real ``ssh-keygen -Y verify`` as the judge of minted tokens.

Most cases run in-process through click's ``CliRunner``; a few run the installed
``sshmint`` executable to check exit statuses and streams as a shell sees them.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sshmint.cli import main
from sshmint.keys import PublicKey, load_public_key_file
from sshmint.token import DEFAULT_CMDS, b64url_decode, parse_exe0, verify_exe0
from tests.support.keys import KeyFactory
from tests.support.sk_helpers import keygen_verify_token

NS = "v0@localhost"
SSHMINT = str(Path(sys.executable).with_name("sshmint"))
AMBIGUOUS = 'ambiguous duration unit "m": use "min" for minutes or "mo" for months'


def cli(*args: str, env: dict[str, str | None] | None = None, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env, input=input)
    # docs/client.md#shared-behaviour: never a traceback; only click's own exits.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [SSHMINT, *args],
        capture_output=True,
        text=True,
        env=full_env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr
    return proc


NEVER_EXPIRES = "warning: this token never expires; pass --exp to limit its lifetime\n"


def mint_ok(*args: str, env: dict[str, str | None] | None = None) -> str:
    """Mint through the CLI; stderr is empty, or the never-expires warning exactly when the
    token has no ``exp`` and ``--exp`` was not given (docs/client.md#client-programs)."""
    result = cli("mint", *args, env=env)
    assert result.exit_code == 0, result.stderr
    token = result.stdout
    assert token.endswith("\n") and token.count("\n") == 1
    unbounded = parse_exe0(token.strip()).permissions.exp is None and "--exp" not in args
    assert result.stderr == (NEVER_EXPIRES if unbounded else "")
    return token.strip()


def payload_of(token: str) -> bytes:
    return b64url_decode(token.split(".")[1])


def failure(result: Result | subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 1, nothing on stdout, exactly one line on stderr."""
    code = result.exit_code if isinstance(result, Result) else result.returncode
    assert (code, result.stdout, result.stderr) == (1, "", message + "\n")


def key_lookup(*keys: PublicKey) -> Callable[[str], PublicKey | None]:
    return {k.fingerprint: k for k in keys}.get


@pytest.fixture(scope="module")
def keys(ssh_keygen_key: KeyFactory) -> dict[str, Path]:
    return {
        "ed25519": ssh_keygen_key("ed25519"),
        "ecdsa": ssh_keygen_key("ecdsa"),
        "rsa": ssh_keygen_key("rsa"),
        "other": ssh_keygen_key("ed25519", name="other"),
        "encrypted": ssh_keygen_key("ed25519", passphrase="s3cret pass"),
    }


def pub(path: Path) -> PublicKey:
    return load_public_key_file(f"{path}.pub")


def keygen_verify(
    token: str, key_path: Path, namespace: str = NS
) -> subprocess.CompletedProcess[bytes]:
    return keygen_verify_token(token, Path(f"{key_path}.pub"), namespace)


# --- mint (docs/client.md#sshmint-mint) ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_r152_mint_with_key_files_cmds_and_exp(keys: dict[str, Path], kind: str) -> None:
    before = int(time.time())
    token = mint_ok("--key", str(keys[kind]), "--cmds", "whoami", "--exp", "1h")
    after = int(time.time())
    parsed = verify_exe0(token, NS, key_lookup(pub(keys[kind])), before)
    exp = parsed.permissions.exp
    assert exp is not None and before + 3600 <= exp <= after + 3600
    assert parsed.payload == b'{"exp":%d,"cmds":["whoami"]}' % exp
    assert parsed.permissions.allows("whoami") and not parsed.permissions.allows("ls")
    assert parsed.sshsig.hash_algorithm == "sha512"
    assert (
        parsed.sshsig.signature_format
        == {"ed25519": "ssh-ed25519", "ecdsa": "ecdsa-sha2-nistp256", "rsa": "rsa-sha2-512"}[kind]
    )
    assert "=" not in token and "+" not in token and "/" not in token  # canonical base64url
    check = keygen_verify(token, keys[kind])
    assert check.returncode == 0, check.stderr


def test_a4_mint_with_nothing_signs_empty_object(keys: dict[str, Path]) -> None:
    token = mint_ok("--key", str(keys["ed25519"]))
    assert payload_of(token) == b"{}"
    assert keygen_verify(token, keys["ed25519"]).returncode == 0


def test_a4_passphrase_from_environment(keys: dict[str, Path]) -> None:
    token = mint_ok("--key", str(keys["encrypted"]), env={"SSHMINT_KEY_PASSPHRASE": "s3cret pass"})
    assert verify_exe0(token, NS, key_lookup(pub(keys["encrypted"])), int(time.time()))


def test_a4_encrypted_key_without_passphrase_or_terminal_fails(keys: dict[str, Path]) -> None:
    path = str(keys["encrypted"])
    result = cli("mint", "--key", path, env={"SSHMINT_KEY_PASSPHRASE": None}, input="")
    failure(result, f"key {path} is encrypted; set SSHMINT_KEY_PASSPHRASE or run in a terminal")


def test_a4_passphrase_prompt_on_a_terminal(keys: dict[str, Path]) -> None:
    """With stdin a terminal (a pty here) and no environment variable, mint prompts."""
    env = {k: v for k, v in os.environ.items() if k != "SSHMINT_KEY_PASSPHRASE"}
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [SSHMINT, "mint", "--key", str(keys["encrypted"])],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
        start_new_session=True,  # no controlling terminal: getpass reads the pty on stdin
    )
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + 30
        while b"passphrase" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 1024)
        assert b"Enter passphrase for" in seen
        os.write(master, b"s3cret pass\n")
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    assert proc.returncode == 0
    token = out.decode().strip()
    assert verify_exe0(token, NS, key_lookup(pub(keys["encrypted"])), int(time.time()))


def test_a4_wrong_passphrase_fails_with_one_line(keys: dict[str, Path]) -> None:
    path = str(keys["encrypted"])
    result = cli("mint", "--key", path, env={"SSHMINT_KEY_PASSPHRASE": "wrong"})
    failure(result, f"cannot decrypt key {path}: wrong passphrase")


@pytest.mark.parametrize(
    ("when", "seconds"),
    [("15min", 900), ("12h", 43200), ("30d", 2_592_000), ("2mo", 5_184_000), ("1y", 31_536_000)],
)
def test_a4_exp_durations(keys: dict[str, Path], when: str, seconds: int) -> None:
    before = int(time.time())
    exp = parse_exe0(mint_ok("--key", str(keys["ed25519"]), "--exp", when)).permissions.exp
    assert exp is not None and before + seconds <= exp <= int(time.time()) + seconds


def test_a4_nbf_duration_and_timestamp_exp(keys: dict[str, Path]) -> None:
    before = int(time.time())
    perms = parse_exe0(
        mint_ok("--key", str(keys["ed25519"]), "--nbf", "1h", "--exp", "2000000000")
    ).permissions
    assert perms.exp == 2000000000
    assert perms.nbf is not None and before + 3600 <= perms.nbf <= int(time.time()) + 3600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exp", "15m"], AMBIGUOUS),
        (["--nbf", "2M"], AMBIGUOUS),
        (["--exp", "soon"], 'invalid duration "soon"'),
        (["--exp", "3x"], 'invalid duration unit "x" (use s, min, h, d, w, mo, or y)'),
        (["--exp", "100"], "invalid token: exp out of valid range"),
        (["--perms", '{"admin":true}'], 'invalid token: unknown field "admin"'),
        (["--perms", '{"exp":1,"exp":2}'], "invalid token: invalid JSON"),
        (["--perms", " {}"], "invalid token: payload must not have leading or trailing whitespace"),
        (["--perms", "[]"], "invalid token: payload must be a JSON object"),
        (
            ["--perms", '{"cmds":["ls",""]}'],
            "invalid token: cmds elements must be non-empty strings",
        ),
        (["--ctx", '1,"exp":5'], "invalid token: invalid JSON"),
        (["--ctx", "{"], "invalid token: invalid JSON"),
        (["--namespace", "v0@a", "--vm", "b"], "--namespace and --vm are mutually exclusive"),
        (["--agent", "--key", "k"], "--key and --agent are mutually exclusive"),
    ],
)
def test_a3_invalid_option_values_exit_1_with_the_message(args: list[str], message: str) -> None:
    # Option values are judged before any key is read: no key is needed to see these.
    failure(cli("mint", *args, env={"HOME": "/nonexistent"}), message)


def test_a3_usage_errors_exit_2() -> None:
    assert cli("mint", "--no-such-option").exit_code == 2
    assert cli("mint", "--exp").exit_code == 2  # option without its value
    assert cli("inspect").exit_code == 2
    assert cli("verify", "exe0.x.y", "--key", "k.pub").exit_code == 2  # --namespace missing
    assert cli("verify", "exe0.x.y", "--namespace", NS).exit_code == 2  # no key source


def test_a4_perms_alone_is_verbatim_and_options_reemit_compactly(keys: dict[str, Path]) -> None:
    perms = '{"ctx": {"b" : 1.50},  "exp": 2000000000}'
    assert payload_of(mint_ok("--key", str(keys["ed25519"]), "--perms", perms)) == perms.encode()
    token = mint_ok(
        "--key", str(keys["ed25519"]), "--perms", perms, "--cmds", " ls , ,ssh-key list,"
    )
    assert (
        payload_of(token) == b'{"exp":2000000000,"cmds":["ls","ssh-key list"],"ctx":{"b" : 1.50}}'
    )
    token = mint_ok("--key", str(keys["ed25519"]), "--perms", perms, "--exp", "never")
    assert payload_of(token) == b'{"ctx":{"b" : 1.50}}'
    token = mint_ok("--key", str(keys["ed25519"]), "--ctx", ' {"v":[1, 2]} ', "--cmds", "")
    assert payload_of(token) == b'{"cmds":[],"ctx":{"v":[1, 2]}}'


@pytest.mark.parametrize(
    ("args", "namespace"),
    [
        ([], "v0@localhost"),
        (["--web-host", "api.example.com"], "v0@api.example.com"),
        (["--vm", "myapp"], "v0@myapp.localhost"),
        (["--vm", "myapp", "--vm-host", "vms.example.com"], "v0@myapp.vms.example.com"),
        (["--namespace", "custom@ns"], "custom@ns"),
    ],
)
def test_s1_8_mint_namespaces(keys: dict[str, Path], args: list[str], namespace: str) -> None:
    token = mint_ok("--key", str(keys["ed25519"]), *args)
    assert parse_exe0(token).sshsig.namespace == namespace.encode()
    assert keygen_verify(token, keys["ed25519"], namespace).returncode == 0


def test_a4_default_key_is_first_existing_of_ed25519_ecdsa_rsa(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    shutil.copy(keys["rsa"], ssh_dir / "id_rsa")
    shutil.copy(keys["ecdsa"], ssh_dir / "id_ecdsa")
    token = mint_ok(env={"HOME": str(tmp_path)})
    assert parse_exe0(token).public_key.blob == pub(keys["ecdsa"]).blob
    shutil.copy(keys["ed25519"], ssh_dir / "id_ed25519")
    assert (
        parse_exe0(mint_ok(env={"HOME": str(tmp_path)})).public_key.blob
        == pub(keys["ed25519"]).blob
    )


def test_a4_no_default_key_fails(tmp_path: Path) -> None:
    result = cli("mint", env={"HOME": str(tmp_path)})
    failure(
        result,
        "no key: none of ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa, ~/.ssh/id_rsa exists; use --key PATH or --agent",
    )


def test_a4_unreadable_or_unusable_key_file_fails(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = cli("mint", "--key", str(missing))
    assert (
        result.exit_code == 1 and str(missing) in result.stderr and result.stderr.count("\n") == 1
    )
    junk = tmp_path / "junk"
    junk.write_text("hello\n")
    failure(cli("mint", "--key", str(junk)), f"key {junk} is not an OpenSSH or PEM private key")


# --- mint through ssh-agent (docs/client.md#sshmint-mint) ------------------------------------------------


@pytest.fixture(scope="module")
def agent(keys: dict[str, Path]) -> Iterator[str]:
    """A real ``ssh-agent -a SOCK`` holding the rsa and ed25519 keys; stopped afterwards."""
    directory = tempfile.mkdtemp(prefix="sshmint-agent-")  # short: UNIX socket paths are limited
    sock = os.path.join(directory, "agent.sock")
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.path.exists(sock), "ssh-agent did not start"
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        for kind in ("rsa", "ed25519"):  # rsa first: it is the agent's first identity
            subprocess.run(
                ["ssh-add", "-q", str(keys[kind])],
                check=True,
                env=env,
                capture_output=True,
                timeout=30,
            )
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_a4_mint_with_public_key_file_signs_through_the_agent(
    keys: dict[str, Path], agent: str, kind: str
) -> None:
    token = mint_ok("--key", f"{keys[kind]}.pub", "--exp", "1h", env={"SSH_AUTH_SOCK": agent})
    parsed = verify_exe0(token, NS, key_lookup(pub(keys[kind])), int(time.time()))
    if kind == "rsa":
        assert parsed.sshsig.signature_format == "rsa-sha2-512"
    assert keygen_verify(token, keys[kind]).returncode == 0


def test_a4_mint_with_agent_uses_the_first_identity(keys: dict[str, Path], agent: str) -> None:
    token = mint_ok("--agent", env={"SSH_AUTH_SOCK": agent})
    assert parse_exe0(token).public_key.blob == pub(keys["rsa"]).blob
    assert keygen_verify(token, keys["rsa"]).returncode == 0


def test_a4_agent_without_the_identity_names_the_fingerprint(
    keys: dict[str, Path], agent: str
) -> None:
    result = cli("mint", "--key", f"{keys['ecdsa']}.pub", env={"SSH_AUTH_SOCK": agent})
    assert result.exit_code == 1 and result.stdout == ""
    assert f"SHA256:{pub(keys['ecdsa']).fingerprint}" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a4_no_agent_names_the_fingerprint(keys: dict[str, Path]) -> None:
    result = cli("mint", "--key", f"{keys['ed25519']}.pub", env={"SSH_AUTH_SOCK": None})
    assert result.exit_code == 1 and f"SHA256:{pub(keys['ed25519']).fingerprint}" in result.stderr


def test_a4_installed_command_mints_through_the_agent(keys: dict[str, Path], agent: str) -> None:
    proc = run(
        "mint", "--key", f"{keys['ed25519']}.pub", "--cmds", "whoami", env={"SSH_AUTH_SOCK": agent}
    )
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert payload_of(token) == b'{"cmds":["whoami"]}'
    assert keygen_verify(token, keys["ed25519"]).returncode == 0


# --- inspect (docs/client.md#sshmint-inspect) ------------------------------------------------------------------


def test_r153_inspect_json_shape(keys: dict[str, Path]) -> None:
    token = mint_ok("--key", str(keys["ed25519"]), "--exp", "2000000000", "--ctx", '{"role": "ci"}')
    result = cli("inspect", token, "--json")
    assert result.exit_code == 0 and result.stderr == ""
    info = json.loads(result.stdout)
    public_line = Path(f"{keys['ed25519']}.pub").read_text().split()
    assert info == {
        "format": "exe0",
        "payload": '{"exp":2000000000,"ctx":{"role": "ci"}}',
        "permissions": {"exp": 2000000000, "ctx": {"role": "ci"}},
        "exp": 2000000000,
        "nbf": None,
        "cmds": list(DEFAULT_CMDS),
        "cmds_default": True,
        "ctx": {"role": "ci"},
        "key_type": "ssh-ed25519",
        "fingerprint": "SHA256:" + pub(keys["ed25519"]).fingerprint,
        "public_key": f"{public_line[0]} {public_line[1]}",
        "namespace": NS,
        "hash_algorithm": "sha512",
        "signature_algorithm": "ssh-ed25519",
    }


def test_r153_inspect_json_rsa_and_explicit_cmds(keys: dict[str, Path]) -> None:
    token = mint_ok("--key", str(keys["rsa"]), "--cmds", "whoami,ls", "--vm", "box")
    info = json.loads(cli("inspect", "--json", token).stdout)
    assert (info["cmds"], info["cmds_default"], info["ctx"]) == (["whoami", "ls"], False, None)
    assert (info["key_type"], info["signature_algorithm"]) == ("ssh-rsa", "rsa-sha2-512")
    assert info["namespace"] == "v0@box.localhost"


def test_a5_inspect_json_copies_permissions_and_ctx_text_exactly(keys: dict[str, Path]) -> None:
    ctx = '{"big": 1e400, "n": 1.50, "s": "\\ud800"}'
    token = mint_ok("--key", str(keys["ed25519"]), "--ctx", ctx)
    result = cli("inspect", "--json", token)
    assert result.exit_code == 0
    assert f'"ctx":{ctx}' in result.stdout
    assert '"permissions":{"ctx":' + ctx + "}" in result.stdout
    info = json.loads(result.stdout)  # still one valid JSON document
    assert info["ctx"]["n"] == 1.5 and info["permissions"]["ctx"]["s"] == "\ud800"


def test_a5_inspect_text_shows_utc_dates_and_validity(keys: dict[str, Path]) -> None:
    token = mint_ok("--key", str(keys["ed25519"]), "--perms", '{"exp":2000000000,"nbf":946684800}')
    result = cli("inspect", token)
    assert result.exit_code == 0
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert lines["exp"].strip() == "2000000000 (2033-05-18T03:33:20Z)"
    assert lines["nbf"].strip() == "946684800 (2000-01-01T00:00:00Z)"
    assert lines["valid now"].strip().startswith("yes")
    assert lines["fingerprint"].strip() == "SHA256:" + pub(keys["ed25519"]).fingerprint
    expired = mint_ok("--key", str(keys["ed25519"]), "--perms", '{"exp":946684800}')
    assert "valid now:   no (token has expired)" in cli("inspect", expired).stdout


def test_a5_inspect_malformed_token_fails_with_the_parse_message() -> None:
    failure(cli("inspect", "exe0.abc"), "invalid token format: expected exe0.<payload>.<sigblob>")
    failure(cli("inspect", "exe0.e30.", "--json"), "invalid token: malformed signature")
    failure(cli("inspect", "nope"), "invalid token format: missing exe0. prefix")


def test_a5_inspect_exe1() -> None:
    good = cli("inspect", "--json", "exe1." + "A" * 26)
    assert (good.exit_code, json.loads(good.stdout)) == (0, {"format": "exe1", "well_formed": True})
    bad = cli("inspect", "--json", "exe1.abc")
    assert (bad.exit_code, json.loads(bad.stdout)) == (1, {"format": "exe1", "well_formed": False})
    assert bad.stderr == "not a well-formed exe1 token\n"


# --- verify (docs/client.md#sshmint-verify) -------------------------------------------------------------------


def test_r154_verify_valid_token(keys: dict[str, Path]) -> None:
    token = mint_ok("--key", str(keys["ecdsa"]), "--exp", "1h")
    result = cli("verify", token, "--namespace", NS, "--key", f"{keys['ecdsa']}.pub")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"valid: signed by SHA256:{pub(keys['ecdsa']).fingerprint}\n"


def test_r154_verify_failures(keys: dict[str, Path]) -> None:
    key = str(keys["ed25519"])
    token = mint_ok("--key", key)
    pubfile = f"{key}.pub"
    fingerprint = pub(keys["ed25519"]).fingerprint
    failure(
        cli("verify", token, "--namespace", "v0@other", "--key", pubfile),
        f"namespace mismatch: token is for {NS}, expected v0@other",
    )
    failure(
        cli("verify", token, "--namespace", NS, "--key", f"{keys['other']}.pub"),
        f"signed by SHA256:{fingerprint}, not by the given key",
    )
    expired = mint_ok("--key", key, "--perms", '{"exp":946684800}')
    failure(
        cli("verify", expired, "--namespace", NS, "--key", pubfile),
        "invalid token: token has expired",
    )
    future = mint_ok("--key", key, "--nbf", "1d")
    failure(
        cli("verify", future, "--namespace", NS, "--key", pubfile),
        "invalid token: token is not yet valid",
    )
    failure(
        cli("verify", token + "=", "--namespace", NS, "--key", pubfile),
        "invalid token: signature is not valid base64url",
    )
    failure(
        cli("verify", "exe0.abc", "--namespace", NS, "--key", pubfile),
        "invalid token format: expected exe0.<payload>.<sigblob>",
    )
    failure(
        cli("verify", "exe1." + "A" * 26, "--namespace", NS, "--key", pubfile),
        "exe1 tokens are opaque; verify needs an exe0 token",
    )
    failure(
        cli("verify", token, "--namespace", NS, "--key", pubfile, "--allowed-keys", pubfile),
        "--key and --allowed-keys are mutually exclusive",
    )


def test_a6_verify_private_key_given_as_public(keys: dict[str, Path]) -> None:
    token = mint_ok("--key", str(keys["ed25519"]))
    failure(
        cli("verify", token, "--namespace", NS, "--key", str(keys["ed25519"])),
        "this is a private key, please use the public key instead (typically found in a .pub file)",
    )


def test_a6_verify_with_allowed_keys_file(keys: dict[str, Path], tmp_path: Path) -> None:
    token = mint_ok("--key", str(keys["rsa"]))
    allowed = tmp_path / "allowed"
    allowed.write_text(
        "# team keys\n\n"
        f"{pub(keys['ed25519']).openssh} alice\n"
        f"   # {pub(keys['rsa']).openssh} commented out\n"
        "\t\n"
    )
    failure(
        cli("verify", token, "--namespace", NS, "--allowed-keys", str(allowed)),
        f"signed by SHA256:{pub(keys['rsa']).fingerprint}, not by any of the allowed keys",
    )
    with allowed.open("a") as f:
        f.write(f"  {pub(keys['rsa']).openssh}   bob laptop  \n")
    result = cli("verify", token, "--namespace", NS, "--allowed-keys", str(allowed))
    assert result.stdout == f"valid: signed by SHA256:{pub(keys['rsa']).fingerprint}\n"
    allowed.write_text("ssh-ed25519 notbase64!\n")
    result = cli("verify", token, "--namespace", NS, "--allowed-keys", str(allowed))
    assert result.exit_code == 1 and result.stderr.startswith(
        f"{allowed}:1: invalid SSH public key: "
    )


# --- help and the installed executable --------------------------------------------------


@pytest.mark.parametrize("command", ["mint", "inspect", "verify"])
def test_a3_help_shows_examples(command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and f"sshmint {command} " in result.stdout


def test_a3_installed_command_streams_and_exit_codes(keys: dict[str, Path]) -> None:
    key = str(keys["ed25519"])
    minted = run("mint", "--key", key, "--exp", "15min", "--cmds", "whoami")
    assert (minted.returncode, minted.stderr) == (0, "")
    token = minted.stdout.strip()
    inspected = run("inspect", "--json", token)
    assert inspected.returncode == 0 and json.loads(inspected.stdout)["cmds"] == ["whoami"]
    verified = run("verify", token, "--namespace", NS, "--key", f"{key}.pub")
    assert verified.stdout == f"valid: signed by SHA256:{pub(keys['ed25519']).fingerprint}\n"
    failure(
        run("verify", token, "--namespace", "v0@x", "--key", f"{key}.pub"),
        f"namespace mismatch: token is for {NS}, expected v0@x",
    )
    failure(run("mint", "--key", key, "--exp", "15m"), AMBIGUOUS)
    failure(
        run("mint", "--key", str(keys["encrypted"])),
        f"key {keys['encrypted']} is encrypted; set SSHMINT_KEY_PASSPHRASE or run in a terminal",
    )
    usage = run("mint", "--bogus")
    assert usage.returncode == 2 and usage.stdout == "" and "No such option" in usage.stderr
    assert run("verify", token, "--key", f"{key}.pub").returncode == 2
