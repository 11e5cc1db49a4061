"""Every Only1MCP setting, with its default and its documentation, in one place.

Sources, lowest to highest precedence: these defaults, the config file, ``ONLY1MCP_*`` environment
variables (nested with ``__``, e.g. ``ONLY1MCP_SERVER__PORT``), command-line flags. ``loader.load_settings``
assembles them through pydantic-settings; nothing else reads the environment. The models here are plain
pydantic models so that workers, which only re-validate the published config, do not import
pydantic-settings (0.25 s of every worker's boot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .audit import AuditSettings
from .auth import AuthSettings
from .backends import (
    TRANSPORTS,
    Backend,
    BackendBase,
    HttpBackend,
    RemoteReplica,
    SseBackend,
    StdioBackend,
    Timeouts,
    WebSocketBackend,
    unique_names,
    valid_name,
)
from .context import CompactSettings, LazySettings, ToolsMode
from .fields import LIVE, RESTART, SENSITIVE, Reload, _hint, _Strict, loopback
from .metrics import MetricsSettings
from .observe import LoggingSettings
from .rate_limits import RateLimitSettings
from .rbac import RbacSettings
from .shaping import Profile

__all__ = [
    "LIVE",
    "RESTART",
    "SENSITIVE",
    "TRANSPORTS",
    "Backend",
    "BackendBase",
    "HttpBackend",
    "ProxySettings",
    "Reload",
    "RemoteReplica",
    "ServerSettings",
    "SessionSettings",
    "Settings",
    "SseBackend",
    "StdioBackend",
    "Timeouts",
    "WebSocketBackend",
]



class ServerSettings(_Strict):
    """The listening side and the process layout."""

    host: Annotated[str, RESTART] = Field(
        "127.0.0.1",
        description="Address the workers bind. Loopback by default; set 0.0.0.0 only behind auth.",
        json_schema_extra=_hint("write an IP address or host name, e.g. 127.0.0.1"),
    )
    port: Annotated[int, RESTART] = Field(
        8080,
        ge=0,
        le=65535,
        description="TCP port shared by every worker (SO_REUSEPORT). 0 lets the OS choose one.",
        json_schema_extra=_hint("write a port number from 1 to 65535, or 0 to let the OS choose"),
    )
    workers: Annotated[int, RESTART] = Field(
        0,
        ge=0,
        le=512,
        description="Number of worker processes; 0 means one per CPU.",
        json_schema_extra=_hint("write a whole number of workers, e.g. 4, or 0 for one per CPU"),
    )
    standby_workers: Annotated[int, RESTART] = Field(
        1,
        ge=0,
        le=16,
        description="Booted spare workers that take a dead worker's place at once (0 to disable).",
        json_schema_extra=_hint("write a whole number from 0 to 16"),
    )
    drain_timeout: Annotated[float, LIVE] = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds in-flight requests may run after SIGTERM before they are cancelled.",
        json_schema_extra=_hint("write a number of seconds greater than 0, e.g. 30"),
    )
    heartbeat_interval: Annotated[float, RESTART] = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between a worker's heartbeats (sent from its event loop).",
        json_schema_extra=_hint("write a number of seconds greater than 0, e.g. 1"),
    )
    worker_timeout: Annotated[float, LIVE] = Field(
        30.0,
        gt=0,
        le=3600,
        description="A worker silent for this many seconds is killed and replaced (one that has not sent its first "
        "heartbeat yet is still booting and gets at least 30 s).",
        json_schema_extra=_hint("write a number of seconds, larger than heartbeat_interval"),
    )
    runtime_dir: Annotated[Path | None, RESTART] = Field(
        None,
        description="Directory for the state bus sockets (created 0700). Default: a new directory under "
        "$XDG_RUNTIME_DIR or the system temp directory.",
    )
    log_level: Annotated[Literal["debug", "info", "warning", "error"], LIVE] = Field(
        "info", description="Log level of the supervisor and the workers."
    )
    max_body_size: Annotated[int, LIVE] = Field(
        4 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest request body accepted, in bytes; larger ones get HTTP 413.",
        json_schema_extra=_hint("write a number of bytes, e.g. 4194304 for 4 MiB"),
    )
    header_timeout: Annotated[float, LIVE] = Field(
        20.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a whole request head (request line and headers), counted from "
        "its first byte, or from the connection for its first request; then it gets 408 and the connection is "
        "closed.",
        json_schema_extra=_hint("write a number of seconds greater than 0, e.g. 20"),
    )
    body_timeout: Annotated[float, LIVE] = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a whole request body once its head is in; then it gets 408 "
        "and the connection is closed. A deadline for the whole body (not between two reads, as nginx's "
        "client_body_timeout), so a body sent a byte at a time cannot hold a connection.",
        json_schema_extra=_hint("write a number of seconds greater than 0, e.g. 60"),
    )
    keepalive_timeout: Annotated[float, LIVE] = Field(
        75.0,
        gt=0,
        le=86400,
        description="Seconds an idle keep-alive connection is kept open for the client's next request.",
        json_schema_extra=_hint("write a number of seconds greater than 0, e.g. 75"),
    )
    send_timeout: Annotated[float, LIVE] = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds a client may leave an answer unread (the worker cannot write to it) before its "
        "connection is closed.",
        json_schema_extra=_hint("write a number of seconds greater than 0, e.g. 60"),
    )
    max_connections: Annotated[int, LIVE] = Field(
        10_000,
        ge=16,
        le=1_000_000,
        description="Client connections one worker holds at most (all of them: also streams and WebSockets), "
        "lowered to what its open-file limit allows (three quarters of it; the soft limit is raised to the hard "
        "one at start). At the cap the oldest connection still sending a head, or else the oldest idle one, is "
        "closed to make room; with none, a new connection gets 503 and is closed.",
        json_schema_extra=_hint("write a whole number of connections, e.g. 10000"),
    )
    max_header_count: Annotated[int, LIVE] = Field(
        100,
        ge=8,
        le=10_000,
        description="Most header fields in one request; more get 431 (400 from aiohttp, on a connection it "
        "already serves).",
        json_schema_extra=_hint("write a whole number of header fields, e.g. 100"),
    )
    max_header_size: Annotated[int, LIVE] = Field(
        32_768,
        ge=1024,
        le=1024 * 1024,
        description="Largest request head (request line and headers) in bytes; larger get 431 (400 from aiohttp, "
        "on a connection it already serves).",
        json_schema_extra=_hint("write a number of bytes, e.g. 32768"),
    )
    allowed_origins: Annotated[list[str], LIVE] = Field(
        default_factory=list,
        description="Origins allowed to call the endpoint (e.g. https://app.example.com). Requests with another "
        "Origin header get 403. When bound to loopback, http(s)://localhost, 127.0.0.1 and [::1] on any port "
        "are always allowed.",
    )
    allowed_hosts: Annotated[list[str], LIVE] = Field(
        default_factory=list,
        description="Host header values accepted besides the bound address (DNS-rebinding protection). When bound "
        "to loopback, localhost, 127.0.0.1 and [::1] on any port are always accepted; when bound to a wildcard "
        "address and this list is empty, any Host is accepted.",
    )

    @model_validator(mode="after")
    def _timeout_exceeds_heartbeat(self) -> ServerSettings:
        if self.worker_timeout <= self.heartbeat_interval:
            raise PydanticCustomError(
                "timeout_order",
                "worker_timeout ({timeout}) must be larger than heartbeat_interval ({interval}); "
                "a worker would be killed between two heartbeats",
                {"timeout": self.worker_timeout, "interval": self.heartbeat_interval},
            )
        return self


class ProxySettings(_Strict):
    """How the merged catalog is presented to clients."""

    separator: Annotated[Literal["_", ".", "-"], LIVE] = Field(
        "_",
        description="Joins a backend's prefix and a tool or prompt name: <prefix><sep><name>.",
        json_schema_extra=_hint("write one of _ . - (the characters MCP tool names allow)"),
    )
    page_size: Annotated[int, LIVE] = Field(
        100, ge=1, le=10_000,
        description="Items per page of tools/list, prompts/list, resources/list and resources/templates/list.",
        json_schema_extra=_hint("write a whole number from 1 to 10000"),
    )
    unavailable_backends: Annotated[Literal["keep", "drop"], LIVE] = Field(
        "keep",
        description="While a backend is down: `keep` serves its entries from the last catalog, `drop` leaves "
        "them out until it is back.",
    )
    request_timeout: Annotated[float, LIVE] = Field(
        300.0, gt=0, le=86400, description="Deadline of one client request, retries included; each backend "
        "call also stops at its own timeouts.call.", json_schema_extra=_hint("write seconds > 0, e.g. 300"))
    discovery_retry: Annotated[float, LIVE] = Field(
        5.0, gt=0, le=3600, description="Seconds between attempts to reach a backend that is down (doubling, "
        "up to 60 s).", json_schema_extra=_hint("write seconds > 0, e.g. 5"),
    )
    tools_mode: Annotated[ToolsMode, LIVE] = Field(
        "full",
        description="What tools/list sends a client's model: `full` every tool as its backend describes it; "
        "`compact` every tool with lossless minimal schemas (and descriptions as `proxy.compact` says); `lazy` "
        "only `search_tools` and `call_tool`, which find and run the others (docs/architecture.md, \"Context "
        "economy\"). Clients are told with notifications/tools/list_changed when it changes.",
        json_schema_extra=_hint("write full, compact or lazy"),
    )
    compact: Annotated[CompactSettings, LIVE] = Field(
        default_factory=CompactSettings,  # type: ignore[arg-type]
        description="See proxy.compact.", examples=[{"descriptions": "first_sentence"}])
    lazy: Annotated[LazySettings, LIVE] = Field(
        default_factory=LazySettings,  # type: ignore[arg-type]
        description="See proxy.lazy.", examples=[{"expose_found": True}])


class SessionSettings(_Strict):
    """Client sessions: sealed tokens any worker (or any host sharing the secret) can validate."""

    secret: Annotated[str | None, RESTART, SENSITIVE] = Field(
        None,
        min_length=32,
        description="HMAC secret sealing session ids. Default: random per start (sessions end at restart). Set "
        "the same value on every host behind one load balancer, e.g. from ${ONLY1MCP_SESSION_SECRET}.",
        json_schema_extra=_hint("write at least 32 random characters, e.g. from `openssl rand -hex 32`"),
    )
    ttl: Annotated[float, LIVE] = Field(
        86400.0, gt=0, description="Seconds a session id stays valid after it was issued.",
        json_schema_extra=_hint("write seconds > 0, e.g. 86400 for a day"),
    )
    event_buffer: Annotated[int, LIVE] = Field(
        256, ge=0, le=100_000,
        description="Events kept per session for Last-Event-ID replay of its GET stream.",
        json_schema_extra=_hint("write a whole number of events, e.g. 256"),
    )
    event_buffer_bytes: Annotated[int, LIVE] = Field(
        64 * 1024 * 1024, ge=0, le=16 * 1024**3,
        description="Bytes of events kept for replay across all sessions together; past it the oldest events of "
        "any session are dropped first.",
        json_schema_extra=_hint("write a number of bytes, e.g. 67108864 for 64 MiB"),
    )
    state_dir: Annotated[Path | None, RESTART] = Field(
        None,
        description="With a configured `secret`, where sessions ended by their clients (DELETE) are recorded, so "
        "they stay ended across restarts; hosts that share the secret share them by pointing this at the same "
        "shared directory (each host's supervisor reads what the others append, within a second). Default: "
        "$XDG_STATE_HOME/only1mcp, else ~/.local/state/only1mcp. Without a configured secret nothing is "
        "recorded: every session ends with the gateway anyway.",
    )


class Settings(BaseModel):
    """The whole configuration of one Only1MCP deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: Annotated[ServerSettings, LIVE] = Field(default_factory=ServerSettings)  # type: ignore[arg-type]
    proxy: Annotated[ProxySettings, LIVE] = Field(default_factory=ProxySettings)  # type: ignore[arg-type]
    sessions: Annotated[SessionSettings, LIVE] = Field(default_factory=SessionSettings)  # type: ignore[arg-type]
    backends: Annotated[list[Backend], AfterValidator(unique_names), LIVE] = Field(default_factory=list)
    auth: Annotated[AuthSettings, LIVE] = Field(default_factory=AuthSettings)  # type: ignore[arg-type]
    rbac: Annotated[RbacSettings, LIVE] = Field(default_factory=RbacSettings)  # type: ignore[arg-type]
    rate_limits: Annotated[RateLimitSettings, LIVE] = Field(default_factory=RateLimitSettings)  # type: ignore[arg-type]
    audit: Annotated[AuditSettings, LIVE] = Field(default_factory=AuditSettings)  # type: ignore[arg-type]
    profiles: Annotated[dict[str, Profile], LIVE] = Field(
        default_factory=dict,
        description="Named catalogs: `profiles.<name>: {include, exclude, tools_mode}`, each served at "
        "`/mcp/<name>` (and `/sse/<name>`, `/ws/<name>`).",
        json_schema_extra=_hint("map profile names (letters, digits, _ . -) to {include, exclude, tools_mode}"))
    metrics: Annotated[MetricsSettings, LIVE] = Field(default_factory=MetricsSettings)  # type: ignore[arg-type]
    logging: Annotated[LoggingSettings, LIVE] = Field(default_factory=LoggingSettings)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _no_open_door(self) -> Settings:
        # Anyone who can reach a non-loopback address could list and call every backend's tools.
        auth = self.auth
        if not auth.modes and not auth.allow_unauthenticated and not loopback(self.server.host):
            raise PydanticCustomError(
                "unauthenticated",
                "server.host {host} is reachable from other machines and auth.mode is none: anyone could use "
                "every backend. Set auth.mode (jwt or api_key, see docs/configuration.md), bind 127.0.0.1, or "
                "set auth.allow_unauthenticated: true to serve without credentials on purpose",
                {"host": self.server.host, "at": "server.host"})
        roles = self.rbac.roles
        for index, key in enumerate(auth.api_keys):
            unknown = [role for role in key.roles if roles and role not in roles]
            if unknown:  # a key's roles are written here, next to rbac: an unknown one is a typo
                raise PydanticCustomError(
                    "unknown_role", "API key '{name}' has role '{role}', which rbac.roles does not define; "
                    "define it or use one of: {known}",
                    {"name": key.name, "role": unknown[0], "known": ", ".join(sorted(roles)),
                     "at": f"auth.api_keys.{index}.roles"})
        self._profiles_exist()
        if "api_key" in auth.modes and not auth.api_keys:
            raise PydanticCustomError(
                "no_api_keys", "auth.mode includes api_key but auth.api_keys is empty; add entries with name, "
                "sha256 (printf %s \"$KEY\" | sha256sum) and roles", {"at": "auth.mode"})
        return self

    def _profiles_exist(self) -> None:
        for name in self.profiles:
            if not valid_name(name):
                raise PydanticCustomError(
                    "profile_name", "profile name '{name}' is not usable in a URL path (/mcp/<name>); use 1-64 "
                    "characters of letters, digits, _ . -", {"name": name, "at": f"profiles.{name}"})
        for role_name, role in self.rbac.roles.items():
            if role.profile is not None and role.profile not in self.profiles:
                known = ", ".join(sorted(self.profiles)) or "none is defined"
                raise PydanticCustomError(
                    "unknown_profile", "role '{role}' pins profile '{profile}', which profiles does not define; "
                    "define it or use one of: {known}",
                    {"role": role_name, "profile": role.profile, "known": known,
                     "at": f"rbac.roles.{role_name}.profile"})

    def enabled_backends(self) -> list[StdioBackend | HttpBackend | SseBackend | WebSocketBackend]:
        return [b for b in self.backends if b.enabled]
