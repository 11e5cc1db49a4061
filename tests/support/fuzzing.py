"""Generated JSON-RPC traffic for the gateway's doors, and what a correct answer to each body is.

Used by the bounded fuzz test (tests/integration/test_fuzz.py) and the long run (bench/fuzz.py).
The oracle reads each body with the standard library (numbers exact) and knows nothing of the gateway's
code: a request gets exactly one answer carrying its id exactly; a valid notification or response gets
none (202 on HTTP, or a 4xx refusal); anything invalid gets one error whose id is its own id when that
is a valid id, else null; nothing is ever a 5xx.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from .doors import SENTINEL, Reply

__all__ = ["bodies", "problems"]

METHODS = ["initialize", "ping", "tools/list", "tools/call", "resources/list", "resources/read",
           "resources/templates/list", "resources/subscribe", "resources/unsubscribe", "prompts/list",
           "prompts/get", "completion/complete", "logging/setLevel", "tasks/get", "tasks/result", "tasks/cancel",
           "tasks/list", "server/discover"]
NOTIFICATIONS = ["notifications/initialized", "notifications/cancelled", "notifications/progress",
                 "notifications/roots/list_changed", "notifications/message"]
TOOLS = ["demo_echo", "demo_add", "demo_countdown", "nest_nest", "nest_echo", "no_such_tool"]
URIS = ["demo://readme", "only1mcp://nest/x", "file:///etc/passwd", ""]
MODERN = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientCapabilities": {}}


class Raw:
    """A JSON number written as given (for ids and values past what a double holds)."""

    def __init__(self, text: str) -> None:
        self.text = text


class Nested:
    """``value`` inside ``levels`` arrays, written out flat (deeper than a recursive writer goes)."""

    def __init__(self, value: Any, levels: int) -> None:
        self.value = value
        self.levels = levels


def encode(value: Any) -> str:
    """JSON text of ``value``, Raw numbers as written and Nested values as deep as asked."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Nested):
        return "[" * value.levels + encode(value.value) + "]" * value.levels
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=12)
           | st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=10)
big_numbers = st.sampled_from(["18446744073709551616", "-9223372036854775809", "1.0000000000000000001", "1E2",
                               "123456789012345678901234567890", "-0", "0.0", "1e-400", "2.5e+3"]).map(Raw)
ids = (st.integers(-2**80, 2**80) | st.text(max_size=10).filter(lambda s: not s.startswith(SENTINEL))
       | big_numbers | st.floats(allow_nan=False, allow_infinity=False) | st.none() | st.booleans()
       | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def _params(draw: st.DrawFn, method: str) -> Any:
    """Params for ``method``: mostly of the right shape with values of any type, sometimes anything."""
    if draw(st.integers(0, 4)) == 0:
        return draw(values)
    params: dict[str, Any] = draw(st.dictionaries(st.text(max_size=6), values, max_size=2))
    if method == "tools/call":
        params["name"] = draw(st.sampled_from(TOOLS) | values)
        params["arguments"] = draw(st.fixed_dictionaries({}, optional={
            "text": values, "a": values, "b": values, "n": st.integers(-1, 3) | values,
            "interval": st.sampled_from([0, 0.01]) | values, "levels": st.integers(0, 300) | values,
            "log": st.booleans()}) | values)
    elif method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
        params["uri"] = draw(st.sampled_from(URIS) | values)
    elif method in ("prompts/get", "tasks/get", "tasks/result", "tasks/cancel"):
        params[draw(st.sampled_from(["name", "taskId"]))] = draw(st.sampled_from(["demo_greet", "nest:0:1"]) | values)
    elif method == "completion/complete":
        params["ref"] = draw(st.fixed_dictionaries({"type": st.sampled_from(["ref/prompt", "ref/resource"]) | values},
                                                   optional={"name": values, "uri": values}) | values)
        params["argument"] = draw(values)
    elif method == "notifications/cancelled":
        params["requestId"] = draw(ids)
    elif method == "initialize":
        params.update(draw(st.fixed_dictionaries({}, optional={
            "protocolVersion": st.sampled_from(["2025-06-18", "2025-03-26", "1999-01-01"]) | values,
            "capabilities": values, "clientInfo": values})))
    elif method in ("tools/list", "prompts/list", "resources/list"):
        params["cursor"] = draw(values)
    if draw(st.integers(0, 9)) == 0:
        params["_meta"] = draw(st.just(MODERN) | values)
    return params


@st.composite
def messages(draw: st.DrawFn) -> Any:
    """One JSON-RPC message: a request, notification or response, then maybe mutated."""
    kind = draw(st.sampled_from(["request"] * 4 + ["notification", "response"]))
    message: dict[str, Any] = {"jsonrpc": "2.0"}
    if kind == "response":
        message["id"] = draw(ids)
        message[draw(st.sampled_from(["result", "error"]))] = draw(values)
    else:
        known = METHODS + ["tools/call"] * 8 if kind == "request" else NOTIFICATIONS
        method = draw(st.sampled_from(known)) if draw(st.integers(0, 4)) else draw(st.text(max_size=20))
        if kind == "request":
            message["id"] = draw(ids)
        message["method"] = method
        if draw(st.booleans()):
            message["params"] = draw(_params(method))
    mutation = draw(st.sampled_from(["none"] * 6 + ["drop", "extra", "jsonrpc", "deep"]))
    if mutation == "drop" and message:
        del message[draw(st.sampled_from(sorted(message)))]
    elif mutation == "extra":
        message[draw(st.text(max_size=6))] = draw(values)
    elif mutation == "jsonrpc":
        message["jsonrpc"] = draw(values)
    elif mutation == "deep":  # around the limit (128), past it, and past what the parser reads (1,024)
        levels = draw(st.sampled_from([100, 126, 127, 200, 600, 1_100, 3_000]))
        message["params"] = {"x": Nested(draw(values), levels)}
    return message


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A POST body or WebSocket frame: one message, a batch, or bytes that are not quite JSON."""
    shape = draw(st.sampled_from(["message"] * 6 + ["batch", "bytes"]))
    if shape == "batch":
        return encode(draw(st.lists(messages(), max_size=4))).encode()
    body = encode(draw(messages())).encode()
    if shape == "bytes":
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=3)) + body[cut + draw(st.integers(0, 2)):]
    return body


# ---------------------------------------------------------------- the oracle

class _Unreadable(Exception):
    """Text the gateway's parser may refuse: not UTF-8, not JSON, or a number no double holds."""


def _number(text: str) -> Any:
    if "." in text or "e" in text or "E" in text:
        value = Decimal(text)
        if not math.isfinite(float(value)):
            raise _Unreadable(text)
        return value
    if abs(int(text)) >= 2**1000:
        raise _Unreadable(text)
    return int(text)


def reference(body: bytes) -> Any:
    """The body as the standard library reads it (numbers exact); _Unreadable when the gateway may not."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_float=_number, parse_int=_number,
                           parse_constant=lambda name: (_ for _ in ()).throw(_Unreadable(name)))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Unreadable(str(exc)) from None
    if _depth(value) > 1024:  # deeper than the gateway's parser reads at all
        raise _Unreadable("nested past 1,024 levels")
    if _lone_surrogates(value):  # valid JSON escapes, but not Unicode text (RFC 8259 8.2): may be refused
        raise _Unreadable("a string with a lone surrogate")
    return value


def _lone_surrogates(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        texts = [item] if isinstance(item, str) else list(item) if isinstance(item, dict) else []
        try:
            for text in texts:
                text.encode("utf-8")
        except UnicodeEncodeError:
            return True
        if isinstance(item, dict | list):
            stack.extend(item.values() if isinstance(item, dict) else item)
    return False


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _valid_id(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, str | int | Decimal)


def _answer_id(message: Any) -> Any:
    return message.get("id") if isinstance(message, dict) and _valid_id(message.get("id")) else None


def _kind(message: Any) -> str:
    """request, notification, response, or invalid (by JSON-RPC 2.0)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return "invalid"
    if "id" in message and not (_valid_id(message["id"]) or (message["id"] is None and "method" not in message)):
        return "invalid"
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            return "invalid"
        if "params" in message and not isinstance(message["params"], dict | list):
            return "invalid"
        return "request" if "id" in message else "notification"
    if "id" in message and ("result" in message or "error" in message):
        return "invalid" if "error" in message and not isinstance(message["error"], dict) else "response"
    return "invalid"


def _key(value: Any) -> tuple[str, str]:
    """An id compared exactly: its type and its text (1E2 is not 100.0, "1" is not 1)."""
    return type(value).__name__, str(value)


def expected_answers(body: bytes, batches: str) -> int:
    """How many answers the body should get (for the stream doors, which must know when to stop waiting);
    ``batches``: "items" where the door answers a batch's items, "whole" where it refuses batches."""
    try:
        value = reference(body)
    except _Unreadable:
        return 1
    if isinstance(value, list) and value and batches == "items" and _depth(value) <= 128:
        return sum(_kind(m) in ("request", "invalid") for m in value)
    return 1 if isinstance(value, list) or _kind(value) in ("request", "invalid") else 0


def problems(body: bytes, reply: Reply, http: bool, batches: str) -> list[str]:
    """What is wrong with ``reply`` as the gateway's answer to ``body`` (empty when nothing is);
    ``batches`` as for expected_answers."""
    found: list[str] = []
    if reply.status is not None and reply.status >= 500:
        found.append(f"HTTP {reply.status}")
    if reply.strays:
        found.append(f"answers that belong to no request: {reply.strays}")
    answers = reply.answers
    if any(not isinstance(a, dict) or a.get("jsonrpc") != "2.0" or ("result" in a) == ("error" in a) for a in answers):
        return [*found, f"not JSON-RPC answers: {answers}"]
    try:
        value = reference(body)
    except _Unreadable:
        return found + _unreadable_problems(answers)
    if _depth(value) > 128:
        return found + _too_deep_problems(value, answers)
    if isinstance(value, list):
        return found + _batch_problems(value, answers, batches)
    kind = _kind(value)
    if kind in ("request", "invalid"):
        return found + _request_problems(kind, value, reply, http)
    return found + _silent_problems(kind, value, reply, http)


def _unreadable_problems(answers: list[Any]) -> list[str]:
    if len(answers) != 1 or answers[0]["id"] is not None or answers[0].get("error", {}).get("code") not in (
            -32700, -32600):
        return [f"expected one -32700 error with a null id for unreadable JSON, got {answers}"]
    return []


def _too_deep_problems(value: Any, answers: list[Any]) -> list[str]:
    expected = _answer_id(value)
    if len(answers) != 1 or answers[0].get("error", {}).get("code") != -32600 or \
            _key(answers[0]["id"]) != _key(expected):
        return [f"expected one -32600 error with id {expected!r} for JSON nested too deep, got {answers}"]
    return []


def _batch_problems(value: list[Any], answers: list[Any], batches: str) -> list[str]:
    if batches == "whole" or not value:
        if len(answers) != 1 or "error" not in answers[0] or answers[0]["id"] is not None:
            return [f"expected one refusal of the batch, got {answers}"]
        return []
    wanted = sorted(_key(_answer_id(m)) for m in value if _kind(m) in ("request", "invalid"))
    if sorted(_key(a["id"]) for a in answers) != wanted:
        return [f"batch answers {[a['id'] for a in answers]} are not one per request {wanted}"]
    return []


def _request_problems(kind: str, value: Any, reply: Reply, http: bool) -> list[str]:
    answers = reply.answers
    expected = _answer_id(value)
    if len(answers) != 1 or _key(answers[0]["id"]) != _key(expected):
        return [f"expected one answer with id {expected!r}, got {answers}"]
    found = []
    if kind == "invalid" and "error" not in answers[0]:
        found.append(f"an invalid message got a result: {answers}")
    if http and reply.status is not None and kind == "invalid" and reply.status != 400 and "error" in answers[0]:
        found.append(f"an invalid message got HTTP {reply.status}, not 400")
    return found


def _silent_problems(kind: str, value: Any, reply: Reply, http: bool) -> list[str]:
    """A notification or a response: nothing, or on HTTP a refusal (4xx) with one error."""
    answers = reply.answers
    if http and reply.status != 202:
        if not (reply.status is not None and 400 <= reply.status < 500 and len(answers) == 1
                and "error" in answers[0] and _key(answers[0]["id"]) in (_key(None), _key(_answer_id(value)))):
            return [f"a {kind} got HTTP {reply.status} with {answers}"]
        return []
    return [f"a {kind} was answered: {answers}"] if answers else []
