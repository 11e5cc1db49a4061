"""The HTTP/1.1 server in front of a worker's listening socket: it answers the requests its handler
claims and hands every other request, with its connection, to a fallback server (aiohttp).

Why it exists: aiohttp's server side (request and response objects, router, stream reader, writer) was
half of a proxied call's CPU (docs/architecture.md, "The fast path for POST /mcp"). It also sees every
connection first, so it is where slow clients are held to their time limits and where the connection
cap is kept: a connection that sends its head or body too slowly, idles too long, or stops reading its
answers is closed, and at the cap the oldest connection still sending a head (or idling) makes room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from email.utils import formatdate

from .connection import BODY, HEAD, IDLE, HttpConnection
from .handler import Fallback, Handler
from .limits import HttpLimits, connection_budget, raise_open_file_limit

__all__ = ["HttpServer"]

log = logging.getLogger("only1mcp.http")

_VICTIM_SCAN = 256  # connections looked at, oldest first, for one to close at the cap
_CAP_REPORT_EVERY = 60.0  # seconds between two log lines about the connection cap


class _CapReport:
    """One log line when the connection cap is first hit, then at most one a minute while it is."""

    __slots__ = ("_evicted", "_next", "_refused")

    def __init__(self) -> None:
        self._next = 0.0
        self._evicted = 0
        self._refused = 0

    def hit(self, now: float, evicted: bool, limit: int) -> None:
        if evicted:
            self._evicted += 1
        else:
            self._refused += 1
        if now < self._next:
            return
        log.warning("connection cap reached: %d connections (server.max_connections); to make room the oldest "
                    "connection still sending a head or idle is closed, or the new one gets 503 (%d closed, %d "
                    "refused since the last report; next report in %.0fs at the earliest)", limit, self._evicted,
                    self._refused, _CAP_REPORT_EVERY)
        self._next = now + _CAP_REPORT_EVERY
        self._evicted = self._refused = 0


class HttpServer:
    """What the connections of one listening socket share: the handler and the fallback, the limits in
    force, the Date header, and the connections themselves, oldest first (for time limits, the
    connection cap and the drain)."""

    __slots__ = ("_budget", "_cap", "_sweeper", "_wanted", "clock", "connections", "date", "fallback", "handler",
                 "limits", "stopping")

    def __init__(self, handler: Handler, fallback: Fallback, budget: int | None = None) -> None:
        self.handler = handler
        self.fallback = fallback
        self.connections: OrderedDict[HttpConnection, None] = OrderedDict()
        self.stopping = False
        self.date = b""
        self.limits = HttpLimits()
        self.clock = time.monotonic  # the running loop's clock once started
        self._budget = budget  # connections the open-file limit allows; None: work it out at start
        self._wanted: HttpLimits | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._cap = _CapReport()

    def start(self) -> None:
        self.clock = asyncio.get_running_loop().time
        if self._budget is None:
            self._budget = connection_budget(raise_open_file_limit())
        self.sweep()

    def connection(self) -> HttpConnection:
        """The protocol factory for the listening socket."""
        return HttpConnection(self)

    def configure(self) -> None:
        """Take the handler's limits now (also done on every sweep): a reloaded config applies at once."""
        self._configure()

    def _configure(self) -> None:
        wanted = self.handler.limits()
        if wanted is self._wanted:
            return
        self._wanted = wanted
        limits = wanted.clamped(self._budget or wanted.max_connections)
        if limits is not wanted:
            log.warning("server.max_connections is %d but this worker's open-file limit allows %d client "
                        "connections; using %d (raise the limit: ulimit -n, or LimitNOFILE= in systemd)",
                        wanted.max_connections, limits.max_connections, limits.max_connections)
        self.limits = limits
        self.fallback.configure(limits)

    def sweep(self) -> None:
        """Refresh the limits and the Date header, and close every connection past its phase's limit.

        One timer for every connection: no per-request timer to start and cancel on the data path.
        """
        self._configure()
        limits = self.limits
        self.date = formatdate(usegmt=True).encode("ascii")
        now = self.clock()
        allowed = (limits.header_timeout, limits.body_timeout, float("inf"), limits.keepalive_timeout)
        send = limits.send_timeout
        late = [c for c in self.connections
                if now - c.since > allowed[c.phase] or (c.stalled and now - c.stalled > send)]
        for connection in late:
            connection.time_out(_limit_name(connection, limits))
        if not self.stopping:
            self._sweeper = asyncio.get_running_loop().call_later(limits.tick, self.sweep)

    def admit(self, connection: HttpConnection) -> bool:
        """Register a new connection; at the cap, close the oldest one still sending a head (or else the
        oldest idle one) to make room. False when there is none: the new connection is refused."""
        limits = self.limits
        if len(self.connections) + self.fallback.connections() >= limits.max_connections:
            victim = self._victim()
            self._cap.hit(self.clock(), victim is not None, limits.max_connections)
            if victim is None:
                return False
            victim.close(abort=True)
        self.connections[connection] = None
        return True

    def _victim(self) -> HttpConnection | None:
        idle: HttpConnection | None = None
        for scanned, connection in enumerate(self.connections):
            if connection.phase == HEAD:
                return connection
            if idle is None and connection.phase == IDLE:
                idle = connection
            if scanned >= _VICTIM_SCAN:
                break
        return idle

    def forget(self, connection: HttpConnection) -> None:
        self.connections.pop(connection, None)

    async def drain(self, timeout: float) -> None:
        """Close idle connections now; let requests being answered finish (their connections close after
        the answer) for up to ``timeout`` seconds, then close what is left."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            if connection.phase == IDLE or (connection.phase == HEAD and connection.done is None):
                connection.close()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            busy = [c.done for c in self.connections if c.done is not None]
            if not busy:
                break
            await asyncio.wait(busy, timeout=max(0.0, deadline - time.monotonic()))
        for connection in list(self.connections):
            connection.close()


def _limit_name(connection: HttpConnection, limits: HttpLimits) -> str:
    """Which limit a late connection broke, e.g. 'server.header_timeout: 20s'."""
    if connection.stalled:
        return f"server.send_timeout: {limits.send_timeout:g}s"
    if connection.phase == HEAD:
        return f"server.header_timeout: {limits.header_timeout:g}s"
    if connection.phase == BODY:
        return f"server.body_timeout: {limits.body_timeout:g}s"
    return f"server.keepalive_timeout: {limits.keepalive_timeout:g}s"
