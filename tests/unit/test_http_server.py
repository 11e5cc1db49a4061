"""only1mcp.http's server on a real loopback socket in this process, with a trivial handler in front of a
real aiohttp server as the fallback: hand-over, pipelining, streamed answers, and every limit.

aiohttp names itself in a ``Server`` header and our server sends none, so a test can tell who answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from only1mcp.http.aiohttp_bridge import AiohttpFallback, require, runner_options
from only1mcp.http.limits import HttpLimits, connection_budget
from only1mcp.http.request import Request
from only1mcp.http.server import HttpServer
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.timeout(60)

SHORT = HttpLimits(header_timeout=0.3, body_timeout=0.3, keepalive_timeout=0.3, send_timeout=0.3)


class Reply:
    def __init__(self, status: int, body: bytes = b"", streamed: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = {"Content-Type": "text/plain"}
        self.streamed = streamed


class EchoHandler:
    """Answers POST /echo (and /stream, /slow, /pass, /big, /hold) with the body it got."""

    routes = frozenset((b"POST", target) for target in (b"/echo", b"/stream", b"/slow", b"/pass", b"/big", b"/hold"))

    def __init__(self, limits: HttpLimits | None = None) -> None:
        self.current = limits or HttpLimits(max_body_size=1 << 20)
        self.bodies: list[bytes | memoryview] = []
        self.release = asyncio.Event()
        self.in_flight = 0

    def limits(self) -> HttpLimits:
        return self.current

    def answer(self, request: Request, body: bytes | memoryview) -> Reply | Coroutine[Any, Any, Reply | None]:
        self.in_flight += 1
        self.bodies.append(body)
        if request.header("x-target") == "/echo":
            return Reply(200, bytes(body))  # at once, as the worker's door answers a refusal
        return self._answer(request, body)

    def finished(self) -> None:
        self.in_flight -= 1

    async def _answer(self, request: Request, body: bytes | memoryview) -> Reply | None:
        target = request.header("x-target")
        if target == "/pass":
            return None
        if target == "/slow":
            await asyncio.sleep(0.2)
        if target == "/hold":
            await self.release.wait()
        if target == "/big":
            return Reply(200, b"x" * (8 << 20))
        if target == "/stream":
            await request.open_stream({"Content-Type": "text/event-stream"})
            await request.write(b"data: one\n\n")
            await request.write(b"data: " + bytes(body) + b"\n\n")
            await request.close_stream()
            return Reply(200, streamed=True)
        return Reply(200, bytes(body))


async def _fallback_answer(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(text=f"aiohttp {request.method} {request.path} {body.decode()}")


@contextlib.asynccontextmanager
async def serve(handler: EchoHandler, budget: int | None = None) -> AsyncIterator[tuple[HttpServer, int]]:
    aiohttp_server = web.Server(_fallback_answer, **runner_options(handler.limits()))
    server = HttpServer(handler, AiohttpFallback(aiohttp_server), budget=budget or 1000)
    server.start()
    listener = await asyncio.get_running_loop().create_server(server.connection, "127.0.0.1", 0)
    try:
        yield server, listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await server.drain(1.0)
        await aiohttp_server.shutdown(1.0)


def post(target: str, body: bytes = b"", close: bool = False, **headers: str) -> bytes:
    lines = [f"POST {target} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", f"X-Target: {target}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        async def read() -> tuple[int, dict[str, str], bytes]:
            status = int((await self.reader.readuntil(b"\r\n")).split()[1])
            headers: dict[str, str] = {}
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding") == "chunked":
                parts = []
                while (size := int((await self.reader.readuntil(b"\r\n")).strip(), 16)) > 0:
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readexactly(2)
                await self.reader.readexactly(2)
                return status, headers, b"".join(parts)
            return status, headers, await self.reader.readexactly(int(headers.get("content-length", "0")))

        return await asyncio.wait_for(read(), 10)

    async def closed(self, timeout: float = 10.0) -> bool:
        """True once the server closed the connection (whatever it sent before is skipped)."""
        async def until_eof() -> bool:
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionResetError:
                pass
            return True

        return await asyncio.wait_for(until_eof(), timeout)


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _ours(headers: dict[str, str]) -> bool:
    return "server" not in headers


# ---------------------------------------------------------------- serving and handing over


async def test_keep_alive_requests_are_answered_by_the_handler() -> None:
    handler = EchoHandler()
    async with serve(handler) as (_, port), connect(port) as client:
        for text in (b"one", b"two"):
            await client.send(post("/echo", text))
            status, headers, body = await client.response()
            assert (status, body) == (200, text) and _ours(headers) and "date" in headers
        await client.send(post("/slow", b"three"))
        assert (await client.response())[2] == b"three"
        assert handler.in_flight == 0  # finished() once per answer, immediate or not


async def test_a_body_over_the_limit_goes_to_the_fallback_unread() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(post("/echo", b"y" * ((1 << 20) + 1)))
        status, headers, _ = await client.response()
        assert status == 413 and not _ours(headers)  # aiohttp refused it (its own 1 MiB default)


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        other = b"GET /other HTTP/1.1\r\nHost: t\r\n\r\n"
        await client.send(post("/slow", b"first") + post("/echo", b"second") + other)
        answers = [await client.response() for _ in range(3)]
        assert [a[2] for a in answers[:2]] == [b"first", b"second"] and all(_ours(a[1]) for a in answers[:2])
        assert answers[2][2] == b"aiohttp GET /other " and not _ours(answers[2][1])


async def test_an_unclaimed_request_hands_the_connection_to_the_fallback() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(b"GET /elsewhere HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = await client.response()
        assert status == 200 and body == b"aiohttp GET /elsewhere " and not _ours(headers)
        await client.send(post("/echo", b"after"))  # the connection stays with aiohttp
        status, headers, body = await client.response()
        assert body == b"aiohttp POST /echo after" and not _ours(headers)


async def test_a_chunked_body_goes_to_the_fallback_with_its_bytes() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhello\r\n0\r\n\r\n")
        status, headers, body = await client.response()
        assert status == 200 and body == b"aiohttp POST /echo hello" and not _ours(headers)


async def test_the_handler_may_pass_a_request_on_after_reading_it() -> None:
    handler = EchoHandler()
    async with serve(handler) as (_, port), connect(port) as client:
        await client.send(post("/pass", b"payload") + post("/echo", b"next"))
        first, second = await client.response(), await client.response()
        assert first[2] == b"aiohttp POST /pass payload" and not _ours(first[1])
        assert second[2] == b"aiohttp POST /echo next"
        assert [bytes(b) for b in handler.bodies] == [b"payload"]


async def test_a_streamed_answer_is_chunked_and_the_connection_serves_on() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(post("/stream", b"two"))
        status, headers, body = await client.response()
        assert status == 200 and headers["transfer-encoding"] == "chunked" and body == b"data: one\n\ndata: two\n\n"
        await client.send(post("/echo", b"again"))
        assert (await client.response())[2] == b"again"


async def test_a_body_in_many_reads_is_kept_once_and_handed_out_as_a_view() -> None:
    handler = EchoHandler()
    async with serve(handler) as (_, port), connect(port) as client:
        body = bytes(range(256)) * 2000
        data = post("/echo", body)
        for start in range(0, len(data), 7000):
            await client.send(data[start:start + 7000])
        assert (await client.response())[2] == body
        assert isinstance(handler.bodies[0], memoryview) and handler.bodies[0] == body


async def test_connection_close_is_honoured() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(post("/echo", b"bye", close=True))
        status, headers, body = await client.response()
        assert status == 200 and headers["connection"] == "close" and body == b"bye"
        assert await client.closed()


# ---------------------------------------------------------------- heads the server refuses


@pytest.mark.parametrize(("request_bytes", "status", "reason"), [
    (b"POST /echo HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400, "malformed HTTP request"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host header"),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431,
     "more than 100 header fields (server.max_header_count)"),
    (post("/echo", b"{}", Filler="x" * 40000), 431, "request head over 32768 bytes (server.max_header_size)"),
    (b"GET / HTTP/1.1\r\nX-Filler: " + b"x" * 40000, 431, "request head over 32768 bytes"),
])
async def test_a_bad_head_is_refused_in_one_log_line_and_closed(request_bytes: bytes, status: int, reason: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(request_bytes)
        answer = await client.response()
        assert answer[0] == status and reason in answer[2].decode() and answer[1]["connection"] == "close"
        assert await client.closed()
    lines = [r for r in caplog.records if "refused" in r.getMessage() or r.exc_info]
    assert len(lines) == 1 and reason in lines[0].getMessage() and lines[0].levelno == logging.INFO, lines


async def test_up_to_the_limits_is_accepted() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(post("/echo", b"ok", **{f"X-{i}": "1" for i in range(96)}))  # 100 fields with ours
        assert (await client.response())[2] == b"ok"


async def test_aiohttp_applies_the_same_limits_after_a_hand_over(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
        assert not _ours((await client.response())[1])
        await client.send(b"GET /second HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n")
        status, headers, body = await client.response()
        assert status == 400 and b"Too many headers" in body and not _ours(headers)
    lines = [r for r in caplog.records if "refused" in r.getMessage() or r.exc_info]
    assert len(lines) == 1 and "Too many headers received" in lines[0].getMessage() and not lines[0].exc_info


async def test_new_limits_apply_to_open_connections(caplog: pytest.LogCaptureFixture) -> None:
    handler = EchoHandler()
    async with serve(handler) as (server, port), connect(port) as client:
        await client.send(post("/echo", b"a", **{f"X-{i}": "1" for i in range(20)}))
        assert (await client.response())[0] == 200
        handler.current = replace(handler.current, max_header_count=10)
        server.sweep()
        await client.send(post("/echo", b"a", **{f"X-{i}": "1" for i in range(20)}))
        assert (await client.response())[0] == 431


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
        await async_wait_until(lambda: _count(handler, 2), 10, "both calls to be held")
        async with connect(port) as third:
            status, headers, body = await third.response()
            assert status == 503 and b"server.max_connections" in body and headers["connection"] == "close"
        handler.release.set()
        assert (await one.response())[2] == b"x" and (await two.response())[2] == b"x"


async def _count(handler: EchoHandler, n: int) -> bool:
    return len(handler.bodies) >= n


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
        await async_wait_until(lambda: _count(handler, 2), 10, "the call to be held")
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
        require(site, runner.server)  # every attribute the bridge uses is there in the installed aiohttp

        class Server:
            _kwargs: dict[str, object] = {}

        with pytest.raises(RuntimeError, match=r"Server\._connections"):
            require(site, Server())
    finally:
        await runner.cleanup()
