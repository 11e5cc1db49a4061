"""The worker's HTTP/1.1 fast path for POST /mcp and its hand-over to aiohttp, byte by byte on one socket.

aiohttp names itself in a ``Server`` header and the fast path sends none, so each test can tell which
server answered a request. One gateway serves the module, each test on its own connections; the test that
stops its gateway starts its own.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.rawhttp import INITIALIZE, RawConnection, connect, rpc
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)

CONFIG = """
server:
  port: 0
  workers: 1
  max_body_size: 65536
backends:
  - name: demo
    command: {python}
    args: ["-m", "only1mcp.demo_server"]
"""
MODERN = "2026-07-28"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("fast-path")
    config = folder / "only1mcp.yaml"
    config.write_text(CONFIG.format(python=sys.executable))
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        yield gateway


def _fast(headers: dict[str, str]) -> bool:
    return "server" not in headers


async def _session(connection: RawConnection) -> str:
    await connection.send(connection.post_bytes(INITIALIZE))
    response = await connection.response()
    assert response.status == 200 and _fast(response.headers), response.headers
    session = response.headers["mcp-session-id"]
    await connection.send(connection.post_bytes(b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
                                                session=session))
    assert (await connection.response()).status == 202
    return session


def _echo(request_id: int, text: str) -> bytes:
    return rpc(request_id, "tools/call", {"name": "demo_echo", "arguments": {"text": text}})


async def test_one_connection_moves_to_aiohttp_for_other_requests(gateway) -> None:
    async with connect(gateway.url) as connection:
        session = await _session(connection)
        await connection.send(connection.post_bytes(_echo(1, "fast"), session=session))
        response = await connection.response()
        assert response.status == 200 and _fast(response.headers)
        assert response.json() == {"jsonrpc": "2.0", "id": 1,
                                   "result": {"content": [{"type": "text", "text": "fast"}]}}
        assert response.headers["content-type"] == "application/json" and "date" in response.headers

        await connection.send(connection.get_bytes("/health"))
        response = await connection.response()
        assert response.status == 200 and response.headers["server"].startswith("Python")

        # The connection now belongs to aiohttp, which serves the same POST just as well.
        await connection.send(connection.post_bytes(_echo(2, "after"), session=session))
        response = await connection.response()
        assert response.status == 200 and not _fast(response.headers)
        assert response.json()["result"]["content"][0]["text"] == "after"


async def test_pipelined_requests_are_answered_in_order(gateway) -> None:
    async with connect(gateway.url) as connection:
        session = await _session(connection)
        slow = rpc(1, "tools/call", {"name": "demo_countdown", "arguments": {"n": 3, "interval": 0.1}})
        await connection.send(connection.post_bytes(slow, session=session)
                              + connection.post_bytes(_echo(2, "second"), session=session)
                              + connection.post_bytes(rpc(3, "ping"), session=session)
                              + connection.get_bytes("/health"))
        first, second, third, health = [await connection.response() for _ in range(4)]
        assert first.json()["id"] == 1 and "counted down from 3" in first.json()["result"]["content"][0]["text"]
        assert second.json()["id"] == 2 and second.json()["result"]["content"][0]["text"] == "second"
        assert third.json() == {"jsonrpc": "2.0", "id": 3, "result": {}}
        assert all(_fast(r.headers) for r in (first, second, third))
        assert health.status == 200 and not _fast(health.headers)


async def test_chunked_body_is_served_by_aiohttp(gateway) -> None:
    async with connect(gateway.url) as connection:
        session = await _session(connection)
        body = _echo(5, "chunked")
        head = (f"POST /mcp HTTP/1.1\r\nHost: {connection.host}\r\nAccept: application/json, text/event-stream\r\n"
                f"Content-Type: application/json\r\nMcp-Session-Id: {session}\r\nTransfer-Encoding: chunked\r\n\r\n")
        await connection.send(head.encode() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        response = await connection.response()
        assert response.status == 200 and not _fast(response.headers)
        assert response.json()["result"]["content"][0]["text"] == "chunked"


async def test_progress_turns_the_answer_into_a_chunked_event_stream(gateway) -> None:
    async with connect(gateway.url) as connection:
        session = await _session(connection)
        call = rpc(7, "tools/call", {"name": "demo_countdown", "arguments": {"n": 3, "interval": 0.05},
                                     "_meta": {"progressToken": "tok-7"}})
        await connection.send(connection.post_bytes(call, session=session))
        response = await connection.response()
        assert response.status == 200 and _fast(response.headers)
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["transfer-encoding"] == "chunked"
        events = response.events()
        progress = [e["params"]["progress"] for e in events if e.get("method") == "notifications/progress"]
        assert progress == [1, 2, 3] and {e["params"]["progressToken"] for e in events[:-1]} == {"tok-7"}
        assert events[-1]["id"] == 7 and "counted down from 3" in events[-1]["result"]["content"][0]["text"]

        # The stream ended cleanly, so the connection serves the next request.
        await connection.send(connection.post_bytes(rpc(8, "ping"), session=session))
        assert (await connection.response()).json() == {"jsonrpc": "2.0", "id": 8, "result": {}}


async def test_connection_close_is_honoured(gateway) -> None:
    async with connect(gateway.url) as connection:
        await connection.send(connection.post_bytes(INITIALIZE, Connection="close"))
        response = await connection.response()
        assert response.status == 200 and response.headers["connection"] == "close" and _fast(response.headers)
        assert await connection.closed_by_server()


async def test_a_2026_message_is_handed_to_the_stateless_door(gateway) -> None:
    async with connect(gateway.url) as connection:
        discover = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {
            "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                      "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
        await connection.send(connection.post_bytes(discover, **{"MCP-Protocol-Version": MODERN,
                                                                 "Mcp-Method": "server/discover"}))
        response = await connection.response()
        assert response.status == 200 and not _fast(response.headers), response.body
        assert response.json()["result"]["supportedVersions"][0] == MODERN


async def test_broken_http_is_refused_and_harms_no_one(gateway) -> None:
    worker = set(await gateway.fetch_worker_pids())
    async with connect(gateway.url) as bystander:
        session = await _session(bystander)

        async with connect(gateway.url) as garbage:
            await garbage.send(b"POST /mcp HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
            response = await garbage.response()
            assert response.status == 400 and b"malformed HTTP request" in response.body
            assert await garbage.closed_by_server()

        async with connect(gateway.url) as huge:
            await huge.send(b"POST /mcp HTTP/1.1\r\nX-Filler: " + b"x" * 70000)
            response = await huge.response()
            assert response.status == 431 and b"request head over" in response.body

        async with connect(gateway.url) as big:
            await big.send(big.post_bytes(_echo(1, "x" * 70000), session=session))
            response = await big.response()
            assert response.status == 413 and "65536-byte limit" in response.json()["error"]["message"]

        await bystander.send(bystander.post_bytes(_echo(9, "still here"), session=session))
        response = await bystander.response()
        assert response.json()["result"]["content"][0]["text"] == "still here" and _fast(response.headers)
        assert set(await gateway.fetch_worker_pids()) == worker


async def test_sigterm_lets_a_fast_path_call_finish_then_closes(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text(CONFIG.format(python=sys.executable))
    gateway = await launch_gateway("--config", str(config))  # its own: this test stops it
    async with connect(gateway.url) as busy, connect(gateway.url) as idle:
        session = await _session(busy)
        await _session(idle)
        slow = rpc(4, "tools/call", {"name": "demo_countdown", "arguments": {"n": 10, "interval": 0.1}})
        await busy.send(busy.post_bytes(slow, session=session))

        async def slow_call_in_flight() -> bool:  # the /health probe is itself one request in flight
            return (await gateway.fetch("/health"))[1]["in_flight"] >= 2

        await eventually(slow_call_in_flight, 10, "the slow call to be in flight")
        gateway.signal(signal.SIGTERM)
        assert await idle.closed_by_server()  # an idle keep-alive connection is closed at once
        response = await busy.response()
        assert response.status == 200 and response.headers["connection"] == "close" and _fast(response.headers)
        assert "counted down from 10" in response.json()["result"]["content"][0]["text"]
        assert await busy.closed_by_server()
        assert await gateway.exited(30) == 0
