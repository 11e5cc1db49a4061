"""What the supervisor records in the metrics: its own decisions (breakers, health, reloads) as they are
published, and the fleet's figures (workers serving, restarts, processes gone) once per loop turn."""

from __future__ import annotations

from pathlib import Path

from only1mcp.bus.messages import ChildStatus
from only1mcp.bus.state import BackendRoutes
from only1mcp.metrics import Metrics, process_gone
from only1mcp.routing.breaker import State as BreakerState
from only1mcp.routing.health import Health

from .config_store import ConfigStore
from .fleet import Fleet

__all__ = ["SupervisorMetrics"]

_BREAKER_VALUE = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 1.0, BreakerState.OPEN: 2.0}


class SupervisorMetrics:
    """The supervisor's recorder. Counts that the fleet and the config store already keep are copied into
    their cells when sampled (they only grow), so neither needs to know about metrics."""

    __slots__ = (
        "_breakers",
        "_child_restarts",
        "_directory",
        "_forget",
        "_gone",
        "_last_reload",
        "_live",
        "_metrics",
        "_reload_errors",
        "_reloads",
        "_restarts",
        "_workers",
    )

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._directory: Path = metrics.directory
        # the series that exist from the start, at zero
        self._workers = metrics.workers.labels()
        self._restarts = metrics.worker_restarts.labels()
        self._reloads = metrics.reloads.labels()
        self._reload_errors = metrics.reload_errors.labels()
        self._last_reload = metrics.last_reload.labels()
        self._breakers: dict[tuple[str, int], BreakerState] = {}
        self._child_restarts: dict[tuple[str, int], int] = {}
        self._live: set[int] = set()  # worker pids seen alive, to notice the ones that are gone
        self._gone: set[int] = set()  # gone, their files not yet folded into the archive (a reading held them)
        self._forget: set[tuple[str, int]] = set()  # replicas taken out, their gauges not yet removed (same)

    def enable(self, on: bool) -> None:
        self._metrics.enabled = on

    def sample(self, fleet: Fleet, config: ConfigStore) -> None:
        """Workers serving and replaced, reloads; a dead worker's gauges are dropped and its counters and
        histograms folded into the archive files (their totals stay)."""
        places = [*fleet.slots, *fleet.standbys.values()]
        live = {place.pid for place in places if place.alive}
        self._gone |= self._live - live
        self._live = live
        if self._gone:
            self._gone = {pid for pid in self._gone if not process_gone(self._directory, pid)}
        self._forget_replicas()
        if not self._metrics.enabled:
            return
        self._workers.set(sum(1 for slot in fleet.slots if slot.alive and slot.ready))
        self._restarts.set(sum(slot.restarts for slot in fleet.slots))
        self._reloads.set(config.reloads_ok)
        self._reload_errors.set(config.reloads_failed)
        self._last_reload.set(config.last_success)

    def routes(self, backend: str, routes: BackendRoutes | None) -> None:
        """A backend's replicas as just published: health, breaker state, and each breaker transition. A
        backend taken out of the config (None), or a replica, loses its gauges: a scrape would otherwise show
        its last health until the supervisor restarts (its counters stay, as totals do)."""
        count = 0 if routes is None else len(routes.replicas)
        gone = {key for key in self._breakers if key[0] == backend and key[1] >= count}
        if gone:
            for key in gone:
                del self._breakers[key]
            self._forget |= gone
            self._forget_replicas()
        if routes is None or not self._metrics.enabled:
            return
        self._forget -= {(backend, index) for index in range(count)}  # back before its removal was written
        metrics = self._metrics
        for index, route in enumerate(routes.replicas):
            replica = str(index)
            metrics.backend_up.labels(backend, replica).set(0.0 if route.health is Health.UNHEALTHY else 1.0)
            metrics.breaker_state.labels(backend, replica).set(_BREAKER_VALUE[route.breaker])
            previous = self._breakers.get((backend, index))
            if previous is None:  # every transition's series exists from the start, at zero
                previous = BreakerState.CLOSED
                for state in BreakerState:
                    metrics.breaker_transitions.labels(backend, replica, state.value)
            if route.breaker is not previous:
                metrics.breaker_transitions.labels(backend, replica, route.breaker.value).add()
            self._breakers[(backend, index)] = route.breaker

    def _forget_replicas(self) -> None:
        """Remove the gauges of replicas taken out; kept for the next turn while a reading holds the files."""
        if not self._forget:
            return
        metrics = self._metrics
        samples = [(gauge, (backend, str(index))) for backend, index in self._forget
                   for gauge in (metrics.backend_up, metrics.breaker_state)]
        if metrics.forget(samples):
            self._forget.clear()

    def child_status(self, status: ChildStatus) -> None:
        """A shared stdio child's report: its restarts since the stdio host started it (a new host counts
        from zero again, which is then all new)."""
        key = (status.backend, status.replica)
        seen = self._child_restarts.get(key, 0)
        added = status.restarts - seen if status.restarts >= seen else status.restarts
        self._child_restarts[key] = status.restarts
        if self._metrics.enabled:
            cell = self._metrics.stdio_restarts.labels(status.backend)  # at zero from the first report
            if added > 0:
                cell.add(added)
