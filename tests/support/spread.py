"""How requests spread over the workers, from the counts each worker reports to the supervisor."""

from __future__ import annotations

import time
from typing import Any

from .gateway import Gateway
from .waiting import eventually, wait_until


class RequestCounts:
    """Requests each worker served since a baseline, not counting the admin status requests that read them.

    Workers report their counts with their heartbeats (one a second), so the baseline is a status in which
    every worker's heartbeat is newer than the call that asked for it: it includes all earlier traffic.
    Each status request is itself a request to one worker, which its answer names (``served_by``); all of
    them are subtracted, so ``served`` is a lower bound of the other traffic and can only catch up.
    """

    def __init__(self) -> None:
        self.baseline: dict[int, int] = {}
        self.probes: dict[int, int] = {}

    @classmethod
    def take(cls, gateway: Gateway) -> RequestCounts:
        counts, started = cls(), time.monotonic()
        def fresh() -> dict[str, Any] | None:
            since = time.monotonic() - started  # measured before asking: a lower bound of the wait
            status = gateway.status()
            counts._count_probe(status)
            return counts._fresh(status, since)

        status = wait_until(fresh, 10, "a heartbeat from every worker", interval=0.25)
        return counts._based_on(status)

    @classmethod
    async def fetch(cls, gateway: Gateway) -> RequestCounts:
        counts, started = cls(), time.monotonic()

        async def fresh() -> dict[str, Any] | None:
            since = time.monotonic() - started  # measured before asking: a lower bound of the wait
            status = await gateway.fetch_status()
            counts._count_probe(status)
            return counts._fresh(status, since)

        status = await eventually(fresh, 10, "a heartbeat from every worker", interval=0.25)
        return counts._based_on(status)

    @staticmethod
    def _fresh(status: dict[str, Any], since: float) -> dict[str, Any] | None:
        workers = [w for w in status["workers"] if w["pid"]]
        return status if workers and all(w["heartbeat_age"] < since for w in workers) else None

    def _based_on(self, status: dict[str, Any]) -> RequestCounts:
        # Every status request so far is subtracted later, also those its counts already include: which ones
        # a heartbeat included is unknown, and counting too few is the safe side.
        self.baseline = _requests(status)
        return self

    def _count_probe(self, status: dict[str, Any]) -> None:
        pid = status["served_by"]["pid"]
        self.probes[pid] = self.probes.get(pid, 0) + 1

    def served(self, status: dict[str, Any]) -> dict[int, int]:
        """pid -> requests since the baseline, other than status requests, for each worker in ``status``."""
        self._count_probe(status)
        return {pid: count - self.baseline.get(pid, 0) - self.probes.get(pid, 0)
                for pid, count in _requests(status).items()}

    def _each_served(self, status: dict[str, Any], minimum: int, seen: dict[int, int]) -> bool:
        seen.clear()
        seen.update(self.served(status))
        return len(seen) == len(self.baseline) and all(n >= minimum for n in seen.values())

    def _spread_failure(self, exc: AssertionError, seen: dict[int, int]) -> AssertionError:
        return AssertionError(f"{exc}: requests by worker {seen}, status requests {self.probes}")

    def wait_each_served(self, gateway: Gateway, minimum: int, timeout: float = 10.0) -> None:
        """Until every worker has served ``minimum`` requests since the baseline."""
        seen: dict[int, int] = {}
        try:
            wait_until(lambda: self._each_served(gateway.status(), minimum, seen), timeout,
                       f"every worker to report {minimum} requests", interval=0.2)
        except AssertionError as exc:
            raise self._spread_failure(exc, seen) from None

    async def each_served(self, gateway: Gateway, minimum: int, timeout: float = 10.0) -> None:
        """``wait_each_served`` for async tests."""
        seen: dict[int, int] = {}

        async def check() -> bool:
            return self._each_served(await gateway.fetch_status(), minimum, seen)

        try:
            await eventually(check, timeout, f"every worker to report {minimum} requests", interval=0.2)
        except AssertionError as exc:
            raise self._spread_failure(exc, seen) from None


def _requests(status: dict[str, Any]) -> dict[int, int]:
    return {w["pid"]: w["requests"] for w in status["workers"] if w["pid"]}
