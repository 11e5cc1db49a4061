"""The five balancing algorithms. Each picks among the replicas that may take a call right now.

Pure and synchronous: a worker asks ``pick(candidates, key)`` on every routed call, so each is O(1) or
O(log n) in the number of replicas (consistent hashing) and allocates nothing per call.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from typing import Protocol

__all__ = ["ALGORITHMS", "Balancer", "ConsistentHash", "LeastConnections", "Random", "RoundRobin",
           "WeightedRandom", "make_balancer"]


class Balancer(Protocol):
    def pick(self, candidates: Sequence[int], key: str | None = None) -> int:
        """One of ``candidates`` (replica indexes, never empty)."""
        ...


class RoundRobin:
    """Each replica in turn; exact over any window of len(candidates) calls with a stable set."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def pick(self, candidates: Sequence[int], key: str | None = None) -> int:
        choice = candidates[self._next % len(candidates)]
        self._next += 1
        return choice


class Random:
    __slots__ = ("_random",)

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def pick(self, candidates: Sequence[int], key: str | None = None) -> int:
        return candidates[self._random.randrange(len(candidates))]


class WeightedRandom:
    """Probability proportional to each replica's weight."""

    __slots__ = ("_random", "_weights")

    def __init__(self, weights: Sequence[int], seed: int | None = None) -> None:
        self._weights = list(weights)
        self._random = random.Random(seed)

    def pick(self, candidates: Sequence[int], key: str | None = None) -> int:
        total = sum(self._weights[c] for c in candidates)
        point = self._random.uniform(0, total)
        for candidate in candidates:
            point -= self._weights[candidate]
            if point <= 0:
                return candidate
        return candidates[-1]


class LeastConnections:
    """The replica with the fewest calls in flight from this worker; ties go round-robin."""

    __slots__ = ("_in_flight", "_turn")

    def __init__(self, in_flight: list[int]) -> None:
        self._in_flight = in_flight  # shared with the router, which counts calls as they start and end
        self._turn = 0

    def pick(self, candidates: Sequence[int], key: str | None = None) -> int:
        least = min(self._in_flight[c] for c in candidates)
        tied = [c for c in candidates if self._in_flight[c] == least]
        self._turn += 1
        return tied[self._turn % len(tied)]


class ConsistentHash:
    """A ring of virtual nodes: a key keeps its replica while that replica is available, and when one
    of N replicas leaves only its keys (about 1/N) move."""

    __slots__ = ("_owners", "_points")

    def __init__(self, replicas: int, vnodes: int = 160) -> None:
        ring = sorted((_hash(f"{replica}#{v}"), replica) for replica in range(replicas) for v in range(vnodes))
        self._points = [point for point, _ in ring]
        self._owners = [owner for _, owner in ring]

    def pick(self, candidates: Sequence[int], key: str | None = None) -> int:
        if key is None or len(candidates) == 1:
            return candidates[0]
        allowed = set(candidates)
        start = bisect.bisect(self._points, _hash(key))
        size = len(self._points)
        for step in range(size):
            owner = self._owners[(start + step) % size]
            if owner in allowed:
                return owner
        return candidates[0]


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


ALGORITHMS = ("round_robin", "least_connections", "consistent_hash", "random", "weighted_random")


def make_balancer(algorithm: str, weights: Sequence[int], in_flight: list[int]) -> Balancer:
    if algorithm == "round_robin":
        return RoundRobin()
    if algorithm == "least_connections":
        return LeastConnections(in_flight)
    if algorithm == "consistent_hash":
        return ConsistentHash(len(weights))
    if algorithm == "random":
        return Random()
    if algorithm == "weighted_random":
        return WeightedRandom(weights)
    raise ValueError(f"unknown balancing algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
