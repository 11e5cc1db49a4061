"""What became of an audited request, and the error a policy refusal raises inside the dispatcher."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from only1mcp.protocol.jsonrpc import JsonRpcError

__all__ = ["Outcome", "Refused"]


class Outcome(StrEnum):
    OK = "ok"  # answered with a result
    ERROR = "error"  # answered with a JSON-RPC error, or a tool result flagged isError
    DENIED = "denied"  # refused by RBAC (answered as if the name did not exist)
    RATE_LIMITED = "rate_limited"  # refused by a rate limit (HTTP 429)
    UNAUTHENTICATED = "unauthenticated"  # no valid credential (HTTP 401)


class Refused(JsonRpcError):
    """A JSON-RPC error raised by a policy check inside a request's handling: the client gets ``code`` and
    ``message`` like any error, the audit line records ``outcome`` (a denial must look to the client exactly
    like an unknown name, and to the auditor like what it is)."""

    def __init__(self, outcome: Outcome, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        self.outcome = outcome
