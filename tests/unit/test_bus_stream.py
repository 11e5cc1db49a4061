"""The stdio host's link channel: framing over a real Unix socket, the data kinds' checked fast path, limits."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from only1mcp.bus import BusProtocolError, Envelope, Kind, Role, Sender
from only1mcp.bus.codec import Codec
from only1mcp.bus.messages import LinkHello, LinkPurpose, LinkSend
from only1mcp.bus.stream import FramedChannel, LinkClosed
from tests.support.waiting import eventually, holds

WORKER = Sender(Role.WORKER, 2, 4242)
HOST = Sender(Role.STDIO_HOST, -1, 4343)
MESSAGE = b'{"jsonrpc":"2.0","id":"ab12cd34.7","method":"tools/call","params":{"name":"echo"}}'
ANSWER = b'{"jsonrpc":"2.0","id":"ab12cd34.7","result":{"content":[]}}'


class Pair:
    """Both ends of a link: ``worker`` connected to ``host`` over a Unix socket, with what each received."""

    def __init__(self) -> None:
        self.host: FramedChannel | None = None
        self.worker: FramedChannel | None = None
        self.host_got: list[Any] = []
        self.worker_got: list[Any] = []
        self.host_closed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def make_host(self, max_frame: int) -> FramedChannel:
        channel = FramedChannel("host end", HOST, max_frame)
        channel.on_envelope = self.host_got.append
        channel.on_fields(Kind.LINK_SEND, lambda caller, message: self.host_got.append((caller, message)))
        channel.on_close = lambda exc: self.host_closed.done() or self.host_closed.set_result(exc)
        self.host = channel
        return channel


@pytest.fixture
async def pair(short_tmp_path: Path) -> AsyncIterator[Pair]:
    loop = asyncio.get_running_loop()
    pair = Pair()
    server = await loop.create_unix_server(lambda: pair.make_host(1024 * 1024), path=str(short_tmp_path / "l.sock"))
    worker = FramedChannel("worker end", WORKER, 1024 * 1024)
    worker.on_fields(Kind.LINK_RECEIVE, lambda message, related, caller: pair.worker_got.append(
        (message, related, caller)))
    await loop.create_unix_connection(lambda: worker, str(short_tmp_path / "l.sock"))
    pair.worker = worker
    yield pair
    worker.close()
    server.close()


async def received(got: list[Any], count: int) -> list[Any]:
    await eventually(lambda: len(got) >= count, 10, f"{count} frames at the other end")
    return got


def framed(frame: bytes) -> bytes:
    return struct.pack(">I", len(frame)) + frame


def host_channel(got: list[Any], max_frame: int = 4096) -> tuple[FramedChannel, list[BaseException | None]]:
    """A host end fed by hand (``data_received``), for what a socket would not split on purpose."""
    closed: list[BaseException | None] = []
    channel = FramedChannel("host end", HOST, max_frame)
    channel.on_envelope = got.append
    channel.on_fields(Kind.LINK_SEND, lambda caller, message: got.append((caller, message)))
    channel.on_close = closed.append
    return channel, closed


async def test_envelopes_and_data_frames_cross_the_link_both_ways(pair: Pair) -> None:
    assert pair.worker is not None
    pair.worker.send(Kind.LINK_HELLO, LinkHello(LinkPurpose.PROBE))
    pair.worker.send_fields(Kind.LINK_SEND, "sid-1", MESSAGE)
    pair.worker.send_fields(Kind.LINK_SEND, None, b"{}")
    hello, first, second = await received(pair.host_got, 3)
    assert hello == Envelope(Kind.LINK_HELLO, WORKER, LinkHello(LinkPurpose.PROBE))
    assert first == ("sid-1", MESSAGE)
    assert second == (None, b"{}")
    assert pair.host is not None
    pair.host.send_fields(Kind.LINK_RECEIVE, ANSWER, "ab12cd34.7", "sid-1")
    pair.host.send_fields(Kind.LINK_RECEIVE, b"{}", 7, None)
    assert await received(pair.worker_got, 2) == [(ANSWER, "ab12cd34.7", "sid-1"), (b"{}", 7, None)]


def test_send_fields_writes_the_frame_the_payload_would() -> None:
    """The data path's frames are ordinary envelopes: any decoder reads them as the typed payload."""
    written: list[bytes] = []
    channel = FramedChannel("worker end", WORKER, 4096)
    channel.connection_made(_Transport(written))
    channel.send_fields(Kind.LINK_SEND, "sid-1", MESSAGE)
    channel.send(Kind.LINK_SEND, LinkSend("sid-1", MESSAGE))
    assert written[0] == written[1]
    assert Codec().decode(written[0][4:]) == Envelope(Kind.LINK_SEND, WORKER, LinkSend("sid-1", MESSAGE))


def test_frames_split_anywhere_are_read_whole_and_in_order() -> None:
    got: list[Any] = []
    channel, _ = host_channel(got)
    codec = Codec()
    stream = b"".join([framed(codec.encode(Envelope(Kind.LINK_SEND, WORKER, LinkSend(f"s{i}", MESSAGE))))
                       for i in range(3)])
    for cut in range(1, len(stream)):
        got.clear()
        channel.data_received(stream[:cut])
        channel.data_received(stream[cut:])
        assert got == [(f"s{i}", MESSAGE) for i in range(3)], f"cut at byte {cut}"
    got.clear()
    for byte in stream:  # one byte at a time
        channel.data_received(bytes([byte]))
    assert got == [(f"s{i}", MESSAGE) for i in range(3)]


def test_a_large_frame_in_many_pieces_is_delivered_once() -> None:
    got: list[Any] = []
    channel, _ = host_channel(got, max_frame=4 * 1024 * 1024)
    big = b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"' + b"x" * 3_000_000 + b'"}}'
    stream = framed(Codec().encode(Envelope(Kind.LINK_SEND, WORKER, LinkSend(None, big))))
    for start in range(0, len(stream), 65536):
        channel.data_received(stream[start:start + 65536])
    assert got == [(None, big)]


@pytest.mark.parametrize(("payload", "problem"), [
    ([3, b"{}"], "LinkSend.caller: expected a string or nil, got int 3"),
    (["sid", "{}"], "LinkSend.message: expected bytes, got str"),
    (["sid"], "LinkSend: expected 2 fields"),
    ("sid", "LinkSend: expected 2 fields"),
])
def test_a_malformed_data_frame_is_refused_naming_the_field_and_the_link_goes_on(
        payload: Any, problem: str, caplog: pytest.LogCaptureFixture) -> None:
    got: list[Any] = []
    channel, closed = host_channel(got)
    good = framed(Codec().encode(Envelope(Kind.LINK_SEND, WORKER, LinkSend("sid", MESSAGE))))
    bad = msgpack.packb([41, 2, 0, 1, payload])
    with caplog.at_level(logging.WARNING, logger="only1mcp.bus"):
        channel.data_received(framed(bad) + good)
    assert got == [("sid", MESSAGE)]  # the bad frame was dropped, the next one read
    assert closed == []
    assert f"host end: malformed LINK_SEND frame ({len(bad)} bytes): {problem}" in caplog.text


@pytest.mark.parametrize(("frame", "problem"), [
    (msgpack.packb([41, 9, 0, 1, ["sid", b"{}"]]), "malformed LINK_SEND frame: bad sender (9, 0, 1)"),
    (msgpack.packb([41, 2, "0", 1, ["sid", b"{}"]]), "malformed LINK_SEND frame: bad sender (2, '0', 1)"),
    (msgpack.packb([99, 2, 0, 1, []]), "unknown kind 99"),
    (msgpack.packb([[41], 2, 0, 1, []]), "unknown kind [41]"),
    (msgpack.packb([41, 2, 0]), "not an envelope of 5 fields"),
    (b"\xc1", "malformed bus frame (1 bytes)"),
])
def test_frames_that_are_not_envelopes_are_refused(frame: bytes, problem: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    got: list[Any] = []
    channel, closed = host_channel(got)
    with caplog.at_level(logging.WARNING, logger="only1mcp.bus"):
        channel.data_received(framed(frame))
    assert got == [] and closed == []
    assert problem in caplog.text


def test_a_handler_error_is_not_taken_for_a_malformed_frame() -> None:
    channel = FramedChannel("host end", HOST, 4096)

    def handler(caller: str | None, message: bytes) -> None:
        raise ValueError("a bug in the handler")

    channel.on_fields(Kind.LINK_SEND, handler)
    with pytest.raises(ValueError, match="a bug in the handler"):
        channel.data_received(framed(Codec().encode(Envelope(Kind.LINK_SEND, WORKER, LinkSend("s", b"{}")))))


async def test_a_frame_over_the_limit_closes_the_link(short_tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    pair = Pair()
    server = await loop.create_unix_server(lambda: pair.make_host(1000), path=str(short_tmp_path / "l.sock"))
    reader, writer = await asyncio.open_unix_connection(str(short_tmp_path / "l.sock"))
    writer.write(struct.pack(">I", 1001) + b"\x00" * 10)
    async with asyncio.timeout(5):
        error = await pair.host_closed
    assert isinstance(error, BusProtocolError)
    assert "a frame of 1001 bytes is over the 1000-byte limit" in str(error)
    assert await reader.read() == b""  # the host closed its end
    writer.close()
    server.close()


async def test_a_peer_gone_in_the_middle_of_a_frame_is_reported(short_tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    pair = Pair()
    server = await loop.create_unix_server(lambda: pair.make_host(1000), path=str(short_tmp_path / "l.sock"))
    _, writer = await asyncio.open_unix_connection(str(short_tmp_path / "l.sock"))
    writer.write(struct.pack(">I", 100) + b"\x00" * 10)
    writer.close()
    async with asyncio.timeout(5):
        error = await pair.host_closed
    assert isinstance(error, LinkClosed) and "closed in the middle of a frame" in str(error)
    assert pair.host is not None and pair.host.closed
    with pytest.raises(LinkClosed):
        pair.host.send_fields(Kind.LINK_RECEIVE, b"{}", None, None)
    server.close()


async def test_drain_waits_while_the_peer_does_not_read(pair: Pair) -> None:
    worker, host = pair.worker, pair.host
    assert worker is not None and host is not None
    assert host._transport is not None
    host._transport.pause_reading()  # the host stops reading: the worker's socket buffer fills up
    chunk = b"x" * 60_000
    sent = 0
    async with asyncio.timeout(10):
        while not worker.paused:
            worker.send_fields(Kind.LINK_SEND, None, chunk)
            sent += 1
            await asyncio.sleep(0)  # let the transport try to write and report it is full
    drained = asyncio.ensure_future(worker.drain())
    await holds(lambda: not drained.done(), 0.3, "drain waiting while the peer reads nothing")
    host._transport.resume_reading()
    async with asyncio.timeout(10):
        await drained
        await received(pair.host_got, sent)
    assert all(item == (None, chunk) for item in pair.host_got)


async def test_drain_fails_when_the_link_is_lost_while_waiting(pair: Pair) -> None:
    worker, host = pair.worker, pair.host
    assert worker is not None and host is not None and host._transport is not None
    host._transport.pause_reading()
    async with asyncio.timeout(10):
        while not worker.paused:
            worker.send_fields(Kind.LINK_SEND, None, b"x" * 60_000)
            await asyncio.sleep(0)
    drained = asyncio.ensure_future(worker.drain())
    host.close()
    with pytest.raises(LinkClosed):
        async with asyncio.timeout(10):
            await drained


class _Transport(asyncio.Transport):
    """Collects what is written (for comparing bytes, not for anything the channel reads)."""

    def __init__(self, written: list[bytes]) -> None:
        super().__init__()
        self._written = written

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._written.append(bytes(data))

    def is_closing(self) -> bool:
        return False
