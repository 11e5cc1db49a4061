"""Logs and traces through a real gateway: JSON lines that name the request they belong to (in the worker
and in the supervisor), a client's W3C trace context continued to an HTTP and a stdio backend, and spans
exported over OTLP to a receiver that decodes what a collector would.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.test_outbound_oauth import SECRET, backend_entry, control, guarded_backend, provider_with_client
from tests.support.processes import ROOT, FixtureServer, stdio_command
from tests.support.rawmcp import RawMcp
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def text(answer: dict[str, Any]) -> str:
    assert "result" in answer, answer
    return str(answer["result"]["content"][0]["text"])


def records(lines: list[str]) -> list[dict[str, Any]]:
    """Every line parsed as a JSON object with the fields every line has (a line that is not fails here)."""
    parsed = []
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "process", "slot", "pid", "logger", "message"} <= record.keys(), record
        parsed.append(record)
    return parsed


async def tools_call(mcp: RawMcp, name: str, request_id: int = 1, meta: dict[str, Any] | None = None,
                     **headers: str) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": {}}
    if meta is not None:
        params["_meta"] = meta
    return dict(await mcp.call("tools/call", params, request_id, **headers))


async def test_json_lines_name_one_request_in_the_worker_and_the_supervisor(launch_gateway, tmp_path: Path) -> None:
    """A call whose backend refuses the gateway's token twice: the worker asks the supervisor for a new one
    (the supervisor logs that) and then fails the call (the worker logs that, and its access line). Every
    line the call caused, in both processes, is JSON and carries its one request id."""
    provider = await provider_with_client()
    backend = await guarded_backend(provider, "tools")
    try:
        config = tmp_path / "only1mcp.yaml"
        config.write_text("server: {port: 0, workers: 2, standby_workers: 0}\n"
                          "logging: {format: json, access_log: true, access_log_sample: 1}\n"
                          f"backends:\n{backend_entry(provider, 'tools', backend)}")
        gateway = await launch_gateway("--config", str(config), env={"GW_CLIENT_SECRET": SECRET})
        records(gateway.lines_since(0))  # from the first line on, whatever the process
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            assert text(await tools_call(mcp, "tools_whoami")) == "tools"
            await control(backend, "POST", "/admin/reject", {"count": 2})
            mark = gateway.mark()
            answer = await tools_call(mcp, "tools_whoami", request_id=7)
        assert "refused the gateway's access token" in answer["error"]["message"], answer
        await gateway.log_line(r"refused the gateway's access token: fetching a new one", after=mark)
        await gateway.log_line(r"tools/call 7 failed", after=mark)
        await gateway.log_line(r'"rpc_method":"tools/call"', after=mark)

        lines = records(gateway.lines_since(mark))
        (access,) = [r for r in lines if r["logger"] == "only1mcp.access"]
        request_id = access["request_id"]
        assert re.fullmatch(r"[0-9a-f]{6}-[0-9a-f]+", request_id), access
        assert access["status"] == 200 and access["rpc_error"] < 0 and access["http_method"] == "POST", access
        assert [r for r in lines if r.get("request_id") != request_id] == []  # nothing else happened meanwhile
        (asked,) = [r for r in lines if r["process"] == "supervisor"]
        assert "refused the gateway's access token" in asked["message"] and asked["slot"] is None, asked
        (failed,) = [r for r in lines if "tools/call 7 failed" in r["message"]]
        assert failed["process"] == "worker" and failed["slot"] in (0, 1) and failed["backend"] == "tools", failed
        assert re.fullmatch(r"[0-9a-f]{32}", failed["session"]), failed
        assert failed["session"] not in str(mcp.session_id)  # a hash, not the session id
    finally:
        await backend.aclose()
        await provider.aclose()


@pytest.fixture
async def traced_backends() -> AsyncIterator[FixtureServer]:
    web_backend = await FixtureServer.launch("feature_server", "--name", "web", "--record")
    try:
        yield web_backend
    finally:
        await web_backend.aclose()


def _traced_config(path: Path, web_backend: FixtureServer, extra: str = "") -> None:
    local = stdio_command("feature_server", "--name", "local")
    path.write_text("server: {port: 0, workers: 1, standby_workers: 0}\n" + extra +
                    "backends:\n"
                    f"  - name: web\n    url: {web_backend.url}\n    health: {{enabled: false}}\n"
                    f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n")


async def _traceparents_seen(backend: FixtureServer) -> list[tuple[str, str | None]]:
    """(traceparent, tracestate) of every POST that reached the backend with a traceparent header."""
    seen = await control(backend, "GET", "/admin/seen")
    found = []
    for request in seen["requests"]:
        headers = {name.lower(): value for name, value in request["headers"]}
        if request["method"] == "POST" and "traceparent" in headers:
            found.append((headers["traceparent"], headers.get("tracestate")))
    return found


async def test_a_clients_trace_context_is_continued_to_http_and_stdio_backends(
        launch_gateway, tmp_path: Path, traced_backends: FixtureServer) -> None:
    web_backend = traced_backends
    config = tmp_path / "only1mcp.yaml"
    _traced_config(config, web_backend)
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        await control(web_backend, "POST", "/admin/forget")

        # Untraced: nothing is invented.
        assert json.loads(text(await tools_call(mcp, "web_meta"))).get("traceparent") is None
        assert await _traceparents_seen(web_backend) == []

        # HTTP: the header, with a new parent id in the same trace, the flags and tracestate kept; _meta too.
        meta = json.loads(text(await tools_call(mcp, "web_meta", traceparent=f"00-{TRACE}-{PARENT}-01",
                                                tracestate="vendor=abc")))
        ((header, state),) = await _traceparents_seen(web_backend)
        trace_id, parent_id, flags = TRACEPARENT.fullmatch(header).groups()  # type: ignore[union-attr]
        assert (trace_id, flags, state) == (TRACE, "01", "vendor=abc") and parent_id != PARENT, header
        assert meta["traceparent"] == header and meta["tracestate"] == "vendor=abc", meta

        # stdio: in _meta, with the client's own _meta kept (the flags unsampled, as the client sent them).
        own = {"com.example/tag": "kept", "progressToken": "client-token"}
        meta = json.loads(text(await tools_call(mcp, "local_meta", meta=own, traceparent=f"00-{TRACE}-{PARENT}-00")))
        trace_id, parent_id, flags = TRACEPARENT.fullmatch(meta["traceparent"]).groups()  # type: ignore[union-attr]
        assert (trace_id, flags) == (TRACE, "00") and parent_id != PARENT, meta
        assert meta["com.example/tag"] == "kept" and "tracestate" not in meta, meta

        # A client that puts its context in _meta (SEP-414) rather than a header is continued the same way.
        other = "0af7651916cd43dd8448eb211c80319c"
        meta = json.loads(text(await tools_call(mcp, "local_meta", meta={"traceparent": f"00-{other}-{PARENT}-01"})))
        assert meta["traceparent"].startswith(f"00-{other}-") and PARENT not in meta["traceparent"], meta

        # A malformed context is ignored (the call is served, untraced) and the client's _meta passes as it is.
        meta = json.loads(text(await tools_call(mcp, "local_meta", meta={"traceparent": "00-nonsense-01"},
                                                traceparent="00-00000000000000000000000000000000-" + PARENT + "-01")))
        assert meta["traceparent"] == "00-nonsense-01", meta

        # Text lines carry the request id too: the client's own X-Request-Id when it sent a plain one.
        mark = gateway.mark()
        answer = await tools_call(mcp, "no_such_tool", request_id=9, **{"X-Request-Id": "client-req-1"})
        assert answer["error"]["code"] == -32602, answer
    line = (await gateway.log_line(r"tools/call 9 failed", after=mark)).string
    assert line.endswith(" rid=client-req-1") and re.match(r"\S+Z worker-0\[\d+\] INFO ", line), line


class _Collector:
    """An OTLP/HTTP receiver: decodes each protobuf export request and keeps its spans."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1/traces"

    async def _export(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: PLC0415
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        assert request.content_type == "application/x-protobuf", request.content_type
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: (a.value.string_value or a.value.int_value) for a in span.attributes}
                    self.spans.append({"trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                                       "parent_id": span.parent_span_id.hex(), "name": span.name,
                                       "kind": span.kind, "attributes": attributes, "resource": resource,
                                       "collector_key": request.headers.get("x-api-key")})
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def span_of(self, trace_id: str) -> dict[str, Any] | None:
        return next((span for span in self.spans if span["trace_id"] == trace_id), None)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def test_spans_are_exported_over_otlp_when_configured(launch_gateway, tmp_path: Path,
                                                            traced_backends: FixtureServer) -> None:
    web_backend = traced_backends
    collector = _Collector()
    await collector.start()
    try:
        config = tmp_path / "only1mcp.yaml"
        _traced_config(config, web_backend, f"logging: {{otlp_endpoint: '{collector.url}', service_name: gw-test, "
                       "otlp_headers: {x-api-key: '${COLLECTOR_KEY}'}}\n")
        gateway = await launch_gateway("--config", str(config), env={"COLLECTOR_KEY": "collector-key-1"})
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            await control(web_backend, "POST", "/admin/forget")
            assert text(await tools_call(mcp, "web_whoami", traceparent=f"00-{TRACE}-{PARENT}-01")) == "web"
            answer = await tools_call(mcp, "no_such_tool", request_id=3)  # no client context: a trace of its own

        span = await eventually(lambda: collector.span_of(TRACE), 20, "the call's span at the collector")
        assert span["parent_id"] == PARENT and span["name"] == "tools/call", span
        assert span["attributes"]["only1mcp.backend"] == "web" and span["attributes"]["mcp.method.name"] == \
            "tools/call", span
        assert span["resource"]["service.name"] == "gw-test" and span["collector_key"] == "collector-key-1", span
        ((header, _),) = await _traceparents_seen(web_backend)
        assert header == f"00-{TRACE}-{span['span_id']}-01"  # the backend's parent is the exported span

        assert answer["error"]["code"] == -32602, answer
        root = await eventually(lambda: next((s for s in collector.spans if s["attributes"].get(
            "rpc.jsonrpc.error_code") == -32602), None), 20, "the failed call's span")
        assert root["parent_id"] == "" and root["trace_id"] != TRACE, root
        assert "collector-key-1" not in gateway.log  # an export header is a secret
    finally:
        await collector.close()
