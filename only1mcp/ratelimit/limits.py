"""The limits a request can meet, the key each one counts under, and how a refusal reads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from only1mcp.auth.principal import AuthMethod, Principal

__all__ = ["Limit", "Refusal", "principal_key", "retry_after"]


class Limit(StrEnum):
    """A configured bucket family (its name under ``rate_limits``); values are the wire format."""

    PER_PRINCIPAL = "per_principal"  # one bucket per principal: every request at every door
    PER_TOOL = "per_tool"  # one per principal and tool: tools/call
    PER_BACKEND = "per_backend"  # one per backend, everyone together: tools/call


_ANONYMOUS = f"{AuthMethod.ANONYMOUS.value}:"  # formatting the enum member on every request cost 0.4 us


def principal_key(caller: Principal | None, address: str) -> str:
    """Who a request counts against: its authenticated principal, else (authentication off) the client's
    address, written as the key an anonymous principal of that address would have."""
    if caller is not None:
        return caller.key
    return _ANONYMOUS + address


def retry_after(seconds: float) -> int:
    """Whole seconds for Retry-After: rounded up, at least 1 (0 would invite an immediate retry)."""
    return max(1, math.ceil(seconds))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused by a limit: which one, its shape as configured, and when to come back."""

    limit: Limit
    rate: float
    burst: int
    retry_after: int  # whole seconds, at least 1

    @property
    def message(self) -> str:
        return (f"rate limit {self.limit} exceeded: {self.rate:g}/s, burst {self.burst}; retry after "
                f"{self.retry_after} s")

    @property
    def data(self) -> dict[str, Any]:
        """The JSON-RPC error's data: the same facts for programs."""
        return {"limit": str(self.limit), "rate": self.rate, "burst": self.burst, "retryAfter": self.retry_after}
