"""Reading a client request's params: a missing or mistyped one is the client's error (-32602), named."""

from __future__ import annotations

from typing import Any

from only1mcp.protocol.jsonrpc import Code, JsonRpcError

__all__ = ["text_param"]


def text_param(params: dict[str, Any], key: str, method: str) -> str:
    """``params[key]`` when it is a non-empty string; otherwise -32602 saying what ``method`` needs."""
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise JsonRpcError(Code.INVALID_PARAMS, f"{method} needs a string '{key}' in params")
    return value
