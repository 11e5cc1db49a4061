"""only1mcp.http.sse: the decoder's line rules, its limits, and that it reads each byte once."""

from __future__ import annotations

import re

import pytest

from only1mcp.http import sse
from only1mcp.http.sse import EventTooLarge, SseDecoder, encode_event


def _events(decoder: SseDecoder, *chunks: bytes) -> list[tuple[str, str, str | None]]:
    return [(e.event, e.data, e.id) for chunk in chunks for e in decoder.feed(chunk)]


def test_crlf_events_in_one_chunk_are_complete() -> None:
    stream = b"event: message\r\ndata: {\"a\":1}\r\n\r\nid: 4\r\ndata: two\r\n\r\n"
    assert _events(SseDecoder(), stream) == [("message", '{"a":1}', None), ("message", "two", "4")]


def test_a_cr_at_the_end_of_a_chunk_waits_for_the_next() -> None:
    decoder = SseDecoder()
    assert _events(decoder, b"data: x\r\n\r") == []
    assert _events(decoder, b"\n") == [("message", "x", None)]
    assert _events(decoder, b"data: y\r", b"\r") == []  # the second CR may still begin a CRLF
    assert _events(decoder, b"data: z") == [("message", "y", None)]  # it did not: two line ends


def test_every_split_gives_the_same_events() -> None:
    stream = encode_event(b'{"a":1}', "7") + b"event: endpoint\r\ndata: /x\r\n\r\n: comment\n\ndata: a\rdata: b\r\n\n"
    expected = [("message", '{"a":1}', "7"), ("endpoint", "/x", "7"), ("message", "a\nb", "7")]
    for cut in range(1, len(stream)):
        decoder = SseDecoder()
        assert _events(decoder, stream[:cut], stream[cut:]) == expected, cut


def test_data_lines_without_a_blank_line_stop_at_the_limit() -> None:
    decoder = SseDecoder(max_event=1000)
    with pytest.raises(EventTooLarge) as raised:
        for _ in range(200):
            decoder.feed(b"data: " + b"x" * 20 + b"\n")
    assert raised.value.limit == 1000


def test_a_line_without_an_end_stops_at_the_limit() -> None:
    decoder = SseDecoder(max_event=1000)
    decoder.feed(b"data: " + b"x" * 900)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"x" * 200)


def test_events_under_the_limit_pass_one_after_another() -> None:
    decoder = SseDecoder(max_event=1000)
    for n in range(100):
        assert _events(decoder, b"data: " + b"x" * 900 + b"\n\n") == [("message", "x" * 900, None)], n


class _CountingPattern:
    """Wraps the line-end pattern and counts the bytes each search may look at."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self.scanned = 0

    def search(self, buffer: bytearray, position: int) -> re.Match[bytes] | None:
        found = self.pattern.search(buffer, position)
        self.scanned += (found.end() if found else len(buffer)) - position
        return found


def test_a_long_line_in_small_pieces_is_scanned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = _CountingPattern(sse._LINE_END)
    monkeypatch.setattr(sse, "_LINE_END", counting)
    decoder = SseDecoder()
    fed = 0
    for _ in range(4000):  # 4 MB of one line, 1 KiB at a time: a rescan from 0 would look at 8 GB
        decoder.feed(b"x" * 1024)
        fed += 1024
    decoder.feed(b"\n\n")
    assert counting.scanned <= fed + 2
