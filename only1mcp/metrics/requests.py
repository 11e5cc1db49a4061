"""The request path's recording: label children bound once per (method, backend), so a call costs dictionary
lookups and cell writes, never label formatting (bench.metrics_cost measures it)."""

from __future__ import annotations

from .families import HistogramChild
from .metrics import Metrics
from .store import Cell

__all__ = ["METHODS", "RequestMetrics"]

# What a client may ask; anything else is counted as "other", so a client cannot grow the label set.
METHODS = frozenset({
    "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
    "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
    "completion/complete", "logging/setLevel", "tasks/get", "tasks/result", "tasks/cancel", "tasks/list",
    "server/discover", "subscriptions/listen",
})


class _Series:
    """One (method, backend): its counter per outcome and its duration histogram."""

    __slots__ = ("_backend", "_method", "_requests", "duration", "outcomes")

    def __init__(self, metrics: Metrics, method: str, backend: str) -> None:
        self._method = method
        self._backend = backend
        self._requests = metrics.requests
        self.outcomes: dict[str, Cell] = {}
        self.duration: HistogramChild = metrics.request_duration.labels(method, backend)

    def outcome(self, outcome: str) -> Cell:
        cell = self.outcomes.get(outcome)
        if cell is None:
            cell = self.outcomes[outcome] = self._requests.labels(self._method, self._backend, outcome)
        return cell


class RequestMetrics:
    """What a worker's dispatcher records per request. ``on`` is read by the caller first (the config's
    live switch), so with metrics off a request pays one attribute read."""


    __slots__ = ("_exchanges", "_metrics", "_series", "_sessions", "_tools", "on")

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.on = metrics.enabled  # a plain attribute: read on every request
        self._series: dict[tuple[str, str], _Series] = {}
        self._tools: dict[tuple[str, str, str], Cell] = {}
        self._exchanges: dict[str, HistogramChild] = {}
        self._sessions = metrics.sessions_opened.labels()  # at zero from the start

    def switch(self, on: bool) -> None:
        """``metrics.enabled`` as the config now says."""
        self.on = self._metrics.enabled = on

    def session_opened(self) -> None:
        self._sessions.add()

    def request(self, method: str, backend: str, outcome: str, seconds: float) -> None:
        """A request answered: ``backend`` is '' when the gateway answered it itself."""
        if method not in METHODS:
            method = "other"
        series = self._series.get((method, backend))
        if series is None:
            series = self._series[(method, backend)] = _Series(self._metrics, method, backend)
        series.outcome(outcome).add()
        series.duration.observe(seconds)

    def tool_call(self, backend: str, tool: str, outcome: str) -> None:
        """A tools/call of a tool in the catalog (the caller checks: the label set stays the catalog's)."""
        key = (backend, tool, outcome)
        cell = self._tools.get(key)
        if cell is None:
            cell = self._tools[key] = self._metrics.tool_calls.labels(backend, tool, outcome)
        cell.add()

    def exchange(self, backend: str, seconds: float) -> None:
        """One exchange with a backend (each attempt of a retried call counts)."""
        child = self._exchanges.get(backend)
        if child is None:
            child = self._exchanges[backend] = self._metrics.backend_duration.labels(backend)
        child.observe(seconds)
