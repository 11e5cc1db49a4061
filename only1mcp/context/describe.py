"""Shorter descriptions for ``compact.descriptions``: the first sentence, at most N characters, or both; and
argument descriptions that only echo names the model already sees, left out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .schemas import walk

if TYPE_CHECKING:
    from .words import Words

__all__ = ["KEEP", "Shortening", "Trim", "new_words", "shorten_tool"]

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


@dataclass(frozen=True, slots=True)
class Trim:
    """How one kind of description is shortened: to its first sentence, then to at most ``max_chars``."""

    first_sentence: bool = False
    max_chars: int | None = None

    @property
    def keeps_all(self) -> bool:
        return not self.first_sentence and self.max_chars is None

    def __call__(self, text: Any) -> Any:
        """``text`` shortened; what is not a string is returned as it is."""
        if not isinstance(text, str) or self.keeps_all:
            return text
        if self.first_sentence:
            text = _first_sentence(text)
        return text if self.max_chars is None else _at_most(text, self.max_chars)


@dataclass(frozen=True, slots=True)
class Shortening:
    """What ``compact`` does to a tool's descriptions: its own, and its arguments' (at any depth).

    When argument descriptions are shortened at all, one that only echoes what the model already reads
    beside it is left out: every word of it (split, stemmed, stop words aside, as the tool search reads
    words) is in the tool's name, the tool's description as shown, or the argument's own name. "Pull request
    number" on ``pull_number`` of ``get_pull_request`` is such a one; "Text to search for - must match
    exactly" on ``oldText`` of ``edit_file`` is not."""

    tools: Trim = Trim()
    arguments: Trim = Trim()

    @property
    def keeps_all(self) -> bool:
        return self.tools.keeps_all and self.arguments.keeps_all


KEEP = Shortening()


def new_words() -> Words:
    """The search's word rules (split, stop words, stems), for the echo check."""
    # Imported here: PyStemmer is needed only when argument descriptions are shortened.
    from .words import Words  # noqa: PLC0415

    return Words()


def _without_echoes(schema: dict[str, Any], known: set[str], words: Words) -> dict[str, Any]:
    """One schema node with its properties' echoing descriptions removed (``words``: a search ``Words``)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    kept: dict[str, Any] = {}
    for name, sub in properties.items():
        if isinstance(sub, dict) and isinstance(sub.get("description"), str) \
                and set(words.of_text(sub["description"])) <= known | set(words.of_text(str(name))):
            sub = {k: v for k, v in sub.items() if k != "description"}  # noqa: PLW2901
        kept[name] = sub
    return {**schema, "properties": kept}


def shorten_tool(tool: dict[str, Any], how: Shortening, schema_keys: tuple[str, ...],
                 words: Words | None = None) -> dict[str, Any]:
    """``tool`` with its description and the descriptions in its ``schema_keys`` shortened as ``how`` says;
    ``words``: the search's word rules, to reuse one stemmer over many tools."""
    if how.keeps_all:
        return tool
    out = dict(tool)
    if "description" in out:
        out["description"] = how.tools(out["description"])
    if how.arguments.keeps_all:
        return out
    words = words or new_words()
    known = set(words.of_text(str(out.get("name", "")))) | set(words.of_text(str(out.get("description") or "")))

    def visit(node: dict[str, Any]) -> dict[str, Any]:
        node = _without_echoes(node, known, words)
        if isinstance(node.get("description"), str):
            node = {**node, "description": how.arguments(node["description"])}
        return node

    for key in schema_keys:
        if key in out:
            out[key] = walk(out[key], visit)
    return out
