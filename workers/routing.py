"""Which replica of a backend takes a call, and what this worker tells the supervisor about calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from only1mcp.backends.base import BackendUnavailable
from only1mcp.backends.factory import AnyBackend, replica_count
from only1mcp.bus import Kind, Reporter
from only1mcp.config.models import StdioBackend
from only1mcp.routing.balancers import make_balancer

__all__ = ["OutcomeBatcher", "Router"]

_FLUSH = 0.1  # seconds: successes are batched; a failure is reported at once


class Router:
    """A backend's replicas as this worker sees them: the supervisor's verdicts plus its own in-flight
    counts. A replica takes calls while it is not unhealthy and its breaker is closed, or half-open with
    trial calls left (each worker lets ``trials`` through at a time)."""

    __slots__ = ("_balancer", "_states", "_trials", "count", "hash_argument", "in_flight", "name")

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
        self._states: list[dict[str, Any]] = [{} for _ in range(self.count)]
        self.hash_argument = backend.hash_key.partition(":")[2] or None

    def update(self, published: dict[str, Any] | None) -> None:
        replicas = (published or {}).get("replicas") or []
        self._states = [replicas[i] if i < len(replicas) else {} for i in range(self.count)]

    def _usable(self, replica: int) -> bool:
        state = self._states[replica]
        if state.get("health") == "unhealthy":
            return False
        breaker = state.get("breaker", "closed")
        if breaker == "closed":
            return True
        return breaker == "half_open" and self._trials[replica] < int(state.get("trials", 1))

    def choose(self, key: str | None, exclude: Sequence[int] = ()) -> int:
        candidates = [r for r in range(self.count) if r not in exclude and self._usable(r)]
        if not candidates:
            raise BackendUnavailable(self._why(exclude))
        return self._balancer.pick(candidates, key)

    def _why(self, tried: Sequence[int]) -> str:
        """Why no replica can take a call now, and when that may change."""
        reasons: list[str] = []
        next_try: float | None = None
        for index, state in enumerate(self._states):
            if index in tried:
                continue
            label = f"replica {index}: " if self.count > 1 else ""
            if state.get("breaker") in ("open", "half_open"):
                retry_at = state.get("retry_at")
                if retry_at is not None:
                    next_try = retry_at if next_try is None else min(next_try, retry_at)
                reasons.append(f"{label}circuit {state.get('breaker').replace('_', '-')} ({state.get('reason')})")
            elif state.get("health") == "unhealthy":
                reasons.append(f"{label}failing health checks ({state.get('reason')})")
        if tried:
            reasons.insert(0, f"{len(tried)} replica(s) already failed this request")
        when = ""
        if next_try is not None:
            when = f"; next attempt in {max(0.0, next_try - time.time()):.1f}s"
        return f"backend '{self.name}' is unavailable: {'; '.join(reasons) or 'no replica'}{when}"

    def started(self, replica: int) -> bool:
        """Count a call starting; True when it is a half-open trial (pass it back to ``finished``)."""
        self.in_flight[replica] += 1
        trial = self._states[replica].get("breaker") == "half_open"
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
        self._pending: dict[str, dict[str, dict[str, Any]]] = {}
        self._handle: asyncio.TimerHandle | None = None

    def record(self, backend: str, replica: int, ok: bool, latency: float, error: str = "") -> None:
        batch = self._pending.setdefault(backend, {}).setdefault(str(replica), {"ok": "", "latency": 0.0,
                                                                                "n": 0})
        batch["ok"] += "1" if ok else "0"
        batch["n"] += 1
        batch["latency"] += latency
        if not ok:
            batch["error"] = error
            self.flush()
        elif self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(_FLUSH, self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._pending:
            return
        report = {backend: {replica: {"ok": b["ok"], "error": b.get("error", ""), "latency": b["latency"] / b["n"]}
                            for replica, b in replicas.items()} for backend, replicas in self._pending.items()}
        self._pending = {}
        self._reporter.report(Kind.CALL_OUTCOMES, report)
