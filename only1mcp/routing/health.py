"""Per-replica health from active probes: healthy / degraded / unhealthy, with hysteresis."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Health", "HealthPolicy", "HealthTracker"]


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"  # failing probes, not yet past the unhealthy threshold; still routed to
    UNHEALTHY = "unhealthy"  # not routed to until it passes healthy_threshold probes in a row


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    interval: float = 10.0
    timeout: float = 5.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3


class HealthTracker:
    __slots__ = ("_failures", "_successes", "last_error", "policy", "state")

    def __init__(self, policy: HealthPolicy) -> None:
        self.policy = policy
        self.state = Health.HEALTHY  # innocent until probed: a new replica serves at once
        self._failures = 0
        self._successes = 0
        self.last_error = ""

    def probe(self, ok: bool, error: str = "") -> Health | None:
        """Record one probe; returns the new state when it changed."""
        before = self.state
        if ok:
            self._successes += 1
            self._failures = 0
            if self.state is Health.DEGRADED or (self.state is Health.UNHEALTHY
                                                 and self._successes >= self.policy.healthy_threshold):
                self.state = Health.HEALTHY
        else:
            self.last_error = error
            self._failures += 1
            self._successes = 0
            if self._failures >= self.policy.unhealthy_threshold:
                self.state = Health.UNHEALTHY
            elif self.state is Health.HEALTHY:
                self.state = Health.DEGRADED
        return self.state if self.state is not before else None
