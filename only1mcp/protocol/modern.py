"""The 2026-07-28 (stateless) wire: the per-request envelope, its checks, and the result shapes.

A 2026-07-28 request carries everything a session used to: its protocol version, the client's
capabilities and (optionally) the client's identity travel in ``params._meta`` of every request, and over
HTTP the version, method and name are repeated in headers so intermediaries can route without parsing the
body. This module is pure: it classifies a decoded request and shapes results; the front door does I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .jsonrpc import Code, JsonRpcError
from .versions import ALL_VERSIONS, MODERN

__all__ = [
    "CACHEABLE",
    "CAPABILITIES_KEY",
    "CLIENT_INFO_KEY",
    "LOG_LEVELS",
    "LOG_LEVEL_KEY",
    "REMOVED",
    "SERVER_INFO_KEY",
    "SUBSCRIPTION_ID_KEY",
    "VERSION_KEY",
    "Envelope",
    "backend_params",
    "classify",
    "complete",
    "decode_header_value",
    "encode_header_value",
    "http_headers",
    "http_status",
    "input_required",
    "is_modern",
    "log_allowed",
    "param_header_problem",
]

VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
_ENVELOPE_KEYS = (VERSION_KEY, CAPABILITIES_KEY, CLIENT_INFO_KEY, LOG_LEVEL_KEY)

VERSION_HEADER = "mcp-protocol-version"
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
# The params member a request's Mcp-Name header mirrors.
_NAME_PARAM = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

# Results a client may cache (each must say for how long, and for whom).
CACHEABLE = frozenset({"server/discover", "tools/list", "prompts/list", "resources/list",
                       "resources/templates/list", "resources/read"})

# Methods of the handshake era that 2026-07-28 removed, and what replaces each.
REMOVED = {
    "initialize": "send requests directly; server/discover tells what this gateway offers",
    "ping": "no session to keep alive; any request shows the gateway is up",
    "logging/setLevel": f"put the level in each request's _meta '{LOG_LEVEL_KEY}'",
    "resources/subscribe": "open subscriptions/listen with notifications.resourceSubscriptions",
    "resources/unsubscribe": "close the subscriptions/listen stream",
}

# HTTP status for a JSON-RPC error code on this wire; any other code is sent with 200.
_STATUS = {int(Code.PARSE_ERROR): 400, int(Code.INVALID_REQUEST): 400, int(Code.INVALID_PARAMS): 400,
           int(Code.HEADER_MISMATCH): 400, int(Code.MISSING_CLIENT_CAPABILITY): 400,
           int(Code.UNSUPPORTED_VERSION): 400, int(Code.METHOD_NOT_FOUND): 404, int(Code.RATE_LIMITED): 429}

# RFC 5424's severities as MCP names them, least severe first
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_BASE64_VALUE = re.compile(r"^=\?base64\?(.*)\?=$")
_DECIMAL = re.compile(r"^-?[0-9]+(\.0+)?$")
_HEADER_TYPES = ("string", "integer", "boolean")  # the property types x-mcp-header may annotate


@dataclass(frozen=True, slots=True)
class Envelope:
    """What one 2026-07-28 request says about its client."""

    version: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None


def is_modern(message: Any, header_version: str | None) -> bool:
    """Whether a POSTed body belongs to the stateless era: it carries the version envelope, or the
    version header names a stateless revision (then a missing envelope is an error, not a session)."""
    if header_version in MODERN:
        return True
    if not isinstance(message, dict):
        return False
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and VERSION_KEY in meta


def decode_header_value(value: str | None) -> str | None:
    """A header value as sent: verbatim, or the UTF-8 inside the ``=?base64?…?=`` wrapping clients use
    for values that are not plain printable ASCII. None when the wrapping is malformed."""
    if value is None:
        return None
    match = _BASE64_VALUE.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group(1), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def encode_header_value(value: str) -> str:
    """The inverse of ``decode_header_value``: printable ASCII as it is, anything else base64-wrapped."""
    if value.isascii() and value.isprintable() and value == value.strip() and not _BASE64_VALUE.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def http_headers(message: dict[str, Any]) -> dict[str, str]:
    """The headers an HTTP client sends with a 2026-07-28 request (they mirror the body), or {} when the
    message carries no 2026-07-28 envelope."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get(VERSION_KEY), str):
        return {}
    method = str(message.get("method", ""))
    headers = {"MCP-Protocol-Version": meta[VERSION_KEY], "Mcp-Method": method}
    name_param = _NAME_PARAM.get(method)
    if name_param is not None and isinstance(params, dict) and isinstance(params.get(name_param), str):
        headers["Mcp-Name"] = encode_header_value(params[name_param])
    return headers


def classify(message: dict[str, Any], headers: Mapping[str, str]) -> Envelope:
    """Check a 2026-07-28 request's envelope and headers; the first problem raises with the code the
    spec names (-32602 missing envelope, -32020 headers disagree with the body, -32022 version)."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        raise JsonRpcError(Code.INVALID_PARAMS, f"params._meta must be an object carrying '{VERSION_KEY}' and "
                           f"'{CAPABILITIES_KEY}' (2026-07-28 requests have no session to remember them)")
    missing = [key for key in (VERSION_KEY, CAPABILITIES_KEY) if key not in meta]
    if missing:
        raise JsonRpcError(Code.INVALID_PARAMS, f"params._meta is missing {' and '.join(repr(k) for k in missing)}")
    version = meta[VERSION_KEY]
    if headers.get(VERSION_HEADER) != version:
        raise JsonRpcError(Code.HEADER_MISMATCH, f"the MCP-Protocol-Version header must equal params._meta "
                           f"'{VERSION_KEY}' ({version!r})")
    method = message.get("method")
    if headers.get(METHOD_HEADER) != method:
        raise JsonRpcError(Code.HEADER_MISMATCH, f"the Mcp-Method header must equal the body's method ({method!r})")
    name_param = _NAME_PARAM.get(str(method))
    if name_param is not None and isinstance(params, dict) and params.get(name_param) is not None and \
            decode_header_value(headers.get(NAME_HEADER)) != params.get(name_param):
        raise JsonRpcError(Code.HEADER_MISMATCH, f"the Mcp-Name header must equal params.{name_param} "
                           f"({params.get(name_param)!r})")
    if not isinstance(version, str):
        raise JsonRpcError(Code.INVALID_PARAMS, f"'{VERSION_KEY}' must be a string")
    if version not in MODERN:
        raise JsonRpcError(Code.UNSUPPORTED_VERSION, f"unsupported protocol version {version!r}; this gateway "
                           f"speaks {', '.join(ALL_VERSIONS)}", {"supported": list(ALL_VERSIONS), "requested": version})
    capabilities = meta[CAPABILITIES_KEY]
    if not isinstance(capabilities, dict):
        raise JsonRpcError(Code.INVALID_PARAMS, f"'{CAPABILITIES_KEY}' must be an object")
    client = meta.get(CLIENT_INFO_KEY)
    level = meta.get(LOG_LEVEL_KEY)
    if level is not None and level not in LOG_LEVELS:
        raise JsonRpcError(Code.INVALID_PARAMS, f"'{LOG_LEVEL_KEY}' must be one of {', '.join(LOG_LEVELS)}")
    return Envelope(version, capabilities, client if isinstance(client, dict) else {}, level)


def http_status(code: int) -> int:
    return _STATUS.get(int(code), 200)


def log_allowed(requested: str | None, level: Any) -> bool:
    """A log message goes to a 2026-07-28 client only when its request asked for that level or lower."""
    if requested is None:
        return False
    try:
        return LOG_LEVELS.index(str(level)) >= LOG_LEVELS.index(requested)
    except ValueError:
        return True  # a level we do not know is passed on rather than hidden


def complete(result: Any, method: str, server_info: dict[str, Any]) -> dict[str, Any]:
    """A handshake-era result in its 2026-07-28 shape: tagged complete, cache hints on cacheable results
    (the gateway's lists follow backends that may change at any time, so: immediately stale, private),
    and the server's identity in _meta."""
    shaped = dict(result) if isinstance(result, dict) else {}
    shaped["resultType"] = "complete"
    if method in CACHEABLE:
        shaped.setdefault("ttlMs", 0)
        shaped.setdefault("cacheScope", "private")
    meta = shaped.get("_meta")
    shaped["_meta"] = {**(meta if isinstance(meta, dict) else {}), SERVER_INFO_KEY: server_info}
    return shaped


def input_required(requests: dict[str, dict[str, Any]], state: str) -> dict[str, Any]:
    """The result that asks the client to answer ``requests`` and retry with ``state``."""
    return {"resultType": "input_required", "inputRequests": requests, "requestState": state}


def backend_params(params: dict[str, Any]) -> dict[str, Any]:
    """A 2026-07-28 request's params as a handshake-era backend expects them: no envelope keys (the
    backend session carries that), no retry members (the gateway answers those itself)."""
    clean = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
    meta = clean.get("_meta")
    if isinstance(meta, dict):
        rest = {k: v for k, v in meta.items() if k not in _ENVELOPE_KEYS}
        if rest:
            clean["_meta"] = rest
        else:
            del clean["_meta"]
    return clean


def _annotated(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str, dict[str, Any]]]:
    """(argument path, header token, property schema) of every property a tool marks ``x-mcp-header``,
    reachable from the root through ``properties`` only (the only places the annotation counts)."""
    found: list[tuple[tuple[str, ...], str, dict[str, Any]]] = []
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return found
    for name, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        token = sub.get("x-mcp-header")
        if isinstance(token, str) and token and sub.get("type") in _HEADER_TYPES:
            found.append(((*path, name), token, sub))
        found += _annotated(sub, (*path, name))
    return found


def _rendered(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (str, int, float)) else None


def param_header_problem(schema: Any, arguments: Any, headers: Mapping[str, str]) -> str | None:
    """Why a tools/call's ``Mcp-Param-*`` headers disagree with its arguments, or None. A tool marks an
    argument ``x-mcp-header`` so intermediaries can route on it without reading the body; a server must
    refuse a request whose header and argument differ (-32020), or one could be routed on a lie."""
    for path, token, prop in _annotated(schema):
        header_name = f"Mcp-Param-{token}"
        header = headers.get(header_name)
        value: Any = arguments
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        argument = ".".join(path)
        rendered = None if value is None else _rendered(value)
        if rendered is None:
            if header is not None:
                return f"the {header_name} header is present but argument '{argument}' is absent"
            continue
        if header is None:
            return f"the {header_name} header is missing; it must repeat argument '{argument}'"
        decoded = decode_header_value(header)
        if decoded is None:
            return f"the {header_name} header has a malformed =?base64?…?= value"
        if prop.get("type") == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and _DECIMAL.fullmatch(decoded):
            if float(decoded) != float(value):
                return f"the {header_name} header ({decoded}) does not match argument '{argument}' ({value})"
        elif decoded != rendered:
            return f"the {header_name} header ({decoded!r}) does not match argument '{argument}' ({rendered!r})"
    return None
