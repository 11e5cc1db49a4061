"""only1mcp.http's server on a real loopback socket in this process (tests/support/httpserver.py): what
it answers itself, what it hands to aiohttp with the connection, and the heads it refuses."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from tests.support.httpserver import EchoHandler, connect, ours, post, serve

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- serving and handing over


async def test_keep_alive_requests_are_answered_by_the_handler() -> None:
    handler = EchoHandler()
    async with serve(handler) as (_, port), connect(port) as client:
        for text in (b"one", b"two"):
            await client.send(post("/echo", text))
            status, headers, body = await client.response()
            assert (status, body) == (200, text) and ours(headers) and "date" in headers
        await client.send(post("/slow", b"three"))
        assert (await client.response())[2] == b"three"
        assert handler.in_flight == 0  # finished() once per answer, immediate or not


async def test_a_body_over_the_limit_goes_to_the_fallback_unread() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(post("/echo", b"y" * ((1 << 20) + 1)))
        status, headers, _ = await client.response()
        assert status == 413 and not ours(headers)  # aiohttp refused it (its own 1 MiB default)


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        other = b"GET /other HTTP/1.1\r\nHost: t\r\n\r\n"
        await client.send(post("/slow", b"first") + post("/echo", b"second") + other)
        answers = [await client.response() for _ in range(3)]
        assert [a[2] for a in answers[:2]] == [b"first", b"second"] and all(ours(a[1]) for a in answers[:2])
        assert answers[2][2] == b"aiohttp GET /other " and not ours(answers[2][1])


async def test_an_unclaimed_request_hands_the_connection_to_the_fallback() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(b"GET /elsewhere HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = await client.response()
        assert status == 200 and body == b"aiohttp GET /elsewhere " and not ours(headers)
        await client.send(post("/echo", b"after"))  # the connection stays with aiohttp
        status, headers, body = await client.response()
        assert body == b"aiohttp POST /echo after" and not ours(headers)


async def test_a_chunked_body_goes_to_the_fallback_with_its_bytes() -> None:
    async with serve(EchoHandler()) as (_, port), connect(port) as client:
        await client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhello\r\n0\r\n\r\n")
        status, headers, body = await client.response()
        assert status == 200 and body == b"aiohttp POST /echo hello" and not ours(headers)


async def test_the_handler_may_pass_a_request_on_after_reading_it() -> None:
    handler = EchoHandler()
    async with serve(handler) as (_, port), connect(port) as client:
        await client.send(post("/pass", b"payload") + post("/echo", b"next"))
        first, second = await client.response(), await client.response()
        assert first[2] == b"aiohttp POST /pass payload" and not ours(first[1])
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
        assert not ours((await client.response())[1])
        await client.send(b"GET /second HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n")
        status, headers, body = await client.response()
        assert status == 400 and b"Too many headers" in body and not ours(headers)
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
