"""``Client.revoke`` and ``Client.explain`` (sync and async) against a live ``sshmint serve``
(docs/client.md#other-programs, docs/lifecycle.md): typed results, and the refusal as a
typed error."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from sshmint.client import (
    AsyncClient,
    Client,
    CommandFailed,
    RevokedToken,
    SSHMintAuth,
    TokenCheck,
    TokenExplanation,
    Unauthorized,
)
from tests.support.harness import SSHMintServer
from tests.support.keys import Account

LIFECYCLE = ["token revoke", "token explain", "whoami"]


def test_s14_client_revoke_returns_a_typed_result_and_the_token_stops_working(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    exp = int(time.time()) + 600
    victim = account.token(f'{{"exp":{exp}}}')
    with Client(sqlite_server.http_url, token=victim) as as_victim:
        as_victim.exec("whoami")
        with Client(
            sqlite_server.http_url, auth=SSHMintAuth(key=account.key, cmds=LIFECYCLE)
        ) as me:
            revoked = me.revoke(victim)
            assert revoked == RevokedToken(
                fingerprint=f"SHA256:{account.fingerprint}",
                key_name=revoked.key_name,
                exp=datetime.fromtimestamp(exp, UTC),
            )
            assert revoked.key_name
            assert me.revoke(victim) == revoked  # idempotent
            with pytest.raises(CommandFailed) as info:
                me.revoke("exe0.not-a-token")
            assert (info.value.status, info.value.message) == (422, "token not found")
            me.exec("whoami")  # the key's other tokens keep working
        with pytest.raises(Unauthorized) as refused:
            as_victim.exec("whoami")
        assert refused.value.message == "invalid token"


def test_s14_client_explain_returns_every_check(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    expired = account.token('{"exp":946684800}')
    with Client(sqlite_server.http_url, auth=SSHMintAuth(key=account.key, cmds=LIFECYCLE)) as me:
        report = me.explain(expired)
        assert isinstance(report, TokenExplanation)
        assert report.valid is False and report.failed == report.checks[-1]
        assert report.failed.check == "claims" and "expired" in report.failed.detail
        assert report.exp == datetime(2000, 1, 1, tzinfo=UTC)
        assert report.fingerprint == f"SHA256:{account.fingerprint}"
        good = me.explain(account.token('{"cmds":["whoami"]}'), command="ls")
        assert good.failed == TokenCheck(
            "command", False, 'command "ls" is not in the token\'s cmds (whoami)'
        )
        assert [c.check for c in good.checks][:3] == ["format", "claims", "key"]
        assert me.explain(account.token(), command="whoami").valid is True
        with pytest.raises(CommandFailed) as info:  # only usage errors fail
            me.explain(account.token(namespace="v0@nosuch.localhost"), vm="nosuch")
        assert info.value.message == 'VM "nosuch" not found'


async def test_s14_async_client_revoke_and_explain(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    victim = account.token('{"cmds":["ls"]}')
    auth = SSHMintAuth(key=account.key, cmds=LIFECYCLE)
    async with AsyncClient(sqlite_server.http_url, auth=auth) as me:
        assert (await me.explain(victim)).valid is True
        revoked = await me.revoke(victim)
        assert revoked.exp is None
        report = await me.explain(victim)
        assert report.failed is not None and report.failed.check == "revoked"
        assert report.reason == report.failed.detail and report.reason.startswith("revoked ")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"valid": True, "checks": "x"},
        {"valid": True, "checks": [{"check": "format", "detail": "d"}], "expected_namespace": "n"},
        {"valid": True, "checks": [], "expected_namespace": "n", "exp": "yesterday"},
        {"valid": "yes", "checks": []},
    ],
)
def test_s14_an_explanation_of_another_shape_is_an_invalid_response(
    body: dict[str, object],
) -> None:
    from sshmint.client import InvalidResponse
    from sshmint.client.results import explanation, revoked_token

    with pytest.raises(InvalidResponse):
        explanation(body)
    with pytest.raises(InvalidResponse):
        revoked_token(body)
