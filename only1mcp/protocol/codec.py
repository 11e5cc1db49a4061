"""JSON encoding for the data path.

orjson, measured on the 2-core box for one proxied tools/call (parse the client's request, write the
backend's, parse the backend's answer, write the client's): 36 us with the standard library, 4.3 us with
orjson. That is 40% of the 80 us per-call budget, so the data path uses orjson.

Two things orjson does not do for us, handled here so every door and transport gets them:

- **Nesting.** orjson parses up to 1,024 levels but writes at most 254, so a message between the two
  used to parse and then fail when the gateway re-encoded it. ``loads`` refuses anything nested deeper
  than ``MAX_DEPTH`` with ``TooDeep``, a kind of decode error that still carries what was parsed (a door
  answers with the request's id, a transport fails the call a reply belongs to).
- **Ids orjson cannot read exactly.** Integers beyond 64 bits and decimals with more digits than a
  double holds come back from orjson as floats. ``loads_message`` re-reads such an id from the raw text
  and keeps it as an ``ExactNumber``, which ``dumps`` writes back byte for byte.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import orjson

log = logging.getLogger("only1mcp.backend")

__all__ = ["MAX_DEPTH", "ExactNumber", "JSONDecodeError", "TooDeep", "deep_replies", "depth_exceeds", "dumps",
           "loads", "loads_from", "loads_message"]

JSONDecodeError = orjson.JSONDecodeError

# 128 levels of arrays and objects: serde_json's default (the Rust MCP SDK refuses deeper input) and well
# under what the MCP Python SDK's parser accepts, so deeper JSON could not reach every peer anyway; MCP
# messages need a handful of levels, tool arguments and results a few dozen at most. It also leaves room
# under orjson's writer (254 levels) for the envelope the gateway puts around what it passes on.
MAX_DEPTH = 128
# orjson's writer raises past 254 levels of nesting (a unit test pins it). Wrapped in this many lists, a
# value encodes exactly when it is at most MAX_DEPTH deep: an exact depth check at C speed, where a
# Python walk over the same value costs more than parsing it did.
_WRITER_DEPTH = 254
_PROBE_WRAP = _WRITER_DEPTH - MAX_DEPTH


class TooDeep(JSONDecodeError):
    """Valid JSON nested deeper than ``MAX_DEPTH`` levels; ``value`` is what was parsed."""

    def __init__(self, value: Any) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels of arrays and objects", "", 0)
        self.value = value

    def __str__(self) -> str:
        return self.msg

    def replies(self, source: str) -> Any:
        """For a peer's replies that are too deep: an error reply with each one's id in its place, so the
        call it answers fails at once with an error naming ``source``; None for what is not a reply (a
        request or notification nested this deep cannot be passed on and is dropped)."""
        value = self.value
        if isinstance(value, list):
            return [reply for item in value if (reply := _error_reply(item, source)) is not None] or None
        return _error_reply(value, source)


def loads_from(data: bytes | str, source: str) -> Any:
    """What a backend sent, parsed. A reply nested deeper than MAX_DEPTH becomes an error reply with its id
    (its call fails at once with an error naming ``source``); anything else that deep is None (dropped).
    Either is logged once here. JSONDecodeError for what is not JSON."""
    try:
        return loads(data)
    except TooDeep as exc:
        return deep_replies(exc, source)


def deep_replies(exc: TooDeep, source: str) -> Any:
    """See ``loads_from``: the error replies standing for a too-deep message, or None; logged once here."""
    replies = exc.replies(source)
    log.warning("%s sent a message %s; %s", source, exc,
                "dropped it" if replies is None else "its call fails with an error saying so")
    return replies


def _error_reply(message: Any, source: str) -> dict[str, Any] | None:
    if not isinstance(message, dict) or "method" in message or not isinstance(message.get("id"), int | str):
        return None
    return {"jsonrpc": "2.0", "id": message["id"], "error": {
        "code": -32603, "message": f"{source} sent a reply nested deeper than {MAX_DEPTH} levels of arrays and "
                                   "objects (the gateway's limit); it cannot be passed on"}}


class ExactNumber:
    """A JSON number kept as the text it was written with (an id orjson would have read as a float)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExactNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("ExactNumber", self.text))

    def __repr__(self) -> str:
        return self.text


def _default(value: Any) -> Any:
    if type(value) is ExactNumber:
        return orjson.Fragment(value.text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep (``limit`` < 254)."""
    for _ in range(_WRITER_DEPTH - limit):
        value = [value]
    try:
        orjson.dumps(value, default=_default)
    except orjson.JSONEncodeError:
        return True
    return False


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; TooDeep past ``MAX_DEPTH`` levels."""
    value = orjson.loads(data)
    # A text shorter than 2 * MAX_DEPTH, or with fewer opening brackets than MAX_DEPTH, cannot nest
    # deeper: the common case is decided by its length, the rest mostly by two scans in C.
    if len(data) > _SHORT and _openings(data) > MAX_DEPTH and depth_exceeds(value):
        raise TooDeep(value)
    return value


_SHORT = 2 * MAX_DEPTH


def _openings(data: bytes | bytearray | memoryview | str) -> int:
    if type(data) is str:
        return data.count("[") + data.count("{")
    if type(data) is memoryview:  # a body that came in several reads: a view of the HTTP server's buffer
        data = data.tobytes()  # (a copy, only for bodies over _SHORT bytes; a view has no count())
    return data.count(b"[") + data.count(b"{")  # type: ignore[union-attr]


def loads_message(data: bytes | bytearray | memoryview | str) -> Any:
    """A client's JSON-RPC message (or batch), with number ids orjson would have rounded kept exact.
    TooDeep past ``MAX_DEPTH`` levels (its ``value`` has exact ids too)."""
    value = orjson.loads(data)  # loads() written out: this runs for every client message
    if len(data) > _SHORT and _openings(data) > MAX_DEPTH and depth_exceeds(value):
        _keep_exact_ids(value, data)
        raise TooDeep(value)
    if type(value) is dict:
        if type(value.get("id")) is float:
            _keep_exact_ids(value, data)
    elif type(value) is list:
        _keep_exact_ids(value, data)
    return value


def dumps(value: Any) -> bytes:
    # A plain function: a functools.partial with a keyword merges dictionaries on every call (callgrind:
    # ~1,000 instructions more per call, where passing default= costs ~90).
    return orjson.dumps(value, default=_default)


# ---------------------------------------------------------------- exact ids (a rare path)

_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_TOKENS = re.compile(rf'({_STRING})\s*(:?)|[\[\]{{}}]')
_NUMBER = re.compile(r"\s*(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)")


def _keep_exact_ids(value: Any, data: bytes | str) -> None:
    """Replace each float id of a message (the top-level object, or each object of a top-level array)
    with the id's text in ``data``. Cost only when an id is a float: orjson reads every other id exactly."""
    messages = value if type(value) is list else [value]
    if not any(type(m) is dict and type(m.get("id")) is float for m in messages):
        return
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    ids = _raw_ids(text, type(value) is list)
    objects = [m for m in messages if type(m) is dict]
    for message, raw in zip(objects, ids, strict=False):
        if type(message.get("id")) is float and raw is not None:
            message["id"] = ExactNumber(raw)


def _raw_ids(text: str, batch: bool) -> list[str | None]:
    """The text of the number "id" member of each message object, in order (None: not a number id).
    A scan of tokens rather than a second parse: it works at any depth orjson accepted."""
    level = 2 if batch else 1  # the depth at which message members sit
    ids: list[str | None] = []
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
            if depth == level and token == "{":
                ids.append(None)
        elif token in "]}":
            depth -= 1
        elif depth == level and match.group(2) and ids and json.loads(match.group(1)) == "id":
            number = _NUMBER.match(text, match.end())
            ids[-1] = number.group(1) if number is not None else None  # the last "id" wins, as in orjson
    return ids
