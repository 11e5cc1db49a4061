"""The one backoff schedule every restart and retry uses."""

from __future__ import annotations

from only1mcp.backoff import Backoff


def test_first_restart_is_immediate_then_grows_to_the_cap() -> None:
    backoff = Backoff(base=0.1, cap=1.0, first=0.0)
    delays = [backoff.next_delay(uptime=0.5) for _ in range(8)]
    assert delays[0] == 0.0
    assert 0.05 <= delays[1] <= 0.1 and 0.1 <= delays[2] <= 0.2
    assert all(0.5 <= d <= 1.0 for d in delays[5:])


def test_a_stable_run_starts_over() -> None:
    backoff = Backoff(base=0.1, cap=1.0, first=0.0, stable_after=10)
    for _ in range(5):
        backoff.next_delay(uptime=0.1)
    assert backoff.next_delay(uptime=60) == 0.0


def test_jitter_spreads_delays_within_its_share() -> None:
    low = Backoff(base=1.0, cap=8.0, jitter=0.5, _random=lambda: 1.0)
    high = Backoff(base=1.0, cap=8.0, jitter=0.5, _random=lambda: 0.0)
    assert [low.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [high.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_no_jitter_and_reset() -> None:
    backoff = Backoff(base=0.5, cap=30.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_a_long_failure_streak_stays_at_the_cap() -> None:
    backoff = Backoff(base=0.2, cap=30.0, jitter=0.0)
    for _ in range(2000):
        delay = backoff.next_delay()
    assert delay == 30.0
