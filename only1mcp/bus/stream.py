"""Typed envelopes over a byte stream (a Unix socket to the stdio host): a 4-byte big-endian length, then
the frame. Used by both ends of a link."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from only1mcp.background import watched

from .codec import LENGTH_BYTES, BusProtocolError, Codec, Envelope
from .messages import Kind, Sender
from .wire import Payload

__all__ = ["FramedChannel", "LinkClosed"]

log = logging.getLogger("only1mcp.bus")


class LinkClosed(ConnectionError):
    """The other end closed the link (or it broke)."""


class FramedChannel:
    """Reads envelopes into ``on_envelope`` until the stream ends (then ``on_close`` once); writes
    envelopes with ``send``. ``max_frame`` bounds one frame: a peer announcing more is cut off."""

    __slots__ = ("_codec", "_max_frame", "_name", "_reader", "_task", "_writer", "closed", "on_close", "on_envelope",
                 "sender")

    def __init__(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sender: Sender,
                 max_frame: int) -> None:
        self._name = name
        self._reader = reader
        self._writer = writer
        self._codec = Codec()
        self._max_frame = max_frame
        self._task: asyncio.Task[None] | None = None
        self.sender = sender
        self.closed = False
        self.on_envelope: Callable[[Envelope], None] = lambda envelope: None
        self.on_close: Callable[[BaseException | None], None] = lambda exc: None

    def start(self) -> None:
        self._task = watched(asyncio.get_running_loop().create_task(self._read(), name=f"link {self._name}"))

    async def _read(self) -> None:
        error: BaseException | None = None
        try:
            while True:
                try:
                    head = await self._reader.readexactly(LENGTH_BYTES)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        error = LinkClosed(f"{self._name}: closed in the middle of a frame")
                    break
                size = int.from_bytes(head, "big")
                if size > self._max_frame:
                    error = BusProtocolError(f"{self._name}: a frame of {size} bytes is over the {self._max_frame}-"
                                             "byte limit")
                    log.warning("%s", error)
                    break
                frame = await self._reader.readexactly(size)
                try:
                    envelope = self._codec.decode(frame)
                except BusProtocolError as exc:
                    log.warning("%s: %s", self._name, exc)
                    continue
                self.on_envelope(envelope)
        except (OSError, asyncio.IncompleteReadError) as exc:
            error = LinkClosed(f"{self._name}: {exc}")
        finally:
            self.closed = True
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.close()
            self.on_close(error)

    def send(self, kind: Kind, payload: Payload) -> None:
        """Queue one envelope (never waits; a link that is gone raises LinkClosed)."""
        if self.closed or self._writer.is_closing():
            raise LinkClosed(f"{self._name} is closed")
        try:
            self._writer.write(self._codec.encode_framed(Envelope(kind, self.sender, payload)))
        except (OSError, RuntimeError) as exc:  # uvloop raises RuntimeError once the handle is closed
            self.closed = True
            raise LinkClosed(f"{self._name}: {exc}") from None

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except OSError as exc:
            self.closed = True
            raise LinkClosed(f"{self._name}: {exc}") from None

    def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.close()
