"""Revocations: applied in place (their number does not make other state changes cost more), recorded on
disk with a configured secret, and shared by hosts that append to one directory."""

from __future__ import annotations

import time
from pathlib import Path

from only1mcp.supervisor.revocation_log import RevocationLog

from only1mcp.bus import Namespace
from only1mcp.bus.replica import Revocations, _Batch
from only1mcp.bus.state import BackendRoutes, ReplicaRoute, Revocation, State, StateEntry
from only1mcp.routing.breaker import State as BreakerState
from only1mcp.routing.health import Health

SECRET = b"k" * 32


class _Untouchable(Revocations):
    """Revocations that fail the test if anything but a revocation entry reaches them."""

    def apply(self, sid: str, value: Revocation | None) -> None:
        raise AssertionError("a change to another namespace touched the revocations")

    def reset(self, entries: object) -> None:
        raise AssertionError("a change to another namespace rebuilt the revocations")


def test_other_state_changes_never_touch_20000_revocations() -> None:
    revocations = _Untouchable()
    for index in range(20_000):
        Revocations.apply(revocations, f"s{index}", Revocation(2e9))
    assert len(revocations) == 20_000
    state = State(routes={"a": BackendRoutes(())})
    batch = _Batch(state)
    route = BackendRoutes((ReplicaRoute(Health.HEALTHY, BreakerState.OPEN, None, "5 failures", 1),))
    batch.apply(StateEntry(Namespace.ROUTES, "b", route), revocations)
    new = batch.result(state.seq + 1)
    assert new.routes["b"] == route and new.routes["a"] == state.routes["a"]
    assert len(revocations) == 20_000 and "s19999" in revocations


def test_a_revocation_is_applied_in_place() -> None:
    revocations = Revocations()
    batch = _Batch(State())
    batch.apply(StateEntry(Namespace.REVOKED, "sid", Revocation(2e9)), revocations)
    assert "sid" in revocations and revocations.confirmed("sid")
    batch.apply(StateEntry(Namespace.REVOKED, "sid", None), revocations)
    assert "sid" not in revocations


def test_a_local_revocation_counts_at_once_and_is_confirmed_by_the_supervisor() -> None:
    revocations = Revocations()
    revocations.add_local("sid")
    assert "sid" in revocations and not revocations.confirmed("sid")
    revocations.apply("sid", Revocation(2e9))
    assert revocations.confirmed("sid")


def test_the_log_is_read_back_and_shared_by_hosts(tmp_path: Path) -> None:
    one = RevocationLog(tmp_path, SECRET, ttl=3600)
    other = RevocationLog(tmp_path, SECRET, ttl=3600)  # another host, same directory and secret
    stranger = RevocationLog(tmp_path, b"x" * 32, ttl=3600)  # another gateway's secret
    assert list(other.read_new()) == []
    one.append("aaa", 2e9)
    one.append("bbb", 2e9 + 1)
    assert list(other.read_new()) == [("aaa", 2e9), ("bbb", 2e9 + 1)]
    assert list(other.read_new()) == []  # only what is new
    one.append("ccc", 2e9)
    assert list(other.read_new()) == [("ccc", 2e9)]
    assert list(stranger.read_new()) == []
    assert list(RevocationLog(tmp_path, SECRET, ttl=3600).read_new()) == [  # a restart reads it all
        ("aaa", 2e9), ("bbb", 2e9 + 1), ("ccc", 2e9)]


def test_a_half_written_line_waits_and_old_days_are_pruned(tmp_path: Path) -> None:
    log = RevocationLog(tmp_path, SECRET, ttl=3600)
    old_day = time.time() - 3 * 86400
    log.append("old", old_day + 10, now=old_day)
    log.append("new", 2e9)
    files = sorted(tmp_path.iterdir())
    with files[-1].open("ab") as handle:
        handle.write(b"2000000000.000 parti")  # another host in the middle of a write
    assert sorted(sid for sid, _ in log.read_new()) == ["new", "old"]
    with files[-1].open("ab") as handle:
        handle.write(b"al\n")
    assert list(log.read_new()) == [("partial", 2e9)]
    assert log.prune() == 1 and len(list(tmp_path.iterdir())) == 1
