"""only1mcp.http's server against slow clients, in this process on loopback (tests/support/httpserver.py):
every time limit, the connection cap, the drain, and the aiohttp bridge's check of what it relies on."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from only1mcp.http.aiohttp_bridge import require
from only1mcp.http.limits import HttpLimits, connection_budget
from only1mcp.http.server import HttpServer
from tests.support.httpserver import SHORT, EchoHandler, connect, held, post, serve
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- slow clients


async def test_a_head_not_sent_in_time_gets_408_and_is_closed() -> None:
    async with serve(EchoHandler(SHORT)) as (server, port), connect(port) as client:
        await client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Le")
        status, _, body = await client.response()
        assert status == 408 and b"server.header_timeout" in body
        assert await client.closed() and not server.connections


async def test_a_connection_that_sends_nothing_is_closed() -> None:
    async with serve(EchoHandler(SHORT)) as (server, port), connect(port) as client:
        assert await client.closed() and not server.connections


async def test_a_body_not_sent_in_time_gets_408_and_is_closed() -> None:
    async with serve(EchoHandler(SHORT)) as (server, port), connect(port) as client:
        await client.send(post("/echo", b"x" * 1000)[:-10])
        status, _, body = await client.response()
        assert status == 408 and b"server.body_timeout" in body
        assert await client.closed() and not server.connections


async def test_a_body_trickled_a_byte_at_a_time_is_still_cut_off() -> None:
    async with serve(EchoHandler(SHORT)) as (_, port), connect(port) as client:
        data = post("/echo", b"x" * 1000)
        await client.send(data[:-1000])

        async def trickle() -> None:
            for byte in data[-1000:]:
                await client.send(bytes([byte]))
                await asyncio.sleep(0.02)

        feeding = asyncio.create_task(trickle())
        status, _, _ = await client.response()
        assert status == 408
        feeding.cancel()


async def test_an_idle_keep_alive_connection_is_closed() -> None:
    async with serve(EchoHandler(SHORT)) as (server, port), connect(port) as client:
        await client.send(post("/echo", b"x"))
        assert (await client.response())[2] == b"x"
        assert await client.closed() and not server.connections


async def test_a_client_that_does_not_read_its_answers_is_cut_off() -> None:
    handler = EchoHandler(SHORT)
    async with serve(handler) as (server, port):
        _, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)  # reads 2 KiB, then stops
        try:
            writer.write(post("/big"))
            await writer.drain()
            await async_wait_until(lambda: _false_when_empty(server), 10, "the unread connection to be closed")
        finally:
            writer.close()


async def _false_when_empty(server: HttpServer) -> bool:
    return not server.connections


# ---------------------------------------------------------------- the connection cap


async def test_at_the_cap_the_oldest_slow_head_makes_room(caplog: pytest.LogCaptureFixture) -> None:
    async with serve(EchoHandler(HttpLimits(max_connections=20)), budget=4) as (server, port):
        attackers = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        for _, writer in attackers:
            writer.write(b"POST /echo HTTP/1.1\r\n")
        await asyncio.gather(*(w.drain() for _, w in attackers))
        async with connect(port) as client:
            await client.send(post("/echo", b"served"))
            assert (await client.response())[2] == b"served"
        assert await attackers[0][0].read() == b""  # the oldest went first
        assert len(server.connections) <= 4
        for _, writer in attackers:
            writer.close()
    capped = [r for r in caplog.records if "connection cap reached" in r.getMessage()]
    assert len(capped) == 1 and "server.max_connections" in capped[0].getMessage()


async def test_at_the_cap_with_every_connection_busy_a_new_one_gets_503() -> None:
    handler = EchoHandler()
    async with serve(handler, budget=2) as (_, port), connect(port) as one, connect(port) as two:
        for client in (one, two):
            await client.send(post("/hold", b"x"))
        await async_wait_until(lambda: held(handler, 2), 10, "both calls to be held")
        async with connect(port) as third:
            status, headers, body = await third.response()
            assert status == 503 and b"server.max_connections" in body and headers["connection"] == "close"
        handler.release.set()
        assert (await one.response())[2] == b"x" and (await two.response())[2] == b"x"



async def test_the_cap_is_clamped_to_the_open_file_budget() -> None:
    assert connection_budget(20_000) == 15_000 and connection_budget(1024) == 768 and connection_budget(300) == 44
    async with serve(EchoHandler(HttpLimits(max_connections=10_000)), budget=50) as (server, _):
        assert server.limits.max_connections == 50


# ---------------------------------------------------------------- drain and the aiohttp bridge


async def test_drain_closes_idle_connections_and_lets_answers_finish() -> None:
    handler = EchoHandler()
    async with serve(handler) as (server, port), connect(port) as idle, connect(port) as busy:
        await idle.send(post("/echo", b"x"))
        await idle.response()
        await busy.send(post("/hold", b"held"))
        await async_wait_until(lambda: held(handler, 2), 10, "the call to be held")
        draining = asyncio.create_task(server.drain(10))
        assert await idle.closed()
        handler.release.set()
        status, headers, body = await busy.response()
        assert status == 200 and body == b"held" and headers["connection"] == "close"
        await draining


async def test_the_bridge_names_a_private_attribute_aiohttp_lost() -> None:
    runner = web.AppRunner(web.Application())
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        require(site, runner.server, runner)  # every attribute the bridge uses is there in the installed aiohttp

        class Server:
            _kwargs: dict[str, object] = {}

        with pytest.raises(RuntimeError, match=r"Server\._connections"):
            require(site, Server())

        class Runner:
            pass

        with pytest.raises(RuntimeError, match=r"Runner\._shutdown_timeout"):
            require(site, runner.server, Runner())
    finally:
        await runner.cleanup()
