"""The `rate_limits` section: token buckets that hold across every worker of a gateway."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .fields import LIVE, _hint, _Strict

__all__ = ["BucketSettings", "RateLimitSettings"]

_EXAMPLE = {"rate": 10, "burst": 20}


class BucketSettings(_Strict):
    """One token bucket: ``burst`` requests at once, refilled at ``rate`` per second."""

    rate: float = Field(
        ...,
        gt=0,
        le=1_000_000,
        description="Requests per second the bucket refills with (its sustained rate; 0.5 is one every 2 s).",
        json_schema_extra=_hint("write requests per second greater than 0, e.g. 10"),
    )
    burst: int = Field(
        ...,
        ge=1,
        le=10_000_000,
        description="Requests the bucket holds when full: how many may come at once after a quiet spell.",
        json_schema_extra=_hint("write a whole number of requests, at least 1, e.g. 20"),
    )

    def describe(self) -> str:
        """As refusals name it: '10/s, burst 20'."""
        return f"{self.rate:g}/s, burst {self.burst}"


class RateLimitSettings(_Strict):
    """Request rate limits per principal (per client address when unauthenticated), tool and backend. Each is
    off unless set. Env: ``ONLY1MCP_RATE_LIMITS__<KEY>__RATE`` and ``…__BURST``."""

    per_principal: Annotated[BucketSettings | None, LIVE] = Field(
        None,
        description="Requests each principal may send, all doors together (`{rate, burst}`). A principal is who "
        "the credential names, or the client's IP address while authentication is off. Every JSON-RPC request "
        "counts (not notifications or answers); a refused one gets HTTP 429 with Retry-After, or on a WebSocket "
        "or legacy SSE stream the JSON-RPC error alone.",
        examples=[_EXAMPLE],
        json_schema_extra=_hint("write {rate: <requests per second>, burst: <requests>}, e.g. {rate: 10, "
                                "burst: 20}"),
    )
    per_tool: Annotated[BucketSettings | None, LIVE] = Field(
        None,
        description="tools/call of one tool by one principal (`{rate, burst}`): a bucket per principal and tool, "
        "so one client cannot hog an expensive tool while others still get it. Checked when the call is routed.",
        examples=[_EXAMPLE],
        json_schema_extra=_hint("write {rate: <calls per second>, burst: <calls>}, e.g. {rate: 5, burst: 10}"),
    )
    per_backend: Annotated[BucketSettings | None, LIVE] = Field(
        None,
        description="tools/call routed to one backend, by everyone together (`{rate, burst}`): protects each "
        "backend from the sum of all clients. Checked when the call is routed.",
        examples=[_EXAMPLE],
        json_schema_extra=_hint("write {rate: <calls per second>, burst: <calls>}, e.g. {rate: 100, "
                                "burst: 200}"),
    )
