"""Shorter descriptions for ``compact.descriptions``: the first sentence, or at most N characters."""

from __future__ import annotations

import re
from typing import Any

from .schemas import walk

__all__ = ["trim", "trim_schema"]

# A sentence ends at . ! ? followed by whitespace and then something that starts a sentence, or at a blank
# line; an abbreviation's dot (e.g., i.e., etc.) does not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[`*-])|\n\s*\n")
_ELLIPSIS = "…"


_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "approx.", "incl.", "no.", "cf.")


def _first_sentence(text: str) -> str:
    for match in _SENTENCE_END.finditer(text):
        before = text[:match.start()]
        if not before.lower().endswith(_ABBREVIATIONS):  # "e.g. UTC" goes on
            return before.rstrip()
    return text.strip()


def _at_most(text: str, limit: int) -> str:
    """``text`` cut at a word boundary so that it and the ellipsis fit in ``limit`` characters."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:max(1, limit - len(_ELLIPSIS))]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + _ELLIPSIS


def trim(text: Any, policy: str | int) -> Any:
    """``text`` as ``policy`` wants it: "full" keeps it, "first_sentence" keeps the first sentence, a number
    keeps at most that many characters. What is not a string is returned as it is."""
    if not isinstance(text, str) or policy == "full":
        return text
    if policy == "first_sentence":
        return _first_sentence(text)
    return _at_most(text, int(policy))


def trim_schema(schema: Any, policy: str | int) -> Any:
    """Every ``description`` keyword of a schema (its arguments') trimmed; property names are not keywords."""
    if policy == "full":
        return schema
    return walk(schema, lambda node: {**node, "description": trim(node["description"], policy)}
                if isinstance(node.get("description"), str) else node)
