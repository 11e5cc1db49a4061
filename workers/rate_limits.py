"""A worker's side of the gateway's rate limits: admit from leased tokens, ask the supervisor for more.

A request counts against a bucket by ``admit``: with tokens in a lease it is admitted at once, with no
message (``admit_now`` is that check alone, for the hot path). Without, the worker asks the supervisor
(asks made in one turn of the event loop travel as one report) and waits for the answer at most
``ASK_WAIT``; a bucket the supervisor said is empty until some time refuses at once until then, with no
message either. ``refuse`` is the one place a refusal is decided. Leases spent, idle or near their expiry
go back in one report per sweep. The arithmetic is in only1mcp/ratelimit/holding.py, the supervisor's side
in supervisor/quotas.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from only1mcp.background import Background
from only1mcp.bus import Envelope, Kind, MessageRouter, Reporter
from only1mcp.bus.messages import LeaseAsk, LeaseAsks, LeaseEnd, LeaseEnds, LeaseGrants, LeaseUse
from only1mcp.config.rate_limits import BucketSettings, RateLimitSettings
from only1mcp.protocol.codec import dumps
from only1mcp.protocol.jsonrpc import Code, JsonRpcError, error_message
from only1mcp.ratelimit.holding import IDLE_RETURN, Holding
from only1mcp.ratelimit.limits import Limit, Refusal, retry_after

from .exchange import Answer

__all__ = ["ASK_WAIT", "RateLimited", "RateLimiter", "too_many"]

log = logging.getLogger("only1mcp.worker")

ASK_WAIT = 0.5  # longest a request waits for the supervisor's answer before it is refused
_SWEEP = 0.1  # seconds between looks at the leases held (what to give back, what to forget)
_LOG_EVERY = 10  # seconds: at most one refusal line per bucket in this long
BucketKey = tuple[Limit, str]


class RateLimited(JsonRpcError):
    """A request refused by a rate limit, as the error its JSON-RPC answer carries."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(Code.RATE_LIMITED, refusal.message, refusal.data)
        self.refusal = refusal


def too_many(refusal: Refusal, request_id: Any) -> Answer:
    """The HTTP answer to a refused request: 429, Retry-After, and the JSON-RPC error naming the limit."""
    body = dumps(error_message(request_id, Code.RATE_LIMITED, refusal.message, refusal.data))
    return Answer(429, body, {"Content-Type": "application/json", "Retry-After": str(refusal.retry_after)})


class RateLimiter:
    """The leases this worker holds, per bucket. ``per_principal``, ``per_tool``, ``per_backend``: which
    limits are on (read on every request, so a limit that is off costs one attribute read)."""

    __slots__ = ("_ahead", "_clock", "_flush", "_holdings", "_refused", "_reporter", "_shapes", "_sweeping", "_tasks",
                 "_waiters", "_wanted", "per_backend", "per_principal", "per_tool")

    def __init__(self, reporter: Reporter, refused: Callable[[Limit], None] | None = None) -> None:
        self._reporter = reporter
        self._refused = refused  # told of every refusal (the metrics' count)
        self._clock = time.monotonic  # CLOCK_MONOTONIC, as the supervisor's lease expiries are
        # limit -> key -> Holding: two lookups by string on the hot path, no tuple built per request
        self._holdings: dict[Limit, dict[str, Holding]] = {limit: {} for limit in Limit}
        self._waiters: dict[BucketKey, asyncio.Future[None]] = {}  # an ask in flight: resolved by its answer
        self._wanted: dict[BucketKey, int] = {}  # asks of this loop turn, not sent yet: requests waiting
        self._flush: asyncio.Handle | None = None
        self._shapes: dict[Limit, BucketSettings] = {}
        self._ahead: set[Limit] = set()  # limits whose buckets are worth asking ahead of need
        self._tasks = Background("rate-limits")
        self._sweeping = False
        self.per_principal = self.per_tool = self.per_backend = False

    def register(self, inbox: MessageRouter) -> None:
        inbox.register(Kind.LEASE_GRANT, self._granted)

    def configure(self, settings: RateLimitSettings) -> None:
        """The limits of a (re)loaded config. A changed limit keeps its leases (the supervisor reshapes the
        same bucket, and a lease lives a second at most); a removed one's leases are dropped with it."""
        shapes = {limit: shape for limit in Limit if (shape := getattr(settings, limit.value)) is not None}
        for limit, held in self._holdings.items():
            if limit not in shapes:
                held.clear()
        self._shapes = shapes
        # Asking ahead leaves a spare token or two here. Worth it for a bucket that refills at least one
        # token while a spare nobody wants waits to be given back (IDLE_RETURN); on a slower one, a spare
        # stranded here would refuse requests at another worker for longer than the refill itself would.
        self._ahead = {limit for limit, shape in shapes.items() if shape.rate * IDLE_RETURN >= 1}
        self.per_principal = Limit.PER_PRINCIPAL in shapes
        self.per_tool = Limit.PER_TOOL in shapes
        self.per_backend = Limit.PER_BACKEND in shapes

    # ------------------------------------------------------------ admitting

    def admit_now(self, limit: Limit, key: str) -> bool:
        """Admit one request from a lease held here; False when that takes the supervisor (or a refusal)."""
        holding = self._holdings[limit].get(key)
        if holding is None:
            return False
        now = self._clock()
        if not holding.take(now):
            return False
        if holding.left <= holding.low and limit in self._ahead and holding.asks_ahead(now):
            self._ask((limit, key), holding, now)  # ahead of need, so this worker rarely waits
        return True

    async def admit(self, limit: Limit, key: str) -> Refusal | None:
        """Admit one request under ``limit`` for ``key``, or the refusal (already logged)."""
        if self.admit_now(limit, key):
            return None
        bucket = (limit, key)
        now = self._clock()
        holding = self._holdings[limit].get(key)
        if holding is None:
            holding = self._hold(bucket, now)
        if holding.may_ask(now):
            self._ask(bucket, holding, now)
        elif not holding.asked:
            return self.refuse(limit, key, holding.wait(now), holding)  # told to come back later: no message
        elif bucket in self._wanted:
            self._wanted[bucket] += 1  # one more request waits on the ask not sent yet
        answered = self._waiters.get(bucket)
        if answered is not None and not answered.done():
            try:
                await asyncio.wait_for(asyncio.shield(answered), ASK_WAIT)
            except TimeoutError:
                log.warning("the supervisor did not answer a rate-limit ask within %.1fs; refusing meanwhile",
                            ASK_WAIT)
                return self.refuse(limit, key, 1.0, self._holdings[limit].get(key))
        now = self._clock()
        holding = self._holdings[limit].get(key)
        if holding is not None and holding.take(now):
            if limit in self._ahead and holding.asks_ahead(now):
                self._ask(bucket, holding, now)
            return None
        return self.refuse(limit, key, holding.wait(now) if holding is not None else 1.0, holding)

    def refuse(self, limit: Limit, key: str, wait: float, holding: Holding | None) -> Refusal:
        """Where every refusal is decided: the one place an audit records rate_limited.

        Logged at most once per bucket every ``_LOG_EVERY`` seconds, with the count since: refusals come in
        floods, and a log line costs more than the refusal itself (17 of 26 us)."""
        if self._refused is not None:
            self._refused(limit)
        shape = self._shapes.get(limit)
        refusal = Refusal(limit, shape.rate if shape else 0.0, shape.burst if shape else 0, retry_after(wait))
        count = 1
        if holding is not None:
            holding.refused += 1
            now = self._clock()
            if now - holding.logged < _LOG_EVERY:
                return refusal
            holding.logged, count, holding.refused = now, holding.refused, 0
        log.info("rate limited: %s (%s; %d refused since this bucket's last such line, at most one a %ds)",
                 refusal.message, key, count, _LOG_EVERY)
        return refusal

    # ------------------------------------------------------------ asking and answers

    def _ask(self, bucket: BucketKey, holding: Holding, now: float) -> None:
        holding.ask(now)
        self._waiters[bucket] = asyncio.get_running_loop().create_future()
        self._wanted[bucket] = self._wanted.get(bucket, 0) + 1
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._send_asks)

    def _send_asks(self) -> None:
        self._flush = None
        wanted, self._wanted = self._wanted, {}
        asks = []
        for bucket, want in wanted.items():
            holding = self._holdings[bucket[0]].get(bucket[1])
            uses = holding.uses() if holding is not None else {}
            asks.append(LeaseAsk(bucket[0], bucket[1], max(1, want),
                                 tuple(LeaseUse(lease, used) for lease, used in uses.items())))
        if asks and not self._reporter.send(Kind.LEASE_ASK, LeaseAsks(tuple(asks))):
            log.warning("rate-limit asks dropped: the report queue to the supervisor is full")

    def _granted(self, envelope: Envelope) -> None:
        grants = envelope.payload
        assert isinstance(grants, LeaseGrants)
        unwanted: list[LeaseEnd] = []
        for grant in grants.grants:
            bucket = (grant.limit, grant.key)
            holding = self._holdings[grant.limit].get(grant.key)
            if holding is None and grant.limit in self._shapes:
                holding = self._hold(bucket, self._clock())
            if holding is not None:
                holding.granted(grant.lease, grant.tokens, grant.starts, grant.expires, grant.retry_at)
            elif grant.lease:
                unwanted.append(LeaseEnd(grant.limit, grant.key, grant.lease, 0))  # its limit was removed
            waiter = self._waiters.pop(bucket, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if unwanted:
            self._reporter.send(Kind.LEASE_RETURN, LeaseEnds(tuple(unwanted)))

    # ------------------------------------------------------------ giving back

    def _hold(self, bucket: BucketKey, now: float) -> Holding:
        holding = self._holdings[bucket[0]][bucket[1]] = Holding(now)
        if not self._sweeping:
            self._sweeping = True
            self._tasks.spawn(self._sweep(), "leases")
        return holding

    async def _sweep(self) -> None:
        """While anything is held: give back leases spent, idle or near expiry, forget what is done with."""
        try:
            while any(self._holdings.values()):
                await asyncio.sleep(_SWEEP)
                self._give_back(self._clock(), everything=False)
        finally:
            self._sweeping = False

    def _give_back(self, now: float, everything: bool) -> None:
        ends: list[LeaseEnd] = []
        for limit, held in self._holdings.items():
            for key, holding in list(held.items()):
                leases = holding.ending(now) if not everything else [(lease.lease, lease.used)
                                                                     for lease in holding.leases if lease.lease]
                ends += [LeaseEnd(limit, key, lease, used) for lease, used in leases]
                if everything or (holding.forgettable(now) and (limit, key) not in self._waiters):
                    del held[key]
        if ends:
            self._reporter.send(Kind.LEASE_RETURN, LeaseEnds(tuple(ends)))

    async def close(self) -> None:
        """Stopping: every lease goes back now (its tokens can serve the other workers at once)."""
        self._give_back(self._clock(), everything=True)
        await self._tasks.close()
