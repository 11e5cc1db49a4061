"""A shared stdio child (in the stdio host) that writes a line over backends[].max_event_bytes is stopped,
and the call fails at once with an error naming the setting instead of waiting for its timeout."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import ROOT
from tests.support.rawmcp import RawMcp

pytestmark = pytest.mark.timeout(120)
MiB = 1024 * 1024


async def test_a_shared_childs_overlong_line_stops_it_and_fails_the_call_naming_the_limit(
        launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1, standby_workers: 0}\nbackends:\n"
                      f"  - name: std\n    command: {sys.executable}\n"
                      f"    args: ['-m', 'tests.fixtures.hostile_stdio']\n    cwd: {ROOT}\n"
                      "    timeouts: {call: 60}\n")
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        answer = await mcp.call("tools/call", {"name": "std_huge_line", "arguments": {}})
    message = answer["error"]["message"]
    assert f"wrote a line over {16 * MiB} bytes and was stopped" in message, answer
    assert "raise backends[].max_event_bytes" in message
    assert "did not answer" not in message  # not left to the call's 60 s timeout
    await gateway.log_line(r"backend 'std' wrote a line over \d+ bytes and was stopped")
