"""Logs and traces, the pure parts: W3C trace context, the continued _meta, the request scope in log lines
(text and JSON), the access log's sampling, and OpenTelemetry left unloaded when no export is configured."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging

import pytest

from only1mcp.audit.line import session_hash
from only1mcp.config.observe import LoggingSettings
from only1mcp.logs import ACCESS_LOGGER, RepeatLimiter, _Formatter, _Handler, _JsonFormatter
from only1mcp.observe.requests import RequestLog
from only1mcp.observe.scope import RequestScope, adopt, current, enter, leave, request_id, scope_class
from only1mcp.observe.spans import PassingSpans
from only1mcp.observe.traceparent import from_meta, parse, with_meta
from tests.support.imports import loaded_after

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def Headers(**values: str) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in values.items()}


def record(message: str, name: str = "only1mcp.worker", level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


@pytest.mark.parametrize("value", [
    f"00-{TRACE}-{PARENT}-01",
    f"01-{TRACE}-{PARENT}-01-what-a-later-version-adds",
])
def test_a_valid_traceparent_is_read(value: str) -> None:
    parsed = parse(value, "vendor=1")
    assert parsed is not None and (parsed.trace_id, parsed.parent_id, parsed.flags) == (TRACE, PARENT, 1)
    assert parsed.sampled and parsed.state == "vendor=1"


@pytest.mark.parametrize("value", [
    None, 7, "", "00-nonsense-01",
    f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
    f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
    f"00-{'0' * 32}-{PARENT}-01", f"00-{TRACE}-{'0' * 16}-01",  # all-zero ids
    f"00-{TRACE.upper()}-{PARENT}-01",  # lower-case hex only
    f"01-{TRACE}-{PARENT}-01x",
])
def test_an_invalid_traceparent_is_ignored(value: object) -> None:
    assert parse(value) is None


def test_a_tracestate_that_could_break_a_header_is_not_passed_on() -> None:
    traceparent = f"00-{TRACE}-{PARENT}-00"
    assert parse(traceparent, "a=1\r\nX-Evil: 1").state is None  # type: ignore[union-attr]
    assert parse(traceparent, "x" * 513).state is None  # type: ignore[union-attr]
    assert parse(traceparent, {"a": 1}).state is None  # type: ignore[union-attr]
    assert not parse(traceparent).sampled  # type: ignore[union-attr]


def test_the_continued_context_replaces_the_clients_and_keeps_its_other_meta() -> None:
    params = {"name": "t", "_meta": {"progressToken": 5, "com.example/x": [1], "traceparent": "old",
                                     "tracestate": "old=1"}}
    carried = with_meta(params, "00-new", None)
    assert carried["_meta"] == {"progressToken": 5, "com.example/x": [1], "traceparent": "00-new"}
    assert params["_meta"]["traceparent"] == "old"  # the client's message is not changed
    assert with_meta(None, "00-new", "s=1") == {"_meta": {"traceparent": "00-new", "tracestate": "s=1"}}
    assert from_meta({"_meta": {"traceparent": f"00-{TRACE}-{PARENT}-01"}}).trace_id == TRACE  # type: ignore[union-attr]
    assert from_meta({"_meta": "not an object"}) is None and from_meta(None) is None


def test_a_passed_span_is_a_new_child_in_the_clients_trace() -> None:
    span = PassingSpans().start(parse(f"00-{TRACE}-{PARENT}-01", "v=2"))
    assert span is not None and span.trace_id == TRACE and span.span_id != PARENT and not span.root
    assert span.header == f"00-{TRACE}-{span.span_id}-01"
    assert span.header_lines() == f"traceparent: {span.header}\r\ntracestate: v=2\r\n".encode()
    assert PassingSpans().start(None) is None  # no context, no export: untraced


def test_request_ids_are_numbered_per_process_and_a_plain_client_id_is_kept() -> None:
    requests = RequestLog("worker-0")

    async def ids() -> list[str]:
        async def one(headers: dict[str, str]) -> str:
            requests.begin(headers)
            await asyncio.sleep(0)
            return request_id()

        return list(await asyncio.gather(one(Headers()), one(Headers()), one(Headers(x_request_id="abc-1")),
                                         one(Headers(x_request_id="bad id\nwith a break"))))

    first, second, given, refused = asyncio.run(ids())
    prefix = first.split("-")[0]
    assert (first, second) == (f"{prefix}-1", f"{prefix}-2") and given == "abc-1" and refused == f"{prefix}-4"
    assert current() is None  # each request's scope stayed in its own task


def test_the_access_log_draws_its_sample_and_only_drawn_or_traced_requests_are_timed() -> None:
    draws = iter([0.05, 0.5, 0.09, 0.99])
    requests = RequestLog("worker-0", draw=lambda: next(draws))
    requests.configure(LoggingSettings(access_log=True, access_log_sample=0.1))

    async def scopes() -> list[RequestScope]:
        async def one(headers: dict[str, str]) -> RequestScope:
            return requests.begin(headers)

        return [await asyncio.create_task(one(Headers())) for _ in range(3)] + [
            await asyncio.create_task(one(Headers(traceparent=f"00-{TRACE}-{PARENT}-01")))]

    drawn, skipped, drawn_again, traced = asyncio.run(scopes())
    assert (drawn.drawn, skipped.drawn, drawn_again.drawn) == (True, False, True)
    assert skipped.started == 0.0 and drawn.started > 0 and traced.started > 0 and traced.span is not None
    requests.configure(LoggingSettings(access_log=False, access_log_sample=1))
    assert not asyncio.run(scopes())[0].drawn  # off: nothing drawn (the draws above would have run out)


def test_text_lines_end_with_the_request_id_and_json_lines_carry_the_scope() -> None:
    scope = scope_class("a1b2c3")()
    scope.number, scope.span = 255, PassingSpans().start(parse(f"00-{TRACE}-{PARENT}-01"))
    scope.sid, scope.backend = "the-session-id", "files"
    text, structured = _Formatter("worker-3"), _JsonFormatter("worker-3")

    def lines() -> tuple[str, str]:
        return text.format(record("tools/call 7 failed")), structured.format(record("tools/call 7 failed"))

    outside_text, outside_json = lines()
    enter(scope)
    try:
        inside_text, inside_json = lines()
    finally:
        enter(None)
    assert outside_text.endswith(f"worker-3[{record('').process}] INFO tools/call 7 failed")
    assert inside_text.endswith(" INFO tools/call 7 failed rid=a1b2c3-ff")
    line = json.loads(inside_json)
    assert line["process"] == "worker" and line["slot"] == 3 and line["level"] == "info"
    assert line["request_id"] == "a1b2c3-ff" and line["backend"] == "files" and line["trace_id"] == TRACE
    assert line["session"] == session_hash("the-session-id") and "the-session-id" not in inside_json
    assert "request_id" not in json.loads(outside_json)
    assert json.loads(_JsonFormatter("stdio-host").format(record("x")))["slot"] is None
    assert json.loads(_JsonFormatter("worker--1").format(record("x")))["slot"] == -1  # a standby


def test_a_reports_request_id_is_current_while_its_handler_runs() -> None:
    token = adopt("f00d-7")
    try:
        assert request_id() == "f00d-7"
    finally:
        leave(token)
    assert request_id() == ""


def test_access_lines_are_not_held_back_as_repeats_but_other_lines_are() -> None:
    handler = _Handler(RepeatLimiter(window=10, burst=2))
    written: list[str] = []
    handler.emit = lambda r: written.append(r.name)  # type: ignore[method-assign]
    for _ in range(5):
        handler.handle(record("POST /mcp 200 tools/call 1.0ms", name=ACCESS_LOGGER))
        handler.handle(record("tools/call 1 failed"))
    assert written.count(ACCESS_LOGGER) == 5 and written.count("only1mcp.worker") == 2


def test_no_opentelemetry_module_is_loaded_without_an_export() -> None:
    code = ("import only1mcp.workers.worker, only1mcp.supervisor.arbiter, only1mcp.observe.requests\n"
            "from only1mcp.observe.requests import RequestLog\n"
            "from only1mcp.config.models import Settings\n"
            "RequestLog('worker-0').configure(Settings().logging)\n")
    assert loaded_after(code, ("opentelemetry", "google.protobuf")) == []


def test_an_export_without_the_sdk_installed_is_refused_with_what_to_install(monkeypatch) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("opentelemetry")
                        else found(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'only1mcp\[otlp\]'"):
        LoggingSettings(otlp_endpoint="http://127.0.0.1:4318/v1/traces")
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        LoggingSettings(otlp_endpoint="grpc://127.0.0.1:4317")
