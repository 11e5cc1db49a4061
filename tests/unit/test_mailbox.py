"""Session mailboxes keep events for replay within a bound per session and a bound in total, dropping the
oldest events of any session first (2,000 busy sessions must not grow the supervisor without limit)."""

from __future__ import annotations

from only1mcp.supervisor.mailbox import Mailboxes

from only1mcp.bus import Envelope, Role, Sender
from only1mcp.bus.messages import ReplayRequest, SessionEvent


class _Relay:
    """Stands in for the relay socket: records what would be published to the workers."""

    def __init__(self) -> None:
        self.published: list[Envelope] = []

    def publish(self, envelope: Envelope) -> None:
        self.published.append(envelope)


def _boxes(per_session: int, total: int) -> tuple[Mailboxes, _Relay]:
    relay = _Relay()
    return Mailboxes(relay, Sender(Role.SUPERVISOR, -1, 1), per_session, total, idle=3600), relay  # type: ignore[arg-type]


def _kept(boxes: Mailboxes, sid: str) -> list[int]:
    _, replay = boxes.replay(ReplayRequest(1, sid, 0))
    return list(replay.numbers)


def test_events_are_numbered_per_session_published_and_replayed_after_an_id() -> None:
    boxes, relay = _boxes(per_session=10, total=10_000)
    for index in range(3):
        boxes.send("a", b'{"n":%d}' % index)
    boxes.send("b", b'{"n":0}')
    assert [e.payload.number for e in relay.published if e.payload.sid == "a"] == [1, 2, 3]
    assert isinstance(relay.published[0].payload, SessionEvent)
    _, replay = boxes.replay(ReplayRequest(7, "a", 1))
    assert replay.request_id == 7 and replay.numbers == (2, 3) and replay.messages == (b'{"n":1}', b'{"n":2}')


def test_each_session_keeps_at_most_its_own_share() -> None:
    boxes, _ = _boxes(per_session=3, total=10_000)
    for _ in range(10):
        boxes.send("a", b"x" * 10)
    assert _kept(boxes, "a") == [8, 9, 10]
    assert boxes.describe()["bytes"] == 30


def test_the_total_is_bounded_and_the_oldest_events_of_any_session_go_first() -> None:
    boxes, _ = _boxes(per_session=256, total=2_000 * 100)  # room for 200 events of 1,000 bytes
    event = b"e" * 1000
    for round_ in range(5):
        for session in range(2_000):  # 2,000 sessions, each with progress events
            boxes.send(f"s{session}", event)
        assert boxes.describe()["bytes"] <= 200_000, round_
    assert boxes.describe()["events"] == 200
    # The newest 200 events are the last 200 sessions' fifth event; everything older was dropped first.
    assert _kept(boxes, "s1999") == [5] and _kept(boxes, "s1800") == [5] and _kept(boxes, "s1799") == []
    assert boxes.dropped == 5 * 2_000 - 200


def test_bookkeeping_stays_proportional_to_what_is_kept() -> None:
    boxes, _ = _boxes(per_session=2, total=10**9)
    for index in range(50_000):
        boxes.send("busy", b"%d" % index)  # each send drops the oldest of this one session
    assert _kept(boxes, "busy") == [49_999, 50_000]
    assert len(boxes._order) <= 2 * boxes.describe()["events"] + 1024


def test_a_dropped_session_frees_its_events() -> None:
    boxes, _ = _boxes(per_session=10, total=10_000)
    for _ in range(5):
        boxes.send("gone", b"x" * 100)
    boxes.drop("gone")
    assert boxes.describe() == {"mailboxes": 0, "events": 0, "bytes": 0, "dropped": 5}
