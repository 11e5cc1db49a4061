"""Bad input at the front door: precise HTTP status and JSON-RPC error, and no worker harmed.

One gateway serves the module's tests of bad input (none of them changes it); each test opens its own
session. A test that reloads the config starts its own gateway.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.rawmcp import RawMcp, pinned
from tests.support.waiting import eventually

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
PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
BIG = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                  "params": {"name": "demo_echo", "arguments": {"text": "x" * 70000}}}).encode()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("front-door")
    config = folder / "only1mcp.yaml"
    config.write_text(CONFIG.format(python=sys.executable))
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        yield gateway


@asynccontextmanager
async def _session(gateway: Gateway, version: str = "2025-06-18") -> AsyncIterator[RawMcp]:
    """An initialized session; on the way out, no worker died of what the test sent."""
    pids = await gateway.fetch_worker_pids()
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize(version=version)
        yield mcp
    assert await gateway.fetch_worker_pids() == pids, "a worker died"


@pytest.mark.parametrize(("body", "headers", "status", "code", "message"), [
    (b'{"jsonrpc": "2.0", "id": 1, "method": ', {}, 400, -32700, "not valid JSON"),
    (b'{"id": 1, "method": "tools/list"}', {}, 400, -32600, '"jsonrpc"'),
    (PING, {"Accept": "text/html"}, 406, None, "Accept must list"),
    (PING, {"Content-Type": "text/plain"}, 415, None, "Content-Type must be application/json"),
    (PING, {"MCP-Protocol-Version": "1999-01-01"}, 400, None, "unsupported MCP-Protocol-Version '1999-01-01'"),
    (PING, {"Origin": "https://evil.example"}, 403, None, "Origin 'https://evil.example' is not allowed"),
    (PING, {"Host": "evil.example"}, 403, None, "DNS-rebinding"),
    (BIG, {}, 413, None, "65536-byte limit (server.max_body_size)"),
], ids=["not-json", "no-jsonrpc-member", "accept", "content-type", "protocol-version", "origin", "host",
        "body-too-big"])
async def test_a_bad_request_gets_a_precise_error(gateway: Gateway, body: bytes, headers: dict[str, str],
                                                  status: int, code: int | None, message: str) -> None:
    async with _session(gateway) as mcp:
        got, answer, _ = await mcp.post_raw(body, **headers)
    assert got == status, (got, answer)
    assert message in answer["error"]["message"], answer
    if code is not None:
        assert answer["error"]["code"] == code, answer


@pytest.mark.parametrize(("method", "params", "code", "message"), [
    ("tools/call", {"name": "no_such_tool", "arguments": {}}, -32602, "unknown tool 'no_such_tool'"),
    ("tools/list", {"cursor": "not-a-cursor"}, -32602, "invalid cursor"),
    ("nonexistent/method", None, -32601, ""),
], ids=["unknown-tool", "foreign-cursor", "unknown-method"])
async def test_a_bad_call_gets_a_precise_json_rpc_error(gateway: Gateway, method: str,
                                                        params: dict[str, Any] | None, code: int,
                                                        message: str) -> None:
    async with _session(gateway) as mcp:
        body = await mcp.call(method, params)
    assert body["error"]["code"] == code and message in body["error"]["message"], body


async def test_a_call_past_the_backends_timeout_names_the_backend_and_limit(gateway: Gateway) -> None:
    async with _session(gateway) as mcp:
        # The demo backend's call timeout is 1 s; a 3 s countdown must fail naming the backend and limit.
        body = await mcp.call("tools/call", {"name": "demo_countdown", "arguments": {"n": 3, "interval": 1}})
        assert body["error"]["code"] == -32001
        assert body["error"]["message"] == "backend 'demo' did not answer tools/call within 1s (its timeouts.call)"
        body = await mcp.call("tools/call", {"name": "demo_add", "arguments": {"a": 1, "b": 2}})
        assert body["result"]["structuredContent"] == {"sum": 3}  # and the backend serves the next call


@pytest.mark.parametrize(("session_id", "status", "message"), [
    (None, 400, "missing Mcp-Session-Id"),
    ("not-a-session", 404, "session"),
    ("forged", 404, "unknown session id"),
])
async def test_a_request_without_a_valid_session_is_refused(gateway: Gateway, session_id: str | None, status: int,
                                                            message: str) -> None:
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        if session_id == "forged":
            await mcp.initialize()
            assert mcp.session_id is not None
            session_id = mcp.session_id[:-3] + ("abc" if not mcp.session_id.endswith("abc") else "xyz")
        mcp.session_id = session_id
        got, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
    assert got == status and message in body["error"]["message"], (got, body)


async def test_a_deleted_session_is_refused_on_every_worker(gateway: Gateway) -> None:
    http, _ = await pinned(gateway.url)  # keep-alive: the worker that answers DELETE also gets the next request
    async with http:
        mcp = RawMcp(http, gateway.url, keep_alive=True)
        await mcp.initialize()
        async with http.delete(mcp.url, headers=mcp.headers()) as response:
            assert response.status == 200
        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
        assert status == 404 and "terminated" in body["error"]["message"], (status, body)

    # New connections spread over both workers, so try several. DELETE answers once the revocation is back
    # from the supervisor, which publishes it to every worker at once (bench.state_propagation: a few ms);
    # the deadline only catches a worker that never learns it.
    async def revoked_everywhere() -> bool:
        async with aiohttp.ClientSession() as fresh:
            other = RawMcp(fresh, gateway.url)
            other.session_id = mcp.session_id
            for _ in range(10):
                status, body, _ = await other.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
                if status != 404:
                    return False
                assert "terminated" in body["error"]["message"], body
        return True

    await eventually(revoked_everywhere, 5, "the revocation on every worker")


async def test_batches_only_for_2025_03_26(gateway: Gateway) -> None:
    batch = b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"},' \
            b'{"jsonrpc":"2.0","method":"notifications/initialized"}]'
    async with _session(gateway, version="2025-03-26") as old:
        status, body, _ = await old.post_raw(batch)
    assert status == 200 and [r["id"] for r in body] == [1, 2] and body[1]["result"]["tools"], body
    async with _session(gateway, version="2025-06-18") as new:
        status, body, _ = await new.post_raw(batch)
    assert status == 400 and "batches are not allowed in protocol version 2025-06-18" in body["error"]["message"]


async def test_allowed_origins_apply_on_reload(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\n")
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        status, _, _ = await mcp.post_raw(PING, Origin="https://app.example.com")
        assert status == 403
        config.write_text("server: {port: 0, workers: 2, allowed_origins: ['https://app.example.com']}\n")
        gateway.signal(signal.SIGHUP)

        async def allowed_everywhere() -> bool:
            for _ in range(6):
                status, _, _ = await mcp.post_raw(PING, Origin="https://app.example.com")
                if status != 200:
                    return False
            return True

        await eventually(allowed_everywhere, 5, "the new allowed origin on every worker")
