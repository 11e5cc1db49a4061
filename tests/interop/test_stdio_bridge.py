"""The official SDK's stdio_client launching `only1mcp stdio` against a running gateway."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client, types
from mcp.shared.exceptions import MCPError

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import ROOT, stdio_command
from tests.support.sdk import text_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    local = stdio_command("feature_server", "--name", "local")
    folder = tmp_path_factory.mktemp("stdio-bridge")
    config = folder / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n"
                      f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n")
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        yield gateway


async def test_stdio_bridge_list_call_and_sampling(gateway: Gateway, tmp_path: Path) -> None:

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
        assert text_of(await s.call_tool("local_whoami", {})) == "local"
        assert "through the bridge" in text_of(await s.call_tool("local_ask_llm", {"prompt": "p"}))
        await s.call_tool("local_slow", {"seconds": 0.3, "steps": 3}, progress_callback=on_progress)
        assert progress == [1, 2, 3]


async def test_stdio_bridge_carries_2026_07_28(gateway: Gateway, tmp_path: Path) -> None:
    """The SDK's Client in auto mode over stdio: the bridge mirrors the envelope into HTTP headers, so the
    client negotiates 2026-07-28 through it, and sampling comes back as input_required rounds."""

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(role="assistant", model="m",
                                         content=types.TextContent(type="text", text="modern bridge"))

    bridge = StdioServerParameters(command=sys.executable, args=["-m", "only1mcp.cli", "stdio", "--url",
                                                                 gateway.url + "/mcp"],
                                   env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
    async with Client(bridge, sampling_callback=sampling) as client:
        assert client.protocol_version == "2026-07-28"
        assert "local_whoami" in [t.name for t in (await client.list_tools()).tools]
        assert text_of(await client.call_tool("local_whoami", {})) == "local"
        assert "modern bridge" in text_of(await client.call_tool("local_ask_llm", {"prompt": "p"}))
        # A call the client abandons: its notifications/cancelled becomes an aborted POST, which the
        # gateway turns into a cancel at the backend.
        with pytest.raises(MCPError):
            await client.call_tool("local_slow", {"seconds": 30, "tag": "abandoned"}, read_timeout_seconds=0.5)

        async def reached_backend() -> bool:
            report = await client.call_tool("local_cancellations", {})
            return "abandoned" in json.dumps(report.structured_content)

        await eventually(reached_backend, 10, "the backend to see the cancellation", interval=0.2)


class _Lines:
    """The bridge as a process: JSON-RPC lines to its stdin, lines read back from its stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def answer(self, request_id: Any) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), 30)
            assert line, "the bridge closed its stdout"
            message = json.loads(line)
            if message.get("id") == request_id and "method" not in message:
                return message


def _demo_config(port: int) -> str:
    return (f"server: {{port: {port}, workers: 1}}\nbackends:\n"
            f"  - name: demo\n    command: {sys.executable}\n    args: ['-m', 'only1mcp.demo_server']\n")


async def test_stdio_bridge_carries_on_across_a_gateway_restart(launch_gateway, tmp_path: Path) -> None:
    """The restarted gateway does not know the session (a new random secret): the bridge initializes again
    with the client's parameters, unseen, and the call that found the session gone is answered."""
    config = tmp_path / "only1mcp.yaml"
    config.write_text(_demo_config(0))
    gateway = await launch_gateway("--config", str(config))
    port = int(gateway.url.rsplit(":", 1)[1])
    config.write_text(_demo_config(port))  # the restarted gateway comes back where the bridge points
    bridge = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "only1mcp.cli", "stdio", "--url", gateway.url + "/mcp", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    lines = _Lines(bridge)
    try:
        await lines.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "lines", "version": "1"}}})
        assert (await lines.answer(1))["result"]["serverInfo"]["name"] == "only1mcp"
        await lines.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = {"name": "demo_echo", "arguments": {"text": "before"}}
        await lines.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call})
        assert (await lines.answer(2))["result"]["content"][0]["text"] == "before"

        gateway.signal(signal.SIGTERM)
        assert await gateway.exited(30) == 0
        try:
            await launch_gateway("--config", str(config))
        except AssertionError as exc:
            raise AssertionError(f"the gateway could not come back on port {port}; did another process take "
                                 f"it after the first stopped?\n{exc}") from None
        call = {"name": "demo_echo", "arguments": {"text": "after"}}
        await lines.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call})
        assert (await lines.answer(3))["result"]["content"][0]["text"] == "after"
    finally:
        assert bridge.stdin is not None
        bridge.stdin.close()
        assert await asyncio.wait_for(bridge.wait(), 30) == 0
