"""Semantic re-ranking of a BM25 search: its best candidates re-ordered by BM25 blended with cosine similarity.

BM25 picks the candidates (so a tool sharing no word with the query is still never returned, and rbac filters
as before); the model only re-orders them. Tool vectors are computed once, when the index is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .search import Hit, ToolIndex
from .words import split_identifier

if TYPE_CHECKING:
    from .words import Words

__all__ = ["CANDIDATES", "SEMANTIC_WEIGHT", "Encoder", "RerankedIndex", "blend", "tool_text"]

# BM25's best this many (after rbac) are re-ordered; the rest keep BM25's order after them.
CANDIDATES = 20
# score = (1 - w) * BM25 / best BM25 + w * cosine. w chosen on the tuning, held-out and fresh query sets only
# (bench/README.md, "Semantic re-ranking").
SEMANTIC_WEIGHT = 0.3


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def tool_text(tool: dict[str, Any]) -> str:
    """What a tool's vector is made of: its name split into words, then its description."""
    description = tool.get("description")
    name = " ".join(split_identifier(str(tool.get("name", ""))))
    return f"{name}. {description}" if isinstance(description, str) and description else name


def blend(bm25: np.ndarray, cosine: np.ndarray, weight: float) -> np.ndarray:
    """The re-ranking score of each candidate: BM25 scaled to the best candidate's (so 0..1, like a cosine of
    unit vectors that rarely goes below 0) mixed with the cosine, ``weight`` of it the cosine's."""
    best = float(bm25.max()) if bm25.size else 0.0
    scaled = bm25 / best if best > 0 else np.zeros_like(bm25)
    return (1.0 - weight) * scaled + weight * cosine


class RerankedIndex:
    """A ``ToolIndex`` whose results are re-ranked; the same ``search`` contract. Immutable once built."""

    __slots__ = ("_bm25", "_encoder", "_positions", "_vectors", "candidates", "weight")

    def __init__(self, tools: Iterable[dict[str, Any]], encoder: Encoder, *, groups: list[str] | None = None,
                 words: Words | None = None, weight: float = SEMANTIC_WEIGHT, candidates: int = CANDIDATES) -> None:
        tools = list(tools)
        self._bm25 = ToolIndex(tools, groups=groups, words=words)
        self._encoder = encoder
        self._positions = {str(tool.get("name", "")): position for position, tool in enumerate(tools)}
        self._vectors = encoder.encode([tool_text(tool) for tool in tools]) if tools else np.zeros((0, 0))
        self.weight = weight
        self.candidates = candidates

    def __len__(self) -> int:
        return len(self._bm25)

    def search(self, query: str, limit: int, allowed: Callable[[str], bool] = lambda _name: True) -> list[Hit]:
        """BM25's best ``max(limit, candidates)`` allowed tools, the first ``candidates`` of them re-ordered by
        ``blend``, best first; the score of a hit is its blended score."""
        hits = self._bm25.search(query, max(limit, self.candidates), allowed)
        head, tail = hits[:self.candidates], hits[self.candidates:]
        if len(head) < 2:
            return hits[:limit]
        query_vector = self._encoder.encode([query])[0]
        cosine = self._vectors[[self._positions[hit.name] for hit in head]] @ query_vector
        scores = blend(np.array([hit.score for hit in head], dtype=np.float32), cosine, self.weight)
        order = np.argsort(-scores, kind="stable")
        ranked = [Hit(head[i].name, float(scores[i])) for i in order]
        return (ranked + tail)[:limit]
