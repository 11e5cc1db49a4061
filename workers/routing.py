"""Which replica of a backend takes a call, and what this worker tells the supervisor about calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from only1mcp.backends.base import BackendUnavailable
from only1mcp.backends.factory import AnyBackend, replica_count
from only1mcp.bus import Kind, Reporter
from only1mcp.bus.messages import CallOutcomes, OutcomeBatch
from only1mcp.bus.state import BackendRoutes, ReplicaRoute
from only1mcp.config.models import StdioBackend
from only1mcp.routing.balancers import make_balancer
from only1mcp.routing.breaker import State as BreakerState
from only1mcp.routing.health import Health

__all__ = ["OutcomeBatcher", "Router"]

_FLUSH = 0.1  # seconds: successes are batched; a failure is reported at once


class Router:
    """A backend's replicas as this worker sees them: the supervisor's verdicts plus its own in-flight
    counts. A replica takes calls while it is not unhealthy and its breaker is closed, or half-open with
    trial calls left (each worker lets ``trials`` through at a time)."""

    __slots__ = ("_balancer", "_states", "_trials", "count", "drained", "hash_argument", "in_flight", "name")

    def __init__(self, backend: AnyBackend) -> None:
        self.name = backend.name
        self.count = replica_count(backend)
        if isinstance(backend, StdioBackend) or not backend.replicas:
            weights = [backend.weight] * self.count
        else:
            weights = [r.weight for r in backend.replicas]
        self.in_flight = [0] * self.count
        self._trials = [0] * self.count
        self._balancer = make_balancer(backend.balance, weights, self.in_flight)
        self._states: list[ReplicaRoute | None] = [None] * self.count
        self.hash_argument = backend.hash_key.partition(":")[2] or None
        self.drained = False  # an operator's order (admin API): no new call goes to any replica

    def update(self, published: BackendRoutes | None) -> None:
        replicas = published.replicas if published is not None else ()
        self._states = [replicas[i] if i < len(replicas) else None for i in range(self.count)]

    def _usable(self, replica: int) -> bool:
        state = self._states[replica]
        if state is None:
            return True  # not judged yet: usable
        if state.health is Health.UNHEALTHY:
            return False
        if state.breaker is BreakerState.CLOSED:
            return True
        return state.breaker is BreakerState.HALF_OPEN and self._trials[replica] < state.trials

    def choose(self, key: str | None, exclude: Sequence[int] = ()) -> int:
        if self.drained:
            raise BackendUnavailable(f"backend '{self.name}' is drained by an operator: it takes no new calls until "
                                     f"it is undrained (POST /api/v1/admin/backends/{self.name}/undrain)")
        candidates = [r for r in range(self.count) if r not in exclude and self._usable(r)]
        if not candidates:
            raise BackendUnavailable(self._why(exclude))
        return self._balancer.pick(candidates, key)

    def _why(self, tried: Sequence[int]) -> str:
        """Why no replica can take a call now, and when that may change."""
        reasons: list[str] = []
        next_try: float | None = None
        for index, state in enumerate(self._states):
            if index in tried or state is None:
                continue
            label = f"replica {index}: " if self.count > 1 else ""
            if state.breaker is not BreakerState.CLOSED:
                if state.retry_at is not None:
                    next_try = state.retry_at if next_try is None else min(next_try, state.retry_at)
                reasons.append(f"{label}circuit {state.breaker.value.replace('_', '-')} ({state.reason})")
            elif state.health is Health.UNHEALTHY:
                reasons.append(f"{label}failing health checks ({state.reason})")
        if tried:
            reasons.insert(0, f"{len(tried)} replica(s) already failed this request")
        when = ""
        if next_try is not None:
            when = f"; next attempt in {max(0.0, next_try - time.time()):.1f}s"
        return f"backend '{self.name}' is unavailable: {'; '.join(reasons) or 'no replica'}{when}"

    def started(self, replica: int) -> bool:
        """Count a call starting; True when it is a half-open trial (pass it back to ``finished``)."""
        self.in_flight[replica] += 1
        state = self._states[replica]
        trial = state is not None and state.breaker is BreakerState.HALF_OPEN
        if trial:
            self._trials[replica] += 1
        return trial

    def finished(self, replica: int, trial: bool) -> None:
        self.in_flight[replica] -= 1
        if trial:
            self._trials[replica] -= 1


class OutcomeBatcher:
    """Call outcomes per (backend, replica), sent to the supervisor every 100 ms, or at once on a failure
    so a breaker can open without waiting for the batch."""

    __slots__ = ("_handle", "_pending", "_reporter")

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._handle: asyncio.TimerHandle | None = None

    def record(self, backend: str, replica: int, ok: bool, latency: float, error: str = "") -> None:
        batch = self._pending.get((backend, replica))
        if batch is None:
            batch = self._pending[(backend, replica)] = _Pending()
        batch.outcomes.append("1" if ok else "0")
        batch.latency += latency
        if not ok:
            batch.error = error
            self.flush()
        elif self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(_FLUSH, self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._pending:
            return
        batches = tuple(OutcomeBatch(backend, replica, "".join(b.outcomes), b.error, b.latency / len(b.outcomes))
                        for (backend, replica), b in self._pending.items())
        self._pending = {}
        self._reporter.send(Kind.CALL_OUTCOMES, CallOutcomes(batches))


class _Pending:
    __slots__ = ("error", "latency", "outcomes")

    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.latency = 0.0
        self.error = ""
