"""A backend outage under load writes a few lines per cause, not one per failed call."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from only1mcp.logs import BURST, WINDOW
from tests.support.processes import FixtureServer
from tests.support.rawmcp import RawMcp
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.timeout(120)

CONFIG = """
server: {{port: 0, workers: 2}}
backends:
  - name: gone
    url: {url}
"""
FAILED = re.compile(r"worker-(\d)\[\d+\] INFO tools/call \d+ failed: ")


async def test_repeated_failures_are_logged_a_few_times_then_counted(start_gateway, tmp_path: Path) -> None:
    backend = FixtureServer("nesting_server")
    config = tmp_path / "only1mcp.yaml"
    config.write_text(CONFIG.format(url=backend.url))
    gateway = start_gateway("--config", str(config))
    backend.close()  # the outage
    call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "gone_echo", "arguments": {"text": "x"}}}).encode()
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        calls = 400
        for start in range(0, calls, 40):
            replies = await asyncio.gather(*(mcp.post_raw(call) for _ in range(start, start + 40)))
            assert all(status == 200 and "error" in body for status, body, _ in replies), replies[0]
        written = [m for m in map(FAILED.search, gateway.lines) if m]
        # Each worker writes at most BURST lines per window (and the flood may straddle two windows).
        assert 0 < len(written) <= 2 * 2 * BURST < calls, "\n".join(gateway.lines)

        async def counted() -> bool:
            # A window's count is written with the worker's next line after the window ends: keep failing.
            await mcp.post_raw(call)
            return "suppressed" in gateway.log

        await async_wait_until(counted, WINDOW + 20, "a line counting the suppressed repeats", interval=0.5)
    summary = re.search(r"suppressed (\d+) more lines like this in 10s: tools/call \d+ failed: .*gone", gateway.log)
    assert summary is not None, gateway.log
    assert int(summary.group(1)) > 0
