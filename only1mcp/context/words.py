"""The words search compares: identifiers split, stop words dropped, synonyms added to queries, stems."""

from __future__ import annotations

import re
from collections.abc import Iterable

import Stemmer

__all__ = ["SYNONYMS", "Words", "split_identifier"]

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
    # files and folders
    "folder": ("directory",), "folders": ("directories",), "dir": ("directory",), "disk": ("file",),
    "rename": ("move",), "save": ("write",), "overwrite": ("write",), "put": ("write",),
    "store": ("write", "set"), "show": ("read", "get"), "view": ("read",), "print": ("read",),
    "display": ("read",), "cat": ("read",), "open": ("read", "create"), "size": ("info",), "big": ("size", "info"),
    "large": ("size",), "permissions": ("info",), "metadata": ("info",), "modified": ("info", "diff"),
    "picture": ("image",), "photo": ("image",), "locate": ("search",), "find": ("search",),
    "lookup": ("search",), "contents": ("read", "list"), "inside": ("list", "contents"),
    # removing
    "remove": ("delete",), "erase": ("delete",), "forget": ("delete",), "drop": ("delete",),
    "discard": ("reset",), "undo": ("reset",),
    # the web and pages
    "download": ("fetch",), "retrieve": ("get", "fetch"), "grab": ("fetch",), "scrape": ("fetch",),
    "crawl": ("fetch",), "webpage": ("web", "url"), "website": ("web", "url"), "site": ("web", "url"),
    "article": ("url", "fetch"), "blog": ("url", "fetch"), "html": ("fetch", "markdown"), "url": ("web",),
    "internet": ("web",), "online": ("web",), "google": ("web", "search"), "news": ("web", "search"),
    # a browser
    "browser": ("navigate", "page"), "visit": ("navigate",), "go": ("navigate",), "load": ("navigate",),
    "button": ("click",), "press": ("click",), "tap": ("click",), "type": ("fill", "input"),
    "enter": ("fill", "input"), "form": ("fill", "input"), "dropdown": ("select",), "choose": ("select",),
    "pick": ("select",), "mouse": ("hover",), "capture": ("screenshot",), "snapshot": ("screenshot",),
    "javascript": ("script", "evaluate"), "js": ("javascript", "script"),
    # version control and code hosting
    "pr": ("pull", "request"), "prs": ("pull", "requests"), "mr": ("merge", "request"),
    "repo": ("repository",), "repos": ("repositories",), "project": ("repository",),
    "ticket": ("issue",), "bug": ("issue",), "raise": ("create",), "close": ("update",),
    "reopen": ("update",), "label": ("update",), "assign": ("update",), "reassign": ("update",),
    "stage": ("add",), "unstage": ("reset",), "switch": ("checkout",), "revert": ("reset",),
    "changed": ("diff",), "changes": ("diff",), "uncommitted": ("status", "diff"), "history": ("log",),
    "approve": ("review",), "copy": ("fork",), "squash": ("merge",), "upload": ("push",),
    # messaging
    "say": ("message", "post"), "tell": ("message", "send"), "send": ("post",), "emoji": ("reaction",),
    "react": ("reaction",), "answer": ("reply",), "people": ("users",), "members": ("users",),
    "everyone": ("users",), "teammates": ("users",), "who": ("users", "people"),
    # places and maps
    "coordinates": ("geocode", "location"), "latitude": ("location", "coordinates"),
    "longitude": ("location", "coordinates"), "address": ("location", "geocode"), "gps": ("coordinates",),
    "route": ("directions",), "driving": ("directions",), "walking": ("directions",), "bike": ("directions",),
    "far": ("distance",), "altitude": ("elevation",), "height": ("elevation",),
    "nearby": ("places", "search"), "near": ("places", "nearby"), "restaurants": ("places",),
    "restaurant": ("places",), "shops": ("places",), "cafes": ("places",), "museums": ("places",),
    "hotels": ("places",), "pharmacies": ("places",), "businesses": ("places",),
    # time
    "timezone": ("time", "zone"), "clock": ("time",), "day": ("time",), "date": ("time",),
    # memory and knowledge
    "remember": ("memory",), "remembered": ("memory", "graph"), "memorize": ("memory",),
    "recall": ("memory", "search"), "know": ("memory", "search"), "fact": ("observation",),
    "facts": ("observations",), "note": ("observation",), "person": ("entity",), "link": ("relation", "url"),
    "connect": ("relation",), "relationship": ("relation",),
    # data
    "sql": ("query", "database"), "database": ("sql", "query"), "db": ("database", "sql"), "table": ("sql",),
    "select": ("query",), "cache": ("key", "value"), "cached": ("key", "value"),
    # numbers
    "sum": ("add",), "plus": ("sum",), "add": ("sum",), "total": ("sum",),
}


def _split(text: str) -> Iterable[str]:
    for chunk in _CHUNK.findall(text):
        for part in _PART.findall(chunk):
            yield part.lower()


def split_identifier(text: str) -> list[str]:
    """A name or text as lower-case words: snake_case, camelCase and digits split (get_PRFiles: get, pr, files)."""
    return list(_split(text))


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
