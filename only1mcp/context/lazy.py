"""``lazy`` mode's two meta-tools: what tools/list holds, and how their calls are read and answered.

``call_tool`` is a rename, not a call path of its own: ``unwrap_call`` turns its params into the tools/call
params of the named tool, and the dispatcher goes on exactly as for a direct call (rbac, routing, progress,
requests to the client, errors).
"""

from __future__ import annotations

import json
from typing import Any

from only1mcp.protocol.jsonrpc import Code, JsonRpcError

__all__ = ["CALL_TOOL", "META_TOOLS", "SEARCH_TOOLS", "SearchRequest", "search_result", "unwrap_call"]

SEARCH_TOOLS = "search_tools"
CALL_TOOL = "call_tool"
MAX_LIMIT = 50

META_TOOLS: list[dict[str, Any]] = [
    {
        "name": SEARCH_TOOLS,
        "description": "Find the tools for a task among every tool this gateway offers. Describe the task in a "
        "few words; returns the best matching tools, best first, with their input schemas. Then use "
        f"{CALL_TOOL} to run one.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "The task, in plain words"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                          "description": "How many tools to return (default 5)"},
            },
            "required": ["query"],
        },
        "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
    },
    {
        "name": CALL_TOOL,
        "description": f"Run a tool that {SEARCH_TOOLS} found, with arguments that follow its input schema.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The tool's name"},
                "arguments": {"type": "object", "description": "The tool's arguments"},
            },
            "required": ["name"],
        },
    },
]


class SearchRequest:
    """A ``search_tools`` call's arguments, checked."""

    __slots__ = ("limit", "query")

    def __init__(self, arguments: Any, default_limit: int) -> None:
        if not isinstance(arguments, dict):
            raise JsonRpcError(Code.INVALID_PARAMS, f"{SEARCH_TOOLS}: arguments must be an object with 'query'")
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise JsonRpcError(Code.INVALID_PARAMS, f"{SEARCH_TOOLS} needs a non-empty string 'query': the task "
                               "in plain words, e.g. \"open an issue on GitHub\"")
        limit = arguments.get("limit", default_limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise JsonRpcError(Code.INVALID_PARAMS, f"{SEARCH_TOOLS}: 'limit' must be a whole number from 1 to "
                               f"{MAX_LIMIT}, got {limit!r}")
        self.query = query
        self.limit = limit


def search_result(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The tool result of a search: structured, and the same JSON as text for clients without structured
    output."""
    found = {"tools": tools}
    return {"content": [{"type": "text", "text": json.dumps(found, ensure_ascii=False)}],
            "structuredContent": found}


def unwrap_call(params: dict[str, Any]) -> dict[str, Any]:
    """The tools/call params of the tool a ``call_tool`` call names: its name and arguments, with the call's
    ``_meta`` (progress token) and every other field kept."""
    wrapped = params.get("arguments")
    if not isinstance(wrapped, dict):
        raise JsonRpcError(Code.INVALID_PARAMS, f"{CALL_TOOL}: arguments must be an object with 'name' (a tool "
                           f"{SEARCH_TOOLS} found) and 'arguments'")
    name = wrapped.get("name")
    if not isinstance(name, str) or not name:
        raise JsonRpcError(Code.INVALID_PARAMS, f"{CALL_TOOL} needs a string 'name': a tool {SEARCH_TOOLS} found")
    arguments = wrapped.get("arguments", {})
    if not isinstance(arguments, dict):
        raise JsonRpcError(Code.INVALID_PARAMS, f"{CALL_TOOL}: 'arguments' must be an object (the arguments of "
                           f"'{name}'), got {type(arguments).__name__}")
    return {**params, "name": name, "arguments": arguments}
