"""Repeated log lines are held back per pattern, and counted."""

from __future__ import annotations

import logging

from only1mcp.logs import RepeatLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(message: str, *args: object, level: int = logging.INFO, name: str = "only1mcp.worker") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def test_a_pattern_is_written_burst_times_per_window_then_counted() -> None:
    clock = Clock()
    limiter = RepeatLimiter(window=10.0, burst=3, clock=clock)
    written = [limiter.admit(record("tools/call %s failed: %s", n, "backend 'b' is down"))[0] for n in range(100)]
    assert written == [True] * 3 + [False] * 97  # request ids differ: one pattern all the same
    clock.now += 10.0
    ok, summaries = limiter.admit(record("tools/call %s failed: %s", 100, "backend 'b' is down"))
    assert ok  # a new window
    assert [s.getMessage() for s in summaries] == [
        "suppressed 97 more lines like this in 10s: tools/call 0 failed: backend 'b' is down"]
    assert summaries[0].levelno == logging.INFO and summaries[0].name == "only1mcp.worker"


def test_different_messages_levels_and_loggers_are_apart() -> None:
    limiter = RepeatLimiter(window=10.0, burst=1, clock=Clock())
    assert limiter.admit(record("backend 'a' stderr: %s", "starting"))[0]
    assert limiter.admit(record("backend 'a' stderr: %s", "listening"))[0]  # a child's distinct lines all show
    assert limiter.admit(record("backend 'a' stderr: %s", "starting", level=logging.WARNING))[0]
    assert limiter.admit(record("backend 'a' stderr: %s", "starting", name="only1mcp.backend"))[0]
    assert not limiter.admit(record("backend 'a' stderr: %s", "starting"))[0]


def test_a_window_without_suppression_ends_silently() -> None:
    clock = Clock()
    limiter = RepeatLimiter(window=10.0, burst=5, clock=clock)
    limiter.admit(record("once"))
    clock.now += 60
    assert limiter.admit(record("other")) == (True, [])


def test_pending_counts_are_written_at_exit() -> None:
    limiter = RepeatLimiter(window=10.0, burst=1, clock=Clock())
    for _ in range(4):
        limiter.admit(record("refused 400: %s", "bad"))
    assert [s.getMessage() for s in limiter.expired(float("inf"))] == [
        "suppressed 3 more lines like this in 10s: refused 400: bad"]
