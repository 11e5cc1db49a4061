"""The settings of one backend: its transport (stdio, Streamable HTTP, legacy SSE, WebSocket), replicas,
timeouts, health checks, circuit breaker and what of its catalog is shown. Part of ``Settings`` (models.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from only1mcp.redact import mask_url

from .fields import SENSITIVE, _hint, _Strict
from .oauth import OAuthClient
from .shaping import PromptShaping, ToolShaping

__all__ = ["TRANSPORTS", "Backend", "BackendBase", "BreakerSettings", "HealthSettings", "HttpBackend",
           "RemoteReplica", "SseBackend", "StdioBackend", "StdioLimits", "Timeouts", "WebSocketBackend",
           "unique_names", "valid_name"]

# MCP tool names are 1-128 chars of [A-Za-z0-9_.-]; a backend name or prefix becomes part of them.
_NAME_RE = r"^[A-Za-z0-9_.-]{1,64}$"
_PREFIX_RE = r"^[A-Za-z0-9_.-]{0,64}$"
TRANSPORTS = ("stdio", "http", "sse", "websocket")


class Timeouts(_Strict):
    """Per-backend time limits, in seconds."""

    connect: float = Field(10.0, gt=0, le=600, description="Opening a connection to the backend.",
                           json_schema_extra=_hint("write seconds > 0, e.g. 10"))
    call: float = Field(60.0, gt=0, le=86400, description="One request to the backend, start to final answer.",
                        json_schema_extra=_hint("write seconds > 0, e.g. 60"))
    startup: float = Field(30.0, gt=0, le=600, description="Starting the backend and its `initialize` handshake.",
                           json_schema_extra=_hint("write seconds > 0, e.g. 30"))


class HealthSettings(_Strict):
    """Active health probes: an MCP ping over the replica's own transport."""

    enabled: bool = Field(True, description="Probe each replica (MCP ping) on this interval.")
    interval: float = Field(10.0, gt=0, le=3600, description="Seconds between probes of one replica.",
                            json_schema_extra=_hint("write seconds > 0, e.g. 10"))
    timeout: float = Field(5.0, gt=0, le=600, description="A probe not answered in this many seconds failed.",
                           json_schema_extra=_hint("write seconds > 0, e.g. 5"))
    healthy_threshold: int = Field(2, ge=1, le=100,
                                   description="Successful probes in a row before an unhealthy replica is used "
                                   "again.", json_schema_extra=_hint("write a whole number from 1 to 100"))
    unhealthy_threshold: int = Field(3, ge=1, le=100,
                                     description="Failed probes in a row before a replica is taken out.",
                                     json_schema_extra=_hint("write a whole number from 1 to 100"))


class BreakerSettings(_Strict):
    """The circuit breaker of each replica, fed by the outcomes of real calls."""

    failures: int = Field(5, ge=1, le=10_000, description="Consecutive failures that open the breaker.",
                          json_schema_extra=_hint("write a whole number from 1 up"))
    error_rate: float = Field(0.5, gt=0, le=1, description="Failure share over `window` that opens it "
                              "(with at least `min_calls` calls).", json_schema_extra=_hint("write 0-1, e.g. 0.5"))
    window: float = Field(30.0, gt=0, le=3600, description="Seconds of calls the error rate looks at.")
    min_calls: int = Field(10, ge=1, le=100_000, description="Calls in the window before the rate counts.")
    cooldown: float = Field(5.0, gt=0, le=3600, description="Seconds an open breaker waits before a trial "
                            "call; doubles after each failed trial.")
    max_cooldown: float = Field(300.0, gt=0, le=86400, description="Upper bound of the growing cooldown.")
    half_open_calls: int = Field(1, ge=1, le=100, description="Trial calls each worker lets through while "
                                 "half-open.")


class StdioLimits(_Strict):
    """Resource limits applied to a stdio child (and inherited by what it starts)."""

    address_space_mb: int | None = Field(None, ge=16, description="RLIMIT_AS in MiB.")
    cpu_seconds: int | None = Field(None, ge=1, description="RLIMIT_CPU: CPU seconds before the kernel stops "
                                    "it (it is then restarted).")
    open_files: int | None = Field(None, ge=16, description="RLIMIT_NOFILE.")


class BackendBase(_Strict):
    """Settings every backend has, whatever its transport."""

    name: str = Field(
        pattern=_NAME_RE,
        description="Unique name of the backend; also its default tool prefix.",
        json_schema_extra=_hint("use 1-64 characters of letters, digits, _ . -"),
    )
    prefix: str | None = Field(
        None,
        pattern=_PREFIX_RE,
        description="Namespace for this backend's tools and prompts; default: its name; \"\" for none.",
        json_schema_extra=_hint('use letters, digits, _ . - (or "" for no prefix)'),
    )
    enabled: bool = Field(True, description="A disabled backend is kept in config but not started.")
    # `transport` is declared by each subclass as its discriminator.
    weight: int = Field(
        1, ge=1, le=1000, description="Balancing weight of each replica of this backend.",
        json_schema_extra=_hint("write a whole number from 1 to 1000"),
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="See backends[].timeouts.")  # type: ignore[arg-type]
    balance: Literal["round_robin", "least_connections", "consistent_hash", "random", "weighted_random"] = Field(
        "round_robin", description="How calls are spread over replicas (skipping unhealthy and open ones).")
    hash_key: str = Field(
        "session", pattern=r"^(session|argument:[A-Za-z0-9_.-]+)$",
        description="For consistent_hash: `session` (the client's session) or `argument:<name>` (a tool "
        "argument's value).", json_schema_extra=_hint("write session, or argument:<tool argument name>"),
    )
    idempotent_tools: list[str] = Field(
        default_factory=list, description="Tools safe to retry on another replica (besides those whose "
        "annotations say idempotentHint or readOnlyHint).")
    retries: int = Field(2, ge=0, le=10, description="Extra attempts on other replicas for idempotent "
                         "calls that failed to reach a backend.")
    max_response_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, le=1024**3,
        description="Largest answer to one request, in bytes: a JSON body, or everything the SSE answer to one "
        "request carries. A larger answer fails that call with an error naming this setting, and its connection "
        "is closed, not read to its end.",
        json_schema_extra=_hint("write a number of bytes, e.g. 33554432 for 32 MiB"),
    )
    max_event_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, le=1024**3,
        description="Largest single message, in bytes: one SSE event or one line not yet ended (also on the "
        "backend's GET stream), one WebSocket message, one line of a `per_worker` stdio child (the stdio host "
        "reads shared children's lines up to 64 MiB). A larger one fails the call it answers (or ends the stream "
        "or child that sent it).",
        json_schema_extra=_hint("write a number of bytes, e.g. 16777216 for 16 MiB"),
    )
    health: HealthSettings = Field(default_factory=HealthSettings, description="See backends[].health.")  # type: ignore[arg-type]
    breaker: BreakerSettings = Field(default_factory=BreakerSettings, description="See backends[].breaker.")  # type: ignore[arg-type]
    tools: ToolShaping = Field(default_factory=ToolShaping, description="See backends[].tools: which of its "  # type: ignore[arg-type]
                               "tools clients see, renamed, described and with fixed arguments.")
    prompts: PromptShaping = Field(default_factory=PromptShaping, description="See backends[].prompts: the "  # type: ignore[arg-type]
                                   "same for its prompts.")

    @property
    def effective_prefix(self) -> str:
        return self.name if self.prefix is None else self.prefix

    def __eq__(self, other: object) -> bool:
        # Equality decides whether a reload restarts a backend (its children, sessions, probes, routers),
        # and shaping changes only what clients are shown: the supervisor merges the catalog again with it.
        if type(other) is not type(self):
            return NotImplemented
        return {k: v for k, v in self.__dict__.items() if k not in _SHAPING} == {
            k: v for k, v in other.__dict__.items() if k not in _SHAPING}

    def __hash__(self) -> int:
        return hash((type(self), self.name))


# Settings of a backend that change what clients see, not the backend: changing them restarts nothing.
_SHAPING = frozenset({"tools", "prompts"})


class StdioBackend(BackendBase):
    """A local MCP server run as a child process speaking newline-delimited JSON-RPC."""

    transport: Literal["stdio"] = "stdio"
    command: str = Field(min_length=1, description="Program to run (looked up on PATH).",
                         json_schema_extra=_hint("write the program to run, e.g. npx"))
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: Annotated[dict[str, str], SENSITIVE] = Field(
        default_factory=dict, description="Environment variables set for the child (on top of what it inherits: "
        "see `env_allow`). Their values are never shown.")
    cwd: Path | None = Field(None, description="Working directory of the child; default: the gateway's.")
    replicas: int = Field(
        1, ge=1, le=64, description="Number of child processes to run for this backend.",
        json_schema_extra=_hint("write a whole number of child processes from 1 to 64"),
    )
    env_allow: list[str] = Field(
        default_factory=list, description="More of the gateway's environment variables the child may see (names, "
        "or patterns such as `LC_*`). By default a child sees only HOME, LOGNAME, PATH, SHELL, TERM, USER and "
        "LANG (what the official MCP SDKs pass to a server), plus `env`: the gateway's own secrets (a session "
        "secret, tokens for other backends) never reach third-party servers.")
    limits: StdioLimits = Field(default_factory=StdioLimits, description="See backends[].limits.")  # type: ignore[arg-type]
    max_failures: int = Field(
        5, ge=1, le=1000, description="Exits within `failure_window` after which the backend is marked failed "
        "and retried only every `failed_retry` seconds.")
    failure_window: float = Field(60.0, gt=0, le=86400, description="Seconds over which exits are counted.")
    failed_retry: float = Field(300.0, gt=0, le=86400, description="Seconds between attempts while failed.")
    lazy: bool = Field(False, description="Start the child on first use instead of at gateway start.")
    idle_shutdown: float | None = Field(
        None, gt=0, description="Stop the child after this many seconds without calls (it starts again on the "
        "next one).")
    per_worker: bool = Field(
        False, description="Each worker runs its own child (`replicas` of them) and talks to it over its pipes, "
        "for stateless servers: no hop through the shared stdio host (each child keeps its own state). The "
        "supervisor starts one only while it discovers the lists. Default: one shared child per replica, "
        "reached by every worker.")
    isolation: Literal["shared", "per_session"] = Field(
        "shared", description="`shared`: one child per replica serves every client session (one server state "
        "for everyone). A request the child makes of a client (sampling, elicitation) is relayed only when "
        "exactly one client session has calls in flight on it, since the stdio wire does not say which call "
        "caused it; otherwise the child gets an error saying why. `per_session`: each client session gets a "
        "child of its own (at most `max_sessions` at once, stopped after `session_idle` seconds without "
        "calls), so every request reaches the client it belongs to and no state is shared between clients; "
        "choose it for servers that ask their clients for things, or keep per-client state.")
    max_sessions: int = Field(
        16, ge=1, le=1024, description="isolation: per_session: children running at once (one per client "
        "session). A new session beyond it takes the place of the longest-idle one that has no call in flight; "
        "when every child is busy its calls are refused with an error saying so.",
        json_schema_extra=_hint("write a whole number of children from 1 to 1024"))
    session_idle: float = Field(
        300.0, gt=0, le=86400, description="isolation: per_session: seconds without calls after which a "
        "session's child is stopped (the session's next call starts a new one, without the old one's state).",
        json_schema_extra=_hint("write seconds > 0, e.g. 300"))

    @model_validator(mode="after")
    def _modes_fit_together(self) -> StdioBackend:
        if self.per_worker and self.idle_shutdown is not None:
            raise PydanticCustomError(
                "per_worker_idle",
                "backend '{name}': idle_shutdown applies to shared children only; with per_worker: true each "
                "worker keeps its child while it runs (use lazy: true to start it on first use instead)",
                {"name": self.name},
            )
        if self.isolation == "per_session" and self.per_worker:
            raise PydanticCustomError(
                "per_session_per_worker",
                "backend '{name}': isolation: per_session gives each client session its own child in the stdio "
                "host; it cannot also be per_worker (a session's calls reach every worker). Remove one of them",
                {"name": self.name},
            )
        if self.isolation == "per_session" and (self.idle_shutdown is not None or self.lazy):
            raise PydanticCustomError(
                "per_session_idle",
                "backend '{name}': with isolation: per_session children start with their session and stop after "
                "session_idle seconds; remove lazy and idle_shutdown",
                {"name": self.name},
            )
        if self.isolation == "per_session" and self.replicas > 1 and (
                self.balance != "consistent_hash" or self.hash_key != "session"):
            raise PydanticCustomError(
                "per_session_balance",
                "backend '{name}': with isolation: per_session and {replicas} replicas, a session must keep "
                "reaching the same replica; set balance: consistent_hash and hash_key: session",
                {"name": self.name, "replicas": self.replicas},
            )
        return self


class RemoteReplica(_Strict):
    """One replica of a remote backend."""

    url: str
    weight: int = Field(1, ge=1, le=1000)


_SCHEMES: dict[str, tuple[str, ...]] = {
    "http": ("http://", "https://"),
    "sse": ("http://", "https://"),
    "websocket": ("ws://", "wss://"),
}


def _check_scheme(url: str, transport: str) -> None:
    if not url.startswith(_SCHEMES[transport]):
        raise PydanticCustomError(
            "url_scheme",
            "url '{url}' does not fit transport '{transport}'; it must start with {schemes}",
            {"url": mask_url(url), "transport": transport, "schemes": " or ".join(_SCHEMES[transport])},
        )


class _RemoteBackend(BackendBase):
    url: str | None = Field(None, description="Endpoint URL; or list several under `replicas`.")
    headers: Annotated[dict[str, str], SENSITIVE] = Field(
        default_factory=dict, description="Sent on every request to this backend (e.g. an API key); values may "
        "use `${VAR}` and are never shown. A client's own headers never reach a backend."
    )
    oauth: OAuthClient | None = Field(
        None, description="The gateway's own OAuth 2.0 client credentials for this backend (see "
        "`backends[].oauth`): the supervisor fetches an access token, refreshes it before it expires, and every "
        "request to this backend carries it as `Authorization: Bearer`.")
    replicas: list[RemoteReplica] = Field(
        default_factory=list, description="Several endpoints of the same server: urls, or {url, weight} mappings."
    )

    @model_validator(mode="before")
    @classmethod
    def _replica_strings(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("replicas"), list):
            data = dict(data)
            data["replicas"] = [{"url": r} if isinstance(r, str) else r for r in data["replicas"]]
        return data

    @model_validator(mode="after")
    def _one_endpoint(self) -> _RemoteBackend:
        transport: str = self.transport
        if self.url is None and not self.replicas:
            raise PydanticCustomError(
                "missing_url",
                "backend '{name}' has no url; write `url: {example}` (or a `replicas:` list of urls)",
                {"name": self.name, "example": _SCHEMES[transport][0] + "127.0.0.1:3000/mcp"},
            )
        if self.url is not None and self.replicas:
            raise PydanticCustomError(
                "url_and_replicas",
                "backend '{name}' has both `url` and `replicas`; list every url under `replicas`",
                {"name": self.name},
            )
        if self.oauth is not None:
            clash = next((name for name in self.headers if name.lower() == "authorization"), None)
            if clash is not None:
                raise PydanticCustomError(
                    "oauth_and_authorization",
                    "backend '{name}' sets both headers.{header} and oauth: the gateway sends its OAuth access "
                    "token as the Authorization header; remove one of them",
                    {"name": self.name, "header": clash})
        return self

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str | None) -> str | None:
        if url is not None:
            _check_scheme(url, cls.model_fields["transport"].default)
        return url

    @field_validator("replicas")
    @classmethod
    def _replica_schemes(cls, replicas: list[RemoteReplica]) -> list[RemoteReplica]:
        for replica in replicas:
            _check_scheme(replica.url, cls.model_fields["transport"].default)
        return replicas

    @property
    def urls(self) -> list[str]:
        return [self.url] if self.url is not None else [r.url for r in self.replicas]


class HttpBackend(_RemoteBackend):
    """A remote MCP server on Streamable HTTP."""

    transport: Literal["http"] = "http"


class SseBackend(_RemoteBackend):
    """A remote MCP server on the legacy HTTP+SSE transport (2024-11-05)."""

    transport: Literal["sse"] = "sse"


class WebSocketBackend(_RemoteBackend):
    """A remote MCP server over WebSocket (subprotocol `mcp`)."""

    transport: Literal["websocket"] = "websocket"


Backend = Annotated[
    StdioBackend | HttpBackend | SseBackend | WebSocketBackend, Field(discriminator="transport")
]


def unique_names(backends: list[Any]) -> list[Any]:
    first: dict[str, int] = {}
    for index, backend in enumerate(backends):
        if backend.name in first:
            raise PydanticCustomError(
                "duplicate_name",
                "duplicate backend name '{name}' (also backend #{first}); every backend needs its own "
                "name, e.g. '{name}-2'",
                {"name": backend.name, "first": first[backend.name] + 1, "index": index},
            )
        first[backend.name] = index
    return backends


def valid_name(text: str) -> bool:
    return re.fullmatch(_NAME_RE, text) is not None
