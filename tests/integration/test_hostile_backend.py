"""A backend that sends too much, too long, or never stops: each call through the gateway fails with an
error naming the limit, the worker's memory stays bounded, and nothing keeps reading from the backend
once the call is over (tests/fixtures/hostile_server.py counts the answers it is still sending)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.processes import ROOT, FixtureServer
from tests.support.rawmcp import RawMcp
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

MiB = 1024 * 1024
# Before these limits a 500 MB answer took a worker to 1.5 GB. With the defaults (32 MiB per answer,
# 16 MiB per event) a worker holds at most about one answer's worth (twice, while it is joined): measured
# 56 MB idle and at most 88 MB (huge_body) on the 2-core box.
PEAK_BOUND_MB = 160


@pytest.fixture
def hostile():
    servers = [FixtureServer("hostile_server"), FixtureServer("hostile_server", transport="sse"),
               FixtureServer("hostile_server", transport="websocket")]
    yield servers
    for server in servers:
        server.close()


@pytest.fixture
def gateway(start_gateway, tmp_path: Path, hostile: list[FixtureServer]):
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1, standby_workers: 0}\nbackends:\n"
                      f"  - name: bad\n    url: {hostile[0].url}\n    timeouts: {{call: 3}}\n"
                      f"  - name: old\n    url: {hostile[1].url}\n    timeouts: {{call: 3}}\n"
                      f"  - name: ws\n    url: {hostile[2].url}\n    timeouts: {{call: 3}}\n")
    return start_gateway("--config", str(config))


async def _open_answers(server: FixtureServer) -> int:
    stats = server.url.rsplit("/", 1)[0] + "/stats"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, http.get(stats) as response:
        return int(json.loads(await response.read())["open"])


async def _nothing_left_open(server: FixtureServer) -> None:
    async def closed() -> bool:
        return await _open_answers(server) == 0

    await eventually(closed, 15, "the gateway to close every answer it no longer reads")


def _peak_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


async def _call(mcp: RawMcp, tool: str, request_id: int) -> dict[str, Any]:
    return await mcp.call("tools/call", {"name": tool, "arguments": {}}, request_id=request_id)


@pytest.mark.parametrize(("tool", "expected"), [
    ("huge_body", f"backend 'bad' sent more than {32 * MiB} bytes in its answer to tools/call"),
    ("endless_comments", f"backend 'bad' sent more than {32 * MiB} bytes in its answer to tools/call"),
    ("endless_data", f"backend 'bad' sent an SSE event or line over {16 * MiB} bytes"),
    ("no_newline", f"backend 'bad' sent an SSE event or line over {16 * MiB} bytes"),
    ("huge_error", "backend 'bad' answered HTTP 500 to tools/call: it went wrong it went wrong"),
    ("outlive", "backend 'bad' did not answer tools/call within 3s (its timeouts.call)"),
])
async def test_a_hostile_answer_fails_its_call_and_is_closed(gateway, hostile: list[FixtureServer], tool: str,
                                                             expected: str) -> None:
    (worker,) = await gateway.fetch_worker_pids()
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        answer = await _call(mcp, f"bad_{tool}", 1)
        assert expected in answer["error"]["message"], answer
        if "max_" in expected or "sent" in expected:
            setting = "max_event_bytes" if "event" in expected else "max_response_bytes"
            assert f"raise backends[].{setting}" in answer["error"]["message"]
        await _nothing_left_open(hostile[0])
        assert (await _call(mcp, "bad_ok", 2))["result"]["content"][0]["text"] == "ok"  # the backend still serves
    assert _peak_mb(worker) < PEAK_BOUND_MB


async def test_an_answer_is_taken_and_a_stream_left_open_is_closed(gateway, hostile: list[FixtureServer]) -> None:
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        answer = await _call(mcp, "bad_answer_then_linger", 1)
        assert answer["result"]["content"][0]["text"] == "answered"
        await _nothing_left_open(hostile[0])


async def test_a_legacy_stream_event_over_the_limit_ends_that_session(gateway, hostile: list[FixtureServer]) -> None:
    (worker,) = await gateway.fetch_worker_pids()
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        answer = await _call(mcp, "old_huge_event", 1)
        message = answer["error"]["message"]
        assert f"backend 'old' sent an SSE event or line over {16 * MiB} bytes" in message, answer
        assert "raise backends[].max_event_bytes" in message
        await gateway.log_line(r"backend 'old': SSE stream ended: .*max_event_bytes")

        async def served_again() -> bool:  # the next call opens a new stream
            reply = await _call(mcp, "old_ok", 2)
            return reply.get("result", {}).get("content", [{}])[0].get("text") == "ok"

        await eventually(served_again, 15, "the legacy backend to be reachable again", interval=0.2)
    assert _peak_mb(worker) < PEAK_BOUND_MB


async def test_a_websocket_message_over_the_limit_ends_that_session(gateway) -> None:
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        answer = await _call(mcp, "ws_huge_message", 1)
        message = answer["error"]["message"]
        assert f"backend 'ws' sent a WebSocket message over {16 * MiB} bytes" in message, answer
        assert "raise backends[].max_event_bytes" in message


async def test_a_stdio_line_over_the_limit_stops_that_child(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1, standby_workers: 0}\nbackends:\n"
                      f"  - name: std\n    command: {sys.executable}\n"
                      f"    args: ['-m', 'tests.fixtures.hostile_stdio']\n    cwd: {ROOT}\n    per_worker: true\n")
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        answer = await _call(mcp, "std_huge_line", 1)
        message = answer["error"]["message"]
        assert f"backend 'std' wrote a line over {16 * MiB} bytes; it was stopped" in message, answer
        assert "raise backends[].max_event_bytes" in message
