"""Request heads and bodies past the limits, byte by byte against the real gateway: the same refusal
whichever server would have answered, one log line per malformed request, and slow bodies that aiohttp
reads cut off like those the worker's own server reads.

aiohttp names itself in a ``Server`` header and the worker's own server sends none.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.rawhttp import RawConnection, connect

pytestmark = pytest.mark.timeout(120)

CONFIG = """
server:
  port: 0
  workers: 1
  standby_workers: 0
  body_timeout: 1
backends:
  - name: demo
    command: {python}
    args: ["-m", "only1mcp.demo_server"]
"""


@pytest.fixture
def gateway(start_gateway, tmp_path: Path):
    config = tmp_path / "only1mcp.yaml"
    config.write_text(CONFIG.format(python=sys.executable))
    return start_gateway("--config", str(config))


def _head(connection: RawConnection, method: str, path: str, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {connection.host}", "Accept: application/json, text/event-stream",
             "Content-Type: application/json", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_PATHS = [("POST", "/mcp"), ("GET", "/health"), ("GET", "/sse"), ("GET", "/mcp")]  # the first: our server's


@pytest.mark.parametrize(("method", "path"), _PATHS)
async def test_a_second_host_header_is_refused(gateway, method: str, path: str) -> None:
    async with connect(gateway.url) as connection:
        body = b"{}" if method == "POST" else b""
        await connection.send(_head(connection, method, path, "Host: evil.example", f"Content-Length: {len(body)}")
                              + body)
        response = await connection.response()
        assert response.status == 400 and response.body == b"more than one Host header"
        assert await connection.closed_by_server()


@pytest.mark.parametrize(("method", "path"), _PATHS)
async def test_too_many_headers_get_the_same_refusal_whoever_serves_the_path(gateway, method: str, path: str) -> None:
    fields = [f"X-Filler-{n}: {n}" for n in range(100)]
    async with connect(gateway.url) as connection:
        await connection.send(_head(connection, method, path, "Content-Length: 0", *fields))
        response = await connection.response()
        assert response.status == 431 and b"(server.max_header_count)" in response.body
        assert "server" not in response.headers  # refused before aiohttp would have seen it
        assert await connection.closed_by_server()


async def test_aiohttp_keeps_the_same_header_limit_on_a_connection_it_serves(gateway) -> None:
    async with connect(gateway.url) as connection:
        await connection.send(connection.get_bytes("/health"))
        assert (await connection.response()).headers["server"].startswith("Python")
        fields = [f"X-Filler-{n}: {n}" for n in range(100)]
        await connection.send(_head(connection, "GET", "/health", *fields))
        response = await connection.response()
        assert response.status == 400 and b"Too many headers" in response.body  # aiohttp has no 431


@pytest.mark.parametrize(("request_bytes", "logged"), [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",  # TLS on a plain HTTP port
     "refused 400: malformed HTTP request: Invalid method"),
    (b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     "refused 400: malformed HTTP request: Duplicate Content-Length"),
    # handed to aiohttp at the end of its head; aiohttp finds the body's chunk size broken
    (b"POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "refused 400: malformed HTTP request: Invalid character in chunk size"),
])
async def test_a_malformed_request_is_logged_in_one_line(gateway, request_bytes: bytes, logged: str) -> None:
    mark = gateway.mark()
    async with connect(gateway.url) as connection:
        await connection.send(request_bytes)
        assert (await connection.response()).status == 400
    async with connect(gateway.url) as marker:  # a refusal of a known kind, logged after the one under test
        await marker.send(b"GET /end-of-test HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assert (await marker.response()).status == 400
    await gateway.log_line("refused 400: more than one Host header", after=mark)
    lines = gateway.lines_since(mark)
    end = next(i for i, line in enumerate(lines) if "more than one Host header" in line)
    worker_lines = [line for line in lines[:end] if "worker-" in line]
    assert len(worker_lines) == 1 and logged in worker_lines[0] and " INFO " in worker_lines[0], worker_lines


async def test_a_chunked_body_that_aiohttp_reads_too_slowly_gets_408(gateway) -> None:
    async with connect(gateway.url) as connection:
        await connection.send(_head(connection, "POST", "/mcp", "Transfer-Encoding: chunked") + b"a\r\n{\"jsonrpc\"")
        response = await connection.response()
        assert response.status == 408 and "server.body_timeout" in response.json()["error"]["message"]
        assert "server" in response.headers  # aiohttp carried this one
        assert await connection.closed_by_server()


async def test_a_legacy_post_body_sent_too_slowly_gets_408(gateway) -> None:
    async with aiohttp.ClientSession() as http, http.get(gateway.url + "/sse") as stream:
        endpoint = b""
        while not endpoint.startswith(b"data: "):
            endpoint = await asyncio.wait_for(stream.content.readline(), 10)
        async with connect(gateway.url) as connection:
            path = endpoint[6:].strip().decode()
            await connection.send(_head(connection, "POST", path, "Content-Length: 100") + b'{"jsonrpc":')
            response = await connection.response()
            assert response.status == 408 and "server.body_timeout" in response.json()["error"]["message"]
            assert await connection.closed_by_server()
