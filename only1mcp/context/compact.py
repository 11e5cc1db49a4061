"""The tools of ``compact`` mode: schemas made lossless-minimal, descriptions kept or shortened as configured."""

from __future__ import annotations

from typing import Any

from .describe import KEEP, Shortening, new_words, shorten_tool
from .schemas import compact_schema

__all__ = ["compact_tool", "compact_tools"]

_SCHEMA_KEYS = ("inputSchema", "outputSchema")


def _compacted(tool: dict[str, Any]) -> dict[str, Any]:
    out = dict(tool)
    name = str(tool.get("name", ""))
    for key in _SCHEMA_KEYS:
        if key in out:
            out[key] = compact_schema(out[key], name)
    return out


def compact_tool(tool: dict[str, Any], descriptions: Shortening = KEEP) -> dict[str, Any]:
    """One tool as ``compact`` shows it; every other field (annotations, _meta, icons, …) as the backend sent
    it."""
    return shorten_tool(_compacted(tool), descriptions, _SCHEMA_KEYS)


def compact_tools(tools: list[dict[str, Any]], descriptions: Shortening = KEEP) -> list[dict[str, Any]]:
    words = None if descriptions.arguments.keeps_all else new_words()  # one stemmer for the whole list
    return [shorten_tool(_compacted(tool), descriptions, _SCHEMA_KEYS, words) for tool in tools]
