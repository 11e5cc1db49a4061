"""The legacy HTTP+SSE and WebSocket front doors, with the official SDK's sse_client and aiohttp.

One gateway serves the whole module; each test opens its own client connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from mcp import ClientSession, types
from mcp.client.sse import sse_client

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import ROOT, stdio_command
from tests.support.rawmcp import pinned
from tests.support.sdk import text_of

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    local = stdio_command("feature_server", "--name", "local")
    folder = tmp_path_factory.mktemp("front-transports")
    config = folder / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n"
                      f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n")
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        yield gateway


async def _sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", model="m",
                                     content=types.TextContent(type="text", text="from the sse client"))


@asynccontextmanager
async def _sse_session(gateway: Gateway) -> AsyncIterator[ClientSession]:
    async with sse_client(gateway.url + "/sse") as (read, write), ClientSession(
        read, write, sampling_callback=_sampling
    ) as session:
        init = await session.initialize()
        assert init.server_info.name == "only1mcp"
        yield session


async def test_sdk_sse_client_lists_and_calls(gateway: Gateway) -> None:
    async with _sse_session(gateway) as session:
        tools = await session.list_tools()
        assert "local_whoami" in [t.name for t in tools.tools]
        assert text_of(await session.call_tool("local_whoami", {})) == "local"


async def test_sdk_sse_client_gets_progress(gateway: Gateway) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with _sse_session(gateway) as session:
        await session.call_tool("local_slow", {"seconds": 0.3, "steps": 3}, progress_callback=on_progress)
    assert progress == [1, 2, 3]


async def test_sdk_sse_client_answers_sampling(gateway: Gateway) -> None:
    async with _sse_session(gateway) as session:
        assert "from the sse client" in text_of(await session.call_tool("local_ask_llm", {"prompt": "p"}))


async def _events(response: aiohttp.ClientResponse, count: int) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    kind = "message"
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind, line[6:]))
            kind = "message"
            if len(events) == count:
                return events
    return events


async def test_legacy_post_to_another_worker_reaches_the_stream(gateway) -> None:
    near, near_pid = await pinned(gateway.url)
    far, _ = await pinned(gateway.url, avoid=near_pid)
    try:
        async with near.get(gateway.url + "/sse", headers={"Accept": "text/event-stream"}) as stream:
            (kind, endpoint), = await asyncio.wait_for(_events(stream, 1), 10)
            assert kind == "endpoint" and endpoint.startswith("/messages?session_id=")
            initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
            for message in (initialize, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}):
                async with far.post(gateway.url + endpoint, json=message) as response:
                    assert response.status == 202  # answered on the stream, by the worker that holds it
            answers = [json.loads(data) for _, data in await asyncio.wait_for(_events(stream, 2), 10)]
        assert answers[0]["result"]["protocolVersion"] == "2024-11-05"
        assert "local_whoami" in [t["name"] for t in answers[1]["result"]["tools"]]
        async with far.post(gateway.url + "/messages?session_id=not-a-session", json={
                "jsonrpc": "2.0", "id": 3, "method": "ping"}) as response:
            assert response.status == 404
            assert "session" in (await response.json())["error"]["message"]
    finally:
        await near.close()
        await far.close()


class _Socket:
    """A WebSocket to /ws; frames that are not the awaited answer are kept in ``seen``."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.seen: list[dict[str, Any]] = []

    async def answer(self, request_id: int | None) -> dict[str, Any]:
        while True:
            message = json.loads((await asyncio.wait_for(self.socket.receive(), 10)).data)
            if message.get("id") == request_id:
                return message
            self.seen.append(message)

    async def initialize(self) -> None:
        await self.socket.send_json({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "ws", "version": "1"}}})
        assert (await self.answer(1))["result"]["serverInfo"]["name"] == "only1mcp"
        await self.socket.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})


@asynccontextmanager
async def _websocket(gateway: Gateway) -> AsyncIterator[_Socket]:
    async with aiohttp.ClientSession() as http, http.ws_connect(gateway.url.replace("http", "ws") + "/ws",
                                                                 protocols=("mcp",)) as socket:
        assert socket.protocol == "mcp"
        yield _Socket(socket)


async def test_websocket_answers_a_frame_that_is_not_json_and_stays_open(gateway: Gateway) -> None:
    async with _websocket(gateway) as ws:
        await ws.socket.send_str("this is not json")
        error = await ws.answer(None)
        assert error["error"]["code"] == -32700
        await ws.initialize()  # the same socket goes on serving


async def test_websocket_lists_and_calls_with_progress_frames(gateway: Gateway) -> None:
    async with _websocket(gateway) as ws:
        await ws.initialize()
        await ws.socket.send_json({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert "local_whoami" in [t["name"] for t in (await ws.answer(2))["result"]["tools"]]
        await ws.socket.send_json({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "local_slow", "arguments": {"seconds": 0.3, "steps": 3}, "_meta": {"progressToken": "w"}}})
        result = await ws.answer(3)
    assert result["result"]["content"][0]["text"].startswith("slept")
    assert [m["params"]["progressToken"] for m in ws.seen if m.get("method") == "notifications/progress"] == \
        ["w"] * 3  # notifications arrive as frames before the result


async def test_websocket_closes_on_a_binary_frame(gateway: Gateway) -> None:
    async with _websocket(gateway) as ws:
        await ws.initialize()
        await ws.socket.send_bytes(b"\x00binary")
        closing = await asyncio.wait_for(ws.socket.receive(), 10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.socket.close_code == aiohttp.WSCloseCode.UNSUPPORTED_DATA
