"""The 2026-07-28 envelope checks, result shapes and sealed request states."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from multidict import CIMultiDict

from only1mcp.protocol import modern
from only1mcp.protocol.jsonrpc import Code, JsonRpcError
from only1mcp.sessions import InvalidSession, SessionSealer

V = "2026-07-28"


def _request(method: str = "tools/call", meta: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    envelope = {modern.VERSION_KEY: V, modern.CAPABILITIES_KEY: {"sampling": {}},
                modern.CLIENT_INFO_KEY: {"name": "c", "version": "1"}} if meta is None else meta
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": envelope}}


def _headers(method: str = "tools/call", name: str | None = "t", version: str = V) -> dict[str, str]:
    headers = {"mcp-protocol-version": version, "mcp-method": method}
    if name is not None:
        headers["mcp-name"] = name
    return headers


def _code(message: dict[str, Any], headers: dict[str, str]) -> tuple[int, str]:
    with pytest.raises(JsonRpcError) as raised:
        modern.classify(message, headers)
    return raised.value.code, raised.value.message


def test_a_complete_envelope_classifies() -> None:
    envelope = modern.classify(_request(name="t"), _headers())
    assert envelope.version == V
    assert envelope.capabilities == {"sampling": {}}
    assert envelope.client == {"name": "c", "version": "1"}
    assert envelope.log_level is None


def test_era_detection() -> None:
    assert modern.is_modern(_request(), None)
    assert modern.is_modern({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, V)
    assert not modern.is_modern({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, "2025-06-18")
    assert not modern.is_modern([_request()], None)
    assert not modern.is_modern({"method": "x", "params": {"_meta": {"progressToken": 1}}}, None)


def test_missing_envelope_keys_are_invalid_params_naming_them() -> None:
    code, message = _code({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, _headers("tools/list", None))
    assert code == Code.INVALID_PARAMS and modern.VERSION_KEY in message
    code, message = _code(_request(meta={modern.VERSION_KEY: V}), _headers())
    assert code == Code.INVALID_PARAMS and modern.CAPABILITIES_KEY in message


def test_headers_must_agree_with_the_body() -> None:
    assert _code(_request(name="t"), _headers(version="2025-06-18"))[0] == Code.HEADER_MISMATCH
    assert _code(_request(name="t"), {k: v for k, v in _headers().items() if k != "mcp-protocol-version"})[0] \
        == Code.HEADER_MISMATCH
    code, message = _code(_request(name="t"), _headers(method="prompts/get"))
    assert code == Code.HEADER_MISMATCH and "Mcp-Method" in message
    code, message = _code(_request(name="t"), _headers(name="other"))
    assert code == Code.HEADER_MISMATCH and "Mcp-Name" in message
    # resources/read mirrors the uri; lists carry no name.
    modern.classify(_request("resources/read", uri="a://b"), _headers("resources/read", "a://b"))
    modern.classify(_request("tools/list"), _headers("tools/list", None))


def test_names_outside_plain_ascii_arrive_base64_wrapped() -> None:
    name = "héllo wörld"
    wrapped = "=?base64?" + base64.b64encode(name.encode()).decode() + "?="
    modern.classify(_request(name=name), _headers(name=wrapped))
    assert modern.decode_header_value("=?base64?!!!?=") is None
    assert modern.decode_header_value("plain") == "plain"


def test_unknown_version_is_32022_listing_both_eras() -> None:
    message = _request(meta={modern.VERSION_KEY: "2099-01-01", modern.CAPABILITIES_KEY: {}}, name="t")
    with pytest.raises(JsonRpcError) as raised:
        modern.classify(message, _headers(version="2099-01-01"))
    assert raised.value.code == Code.UNSUPPORTED_VERSION
    assert raised.value.data["requested"] == "2099-01-01"
    assert raised.value.data["supported"][0] == V and "2024-11-05" in raised.value.data["supported"]


def test_bad_log_level_and_capabilities_shape() -> None:
    meta = {modern.VERSION_KEY: V, modern.CAPABILITIES_KEY: {}, modern.LOG_LEVEL_KEY: "loud"}
    assert _code(_request("tools/list", meta=meta), _headers("tools/list", None))[0] == Code.INVALID_PARAMS
    meta = {modern.VERSION_KEY: V, modern.CAPABILITIES_KEY: []}
    assert _code(_request("tools/list", meta=meta), _headers("tools/list", None))[0] == Code.INVALID_PARAMS


def test_http_status_follows_the_code() -> None:
    assert modern.http_status(Code.METHOD_NOT_FOUND) == 404
    for code in (Code.PARSE_ERROR, Code.INVALID_REQUEST, Code.INVALID_PARAMS, Code.HEADER_MISMATCH,
                 Code.UNSUPPORTED_VERSION):
        assert modern.http_status(code) == 400
    assert modern.http_status(Code.INTERNAL_ERROR) == 200
    assert modern.http_status(Code.BACKEND_UNAVAILABLE) == 200


def test_log_levels_are_opt_in_and_ordered() -> None:
    assert not modern.log_allowed(None, "error")
    assert modern.log_allowed("warning", "error")
    assert not modern.log_allowed("warning", "info")
    assert modern.log_allowed("debug", "debug")


def test_results_get_their_2026_shape() -> None:
    info = {"name": "only1mcp"}
    listed = modern.complete({"tools": [], "_meta": {"x": 1}}, "tools/list", info)
    assert listed["resultType"] == "complete" and listed["ttlMs"] == 0 and listed["cacheScope"] == "private"
    assert listed["_meta"] == {"x": 1, modern.SERVER_INFO_KEY: info}
    called = modern.complete({"content": []}, "tools/call", info)
    assert "ttlMs" not in called and called["resultType"] == "complete"
    asked = modern.input_required({"k": {"method": "roots/list", "params": {}}}, "state")
    assert asked == {"resultType": "input_required", "inputRequests": {"k": {"method": "roots/list", "params": {}}},
                     "requestState": "state"}


def test_backend_params_drop_the_envelope_and_retry_members() -> None:
    params = {"name": "t", "arguments": {"a": 1}, "inputResponses": {}, "requestState": "s",
              "_meta": {modern.VERSION_KEY: V, modern.CAPABILITIES_KEY: {}, "progressToken": 7}}
    assert modern.backend_params(params) == {"name": "t", "arguments": {"a": 1}, "_meta": {"progressToken": 7}}
    assert modern.backend_params({"_meta": {modern.VERSION_KEY: V}}) == {}


def test_sealed_values_round_trip_and_refuse_tampering() -> None:
    sealer = SessionSealer(b"s" * 32, 3600)
    token = sealer.seal_value(["rs", 1, 4242, "7", "tools/call", "x"])
    assert sealer.open_value(token) == ["rs", 1, 4242, "7", "tools/call", "x"]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[3] ^= 1
    with pytest.raises(InvalidSession):
        sealer.open_value(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode())
    with pytest.raises(InvalidSession):
        SessionSealer(b"o" * 32, 3600).open_value(token)
    # A session token is not a sealed value, nor the other way round.
    session_token, _ = sealer.new("2025-06-18", {}, {})
    with pytest.raises(InvalidSession):
        sealer.open_value(session_token)
    with pytest.raises(InvalidSession):
        sealer.open(token)


def test_header_values_round_trip_and_mirror_the_body() -> None:
    for value in ("plain", "héllo", " padded ", "=?base64?eA==?=", "tab\there"):
        encoded = modern.encode_header_value(value)
        assert encoded.isascii() and modern.decode_header_value(encoded) == value
    assert modern.encode_header_value("plain") == "plain"
    assert modern.http_headers(_request(name="tøol")) == {
        "MCP-Protocol-Version": V, "Mcp-Method": "tools/call", "Mcp-Name": modern.encode_header_value("tøol")}
    assert modern.http_headers({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) == {}
    # What a client mirrors, the gateway accepts.
    message = _request(name="tøol")
    modern.classify(message, {k.lower(): v for k, v in modern.http_headers(message).items()})


_ROUTED = {"type": "object", "properties": {
    "region": {"type": "string", "x-mcp-header": "Region"},
    "count": {"type": "integer", "x-mcp-header": "Count"},
    "dry": {"type": "boolean", "x-mcp-header": "Dry"},
    "nested": {"type": "object", "properties": {"zone": {"type": "string", "x-mcp-header": "Zone"}}},
    "ratio": {"type": "number", "x-mcp-header": "Ratio"},  # numbers may not be headers: ignored
    "plain": {"type": "string"},
}}


def test_param_headers_must_repeat_the_annotated_arguments() -> None:
    headers = CIMultiDict({"Mcp-Param-Region": "eu-west", "Mcp-Param-Count": "3", "Mcp-Param-Dry": "true",
                           "Mcp-Param-Zone": modern.encode_header_value("zöne")})
    arguments = {"region": "eu-west", "count": 3, "dry": True, "nested": {"zone": "zöne"}, "ratio": 0.5}
    assert modern.param_header_problem(_ROUTED, arguments, headers) is None
    assert modern.param_header_problem(_ROUTED, {**arguments, "count": 3.0}, headers) is None
    assert "Mcp-Param-Region" in str(modern.param_header_problem(_ROUTED, {**arguments, "region": "us"}, headers))
    missing = CIMultiDict({k: v for k, v in headers.items() if k != "Mcp-Param-Dry"})
    assert "missing" in str(modern.param_header_problem(_ROUTED, arguments, missing))
    absent = {k: v for k, v in arguments.items() if k != "count"}
    assert "absent" in str(modern.param_header_problem(_ROUTED, absent, headers))
    # Header names are case-insensitive, as HTTP says.
    lower = CIMultiDict({k.lower(): v for k, v in headers.items()})
    assert modern.param_header_problem(_ROUTED, arguments, lower) is None
    # A tool without annotations constrains nothing.
    assert modern.param_header_problem({"type": "object"}, {"a": 1}, CIMultiDict()) is None
