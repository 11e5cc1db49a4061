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
# 'single', "double" or “curly” quotes around a text; an apostrophe inside a word (don't) opens none.
_QUOTED = re.compile("(?<!\\w)'[^']*'(?!\\w)|\"[^\"]*\"|\u201c[^\u201d]*\u201d|\u2018[^\u2019]*\u2019")
# camelCase, PascalCase, ACRONYMWord and digits: getPRFiles -> get, PR, Files
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOP = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from",
                   "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "please",
                   "should", "that", "the", "their", "them", "then", "there", "these", "this", "those", "to", "us",
                   "was", "we", "were", "what", "when", "where", "which", "will", "with", "would", "you",
                   "your"})
# Task words people use -> the words tools are usually described with. Added to a query, never to a tool,
# so a tool is found by its own words as well. Kept general: it names no backend's tool. Values are the words the
# tools of common servers are described with (verbs and domain nouns); a key that is itself such a word is mapped
# only where its everyday sense differs ("check" a status, "clear" a cache, "change" a title).
SYNONYMS: dict[str, tuple[str, ...]] = {
    # files and folders
    "folder": ("directory",), "folders": ("directories",), "dir": ("directory",), "disk": ("file",),
    "rename": ("move",), "save": ("write",), "overwrite": ("write",), "put": ("write",),
    "store": ("write", "set"), "show": ("read", "get"), "view": ("read",), "print": ("read",),
    "display": ("read",), "cat": ("read",), "open": ("read", "create"), "size": ("info",), "big": ("size", "info"),
    "large": ("size",), "permissions": ("info",), "metadata": ("info",), "modified": ("info", "diff"),
    "picture": ("image",), "photo": ("image",), "locate": ("search",), "find": ("search",),
    "lookup": ("search",), "contents": ("read", "list"), "inside": ("list", "contents"),
    "subfolder": ("subdirectories",), "subfolders": ("subdirectories",), "filename": ("file", "name"),
    "filenames": ("files", "names"), "filepath": ("path",), "ls": ("list", "directory"),
    "mkdir": ("create", "directory"), "layout": ("tree", "structure"), "hierarchy": ("tree", "structure"),
    "bytes": ("size",), "kb": ("size",), "mb": ("size",), "gb": ("size",), "largest": ("size",),
    "biggest": ("size",), "permission": ("info",), "stats": ("info", "metadata"),
    "properties": ("info", "metadata"), "document": ("file", "text"), "documents": ("files", "text"),
    "doc": ("file",), "docs": ("files",), "txt": ("text",), "pdf": ("media", "file"),
    "beginning": ("head", "first"), "bottom": ("tail", "last"), "relocate": ("move",), "mv": ("move",),
    "transfer": ("move",), "append": ("edit", "write"), "insert": ("edit", "add"),
    # images, sound and other media
    "photos": ("image",), "pictures": ("image",), "pics": ("image",), "img": ("image",), "png": ("image", "media"),
    "jpg": ("image", "media"), "jpeg": ("image", "media"), "sound": ("audio", "media"), "music": ("audio", "media"),
    "video": ("media",), "zip": ("gzip", "compress"), "archive": ("gzip", "compress"),
    # creating and changing
    "make": ("create",), "initialise": ("initialize",), "setup": ("create", "initialize"),
    "change": ("update", "edit"), "modify": ("update", "edit"), "fix": ("edit", "update"), "tweak": ("edit",),
    "amend": ("edit", "commit"), "patch": ("edit", "diff"), "refresh": ("update",), "enable": ("toggle",),
    "disable": ("toggle",), "turn": ("toggle",), "config": ("configuration", "environment"),
    "verbose": ("logging",),
    # removing
    "remove": ("delete",), "erase": ("delete",), "forget": ("delete", "knowledge"), "drop": ("delete",),
    "discard": ("reset",), "undo": ("reset",),
    "removing": ("delete",), "removed": ("delete",), "destroy": ("delete",), "wipe": ("delete",),
    "clear": ("delete",), "purge": ("delete",), "trash": ("delete",), "unset": ("delete",), "rid": ("delete",),
    "clean": ("delete",), "cleanup": ("delete",), "evict": ("delete",), "flush": ("delete", "keys"),
    "rollback": ("reset",), "restore": ("reset", "checkout"),
    # searching
    "grep": ("search", "code"), "wildcard": ("pattern", "glob"), "regex": ("pattern",), "look": ("search", "read"),
    "inspect": ("details", "info"), "describe": ("details", "info"), "browse": ("list", "navigate"),
    "enumerate": ("list",), "dump": ("read", "list"),
    # the web and pages
    "download": ("fetch",), "retrieve": ("get", "fetch"), "grab": ("fetch",), "scrape": ("fetch",),
    "crawl": ("fetch",), "webpage": ("web", "url"), "website": ("web", "url"), "site": ("web", "url"),
    "article": ("url", "fetch"), "blog": ("url", "fetch"), "html": ("fetch", "markdown"), "url": ("web",),
    "internet": ("web",), "online": ("web",), "google": ("web", "search"), "news": ("web", "search"),
    "webpages": ("web", "url"), "websites": ("web", "url"), "homepage": ("url", "navigate"), "http": ("url",),
    "https": ("url",), "www": ("url", "web"), "com": ("url", "web"), "endpoint": ("url",), "curl": ("fetch", "url"),
    "wget": ("fetch", "url"), "bing": ("web", "search"), "duckduckgo": ("web", "search"),
    "engine": ("web", "search"), "wikipedia": ("web", "search"), "headlines": ("news", "web"),
    # a browser
    "browser": ("navigate", "page"), "visit": ("navigate",), "go": ("navigate",), "load": ("navigate",),
    "button": ("click",), "press": ("click",), "tap": ("click",), "type": ("fill", "input"),
    "enter": ("fill", "input"), "form": ("fill", "input"), "dropdown": ("select",), "choose": ("select",),
    "pick": ("select",), "mouse": ("hover",), "capture": ("screenshot",), "snapshot": ("screenshot",),
    "javascript": ("script", "evaluate"), "js": ("javascript", "script"),
    "chrome": ("browser", "navigate"), "goto": ("navigate",), "reload": ("navigate",), "tab": ("page", "browser"),
    "window": ("page", "browser"), "screen": ("screenshot", "page"), "hit": ("click",),
    "checkbox": ("click", "element"), "menu": ("select", "element"), "textbox": ("input", "fill"),
    "populate": ("fill",), "login": ("fill", "input"), "password": ("fill", "input"), "mouseover": ("hover",),
    "dom": ("element", "selector"), "xpath": ("selector",), "scroll": ("evaluate",),
    # version control and code hosting
    "pr": ("pull", "request"), "prs": ("pull", "requests"), "mr": ("merge", "request"),
    "repo": ("repository",), "repos": ("repositories",), "project": ("repository",),
    "ticket": ("issue",), "bug": ("issue",), "raise": ("create",), "close": ("update",),
    "reopen": ("update",), "label": ("update",), "assign": ("update",), "reassign": ("update",),
    "stage": ("add",), "unstage": ("reset",), "switch": ("checkout",), "revert": ("reset",),
    "changed": ("diff",), "changes": ("diff",), "uncommitted": ("status", "diff"), "history": ("log",),
    "approve": ("review",), "copy": ("fork",), "squash": ("merge",), "upload": ("push",),
    "codebase": ("code", "repository"), "tickets": ("issues",), "bugs": ("issues",), "report": ("issue",),
    "submit": ("create", "click"), "check": ("checkout",), "ci": ("status", "checks"),
    "pipeline": ("status", "checks"), "passing": ("status", "checks"), "failing": ("status", "checks"),
    "health": ("status",), "pending": ("status", "unstaged"), "dirty": ("status", "unstaged"),
    "untracked": ("status", "unstaged"), "modifications": ("changes", "diff"), "compare": ("diff",),
    "hash": ("sha", "commit"), "version": ("revision",), "versions": ("revision", "log"),
    "blame": ("log", "history"), "timeline": ("history", "log"), "changelog": ("log", "history"),
    "past": ("history", "previous"), "newest": ("latest", "recent"), "trunk": ("main", "branch"),
    "publish": ("push", "post"), "land": ("merge",), "integrate": ("merge",), "accept": ("merge",),
    "rebase": ("update", "base"), "sync": ("update", "push"), "reject": ("review",),
    "feedback": ("review", "comment"), "remark": ("comment",), "closed": ("state",), "resolve": ("update", "state"),
    "resolved": ("state", "update"), "flag": ("labels", "update"), "clone": ("fork",), "org": ("organization",),
    "orgs": ("organization",), "organisation": ("organization",), "group": ("namespace", "organization"),
    "author": ("user", "owner"), "contributors": ("users",), "function": ("code",), "snippet": ("code",),
    # messaging
    "say": ("message", "post"), "tell": ("message", "send"), "send": ("post",), "emoji": ("reaction",),
    "react": ("reaction",), "answer": ("reply",), "people": ("users",), "members": ("users",),
    "everyone": ("users",), "teammates": ("users",), "who": ("users", "people"),
    "chat": ("message", "channel"), "msg": ("message",), "dm": ("message", "user"), "ping": ("message", "echo"),
    "notify": ("message", "post"), "announce": ("post", "message", "channel"), "announcement": ("post", "message"),
    "broadcast": ("post", "channel"), "respond": ("reply",), "room": ("channel",), "rooms": ("channels",),
    "conversation": ("thread", "messages"), "discussion": ("thread", "comments"), "said": ("messages", "history"),
    "wrote": ("messages",), "thumbs": ("reaction", "emoji"), "upvote": ("reaction",), "emojis": ("reaction",),
    "colleague": ("user",), "colleagues": ("users",), "coworker": ("user",), "coworkers": ("users",),
    "team": ("users", "organization"), "member": ("user",), "participants": ("users",), "someone": ("user",),
    "bio": ("profile",), "avatar": ("profile",), "handle": ("username",), "nickname": ("username",),
    # places and maps
    "coordinates": ("geocode", "location"), "latitude": ("location", "coordinates"),
    "longitude": ("location", "coordinates"), "address": ("location", "geocode"), "gps": ("coordinates",),
    "route": ("directions",), "driving": ("directions",), "walking": ("directions",),
    "bike": ("directions", "bicycling"),
    "far": ("distance",), "altitude": ("elevation",), "height": ("elevation",),
    "nearby": ("places", "search"), "near": ("places", "nearby"), "restaurants": ("places",),
    "restaurant": ("places",), "shops": ("places",), "cafes": ("places",), "museums": ("places",),
    "hotels": ("places",), "pharmacies": ("places",), "businesses": ("places",),
    "coords": ("coordinates",), "lat": ("latitude",), "lng": ("longitude",), "lon": ("longitude",),
    "geolocate": ("geocode",), "street": ("address",), "postcode": ("address",), "town": ("city", "location"),
    "commute": ("directions", "travel"), "trip": ("travel", "directions"), "journey": ("travel", "directions"),
    "drive": ("directions",), "walk": ("directions",), "cycle": ("bicycling", "directions"),
    "cycling": ("bicycling", "directions"), "biking": ("bicycling", "directions"), "bus": ("transit",),
    "train": ("transit",), "subway": ("transit",), "metro": ("transit",), "transport": ("transit",),
    "car": ("driving",), "foot": ("walking",), "miles": ("distance",), "km": ("distance",),
    "kilometers": ("distance",), "kilometres": ("distance",), "away": ("distance",), "apart": ("distance",),
    "eta": ("travel", "time"), "nearest": ("places", "local"), "closest": ("places", "local"),
    "neighborhood": ("places", "local"), "neighbourhood": ("places", "local"), "tall": ("elevation",),
    "mountain": ("elevation",), "mount": ("elevation",), "peak": ("elevation",), "summit": ("elevation",),
    "sea": ("elevation",), "landmark": ("place", "places"), "venue": ("place", "places"), "shop": ("places",),
    "cafe": ("places",), "coffee": ("places",), "bars": ("places",), "pub": ("places",), "pubs": ("places",),
    "hotel": ("places",), "museum": ("places",), "hospital": ("places",), "pharmacy": ("places",),
    "gym": ("places",), "supermarket": ("places",), "attractions": ("places",), "food": ("restaurants", "places"),
    "eat": ("restaurants", "places"), "dinner": ("restaurants",), "lunch": ("restaurants",),
    "breakfast": ("restaurants",),
    # time
    "timezone": ("time", "zone"), "clock": ("time",), "day": ("time",), "date": ("time",),
    "tz": ("timezone",), "gmt": ("utc", "timezone"), "est": ("timezone",), "pst": ("timezone",),
    "cet": ("timezone",), "edt": ("timezone",), "pdt": ("timezone",), "bst": ("timezone",), "jst": ("timezone",),
    "dst": ("timezone",), "pm": ("time",), "noon": ("time",), "midnight": ("time",), "morning": ("time",),
    "afternoon": ("time",), "evening": ("time",), "today": ("current", "time"), "tomorrow": ("time",),
    "calendar": ("time",), "conversion": ("convert",),
    # memory and knowledge
    "remember": ("memory", "knowledge"), "remembered": ("memory", "graph"), "memorize": ("memory", "knowledge"),
    "recall": ("memory", "search"), "know": ("memory", "search"), "fact": ("observation",),
    "facts": ("observations",), "note": ("observation",), "person": ("entity",), "link": ("relation", "url"),
    "connect": ("relation",), "relationship": ("relation",),
    "memories": ("knowledge",), "concept": ("entity",), "trait": ("observation",), "preference": ("observation",),
    "preferences": ("observations",), "relationships": ("relations",), "connection": ("relation",),
    "connections": ("relations",), "linked": ("relation",), "disconnect": ("delete", "relation"),
    "whole": ("entire", "complete"),
    # data
    "sql": ("query", "database"), "database": ("sql", "query"), "db": ("database", "sql"), "table": ("sql",),
    "select": ("query",), "cache": ("key", "value"), "cached": ("key", "value"),
    "tables": ("sql",), "row": ("sql", "query"), "rows": ("sql", "query"), "column": ("sql",), "columns": ("sql",),
    "postgresql": ("sql", "query"), "mysql": ("sql", "query"), "sqlite": ("sql", "query"),
    "caches": ("key", "value"), "kv": ("key", "value"), "ttl": ("expiration",), "expiry": ("expiration",),
    # thinking things through
    "think": ("thought",), "reasoning": ("thinking", "thought"), "brainstorm": ("thinking",),
    # numbers
    "sum": ("add",), "plus": ("sum",), "add": ("sum",), "total": ("sum",),
    "addition": ("sum",), "arithmetic": ("sum", "numbers"), "math": ("sum", "numbers"), "maths": ("sum", "numbers"),
    "calculator": ("sum",), "compute": ("calculate",),
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
        """The words of a query: as a field's, plus the synonyms of its task words. Quoted text is the task's
        data (a commit message 'fix typo', a text to find), not words for what to do: it gets no synonyms."""
        words = [w for w in _split(text) if w not in _STOP]
        if self.synonyms:
            task = [w for w in _split(_QUOTED.sub(" ", text)) if w not in _STOP]
            words += [extra for w in task for extra in SYNONYMS.get(w, ())]
            words += ["file"] * bool(_FILE_NAME.search(text)) + ["number"] * bool(_NUMBER.search(text))
        return self._stems(words)

    @staticmethod
    def named(text: str) -> set[str]:
        """The words of a text as written, lower-cased, not split further ("GitHub" is github, never git):
        to see which backends a query names."""
        return {chunk.lower() for chunk in _CHUNK.findall(text)}
