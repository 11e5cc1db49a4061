"""The request path's recording: label children bound once per (method, backend), so a call costs dictionary
lookups and cell writes, never label formatting (bench.metrics_cost measures it)."""

from __future__ import annotations

from .families import HistogramChild
from .metrics import Metrics
from .store import Cell

__all__ = ["METHODS", "REFUSALS", "RequestMetrics"]

# What a client may ask; anything else is counted as "other", so a client cannot grow the label set.
METHODS = frozenset({
    "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
    "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
    "completion/complete", "logging/setLevel", "tasks/get", "tasks/result", "tasks/cancel", "tasks/list",
    "server/discover", "subscriptions/listen",
})

# Why a credential was refused: the error its challenge names (RFC 6750), "none" for a missing credential.
REFUSALS = ("none", "invalid_request", "invalid_token", "insufficient_scope")


class RequestMetrics:
    """What a worker's dispatcher records per request. ``on`` is read by the caller first (the config's
    live switch), so with metrics off a request pays one attribute read."""


    __slots__ = ("_exchanges", "_metrics", "_refusals", "_requests", "_sessions", "_tools", "on")

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.on = metrics.enabled  # a plain attribute: read on every request
        # (method, backend, outcome) -> its counter and the (method, backend) histogram: one lookup a request
        self._requests: dict[tuple[str, str, str], tuple[Cell, HistogramChild]] = {}
        self._tools: dict[tuple[str, str, str], Cell] = {}
        self._exchanges: dict[str, HistogramChild] = {}
        self._sessions = metrics.sessions_opened.labels()  # at zero from the start
        self._refusals = {reason: metrics.auth_refusals.labels(reason) for reason in REFUSALS}

    def switch(self, on: bool) -> None:
        """``metrics.enabled`` as the config now says."""
        self.on = self._metrics.enabled = on

    def session_opened(self) -> None:
        self._sessions.add()

    def refused(self, error: str | None) -> None:
        """A credential refused with a challenge naming ``error`` (None: no credential was given)."""
        cell = self._refusals.get(error or "none")
        if cell is None:  # an error outside RFC 6750's: still one series per kind of error the guard makes
            cell = self._refusals[error or "none"] = self._metrics.auth_refusals.labels(error or "none")
        cell.add()

    def request(self, method: str, backend: str, outcome: str, seconds: float) -> None:
        """A request answered: ``backend`` is '' when the gateway answered it itself."""
        if method not in METHODS:
            method = "other"
        key = (method, backend, outcome)
        bound = self._requests.get(key)
        if bound is None:
            metrics = self._metrics
            bound = self._requests[key] = (metrics.requests.labels(*key),
                                           metrics.request_duration.labels(method, backend))
        bound[0].add()
        bound[1].observe(seconds)

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
