"""A link to one replica of a shared stdio backend, served by the stdio host on a Unix socket.

Frames are the bus's typed envelopes: ``LINK_HELLO`` says what the link is for, ``LINK_SEND`` carries a
message for the child with the client session it is for, ``LINK_RECEIVE`` one from the child with the
request and client session it belongs to (which the host works out, or leaves empty when it cannot).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from only1mcp.bus import Envelope, Kind, Sender
from only1mcp.bus.messages import LinkHello, LinkPurpose
from only1mcp.bus.stream import FramedChannel, LinkClosed
from only1mcp.protocol.codec import JSONDecodeError, TooDeep, deep_replies, dumps, loads

from .base import BackendUnavailable, Message

__all__ = ["LinkTransport"]

log = logging.getLogger("only1mcp.backend")

_FRAME_SLACK = 64 * 1024  # the envelope around a message the host passes on (it checked the message's size)
_LINK_SEND = Kind.LINK_SEND  # an enum member costs a class attribute lookup on each use


class LinkTransport:
    """A worker's (or the supervisor's) connection to the stdio host for one backend replica."""

    __slots__ = ("_channel", "_max_frame", "_name", "_path", "_purpose", "_sender", "_source", "on_close",
                 "on_failure", "on_message")

    # Many links share one child: each session on a link numbers its requests under a prefix of its own, so
    # the host passes them through unchanged (see BackendSession).
    shared_peer = True

    def __init__(self, name: str, path: str, sender: Sender, purpose: LinkPurpose, max_event_bytes: int) -> None:
        self._name = name
        self._path = path
        self._sender = sender
        self._purpose = purpose
        self._max_frame = max_event_bytes + _FRAME_SLACK
        self._source = f"backend '{name}'"  # for errors about what it sent (not formatted for each message)
        self._channel: FramedChannel | None = None
        self.on_message: Any = None
        self.on_failure: Any = None  # unused: the host fails a call whose answer was too large
        self.on_close: Any = None

    async def open(self) -> None:
        channel = FramedChannel(f"link to backend '{self._name}'", self._sender, self._max_frame)
        channel.on_fields(Kind.LINK_RECEIVE, self._received)
        channel.on_envelope = self._unexpected
        channel.on_close = self._closed
        try:
            await asyncio.get_running_loop().create_unix_connection(lambda: channel, self._path)
        except OSError as exc:
            raise BackendUnavailable(f"backend '{self._name}' is not running (stdio host socket: "
                                     f"{exc.strerror})", sent=False) from None
        channel.send(Kind.LINK_HELLO, LinkHello(self._purpose))
        self._channel = channel

    def _received(self, raw: bytes, related: Any, caller: str | None) -> None:
        """A LINK_RECEIVE frame's fields: a message from the child, the id of our request it belongs to, the
        client session it belongs to."""
        try:
            message = loads(raw)  # loads_from written out (one call less per message): the host checks as we do
        except TooDeep as exc:
            message = deep_replies(exc, self._source)
        except JSONDecodeError:
            return  # the host relays only what it parsed; nothing to do with a frame that is not JSON
        if isinstance(message, dict):
            self.on_message(message, related, caller)

    def _unexpected(self, envelope: Envelope) -> None:
        log.warning("link to backend '%s': unexpected %s frame from the stdio host", self._name, envelope.kind.name)

    def _closed(self, exc: BaseException | None) -> None:
        if self.on_close is not None:
            self.on_close(exc)

    async def send(self, message: Message, caller: str | None = None) -> None:
        channel = self._channel
        if channel is None:
            raise BackendUnavailable(f"backend '{self._name}' is not connected", sent=False)
        try:
            channel.send_fields(_LINK_SEND, caller, dumps(message))  # LinkSend(caller, message)
            if channel.paused:
                await channel.drain()
        except LinkClosed as exc:
            raise BackendUnavailable(f"backend '{self._name}': the stdio host closed the link ({exc})") from None

    def initialized(self, result: dict[str, Any], protocol_version: str) -> None:
        """Nothing to do: the session lasts as long as the link."""

    def reset(self) -> None:
        """Links do not expire."""

    def abandon(self, request_id: Any) -> None:
        """Nothing to stop: every answer comes in a frame on the one link (the host hears the cancel)."""

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
