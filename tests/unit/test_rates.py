"""Token buckets (runtime/rates.py): plain numbers for the clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.rates import KeyedBuckets, TokenBucket


def test_a_full_bucket_admits_its_burst_then_one_per_refill() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.try_take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.try_take(0.4) is False  # 0.8 of a token
    assert bucket.try_take(0.5) is True
    assert bucket.tokens(100.0) == 3  # never more than the burst


def test_reservations_queue_fairly() -> None:
    bucket = TokenBucket(rate=4.0, burst=1, now=0.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.25, 0.5]
    assert bucket.tokens(0.5) == 0.0  # the queue has been served by then


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0.5), (float("inf"), 1)])
def test_a_bucket_needs_a_positive_rate_and_a_burst_of_one(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate, burst, 0.0)


def test_keyed_buckets_are_apart_and_bounded() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=1, capacity=2)
    assert buckets.try_take("a", 0.0) and not buckets.try_take("a", 0.0)
    assert buckets.try_take("b", 0.0)  # b has its own bucket
    assert buckets.try_take("c", 0.0)  # a, the least recently used, is forgotten
    assert len(buckets) == 2
    assert buckets.try_take("a", 0.0)  # and comes back full


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 100.0),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=200),
)
def test_never_more_than_the_burst_plus_what_the_rate_refilled(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, 0.0)
    now = 0.0
    taken = 0
    for gap in gaps:
        now += gap
        taken += bucket.try_take(now)
    assert taken <= burst + rate * now + 1e-9
