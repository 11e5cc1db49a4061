"""The one exception a refused request raises: what the audit records as ``denied``."""

from __future__ import annotations

from ..auth.principal import Principal
from ..protocol.jsonrpc import JsonRpcError
from .patterns import PolicyKind

__all__ = ["Denied"]


class Denied(JsonRpcError):
    """The caller may not use ``target``. Carries exactly the code, message and data of the error for a
    ``target`` that does not exist (``unknown``), so the answer is the same bytes and tells the client
    nothing about what exists; ``kind``, ``target`` and ``caller`` are for the log and the audit."""

    def __init__(self, unknown: JsonRpcError, kind: PolicyKind, target: str, caller: Principal | None) -> None:
        super().__init__(unknown.code, unknown.message, unknown.data)
        self.kind = kind
        self.target = target
        self.caller = caller
