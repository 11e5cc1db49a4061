"""Bad input at the front door: precise HTTP status and JSON-RPC error, and no worker harmed."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.rawmcp import RawMcp
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.timeout(120)

CONFIG = """
server:
  port: 0
  workers: 2
  max_body_size: 65536
backends:
  - name: demo
    command: {python}
    args: ["-m", "only1mcp.demo_server"]
    timeouts: {{call: 1}}
"""


@pytest.fixture
def gateway(start_gateway, tmp_path: Path):
    config = tmp_path / "only1mcp.yaml"
    config.write_text(CONFIG.format(python=sys.executable))
    return start_gateway("--config", str(config))


async def test_bad_requests_get_precise_errors(gateway) -> None:
    pids_before = set(gateway.worker_pids())
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()

        status, body, _ = await mcp.post_raw(b'{"jsonrpc": "2.0", "id": 1, "method": ')
        assert status == 400 and body["error"]["code"] == -32700 and "not valid JSON" in body["error"]["message"]

        status, body, _ = await mcp.post_raw(b'{"id": 1, "method": "tools/list"}')
        assert status == 400 and body["error"]["code"] == -32600 and '"jsonrpc"' in body["error"]["message"]

        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"ping"}', Accept="text/html")
        assert status == 406 and "Accept must list" in body["error"]["message"]

        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                                             **{"Content-Type": "text/plain"})
        assert status == 415 and "Content-Type must be application/json" in body["error"]["message"]

        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                                             **{"MCP-Protocol-Version": "1999-01-01"})
        assert status == 400 and "unsupported MCP-Protocol-Version '1999-01-01'" in body["error"]["message"]

        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                                             Origin="https://evil.example")
        assert status == 403 and "Origin 'https://evil.example' is not allowed" in body["error"]["message"]

        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"ping"}', Host="evil.example")
        assert status == 403 and "DNS-rebinding" in body["error"]["message"]

        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "demo_echo", "arguments": {"text": "x" * 70000}}}).encode()
        status, body, _ = await mcp.post_raw(big)
        assert status == 413 and "65536-byte limit (server.max_body_size)" in body["error"]["message"]

        body = await mcp.call("tools/call", {"name": "no_such_tool", "arguments": {}})
        assert body["error"]["code"] == -32602 and "unknown tool 'no_such_tool'" in body["error"]["message"]

        body = await mcp.call("tools/list", {"cursor": "not-a-cursor"})
        assert body["error"]["code"] == -32602 and "invalid cursor" in body["error"]["message"]

        body = await mcp.call("nonexistent/method")
        assert body["error"]["code"] == -32601

        # The demo backend's call timeout is 1 s; a 3 s countdown must fail naming the backend and limit.
        body = await mcp.call("tools/call", {"name": "demo_countdown", "arguments": {"n": 3, "interval": 1}})
        assert body["error"]["code"] == -32001
        assert body["error"]["message"] == "backend 'demo' did not answer tools/call within 1s (its timeouts.call)"
        body = await mcp.call("tools/call", {"name": "demo_add", "arguments": {"a": 1, "b": 2}})
        assert body["result"]["structuredContent"] == {"sum": 3}
    assert set(gateway.worker_pids()) == pids_before  # no worker died


async def test_session_errors(gateway) -> None:
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
        assert status == 400 and "missing Mcp-Session-Id" in body["error"]["message"]

        mcp.session_id = "not-a-session"
        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
        assert status == 404 and "session" in body["error"]["message"]

        await mcp.initialize()
        forged = mcp.session_id[:-3] + ("abc" if not mcp.session_id.endswith("abc") else "xyz")
        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
                                             **{"Mcp-Session-Id": forged})
        assert status == 404 and "unknown session id" in body["error"]["message"]

        async with http.delete(mcp.url, headers=mcp.headers()) as response:
            assert response.status == 200
        # Revoked on every worker: new connections spread over both, so try several. DELETE answers once the
        # revocation is back from the supervisor, which publishes it to all workers at once; allow the
        # other worker that same moment.
        async def revoked_everywhere() -> bool:
            for _ in range(10):
                status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
                if status != 404:
                    return False
                assert "terminated" in body["error"]["message"]
            return True

        await async_wait_until(revoked_everywhere, 1.0, "the revocation on every worker")


async def test_batches_only_for_2025_03_26(gateway) -> None:
    async with aiohttp.ClientSession() as http:
        old = RawMcp(http, gateway.url)
        await old.initialize(version="2025-03-26")
        batch = b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"},' \
                b'{"jsonrpc":"2.0","method":"notifications/initialized"}]'
        status, body, _ = await old.post_raw(batch)
        assert status == 200 and [r["id"] for r in body] == [1, 2] and body[1]["result"]["tools"]
        new = RawMcp(http, gateway.url)
        await new.initialize(version="2025-06-18")
        status, body, _ = await new.post_raw(batch)
        assert status == 400 and "batches are not allowed in protocol version 2025-06-18" in body["error"]["message"]


async def test_allowed_origins_apply_on_reload(start_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\n")
    gateway = start_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        status, _, _ = await mcp.post_raw(ping, Origin="https://app.example.com")
        assert status == 403
        config.write_text("server: {port: 0, workers: 2, allowed_origins: ['https://app.example.com']}\n")
        gateway.signal(signal.SIGHUP)

        async def allowed_everywhere() -> bool:
            for _ in range(6):
                status, _, _ = await mcp.post_raw(ping, Origin="https://app.example.com")
                if status != 200:
                    return False
            return True

        await async_wait_until(allowed_everywhere, 5, "the new allowed origin on every worker")
