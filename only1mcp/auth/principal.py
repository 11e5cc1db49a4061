"""The principal a request was authenticated as: what policy, quotas and the audit trail key on."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["AuthMethod", "Principal"]


class AuthMethod(StrEnum):
    ANONYMOUS = "anonymous"  # auth.mode none: known by the client's address only
    JWT = "jwt"
    API_KEY = "api_key"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request. ``subject``: a JWT's ``sub``, an API key's configured name, or the client's
    address when authentication is off. ``roles`` and ``scopes`` come from the credential of this request
    (a refreshed token may carry others than the one that opened the session)."""

    subject: str
    method: AuthMethod
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    expires: float | None = None  # wall-clock time the credential stops being valid
    # The stable identity: sealed into the sessions this principal opens, and a rate-limit key. Made once
    # (a principal is remembered per token; every request of a session compares its key).
    key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.method}:{self.subject}")
