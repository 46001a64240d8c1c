"""Re-checking pending transactions by hash and nonce after a restart, on a private anvil (its
own free port: no testbed lock needed). Each row of actors/chain/pending.py's table happens for
real: a mined transaction is settled, one the node never got is sent again (then found mined),
and one whose nonce another transaction used is settled as replaced."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from eth_account import Account

from actors.chain.pending import RecheckOutcome, StoredTransaction, StorePendingLog, recheck_pending
from actors.chain.rpc import HttpRpc
from runtime.store import Store, open_store
from testbed.anvil import private_anvil
from testbed.layout import Layout, account
from testbed.node import ensure_node_tools

SENDER = account(9)


@pytest.fixture(scope="module")
def node_url() -> Iterator[str]:
    with private_anvil(ensure_node_tools(Layout.from_env().node).anvil) as anvil:
        yield anvil.url


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(tmp_path) as opened:
        yield opened


def signed(nonce: int, value: int) -> StoredTransaction:
    tx = {
        "chainId": 31337, "nonce": nonce, "gas": 21_000, "to": account(8).address,
        "value": value, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "type": 2,
    }  # fmt: skip
    raw = Account.from_key(SENDER.key).sign_transaction(tx)
    return StoredTransaction(
        nonce=nonce,
        tx_hash="0x" + bytes(raw.hash).hex(),
        raw="0x" + bytes(raw.raw_transaction).hex(),
        label="transfer",
    )


async def record(store: Store, tx: StoredTransaction) -> None:
    await store.put("pending_transactions", f"{tx.nonce:020d}", tx)


async def until_mined(rpc: HttpRpc, tx: StoredTransaction) -> None:
    """anvil mines each transaction at once, but its receipt can lag a loaded machine a little."""
    with trio.fail_after(10):
        receipt = None
        while receipt is None:
            receipt = await rpc.request("eth_getTransactionReceipt", [tx.tx_hash])
            if receipt is None:
                await trio.sleep(0.02)


async def test_pending_transactions_are_rechecked_by_hash_and_nonce(
    node_url: str, store: Store
) -> None:
    rpc = HttpRpc(node_url)
    log = StorePendingLog(store)
    address = SENDER.address.lower()
    try:
        first = await rpc.request("eth_getTransactionCount", [address, "latest"])
        base = int(str(first), 16)
        mined = signed(base, 1)
        await rpc.request("eth_sendRawTransaction", [mined.raw])  # mined before the "crash"
        await until_mined(rpc, mined)
        never_sent = signed(base + 1, 2)  # the crash came before it left
        await record(store, mined)
        await record(store, never_sent)

        outcome, waiting = await recheck_pending(log, rpc, address)
        assert outcome == RecheckOutcome(mined=1, sent_again=1)
        assert waiting == [never_sent]
        await until_mined(rpc, never_sent)
        outcome, waiting = await recheck_pending(log, rpc, address, only=waiting)
        assert outcome == RecheckOutcome(mined=1) and waiting == []
        assert await log.pending() == []

        lost = signed(base + 2, 3)  # recorded, then a bumped attempt with this nonce was mined
        bumped = signed(base + 2, 4)
        await rpc.request("eth_sendRawTransaction", [bumped.raw])
        await until_mined(rpc, bumped)
        await record(store, lost)
        outcome, waiting = await recheck_pending(log, rpc, address)
        assert outcome == RecheckOutcome(replaced=1) and waiting == []
        assert await log.pending() == []
    finally:
        await rpc.aclose()
