"""The bus envelope codec and the worker restart backoff."""

from __future__ import annotations

import msgpack
import pytest
from only1mcp.supervisor.slots import Backoff

from only1mcp.bus import BusProtocolError, Envelope, Kind, decode, encode


def test_envelope_round_trip() -> None:
    envelope = Envelope(Kind.DELTA, 42, "catalog/tools", {"a": [1, 2.5, None, "x"], 3: b"\x00"})
    assert decode(encode(envelope)) == envelope


def test_delete_is_a_none_value() -> None:
    assert decode(encode(Envelope(Kind.DELTA, 1, "k"))).value is None


@pytest.mark.parametrize("frame", [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb([99, 1, "k", None]),
                                   msgpack.packb("text")])
def test_malformed_frames_are_rejected(frame: bytes) -> None:
    with pytest.raises(BusProtocolError):
        decode(frame)


def test_backoff_first_restart_is_immediate_then_grows_to_the_cap() -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    delays = [backoff.next_delay(uptime=0.5) for _ in range(8)]
    assert delays[0] == 0.0
    assert 0.05 <= delays[1] <= 0.1 and 0.1 <= delays[2] <= 0.2
    assert all(0.5 <= d <= 1.0 for d in delays[5:])


def test_backoff_resets_after_a_stable_run() -> None:
    backoff = Backoff(base=0.1, cap=1.0, stable_after=10)
    for _ in range(5):
        backoff.next_delay(uptime=0.1)
    assert backoff.next_delay(uptime=60) == 0.0
