"""Generated and mutated JSON-RPC traffic on every door of a real gateway (2 workers, real backends).

Invariants (tests/support/fuzzing.py): never a 5xx; exactly one answer per request, carrying its id
exactly; none for a valid notification or response; one error for anything invalid; and afterwards no
worker restarted and a normal call works. Bounded for CI (derandomized, so a run repeats); the long run
is ``python -m bench.fuzz --minutes 10`` (bench/README.md).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.doors import HttpDoor, LegacySseDoor, WebSocketDoor
from tests.support.fuzzing import bodies, expected_answers, problems
from tests.support.gateway import Gateway
from tests.support.processes import FixtureServer
from tests.support.rawhttp import connect

pytestmark = pytest.mark.timeout(300)

EXAMPLES = 1_000  # per door: about 40 s for all five on the 2-core box
CONFIG = """
server: {{port: 0, workers: 2}}
backends:
  - name: demo
    command: {python}
    args: ["-m", "only1mcp.demo_server"]
    timeouts: {{call: 1}}
  - name: nest
    url: {url}
    timeouts: {{call: 2}}
"""
DOORS = ["fast", "aiohttp", "fast-no-session", "legacy", "ws"]


class Doors:
    """The gateway's doors, opened on one event loop that the synchronous hypothesis test drives."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.runner = asyncio.Runner()
        self.doors: dict[str, Any] = {}
        self.http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        url = self.gateway.url
        self.http = aiohttp.ClientSession()
        session = await session_id(url, "2025-03-26")  # the version that allows batches
        self.doors = {"fast": HttpDoor(url, session), "aiohttp": HttpDoor(url, session, chunked=True),
                      "fast-no-session": HttpDoor(url), "legacy": await LegacySseDoor(self.http, url).open(),
                      "ws": await WebSocketDoor(self.http, url).open("2025-03-26")}

    async def close(self) -> None:
        for door in self.doors.values():
            if hasattr(door, "close"):
                await door.close()
        if self.http is not None:
            await self.http.close()


async def session_id(url: str, version: str) -> str:
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}}).encode()
    async with connect(url) as connection:
        await connection.send(connection.post_bytes(body))
        response = await connection.response()
    assert response.status == 200, response.body
    return response.headers["mcp-session-id"]


def start(home: Any) -> tuple[FixtureServer, Gateway]:
    backend = FixtureServer("nesting_server")
    config = home / "only1mcp.yaml"
    config.write_text(CONFIG.format(python=sys.executable, url=backend.url))
    gateway = Gateway("--config", str(config), cwd=home)
    gateway.wait_ready()
    return backend, gateway


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    backend, gateway = start(tmp_path_factory.mktemp("fuzz"))
    opened = Doors(gateway)
    try:
        opened.runner.run(opened.open())
        opened.before = workers(gateway)  # type: ignore[attr-defined]
        yield opened
        opened.runner.run(opened.close())
    finally:
        opened.runner.close()
        gateway.close()
        backend.close()


def workers(gateway: Gateway) -> list[tuple[int, int]]:
    """(pid, restarts) of every worker slot."""
    return sorted((w["pid"], w["restarts"]) for w in gateway.status()["workers"])


def exchange(doors: Doors, name: str, body: bytes) -> list[str]:
    door = doors.doors[name]
    http = isinstance(door, HttpDoor)
    if name == "ws":  # a text frame is UTF-8 by definition: what is not goes as the text it decodes to
        body = body.decode("utf-8", "replace").encode()
    batches = "whole" if name in ("legacy", "fast-no-session") else "items"
    reply = doors.runner.run(door.send(body, expected_answers(body, batches)))
    if name == "ws" and b'"initialize"' in body:
        # An initialize on a WebSocket renews its session (and the version batches depend on).
        doors.runner.run(door.initialize("2025-03-26"))
    return problems(body, reply, http, batches)


@pytest.mark.parametrize("name", DOORS)
def test_generated_messages_get_exactly_their_answers(doors: Doors, name: str) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(bodies())
    def check(body: bytes) -> None:
        found = exchange(doors, name, body)
        assert not found, f"{name}: {body[:300]!r}: {found}"

    check()


def test_nothing_was_disturbed(doors: Doors) -> None:
    """Runs after the generated traffic: the same workers, never restarted, and a normal call works."""
    assert workers(doors.gateway) == doors.before  # type: ignore[attr-defined]
    call = json.dumps({"jsonrpc": "2.0", "id": "after", "method": "tools/call",
                       "params": {"name": "demo_echo", "arguments": {"text": "still here"}}}).encode()
    for name in DOORS[:2] + DOORS[3:]:
        reply = doors.runner.run(doors.doors[name].send(call))
        assert [a["result"]["content"][0]["text"] for a in reply.answers] == ["still here"], (name, reply)
    assert "Traceback (most recent call last)" not in doors.gateway.log, doors.gateway.log
