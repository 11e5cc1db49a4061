"""A worker's leased tokens on one bucket: admitting from them, and when to ask for more or give them back.

The lease's expiry is a time on CLOCK_MONOTONIC, which every process of the gateway reads alike (one host),
so the worker stops admitting on a lease before the supervisor writes it off, without any exchange.
"""

from __future__ import annotations

__all__ = ["ASK_LOST", "IDLE_RETURN", "STOP_MARGIN", "Holding", "LocalLease"]

STOP_MARGIN = 0.05  # stop admitting on a lease this long before it expires (the supervisor's write-off is later)
IDLE_RETURN = 0.2  # a lease no request wanted for this long goes back, so its tokens can serve another worker
ASK_LOST = 2.0  # an ask unanswered this long is taken as lost (a full report queue drops it): ask again


class LocalLease:
    __slots__ = ("lease", "remaining", "since", "until", "used")

    def __init__(self, lease: int, tokens: int, since: float, until: float) -> None:
        self.lease = lease
        self.remaining = tokens
        self.used = 0
        self.since = since  # admit on it from this time (a reservation starts when its tokens have accrued)
        self.until = until  # and only before this


class Holding:
    """The leases held on one bucket, and what the supervisor said about asking again."""

    __slots__ = ("asked", "fresh", "last_wanted", "leases", "left", "logged", "low", "next_ask", "refused")

    def __init__(self, now: float) -> None:
        self.leases: list[LocalLease] = []
        self.left = 0  # tokens remaining in all its leases (started or not)
        self.low = 0  # running low at this many left: half the last grant
        self.last_wanted = now  # the last request that wanted a token (admitted or not)
        self.next_ask = 0.0  # the supervisor's retry_at: the bucket holds nothing worth asking for before
        self.asked = 0.0  # when the ask in flight was sent; 0 when none is
        self.fresh = False  # tokens came since the last ask: one ask ahead may go before the retry time
        self.refused = 0  # refusals not yet in the log (the worker logs a bucket's refusals now and then)
        self.logged = float("-inf")  # when its last refusal line was written

    def take(self, now: float) -> bool:
        """Admit one request from a lease, if one has a token and its time has come and not gone."""
        self.last_wanted = now
        for lease in self.leases:
            if lease.remaining and lease.since <= now < lease.until:
                lease.remaining -= 1
                lease.used += 1
                self.left -= 1
                return True
        return False

    def running_low(self) -> bool:
        """Time to ask ahead: half the last grant or less is left (so a busy worker rarely waits, and the use
        it reports lets the bucket refill behind it sooner)."""
        return self.left <= self.low

    def may_ask(self, now: float) -> bool:
        """Whether asking is worth a message: none is in flight and the supervisor's retry time has come."""
        return self._not_asking(now) and now >= self.next_ask

    def asks_ahead(self, now: float) -> bool:
        """Whether to ask ahead, after a take: when running low. The first such ask after a grant goes at
        once, whatever the retry time, because it reports what was spent and the bucket refills only behind
        reported use (on a small burst, waiting would leave the refill stopped until then); later ones wait
        for the retry time, so a bucket whose leases hold all it may is not asked on every request."""
        return self._not_asking(now) and self.running_low() and (self.fresh or now >= self.next_ask)

    def ask(self, now: float) -> None:
        """An ask for this bucket is on its way."""
        self.asked = now
        self.fresh = False

    def _not_asking(self, now: float) -> bool:
        return not self.asked or now - self.asked >= ASK_LOST

    def uses(self) -> dict[int, int]:
        """Tokens spent so far per lease (reported with an ask, so the bucket refills behind them)."""
        return {lease.lease: lease.used for lease in self.leases if lease.lease}

    def granted(self, lease: int, tokens: int, starts: float, expires: float, retry_at: float) -> None:
        self.asked = 0.0
        self.next_ask = retry_at
        if tokens:
            self.leases.append(LocalLease(lease, tokens, starts, expires - STOP_MARGIN))
            self.low = tokens // 2
            self.left += tokens
            self.fresh = True

    def ending(self, now: float) -> list[tuple[int, int]]:
        """Remove and return (lease, used) of each lease that is spent, at its end, or not wanted lately."""
        idle = now - self.last_wanted >= IDLE_RETURN
        ended = [lease for lease in self.leases if not lease.remaining or now >= lease.until or idle]
        if ended:
            self.leases = [lease for lease in self.leases if lease not in ended]
            self.left = sum(lease.remaining for lease in self.leases)
        return [(lease.lease, lease.used) for lease in ended if lease.lease]

    def forgettable(self, now: float) -> bool:
        """Nothing held, nothing asked, nothing known to refuse with: as good as never seen."""
        return not self.leases and not self.asked and now >= self.next_ask

    def wait(self, now: float) -> float:
        """Seconds until a token may be had here (for a refusal's Retry-After): a reservation's start, or
        when asking makes sense again."""
        starts = [lease.since for lease in self.leases if lease.remaining and lease.since > now]
        return max(0.0, min(starts) - now if starts else self.next_ask - now)
