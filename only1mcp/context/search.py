"""Find the tools for a task: BM25 (bm25s) over each field of every tool, fields weighted, scores summed.

One index per field (BM25F-like: each field keeps its own term statistics, so a word common in descriptions
still counts in a name). Built once per catalog version and view; a search costs one sparse lookup per field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import bm25s
import numpy as np

from .schemas import walk
from .words import Words

__all__ = ["FIELD_WEIGHTS", "Hit", "ToolIndex"]

# A query that names a backend ("on GitHub", "in redis") means that backend's tools: theirs count this much more.
NAMED_GROUP_BOOST = 2.0
# How much a match in each field counts: the best of a small grid on the tuning queries only
# (bench/context_queries.json); the held-out set checks them (bench/README.md).
FIELD_WEIGHTS: dict[str, float] = {"name": 2.0, "title": 2.0, "description": 1.0, "arguments": 0.3}


@dataclass(frozen=True, slots=True)
class Hit:
    name: str
    score: float


def _argument_text(schema: Any) -> str:
    """Argument names and descriptions, at any depth (property names are split like tool names)."""
    parts: list[str] = []

    def collect(node: dict[str, Any]) -> dict[str, Any]:
        properties = node.get("properties")
        if isinstance(properties, dict):
            parts.extend(str(name) for name in properties)
        if isinstance(node.get("description"), str):
            parts.append(node["description"])
        return node

    walk(schema, collect)
    return " ".join(parts)


def _fields(tool: dict[str, Any]) -> dict[str, str]:
    annotations = tool.get("annotations") if isinstance(tool.get("annotations"), dict) else {}
    titles = [t for t in (tool.get("title"), annotations.get("title")) if isinstance(t, str)]
    description = tool.get("description")
    return {"name": str(tool.get("name", "")), "title": " ".join(titles),
            "description": description if isinstance(description, str) else "",
            "arguments": _argument_text(tool.get("inputSchema"))}


class ToolIndex:
    """The tools of one catalog view, searchable. Immutable once built."""

    __slots__ = ("_groups", "_indexes", "_names", "_weights", "_words")

    def __init__(self, tools: Iterable[dict[str, Any]], *, groups: list[str] | None = None,
                 words: Words | None = None, weights: dict[str, float] | None = None) -> None:
        """``groups``: each tool's backend, in the same order (a query naming one favours its tools)."""
        self._words = words or Words()
        self._weights = weights or FIELD_WEIGHTS
        fields = [_fields(tool) for tool in tools]
        self._names = [f["name"] for f in fields]
        self._groups: dict[frozenset[str], np.ndarray] = {}  # a backend's words -> which tools are its
        for position, group in enumerate(groups or ()):
            key = frozenset(self._words.named(group))
            mask = self._groups.setdefault(key, np.zeros(len(self._names), dtype=bool))
            mask[position] = True
        self._indexes: dict[str, bm25s.BM25] = {}
        for field, weight in self._weights.items():
            corpus = [self._words.of_text(f[field]) for f in fields]
            if weight <= 0 or not any(corpus):
                continue  # bm25s cannot index a field no tool has a word in (and it would score nothing)
            index = bm25s.BM25()
            index.index(corpus, show_progress=False)
            self._indexes[field] = index

    def __len__(self) -> int:
        return len(self._names)

    def scores(self, query: str) -> np.ndarray:
        """Every tool's score for ``query``, in catalog order."""
        total = np.zeros(len(self._names), dtype=np.float32)
        terms = self._words.of_query(query)
        if not terms:
            return total
        for field, index in self._indexes.items():
            total += self._weights[field] * index.get_scores(terms)
        named = self._words.named(query)
        for group, mask in self._groups.items():
            if group and group <= named:
                total[mask] *= NAMED_GROUP_BOOST
        return total

    def search(self, query: str, limit: int, allowed: Callable[[str], bool] = lambda _name: True) -> list[Hit]:
        """The best ``limit`` tools for ``query`` that ``allowed`` lets through, best first; a tool that
        shares no word with the query is never returned. Ties keep catalog order."""
        scores = self.scores(query)
        hits: list[Hit] = []
        for position in np.argsort(-scores, kind="stable"):
            score = float(scores[position])
            if score <= 0 or len(hits) >= limit:
                break
            name = self._names[position]
            if allowed(name):
                hits.append(Hit(name, score))
        return hits
