"""Rate-limit buckets for the whole gateway: the supervisor leases slices of them to workers.

A worker asks (LEASE_ASK, a report) when its slice of a bucket runs low; the answer (LEASE_GRANT) goes back
to that worker alone over the relay. A worker admits requests from its slice with no message per request,
and gives back what it did not use (LEASE_RETURN) when the slice is spent, idle or near its expiry; a
lease whose holder never gives it back (a dead worker) is written off when it expires. The arithmetic that
keeps the cluster within ``rate * t + burst`` is in only1mcp/ratelimit/book.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from only1mcp.bus import Envelope, Kind, MessageRouter, Sender, Target
from only1mcp.bus.messages import LeaseAsks, LeaseEnds, LeaseGrant, LeaseGrants
from only1mcp.bus.relay import RelayPublisher
from only1mcp.config.rate_limits import RateLimitSettings
from only1mcp.ratelimit.book import QuotaBook, Shape
from only1mcp.ratelimit.limits import Limit

__all__ = ["Quotas", "shapes_of"]

_LONGEST_SLEEP = 1.0  # the sweeper looks again at least this often while it holds buckets
_SHORTEST_SLEEP = 0.02  # sweeps are batched: due times this close together share one


def shapes_of(settings: RateLimitSettings) -> dict[Limit, Shape]:
    """The configured limits (those left out are off)."""
    shapes: dict[Limit, Shape] = {}
    for limit in Limit:
        bucket = getattr(settings, limit.value)
        if bucket is not None:
            shapes[limit] = Shape(bucket.rate, bucket.burst)
    return shapes


class Quotas:
    """Owns every active bucket (``QuotaBook``); answers asks and returns from the report table."""

    __slots__ = ("_book", "_clock", "_relay", "_sender", "_wake", "asks")

    def __init__(self, relay: RelayPublisher, sender: Sender, settings: RateLimitSettings) -> None:
        self._relay = relay
        self._sender = sender
        self._clock = time.monotonic  # CLOCK_MONOTONIC: the workers compare lease expiries with theirs
        self._book = QuotaBook(shapes_of(settings))
        self._wake = asyncio.Event()
        self.asks = 0

    def register(self, router: MessageRouter) -> None:
        router.register(Kind.LEASE_ASK, self._ask)
        router.register(Kind.LEASE_RETURN, self._return)

    def configure(self, settings: RateLimitSettings) -> None:
        self._book.configure(shapes_of(settings), self._clock())

    def _ask(self, envelope: Envelope) -> None:
        asks = envelope.payload
        assert isinstance(asks, LeaseAsks)
        sender = envelope.sender
        holder = (sender.slot, sender.pid)
        now = self._clock()
        book = self._book
        idle = book.next_due() is None
        grants = []
        for ask in asks.asks:
            grant = book.ask(holder, ask.limit, ask.key, ask.want, {use.lease: use.used for use in ask.uses}, now)
            grants.append(LeaseGrant(ask.limit, ask.key, grant.lease, grant.tokens, grant.starts, grant.expires,
                                     grant.retry_at))
        self.asks += len(grants)
        self._relay.publish(Envelope.of(Kind.LEASE_GRANT, self._sender,
                                        LeaseGrants(Target(sender.slot, sender.pid), tuple(grants))))
        if idle:
            self._wake.set()  # the sweeper was waiting for something to hold

    def _return(self, envelope: Envelope) -> None:
        ends = envelope.payload
        assert isinstance(ends, LeaseEnds)
        holder = (envelope.sender.slot, envelope.sender.pid)
        now = self._clock()
        for end in ends.ends:
            self._book.give_back(holder, end.limit, end.key, end.lease, end.used, now)

    async def sweep(self) -> None:
        """Write off expired leases and forget idle buckets, as they come due; runs until cancelled."""
        book = self._book
        while True:
            due = book.next_due()
            if due is None:
                await self._wake.wait()
                self._wake.clear()
                continue
            await asyncio.sleep(min(_LONGEST_SLEEP, max(_SHORTEST_SLEEP, due - self._clock())))
            book.sweep(self._clock())

    def describe(self) -> dict[str, Any]:
        return {**self._book.describe(), "asks": self.asks}
