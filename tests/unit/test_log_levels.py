"""Each session's logging/setLevel as a worker keeps it: what passes, what a worker forgets, bad levels."""

from __future__ import annotations

import pytest
from only1mcp.workers.log_levels import LEVELS, SessionLogLevels, checked_level

from only1mcp.protocol.jsonrpc import JsonRpcError


def test_a_session_gets_its_level_and_above_and_others_everything() -> None:
    levels = SessionLogLevels()
    levels.set("alice", "warning")
    assert [level for level in LEVELS if levels.allows("alice", level)] == list(LEVELS[3:])
    assert all(levels.allows("bob", level) for level in LEVELS)  # never set: all pass
    assert levels.allows("alice", "verbose") and levels.allows("alice", None)  # unknown: passed on, not hidden
    levels.set("alice", "debug")
    assert levels.allows("alice", "debug")
    levels.set("alice", "nonsense")  # ignored: checked where the client sent it
    assert levels.allows("alice", "debug")


def test_the_oldest_session_is_forgotten_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("only1mcp.workers.log_levels._MAX_SESSIONS", 2)
    levels = SessionLogLevels()
    for sid in ("a", "b"):
        levels.set(sid, "error")
    levels.set("a", "error")  # set again: now the most recent
    levels.set("c", "error")
    assert not levels.allows("a", "info") and not levels.allows("c", "info")
    assert levels.allows("b", "info")  # forgotten: everything passes again


def test_an_unknown_level_is_refused_naming_the_known_ones() -> None:
    assert checked_level("notice") == "notice"
    with pytest.raises(JsonRpcError) as refused:
        checked_level("verbose")
    assert refused.value.code == -32602 and "debug, info, notice, warning" in refused.value.message
