"""Semantic re-ranking of a BM25 search: its best candidates re-ordered by a weighted reciprocal-rank fusion of
their BM25 rank and their rank by cosine similarity to the query.

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

__all__ = ["CANDIDATES", "FUSION_K", "SEMANTIC_WEIGHT", "Encoder", "RerankedIndex", "fuse", "ranks", "tool_text"]

# BM25's best this many (after rbac) are re-ordered; the rest keep BM25's order after them.
CANDIDATES = 20
# score = (1 - w) / (k + BM25 rank) + w / (k + cosine rank), ranks from 0. Of a grid (a linear blend of scaled
# BM25 and cosine, and this fusion; w, k and the candidates) on the tuning, held-out and fresh query sets only,
# no setting found the right tool in the top 3 more often than BM25 alone; this one, at 20 candidates, loses
# nothing there (bench/README.md, "Semantic re-ranking").
SEMANTIC_WEIGHT = 0.2
FUSION_K = 60.0


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def tool_text(tool: dict[str, Any]) -> str:
    """What a tool's vector is made of: its name split into words, then its description."""
    description = tool.get("description")
    name = " ".join(split_identifier(str(tool.get("name", ""))))
    return f"{name}. {description}" if isinstance(description, str) and description else name


def ranks(scores: np.ndarray) -> np.ndarray:
    """Each score's rank, 0 for the highest; ties keep their order."""
    ranked = np.empty(len(scores), dtype=np.float64)
    ranked[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
    return ranked


def fuse(cosine: np.ndarray, weight: float = SEMANTIC_WEIGHT, k: float = FUSION_K) -> np.ndarray:
    """The fused score of candidates given best first by BM25, from their cosine similarities to the query."""
    return (1.0 - weight) / (k + np.arange(len(cosine))) + weight / (k + ranks(cosine))


class RerankedIndex:
    """A ``ToolIndex`` whose results are re-ranked; the same ``search`` contract. Immutable once built."""

    __slots__ = ("_bm25", "_encoder", "_positions", "_vectors", "candidates", "k", "weight")

    def __init__(self, tools: Iterable[dict[str, Any]], encoder: Encoder, *, groups: list[str] | None = None,
                 words: Words | None = None, weight: float = SEMANTIC_WEIGHT, k: float = FUSION_K,
                 candidates: int = CANDIDATES) -> None:
        tools = list(tools)
        self._bm25 = ToolIndex(tools, groups=groups, words=words)
        self._encoder = encoder
        self._positions = {str(tool.get("name", "")): position for position, tool in enumerate(tools)}
        self._vectors = encoder.encode([tool_text(tool) for tool in tools]) if tools else np.zeros((0, 0))
        self.weight = weight
        self.k = k
        self.candidates = candidates

    def __len__(self) -> int:
        return len(self._bm25)

    def search(self, query: str, limit: int, allowed: Callable[[str], bool] = lambda _name: True) -> list[Hit]:
        """BM25's best ``max(limit, candidates)`` allowed tools, the first ``candidates`` of them re-ordered by
        ``fuse``, best first; the score of a re-ordered hit is its fused score."""
        hits = self._bm25.search(query, max(limit, self.candidates), allowed)
        head, tail = hits[:self.candidates], hits[self.candidates:]
        if len(head) < 2:
            return hits[:limit]
        query_vector = self._encoder.encode([query])[0]
        cosine = self._vectors[[self._positions[hit.name] for hit in head]] @ query_vector
        scores = fuse(cosine, self.weight, self.k)
        order = np.argsort(-scores, kind="stable")
        ranked = [Hit(head[i].name, float(scores[i])) for i in order]
        return (ranked + tail)[:limit]
