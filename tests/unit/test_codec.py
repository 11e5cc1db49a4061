"""The JSON codec: the nesting limit, exact ids, and what it relies on in orjson."""

from __future__ import annotations

import orjson
import pytest

from only1mcp.bus import Envelope, Kind, Target
from only1mcp.bus.codec import Codec
from only1mcp.bus.messages import LegacyPost, Role, Sender
from only1mcp.protocol.codec import (
    MAX_DEPTH,
    ExactNumber,
    JSONDecodeError,
    TooDeep,
    depth_exceeds,
    dumps,
    loads,
    loads_message,
)
from only1mcp.protocol.jsonrpc import answer_id, shape_error


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_orjson_writes_at_most_254_levels() -> None:
    # depth_exceeds relies on this: a change in orjson must show up here, not as a wrong limit.
    orjson.dumps(orjson.loads(nested(254)))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(orjson.loads(nested(255)))


def test_depth_exceeds_is_exact() -> None:
    assert not depth_exceeds(orjson.loads(nested(MAX_DEPTH)))
    assert depth_exceeds(orjson.loads(nested(MAX_DEPTH + 1)))
    assert not depth_exceeds({"a": [{"b": [1]}]}, limit=4) and depth_exceeds({"a": [{"b": [1]}]}, limit=3)


def test_loads_refuses_past_the_limit_and_keeps_what_it_parsed() -> None:
    assert loads(nested(MAX_DEPTH)) is not None
    assert loads(nested(MAX_DEPTH).decode()) is not None  # WebSocket frames are text
    with pytest.raises(TooDeep) as caught:
        loads(b'{"id": 3, "x": ' + nested(300) + b"}")
    assert isinstance(caught.value, JSONDecodeError)  # every existing decode-error path handles it
    assert caught.value.value["id"] == 3 and str(caught.value) == "nested deeper than 128 levels of arrays and objects"
    # Brackets inside strings only make the cheap pre-check look closer; the result is still exact.
    assert loads(b'["' + b"[" * 1000 + b'"]') == ["[" * 1000]


def test_too_deep_replies_become_errors_for_their_calls() -> None:
    reply = orjson.loads(b'{"jsonrpc": "2.0", "id": 4, "result": {}}')
    error = TooDeep(reply).replies("backend 'b'")
    assert error["id"] == 4 and error["error"]["code"] == -32603
    assert error["error"]["message"].startswith("backend 'b' sent a reply nested deeper than 128 levels")
    assert TooDeep({"jsonrpc": "2.0", "method": "notifications/message"}).replies("backend 'b'") is None
    assert [e["id"] for e in TooDeep([reply, {"method": "x"}, {**reply, "id": "s"}]).replies("b")] == [4, "s"]


@pytest.mark.parametrize("text", ["18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
                                  "1.0000000000000000001", "1E2", "2.50", "-0.0"])
def test_number_ids_orjson_would_round_are_echoed_as_written(text: str) -> None:
    message = loads_message(f'{{"jsonrpc": "2.0", "method": "ping", "id" : {text}}}'.encode())
    assert message["id"] == ExactNumber(text) and shape_error(message) is None and answer_id(message) == message["id"]
    assert dumps({"id": message["id"]}) == f'{{"id":{text}}}'.encode()


def test_exact_ids_in_batches_nested_keys_escapes_and_deep_messages() -> None:
    batch = loads_message(b'[{"id": 1.5, "params": {"id": 2.5}}, 7, {"x": {"id": 1}}, {"id": 18446744073709551616}]')
    assert [m.get("id", m) if isinstance(m, dict) else m for m in batch] == [ExactNumber("1.5"), 7, {"x": {"id": 1}},
                                                                      ExactNumber("18446744073709551616")]
    assert loads_message('{"\\u0069d": 1E2, "s": "\\"id\\": 9"}')["id"] == ExactNumber("1E2")
    assert loads_message(b'{"id": 1.5, "id": 3}')["id"] == 3  # the last member wins, as in orjson
    with pytest.raises(TooDeep) as caught:
        loads_message(b'{"p": ' + nested(900) + b', "id": 18446744073709551617}')
    assert caught.value.value["id"] == ExactNumber("18446744073709551617")


def test_ordinary_ids_are_left_as_orjson_reads_them() -> None:
    for text, value in (("1", 1), ('"a"', "a"), ("18446744073709551615", 2**64 - 1), ("-9223372036854775808", -2**63)):
        assert loads_message(f'{{"id": {text}}}')["id"] == value


def test_answer_id_is_null_for_ids_of_the_wrong_type() -> None:
    for bad in ([1], {"a": 1}, True, None):
        assert answer_id({"id": bad}) is None
    assert answer_id([{"id": 1}]) is None and answer_id({"id": "x"}) == "x"


def test_an_exact_id_crosses_the_bus() -> None:
    codec = Codec()
    message = {"jsonrpc": "2.0", "id": ExactNumber("18446744073709551616"), "method": "ping"}
    frame = codec.encode(Envelope.of(Kind.LEGACY_POST, Sender(Role.WORKER, 0, 1), LegacyPost(Target(1, 2), "t",
                                                                                             message)))
    assert codec.decode(frame).payload.message == message


def test_a_body_handed_out_as_a_view_is_read_like_bytes() -> None:
    # The HTTP server hands a body that arrived in several reads to the door as a memoryview of its buffer.
    def view(data: bytes) -> memoryview:
        return memoryview(bytearray(b"x" + data))[1:]

    padding = '"' + "p" * 300 + '"'
    assert loads_message(view(f'{{"id": 1, "params": {padding}}}'.encode()))["id"] == 1
    assert loads_message(view(f'{{"id": 18446744073709551616, "p": {padding}}}'.encode()))["id"] == ExactNumber(
        "18446744073709551616")
    assert loads(view(b'{"a": ' + nested(MAX_DEPTH - 1) + b"}")) is not None
    with pytest.raises(TooDeep) as caught:
        loads_message(view(b'{"id": 1.5, "x": ' + nested(300) + b"}"))
    assert caught.value.value["id"] == ExactNumber("1.5")
