"""Typed envelopes over a byte stream (a Unix socket to the stdio host): a 4-byte big-endian length, then
the frame. Used by both ends of a link.

The channel is the connection's ``asyncio.Protocol``: frames are cut from what the socket delivers and
handled right there, with no reader task to wake and no ``StreamReader`` to copy through (two
``readexactly`` awaits per frame). The link's data kinds (a message for the child, one from it) are
registered with ``on_fields``: their frames are checked field by field like any other and handed over
as bare values, without an envelope and a payload object to build and take apart again for each call.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any

import msgpack

from .codec import LENGTH_BYTES, BusProtocolError, Codec, Envelope, unpack_extension
from .messages import SPECS, Kind, Role, Sender
from .wire import Payload, WireError

__all__ = ["FramedChannel", "LinkClosed"]

log = logging.getLogger("only1mcp.bus")

_ROLES = frozenset(role.value for role in Role)
# struct, not int.from_bytes/to_bytes: those parse their byteorder argument on every call (callgrind:
# ~1,900 against ~750 instructions to read a length, with the slice from_bytes needs).
_LENGTH = struct.Struct(">I")
assert _LENGTH.size == LENGTH_BYTES


class LinkClosed(ConnectionError):
    """The other end closed the link (or it broke)."""


class FramedChannel(asyncio.Protocol):
    """Reads envelopes into ``on_envelope`` (or, for a kind given to ``on_fields``, its field values into
    that kind's handler) until the connection ends, then calls ``on_close`` once; writes envelopes with
    ``send`` and ``send_fields``. ``max_frame`` bounds one frame: a peer announcing more is cut off."""

    __slots__ = ("_codec", "_drained", "_error", "_fields", "_heads", "_max_frame", "_name", "_packer", "_partial",
                 "_transport", "_wanted", "closed", "on_close", "on_envelope", "paused", "sender")

    def __init__(self, name: str, sender: Sender, max_frame: int) -> None:
        self._name = name
        self._codec = Codec()
        self._packer = self._codec.packer
        self._max_frame = max_frame
        self._transport: asyncio.Transport | None = None
        self._partial = bytearray()  # the start of a frame that has not fully arrived
        self._wanted = 0  # how long _partial must grow before its frame (or its length) can be read
        self._fields: dict[int, tuple[Callable[[Any, Callable[..., None]], None], Callable[..., None], str]] = {}
        self._heads: dict[int, bytes] = {}
        self._drained: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self.sender = sender
        self.closed = False
        self.paused = False  # the socket's send buffer is full: ``drain`` waits
        self.on_envelope: Callable[[Envelope], None] = lambda envelope: None
        self.on_close: Callable[[BaseException | None], None] = lambda exc: None

    def on_fields(self, kind: Kind, handler: Callable[..., None]) -> None:
        """Hand each received frame of ``kind`` to ``handler`` as its payload's field values, checked as
        ``from_wire`` checks them, in declaration order (``handler(*values)``)."""
        payload = SPECS[kind].payload
        self._fields[kind.value] = (payload.field_handler(), handler, f"malformed {kind.name} frame")

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._partial:
            self._partial += data
            if len(self._partial) < self._wanted:
                return  # a large frame arriving in pieces: gathered, not copied again for each piece
            data = bytes(self._partial)
            self._partial.clear()
        end = len(data)
        start = 0
        while end - start >= LENGTH_BYTES:
            size = _LENGTH.unpack_from(data, start)[0]
            if size > self._max_frame:
                self._refuse_size(size)
                return
            stop = start + LENGTH_BYTES + size
            if stop > end:
                break
            self._frame(data[start + LENGTH_BYTES:stop])
            if self.closed:
                return
            start = stop
        if start < end:
            self._partial += data[start:] if start else data
            self._wanted = (stop - start) if end - start >= LENGTH_BYTES else LENGTH_BYTES

    def eof_received(self) -> bool:
        if self._partial:
            self._error = LinkClosed(f"{self._name}: closed in the middle of a frame")
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._error is None:
            self._error = LinkClosed(f"{self._name}: {exc}")
        self.closed = True
        self._wake_drain()
        self.on_close(self._error)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_drain()

    # ------------------------------------------------------------ reading

    def _frame(self, frame: bytes) -> None:
        try:
            raw = msgpack.unpackb(frame, raw=False, strict_map_key=False, ext_hook=unpack_extension)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            log.warning("%s: malformed bus frame (%d bytes): %s", self._name, len(frame), exc)
            return
        fast = self._fields.get(raw[0]) if type(raw) is list and len(raw) == 5 and type(raw[0]) is int else None
        if fast is None:
            self._envelope(raw, len(frame))
            return
        deliver, handler, malformed = fast
        role, slot, pid = raw[1], raw[2], raw[3]
        if type(role) is not int or role not in _ROLES or type(slot) is not int or type(pid) is not int:
            log.warning("%s: %s: bad sender %r", self._name, malformed, (role, slot, pid))
            return
        try:
            deliver(raw[4], handler)  # checks every field, then hands their values to the handler
        except WireError as exc:  # names the field; the handler's own errors are not the frame's
            log.warning("%s: %s (%d bytes): %s", self._name, malformed, len(frame), exc)

    def _envelope(self, raw: Any, size: int) -> None:
        codec = self._codec
        try:
            if type(raw) is not list or len(raw) != 5:
                raise BusProtocolError(f"malformed bus frame ({size} bytes): not an envelope of 5 fields")
            envelope = codec.envelope(raw, size)
        except BusProtocolError as exc:
            log.warning("%s: %s", self._name, exc)
            return
        self.on_envelope(envelope)

    def _refuse_size(self, size: int) -> None:
        self._error = BusProtocolError(f"{self._name}: a frame of {size} bytes is over the {self._max_frame}-byte "
                                       "limit")
        log.warning("%s", self._error)
        self._partial.clear()
        self.close()

    # ------------------------------------------------------------ writing

    def send(self, kind: Kind, payload: Payload) -> None:
        """Queue one envelope (never waits; a link that is gone raises LinkClosed)."""
        self._write(self._codec.encode_framed(Envelope(kind, self.sender, payload)))

    def send_fields(self, kind: Kind, *values: Any) -> None:
        """Queue a frame of ``kind`` whose payload has these field values (in declaration order, in their
        wire form): the same bytes ``send`` writes for that payload, without building it."""
        head = self._heads.get(kind)
        if head is None:
            head = self._heads[kind] = self._codec.head(kind, self.sender)
        body = self._packer.pack(values)
        self._write(_LENGTH.pack(len(head) + len(body)) + head + body)

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            raise LinkClosed(f"{self._name} is closed")
        try:
            transport.write(data)
        except (OSError, RuntimeError) as exc:  # uvloop raises RuntimeError once the handle is closed
            self.closed = True
            raise LinkClosed(f"{self._name}: {exc}") from None

    async def drain(self) -> None:
        """Wait while the socket's send buffer is over its high-water mark (callers test ``paused`` first:
        most sends never wait)."""
        while self.paused and not self.closed:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        if self.closed:
            raise LinkClosed(f"{self._name} is closed")

    def _wake_drain(self) -> None:
        waiter, self._drained = self._drained, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()
