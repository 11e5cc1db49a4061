"""only1mcp.http.client against small servers in this process on loopback: keep-alive reuse, the retry on a
stale connection, and what a hostile server cannot make it do (hold unbounded bodies, heads or error
messages, or be read faster than its consumer reads)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from only1mcp.http.client import ConnectError, Http1Pool, ResponseTooLarge, Target
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.timeout(60)

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@contextlib.asynccontextmanager
async def server(serve: Serve) -> AsyncIterator[tuple[Target, list[int]]]:
    """A loopback server running ``serve(reader, writer, connection number)``; yields its target and the
    numbers of the connections it accepted."""
    accepted: list[int] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(len(accepted) + 1)
        try:
            await serve(reader, writer, accepted[-1])
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: what these tests expect of it
        finally:
            writer.close()

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield Target(f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/mcp"), accepted
    finally:
        listener.close()


async def _request_head(reader: asyncio.StreamReader) -> int:
    """Read one request; returns its Content-Length (its body is read too)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = int(lengths[0]) if lengths else 0
    await reader.readexactly(length)
    return length


def _answer(body: bytes, status: int = 200) -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%b" % (status, len(body), body)


async def test_idle_connections_are_reused_last_in_first_out() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while True:
            await _request_head(reader)
            writer.write(_answer(b"%d" % number))

    pool = Http1Pool()
    async with server(serve) as (target, accepted):
        first, second = await asyncio.gather(pool.request("POST", target, b"", b"a"),
                                             pool.request("POST", target, b"", b"b"))
        bodies = [await first.read(), await second.read()]
        first.release()
        second.release()  # returned last: taken first
        again = await pool.request("POST", target, b"", b"c")
        assert sorted(bodies) == [b"1", b"2"] and await again.read() == bodies[1]
        again.release()
        assert accepted == [1, 2]
    pool.close()


async def test_a_reused_connection_closed_before_any_byte_is_retried_once_on_a_new_one() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await _request_head(reader)
        writer.write(_answer(b"first" if number == 1 else b"fresh"))
        if number == 1:
            await _request_head(reader)  # the next request on this connection is never answered
            writer.transport.abort()

    pool = Http1Pool()
    async with server(serve) as (target, accepted):
        response = await pool.request("POST", target, b"", b"x")
        assert await response.read() == b"first"
        response.release()
        response = await pool.request("POST", target, b"", b"y")
        assert await response.read() == b"fresh" and accepted == [1, 2]
        response.release()
    pool.close()


async def test_a_new_connection_closed_before_any_byte_is_an_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await _request_head(reader)
        writer.transport.abort()

    pool = Http1Pool()
    async with server(serve) as (target, accepted):
        with pytest.raises(ConnectError, match="closed by the server"):
            await pool.request("POST", target, b"", b"x")
        assert accepted == [1]
    pool.close()


async def _endless(writer: asyncio.StreamWriter, head: bytes, chunked: bool = False) -> None:
    """``head`` then body bytes for as long as the client reads them."""
    writer.write(head)
    piece = b"10000\r\n" + b"x" * 65536 + b"\r\n" if chunked else b"x" * 65536
    while True:
        writer.write(piece)
        await writer.drain()


async def test_a_body_over_the_limit_fails_and_closes_the_connection() -> None:
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await _request_head(reader)
        try:
            await _endless(writer, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n", chunked=True)
        except ConnectionError:
            closed.set()
            raise

    pool = Http1Pool()
    async with server(serve) as (target, _):
        response = await pool.request("POST", target, b"", b"x", limit=1_000_000)
        with pytest.raises(ResponseTooLarge) as raised:
            await response.read()
        assert raised.value.limit == 1_000_000
        response.release()
        await asyncio.wait_for(closed.wait(), 10)  # the client closed it rather than reading on
    pool.close()


async def test_only_the_start_of_an_error_body_is_read() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await _request_head(reader)
        await _endless(writer, b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000000\r\n\r\n" + b"why " * 10)

    pool = Http1Pool()
    async with server(serve) as (target, _):
        response = await pool.request("POST", target, b"", b"x", limit=1 << 30)
        text = await response.read_prefix(4096)
        assert response.status == 500 and len(text) == 4096 and text.startswith(b"why why")
        response.release()
    pool.close()


async def test_a_head_that_never_ends_is_an_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for n in range(10_000):
            writer.write(b"X-Filler-%d: %s\r\n" % (n, b"y" * 64))
            await writer.drain()

    pool = Http1Pool()
    async with server(serve) as (target, _):
        with pytest.raises(ConnectError, match="head is over"):
            await pool.request("POST", target, b"", b"x")
    pool.close()


async def test_a_streamed_body_is_read_no_faster_than_it_is_consumed() -> None:
    blocked = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"10000\r\n" + b"x" * 65536 + b"\r\n")
            if writer.transport.get_write_buffer_size() > 0:
                blocked.set()  # the kernel's buffers are full: the client stopped reading
            await writer.drain()

    pool = Http1Pool()
    async with server(serve) as (target, _):
        response = await pool.request("GET", target, b"", b"")
        chunks = response.chunks()
        await anext(chunks)  # the consumer takes one chunk, then nothing for a while
        await asyncio.wait_for(blocked.wait(), 10)

        async def settled() -> bool:  # what is in flight arrives or stays in the kernel
            before = response.unread
            await asyncio.sleep(0.05)
            return response.unread == before

        await async_wait_until(settled, 10, "the connection to stop reading")
        assert response.unread < 2 * 1024 * 1024  # the high-water mark plus what one read brings
        await chunks.aclose()
        response.release()
    pool.close()
