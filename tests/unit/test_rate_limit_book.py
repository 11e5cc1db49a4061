"""The supervisor's buckets and leases (only1mcp/ratelimit/book.py): what a grant takes, what a return and a
write-off give back, when a bucket is forgotten, and a reload's new shape."""

from __future__ import annotations

import pytest

from only1mcp.ratelimit.book import LEASE_SECONDS, RECLAIM_GRACE, QuotaBook, Shape
from only1mcp.ratelimit.limits import Limit

P = Limit.PER_PRINCIPAL
A, B = (0, 100), (1, 101)  # two workers (slot, pid)


def _book(rate: float = 10.0, burst: int = 20) -> QuotaBook:
    return QuotaBook({P: Shape(rate, burst)})


def test_a_new_bucket_is_full_and_a_grant_takes_a_slice_of_it_not_all() -> None:
    book = _book(rate=40, burst=20)
    grant = book.ask(A, P, "k", 1, {}, now=100.0)
    assert grant.tokens == 10  # half the burst: another worker can still be served at once
    assert grant.lease and grant.expires == 100.0 + LEASE_SECONDS
    assert book.ask(B, P, "k", 1, {}, now=100.0).tokens == 10
    refused = book.ask(A, P, "k", 1, {}, now=100.0)
    assert (refused.lease, refused.tokens) == (0, 0)
    # The leases hold the whole burst: worth asking again once a quantum (50 ms of the rate) could be
    # spent from them and refilled
    assert refused.retry_at == pytest.approx(100.05)


def test_a_grant_is_a_quarter_second_of_the_rate_or_a_quarter_of_what_the_bucket_holds() -> None:
    assert _book(rate=100, burst=1000).ask(A, P, "k", 1, {}, now=0.0).tokens == 250
    assert _book(rate=1, burst=100).ask(A, P, "k", 1, {}, now=0.0).tokens == 25  # not one token per ask


def test_a_worker_waiting_with_many_requests_gets_what_they_need() -> None:
    book = _book(rate=10, burst=20)
    assert book.ask(A, P, "k", 15, {}, now=0.0).tokens == 15


def test_unused_leased_tokens_count_as_still_in_the_bucket() -> None:
    """Leased tokens nobody reported used keep their place: the bucket refills only up to burst minus them."""
    book = _book(rate=10, burst=20)
    first = book.ask(A, P, "k", 20, {}, now=0.0)
    assert first.tokens == 20
    assert book.ask(B, P, "k", 1, {}, now=5.0).tokens == 0  # 5 s later: still nothing, the lease holds 20
    book.give_back(A, P, "k", first.lease, used=20, now=5.0)  # all of them spent
    assert book.ask(B, P, "k", 20, {}, now=7.0).tokens == 20  # refilled from then: 2 s at 10/s


def test_reported_use_lets_the_bucket_refill_behind_it() -> None:
    book = _book(rate=10, burst=20)
    lease = book.ask(A, P, "k", 20, {}, now=0.0).lease
    grant = book.ask(A, P, "k", 1, {lease: 20}, now=1.0)  # the ask says all 20 were spent
    # The report came with this ask: refilling starts from here, and the next token is reserved for it
    assert (grant.tokens, grant.starts) == (1, pytest.approx(1.1))
    assert book.ask(A, P, "k", 10, {lease: 20}, now=2.1).tokens == 10  # 11 accrued since 1.0, one reserved


def test_a_return_gives_back_what_was_not_used() -> None:
    book = _book(rate=10, burst=20)
    grant = book.ask(A, P, "k", 20, {}, now=0.0)
    book.give_back(A, P, "k", grant.lease, used=5, now=0.0)
    assert book.bucket(P, "k").tokens == 15
    assert book.describe()["returned"] == 15


def test_a_return_from_another_process_or_for_a_written_off_lease_changes_nothing() -> None:
    book = _book(rate=10, burst=20)
    grant = book.ask(A, P, "k", 20, {}, now=0.0)
    book.give_back(B, P, "k", grant.lease, used=0, now=0.0)  # not the holder (a new process in its slot)
    assert book.bucket(P, "k").tokens == 0
    book.sweep(grant.expires + RECLAIM_GRACE)
    book.give_back(A, P, "k", grant.lease, used=0, now=grant.expires + RECLAIM_GRACE)
    assert book.bucket(P, "k").outstanding == 0 and book.describe()["returned"] == 0


def test_a_lease_never_returned_is_written_off_after_its_expiry_and_its_tokens_stay_spent() -> None:
    """A dead worker's tokens are not given to anyone (it may have used them all), but the bucket refills."""
    book = _book(rate=10, burst=20)
    grant = book.ask(A, P, "k", 20, {}, now=0.0)
    book.sweep(grant.expires)  # not yet: the holder's return may be on its way
    assert book.bucket(P, "k").leases
    book.sweep(grant.expires + RECLAIM_GRACE)
    bucket = book.bucket(P, "k")
    assert not bucket.leases and bucket.outstanding == 0 and bucket.tokens == 0
    assert book.describe()["reclaimed"] == 1
    assert book.ask(B, P, "k", 20, {}, now=grant.expires + RECLAIM_GRACE + 1.0).tokens == 10


def test_a_bucket_unused_and_full_again_is_forgotten() -> None:
    book = _book(rate=10, burst=20)
    grant = book.ask(A, P, "k", 4, {}, now=0.0)
    book.give_back(A, P, "k", grant.lease, used=4, now=0.0)
    assert book.next_due() == pytest.approx(0.4)  # full again 4 tokens later
    book.sweep(0.3)
    assert len(book) == 1
    book.sweep(0.4)
    assert len(book) == 0 and book.next_due() is None


def test_a_bucket_in_use_is_not_forgotten() -> None:
    book = _book(rate=10, burst=20)
    book.ask(A, P, "k", 4, {}, now=0.0)
    book.sweep(0.9)
    assert len(book) == 1


def test_an_empty_bucket_reserves_the_next_fifty_milliseconds_of_its_rate() -> None:
    """A busy worker gets its next slice ahead, usable when the refill has brought it; the smallest slice is
    50 ms of the rate, so a saturated bucket is asked about 20 times a second however fast requests come."""
    book = _book(rate=1000, burst=100)
    first = book.ask(A, P, "k", 100, {}, now=0.0)
    assert first.tokens == 100
    book.give_back(A, P, "k", first.lease, used=100, now=0.0)
    early = book.ask(A, P, "k", 1, {}, now=0.01)  # 10 tokens there; 50 are worth a grant
    assert (early.tokens, early.starts, early.expires) == (50, pytest.approx(0.05), pytest.approx(1.05))
    after = book.ask(B, P, "k", 1, {}, now=0.01)  # the next worker's reservation follows
    assert (after.tokens, after.starts) == (50, pytest.approx(0.1))


def test_a_reservation_never_starts_more_than_half_a_second_ahead() -> None:
    book = _book(rate=1, burst=5)
    assert book.ask(A, P, "k", 5, {}, now=0.0).tokens == 5
    book.give_back(A, P, "k", 1, used=5, now=0.0)
    soon = book.ask(A, P, "k", 1, {}, now=0.6)  # the next token accrues at 1.0
    assert (soon.tokens, soon.starts) == (1, pytest.approx(1.0))
    later = book.ask(B, P, "k", 1, {}, now=0.6)  # the one after at 2.0: too far ahead to reserve
    assert (later.lease, later.tokens) == (0, 0) and later.retry_at == pytest.approx(1.5)


def test_no_reservation_beyond_what_the_leases_leave_room_for() -> None:
    """Leases not yet reported used take the whole burst: nothing can be promised until they are."""
    book = _book(rate=100, burst=10)
    book.ask(A, P, "k", 10, {}, now=0.0)
    refused = book.ask(B, P, "k", 1, {}, now=1.0)
    assert (refused.lease, refused.tokens) == (0, 0)


def test_a_burst_below_the_quantum_is_still_granted_in_full() -> None:
    book = _book(rate=1000, burst=3)
    assert book.ask(A, P, "k", 1, {}, now=0.0).tokens == 2
    assert book.ask(B, P, "k", 1, {}, now=0.0).tokens == 1


def test_a_reload_reshapes_live_buckets_and_drops_removed_limits() -> None:
    book = QuotaBook({P: Shape(10, 20), Limit.PER_BACKEND: Shape(1, 1)})
    book.ask(A, P, "k", 1, {}, now=0.0)
    book.ask(A, Limit.PER_BACKEND, "files", 1, {}, now=0.0)
    book.configure({P: Shape(100, 5)}, now=0.0)
    bucket = book.bucket(P, "k")
    assert (bucket.rate, bucket.burst) == (100, 5)
    assert bucket.tokens <= 5 - bucket.outstanding  # never more than the new burst, leases counted
    assert book.bucket(Limit.PER_BACKEND, "files") is None


def test_an_ask_for_a_limit_the_supervisor_does_not_have_is_not_held_to_one() -> None:
    """A worker whose config is older or newer than the supervisor's for a moment is not refused for it."""
    grant = _book().ask(A, Limit.PER_TOOL, "k t", 3, {}, now=0.0)
    assert (grant.lease, grant.tokens) == (0, 3)


def test_a_reservation_given_back_before_it_starts_repays_the_debt() -> None:
    book = _book(rate=10, burst=20)
    book.give_back(A, P, "k", book.ask(A, P, "k", 20, {}, now=0.0).lease, used=20, now=0.0)
    reserved = book.ask(A, P, "k", 1, {}, now=0.0)
    assert reserved.tokens == 1 and book.bucket(P, "k").tokens == -1
    book.give_back(A, P, "k", reserved.lease, used=0, now=0.05)
    bucket = book.bucket(P, "k")
    assert bucket.tokens == pytest.approx(0.5) and bucket.outstanding == 0
