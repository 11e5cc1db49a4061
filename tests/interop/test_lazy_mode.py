"""The official Python SDK client through `proxy.tools_mode: lazy` (2 workers): tools/list holds the two
meta-tools, `search_tools` finds a tool, and `call_tool` answers exactly as the named tool called directly
(sampling and progress relayed mid-call, the tool's own errors unchanged, an unknown name answered as an
unknown tool). With authentication and rbac on, a tool the caller may not use is never found, and
`call_tool` of it answers like an unknown tool.

Backends: the feature fixture over Streamable HTTP (`web`) and over stdio (`local`).
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import ROOT, FixtureServer, stdio_command
from tests.support.sdk import Sampler, text_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(300)

API_KEY = "lazy-mode-key-for-the-reader-role"


class Client(Sampler):
    """One SDK client's callbacks: sampling (recorded)."""


@asynccontextmanager
async def connect(url: str, client: Client | None = None, headers: dict[str, str] | None = None,
                  ) -> AsyncIterator[ClientSession]:
    client = client or Client()
    # No keep-alive: consecutive requests arrive on fresh connections, spread over both workers.
    http = httpx2.AsyncClient(limits=httpx2.Limits(max_keepalive_connections=0), headers=headers or {},
                              timeout=httpx2.Timeout(30, read=120))
    async with http, streamable_http_client(url, http_client=http) as (read, write), ClientSession(
            read, write, sampling_callback=client.sampling) as session:
        await session.initialize()
        yield session


def _backends(web: FixtureServer) -> str:
    local = stdio_command("feature_server", "--name", "local", "--tools", "3")
    return ("backends:\n"
            f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n"
            f"  - name: web\n    url: {web.url}\n")


@pytest.fixture(scope="module")
def web() -> Iterator[FixtureServer]:
    server = FixtureServer("feature_server", "--name", "web", "--tools", "3")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, web: FixtureServer) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("lazy")
    config = folder / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nproxy: {tools_mode: lazy}\n" + _backends(web))
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        gateway.wait_backends_up("local", "web")
        yield gateway


@pytest.fixture
def url(gateway: Gateway) -> str:
    return gateway.url + "/mcp"


async def _search(session: ClientSession, query: str, limit: int = 5) -> list[dict[str, Any]]:
    result = await session.call_tool("search_tools", {"query": query, "limit": limit})
    assert not result.is_error, result
    assert result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content  # the same JSON for clients without it
    return result.structured_content["tools"]


async def test_the_list_holds_the_two_meta_tools_only(url: str) -> None:
    async with connect(url) as session:
        listed = await session.list_tools()
    assert [tool.name for tool in listed.tools] == ["search_tools", "call_tool"]
    assert listed.next_cursor is None


async def test_search_finds_the_tool_for_a_task_with_its_schema(url: str) -> None:
    async with connect(url) as session:
        found = await _search(session, "ask the language model to write something", limit=3)
    assert [tool["name"] for tool in found][:2] == ["local_ask_llm", "web_ask_llm"] or \
        {"local_ask_llm", "web_ask_llm"} <= {tool["name"] for tool in found}, found
    tool = next(t for t in found if t["name"] == "web_ask_llm")
    assert set(tool) == {"name", "description", "inputSchema"}
    assert tool["inputSchema"]["properties"]["prompt"]["type"] == "string"
    assert tool["inputSchema"]["required"] == ["prompt"]


async def test_call_tool_relays_sampling_mid_call_like_a_direct_call(url: str) -> None:
    through, direct = Client(), Client()
    async with connect(url, through) as session:
        wrapped = await session.call_tool("call_tool", {"name": "web_ask_llm", "arguments": {"prompt": "haiku"}})
    async with connect(url, direct) as session:
        plain = await session.call_tool("web_ask_llm", {"prompt": "haiku"})
    assert through.sampled == direct.sampled == ["haiku"]
    assert wrapped.model_dump() == plain.model_dump()
    assert "sampled: haiku" in text_of(wrapped)


@pytest.mark.parametrize("backend", ["web", "local"])
async def test_call_tool_relays_progress_with_the_clients_token(url: str, backend: str) -> None:
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    async with connect(url) as session:
        result = await session.call_tool("call_tool", {"name": f"{backend}_slow", "arguments": {
            "seconds": 0.3, "steps": 3}}, progress_callback=progress)
    assert not result.is_error, result
    assert seen == [1, 2, 3]


async def test_the_named_tools_error_passes_through_unchanged(url: str) -> None:
    async with connect(url) as session:
        wrapped = await session.call_tool("call_tool", {"name": "web_add", "arguments": {"a": "one", "b": 2}})
        plain = await session.call_tool("web_add", {"a": "one", "b": 2})
    assert wrapped.is_error
    assert wrapped.model_dump() == plain.model_dump()


async def test_an_unknown_name_is_answered_as_an_unknown_tool(url: str) -> None:
    async with connect(url) as session:
        with pytest.raises(MCPError) as wrapped:
            await session.call_tool("call_tool", {"name": "web_no_such_tool", "arguments": {}})
        with pytest.raises(MCPError) as plain:
            await session.call_tool("web_no_such_tool", {})
    assert (wrapped.value.error.code, wrapped.value.error.message) == (plain.value.error.code,
                                                                       plain.value.error.message)
    assert wrapped.value.error.code == -32602
    assert "unknown tool 'web_no_such_tool'" in wrapped.value.error.message


async def test_call_tool_without_a_name_says_what_to_send(url: str) -> None:
    async with connect(url) as session:
        with pytest.raises(MCPError) as refused:
            await session.call_tool("call_tool", {"arguments": {}})
    assert refused.value.error.code == -32602
    assert "call_tool needs a string 'name'" in refused.value.error.message


# ---------------------------------------------------------------- with rbac


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, web: FixtureServer) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("lazy-rbac")
    config = folder / "only1mcp.yaml"
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    config.write_text(
        "server: {port: 0, workers: 2}\nproxy: {tools_mode: lazy}\n"
        f"auth: {{mode: api_key, api_keys: [{{name: reader, sha256: '{digest}', roles: [reader]}}]}}\n"
        "rbac: {roles: {reader: {allow: ['tools:*', 'admin:status'], deny: ['tools:web_ask_llm']}}}\n"
        + _backends(web))
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        gateway.credentials = {"X-API-Key": API_KEY}
        gateway.wait_backends_up("local", "web")
        yield gateway


async def test_a_denied_tool_is_never_found_and_call_tool_answers_as_unknown(guarded: Gateway) -> None:
    async with connect(guarded.url + "/mcp", headers={"X-API-Key": API_KEY}) as session:
        found = [tool["name"] for tool in await _search(session, "ask the language model", limit=50)]
        with pytest.raises(MCPError) as denied:
            await session.call_tool("call_tool", {"name": "web_ask_llm", "arguments": {"prompt": "x"}})
        with pytest.raises(MCPError) as unknown:
            await session.call_tool("call_tool", {"name": "web_no_such_tool", "arguments": {}})
        allowed = await session.call_tool("call_tool", {"name": "local_echo", "arguments": {"text": "hi"}})
    assert "local_ask_llm" in found and "web_ask_llm" not in found, found
    assert denied.value.error.code == unknown.value.error.code == -32602
    assert denied.value.error.message == unknown.value.error.message.replace("web_no_such_tool", "web_ask_llm")
    assert text_of(allowed) == "hi"


# ---------------------------------------------------------------- expose_found


class Watcher(Client):
    def __init__(self) -> None:
        super().__init__()
        self.list_changed = anyio.Event()

    async def on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.list_changed.set()


@pytest.fixture(scope="module")
def exposing(tmp_path_factory: pytest.TempPathFactory, web: FixtureServer) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("lazy-expose")
    config = folder / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nproxy: {tools_mode: lazy, lazy: {expose_found: true}}\n"
                      + _backends(web))
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        gateway.wait_backends_up("local", "web")
        yield gateway


async def test_found_tools_join_that_sessions_list_on_every_worker(exposing: Gateway) -> None:
    url = exposing.url + "/mcp"
    watcher = Watcher()
    http = httpx2.AsyncClient(limits=httpx2.Limits(max_keepalive_connections=0), timeout=httpx2.Timeout(30, read=120))
    async with http, streamable_http_client(url, http_client=http) as (read, write), ClientSession(
            read, write, sampling_callback=watcher.sampling, message_handler=watcher.on_message) as session:
        await session.initialize()
        assert [tool.name for tool in (await session.list_tools()).tools] == ["search_tools", "call_tool"]
        found = [tool["name"] for tool in await _search(session, "echo text back unchanged", limit=2)]
        with anyio.fail_after(10):
            await watcher.list_changed.wait()
        # no keep-alive: these lists are answered by both workers
        for _ in range(6):
            listed = [tool.name for tool in (await session.list_tools()).tools]
            assert listed == ["search_tools", "call_tool", *found], listed
        direct = await session.call_tool(found[0], {"text": "straight"})
    async with connect(url) as other:  # another session's list is its own
        assert [tool.name for tool in (await other.list_tools()).tools] == ["search_tools", "call_tool"]
    assert {"local_echo", "web_echo"} == set(found)
    assert text_of(direct) == "straight"


async def test_a_reload_to_lazy_announces_and_serves_the_new_list(launch_gateway: Any, tmp_path: Path,
                                                                   web: FixtureServer) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1}\n" + _backends(web))
    gateway = await launch_gateway("--config", str(config))
    watcher = Watcher()
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120))
    async with http, streamable_http_client(gateway.url + "/mcp", http_client=http) as (read, write), \
            ClientSession(read, write, message_handler=watcher.on_message) as session:
        await session.initialize()

        async def both_up() -> list[str] | None:
            names = [tool.name for tool in (await session.list_tools()).tools]
            return names if {"local_echo", "web_echo"} <= set(names) else None

        before = await eventually(both_up, 30, "both backends' tools in the list")
        watcher.list_changed = anyio.Event()  # from here on, only the reload can announce a change
        config.write_text("server: {port: 0, workers: 1}\nproxy: {tools_mode: lazy}\n" + _backends(web))
        gateway.signal(signal.SIGHUP)
        with anyio.fail_after(20):
            await watcher.list_changed.wait()
        after = [tool.name for tool in (await session.list_tools()).tools]
    assert "web_echo" in before and after == ["search_tools", "call_tool"]


async def test_a_profile_in_lazy_mode_beside_a_full_catalog(tmp_path: Path, web: FixtureServer,
                                                            launch_gateway: Any) -> None:
    """``profiles.<name>.tools_mode`` overrides ``proxy.tools_mode`` at that profile's endpoint only, and its
    search finds only what the profile shows."""
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\n"
                      "profiles:\n  agent: {include: [web], tools_mode: lazy}\n" + _backends(web))
    gateway = await launch_gateway("--config", str(config))
    await anyio.to_thread.run_sync(gateway.wait_backends_up, "local", "web")
    async with connect(gateway.url + "/mcp") as whole:
        names = [tool.name for tool in (await whole.list_tools()).tools]
    assert "web_echo" in names and "local_echo" in names and "search_tools" not in names
    async with connect(gateway.url + "/mcp/agent") as agent:
        assert [tool.name for tool in (await agent.list_tools()).tools] == ["search_tools", "call_tool"]
        found = [tool["name"] for tool in await _search(agent, "echo the text back", 10)]
        assert "web_echo" in found and not [name for name in found if name.startswith("local_")], found
        result = await agent.call_tool("call_tool", {"name": "web_echo", "arguments": {"text": "hi"}})
        assert not result.is_error and "hi" in text_of(result)
        with pytest.raises(MCPError) as hidden:  # what the profile does not show is unknown here
            await agent.call_tool("call_tool", {"name": "local_echo", "arguments": {"text": "hi"}})
        with pytest.raises(MCPError) as unknown:
            await agent.call_tool("call_tool", {"name": "no_such_tool", "arguments": {}})
    assert hidden.value.error.code == unknown.value.error.code
    assert hidden.value.error.message == unknown.value.error.message.replace("no_such_tool", "local_echo")
