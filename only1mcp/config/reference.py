"""Render docs/configuration.md from the models, so the settings are documented in one place.

    python -m only1mcp.config.reference > docs/configuration.md
"""

from __future__ import annotations

import json
import sys

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .audit import AuditSettings
from .auth import ApiKey, AuthSettings, JwtSettings
from .backends import (
    BreakerSettings,
    HealthSettings,
    HttpBackend,
    SseBackend,
    StdioBackend,
    StdioLimits,
    Timeouts,
    WebSocketBackend,
)
from .context import CompactSettings, LazySettings
from .metrics import MetricsSettings
from .models import ProxySettings, Reload, ServerSettings, SessionSettings
from .oauth import OAuthClient
from .observe import LoggingSettings
from .rate_limits import BucketSettings, RateLimitSettings
from .rbac import RbacSettings, Role
from .reload import reload_mark
from .shaping import Profile, PromptOverride, PromptShaping, ToolOverride, ToolShaping

__all__ = ["render"]

_SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("server", ServerSettings, "The listening side and the process layout. Env: `ONLY1MCP_SERVER__<KEY>`."),
    ("proxy", ProxySettings, "How the merged catalog is presented. Env: `ONLY1MCP_PROXY__<KEY>`."),
    ("proxy.compact", CompactSettings, "`compact` mode's descriptions (also how `lazy` search shows the tools it "
     "finds). Example: `compact: {descriptions: first_sentence}` or `compact: {descriptions: {max_chars: 80}}`."),
    ("proxy.lazy", LazySettings, "`lazy` mode: tools/list holds `search_tools` {query, limit?} and `call_tool` "
     "{name, arguments?}; `call_tool` answers exactly as the named tool called directly would."),
    ("sessions", SessionSettings, "Client sessions. Env: `ONLY1MCP_SESSIONS__<KEY>`."),
    ("auth", AuthSettings, "Who may use the gateway (see docs/architecture.md). Env: `ONLY1MCP_AUTH__<KEY>`."),
    ("auth.api_keys[]", ApiKey, "One API key, known by its SHA-256 only."),
    ("auth.jwt", JwtSettings, "Bearer JWTs from an OAuth 2.1 / OpenID Connect provider. The issuer's keys are "
     "fetched by the supervisor and published to every worker. Env: `ONLY1MCP_AUTH__JWT__<KEY>`."),
    ("backends[] (stdio)", StdioBackend, "A local server run as a child process. Chosen when `command` is given."),
    ("backends[] (http)", HttpBackend, "Streamable HTTP. Chosen for a `url` unless it ends in `/sse` or is ws(s)://."),
    ("backends[] (sse)", SseBackend, "Legacy HTTP+SSE (2024-11-05). Chosen for a `url` ending in `/sse`."),
    ("backends[] (websocket)", WebSocketBackend, "WebSocket. Chosen for a `ws://` or `wss://` url."),
    ("backends[].oauth (http, sse, websocket)", OAuthClient, "The gateway's own OAuth 2.0 client credentials for a "
     "remote backend (RFC 6749 client credentials grant, client_secret_basic). The supervisor fetches the token, "
     "refreshes it before it expires and publishes it to the workers; every request to the backend (and its "
     "replicas) carries it as `Authorization: Bearer`. A backend answering 401 gets one fresh token (one fetch for "
     "all workers) and the request is sent once more. A client's own credential never reaches a backend. Cannot "
     "be combined with an `Authorization` entry in `headers`. Example: `oauth: {token_url: "
     "https://login.example.com/oauth2/token, client_id: only1mcp, client_secret: ${API_CLIENT_SECRET}, scope: "
     "\"mcp:tools\", resource: https://api.example.com/mcp}`."),
    ("backends[].timeouts", Timeouts, "Per-backend time limits in seconds."),
    ("backends[].health", HealthSettings, "Active health probes of each replica."),
    ("backends[].breaker", BreakerSettings, "The circuit breaker of each replica."),
    ("backends[].limits (stdio)", StdioLimits, "Resource limits of each stdio child."),
    ("backends[].tools", ToolShaping, "Which of a backend's tools clients see, and how. Globs match the backend's "
     "own tool names (before its prefix): `*` any run of characters, `?` one. A hidden tool is answered as unknown "
     "when called. Changing any of it restarts nothing: the catalog is merged again and clients get "
     "`notifications/tools/list_changed`. Example: `tools: {deny: [\"delete_*\"], overrides: {read_file: {name: "
     "read, description: \"Read a file of the project\", fixed_arguments: {root: /srv/project}}}}`."),
    ("backends[].tools.overrides.<tool>", ToolOverride, "One tool, by the backend's own name."),
    ("backends[].prompts", PromptShaping, "The same for a backend's prompts."),
    ("backends[].prompts.overrides.<prompt>", PromptOverride, "One prompt, by the backend's own name."),
    ("profiles.<name>", Profile, "A named catalog served at `/mcp/<name>` (Streamable HTTP, both protocol eras), "
     "`/sse/<name>` (legacy HTTP+SSE) and `/ws/<name>` (WebSocket); the stdio bridge reaches it with that URL "
     "(`only1mcp stdio --url http://127.0.0.1:8080/mcp/<name>`). A session opened at one endpoint is unknown at "
     "another. Lists show only what the profile includes, and calling anything else is answered as if it did not "
     "exist. A role may pin profiles (`rbac.roles.<role>.profile`). Reloads apply at once; clients get "
     "`list_changed`. Example: `profiles: {coding: {include: [github, \"fs_*\"], exclude: [\"*_delete*\"]}}`."),
    ("rbac", RbacSettings, "Role-based access: what each role may list, call, read, subscribe to, complete and "
     "administer. **With no role configured rbac is off**: every principal may use everything. It applies to "
     "authenticated callers only; while `auth` is off nothing is filtered. Env: `ONLY1MCP_RBAC__<KEY>`."),
    ("rbac.roles.<role>", Role, "One role. Patterns are `<kind>:<glob>` with kind `tools`, `prompts`, `resources` "
     "or `admin`; the glob matches the whole exposed name (with its namespace prefix) or URI: `*` any run of "
     "characters (`/` too), `?` one character, anything else itself. Resource patterns match the URI as the "
     "client sends it and a template's `uriTemplate` text, so prefer allow-lists for resources. A role has the "
     "allows and denies of every role it inherits. Example: `reader: {allow: [\"tools:github_get_*\", "
     "\"resources:file:///docs/*\"]}`, `editor: {inherits: [reader], allow: [\"tools:github_*\"], deny: "
     "[\"tools:github_delete_*\"]}`."),
    ("rate_limits", RateLimitSettings, "Token buckets that hold across every worker of the gateway: the whole "
     "cluster admits at most `rate * seconds + burst` per bucket, over any window. Each limit is off unless set. "
     "Env: `ONLY1MCP_RATE_LIMITS__<KEY>__RATE` and `…__BURST`."),
    ("rate_limits.per_principal, .per_tool, .per_backend", BucketSettings, "The shape of each bucket."),
    ("audit", AuditSettings, "The audit trail: one JSON line per client request that reached policy, written "
     "before its answer is sent (docs/architecture.md, \"The audit trail\"). Env: `ONLY1MCP_AUDIT__<KEY>`."),
    ("metrics", MetricsSettings, "Prometheus metrics aggregated over every process (docs/architecture.md, "
     "\"Metrics\"). Env: `ONLY1MCP_METRICS__<KEY>`."),
    ("logging", LoggingSettings, "Log lines, the access log and traces (docs/architecture.md, \"Logs and traces\"). "
     "The level is `server.log_level`. Every line a request causes carries its request id (the client's "
     "`X-Request-Id` when it sent a plain one). A client's W3C `traceparent` (header, or `params._meta` as MCP's "
     "SEP-414 puts it) is continued to every backend: a new span id in the same trace with the same sampled flag, "
     "as the `traceparent` header of Streamable HTTP requests and in `params._meta` of every request. Env: "
     "`ONLY1MCP_LOGGING__<KEY>`."),
]


def _default(field: object) -> str:
    default = getattr(field, "default", PydanticUndefined)
    factory = getattr(field, "default_factory", None)
    if default is PydanticUndefined and factory is None:
        return "required"
    if factory is not None:
        value = factory()
        return "see below" if isinstance(value, BaseModel) else f"`{json.dumps(value)}`"
    return f"`{json.dumps(default, default=str)}`"


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `only1mcp/config/models.py` by `python -m only1mcp.config.reference`; a test keeps it "
        "current.",
        "",
        "Sources, lowest to highest precedence: these defaults, the config file, `ONLY1MCP_*` environment "
        "variables (nested with `__`), command-line flags. Files may be YAML, TOML or JSON (comments and "
        "trailing commas allowed); `mcpServers` (Claude Desktop, Cursor, Claude Code) and `servers` (VS Code) "
        "mappings are read as backends. Strings may use `${VAR}`, `${env:VAR}`, `${VAR:-default}`; `$$` is a "
        "literal `$`. In `mcpServers` entries, `type`/`transport`/`transportType` name the transport, "
        "`disabled: true` means `enabled: false`, `timeout` means `timeouts.call`, and `autoApprove`, "
        "`alwaysAllow`, `description`, `gallery`, `version` are ignored.",
        "",
        "Saving the file (or SIGHUP) reloads it. A setting marked *restart* keeps its running value until the "
        "gateway restarts (the reload says so in the log and in admin status, `config.needs_restart`); every "
        "other one applies at once. A changed backend is restarted; an unchanged one keeps running.",
        "",
    ]
    for title, model, about in _SECTIONS:
        lines += [f"## `{title}`", "", about, "", "| key | default | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            if name == "transport":
                continue
            doc = (field.description or "").replace("|", "\\|")
            if reload_mark(field) is Reload.RESTART:
                doc = f"*restart*: {doc}"
            lines.append(f"| `{name}` | {_default(field)} | {doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
