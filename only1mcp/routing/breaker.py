"""A circuit breaker per backend replica, decided by the supervisor from what workers observe.

Closed → Open after ``failures`` consecutive failures, or when the error rate over the last ``window``
seconds passes ``error_rate`` with at least ``min_calls`` calls. Open → Half-Open after a cooldown that
doubles each time a trial fails (up to ``max_cooldown``). Half-Open lets a bounded number of trial calls
through; a success closes it, a failure opens it again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from only1mcp.backoff import Backoff

__all__ = ["Breaker", "BreakerPolicy", "State", "Transition"]


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int = 5
    error_rate: float = 0.5
    window: float = 30.0
    min_calls: int = 10
    cooldown: float = 5.0
    max_cooldown: float = 300.0
    half_open_calls: int = 1


@dataclass(frozen=True, slots=True)
class Transition:
    state: State
    reason: str
    retry_at: float | None  # when an open breaker lets trial calls through (monotonic-free: wall seconds)


_BUCKETS = 30  # the error-rate window is counted in this many slices: memory and time per call stay constant


class Breaker:
    __slots__ = ("_backoff", "_buckets", "_consecutive", "_cooldown", "_failed", "_total", "_width", "last_error",
                 "opened_at", "policy", "reason", "retry_at", "state")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = State.CLOSED
        self._consecutive = 0
        # The window's outcomes as [slice start, calls, failures], with running totals: a busy replica
        # reports thousands of outcomes a second, and each must cost O(1), not a pass over the window.
        self._buckets: deque[list[float]] = deque()
        self._width = policy.window / _BUCKETS
        self._total = 0
        self._failed = 0
        # The cooldown grows while trials keep failing; no jitter: each replica's breaker is its own, and
        # workers follow the supervisor's one decision anyway.
        self._backoff = Backoff(base=policy.cooldown, cap=max(policy.cooldown, policy.max_cooldown), jitter=0.0)
        self._cooldown = self._backoff.next_delay()
        self.retry_at: float | None = None
        self.opened_at: float | None = None
        self.last_error = ""
        self.reason = ""  # why it is in its current state

    def record(self, ok: bool, now: float, error: str = "") -> Transition | None:
        """One call's outcome (or a probe's); returns the transition it caused, if any."""
        if not ok:
            self.last_error = error or self.last_error
        if self.state is State.OPEN:
            return None  # late outcomes of calls started before it opened change nothing
        if self.state is State.HALF_OPEN:
            if ok:
                return self._close(now, "a trial call succeeded")
            self._cooldown = self._backoff.next_delay()
            return self._open(now, f"a trial call failed ({self.last_error})")
        self._count(ok, now)
        self._consecutive = 0 if ok else self._consecutive + 1
        if self._consecutive >= self.policy.failures:
            return self._open(now, f"{self._consecutive} consecutive failures ({self.last_error})")
        if self._failed and self._total >= self.policy.min_calls:
            rate = self._failed / self._total
            if rate > self.policy.error_rate:
                return self._open(now, f"error rate {rate:.0%} over {self._total} calls in "
                                       f"{self.policy.window:g}s ({self.last_error})")
        return None

    def _count(self, ok: bool, now: float) -> None:
        buckets = self._buckets
        if not buckets or now - buckets[-1][0] >= self._width:
            buckets.append([now, 0, 0])
        bucket = buckets[-1]
        bucket[1] += 1
        self._total += 1
        if not ok:
            bucket[2] += 1
            self._failed += 1
        while buckets[0][0] < now - self.policy.window:
            _start, calls, failed = buckets.popleft()
            self._total -= int(calls)
            self._failed -= int(failed)

    def tick(self, now: float) -> Transition | None:
        """Time passing: an open breaker whose cooldown is over lets trial calls through."""
        if self.state is State.OPEN and self.retry_at is not None and now >= self.retry_at:
            self.state = State.HALF_OPEN
            self.reason = (f"cooldown of {self._cooldown:g}s over; letting {self.policy.half_open_calls} trial "
                           "call(s) through")
            return Transition(State.HALF_OPEN, self.reason, None)
        return None

    def reset(self, now: float, reason: str) -> Transition | None:
        """An operator closes it (whatever its state) and its window starts empty; the transition, if it
        was not closed."""
        was = self.state
        transition = self._close(now, reason)
        self._consecutive = 0
        return transition if was is not State.CLOSED else None

    def _open(self, now: float, reason: str) -> Transition:
        self.state = State.OPEN
        self.reason = reason
        self.opened_at = now
        self.retry_at = now + self._cooldown
        self._consecutive = 0
        self._forget()
        return Transition(State.OPEN, reason, self.retry_at)

    def _close(self, now: float, reason: str) -> Transition:
        self.state = State.CLOSED
        self.reason = reason
        self.retry_at = None
        self.opened_at = None
        self._backoff.reset()
        self._cooldown = self._backoff.next_delay()
        self._forget()
        return Transition(State.CLOSED, reason, None)

    def _forget(self) -> None:
        self._buckets.clear()
        self._total = 0
        self._failed = 0
