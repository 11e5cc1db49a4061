"""Sealed sessions, SSE decoding and JSON-RPC shape checks."""

from __future__ import annotations

import time

import pytest

from only1mcp.http.sse import SseDecoder, encode_event
from only1mcp.protocol.jsonrpc import shape_error
from only1mcp.protocol.versions import LATEST, negotiate
from only1mcp.sessions import InvalidSession, SessionSealer


def test_session_round_trip_and_tamper() -> None:
    sealer = SessionSealer(b"k" * 32, ttl=3600)
    token, info = sealer.new("2025-06-18", {"sampling": {}}, {"name": "t"})
    assert all(0x21 <= ord(c) <= 0x7E for c in token)  # visible ASCII, as MCP requires
    opened = SessionSealer(b"k" * 32, ttl=3600).open(token)  # another worker, same secret
    assert opened == info and opened.declares("sampling") and not opened.declares("roots")
    forged = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidSession):
        SessionSealer(b"k" * 32, ttl=3600).open(forged)
    with pytest.raises(InvalidSession):
        SessionSealer(b"x" * 32, ttl=3600).open(token)
    with pytest.raises(InvalidSession):
        sealer.open("!!!")


def test_expired_session(monkeypatch: pytest.MonkeyPatch) -> None:
    sealer = SessionSealer(b"k" * 32, ttl=60)
    now = time.time()
    # Issued two minutes ago. (A tiny ttl instead would depend on the clock: the issue time is stored in
    # whole seconds, so a token opened in the same second's first instants was not yet expired.)
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: now - 120)
        token, _ = sealer.new("2025-06-18", {}, {})
    with pytest.raises(InvalidSession, match="expired"):
        sealer.open(token)
    recent, _ = sealer.new("2025-06-18", {}, {})
    assert sealer.open(recent).issued <= time.time()  # the same sealer still opens a token within its ttl


def test_sse_decoder_handles_split_chunks_and_line_endings() -> None:
    stream = encode_event(b'{"a":1}', "7") + b"event: endpoint\r\ndata: /x\r\n\r\n: comment\n\ndata: a\ndata: b\n\n"
    decoder = SseDecoder()
    events = []
    for i in range(len(stream)):  # one byte at a time
        events += decoder.feed(stream[i:i + 1])
    assert [(e.event, e.data, e.id) for e in events] == [
        ("message", '{"a":1}', "7"), ("endpoint", "/x", "7"), ("message", "a\nb", "7")]
    assert decoder.last_event_id == "7"


@pytest.mark.parametrize(("message", "problem"), [
    ([], "expected a JSON-RPC message object"),
    ({"jsonrpc": "1.0", "method": "x"}, '"jsonrpc" member must be exactly "2.0"'),
    ({"jsonrpc": "2.0", "id": None, "method": "x"}, "not null"),
    ({"jsonrpc": "2.0", "id": True, "method": "x"}, "string or a number"),
    ({"jsonrpc": "2.0", "id": 1, "method": ""}, "non-empty string"),
    ({"jsonrpc": "2.0", "id": 1, "method": "x", "params": 3}, "params"),
    ({"jsonrpc": "2.0", "result": {}}, 'needs an "id"'),
    ({"jsonrpc": "2.0"}, 'needs a "method"'),
])
def test_shape_errors(message: object, problem: str) -> None:
    found = shape_error(message)
    assert found is not None and problem in found


def test_valid_shapes() -> None:
    assert shape_error({"jsonrpc": "2.0", "id": "a", "method": "ping"}) is None
    assert shape_error({"jsonrpc": "2.0", "method": "notifications/initialized"}) is None
    assert shape_error({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "m"}}) is None


def test_version_negotiation() -> None:
    assert negotiate("2024-11-05") == "2024-11-05"
    assert negotiate("1999-01-01") == LATEST
