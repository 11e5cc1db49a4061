"""Shaping the catalog through the official SDK client and a real gateway (2 workers): allow/deny, rename,
description override and fixed arguments for tools and prompts; profiles on /mcp/<name>, /sse/<name> and
/ws/<name>; a role that pins a profile; a reload that reshapes the catalog reaching clients as list_changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import ROOT, stdio_command
from tests.support.rawmcp import ACCEPT, RawMcp
from tests.support.sdk import text_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

SUPPORT_KEY = "support-key-5b0c2d19"


def _backend_yaml(tools: str, prompts: str = "{}") -> str:
    local = stdio_command("feature_server", "--name", "local")
    return (f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n"
            f"    tools: {tools}\n    prompts: {prompts}\n")


SHAPED_TOOLS = ("{allow: [whoami, echo, add, slow, log], deny: [slow], overrides: {"
                "echo: {name: say, description: 'Say the text back.'}, add: {fixed_arguments: {b: 2}}, "
                "log: {fixed_arguments: {volume: 11}}}}")
SHAPED_PROMPTS = ("{overrides: {greet: {name: hello, description: 'Hello to the world.', "
                  "fixed_arguments: {name: World}}}}")
PROFILES = ("profiles:\n  math: {include: ['local_add']}\n  talk: {include: ['local_say', 'local_whoami'], "
            "exclude: ['local_whoami']}\n")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("shaping")
    config = folder / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\n" + PROFILES + "backends:\n"
                      + _backend_yaml(SHAPED_TOOLS, SHAPED_PROMPTS))
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        gateway.wait_backends_up("local")
        yield gateway


class Seen:
    def __init__(self) -> None:
        self.tools_changed = asyncio.Event()

    async def on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.tools_changed.set()


@asynccontextmanager
async def connect(url: str, seen: Seen | None = None) -> AsyncIterator[ClientSession]:
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120))
    async with http, streamable_http_client(url, http_client=http) as (read, write), ClientSession(
            read, write, message_handler=(seen or Seen()).on_message) as session:
        await session.initialize()
        yield session


async def test_allow_deny_rename_and_description_through_the_sdk(gateway: Gateway) -> None:
    async with connect(gateway.url + "/mcp") as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert sorted(tools) == ["local_add", "local_log", "local_say", "local_whoami"]
        assert tools["local_say"].description == "Say the text back."
        assert text_of(await session.call_tool("local_say", {"text": "hi"})) == "hi"
        for hidden in ("local_slow", "local_echo", "local_crash"):  # denied, renamed away, not allowed
            with pytest.raises(MCPError) as refused:
                await session.call_tool(hidden, {"seconds": 0})
            assert refused.value.error.code == -32602 and f"unknown tool '{hidden}'" in refused.value.error.message


async def test_a_fixed_argument_is_out_of_the_schema_injected_and_refused_when_sent(gateway: Gateway) -> None:
    async with connect(gateway.url + "/mcp") as session:
        add = next(t for t in (await session.list_tools()).tools if t.name == "local_add")
        assert list(add.input_schema["properties"]) == ["a"] and add.input_schema["required"] == ["a"]
        assert (await session.call_tool("local_add", {"a": 40})).structured_content == {"sum": 42.0}
        with pytest.raises(MCPError) as refused:
            await session.call_tool("local_add", {"a": 40, "b": 5})
    assert refused.value.error.code == -32602
    assert "argument 'b' is fixed by the gateway's configuration" in refused.value.error.message


async def test_a_prompt_is_renamed_described_and_its_fixed_argument_injected(gateway: Gateway) -> None:
    async with connect(gateway.url + "/mcp") as session:
        prompts = {p.name: p for p in (await session.list_prompts()).prompts}
        assert list(prompts) == ["local_hello"] and prompts["local_hello"].arguments == []
        assert prompts["local_hello"].description == "Hello to the world."
        assert text_of(await session.get_prompt("local_hello")) == "Hello, World!"
        with pytest.raises(MCPError) as refused:
            await session.get_prompt("local_hello", {"name": "Mallory"})
    assert refused.value.error.code == -32602 and "'name'" in refused.value.error.message


async def test_a_profile_serves_its_own_catalog_on_mcp_name(gateway: Gateway) -> None:
    async with connect(gateway.url + "/mcp/math") as session:
        assert [t.name for t in (await session.list_tools()).tools] == ["local_add"]
        assert (await session.call_tool("local_add", {"a": 1})).structured_content == {"sum": 3.0}
        with pytest.raises(MCPError) as refused:
            await session.call_tool("local_whoami", {})
        assert "unknown tool 'local_whoami'" in refused.value.error.message
    async with connect(gateway.url + "/mcp/talk") as session:  # include, minus exclude
        assert [t.name for t in (await session.list_tools()).tools] == ["local_say"]


async def test_a_profile_on_the_legacy_sse_and_websocket_doors(gateway: Gateway) -> None:
    async with sse_client(gateway.url + "/sse/math") as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert [t.name for t in (await session.list_tools()).tools] == ["local_add"]
    async with aiohttp.ClientSession() as http, http.ws_connect(
            gateway.url.replace("http", "ws") + "/ws/math", protocols=("mcp",)) as socket:
        await socket.send_json({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "ws", "version": "1"}}})
        assert "result" in json.loads((await socket.receive(timeout=10)).data)
        await socket.send_json({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        listed = json.loads((await socket.receive(timeout=10)).data)
        assert [t["name"] for t in listed["result"]["tools"]] == ["local_add"]


async def test_a_profile_serves_2026_07_28_requests_too(gateway: Gateway) -> None:
    def modern(request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}
        return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": meta}}

    async with aiohttp.ClientSession() as http:
        listing = modern(1, "tools/list", {})
        async with http.post(gateway.url + "/mcp/math", data=json.dumps(listing), headers={
                "Accept": ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": "2026-07-28",
                "Mcp-Method": "tools/list"}) as response:
            assert response.status == 200
            assert [t["name"] for t in (await response.json())["result"]["tools"]] == ["local_add"]


async def test_an_unknown_profile_is_404_and_a_session_is_unknown_at_another_endpoint(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        nowhere = RawMcp(http, gateway.url)
        nowhere.url = gateway.url + "/mcp/nope"
        status, body, _ = await nowhere.post_raw(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                                             "params": {}}).encode())
        assert status == 404 and "no profile 'nope'" in body["error"]["message"]
        math = RawMcp(http, gateway.url)
        math.url = gateway.url + "/mcp/math"
        await math.initialize()
        math.url = gateway.url + "/mcp"
        status, body, _ = await math.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
        assert status == 404 and "opened at /mcp/math" in body["error"]["message"]


async def test_the_stdio_bridge_reaches_a_profile_by_its_url(gateway: Gateway, tmp_path: Path) -> None:
    bridge = StdioServerParameters(command=sys.executable, args=["-m", "only1mcp.cli", "stdio", "--url",
                                                                 gateway.url + "/mcp/math"],
                                   env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
    async with stdio_client(bridge) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert [t.name for t in (await session.list_tools()).tools] == ["local_add"]
        assert (await session.call_tool("local_add", {"a": 0.5})).structured_content == {"sum": 2.5}


def test_a_fixed_argument_the_tool_lacks_is_logged_once_and_shown_in_status(gateway: Gateway) -> None:
    assert gateway.status()["catalog"]["shaping"] == [{
        "backend": "local", "tool": "log",
        "problem": "fixed_arguments volume are not among the tool's arguments; the override is not applied"}]
    assert gateway.log.count("backend 'local' tool 'log': fixed_arguments volume") == 1


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def test_a_role_that_pins_a_profile(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text(
        "server: {port: 0, workers: 1}\n" + PROFILES
        + f"auth:\n  mode: api_key\n  api_keys:\n    - {{name: sam, sha256: {_sha(SUPPORT_KEY)}, roles: [support]}}\n"
        "rbac:\n  roles:\n    support: {allow: ['tools:*'], profile: talk}\n"
        + "backends:\n" + _backend_yaml(SHAPED_TOOLS))
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession(headers={"X-API-Key": SUPPORT_KEY}) as http:
        pinned = RawMcp(http, gateway.url)
        await pinned.initialize()  # at /mcp: the pinned profile's catalog
        listed = await pinned.call("tools/list")
        assert [t["name"] for t in listed["result"]["tools"]] == ["local_say"]
        other = RawMcp(http, gateway.url)
        other.url = gateway.url + "/mcp/math"
        status, body, _ = await other.post_raw(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                                           "params": {}}).encode())
        assert status == 403 and "connect to /mcp/talk" in body["error"]["message"]
    # The legacy SSE door keeps the stream's caller after initialize, so the pin (and rbac) apply there too
    async with sse_client(gateway.url + "/sse", headers={"X-API-Key": SUPPORT_KEY}) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        assert [t.name for t in (await session.list_tools()).tools] == ["local_say"]


async def test_a_reload_reshapes_the_catalog_and_clients_hear_list_changed(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    head = "server: {port: 0, workers: 1}\n" + PROFILES + "backends:\n"
    config.write_text(head + _backend_yaml(SHAPED_TOOLS))
    gateway = await launch_gateway("--config", str(config))
    gateway.wait_backends_up("local")
    seen, seen_math = Seen(), Seen()
    async with connect(gateway.url + "/mcp", seen) as session, connect(gateway.url + "/mcp/math", seen_math) as math:
        assert "local_say" in [t.name for t in (await session.list_tools()).tools]
        child = [(c["pid"], c["restarts"]) for c in gateway.status()["stdio"]]
        config.write_text(head.replace("include: ['local_add']", "include: ['local_plus']") + _backend_yaml(
            "{deny: [slow], overrides: {echo: {name: repeat}, add: {name: plus, fixed_arguments: {b: 10}}}}"))
        gateway.signal(signal.SIGHUP)
        await asyncio.wait_for(seen.tools_changed.wait(), 20)
        await asyncio.wait_for(seen_math.tools_changed.wait(), 20)

        async def reshaped() -> bool:
            names = [t.name for t in (await session.list_tools()).tools]
            return "local_repeat" in names and "local_say" not in names and "local_plus" in names

        await eventually(reshaped, 20, "the reshaped catalog")
        assert (await session.call_tool("local_plus", {"a": 1})).structured_content == {"sum": 11.0}
        assert [t.name for t in (await math.list_tools()).tools] == ["local_plus"]
        assert [(c["pid"], c["restarts"]) for c in gateway.status()["stdio"]] == child  # shaping restarts nothing
