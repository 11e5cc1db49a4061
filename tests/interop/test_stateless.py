"""The 2026-07-28 (stateless) era through the gateway, with handshake-era backends behind it.

The official SDK's ``Client(url)`` in its default auto mode probes ``server/discover``; the gateway answers,
so the client speaks 2026-07-28: no session, every request self-contained. A backend's sampling request
mid-call comes back to the client as an ``input_required`` result, and the client's retry (on a fresh
connection, so possibly another worker) reaches the backend call that waits for it.

One gateway serves the module's tests; the test that stops its gateway starts its own.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import ROOT, FixtureServer, stdio_command
from tests.support.rawmcp import ACCEPT, pinned
from tests.support.sdk import Sampler, text_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

MODERN = "2026-07-28"
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"


@pytest.fixture(scope="module")
def web() -> Iterator[FixtureServer]:
    server = FixtureServer("feature_server", "--name", "web", "--tools", "3")
    yield server
    server.close()


def _config(web: FixtureServer) -> str:
    local = stdio_command("feature_server", "--name", "local")
    return ("server: {port: 0, workers: 2}\n"
            "backends:\n"
            f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n"
            f"  - name: web\n    url: {web.url}\n")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, web: FixtureServer) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("stateless")
    config = folder / "only1mcp.yaml"
    config.write_text(_config(web))
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        gateway.wait_backends_up("local", "web")
        yield gateway


class Callbacks(Sampler):
    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"answer": "forty-two"})


@asynccontextmanager
async def auto_client(url: str, callbacks: Callbacks) -> AsyncIterator[Client]:
    # No keep-alive: each request (and each input-required retry) is a new connection, spread over workers.
    http = httpx2.AsyncClient(limits=httpx2.Limits(max_keepalive_connections=0),
                              timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(url, http_client=http), sampling_callback=callbacks.sampling,
                            elicitation_callback=callbacks.elicitation) as client:
        yield client


async def test_sdk_auto_mode_negotiates_2026_without_a_handshake(gateway: Gateway) -> None:
    async with auto_client(gateway.url + "/mcp", Callbacks()) as client:
        assert client.protocol_version == MODERN
        assert client.session.discover_result is not None
        assert client.session.initialize_result is None  # no handshake happened


async def test_sdk_auto_mode_lists_and_calls_legacy_backends(gateway: Gateway) -> None:
    async with auto_client(gateway.url + "/mcp", Callbacks()) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert {"local_whoami", "web_whoami", "local_ask_llm", "web_ask_llm"} <= set(names)
        assert text_of(await client.call_tool("local_whoami", {})) == "local"
        assert text_of(await client.call_tool("web_whoami", {})) == "web"
        assert text_of(await client.call_tool("web_echo", {"text": "héllo"})) == "héllo"


async def test_sdk_auto_mode_gets_a_prompt(gateway: Gateway) -> None:
    async with auto_client(gateway.url + "/mcp", Callbacks()) as client:
        prompt = await client.get_prompt("local_greet", {"name": "Ada"})
    assert "Ada" in str(prompt.messages[0].content)


async def test_sdk_auto_mode_sampling_mid_call_through_input_required(gateway: Gateway) -> None:
    """Over stdio and over HTTP, answered through input_required and a retry, many times over so that
    retries land on both workers."""
    callbacks = Callbacks()
    async with auto_client(gateway.url + "/mcp", callbacks) as client:
        for index in range(6):
            backend = ("local", "web")[index % 2]
            result = await client.call_tool(f"{backend}_ask_llm", {"prompt": f"q{index}"})
            assert text_of(result) == f"sampled: q{index}", result
    assert callbacks.sampled == [f"q{index}" for index in range(6)]


async def test_sdk_auto_mode_elicitation_through_input_required(gateway: Gateway) -> None:
    async with auto_client(gateway.url + "/mcp", Callbacks()) as client:
        assert "forty-two" in text_of(await client.call_tool("local_ask_user", {"question": "answer?"}))


async def test_sdk_auto_mode_progress(gateway: Gateway) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with auto_client(gateway.url + "/mcp", Callbacks()) as client:
        await client.call_tool("local_slow", {"seconds": 0.3, "steps": 3}, progress_callback=on_progress)
    assert progress == [1, 2, 3]


async def test_sdk_auto_mode_unknown_tool_is_an_error(gateway: Gateway) -> None:
    async with auto_client(gateway.url + "/mcp", Callbacks()) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("nope_tool", {})
    assert refused.value.error.code == -32602 and "unknown tool 'nope_tool'" in refused.value.error.message


def _modern(method: str, params: dict[str, Any] | None = None, request_id: int = 1,
            capabilities: dict[str, Any] | None = None, version: str = MODERN) -> dict[str, Any]:
    params = dict(params or {})
    params["_meta"] = {VERSION_KEY: version, CAPABILITIES_KEY: capabilities or {}}
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def _headers(message: dict[str, Any], version: str = MODERN) -> dict[str, str]:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": version,
               "Mcp-Method": message["method"]}
    name = message["params"].get("name", message["params"].get("uri"))
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


async def _post(http: aiohttp.ClientSession, url: str, message: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with http.post(url + "/mcp", data=json.dumps(message), headers=headers) as response:
        text = await response.text()
        if response.headers.get("Content-Type", "").startswith("text/event-stream"):
            return response.status, [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        return response.status, json.loads(text) if text else None


async def test_retry_on_another_worker_reaches_the_waiting_backend_call(gateway: Gateway) -> None:
    first, first_pid = await pinned(gateway.url)
    second, second_pid = await pinned(gateway.url, avoid=first_pid)
    assert second_pid != first_pid
    try:
        call = _modern("tools/call", {"name": "web_ask_llm", "arguments": {"prompt": "cross"}},
                       capabilities={"sampling": {}})
        status, body = await _post(first, gateway.url, call, _headers(call))
        assert status == 200, body
        result = body["result"]
        assert result["resultType"] == "input_required", result
        [(key, request)] = result["inputRequests"].items()
        assert request["method"] == "sampling/createMessage"
        retry = _modern("tools/call", {"name": "web_ask_llm", "arguments": {"prompt": "cross"},
                                       "requestState": result["requestState"],
                                       "inputResponses": {key: {"role": "assistant", "model": "m", "content": {
                                           "type": "text", "text": "answered elsewhere"}}}},
                        request_id=2, capabilities={"sampling": {}})
        status, body = await _post(second, gateway.url, retry, _headers(retry))
        assert status == 200, body
        assert body["id"] == 2
        assert body["result"]["resultType"] == "complete"
        assert "answered elsewhere" in json.dumps(body["result"]["content"])
        # The call is over: its state cannot be replayed.
        status, body = await _post(first, gateway.url, retry, _headers(retry))
        assert status == 400 and body["error"]["code"] == -32602 and "call again" in body["error"]["message"]
    finally:
        await first.close()
        await second.close()


async def test_closing_the_response_stream_cancels_the_backend_call(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        slow = _modern("tools/call", {"name": "local_slow", "arguments": {"seconds": 30, "tag": "gone"}})
        with pytest.raises(TimeoutError):  # the client gives up and closes the connection
            await asyncio.wait_for(_post(http, gateway.url, slow, _headers(slow)), 1.0)

        async def reached_backend() -> bool:
            report = _modern("tools/call", {"name": "local_cancellations", "arguments": {}}, request_id=2)
            status, body = await _post(http, gateway.url, report, _headers(report))
            assert status == 200, body
            return "gone" in json.dumps(body["result"])

        await eventually(reached_backend, 10, "the backend to see the cancellation", interval=0.2)


def _mismatched_name() -> tuple[Any, dict[str, str]]:
    message = _modern("tools/call", {"name": "local_whoami"})
    return message, {**_headers(message), "Mcp-Name": "local_echo"}


def _no_envelope() -> tuple[Any, dict[str, str]]:
    message = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}
    return message, _headers({**message, "params": {}})


def _with_headers(message: dict[str, Any], version: str = MODERN) -> tuple[Any, dict[str, str]]:
    return message, _headers(message, version)


def _batch() -> tuple[Any, dict[str, str]]:
    message = _modern("tools/list")
    return [message], _headers(message)


@pytest.mark.parametrize(("request_", "status", "code", "message"), [
    # Unknown version: -32022 naming every version the gateway speaks (both eras; checked below).
    (lambda: _with_headers(_modern("tools/list", version="2099-01-01"), "2099-01-01"), 400, -32022, ""),
    (_mismatched_name, 400, -32020, "Mcp-Name"),  # a header disagrees with the body
    (_no_envelope, 400, -32602, VERSION_KEY),  # the envelope is missing under a 2026-07-28 header
    (lambda: _with_headers(_modern("ping")), 404, -32601, "2026-07-28"),  # a handshake-era method: what replaced it
    (lambda: _with_headers(_modern("tools/call", {"name": "local_whoami", "requestState": "Zm9yZ2Vk"})), 400,
     -32602, "requestState"),  # a forged requestState
    (_batch, 400, -32600, ""),
], ids=["unknown-version", "header-mismatch", "no-envelope", "handshake-method", "forged-request-state", "batch"])
async def test_stateless_bad_input(gateway: Gateway, request_: Any, status: int, code: int, message: str) -> None:
    body, headers = request_()
    async with aiohttp.ClientSession() as http:
        got, answer = await _post(http, gateway.url, body, headers)
    assert got == status and answer["error"]["code"] == code and message in answer["error"]["message"], answer
    if code == -32022:
        assert MODERN in answer["error"]["data"]["supported"] and "2025-06-18" in answer["error"]["data"]["supported"]


async def test_both_eras_on_one_endpoint(gateway: Gateway) -> None:
    """A handshake-era session still works next to the 2026-07-28 requests."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    async with aiohttp.ClientSession() as http, http.post(gateway.url + "/mcp", json=init,
                                                          headers={"Accept": ACCEPT}) as response:
        assert response.status == 200 and "Mcp-Session-Id" in response.headers


async def test_discover_and_listen(launch_gateway, tmp_path: Path, web: FixtureServer) -> None:
    # Its own gateway: the listener sees a tool added to the gateway's stdio child, and the gateway is stopped.
    config = tmp_path / "only1mcp.yaml"
    config.write_text(_config(web))
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        message = _modern("server/discover")
        status, body = await _post(http, gateway.url, message, _headers(message))
        assert status == 200, body
        result = body["result"]
        assert result["supportedVersions"][0] == MODERN and "2024-11-05" in result["supportedVersions"]
        assert result["resultType"] == "complete" and "ttlMs" in result and "cacheScope" in result
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "only1mcp"
        assert "tools" in result["capabilities"]

        listen = _modern("subscriptions/listen", {"notifications": {
            "toolsListChanged": True, "resourceSubscriptions": ["feature://counter"]}}, request_id="listen-1")
        async with http.post(gateway.url + "/mcp", data=json.dumps(listen), headers=_headers(listen)) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = _sse(response)
            ack = await asyncio.wait_for(anext(events), 10)
            assert ack["method"] == "notifications/subscriptions/acknowledged"
            assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-1"
            honored = ack["params"]["notifications"]
            assert honored == {"toolsListChanged": True, "resourceSubscriptions": ["feature://counter"]}
            # The subscribed resource changing at its backend reaches the listener.
            touch = _modern("tools/call", {"name": "local_touch", "arguments": {"uri": "feature://counter"}},
                            request_id=8)
            status, body = await _post(http, gateway.url, touch, _headers(touch))
            assert status == 200, body
            event = await asyncio.wait_for(anext(events), 10)
            assert event["method"] == "notifications/resources/updated"
            assert event["params"]["uri"] == "feature://counter"
            assert event["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-1"
            # A backend adding a tool reaches the listener as a list change (prompts were not asked for).
            call = _modern("tools/call", {"name": "local_add_tool", "arguments": {"name": "fresh"}}, request_id=9)
            status, body = await _post(http, gateway.url, call, _headers(call))
            assert status == 200, body
            event = await asyncio.wait_for(anext(events), 10)
            assert event["method"] == "notifications/tools/list_changed"
            assert event["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-1"
            # A stopping gateway ends the stream gracefully: the listen request's result, then the end.
            gateway.signal(signal.SIGTERM)
            final = await asyncio.wait_for(anext(events), 10)
            assert final["id"] == "listen-1" and final["result"]["resultType"] == "complete"
            assert final["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-1"
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(anext(events), 10)
        assert await gateway.exited() == 0


async def _sse(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data: "):
            yield json.loads(line[6:])
