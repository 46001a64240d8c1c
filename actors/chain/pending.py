"""Pending transactions that survive a restart: the store-backed :class:`PendingLog`.

The transaction sender (:mod:`actors.chain.transactions`) writes every signed attempt to its
:class:`~actors.chain.transactions.PendingLog` *before* it sends it, and settles the nonce once a
receipt is in (or the transaction certainly never left). :class:`StorePendingLog` keeps those
records in the checkpoint store (namespace :data:`PENDING_NAMESPACE`, one record per nonce: the
latest attempt), so that what was in flight when the process died is known at the next start.

At start, :func:`recheck_pending` looks at each one by hash and by nonce (:func:`recheck_rule`):

============================================  ===============================================
what the node says                            what is done
============================================  ===============================================
a receipt for the recorded hash               mined: settled (its effect is on chain)
no receipt; the wallet's mined nonce count    the nonce was used by another attempt (a fee
is past the nonce                             bump) or another transaction: settled
no receipt; the nonce is still unused         the signed transaction is sent again (the same
                                              bytes: "already known" is fine) and kept until a
                                              later check finds it mined or replaced
============================================  ===============================================

What the transaction was *for* is in its ``label`` (``providerSetJobStatus``, ``claimNextJob``,
...): job actors resend their own statuses from their persisted phase anyway, and a status the
chain already holds comes back as ``SameStatusError`` (done), so a re-sent transaction can never
apply a status twice.
"""

from __future__ import annotations

import enum
import logging

import msgspec

from actors.chain.revert import ChainError
from actors.chain.rpc import HttpRpc
from actors.chain.transactions import PendingTransaction
from runtime.store import Store

__all__ = [
    "PENDING_NAMESPACE",
    "RecheckOutcome",
    "RecheckRule",
    "StorePendingLog",
    "StoredTransaction",
    "recheck_pending",
    "recheck_rule",
]

log = logging.getLogger(__name__)

PENDING_NAMESPACE = "pending_transactions"


def _key(nonce: int) -> str:
    return f"{nonce:020d}"  # sorts by nonce


class StoredTransaction(msgspec.Struct, frozen=True):
    """What is kept of a :class:`~actors.chain.transactions.PendingTransaction`: enough to find
    it (hash, nonce), to send it again (the signed bytes, no key) and to say what it was for."""

    nonce: int
    tx_hash: str
    raw: str
    label: str

    @classmethod
    def of(cls, tx: PendingTransaction) -> StoredTransaction:
        return cls(nonce=tx.nonce, tx_hash=tx.tx_hash, raw=tx.raw, label=tx.label)


class StorePendingLog:
    """A :class:`~actors.chain.transactions.PendingLog` in the checkpoint store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, tx: PendingTransaction) -> None:
        await self._store.put(PENDING_NAMESPACE, _key(tx.nonce), StoredTransaction.of(tx))

    async def settle(self, nonce: int) -> None:
        await self._store.delete(PENDING_NAMESPACE, _key(nonce))

    async def pending(self) -> list[StoredTransaction]:
        """Every unsettled transaction, by nonce."""
        return [tx for _, tx in await self._store.items(PENDING_NAMESPACE, StoredTransaction)]

    async def settle_if_unchanged(self, tx: StoredTransaction) -> bool:
        """Settle ``tx``'s nonce unless a newer attempt was recorded meanwhile."""
        current = await self._store.get(PENDING_NAMESPACE, _key(tx.nonce), StoredTransaction)
        if current is None or current.tx_hash != tx.tx_hash:
            return False
        await self.settle(tx.nonce)
        return True


class RecheckRule(enum.Enum):
    MINED = "mined"
    REPLACED = "replaced"
    SEND_AGAIN = "send again"


def recheck_rule(*, receipt_found: bool, mined_nonces: int, nonce: int) -> RecheckRule:
    """What to do with a pending transaction (see the module's table). ``mined_nonces`` is the
    wallet's transaction count at the latest block (so nonces below it are used)."""
    if receipt_found:
        return RecheckRule.MINED
    if mined_nonces > nonce:
        return RecheckRule.REPLACED
    return RecheckRule.SEND_AGAIN


class RecheckOutcome(msgspec.Struct, frozen=True):
    mined: int = 0
    replaced: int = 0
    sent_again: int = 0
    unknown: int = 0
    """Not checked: the node could not be asked."""

    @property
    def waiting(self) -> int:
        return self.sent_again + self.unknown


async def recheck_pending(
    pending_log: StorePendingLog,
    rpc: HttpRpc,
    address: str,
    only: list[StoredTransaction] | None = None,
) -> tuple[RecheckOutcome, list[StoredTransaction]]:
    """Check each pending transaction (or those of ``only``) by hash and nonce; returns the
    counts and the transactions still waiting (re-check them later)."""
    txs = only if only is not None else await pending_log.pending()
    counts = dict.fromkeys(("mined", "replaced", "sent_again", "unknown"), 0)
    waiting: list[StoredTransaction] = []
    if not txs:
        return RecheckOutcome(), waiting
    try:
        mined_nonces = int(
            str(await rpc.request("eth_getTransactionCount", [address, "latest"])), 16
        )
        receipts = await rpc.batch([("eth_getTransactionReceipt", [tx.tx_hash]) for tx in txs])
    except ChainError as exc:
        log.warning("pending transactions: cannot check %d now: %s", len(txs), exc)
        return RecheckOutcome(unknown=len(txs)), list(txs)
    for tx, receipt in zip(txs, receipts, strict=True):
        if isinstance(receipt, ChainError):
            counts["unknown"] += 1
            waiting.append(tx)
            continue
        rule = recheck_rule(
            receipt_found=isinstance(receipt, dict), mined_nonces=mined_nonces, nonce=tx.nonce
        )
        if rule is RecheckRule.SEND_AGAIN:
            try:
                await rpc.request("eth_sendRawTransaction", [tx.raw])
            except ChainError as exc:  # "already known", "nonce too low": checked next time
                log.debug("pending transaction %s sent again: %s", tx.tx_hash, exc)
            counts["sent_again"] += 1
            waiting.append(tx)
            log.info(
                "pending transaction %s (%s, nonce %d) sent again", tx.tx_hash, tx.label, tx.nonce
            )
            continue
        await pending_log.settle_if_unchanged(tx)
        counts["mined" if rule is RecheckRule.MINED else "replaced"] += 1
        log.info("pending transaction %s (%s, nonce %d): %s", tx.tx_hash, tx.label, tx.nonce, rule)
    return RecheckOutcome(**counts), waiting
