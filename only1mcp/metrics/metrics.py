"""Every metric Only1MCP exports, built once per process (``Metrics``) and handed to what records them.

Workers record the request path; the supervisor records what it decides (reloads, breakers, health,
workers, stdio restarts). Names follow Prometheus conventions: base units, ``_total`` for counters,
``_seconds`` for durations. Label values are bounded: methods outside MCP's are ``other``, backends come
from the config, tools only from the catalog.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path

from .families import Counter, Gauge, Histogram
from .store import MetricFile, directory_lock

__all__ = ["Metrics"]


class Metrics:
    """One process's metrics, written to ``<kind>_<pid>.db`` files in ``directory``. ``enabled`` is the
    live switch (``metrics.enabled``): recorders check it before recording."""

    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = directory
        self.pid = os.getpid() if pid is None else pid
        self.enabled = True
        counters = MetricFile(directory, "counter", self.pid)
        histograms = MetricFile(directory, "histogram", self.pid)
        gauges = MetricFile(directory, "gauge_livesum", self.pid)
        self._files = (counters, histograms, gauges)
        # ---- the request path (workers)
        self.requests = Counter(counters, "only1mcp_requests_total",
                                "Client JSON-RPC requests answered, by method, the backend that served them ('' when "
                                "the gateway answered itself) and outcome (ok, error, denied, rate_limited)",
                                ("method", "backend", "outcome"))
        self.request_duration = Histogram(histograms, "only1mcp_request_duration_seconds",
                                          "Time from a request's arrival at the dispatcher to its answer",
                                          ("method", "backend"))
        self.backend_duration = Histogram(histograms, "only1mcp_backend_request_duration_seconds",
                                          "Time of each exchange with a backend (every attempt of a retried call)",
                                          ("backend",))
        self.tool_calls = Counter(counters, "only1mcp_tool_calls_total",
                                  "tools/call requests by backend, catalog tool name and outcome",
                                  ("backend", "tool", "outcome"))
        self.sessions_opened = Counter(counters, "only1mcp_sessions_opened_total",
                                       "Client sessions opened (successful initialize requests)", ())
        self.in_flight = Gauge(gauges, "only1mcp_in_flight_requests",
                               "HTTP requests being handled by the workers (sampled every heartbeat and at each "
                               "scrape)", ())
        self.open_streams = Gauge(gauges, "only1mcp_open_streams",
                                  "Open client streams: GET /mcp event streams, legacy SSE streams and WebSockets", ())
        self.bus_dropped = Counter(counters, "only1mcp_bus_dropped_reports_total",
                                   "Reports to the supervisor dropped because its queue was full", ())
        self.rate_limited = Counter(counters, "only1mcp_rate_limited_total",
                                    "Requests refused by a rate limit (HTTP 429 or its JSON-RPC error), by the limit: "
                                    "per_principal, per_tool or per_backend", ("limit",))
        self.auth_refusals = Counter(counters, "only1mcp_auth_refusals_total",
                                     "Credentials refused, by the error the challenge names (invalid_request, "
                                     "invalid_token, insufficient_scope, or none for a request without a credential)",
                                     ("reason",))
        # ---- the control plane (supervisor)
        self.backend_up = Gauge(gauges, "only1mcp_backend_up",
                                "1 while a backend replica passes its health checks, 0 while it fails them",
                                ("backend", "replica"))
        self.breaker_state = Gauge(gauges, "only1mcp_breaker_state",
                                   "A backend replica's circuit breaker: 0 closed, 1 half-open, 2 open",
                                   ("backend", "replica"))
        self.breaker_transitions = Counter(counters, "only1mcp_breaker_transitions_total",
                                           "Circuit breaker transitions, by the state entered",
                                           ("backend", "replica", "state"))
        self.stdio_restarts = Counter(counters, "only1mcp_stdio_restarts_total",
                                      "Restarts of stdio backend children", ("backend",))
        self.reloads = Counter(counters, "only1mcp_config_reload_total",
                               "Config reloads that validated and were applied", ())
        self.reload_errors = Counter(counters, "only1mcp_config_reload_errors_total",
                                     "Config reloads refused because the new config did not validate", ())
        self.last_reload = Gauge(gauges, "only1mcp_config_last_reload_success_timestamp_seconds",
                                 "Unix time of the last successful config load (the start counts)", ())
        self.workers = Gauge(gauges, "only1mcp_workers", "Worker processes serving", ())
        self.worker_restarts = Counter(counters, "only1mcp_worker_restarts_total",
                                       "Workers replaced after they died", ())

    def forget(self, samples: Iterable[tuple[Gauge, tuple[str, ...]]]) -> bool:
        """Remove these gauge samples (family, label values) from this process's file, so a scrape no longer
        shows them (a backend taken out of the config). False when a reading held the directory: nothing was
        changed, call again later (the supervisor's loop does not wait for a scrape)."""
        samples = list(samples)
        with directory_lock(self.directory, fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
            if not locked:
                return False
            for family, values in samples:
                family.forget(*values)
        return True

    def close(self) -> None:
        for file in self._files:
            file.close()
