"""Balancers (statistical where the algorithm is random), breaker transitions, health hysteresis."""

from __future__ import annotations

from collections import Counter

import pytest

from only1mcp.routing.balancers import (
    ConsistentHash,
    LeastConnections,
    Random,
    RoundRobin,
    WeightedRandom,
    make_balancer,
)
from only1mcp.routing.breaker import Breaker, BreakerPolicy, State
from only1mcp.routing.health import Health, HealthPolicy, HealthTracker


def test_round_robin_is_exact() -> None:
    balancer = RoundRobin()
    picks = [balancer.pick([0, 1, 2]) for _ in range(300)]
    assert picks[:6] == [0, 1, 2, 0, 1, 2]
    assert Counter(picks) == {0: 100, 1: 100, 2: 100}
    # An unavailable replica is simply not a candidate; the rest still alternate exactly.
    assert Counter(balancer.pick([0, 2]) for _ in range(100)) == {0: 50, 2: 50}


def test_weighted_random_follows_weights_within_5_percent() -> None:
    weights = [1, 3, 6]
    balancer = WeightedRandom(weights, seed=7)
    counts = Counter(balancer.pick([0, 1, 2]) for _ in range(10_000))
    for replica, weight in enumerate(weights):
        share = counts[replica] / 10_000
        assert abs(share - weight / sum(weights)) <= 0.05 * (weight / sum(weights)) + 0.01, (replica, share)


def test_random_is_roughly_uniform() -> None:
    balancer = Random(seed=3)
    counts = Counter(balancer.pick([0, 1, 2, 3]) for _ in range(10_000))
    assert all(abs(c / 10_000 - 0.25) < 0.03 for c in counts.values())


@pytest.mark.parametrize("replicas", [3, 5, 8])
def test_consistent_hash_moves_at_most_one_nth_plus_5_percent(replicas: int) -> None:
    ring = ConsistentHash(replicas)
    keys = [f"session-{i}" for i in range(10_000)]
    everyone = list(range(replicas))
    before = {k: ring.pick(everyone, k) for k in keys}
    gone = replicas // 2
    remaining = [r for r in everyone if r != gone]
    after = {k: ring.pick(remaining, k) for k in keys}
    moved = sum(1 for k in keys if before[k] != after[k])
    assert moved / len(keys) <= 1 / replicas + 0.05
    assert all(before[k] == after[k] for k in keys if before[k] != gone)  # only the leaver's keys move
    assert {k: ring.pick(everyone, k) for k in keys} == before  # and they come back when it returns


def test_consistent_hash_spreads_keys() -> None:
    ring = ConsistentHash(4)
    counts = Counter(ring.pick([0, 1, 2, 3], f"k{i}") for i in range(20_000))
    assert all(0.18 < c / 20_000 < 0.32 for c in counts.values())


def test_least_connections_prefers_the_idle_replica() -> None:
    in_flight = [5, 0, 3]
    balancer = LeastConnections(in_flight)
    assert all(balancer.pick([0, 1, 2]) == 1 for _ in range(10))
    in_flight[1] = 9
    assert balancer.pick([0, 1, 2]) == 2
    assert balancer.pick([0, 1]) == 0


def test_unknown_algorithm_is_explained() -> None:
    with pytest.raises(ValueError, match="use one of round_robin"):
        make_balancer("fastest", [1], [0])


def test_breaker_opens_on_consecutive_failures_and_recovers() -> None:
    breaker = Breaker(BreakerPolicy(failures=3, cooldown=5, max_cooldown=20))
    assert breaker.record(False, 0, "refused") is None
    assert breaker.record(False, 1, "refused") is None
    opened = breaker.record(False, 2, "refused")
    assert opened is not None and opened.state is State.OPEN and opened.retry_at == 7
    assert "3 consecutive failures (refused)" in opened.reason
    assert breaker.tick(6) is None
    half = breaker.tick(7)
    assert half is not None and half.state is State.HALF_OPEN
    again = breaker.record(False, 8, "still refused")
    assert again is not None and again.state is State.OPEN and again.retry_at == 8 + 10  # cooldown doubled
    breaker.tick(18)
    closed = breaker.record(True, 19)
    assert closed is not None and closed.state is State.CLOSED
    # After closing, the cooldown starts from the beginning again.
    for t in range(3):
        breaker.record(False, 20 + t)
    assert breaker.retry_at == 22 + 5


def test_breaker_opens_on_error_rate_with_minimum_volume() -> None:
    breaker = Breaker(BreakerPolicy(failures=100, error_rate=0.5, window=10, min_calls=10))
    outcomes = [True, False] * 4 + [False]  # 9 calls: below the minimum volume
    assert all(breaker.record(ok, i * 0.1) is None for i, ok in enumerate(outcomes))
    opened = breaker.record(False, 1.0)
    assert opened is not None and "error rate 60% over 10 calls" in opened.reason


def test_breaker_window_forgets_old_failures() -> None:
    breaker = Breaker(BreakerPolicy(failures=100, error_rate=0.5, window=10, min_calls=4))
    for t in range(3):
        breaker.record(False, t)
    for t in range(20, 24):
        assert breaker.record(True, t) is None  # the old failures left the window
    assert breaker.state is State.CLOSED


def test_breaker_counts_a_busy_window_exactly() -> None:
    # 2,000 outcomes a second: the error rate is over every call in the window, not a sample.
    breaker = Breaker(BreakerPolicy(failures=10**6, error_rate=0.5, window=30, min_calls=10))
    for i in range(20_000):
        assert breaker.record(True, i / 2000) is None
    for i in range(20_000):
        assert breaker.record(False, 10 + i / 2000) is None  # exactly half failed: not over the rate
    opened = breaker.record(False, 20.0)
    assert opened is not None and opened.reason.startswith("error rate 50% over 40001 calls in 30s"), opened


def test_health_hysteresis() -> None:
    tracker = HealthTracker(HealthPolicy(healthy_threshold=2, unhealthy_threshold=3))
    assert tracker.probe(False, "timeout") is Health.DEGRADED
    assert tracker.probe(False) is None
    assert tracker.probe(False) is Health.UNHEALTHY
    assert tracker.probe(True) is None  # one success is not enough to trust it again
    assert tracker.probe(True) is Health.HEALTHY
    assert tracker.probe(False) is Health.DEGRADED
    assert tracker.probe(True) is Health.HEALTHY
