"""Replica health and circuit breakers, decided here and published as ``routes/<backend>``.

Active: each replica is pinged over its own transport on its backend's interval. Passive: workers report
the outcome of every call (batched) and the breakers count them. Workers never decide; they route by what
is published: a replica is used while its probes pass (healthy or degraded) and its breaker is closed, or
half-open with trial calls left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from only1mcp.backends.base import BackendError
from only1mcp.backends.credentials import Credentials
from only1mcp.backends.factory import AnyBackend, make_transport, replica_count, runs_per_worker
from only1mcp.backends.session import BackendSession
from only1mcp.background import Background
from only1mcp.bus import Envelope, Kind, MessageRouter
from only1mcp.bus.messages import CallOutcomes, ChildState, ChildStatus, LinkPurpose, Sender
from only1mcp.bus.state import BackendRoutes, ReplicaRoute
from only1mcp.config.models import Settings, StdioBackend
from only1mcp.http.client import Http1Pool
from only1mcp.routing.breaker import Breaker, BreakerPolicy, State
from only1mcp.routing.health import Health, HealthPolicy, HealthTracker

__all__ = ["HealthManager"]

log = logging.getLogger("only1mcp.health")

PROBE_CLIENT = {"name": "only1mcp-probe", "version": "1"}
_TICK = 0.25  # seconds between checks for breakers whose cooldown is over


class _Replica:
    __slots__ = ("breaker", "calls", "health", "hosted", "latency", "probe_session", "task")

    def __init__(self, backend: AnyBackend) -> None:
        b, h = backend.breaker, backend.health
        self.breaker = Breaker(BreakerPolicy(b.failures, b.error_rate, b.window, b.min_calls, b.cooldown,
                                             b.max_cooldown, b.half_open_calls))
        self.health = HealthTracker(HealthPolicy(h.interval, h.timeout, h.healthy_threshold,
                                                 h.unhealthy_threshold))
        self.probe_session: BackendSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.calls = 0
        self.latency = 0.0  # moving average of call latency in seconds, for status
        # A shared stdio child is probed once the stdio host has reported on it (it may still be starting).
        self.hosted = asyncio.Event()
        if not isinstance(backend, StdioBackend):
            self.hosted.set()

    def route(self) -> ReplicaRoute:
        reason = self.health.last_error if self.health.state is not Health.HEALTHY else ""
        if self.breaker.state is not State.CLOSED:
            reason = self.breaker.reason
        return ReplicaRoute(self.health.state, self.breaker.state, self.breaker.retry_at, reason,
                            self.breaker.policy.half_open_calls)

    def describe(self) -> dict[str, Any]:
        route = self.route()
        return {"health": route.health.value, "breaker": route.breaker.value, "retry_at": route.retry_at,
                "reason": route.reason, "trials": route.trials, "calls": self.calls,
                "latency_ms": round(self.latency * 1000, 2),
                "last_error": self.breaker.last_error or self.health.last_error}


class HealthManager:
    """One probe loop per replica; breakers fed by probes' absence of calls and by workers' outcomes."""

    def __init__(self, runtime_dir: Path, publish: Callable[[str, BackendRoutes | None], None],
                 sender: Sender, credentials: Callable[[str], Credentials | None] = lambda _name: None) -> None:
        self._runtime_dir = runtime_dir
        self._credentials = credentials  # a backend's oauth token for the probes (None: it has none)
        self._sender = sender
        self._publish = publish
        self._backends: dict[str, AnyBackend] = {}
        self._replicas: dict[str, list[_Replica]] = {}
        self._http = Http1Pool()
        self._tasks = Background("health")
        self._ticker: asyncio.Task[None] | None = None

    def register(self, router: MessageRouter) -> None:
        router.register(Kind.CALL_OUTCOMES, self._outcomes)

    async def apply(self, settings: Settings) -> None:
        """Adopt a config: keep the state of unchanged backends, start over for changed ones."""
        wanted = {b.name: b for b in settings.enabled_backends()}
        for name in list(self._backends):
            if wanted.get(name) != self._backends[name]:
                await self._drop(name)
        for name, backend in wanted.items():
            if name not in self._backends:
                self._backends[name] = backend
                self._replicas[name] = [_Replica(backend) for _ in range(replica_count(backend))]
                for index, replica in enumerate(self._replicas[name]):
                    # Each worker runs its own child of a per_worker backend: a probe from here would test
                    # another process, so such replicas are judged by the outcomes of the workers' calls.
                    if backend.health.enabled and not runs_per_worker(backend):
                        replica.task = self._tasks.spawn(self._probe_loop(backend, index, replica),
                                                         f"probe-{name}-{index}")
                self._publish_backend(name)
        if self._ticker is None:
            self._ticker = self._tasks.spawn(self._tick_loop(), "breaker-ticks")

    async def _drop(self, name: str) -> None:
        for replica in self._replicas.pop(name, []):
            if replica.task is not None:
                replica.task.cancel()
            if replica.probe_session is not None:
                await replica.probe_session.close()
        del self._backends[name]
        self._publish(name, None)

    # ------------------------------------------------------------ probes

    async def _probe_loop(self, backend: AnyBackend, index: int, replica: _Replica) -> None:
        policy = backend.health
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(replica.hosted.wait(), backend.timeouts.startup)
        while True:
            ok, error = await self._probe(backend, index, replica, policy.timeout)
            changed = replica.health.probe(ok, error)
            if changed is not None:
                level = logging.INFO if changed is Health.HEALTHY else logging.WARNING
                log.log(level, "backend '%s' replica %d is %s%s", backend.name, index, changed.value,
                        f" ({error})" if error else "")
                self._publish_backend(backend.name)
            await asyncio.sleep(policy.interval)

    async def _probe(self, backend: AnyBackend, index: int, replica: _Replica, timeout: float) -> tuple[bool, str]:
        try:
            session = replica.probe_session
            if session is None or session.closed:
                replica.probe_session = None
                if session is not None:
                    await session.close()
                transport = make_transport(backend, index, self._runtime_dir, self._http, self._sender,
                                           LinkPurpose.PROBE, self._credentials(backend.name))
                session = BackendSession(transport, backend.name, {}, startup_timeout=timeout,
                                         client_info=PROBE_CLIENT)
                try:
                    await asyncio.wait_for(session.start(), timeout)
                except BaseException:
                    await session.close()  # a session that never started is not reused: the next probe opens anew
                    raise
                replica.probe_session = session
            await session.call("ping", None, timeout)
        except BackendError as exc:
            return False, exc.message
        except (OSError, TimeoutError) as exc:
            return False, str(exc) or "ping timed out"
        return True, ""

    def stdio_status(self, status: ChildStatus) -> None:
        """The stdio host saw its child exit: count it as a failed probe at once, not at the next interval."""
        name, index = status.backend, status.replica
        replicas = self._replicas.get(name)
        if replicas is None or not 0 <= index < len(replicas):
            return
        replicas[index].hosted.set()
        if status.state in (ChildState.RUNNING, ChildState.IDLE, ChildState.STARTING):
            return
        error = status.last_error or status.state.value
        if replicas[index].health.probe(False, error) is not None:
            log.warning("backend '%s' replica %d is %s (%s)", name, index, replicas[index].health.state.value, error)
            self._publish_backend(name)

    # ------------------------------------------------------------ call outcomes and breakers

    def _outcomes(self, envelope: Envelope) -> None:
        report = envelope.payload
        assert isinstance(report, CallOutcomes)
        self.outcomes(report)

    def outcomes(self, report: CallOutcomes) -> None:
        """A worker's batch of call outcomes, per backend replica."""
        now = time.time()
        changed: set[str] = set()
        for batch in report.batches:
            replicas = self._replicas.get(batch.backend)
            if replicas is None or not 0 <= batch.replica < len(replicas):
                continue
            replica = replicas[batch.replica]
            replica.calls += len(batch.outcomes)
            if batch.outcomes:
                replica.latency = 0.8 * replica.latency + 0.2 * batch.latency
            for flag in batch.outcomes:
                transition = replica.breaker.record(flag == "1", now, batch.error)
                if transition is not None:
                    self._log_transition(batch.backend, batch.replica, transition.state, transition.reason)
                    changed.add(batch.backend)
        for name in changed:
            self._publish_backend(name)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(_TICK)
            now = time.time()
            for name, replicas in self._replicas.items():
                changed = False
                for index, replica in enumerate(replicas):
                    transition = replica.breaker.tick(now)
                    if transition is not None:
                        self._log_transition(name, index, transition.state, transition.reason)
                        changed = True
                if changed:
                    self._publish_backend(name)

    def replica_count(self, name: str) -> int:
        return len(self._replicas.get(name, ()))

    def reset(self, name: str, replica: int) -> list[int]:
        """An operator's reset: close the breaker of ``replica`` (-1: of every replica) of backend ``name``
        and publish it; returns the replicas reset."""
        replicas = self._replicas.get(name, [])
        chosen = range(len(replicas)) if replica < 0 else [replica]
        now = time.time()
        for index in chosen:
            transition = replicas[index].breaker.reset(now, "reset by an operator (admin API)")
            if transition is not None:
                self._log_transition(name, index, transition.state, transition.reason)
        self._publish_backend(name)
        return list(chosen)

    @staticmethod
    def _log_transition(name: str, index: int, state: State, reason: str) -> None:
        level = logging.WARNING if state is State.OPEN else logging.INFO
        log.log(level, "backend '%s' replica %d breaker %s: %s", name, index, state.value, reason)

    def _publish_backend(self, name: str) -> None:
        replicas = self._replicas.get(name, [])
        self._publish(name, BackendRoutes(tuple(r.route() for r in replicas)))

    def describe(self) -> dict[str, Any]:
        return {name: [r.describe() for r in replicas] for name, replicas in self._replicas.items()}

    async def close(self) -> None:
        for name in list(self._backends):
            await self._drop(name)
        await self._tasks.close()
        self._http.close()
