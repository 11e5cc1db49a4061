"""The official SDK's stdio_client launching `only1mcp stdio` against a running gateway."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client, types

from tests.support.processes import ROOT, stdio_command

pytestmark = pytest.mark.timeout(120)


def _text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_stdio_bridge_list_call_and_sampling(start_gateway, tmp_path: Path) -> None:
    local = stdio_command("feature_server", "--name", "local")
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n"
                      f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n")
    gateway = start_gateway("--config", str(config))

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(role="assistant", model="m",
                                         content=types.TextContent(type="text", text="through the bridge"))

    bridge = StdioServerParameters(command=sys.executable, args=["-m", "only1mcp.cli", "stdio", "--url",
                                                                 gateway.url + "/mcp"],
                                   env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with stdio_client(bridge) as (read, write), ClientSession(read, write, sampling_callback=sampling) as s:
        init = await s.initialize()
        assert init.server_info.name == "only1mcp"
        assert "local_whoami" in [t.name for t in (await s.list_tools()).tools]
        assert _text(await s.call_tool("local_whoami", {})) == "local"
        assert "through the bridge" in _text(await s.call_tool("local_ask_llm", {"prompt": "p"}))
        await s.call_tool("local_slow", {"seconds": 0.3, "steps": 3}, progress_callback=on_progress)
        assert progress == [1, 2, 3]
