"""The shared state: its namespaces, the typed value each holds, and one version of it as a worker reads it.

The supervisor is the only writer. Each entry is (namespace, name) -> value; singletons (config, session
keys, catalog, the JWT issuer's keys) have the name "". Revocations are not part of the versioned State: a
request only asks "is this session revoked", so a replica keeps them in one set it changes in place (an
entry costs O(1) to apply, whatever the number of revoked sessions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any

from only1mcp.routing.breaker import State as BreakerState
from only1mcp.routing.health import Health

from .wire import Payload, WireError, payload

__all__ = [
    "VALUE_TYPES",
    "BackendControl",
    "BackendRoutes",
    "BackendToken",
    "CatalogState",
    "ConfigState",
    "JwksState",
    "Namespace",
    "ReplicaRoute",
    "Revocation",
    "SessionKeys",
    "State",
    "StateEntry",
]


class Namespace(IntEnum):
    CONFIG = 1  # singleton: the validated settings
    SESSIONS = 2  # singleton: what seals session ids
    CATALOG = 3  # singleton: the merged catalog
    ROUTES = 4  # per backend: health and breaker of each replica
    REVOKED = 5  # per session id: ended by its client (DELETE)
    JWKS = 6  # singleton: the token issuer's signing keys, as last fetched
    TOKENS = 7  # per backend: the gateway's own OAuth access token for it (backends[].oauth)
    OPERATOR = 8  # per backend: what an operator ordered through the admin API (drain, restart)


@payload
class ConfigState(Payload):
    version: int
    digest: str
    source: str
    loaded_at: float
    settings: dict[str, Any]  # Settings.model_dump(mode="json"); workers validate it again


@payload
class SessionKeys(Payload):
    secret: bytes
    ttl: float


@payload
class JwksState(Payload):
    """The JWT issuer's key set (auth.jwt), published after every good fetch (so ``fetched_at`` moves even
    when the keys did not change: a worker that asked for a refetch sees it was done)."""

    source: str  # the jwks_uri it came from
    fetched_at: float  # wall-clock time the fetch started (min_refresh_interval counts from it)
    document: dict[str, Any]  # the JWKS document as the issuer served it: public keys only


@payload
class BackendToken(Payload):
    """The access token the supervisor fetched for a backend with ``oauth``: workers send it as
    ``Authorization: Bearer`` to that backend. ``serial`` numbers the supervisor's fetches, so a worker
    names the token a backend refused without sending the token back. Never logged (not in its repr)."""

    backend: str
    access_token: str = field(repr=False)
    expires_at: float  # wall-clock time after which it is no longer sent
    serial: int


@payload
class CatalogState(Payload):
    version: int
    catalog: dict[str, Any]  # only1mcp.catalog.merge output: items, routes, capabilities, backends


@payload
class ReplicaRoute(Payload):
    health: Health
    breaker: BreakerState
    retry_at: float | None  # wall-clock time an open breaker lets a trial call through
    reason: str
    trials: int  # trial calls each worker may let through while half-open


@payload
class BackendRoutes(Payload):
    replicas: tuple[ReplicaRoute, ...]


@payload
class BackendControl(Payload):
    """An operator's standing orders for one backend (admin API). Absent: none. ``restarts`` counts the
    restarts ordered since the supervisor started: whoever runs the backend's children (the stdio host, a
    worker for ``per_worker``) restarts them when it sees the number grow, and only then."""

    drained: bool  # no new call is routed to any replica; calls in flight finish
    restarts: int


@payload
class Revocation(Payload):
    expires: float  # wall-clock time the session's token expires anyway


VALUE_TYPES: dict[Namespace, type[Payload]] = {
    Namespace.CONFIG: ConfigState,
    Namespace.SESSIONS: SessionKeys,
    Namespace.CATALOG: CatalogState,
    Namespace.ROUTES: BackendRoutes,
    Namespace.REVOKED: Revocation,
    Namespace.JWKS: JwksState,
    Namespace.TOKENS: BackendToken,
    Namespace.OPERATOR: BackendControl,
}


@dataclass(frozen=True, slots=True)
class StateEntry:
    """One entry: its namespace, its name within it, and its value (None: deleted)."""

    namespace: Namespace
    name: str
    value: Payload | None

    def __post_init__(self) -> None:
        if self.value is not None and type(self.value) is not VALUE_TYPES[self.namespace]:
            raise TypeError(f"{self.namespace.name} holds {VALUE_TYPES[self.namespace].__name__}, "
                            f"not {type(self.value).__name__}")

    # StateEntry travels inside Delta and Snapshot; its value's type depends on its namespace, so it has
    # its own wire form instead of a @payload declaration.
    def to_wire(self) -> tuple[Any, ...]:
        return (int(self.namespace), self.name, None if self.value is None else self.value.to_wire())

    @classmethod
    def from_wire(cls, raw: Any) -> StateEntry:
        if not isinstance(raw, (list, tuple)) or len(raw) != 3:
            raise WireError(f"StateEntry: expected 3 fields, got {type(raw).__name__}")
        namespace, name, value = raw
        try:
            space = Namespace(namespace)
        except ValueError:
            raise WireError(f"StateEntry.namespace: unknown namespace {namespace!r}") from None
        if type(name) is not str:
            raise WireError("StateEntry.name: expected a string")
        return cls(space, name, None if value is None else VALUE_TYPES[space].from_wire(value))


_NO_ROUTES: Mapping[str, BackendRoutes] = MappingProxyType({})
_NO_TOKENS: Mapping[str, BackendToken] = MappingProxyType({})
_NO_ORDERS: Mapping[str, BackendControl] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class State:
    """One immutable version of the shared state; a request reads it once and sees one version."""

    seq: int = 0
    config: ConfigState | None = None
    sessions: SessionKeys | None = None
    catalog: CatalogState | None = None
    routes: Mapping[str, BackendRoutes] = field(default_factory=lambda: _NO_ROUTES)
    jwks: JwksState | None = None
    tokens: Mapping[str, BackendToken] = field(default_factory=lambda: _NO_TOKENS)
    operator: Mapping[str, BackendControl] = field(default_factory=lambda: _NO_ORDERS)

    @property
    def config_version(self) -> int:
        return self.config.version if self.config is not None else 0

    @property
    def catalog_version(self) -> int:
        return self.catalog.version if self.catalog is not None else 0
