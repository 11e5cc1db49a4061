"""The `rate_limits` section: token buckets that hold across every worker of a gateway."""

from __future__ import annotations

from .fields import _Strict

__all__ = ["RateLimitSettings"]


class RateLimitSettings(_Strict):
    """Request rate limits per principal (per client address when unauthenticated), tool and backend."""
