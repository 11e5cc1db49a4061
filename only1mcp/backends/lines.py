"""Newline-delimited JSON-RPC over a stdio child's pipes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from only1mcp.protocol.codec import JSONDecodeError, TooDeep, deep_replies, dumps, loads

from .base import BackendUnavailable, Message
from .pipes import LineTooLong, StdoutLines

__all__ = ["LINE_LIMIT", "LineChannel", "LineTransport"]

log = logging.getLogger("only1mcp.backend")

LINE_LIMIT = 64 * 1024 * 1024  # one JSON-RPC message per line; tool results can be large


class LineChannel:
    """Reads JSON lines from a child's stdout (``lines``) into ``on_message``; writes messages as lines to
    ``writer``."""

    __slots__ = ("_lines", "_name", "_reading", "_too_long", "_write", "_writer", "closed", "on_close", "on_line",
                 "on_message")

    def __init__(self, name: str, lines: StdoutLines, writer: Any, too_long: str | None = None) -> None:
        self._name = name
        self._too_long = too_long  # the error for a line over the limit (it ends the channel)
        self._lines = lines
        self._writer = writer
        # The transport's own write: StreamWriter.write only calls it, one Python call more per message.
        self._write = writer.transport.write
        self._reading = False
        self.closed = False
        self.on_message: Any = None  # (message, None) per message
        self.on_line: Any = None  # or (the message's own bytes, message), for relaying it unchanged
        self.on_close: Any = None

    def start(self) -> None:
        self._reading = True
        self._lines.attach(self._line, self._ended)

    def _ended(self, exc: BaseException | None) -> None:
        """The child's stdout ended: it closed it (None), it broke, or a line was over the limit."""
        self._reading = False
        error = exc
        if isinstance(exc, LineTooLong) and self._too_long:
            error = BackendUnavailable(self._too_long)
        if error is not None:
            log.warning("%s: read failed: %s", self._name, error)
        self.closed = True
        if self.on_close is not None:
            self.on_close(error)

    def _line(self, line: bytes) -> None:
        """One line: its message(s) to on_line (with the bytes to relay) or on_message."""
        raw: bytes | None = line.strip()
        if not raw:
            return
        try:
            data = loads(raw)
        except TooDeep as exc:
            data, raw = deep_replies(exc, self._name), None
        except JSONDecodeError:
            log.warning("%s: skipped a line that is not JSON: %r", self._name, line[:120])
            return
        if data is None:
            return  # nested too deep and not a reply: dropped (logged by deep_replies)
        on_line = self.on_line
        if on_line is not None:
            if type(data) is dict:  # one message, read as it was written
                on_line(raw if raw is not None else dumps(data), data)
            else:
                self._relay(data)
            return
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                self.on_message(item, None)

    def _relay(self, data: Any) -> None:
        """Each message of a batch to on_line on its own, encoded again."""
        if isinstance(data, list):
            for item in data:
                if isinstance(item, dict):
                    self.on_line(dumps(item), item)

    def write(self, message: Message) -> None:
        self.write_line(dumps(message))

    def write_line(self, data: bytes) -> None:
        """One message already encoded as JSON (without a line break)."""
        if self.closed:
            raise BackendUnavailable(f"{self._name} is not connected")
        try:
            self._write(data + b"\n")
        except (RuntimeError, OSError) as exc:  # uvloop raises RuntimeError once the pipe's handle is closed
            self.closed = True
            raise BackendUnavailable(f"{self._name} closed its input: {exc}") from None

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except OSError as exc:  # the peer is gone (a child exited, the host closed the socket)
            self.closed = True
            raise BackendUnavailable(f"{self._name} closed its input: {exc}") from None

    def close(self) -> None:
        self.closed = True
        if self._reading:  # told like an end of the child's output, after this call (as it always was)
            self._reading = False
            self._lines.detach()
            asyncio.get_running_loop().call_soon(self._closed)
        self._writer.close()

    def _closed(self) -> None:
        if self.on_close is not None:
            self.on_close(None)


class LineTransport:
    """Newline-delimited JSON-RPC to a stdio child over whatever ``open`` connects ``_channel`` to. A stdio
    session never expires and needs nothing after initialize."""

    __slots__ = ("_channel", "_name", "on_close", "on_failure", "on_message")

    def __init__(self, name: str) -> None:
        self._name = name
        self._channel: LineChannel | None = None
        self.on_message: Any = None
        self.on_failure: Any = None  # unused: every answer comes as a line on the one connection
        self.on_close: Any = None

    async def send(self, message: Message, caller: str | None = None) -> None:
        if self._channel is None:
            raise BackendUnavailable(f"backend '{self._name}' is not connected")
        self._channel.write(message)
        await self._channel.drain()

    def initialized(self, result: dict[str, Any], protocol_version: str) -> None:
        """Nothing to do: the stdio session lasts as long as the connection."""

    def reset(self) -> None:
        """Stdio sessions do not expire."""

    def abandon(self, request_id: Any) -> None:
        """Nothing to stop: every answer comes as a line on the one connection."""
