"""Requests the gateway passes to a client (sampling here) live only as long as the call that caused them:
2,000 of them that the client never answers leave nothing behind in the worker or the stdio host."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.gateway import Gateway
from tests.support.processes import ROOT, stdio_command
from tests.support.rawmcp import ACCEPT, RawMcp
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(300)

CALLS = 2000
AT_ONCE = 200
RSS_TOLERANCE_KB = 40 * 1024  # allocator slack; what leaked per request would be far more than this


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


async def _unanswered_calls(http: aiohttp.ClientSession, mcp: RawMcp, count: int) -> tuple[int, list[Any]]:
    """``count`` calls whose sampling requests are never answered: how many sampling requests reached the
    client, and the final answer of each call. (A stdio child does not say which of one session's calls
    a request belongs to, so each reaches this session on the stream of one of its calls.)"""
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(index: int) -> tuple[int, Any]:
        body = json.dumps({"jsonrpc": "2.0", "id": index, "method": "tools/call",
                           "params": {"name": "files_ask_llm", "arguments": {"prompt": f"p{index}"}}})
        async with slots, http.post(mcp.url, data=body, headers=mcp.headers(Accept=ACCEPT)) as response:
            text = await response.text()
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")] or [
            json.loads(text)]
        return sum(e.get("method") == "sampling/createMessage" for e in events), events[-1]

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return sum(n for n, _ in results), [final for _, final in results]


async def test_requests_no_client_answers_are_forgotten_with_their_calls(launch_gateway, tmp_path: Path) -> None:
    command = stdio_command("feature_server", "--name", "files")
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1}\nbackends:\n"
                      f"  - name: files\n    command: {command[0]}\n    args: {command[1:]}\n    cwd: {ROOT}\n"
                      # every call times out on purpose: the breaker must not turn that into failing fast
                      "    timeouts: {call: 2}\n    breaker: {failures: 10000, error_rate: 1, min_calls: 100000}\n")
    gateway: Gateway = await launch_gateway("--config", str(config))
    status = await gateway.fetch_status()
    worker, host = status["workers"][0]["pid"], status["stdio_host"]["pid"]
    connector = aiohttp.TCPConnector(limit=AT_ONCE)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        mcp = RawMcp(http, gateway.url, keep_alive=True)
        await mcp.initialize(capabilities={"sampling": {}})
        await _unanswered_calls(http, mcp, AT_ONCE)  # warm up: buffers and pools reach their working size
        baseline = {"worker": _rss_kb(worker), "host": _rss_kb(host)}

        relayed, answers = await _unanswered_calls(http, mcp, CALLS)

    assert relayed == CALLS  # every call's sampling request reached the client, which never answered
    assert all(a.get("error", {}).get("code") == -32001 for a in answers), answers[:3]  # each call timed out

    async def nothing_waits() -> bool:
        current = await gateway.fetch_status()
        return (current["workers"][0]["waiting_on_clients"] == 0
                and current["stdio_host"]["waiting_on_clients"] == 0)

    await eventually(nothing_waits, 20, "the worker and the stdio host to forget every unanswered request")
    grown = {"worker": _rss_kb(worker) - baseline["worker"], "host": _rss_kb(host) - baseline["host"]}
    assert grown["worker"] < RSS_TOLERANCE_KB and grown["host"] < RSS_TOLERANCE_KB, grown
