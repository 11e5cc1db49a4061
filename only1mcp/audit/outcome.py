"""What became of an audited request."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Outcome"]


class Outcome(StrEnum):
    OK = "ok"  # answered with a result
    ERROR = "error"  # answered with a JSON-RPC error, or a tool result flagged isError
    DENIED = "denied"  # refused by rbac (policy.denied.Denied: answered as if the name did not exist)
    RATE_LIMITED = "rate_limited"  # refused by a rate limit (HTTP 429)
    UNAUTHENTICATED = "unauthenticated"  # no valid credential (HTTP 401)
