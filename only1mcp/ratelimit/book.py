"""The supervisor's token buckets and the leases it gives out of them.

Exactness. A bucket holds ``tokens`` in the supervisor's hands; each lease holds tokens a worker may admit
requests with until the lease expires. The bucket counts a lease's tokens as still in the bucket until the
worker reports them used (``outstanding``: granted minus reported used), and refills only up to
``burst - outstanding``. So the tokens anywhere (here, plus those still unused in leases) never exceed
``burst``, and every refill adds at most ``rate * elapsed``: over any window the whole cluster admits at
most ``burst + rate * window``, however the leases are spread, returned or lost. A lease's unused tokens
come back only when its holder returns them; a holder that died (or never returned them) loses them when
the lease expires, so a dead worker can only make the cluster admit less, never more.

Reservations. A busy bucket has no tokens when asked; it then leases the next quantum ahead, usable from
the moment the refill will have brought it (``tokens`` goes below zero until then). Only within the room
the leases leave (``burst - outstanding``), so no refill is cut short while the bucket is in debt and each
reservation starts exactly when its tokens have accrued. Without them, a worker on a small burst would learn
"nothing now", come back, and the refill during each round trip would be lost to the cap.

Bounded memory: a bucket with no lease that would be full by now is the same as a new one, so it is
forgotten; due times sit in heaps, so each sweep costs only what is due.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass

from .limits import Limit

__all__ = ["LEASE_SECONDS", "Bucket", "Grant", "Lease", "QuotaBook", "Shape"]

LEASE_SECONDS = 1.0  # a lease's life: the longest a dead worker's unused tokens stay out of the bucket
RECLAIM_GRACE = 0.25  # after expiry, time for the holder's return to arrive before the lease is written off
QUANTUM_SECONDS = 0.05  # the smallest grant worth a message: 50 ms of the rate (at most ~20 asks/s at saturation)
SLICE_SECONDS = 0.25  # a grant from a bucket with plenty: up to a quarter second of the rate (or half the burst)
RESERVE_SECONDS = 0.5  # a reservation starts at most this far ahead (further, the worker is told to ask later)

Holder = tuple[int, int]  # (slot, pid) of the worker holding a lease
BucketKey = tuple[Limit, str]


@dataclass(frozen=True, slots=True)
class Shape:
    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class Grant:
    """The answer to an ask: ``tokens`` under lease ``lease`` (0: none), usable from ``starts`` (now, or when a
    reservation's tokens have accrued) until ``expires``; asking again before ``retry_at`` is pointless."""

    lease: int
    tokens: int
    starts: float
    expires: float
    retry_at: float


class Lease:
    __slots__ = ("expires", "granted", "holder", "used")

    def __init__(self, holder: Holder, granted: int, expires: float) -> None:
        self.holder = holder
        self.granted = granted
        self.used = 0  # as last reported by the holder
        self.expires = expires


class Bucket:
    """One token bucket; ``outstanding`` of its tokens are in leases, not yet reported used."""

    __slots__ = ("burst", "leases", "outstanding", "rate", "stamp", "tokens")

    def __init__(self, shape: Shape, now: float) -> None:
        self.rate = shape.rate
        self.burst = shape.burst
        self.tokens = float(shape.burst)  # a bucket nobody used lately is full
        self.stamp = now
        self.outstanding = 0
        self.leases: dict[int, Lease] = {}

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst - self.outstanding, self.tokens + self.rate * (now - self.stamp))
            self.stamp = now

    def reshape(self, shape: Shape, now: float) -> None:
        """A reload changed the limit: what accrued so far at the old rate, from now on the new one."""
        self.refill(now)
        self.rate, self.burst = shape.rate, shape.burst
        self.tokens = min(self.tokens, self.burst - self.outstanding)

    def quantum(self) -> int:
        """The fewest tokens worth a grant: 50 ms of the rate, but at most half the burst (a reservation of
        the whole burst would fill the bucket when it starts, and a full bucket stops refilling until the
        worker reports the tokens used)."""
        return max(1, min(math.ceil(self.rate * QUANTUM_SECONDS), self.burst // 2))

    def room(self) -> int:
        """What the bucket may still hold beside the leases' unreported tokens."""
        return self.burst - self.outstanding

    def slice(self, want: int) -> int:
        """Most tokens one grant takes: what the worker waits for; a quarter second of the rate, up to half the
        burst; or a quarter of what the bucket holds (a slow bucket with a big burst is not dealt out one
        token per ask, and three quarters stay for the other workers)."""
        return max(want, self.quantum(), min(math.ceil(self.rate * SLICE_SECONDS), math.ceil(self.burst / 2)),
                   math.floor(self.tokens / 4))

    def ready_at(self, now: float) -> float:
        """When the bucket will hold a quantum with room for it, if it refills and the holders spend their
        leases at the rate: when asking again is worth a message."""
        quantum = self.quantum()
        missing = max(quantum - self.tokens, quantum - self.room())
        return now if missing <= 0 else now + missing / self.rate

    def report_use(self, lease: Lease, used: int) -> None:
        """The holder reports ``used`` tokens of ``lease`` spent (reports may arrive out of order)."""
        used = min(max(used, lease.used), lease.granted)
        self.outstanding -= used - lease.used
        lease.used = used

    def end(self, lease_id: int, unused: int) -> None:
        """Close a lease: ``unused`` of its tokens come back (0 when written off)."""
        lease = self.leases.pop(lease_id)
        self.outstanding -= lease.granted - lease.used
        self.tokens += unused

    def full_at(self) -> float:
        return self.stamp + max(0.0, self.burst - self.tokens) / self.rate


class QuotaBook:
    """Every bucket in use, keyed by (limit, key); ``ask`` grants leases, ``give_back`` and ``sweep`` end them."""

    __slots__ = ("_buckets", "_expiries", "_idle", "_ids", "_shapes", "granted", "reclaimed", "returned")

    def __init__(self, shapes: dict[Limit, Shape] | None = None) -> None:
        self._shapes: dict[Limit, Shape] = dict(shapes or {})
        self._buckets: dict[BucketKey, Bucket] = {}
        self._expiries: list[tuple[float, int, BucketKey]] = []  # (written off at, lease, bucket)
        self._idle: list[tuple[float, BucketKey]] = []  # (full at, bucket): forget it then if still unused
        self._ids = itertools.count(1)
        self.granted = 0  # tokens, since start
        self.returned = 0  # unused tokens given back
        self.reclaimed = 0  # leases written off at expiry (their holder never returned them)

    def __len__(self) -> int:
        return len(self._buckets)

    def bucket(self, limit: Limit, key: str) -> Bucket | None:
        return self._buckets.get((limit, key))

    def configure(self, shapes: dict[Limit, Shape], now: float) -> None:
        """Apply reloaded limits: a removed limit's buckets go, a changed one's take the new shape."""
        self._shapes = dict(shapes)
        for key, bucket in list(self._buckets.items()):
            shape = shapes.get(key[0])
            if shape is None:
                del self._buckets[key]  # leases of it that come back later are ignored
            elif (shape.rate, shape.burst) != (bucket.rate, bucket.burst):
                bucket.reshape(shape, now)

    def ask(self, holder: Holder, limit: Limit, key: str, want: int, uses: dict[int, int], now: float) -> Grant:
        """A worker wants ``want`` tokens (it also reports ``uses``: tokens spent so far per lease it holds)."""
        shape = self._shapes.get(limit)
        if shape is None:  # the worker's config names a limit ours no longer has: nothing to hold it to
            return Grant(0, max(1, want), now, now + LEASE_SECONDS, now)
        bucket = self._buckets.get((limit, key))
        if bucket is None:
            bucket = self._buckets[(limit, key)] = Bucket(shape, now)
        bucket.refill(now)
        for lease_id, used in uses.items():
            lease = bucket.leases.get(lease_id)
            if lease is not None and lease.holder == holder:
                bucket.report_use(lease, used)
        quantum, room = bucket.quantum(), bucket.room()
        if bucket.tokens >= max(1, min(quantum, room)):  # a quantum, or all the leases leave room for
            tokens, starts = min(math.floor(bucket.tokens), bucket.slice(want)), now
        elif quantum <= room:
            # Reserve the next quantum: usable once the bucket has refilled it, so a busy worker gets its next
            # slice ahead of time instead of a refusal and another round trip (on a small burst that round
            # trip would be refill lost). Reserving within the room left keeps refills from being cut short
            # while the bucket is in debt, so a reservation starts exactly when its tokens have accrued.
            tokens, starts = quantum, now + (quantum - bucket.tokens) / bucket.rate
            if starts - now > RESERVE_SECONDS:
                return Grant(0, 0, 0.0, 0.0, starts - RESERVE_SECONDS)
        else:
            return Grant(0, 0, 0.0, 0.0, bucket.ready_at(now))  # leases hold what it may: wait for them
        return self._lease(bucket, (limit, key), holder, tokens, starts, now)

    def _lease(self, bucket: Bucket, key: BucketKey, holder: Holder, tokens: int, starts: float,
               now: float) -> Grant:
        lease_id = next(self._ids)
        expires = starts + LEASE_SECONDS
        bucket.leases[lease_id] = Lease(holder, tokens, expires)
        bucket.outstanding += tokens
        bucket.tokens -= tokens
        self.granted += tokens
        heapq.heappush(self._expiries, (expires + RECLAIM_GRACE, lease_id, key))
        return Grant(lease_id, tokens, starts, expires, bucket.ready_at(now))

    def give_back(self, holder: Holder, limit: Limit, key: str, lease_id: int, used: int, now: float) -> None:
        """The holder is done with a lease, having spent ``used`` of its tokens; the rest come back."""
        bucket = self._buckets.get((limit, key))
        lease = bucket.leases.get(lease_id) if bucket is not None else None
        if bucket is None or lease is None or lease.holder != holder:
            return  # already written off (or a bucket since forgotten): those tokens stay spent
        bucket.refill(now)
        bucket.report_use(lease, used)
        unused = lease.granted - lease.used
        bucket.end(lease_id, unused)
        self.returned += unused
        self._forget_later(bucket, (limit, key))

    def sweep(self, now: float) -> None:
        """Write off leases past their expiry and grace; forget buckets unused and full again."""
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, lease_id, key = heapq.heappop(expiries)
            bucket = self._buckets.get(key)
            if bucket is not None and lease_id in bucket.leases:
                bucket.refill(now)
                bucket.end(lease_id, 0)  # its holder may have used them all: count them spent
                self.reclaimed += 1
                self._forget_later(bucket, key)
        idle = self._idle
        while idle and idle[0][0] <= now:
            _, key = heapq.heappop(idle)
            bucket = self._buckets.get(key)
            if bucket is None or bucket.leases:
                continue  # gone already, or in use again (its last lease's end looks again)
            bucket.refill(now)
            if bucket.tokens >= bucket.burst:
                del self._buckets[key]
            else:
                heapq.heappush(idle, (bucket.full_at(), key))

    def next_due(self) -> float | None:
        """When ``sweep`` next has something to do; None while nothing is held."""
        expiries, idle = self._expiries, self._idle
        while expiries and not self._holds(expiries[0][2], expiries[0][1]):
            heapq.heappop(expiries)  # returned already: nothing to write off
        while idle and idle[0][1] not in self._buckets:
            heapq.heappop(idle)
        due = [heap[0][0] for heap in (expiries, idle) if heap]
        return min(due) if due else None

    def _holds(self, key: BucketKey, lease_id: int) -> bool:
        bucket = self._buckets.get(key)
        return bucket is not None and lease_id in bucket.leases

    def _forget_later(self, bucket: Bucket, key: BucketKey) -> None:
        if not bucket.leases:
            heapq.heappush(self._idle, (bucket.full_at(), key))

    def describe(self) -> dict[str, int]:
        return {"buckets": len(self._buckets), "leases": sum(len(b.leases) for b in self._buckets.values()),
                "granted": self.granted, "returned": self.returned, "reclaimed": self.reclaimed}
