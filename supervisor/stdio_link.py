"""The stdio host's end of one link: a worker's (or the supervisor's) connection to one backend replica."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from only1mcp.bus import Kind
from only1mcp.bus.messages import LinkPurpose
from only1mcp.bus.stream import FramedChannel, LinkClosed

__all__ = ["Link", "LinkIds"]

log = logging.getLogger("only1mcp.stdio")

_LINK_RECEIVE = Kind.LINK_RECEIVE  # an enum member costs a class attribute lookup on each use


class LinkIds:
    """Numbers the links of one replica server."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def next(self) -> int:
        return next(self._next)


@dataclass(slots=True, eq=False)
class Link:
    ident: int
    channel: FramedChannel
    purpose: LinkPurpose = LinkPurpose.CALLS  # until its hello says otherwise
    subscriptions: set[str] = field(default_factory=set)
    # Only a worker's link can pass a backend's request on to a client (read for every message it sends).
    answers_clients: bool = True

    def hello(self, purpose: LinkPurpose) -> None:
        """The link's first frame said what it is for."""
        self.purpose = purpose
        self.answers_clients = purpose is LinkPurpose.CALLS

    def receive(self, message: bytes, related: Any = None, caller: str | None = None) -> None:
        """Pass a message from the child to the other end (``related``: the id of its request it belongs to;
        ``caller``: the client session it belongs to)."""
        if self.channel.closed:
            return
        try:
            self.channel.send_fields(_LINK_RECEIVE, message, related, caller)  # LinkReceive(message, related, caller)
        except LinkClosed:
            log.debug("link %d closed while a message was written to it; its drop handles the rest", self.ident)
