"""A worker's leased tokens on one bucket (only1mcp/ratelimit/holding.py): admitting, asking ahead, giving back."""

from __future__ import annotations

import pytest

from only1mcp.ratelimit.holding import ASK_LOST, IDLE_RETURN, STOP_MARGIN, Holding


def _holding(tokens: int = 4, expires: float = 10.0, retry_at: float = 0.0) -> Holding:
    holding = Holding(now=0.0)
    holding.asked = 0.0
    holding.granted(7, tokens, 0.0, expires, retry_at)
    return holding


def test_a_lease_admits_as_many_requests_as_it_has_tokens() -> None:
    holding = _holding(tokens=3)
    assert [holding.take(1.0) for _ in range(4)] == [True, True, True, False]
    assert holding.uses() == {7: 3}


def test_a_lease_admits_nothing_from_just_before_its_expiry() -> None:
    """The worker stops first, so the supervisor never writes off a lease still admitting."""
    holding = _holding(tokens=3, expires=10.0)
    assert holding.take(10.0 - STOP_MARGIN - 0.001)
    assert not holding.take(10.0 - STOP_MARGIN)


def test_a_worker_asks_ahead_when_half_its_last_grant_is_left_whatever_the_retry_time() -> None:
    holding = _holding(tokens=8, retry_at=5.0)
    for _ in range(3):
        holding.take(1.0)
    assert not holding.asks_ahead(1.0)
    holding.take(1.0)
    assert holding.asks_ahead(1.0)  # its ask reports the use, which lets the bucket refill
    holding.ask(1.0)
    assert not holding.asks_ahead(1.0)  # one ask at a time
    holding.granted(0, 0, 0.0, 0.0, 5.0)  # refused: the leases hold all the bucket may
    assert not holding.asks_ahead(1.0)  # so the next ask waits for the retry time
    assert holding.asks_ahead(5.0)


def test_a_reservation_admits_nothing_before_it_starts() -> None:
    holding = Holding(now=0.0)
    holding.granted(9, 2, 3.0, 4.0, 3.0)
    assert not holding.take(2.9) and holding.wait(2.9) == pytest.approx(0.1)
    assert holding.take(3.0)


def test_no_ask_before_the_supervisor_said_or_while_one_is_in_flight() -> None:
    holding = _holding(tokens=0, retry_at=2.0)
    assert not holding.may_ask(1.9)
    assert holding.may_ask(2.0)
    holding.asked = 2.0
    assert not holding.may_ask(2.5)
    assert holding.may_ask(2.0 + ASK_LOST)  # an ask that got no answer was lost: ask again
    assert holding.wait(1.5) == 0.5


def test_spent_expiring_and_idle_leases_are_given_back_with_what_they_used() -> None:
    spent = _holding(tokens=1)
    spent.take(1.0)
    assert spent.ending(1.0) == [(7, 1)] and not spent.leases

    expiring = _holding(tokens=5, expires=3.0)
    expiring.take(2.8)
    assert expiring.ending(2.9) == []
    assert expiring.ending(3.0 - STOP_MARGIN) == [(7, 1)]

    idle = _holding(tokens=5)
    idle.take(1.0)
    assert idle.ending(1.0 + IDLE_RETURN / 2) == []
    assert idle.ending(1.0 + IDLE_RETURN + 0.001) == [(7, 1)]


def test_a_holding_with_nothing_left_to_know_is_forgettable() -> None:
    holding = _holding(tokens=1, retry_at=5.0)
    holding.take(1.0)
    holding.ending(1.0)
    assert not holding.forgettable(4.0)  # it still knows to refuse until 5.0 without asking
    assert holding.forgettable(5.0)


def test_a_refusal_grant_adds_no_lease_but_says_when_to_come_back() -> None:
    holding = Holding(now=0.0)
    holding.asked = 1.0
    holding.granted(0, 0, 0.0, 0.0, 1.5)
    assert not holding.leases and not holding.asked and holding.next_ask == 1.5
    assert not holding.take(1.0)
