"""JSON-RPC 2.0 message shapes and the error codes MCP uses."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from .codec import ExactNumber

__all__ = [
    "Code",
    "JsonRpcError",
    "answer_id",
    "error_message",
    "is_notification",
    "is_request",
    "is_response",
    "notification",
    "request",
    "response",
    "shape_error",
]

Message = dict[str, Any]
# Tuples, not `str | int | ...`: a union in an isinstance call is built anew on every call (callgrind: about
# 1,500 instructions each, on a path every request takes).
_ID_TYPES = (str, int, float, ExactNumber)
_ID_OR_NULL = (str, int, float, ExactNumber, type(None))
_PARAMS_TYPES = (dict, list)


class Code(IntEnum):
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    # Implementation-defined server errors (-32000 .. -32099)
    REQUEST_TIMEOUT = -32001
    RESOURCE_NOT_FOUND = -32002
    BACKEND_UNAVAILABLE = -32003
    UNAUTHORIZED = -32004  # with HTTP 401 (no or invalid credential) or 403 (insufficient scope)
    RATE_LIMITED = -32005  # a rate limit refused the request (HTTP 429 where the transport has a status)
    # 2026-07-28
    HEADER_MISMATCH = -32020
    MISSING_CLIENT_CAPABILITY = -32021
    UNSUPPORTED_VERSION = -32022


class JsonRpcError(Exception):
    """An error that becomes a JSON-RPC error response; ``message`` says what to fix."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": int(self.code), "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def request(request_id: Any, method: str, params: dict[str, Any] | None = None) -> Message:
    message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: dict[str, Any] | None = None) -> Message:
    message: Message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def response(request_id: Any, result: Any) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_message(request_id: Any, code: int, message: str, data: Any = None) -> Message:
    if not message.isascii():
        # A message may quote a request header, and a header byte that is not UTF-8 is read as a surrogate
        # escape, which no JSON text can hold: it is shown as its escape sequence instead.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    error: dict[str, Any] = {"code": int(code), "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def is_request(message: Message) -> bool:
    return "method" in message and "id" in message


def is_notification(message: Message) -> bool:
    return "method" in message and "id" not in message


def is_response(message: Message) -> bool:
    return "method" not in message and ("result" in message or "error" in message)


def answer_id(message: Any) -> Any:
    """The id an error answer to ``message`` carries: its own when it is a valid id, else null (an id of
    the wrong type is not echoed: it may be anything, and JSON-RPC says to answer such a message with null)."""
    if not isinstance(message, dict):
        return None
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, _ID_TYPES):
        return None
    return request_id


def shape_error(message: Any) -> str | None:
    """Why ``message`` is not a JSON-RPC 2.0 message, or None when it is one."""
    if not isinstance(message, dict):
        return f"expected a JSON-RPC message object, got {type(message).__name__}"
    if message.get("jsonrpc") != "2.0":
        return 'the "jsonrpc" member must be exactly "2.0"'
    if "id" in message:
        request_id = message["id"]
        if request_id is None and "method" in message:
            return 'a request "id" must be a string or a number, not null'
        if isinstance(request_id, bool) or not isinstance(request_id, _ID_OR_NULL):
            return 'the "id" member must be a string or a number'
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            return 'the "method" member must be a non-empty string'
        if "params" in message and not isinstance(message["params"], _PARAMS_TYPES):
            return 'the "params" member must be an object'
        return None
    return _response_shape_error(message)


def _response_shape_error(message: dict[str, Any]) -> str | None:
    """Why a message without a method is not a JSON-RPC response (clients answer the gateway's requests)."""
    if "result" not in message and "error" not in message:
        return 'a message needs a "method" (request or notification) or a "result"/"error" (response)'
    if "id" not in message:
        return 'a response needs an "id"'
    if "error" in message and not isinstance(message["error"], dict):
        return 'the "error" member must be an object'
    return None
