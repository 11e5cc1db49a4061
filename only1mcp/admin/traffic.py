"""Requests, errors and latency per backend, from the Prometheus samples every process records
(``only1mcp.metrics``): the admin API, ``only1mcp top`` and the status page show these numbers, not a
second count of their own.

Counters since the gateway started; a viewer derives rates and recent quantiles from two readings
(``rate``, ``window_quantile``), as Prometheus' ``rate()`` and ``histogram_quantile()`` do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

__all__ = ["Sample", "quantile", "traffic_by_backend", "window_quantile"]

REQUESTS = "only1mcp_requests_total"
DURATION_BUCKET = "only1mcp_request_duration_seconds_bucket"
ERROR_OUTCOMES = frozenset({"error"})


class Sample(Protocol):
    """One aggregated sample (``only1mcp.metrics.MetricSample`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def value(self) -> float: ...


Buckets = list[tuple[float, float]]  # (upper bound in seconds, cumulative count), ascending, +Inf last


def traffic_by_backend(samples: Iterable[Sample]) -> dict[str, dict[str, Any]]:
    """backend -> requests, errors, p50_ms and p99_ms since start, and the latency buckets they come from.
    Requests the gateway answered itself (backend "") are under ""."""
    out: dict[str, dict[str, Any]] = {}
    buckets: dict[str, dict[float, float]] = {}
    for sample in samples:
        backend = sample.labels.get("backend")
        if backend is None:
            continue
        if sample.name == REQUESTS:
            entry = out.setdefault(backend, _empty())
            entry["requests"] += int(sample.value)
            if sample.labels.get("outcome") in ERROR_OUTCOMES:
                entry["errors"] += int(sample.value)
        elif sample.name == DURATION_BUCKET:
            bound = float(sample.labels.get("le", "+Inf"))
            per = buckets.setdefault(backend, {})
            per[bound] = per.get(bound, 0.0) + sample.value  # summed over methods
    for backend, per in buckets.items():
        entry = out.setdefault(backend, _empty())
        ordered = sorted(per.items())
        entry["buckets"] = [[bound if math.isfinite(bound) else "+Inf", count] for bound, count in ordered]
        entry["p50_ms"] = _ms(quantile(0.5, ordered))
        entry["p99_ms"] = _ms(quantile(0.99, ordered))
    return out


def _empty() -> dict[str, Any]:
    return {"requests": 0, "errors": 0, "p50_ms": None, "p99_ms": None, "buckets": []}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile in seconds of cumulative ``buckets``, interpolated linearly within the bucket it
    falls in (as Prometheus' histogram_quantile); None without observations. A quantile in the +Inf bucket
    is the highest finite bound (all that is known of it)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if not math.isfinite(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def window_quantile(q: float, before: Sequence[Sequence[Any]], after: Sequence[Sequence[Any]]) -> float | None:
    """The ``q`` quantile of the observations between two readings of one backend's ``buckets``."""
    earlier = {str(bound): float(count) for bound, count in before}
    delta = [(float(bound), float(count) - earlier.get(str(bound), 0.0)) for bound, count in after]
    return quantile(q, delta)
