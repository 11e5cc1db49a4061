"""The `metrics` section: Prometheus metrics of every process, served at /metrics."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .fields import LIVE, _Strict

__all__ = ["MetricsSettings"]


class MetricsSettings(_Strict):
    """Prometheus metrics. Env: ``ONLY1MCP_METRICS__<KEY>``."""

    enabled: Annotated[bool, LIVE] = Field(
        True,
        description="Record metrics in every process and serve their aggregate at `GET /metrics` and `GET "
        "/api/v1/admin/metrics` on every worker (with authentication on, both need `admin:metrics`). Off: nothing "
        "is recorded and both answer 404. Recording costs about 1-2 us of CPU per proxied call (bench.metrics_cost).",
    )
