"""The tools of ``compact`` mode: schemas made lossless-minimal, descriptions kept or trimmed as configured."""

from __future__ import annotations

from typing import Any

from .describe import trim, trim_schema
from .schemas import compact_schema

__all__ = ["compact_tool", "compact_tools"]

_SCHEMA_KEYS = ("inputSchema", "outputSchema")


def compact_tool(tool: dict[str, Any], descriptions: str | int = "full") -> dict[str, Any]:
    """One tool as ``compact`` shows it; every other field (annotations, _meta, icons, …) as the backend sent
    it. ``descriptions``: "full", "first_sentence" or a number of characters."""
    out = dict(tool)
    name = str(tool.get("name", ""))
    for key in _SCHEMA_KEYS:
        if key in out:
            out[key] = trim_schema(compact_schema(out[key], name), descriptions)
    if "description" in out:
        out["description"] = trim(out["description"], descriptions)
    return out


def compact_tools(tools: list[dict[str, Any]], descriptions: str | int = "full") -> list[dict[str, Any]]:
    return [compact_tool(tool, descriptions) for tool in tools]
