"""An HTTP backend that dies while streaming a call's answer fails that call at once, naming the backend,
instead of leaving it to its timeouts.call."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import FixtureServer
from tests.support.rawmcp import ACCEPT, RawMcp

pytestmark = pytest.mark.timeout(120)

CALL_TIMEOUT = 60  # what the call would wait without the fix; the test's own deadline is well under it


async def test_a_backend_dying_mid_answer_fails_the_call_at_once(launch_gateway, tmp_path: Path) -> None:
    backend = await FixtureServer.launch("feature_server", "--name", "web")
    try:
        config = tmp_path / "only1mcp.yaml"
        config.write_text(f"server: {{port: 0, workers: 1}}\nbackends:\n  - name: web\n    url: {backend.url}\n"
                          f"    timeouts: {{call: {CALL_TIMEOUT}}}\n")
        gateway = await launch_gateway("--config", str(config))
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                "name": "web_slow", "arguments": {"seconds": 30, "steps": 30},
                "_meta": {"progressToken": "p"}}})
            async with http.post(mcp.url, data=body, headers=mcp.headers(Accept=ACCEPT)) as response:
                first = await asyncio.wait_for(response.content.readline(), 20)  # progress: the answer streams
                assert first.startswith(b"data: "), first
                os.killpg(backend.process.pid, signal.SIGKILL)  # the backend dies mid-answer
                rest = await asyncio.wait_for(response.text(), CALL_TIMEOUT / 3)
        final = json.loads([line for line in rest.splitlines() if line.startswith("data: ")][-1][6:])
        broke = r"backend 'web' at http://127\.0\.0\.1:\d+/mcp broke off its answer to tools/call: "
        assert final["id"] == 7 and re.match(broke, final["error"]["message"]), final
    finally:
        await backend.aclose()
