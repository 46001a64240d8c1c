"""Fee modes and arithmetic, gas limits and the nonce manager of the chain adapter (pure parts)."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.chain.fees import (
    DynamicFees,
    FeeModeUnsupported,
    GasLimitTooLow,
    LegacyFees,
    bump_fee,
    bump_fees,
    fees_from_node,
    gas_limit_for,
    gas_with_margin,
)
from actors.chain.transactions import NonceManager

GWEI = 10**9
wei = st.integers(min_value=0, max_value=10**24)


def test_bump_fee_adds_an_eighth_rounded_up_and_at_least_one_wei() -> None:
    assert bump_fee(0) == 1
    assert bump_fee(1) == 2
    assert bump_fee(8) == 9
    assert bump_fee(1000) == 1125
    assert bump_fee(1001) == 1127  # 125.125 rounds up to 126
    assert bump_fee(2 * GWEI) == 2_250_000_000


@given(old=wei)
def test_bump_fee_is_at_least_twelve_and_a_half_percent(old: int) -> None:
    new = bump_fee(old)
    assert new * 8 >= old * 9
    assert new > old


@given(max_fee=wei, tip=wei)
def test_bumped_dynamic_fees_raise_both_fields(max_fee: int, tip: int) -> None:
    old = DynamicFees(max_fee=max_fee, max_priority_fee=tip)
    new = bump_fees(old)
    assert isinstance(new, DynamicFees)
    assert new.max_fee * 8 >= old.max_fee * 9 and new.max_fee > old.max_fee
    assert new.max_priority_fee * 8 >= old.max_priority_fee * 9
    assert new.max_fee >= new.max_priority_fee


def test_a_bump_takes_what_the_node_asks_now_when_that_is_higher() -> None:
    old = DynamicFees(max_fee=3 * GWEI, max_priority_fee=GWEI)
    current = DynamicFees(max_fee=10 * GWEI, max_priority_fee=2 * GWEI)
    assert bump_fees(old, current) == DynamicFees(max_fee=10 * GWEI, max_priority_fee=2 * GWEI)
    low = DynamicFees(max_fee=GWEI, max_priority_fee=1)
    assert bump_fees(old, low) == DynamicFees(max_fee=3_375_000_000, max_priority_fee=1_125_000_000)
    assert bump_fees(LegacyFees(gas_price=8 * GWEI)) == LegacyFees(gas_price=9 * GWEI)
    assert bump_fees(LegacyFees(gas_price=8 * GWEI), LegacyFees(gas_price=20 * GWEI)) == LegacyFees(
        gas_price=20 * GWEI
    )


def test_a_tip_above_the_max_fee_is_covered() -> None:
    bumped = bump_fees(DynamicFees(max_fee=10, max_priority_fee=10), DynamicFees(5, 100))
    assert isinstance(bumped, DynamicFees)
    assert bumped.max_priority_fee == 100 and bumped.max_fee == 100


def test_fees_follow_the_latest_block() -> None:
    london = {"number": "0x10", "baseFeePerGas": hex(7 * GWEI)}
    assert fees_from_node(london, gas_price=9 * GWEI, priority_fee=GWEI) == DynamicFees(
        max_fee=15 * GWEI, max_priority_fee=GWEI
    )
    # no eth_maxPriorityFeePerGas on this node: the tip is what gasPrice adds to the base fee
    assert fees_from_node(london, gas_price=9 * GWEI, priority_fee=None) == DynamicFees(
        max_fee=16 * GWEI, max_priority_fee=2 * GWEI
    )
    assert fees_from_node(london, gas_price=GWEI, priority_fee=None) == DynamicFees(
        max_fee=14 * GWEI, max_priority_fee=0
    )
    legacy = {"number": "0x10"}
    assert fees_from_node(legacy, gas_price=3 * GWEI, priority_fee=GWEI) == LegacyFees(3 * GWEI)


def test_the_fee_mode_chooses_the_transaction_type() -> None:
    london = {"number": "0x10", "baseFeePerGas": hex(7 * GWEI)}
    berlin = {"number": "0x10"}
    price = {"gas_price": 9 * GWEI, "priority_fee": GWEI}
    dynamic = DynamicFees(max_fee=15 * GWEI, max_priority_fee=GWEI)
    assert fees_from_node(london, **price, mode="auto") == dynamic
    assert fees_from_node(berlin, **price, mode="auto") == LegacyFees(9 * GWEI)
    # legacy: the node's gas price, base fee or not (the block is not even needed)
    assert fees_from_node(london, **price, mode="legacy") == LegacyFees(9 * GWEI)
    assert fees_from_node(None, **price, mode="legacy") == LegacyFees(9 * GWEI)
    assert fees_from_node(london, **price, mode="eip1559") == dynamic
    with pytest.raises(FeeModeUnsupported, match=r"chain\.fees is eip1559.*set chain\.fees"):
        fees_from_node(berlin, **price, mode="eip1559")


@settings(max_examples=200, deadline=None)
@given(price=wei, node_price=st.none() | wei)
def test_a_legacy_replacement_outbids_by_ten_percent_and_stays_legacy(
    price: int, node_price: int | None
) -> None:
    current = None if node_price is None else LegacyFees(node_price)
    new = bump_fees(LegacyFees(price), current)
    assert isinstance(new, LegacyFees)
    assert new.gas_price * 10 >= price * 11 and new.gas_price > price  # geth's PriceBump 10%
    assert node_price is None or new.gas_price >= node_price


def test_a_fixed_gas_limit_is_used_as_is_unless_the_call_needs_more() -> None:
    assert gas_limit_for(100_000, fixed=None, margin=0.25) == 135_000
    assert gas_limit_for(100_000, fixed=20_000_000, margin=0.25) == 20_000_000
    assert gas_limit_for(20_000_000, fixed=20_000_000, margin=0.25) == 20_000_000
    with pytest.raises(GasLimitTooLow, match=r"claim needs about 300000 gas.*chain\.gasLimit of"):
        gas_limit_for(300_000, fixed=200_000, margin=0.25, label="claim")


def test_gas_limit_is_the_estimate_plus_a_margin() -> None:
    assert gas_with_margin(100_000) == 135_000
    assert gas_with_margin(100_001, margin=0.1, extra=0) == 110_002
    assert gas_with_margin(21_000, margin=0.0, extra=0) == 21_000


async def test_nonces_are_never_shared_and_given_back_nonces_close_gaps() -> None:
    fetched = []

    async def fetch() -> int:
        fetched.append(1)
        await trio.sleep(0.01)
        return 7

    nonces = NonceManager()
    got: list[int] = []

    async def take() -> None:
        got.append(await nonces.reserve(fetch))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(take)
    assert sorted(got) == list(range(7, 27))
    assert fetched == [1]  # asked the node once
    assert nonces.in_flight == set(range(7, 27))

    nonces.release(12)
    nonces.release(9)
    nonces.settle(8)
    assert await nonces.reserve(fetch) == 9  # the smallest given-back nonce first
    assert await nonces.reserve(fetch) == 12
    assert await nonces.reserve(fetch) == 27
    assert 8 not in nonces.in_flight

    nonces.release(20)
    nonces.resync(30)  # someone else used the key up to 29
    assert nonces.next_nonce == 30
    assert await nonces.reserve(fetch) == 30
    nonces.resync(5)  # never goes back
    assert await nonces.reserve(fetch) == 31
