"""Capped exponential backoff with jitter: the one schedule for every retry and restart in the gateway.

Each user says how it starts (``first`` delay: 0 restarts a one-off failure at once), how it grows
(``base`` doubling up to ``cap``), how much jitter spreads processes that failed together apart, and when
a success (or a long enough run) starts it over.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Delays base, 2*base, 4*base … up to ``cap``; each scaled by a random factor in [1 - jitter, 1].

    ``first``: the delay of the first attempt after a reset, before the doubling starts (None: start at
    ``base``). ``stable_after``: ``next_delay(uptime)`` resets when what failed had run at least that long.
    """

    base: float
    cap: float
    jitter: float = 0.5
    first: float | None = None
    stable_after: float | None = None
    failures: int = 0
    _random: Callable[[], float] = field(default=random.random, repr=False)

    def next_delay(self, uptime: float | None = None) -> float:
        if uptime is not None and self.stable_after is not None and uptime >= self.stable_after:
            self.failures = 0
        failures = self.failures
        self.failures += 1
        if self.first is not None:
            if failures == 0:
                return self.first
            failures -= 1
        return self.delay_for(failures)

    def delay_for(self, failures: int) -> float:
        """The delay after ``failures`` earlier failures (not counting ``first``), without changing state."""
        delay = min(self.cap, self.base * (2 ** min(failures, 62)))
        return delay * (1.0 - self.jitter * self._random())

    def reset(self) -> None:
        self.failures = 0
