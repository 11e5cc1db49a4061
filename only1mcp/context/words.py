"""The words search compares: identifiers split, stop words dropped, synonyms added to queries, stems."""

from __future__ import annotations

import re
from collections.abc import Iterable

import Stemmer

__all__ = ["SYNONYMS", "Words"]

_CHUNK = re.compile(r"[A-Za-z0-9]+")
# A query that names a file (notes.txt, README.md) is about a file; one with a number is about a number.
_FILE_NAME = re.compile(r"\b[\w-]+\.[A-Za-z][A-Za-z0-9]{0,4}\b")
_NUMBER = re.compile(r"\b\d+\b")
# camelCase, PascalCase, ACRONYMWord and digits: getPRFiles -> get, PR, Files
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOP = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from",
                   "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "please",
                   "should", "that", "the", "their", "them", "then", "there", "these", "this", "those", "to", "us",
                   "was", "we", "were", "what", "when", "where", "which", "will", "with", "would", "you",
                   "your"})
# Task words people use -> the words tools are usually described with. Added to a query, never to a tool,
# so a tool is found by its own words as well. Kept general: it names no backend's tool.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "folder": ("directory",), "folders": ("directories",), "dir": ("directory",),
    "rename": ("move",),
    "save": ("write",), "store": ("write", "set"),
    "remove": ("delete",), "erase": ("delete",), "forget": ("delete",), "drop": ("delete",),
    "find": ("search",), "lookup": ("search",), "locate": ("search",),
    "download": ("fetch",), "retrieve": ("get", "fetch"), "grab": ("fetch",),
    "webpage": ("web", "url"), "website": ("web", "url"), "url": ("web",), "link": ("url",),
    "pr": ("pull", "request"), "prs": ("pull", "requests"), "mr": ("merge", "request"),
    "repo": ("repository",), "repos": ("repositories",), "project": ("repository",),
    "ticket": ("issue",), "bug": ("issue",),
    "say": ("message", "post"), "tell": ("message", "send"), "send": ("post",),
    "picture": ("image",), "photo": ("image",),
    "coordinates": ("geocode", "location"), "latitude": ("location", "coordinates"),
    "longitude": ("location", "coordinates"), "address": ("location",),
    "route": ("directions",), "driving": ("directions",),
    "timezone": ("time", "zone"), "clock": ("time",),
    "remember": ("memory",), "memorize": ("memory",), "recall": ("memory", "search"),
    "internet": ("web",), "online": ("web",), "google": ("web", "search"),
    "sql": ("query", "database"), "database": ("sql", "query"), "db": ("database", "sql"), "table": ("sql",),
    "cache": ("key", "value"), "cached": ("key", "value"),
    "stage": ("add",), "unstage": ("reset",), "switch": ("checkout",), "revert": ("reset",),
    "javascript": ("script", "evaluate"), "js": ("javascript", "script"),
    "type": ("fill", "input"), "enter": ("fill", "input"), "press": ("click",), "tap": ("click",),
    "approve": ("review",),
    "people": ("users",), "members": ("users",), "teammates": ("users",),
    "altitude": ("elevation",),
    "open": ("create",), "big": ("size",), "large": ("size",), "who": ("users", "people"),
    "nearby": ("places", "search"), "near": ("places", "nearby"),
}


def _split(text: str) -> Iterable[str]:
    for chunk in _CHUNK.findall(text):
        for part in _PART.findall(chunk):
            yield part.lower()


class Words:
    """One stemmer (PyStemmer, Snowball English) and the rules around it; a search index holds its own."""

    __slots__ = ("_stemmer", "stemming", "synonyms")

    def __init__(self, *, stemming: bool = True, synonyms: bool = True) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self.stemming = stemming
        self.synonyms = synonyms

    def _stems(self, words: list[str]) -> list[str]:
        return self._stemmer.stemWords(words) if self.stemming else words

    def of_text(self, text: str) -> list[str]:
        """The words of a tool's field: split, stop words dropped, stemmed."""
        return self._stems([w for w in _split(text) if w not in _STOP])

    def of_query(self, text: str) -> list[str]:
        """The words of a query: as a field's, plus the synonyms of its task words."""
        words = [w for w in _split(text) if w not in _STOP]
        if self.synonyms:
            words += [extra for w in list(words) for extra in SYNONYMS.get(w, ())]
            words += ["file"] * bool(_FILE_NAME.search(text)) + ["number"] * bool(_NUMBER.search(text))
        return self._stems(words)

    @staticmethod
    def named(text: str) -> set[str]:
        """The words of a text as written, lower-cased, not split further ("GitHub" is github, never git):
        to see which backends a query names."""
        return {chunk.lower() for chunk in _CHUNK.findall(text)}
