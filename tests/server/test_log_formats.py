"""The two log formats (docs/operations.md#logs, src/sshmint/server/infra/logs.py): one
record, rendered as text or JSON; events carry structured fields; the SecretsFilter
scrubs those fields in both formats (docs/security.md#secrets-never-logged); the deferred
path writes what ``logging`` writes; ``configure_logging`` applies the format and level.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from sshmint.server.http.accesslog import AccessEvent, _event_of, _seen, _text_of, access_log_class
from sshmint.server.infra.logs import (
    REDACTED,
    BatchingStreamHandler,
    Event,
    JSONFormatter,
    LineFormatter,
    LogFormatter,
    SecretsFilter,
    configure_logging,
    deferred_line_writer,
)
from sshmint.server.infra.metrics import Metrics
from sshmint.server.infra.observe import Observer, open_scope
from sshmint.signing import load_private_key
from sshmint.token import mint_exe0
from tests.support.log_checks import leaked

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
EXE1 = "exe1.MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"
FORMATTERS: dict[str, type[LogFormatter]] = {"text": LineFormatter, "json": JSONFormatter}


@pytest.fixture(scope="module")
def token(ssh_keygen_key: Callable[..., Path]) -> str:
    signer = load_private_key(ssh_keygen_key("ed25519", name="log-formats"))
    return mint_exe0(b'{"exp":4000000000}', signer, "v0@localhost")


def _tree(formatter: LogFormatter) -> tuple[logging.Logger, io.StringIO]:
    """A logger outside logging's registry, its records going to a BatchingStreamHandler
    with the SecretsFilter and ``formatter``."""
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream, formatter)
    handler.addFilter(SecretsFilter())
    top = logging.Logger("formats-test")
    top.handlers[:] = [handler]
    top.setLevel(logging.DEBUG)
    child = logging.Logger("formats-test.access")
    child.parent = top
    return child, stream


def _access_event(token: str) -> AccessEvent:
    """An access event with a token in every field a client controls."""
    fields: dict[str, object] = {
        "remote": "127.0.0.1",
        "host": f"{token}:8080",
        "method": "GET",
        "path": f"/x/{token}",
        "status": 404,
        "bytes": 210,
        "duration_ms": 0.412,
        "referer": f"http://localhost/?t={token}",
        "user_agent": f"agent {token} {EXE1}",
        "vm": "myvm",
        "auth_failure": "expired",
    }
    return AccessEvent(fields, "[01/Dec/2026:10:00:00 +0000]", "1.1")


def test_r170_json_records_are_one_object_per_line() -> None:
    """R170: ``ts`` (RFC 3339, milliseconds, UTC), ``level``, ``logger``, ``msg``; a
    traceback goes into ``exc``; a message with line breaks stays on one line."""
    log, stream = _tree(JSONFormatter())
    log.warning("two\nlines from %s", "here")
    try:
        raise ValueError("broken")
    except ValueError:
        log.exception("failed")
    first, second = stream.getvalue().splitlines()
    obj = json.loads(first)
    assert TS.fullmatch(obj.pop("ts")), first
    assert obj == {
        "level": "warning",
        "logger": "formats-test.access",
        "msg": "two\nlines from here",
    }
    failure = json.loads(second)
    assert failure["level"] == "error" and failure["msg"] == "failed"
    assert failure["exc"].startswith("Traceback") and "ValueError: broken" in failure["exc"]


def test_json_stamp_is_utc_with_milliseconds() -> None:
    assert JSONFormatter().stamp(1796173143.0456) == "2026-12-02T00:59:03.045Z"


def test_r170_events_render_the_same_facts_in_both_formats() -> None:
    """docs/operations.md#logs: one record, two renderings; text shows the summary and
    ``key=value`` pairs (quoted when needed), JSON the fields as keys."""
    event = Event(
        "ssh command", {"user_id": "usr0123", "command": "ssh-key list", "exit_status": 0}
    )
    text_log, text = _tree(LineFormatter())
    json_log, json_stream = _tree(JSONFormatter())
    text_log.info(event)
    json_log.info(Event(event.summary, dict(event.fields)))
    assert (
        text.getvalue()
        .rstrip()
        .endswith(
            'formats-test.access: ssh command user_id=usr0123 command="ssh-key list" exit_status=0'
        )
    )
    obj = json.loads(json_stream.getvalue())
    assert {k: obj[k] for k in ("msg", "user_id", "command", "exit_status")} == {
        "msg": "ssh command",
        "user_id": "usr0123",
        "command": "ssh-key list",
        "exit_status": 0,
    }


def test_access_line_extends_the_common_log_format() -> None:
    """docs/operations.md#logs: aiohttp's line, then the host, who, the VM, the failure
    cause and the duration."""
    event = _access_event("plain")
    assert event.text() == (
        '127.0.0.1 [01/Dec/2026:10:00:00 +0000] "GET /x/plain HTTP/1.1" 404 210'
        ' "http://localhost/?t=plain" "agent plain exe1.MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"'
        " host=plain:8080 vm=myvm auth_failure=expired 0.412ms"
    )


@pytest.mark.parametrize("fmt", FORMATTERS)
def test_r156_event_fields_are_scrubbed_in_both_formats(fmt: str, token: str) -> None:
    """docs/security.md#secrets-never-logged: a token in the path, Host, Referer or
    User-Agent of an access event — or an exe1 body without its prefix — reaches neither
    format, through ``logging`` or left for the handler to render (the access log's way)."""
    log, stream = _tree(FORMATTERS[fmt]())
    log.info(_access_event(token))
    later = deferred_line_writer(log)
    assert later is not None
    later(_access_event, (token,))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert not leaked(line, token), line
        assert REDACTED in line
    assert not leaked(lines[0], EXE1)  # rule 2 on the logging path
    if fmt == "json":
        for line in lines:
            obj = json.loads(line)
            assert obj["path"] == f"/x/{REDACTED}" and obj["host"] == REDACTED, obj


@pytest.mark.parametrize("fmt", FORMATTERS)
def test_deferred_lines_are_what_logging_writes(fmt: str) -> None:
    log, stream = _tree(FORMATTERS[fmt]())
    later = deferred_line_writer(log)
    assert later is not None
    log.info(_access_event("same"))
    later(_access_event, ("same",))
    log.info("plain message")
    later(str, ("plain message",))
    lines = stream.getvalue().splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}" if fmt == "text" else r'"ts":"[^"]*"'
    assert re.sub(stamp, "T", lines[0]) == re.sub(stamp, "T", lines[1])
    assert re.sub(stamp, "T", lines[2]) == re.sub(stamp, "T", lines[3])


@pytest.mark.parametrize(
    ("fmt", "level", "root_level", "asyncssh_level"),
    [
        ("json", "warning", logging.WARNING, logging.WARNING),
        ("text", "debug", logging.DEBUG, logging.WARNING),
        ("text", "error", logging.ERROR, logging.ERROR),
    ],
)
def test_configure_logging_applies_format_and_level(
    configured: None, fmt: str, level: str, root_level: int, asyncssh_level: int
) -> None:
    """docs/operations.md#logs: ``--log-format`` picks the formatter, ``--log-level`` the
    root level; asyncssh (whose INFO lines are exec command lines) never goes below WARNING."""
    configure_logging(fmt, level)
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, FORMATTERS[fmt])
    assert [type(f) for f in handler.filters] == [SecretsFilter]
    assert logging.getLogger().level == root_level
    assert logging.getLogger("asyncssh").level == asyncssh_level


async def test_access_log_counts_every_request_whatever_the_level() -> None:
    """docs/operations.md#metrics: the access log hook reports each request to the
    observer even when its lines are not written (a level above INFO, or a request the
    parser refused), and writes one line otherwise."""
    metrics = Metrics()
    log_class = access_log_class(Observer(metrics))
    quiet, quiet_stream = _tree(LineFormatter())
    assert quiet.parent is not None
    quiet.parent.setLevel(logging.WARNING)
    loud, loud_stream = _tree(JSONFormatter())
    request = make_mocked_request("GET", "/healthz", headers={"Host": "localhost"})
    response = web.Response(text="ok")

    async def one(logger: logging.Logger, refused: bool = False) -> None:
        scope = open_scope("healthz")
        scope.refused = refused
        log_class(logger).log(request, response, 0.0002)

    await asyncio.gather(one(quiet), one(loud), one(loud, refused=True))
    assert loud.parent is not None
    loud.parent.handlers[0].flush()  # on the loop, lines wait for the flush
    assert quiet_stream.getvalue() == ""
    assert len(loud_stream.getvalue().splitlines()) == 1
    assert metrics.http_requests == {("healthz", 200): 3}
    assert metrics.http_durations["healthz"].counts[1] == 3  # 0.0002 s: the 0.00025 bucket


@pytest.mark.parametrize("learnt", ["nothing", "user", "refused", "vm"])
def test_the_text_access_line_rendered_without_an_event_is_the_events_text(learnt: str) -> None:
    """docs/operations.md#text-format: in the text format the access log renders its line
    straight from what it read of the request, with no event; the text is exactly the
    event's, whatever the scope learnt (the event's text serves every other configuration)."""
    request = make_mocked_request(
        "POST",
        "/exec",
        headers={"Host": "localhost:8080", "User-Agent": "curl/8", "Referer": "x y"},
    )

    async def both() -> tuple[str, str]:
        scope = open_scope("exec")
        if learnt == "user":
            scope.user_id, scope.key, scope.command = "usr1", "SHA256:" + "A" * 43, "whoami"
        elif learnt == "refused":
            scope.auth_failure = "expired"
        elif learnt == "vm":
            scope.vm = "my app"  # quoted in text
        seen = _seen(request, 401, 26, 0.0123, scope)
        return _text_of(seen), _event_of(seen).text()

    line, text = asyncio.run(both())
    assert line == text
    assert line.endswith(" 12.3ms") and "host=localhost:8080" in line
