"""The request path's recording: label children bound once per (method, backend), so a call costs dictionary
lookups and cell writes, never label formatting (bench.metrics_cost measures it)."""

from __future__ import annotations

from bisect import bisect_left

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

# (the request's count, its tool's count or None, the duration histogram)
_Bound = tuple[Cell, Cell | None, HistogramChild]

# Why a credential was refused: the error its challenge names (RFC 6750), "none" for a missing credential.
REFUSALS = ("none", "invalid_request", "invalid_token", "insufficient_scope")


class RequestMetrics:
    """What a worker's dispatcher records per request. ``on`` is read by the caller first (the config's
    live switch), so with metrics off a request pays one attribute read."""


    __slots__ = ("_exchanges", "_limits", "_metrics", "_refusals", "_requests", "_sessions", "on")

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.on = metrics.enabled  # a plain attribute: read on every request
        # (method, backend, tool, outcome) -> its counts and the (method, backend) histogram: one lookup a request
        self._requests: dict[tuple[str, str, str, str], _Bound] = {}
        self._exchanges: dict[str, HistogramChild] = {}
        self._sessions = metrics.sessions_opened.labels()  # at zero from the start
        self._refusals = {reason: metrics.auth_refusals.labels(reason) for reason in REFUSALS}
        self._limits: dict[str, Cell] = {}

    def switch(self, on: bool) -> None:
        """``metrics.enabled`` as the config now says."""
        self.on = self._metrics.enabled = on

    def session_opened(self) -> None:
        self._sessions.add()

    def rate_limited(self, limit: str) -> None:
        """A request a rate limit refused (``limit``: the config's name for it)."""
        cell = self._limits.get(limit)
        if cell is None:
            cell = self._limits[limit] = self._metrics.rate_limited.labels(limit)
        cell.add()

    def refused(self, error: str | None) -> None:
        """A credential refused with a challenge naming ``error`` (None: no credential was given)."""
        cell = self._refusals.get(error or "none")
        if cell is None:  # an error outside RFC 6750's: still one series per kind of error the guard makes
            cell = self._refusals[error or "none"] = self._metrics.auth_refusals.labels(error or "none")
        cell.add()

    def request(self, method: str, backend: str, outcome: str, seconds: float, tool: str = "") -> None:
        """A request answered: ``backend`` is '' when the gateway answered it itself; ``tool``: the catalog's
        tool a tools/call named ('' otherwise; the caller checks it is in the catalog, so the label set stays
        the catalog's).

        Written out flat, one lookup and four stores, because it runs for every request: the cells are bound
        once per (method, backend, tool, outcome) (bench.metrics_cost)."""
        if method not in METHODS:
            method = "other"
        bound = self._requests.get((method, backend, tool, outcome))
        if bound is None:
            bound = self._bind(method, backend, tool, outcome)
        count, tool_count, histogram = bound
        count.value = value = count.value + 1.0
        count.values[count.index] = value
        if tool_count is not None:
            tool_count.value = value = tool_count.value + 1.0
            tool_count.values[tool_count.index] = value
        bucket = bisect_left(histogram.bounds, seconds)  # HistogramChild.observe, written out
        counts = histogram.counts
        counts[bucket] = value = counts[bucket] + 1.0
        values = histogram.values
        values[histogram.indexes[bucket]] = value
        histogram.sum = value = histogram.sum + seconds
        values[histogram.sum_index] = value

    def _bind(self, method: str, backend: str, tool: str, outcome: str) -> _Bound:
        metrics = self._metrics
        bound = self._requests[(method, backend, tool, outcome)] = (
            metrics.requests.labels(method, backend, outcome),
            metrics.tool_calls.labels(backend, tool, outcome) if tool else None,
            metrics.request_duration.labels(method, backend))
        return bound

    def exchange(self, backend: str, seconds: float) -> None:
        """One exchange with a backend (each attempt of a retried call counts)."""
        child = self._exchanges.get(backend)
        if child is None:
            child = self._exchanges[backend] = self._metrics.backend_duration.labels(backend)
        child.observe(seconds)
