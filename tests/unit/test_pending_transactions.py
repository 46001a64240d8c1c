"""Pending transactions kept in the checkpoint store across restarts (actors/chain/pending.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.chain.pending import (
    RecheckRule,
    StoredTransaction,
    StorePendingLog,
    recheck_rule,
)
from actors.chain.transactions import DynamicFees, LegacyFees, PendingTransaction
from runtime.store import open_store


def attempt(nonce: int, tx_hash: str, fees: LegacyFees | DynamicFees) -> PendingTransaction:
    return PendingTransaction(
        nonce=nonce, tx_hash=tx_hash, raw="0x02ab", label="providerSetJobStatus", fees=fees,
        gas=90_000,
    )  # fmt: skip


async def test_pending_transactions_survive_a_reopened_store(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        log = StorePendingLog(store)
        await log.record(attempt(7, "0xaa", DynamicFees(max_fee=3, max_priority_fee=1)))
        await log.record(attempt(3, "0xbb", LegacyFees(gas_price=5)))
        await log.record(attempt(7, "0xcc", DynamicFees(max_fee=4, max_priority_fee=2)))  # bump
    async with open_store(tmp_path) as store:  # "after a restart"
        log = StorePendingLog(store)
        assert await log.pending() == [
            StoredTransaction(3, "0xbb", "0x02ab", "providerSetJobStatus"),
            StoredTransaction(7, "0xcc", "0x02ab", "providerSetJobStatus"),
        ]
        await log.settle(3)
        assert [tx.nonce for tx in await log.pending()] == [7]


async def test_a_newer_attempt_is_not_settled_by_an_older_check(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        log = StorePendingLog(store)
        await log.record(attempt(1, "0xold", LegacyFees(1)))
        (seen,) = await log.pending()
        await log.record(attempt(1, "0xnew", LegacyFees(2)))  # re-sent meanwhile
        assert not await log.settle_if_unchanged(seen)
        assert [tx.tx_hash for tx in await log.pending()] == ["0xnew"]
        (current,) = await log.pending()
        assert await log.settle_if_unchanged(current)
        assert await log.pending() == []


@pytest.mark.parametrize(
    ("receipt_found", "mined_nonces", "nonce", "rule"),
    [
        (True, 10, 4, RecheckRule.MINED),  # our hash is mined
        (True, 4, 4, RecheckRule.MINED),  # (whatever the count says)
        (False, 5, 4, RecheckRule.REPLACED),  # nonce used by another attempt or transaction
        (False, 4, 4, RecheckRule.SEND_AGAIN),  # nonce unused: the node lost it, send again
        (False, 0, 4, RecheckRule.SEND_AGAIN),
    ],
)
def test_recheck_rules(
    receipt_found: bool, mined_nonces: int, nonce: int, rule: RecheckRule
) -> None:
    assert recheck_rule(receipt_found=receipt_found, mined_nonces=mined_nonces, nonce=nonce) is rule
