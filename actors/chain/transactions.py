"""Sending the wallet's transactions: one nonce manager, fees from the node, simulation, resend
with a higher fee, receipts.

The life of one transaction (:meth:`TransactionSender.transact`):

1. **Simulate.** ``eth_estimateGas`` runs the call against the latest state. A revert is decoded
   to its named :class:`~actors.chain.revert.ContractError` and raised *before* a nonce is taken
   or anything is sent. The gas limit is the estimate plus a margin (:func:`gas_with_margin`),
   or the fixed ``SenderSettings.gas_limit`` (``chain.gasLimit``; a call estimated above it is
   refused with :class:`~actors.chain.fees.GasLimitTooLow`, nothing sent).
2. **Price.** Fees come from the node (:func:`fees_from_node`, :mod:`actors.chain.fees`) in the
   ``SenderSettings.fees`` mode (``chain.fees``): ``auto`` sends EIP-1559 (``maxFeePerGas =
   2 * baseFee + tip``) when the latest block has ``baseFeePerGas`` and legacy ``gasPrice``
   otherwise; ``legacy`` and ``eip1559`` always send that type.
3. **Nonce.** :class:`NonceManager` hands out the wallet's nonces: never the same one twice, many
   transactions in flight at once. A nonce whose transaction never left is given back.
4. **Send and wait.** The signed transaction is recorded in the :class:`PendingLog`
   (:class:`~actors.chain.pending.StorePendingLog` keeps it across restarts), sent, and its
   receipt looked for at once, then on every new head the chain adapter announces
   (:meth:`TransactionSender.new_head`), with a backing-off poll as the fallback. Not mined
   within ``resend_after`` seconds: re-signed under the *same* nonce with its price raised by at
   least 12.5% (:func:`bump_fees`: legacy ``gasPrice``, or both the EIP-1559 tip and max fee) and
   sent again; any of the hashes may be the one mined.
5. **Receipt.** Status 1 is returned as a :class:`Receipt`. Status 0 (a revert at mining time, the
   nonce is spent) is explained by replaying the call at that block and raised as a
   ContractError carrying ``tx_hash``.
6. **Forgotten by the chain.** A reorganisation, or a node restarted from an older state, can
   forget a transaction that was mined: its nonce is free again on the chain and every later
   transaction of the wallet waits behind the gap forever. The sender remembers the last
   ``remember_sent`` transactions it settled; :meth:`TransactionSender.replay_forgotten` (run by
   a transaction that is due for a resend, and by the chain adapter after every reconnection)
   finds the wallet's nonces the chain no longer has and sends the remembered signed transaction
   again, byte for byte (same nonce, same effect); a nonce with nothing remembered is closed with
   an empty self-transfer, so the transactions after it are mined.

Errors: :class:`~actors.chain.rpc.RequestNotSent` (nothing of it reached the node; the nonce was
given back), :class:`TransactionTimeout` (an :class:`~actors.chain.rpc.OutcomeUnknown`: sent but no
receipt in time, it may still be mined: check ``nonce``/``tx_hashes`` before retrying),
:class:`~actors.chain.rpc.RpcError` (the node refused the transaction, it did not take effect),
ContractError (the contract refused), FeeModeUnsupported / GasLimitTooLow (the fee or gas setting
does not fit this node or call; nothing was sent).
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

import msgspec
import trio
from eth_account import Account
from eth_utils.address import to_checksum_address

from actors.chain.abi import log_list, quantity
from actors.chain.errors import ChainError, ChainValueError
from actors.chain.fees import (
    DynamicFees,
    FeeMode,
    FeeModeUnsupported,
    Fees,
    GasLimitTooLow,
    LegacyFees,
    bump_fees,
    fees_from_node,
    gas_limit_for,
)
from actors.chain.revert import ContractError
from actors.chain.rpc import HttpRpc, OutcomeUnknown, RequestNotSent, RpcError
from config.schema import Chain
from runtime.statistics import Outcomes, OutcomeTally

__all__ = [
    "DynamicFees",  # these two from actors.chain.fees: the fees of a PendingTransaction
    "LegacyFees",
    "MemoryPendingLog",
    "NonceManager",
    "PendingLog",
    "PendingTransaction",
    "Receipt",
    "SenderSettings",
    "SenderStatistics",
    "TransactionSender",
    "TransactionTimeout",
    "sender_settings_from_config",
]

log = logging.getLogger(__name__)

FILLER_GAS = 21_000  # a plain transfer: what closes a nonce nothing else is known for


# ------------------------------------------------------------------------------------ nonces


class NonceManager:
    """The wallet's next nonces. Single owner of the counter: no two transactions share one.

    The first :meth:`reserve` asks the node (``fetch``, the ``pending`` transaction count).
    :meth:`release` gives back a nonce whose transaction never reached the node; the smallest
    given-back nonce is handed out first, so gaps close. :meth:`resync` moves forward when the node
    says the wallet has used more nonces than we know (someone else used the key).
    """

    def __init__(self) -> None:
        self._next: int | None = None
        self._free: list[int] = []
        self._lock = trio.Lock()
        self.in_flight: set[int] = set()

    @property
    def next_nonce(self) -> int | None:
        """The next fresh nonce (None before the first reservation)."""
        return self._next

    async def reserve(self, fetch: Callable[[], Awaitable[int]]) -> int:
        if self._next is None:
            async with self._lock:
                if self._next is None:
                    self._next = await fetch()
        if self._free:
            nonce = heapq.heappop(self._free)
        else:
            nonce = self._next
            self._next += 1
        self.in_flight.add(nonce)
        return nonce

    def release(self, nonce: int) -> None:
        """``nonce`` was never used (its transaction never left): hand it out again."""
        self.in_flight.discard(nonce)
        if self._next is not None and nonce < self._next and nonce not in self._free:
            heapq.heappush(self._free, nonce)

    def settle(self, nonce: int) -> None:
        """``nonce`` is used (mined, or possibly used: never hand it out again)."""
        self.in_flight.discard(nonce)

    def take_free(self, nonce: int) -> bool:
        """Take ``nonce`` out of the given-back ones to use it now (False: it is not free)."""
        if nonce not in self._free:
            return False
        self._free.remove(nonce)
        heapq.heapify(self._free)
        self.in_flight.add(nonce)
        return True

    def resync(self, chain_next: int) -> None:
        """The node says the wallet's next nonce is ``chain_next``: skip what it has used."""
        if self._next is None or chain_next > self._next:
            self._next = chain_next
        self._free = [n for n in self._free if n >= chain_next]
        heapq.heapify(self._free)


# --------------------------------------------------------------------- records and the seam


class Receipt(msgspec.Struct, frozen=True):
    """A mined transaction (``status`` True: it succeeded)."""

    tx_hash: str
    block_number: int
    status: bool
    gas_used: int
    nonce: int
    logs: tuple[dict[str, Any], ...] = ()


class PendingTransaction(msgspec.Struct, frozen=True):
    """A signed transaction sent (or about to be) and not yet settled: what the pending log keeps
    to re-broadcast or check after a restart. ``raw`` is the signed transaction (no key in it)."""

    nonce: int
    tx_hash: str
    raw: str
    label: str
    fees: LegacyFees | DynamicFees
    gas: int


class PendingLog(Protocol):
    """Where pending transactions are written before they are sent, and cleared once settled."""

    async def record(self, tx: PendingTransaction) -> None: ...

    async def settle(self, nonce: int) -> None: ...


class MemoryPendingLog:
    """The in-memory :class:`PendingLog` (no persistence): the latest attempt per nonce."""

    def __init__(self) -> None:
        self.pending: dict[int, PendingTransaction] = {}

    async def record(self, tx: PendingTransaction) -> None:
        self.pending[tx.nonce] = tx

    async def settle(self, nonce: int) -> None:
        self.pending.pop(nonce, None)


class TransactionTimeout(OutcomeUnknown):
    """Sent, but no receipt within the mining deadline: it may still be mined."""

    def __init__(self, label: str, nonce: int, tx_hashes: tuple[str, ...], seconds: float) -> None:
        super().__init__(
            f"{label or 'transaction'} (nonce {nonce}) not mined within {seconds:g} s; "
            f"sent as {', '.join(tx_hashes)}"
        )
        self.nonce = nonce
        self.tx_hashes = tx_hashes


class SenderSettings(msgspec.Struct, frozen=True):
    """How patient the sender is (seconds), how it prices and how generous with gas.

    ``fees``: the fee mode (``chain.fees``, see :mod:`actors.chain.fees`). ``gas_limit``: a fixed
    gas limit for contract calls (``chain.gasLimit``), or None for the estimate plus
    ``gas_margin``."""

    resend_after: float = 20.0
    mine_timeout: float = 300.0
    fees: FeeMode = "auto"
    gas_limit: int | None = None
    gas_margin: float = 0.25
    fee_cache_seconds: float = 1.0
    receipt_poll_min: float = 0.005
    receipt_poll_max: float = 1.0
    send_attempts: int = 5
    remember_sent: int = 1024  # settled transactions kept to replay if the chain forgets them


class SenderStatistics(msgspec.Struct, frozen=True):
    sent: int
    resent: int
    mined: int
    reverted: int
    simulated_reverts: int
    in_flight: int
    next_nonce: int | None
    replayed: int
    filled: int
    functions: tuple[Outcomes, ...] = ()
    """Transactions by contract function and outcome (``mined``, ``reverted``, ``refused``:
    in simulation or by our own settings, ``not_sent``, ``unknown``, ``rpc_error``,
    ``cancelled``, ``error``), timed from simulation to receipt or failure."""


def sender_settings_from_config(chain: Chain, base: SenderSettings | None = None) -> SenderSettings:
    """``base`` (the defaults) with the fee mode and gas limit of ``cfg.chain``."""
    return msgspec.structs.replace(
        base or SenderSettings(), fees=chain.fees, gas_limit=chain.gas_limit.fixed
    )


ALREADY_KNOWN: Final = ("already known", "known transaction", "already imported")
NONCE_USED: Final = ("nonce too low", "nonce has already been used", "old nonce")


def _is(error: RpcError, *fragments: str) -> bool:
    message = error.message.lower()
    return any(f in message for f in fragments)


class TransactionSender:
    """Signs and sends the wallet's transactions over ``rpc``. Safe to use from many tasks."""

    def __init__(
        self,
        rpc: HttpRpc,
        private_key: bytes,
        *,
        settings: SenderSettings | None = None,
        pending_log: PendingLog | None = None,
    ) -> None:
        self._rpc = rpc
        try:
            self._account = Account.from_key(private_key)
        except Exception as exc:  # the key itself must never appear in the message
            raise ValueError("invalid private key") from exc
        self.address: str = str(self._account.address).lower()
        self.settings = settings or SenderSettings()
        self.pending_log: PendingLog = pending_log or MemoryPendingLog()
        self.nonces = NonceManager()
        self._chain_id: int | None = None
        self._fees: Fees | None = None
        self._fees_at = -math.inf
        self._fee_kind: str | None = None  # the kind last logged
        self._head = trio.Event()
        self._watched: dict[str, _Watch] = {}
        self._watch_wake = trio.Event()
        self._watch_fresh = False  # a transaction joined since the last round
        self._watcher_running = False
        self._settled: OrderedDict[int, PendingTransaction] = OrderedDict()
        self._replay_lock = trio.Lock()
        self._replay_checked_at = -math.inf
        self._sent = self._resent = self._mined = self._reverted = self._simulated = 0
        self._replayed = self._filled = 0
        self._outcomes = OutcomeTally()

    def __repr__(self) -> str:
        return f"TransactionSender({self.address})"

    def statistics(self) -> SenderStatistics:
        return SenderStatistics(
            sent=self._sent,
            resent=self._resent,
            mined=self._mined,
            reverted=self._reverted,
            simulated_reverts=self._simulated,
            in_flight=len(self.nonces.in_flight),
            next_nonce=self.nonces.next_nonce,
            replayed=self._replayed,
            filled=self._filled,
            functions=self._outcomes.snapshot(),
        )

    # --- node facts ------------------------------------------------------------------------

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = quantity(await self._rpc.request("eth_chainId"), "eth_chainId")
        return self._chain_id

    async def _chain_nonce(self, block: str = "pending") -> int:
        count = await self._rpc.request("eth_getTransactionCount", [self.address, block])
        return quantity(count, "eth_getTransactionCount")

    async def current_fees(self, *, fresh: bool = False) -> Fees:
        """Fees for a new transaction in the configured mode (cached for ``fee_cache_seconds``).
        Raises FeeModeUnsupported when the mode does not fit the node."""
        now = trio.current_time()
        if fresh or self._fees is None or now - self._fees_at > self.settings.fee_cache_seconds:
            mode = self.settings.fees
            if mode == "legacy":  # the price alone: no block, no tip
                price = quantity(await self._rpc.request("eth_gasPrice"), "eth_gasPrice")
                self._fees = fees_from_node(None, gas_price=price, priority_fee=None, mode=mode)
            else:
                block, tip, answer = await self._rpc.batch(
                    [
                        ("eth_getBlockByNumber", ["latest", False]),
                        ("eth_maxPriorityFeePerGas", []),
                        ("eth_gasPrice", []),
                    ]
                )
                if isinstance(block, Exception):
                    raise block
                if isinstance(answer, Exception):
                    raise answer
                priority = (
                    None
                    if isinstance(tip, Exception)
                    else quantity(tip, "eth_maxPriorityFeePerGas")
                )
                price = quantity(answer, "eth_gasPrice")
                self._fees = fees_from_node(
                    block, gas_price=price, priority_fee=priority, mode=mode
                )
            self._fees_at = now
            kind = "legacy" if isinstance(self._fees, LegacyFees) else "EIP-1559"
            if kind != self._fee_kind:
                why = ""
                if mode == "auto":
                    base = "carry a" if kind == "EIP-1559" else "have no"
                    why = f": the node's blocks {base} base fee"
                log.info("chain: transactions are %s (chain.fees %s%s)", kind, mode, why)
                self._fee_kind = kind
        return self._fees

    # --- simulation --------------------------------------------------------------------------

    def _call(self, to: str, data: bytes, gas: int | None = None) -> dict[str, str]:
        call = {"from": self.address, "to": to, "data": "0x" + data.hex()}
        if gas is not None:
            call["gas"] = hex(gas)
        return call

    async def simulate(self, to: str, data: bytes) -> int:
        """``eth_estimateGas`` of the call: its gas, or the ContractError it would revert with."""
        try:
            estimate = await self._rpc.request("eth_estimateGas", [self._call(to, data)])
            return quantity(estimate, "eth_estimateGas")
        except ContractError:
            self._simulated += 1
            raise

    # --- sending -----------------------------------------------------------------------------

    def _sign(
        self, to: str, data: bytes, nonce: int, gas: int, fees: Fees, chain: int
    ) -> tuple[str, str]:
        """The raw transaction (hex) and its hash: a call of ``to`` with ``data``, no value."""
        tx: dict[str, Any] = {
            "chainId": chain,
            "nonce": nonce,
            "gas": gas,
            "to": to_checksum_address(to),
            "data": data,
            "value": 0,
        }
        if isinstance(fees, DynamicFees):
            tx.update(type=2, maxFeePerGas=fees.max_fee, maxPriorityFeePerGas=fees.max_priority_fee)
        else:
            tx["gasPrice"] = fees.gas_price
        signed = self._account.sign_transaction(tx)
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()

    async def transact(self, to: str, data: bytes, *, label: str = "") -> Receipt:
        """Simulate, sign, send, resend with higher fees while unmined, and return the receipt.

        Raises ContractError (simulation: nothing sent; mined revert: ``tx_hash`` set),
        RequestNotSent, TransactionTimeout or RpcError (see the module docstring).
        """
        # every transaction is counted by function and outcome, and timed (statistics())
        started = trio.current_time()
        try:
            receipt = await self._transact(to, data, label=label)
        except BaseException as exc:
            self._outcomes.add(label or "unknown", _outcome(exc), trio.current_time() - started)
            raise
        self._outcomes.add(label or "unknown", "mined", trio.current_time() - started)
        return receipt

    async def _transact(self, to: str, data: bytes, *, label: str) -> Receipt:
        settings = self.settings
        gas = gas_limit_for(
            await self.simulate(to, data),
            fixed=settings.gas_limit,
            margin=settings.gas_margin,
            label=label,
        )
        fees = await self.current_fees()
        chain = await self.chain_id()
        nonce = await self.nonces.reserve(self._chain_nonce)
        attempts: dict[str, PendingTransaction] = {}
        try:
            receipt, nonce = await self._send_until_mined(
                to, data, gas, fees, chain, nonce, label, attempts
            )
        except (RequestNotSent, RpcError):
            self.nonces.release(nonce)
            await self.pending_log.settle(nonce)
            raise
        except BaseException:
            self.nonces.settle(nonce)  # may have been used: never hand it out again
            if attempts:  # the latest attempt is the one a node may still hold
                self._remember(list(attempts.values())[-1])
            raise
        self.nonces.settle(nonce)
        mined = attempts.get(receipt.tx_hash)
        if mined is not None:
            self._remember(mined)
        await self.pending_log.settle(nonce)
        self._mined += 1
        if not receipt.status:
            self._reverted += 1
            raise await self._explain_revert(to, data, gas, receipt)
        return receipt

    async def _send_until_mined(
        self,
        to: str,
        data: bytes,
        gas: int,
        fees: Fees,
        chain: int,
        nonce: int,
        label: str,
        attempts: dict[str, PendingTransaction],
    ) -> tuple[Receipt, int]:
        """Send under ``nonce`` until mined; every signed attempt lands in ``attempts``."""
        settings = self.settings
        hashes: list[str] = []
        deadline = trio.current_time() + settings.mine_timeout
        failures = 0
        while True:
            raw, tx_hash = self._sign(to, data, nonce, gas, fees, chain)
            attempt = PendingTransaction(
                nonce=nonce, tx_hash=tx_hash, raw=raw, label=label, fees=fees, gas=gas
            )
            attempts[tx_hash] = attempt
            await self.pending_log.record(attempt)
            try:
                await self._rpc.request("eth_sendRawTransaction", [raw])
            except RequestNotSent:
                failures += 1
                if not hashes and failures >= settings.send_attempts:
                    raise
                await trio.sleep(min(0.05 * 2**failures, settings.resend_after))
                if not hashes:
                    continue
            except OutcomeUnknown:
                hashes.append(tx_hash)
            except RpcError as exc:
                if _is(exc, *ALREADY_KNOWN):
                    hashes.append(tx_hash)
                elif _is(exc, *NONCE_USED):
                    found = await self._find_receipt(hashes, nonce)
                    if found is not None:
                        return found, nonce
                    if not hashes:  # someone else used this nonce: ours never took effect
                        self.nonces.resync(await self._chain_nonce())
                        self.nonces.settle(nonce)
                        attempts.clear()
                        nonce = await self.nonces.reserve(self._chain_nonce)
                        continue
                elif _is(exc, "underpriced", "replacement", "fee too low", "feecap"):
                    fees = bump_fees(fees, await self.current_fees(fresh=True))
                    failures += 1
                    if failures < 10 * settings.send_attempts:
                        continue
                    if not hashes:
                        raise
                elif not hashes:
                    raise
            else:
                hashes.append(tx_hash)
                self._sent += 1
            until = min(trio.current_time() + settings.resend_after, deadline)
            found = await self._wait_receipt(hashes, nonce, until)
            if found is not None:
                return found, nonce
            if trio.current_time() >= deadline:
                raise TransactionTimeout(label, nonce, tuple(hashes), settings.mine_timeout)
            await self._replay_quietly()  # a gap below us would hold this one back forever
            try:
                current: Fees | None = await self.current_fees(fresh=True)
            except (RequestNotSent, OutcomeUnknown, RpcError):
                current = None
            fees = bump_fees(fees, current)
            self._resent += 1

    # --- transactions the chain forgot ----------------------------------------------------------

    def _remember(self, tx: PendingTransaction) -> None:
        """``tx`` settled its nonce (mined, or given up on): keep it to replay (bounded)."""
        self._settled[tx.nonce] = tx
        self._settled.move_to_end(tx.nonce)
        while len(self._settled) > self.settings.remember_sent:
            self._settled.popitem(last=False)

    async def replay_forgotten(self) -> tuple[int, ...]:
        """Send again what the chain forgot: the nonces below the next fresh one that the node
        neither has mined nor holds in its pool, and that no transaction of ours is sending now.
        The remembered signed transaction of a nonce goes out again unchanged; a nonce with
        nothing remembered (given back by a send that failed, or remembered no longer) is closed
        with an empty transfer to ourselves.
        Returns the nonces sent. Raises RequestNotSent / OutcomeUnknown when the node cannot be
        asked (nothing is lost: the next check does it)."""
        async with self._replay_lock:
            self._replay_checked_at = trio.current_time()
            top = self.nonces.next_nonce
            if top is None:
                return ()
            chain_next = await self._chain_nonce("pending")  # mined, or waiting in its pool
            gap = [n for n in range(chain_next, top) if n not in self.nonces.in_flight]
            if not gap:
                return ()
            sent: list[int] = []
            for nonce in gap:
                if await self._send_forgotten(nonce):
                    sent.append(nonce)
            return tuple(sent)

    async def _send_forgotten(self, nonce: int) -> bool:
        """Send the remembered transaction of ``nonce`` again, or close the nonce with an empty
        transfer when nothing is remembered for it (True: the node has it now)."""
        if nonce in self.nonces.in_flight:
            return False  # a transaction of ours took it meanwhile: it sends it itself
        remembered = self._settled.get(nonce)
        filler = remembered is None
        taken = filler and self.nonces.take_free(nonce)  # a given-back nonce is not handed out
        try:
            tx = remembered or await self._filler(nonce)
        except BaseException:
            if taken:
                self.nonces.release(nonce)
            raise
        try:
            await self._rpc.request("eth_sendRawTransaction", [tx.raw])
        except RpcError as exc:
            if not _is(exc, *ALREADY_KNOWN):
                if taken:
                    self.nonces.release(nonce)
                if not _is(exc, *NONCE_USED):  # else: mined meanwhile, nothing was forgotten
                    log.warning("chain: nonce %d: sending it again was refused: %s", nonce, exc)
                return False
        except OutcomeUnknown:
            pass  # it may be in: remembered below, so the next check sends it again if not
        except BaseException:
            if taken:
                self.nonces.release(nonce)
            raise
        if filler:
            if taken:
                self.nonces.settle(nonce)
            self._remember(tx)
            self._filled += 1
        else:
            self._replayed += 1
        log.warning(
            "chain: nonce %d was forgotten by the chain (reorganisation or node restart): %s",
            nonce,
            "closed by an empty transfer" if filler else f"{tx.label or 'transaction'} sent again",
        )
        return True

    async def _replay_quietly(self) -> None:
        """:meth:`replay_forgotten`, at most once per quarter of ``resend_after`` across every
        waiting transaction, its failures logged (the next resend checks again)."""
        if trio.current_time() < self._replay_checked_at + self.settings.resend_after / 4:
            return
        try:
            await self.replay_forgotten()
        except (RequestNotSent, OutcomeUnknown) as exc:
            log.debug("chain: cannot check for forgotten nonces now: %s", exc)

    async def _filler(self, nonce: int) -> PendingTransaction:
        """An empty transfer to ourselves under ``nonce``, signed."""
        fees = await self.current_fees(fresh=True)
        raw, tx_hash = self._sign(self.address, b"", nonce, FILLER_GAS, fees, await self.chain_id())
        return PendingTransaction(
            nonce=nonce, tx_hash=tx_hash, raw=raw, label="filler", fees=fees, gas=FILLER_GAS
        )

    # --- receipts -------------------------------------------------------------------------------

    async def _find_receipt(self, hashes: list[str], nonce: int) -> Receipt | None:
        if not hashes:
            return None
        try:
            answers = await self._rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        except (RequestNotSent, OutcomeUnknown):
            return None
        for answer in answers:
            if isinstance(answer, dict):
                return _receipt(answer, nonce)
        return None

    def new_head(self) -> None:
        """A new block is in (the chain adapter's ``newHeads`` subscription): receipts are looked
        for now instead of at the next poll."""
        self._head.set()
        self._head = trio.Event()
        self._watch_wake.set()

    async def watch_receipts(self) -> None:
        """Look for the receipts of every transaction in flight, all in one batched request per
        round: as soon as a transaction is sent, on every new head, and at polls backing off to
        ``receipt_poll_max`` while nothing turns up. Run it as a background task of the sender's
        owner; while it runs, waiters make no requests of their own (so a burst of transactions
        costs one request per block, not one per transaction per poll)."""
        if self._watcher_running:
            raise RuntimeError("watch_receipts is already running for this sender")
        self._watcher_running = True
        settings = self.settings
        delay = settings.receipt_poll_min
        try:
            while True:
                if not self._watched:
                    await self._watch_wake.wait()
                self._watch_wake = trio.Event()
                fresh, self._watch_fresh = self._watch_fresh, False
                watched = list(self._watched.items())
                try:
                    answers = await self._rpc.batch(
                        [("eth_getTransactionReceipt", [tx_hash]) for tx_hash, _ in watched]
                    )
                except ChainError:  # the node cannot answer now: the next round asks again
                    answers = []
                found = False
                for (_, watch), answer in zip(watched, answers, strict=False):
                    if isinstance(answer, dict) and watch.receipt is None:
                        try:
                            receipt = _receipt(answer, watch.nonce)
                        except ChainValueError as exc:  # asked again next round
                            log.warning("chain: a receipt that does not decode: %s", exc)
                            continue
                        watch.settle(receipt)
                        self._unwatch(watch)
                        found = True
                delay = settings.receipt_poll_min if found or fresh else delay
                with trio.move_on_after(delay):
                    await self._watch_wake.wait()
                delay = min(delay * 1.5, settings.receipt_poll_max)
        finally:
            self._watcher_running = False
            for watch in list(self._watched.values()):
                watch.wake()  # they poll on their own again

    def _unwatch(self, watch: _Watch) -> None:
        for tx_hash in watch.hashes:
            if self._watched.get(tx_hash) is watch:
                del self._watched[tx_hash]

    async def _wait_receipt(self, hashes: list[str], nonce: int, until: float) -> Receipt | None:
        """The receipt of any of ``hashes`` (attempts under one nonce), or None at ``until``:
        from :meth:`watch_receipts` while it runs, else by polling for this transaction alone."""
        delay = self.settings.receipt_poll_min
        while True:
            if self._watcher_running:
                watch = _Watch(tuple(hashes), nonce)
                for tx_hash in hashes:
                    self._watched[tx_hash] = watch
                self._watch_fresh = True
                self._watch_wake.set()
                try:
                    with trio.move_on_at(until):
                        await watch.woken.wait()
                finally:
                    self._unwatch(watch)
                if watch.receipt is not None or trio.current_time() >= until:
                    return watch.receipt
                continue  # the watcher stopped: poll alone
            head = self._head
            found = await self._find_receipt(hashes, nonce)
            if found is not None:
                return found
            now = trio.current_time()
            if now >= until:
                return None
            with trio.move_on_after(min(delay, until - now)):
                await head.wait()
            delay = min(delay * 1.5, self.settings.receipt_poll_max)

    async def _explain_revert(
        self, to: str, data: bytes, gas: int, receipt: Receipt
    ) -> ContractError:
        """Why a mined transaction reverted: out of gas, or the error a replay raises (at the
        state before its block, then after it)."""
        if receipt.gas_used >= gas:
            return ContractError("OutOfGas", (gas,), tx_hash=receipt.tx_hash)
        for block in (receipt.block_number - 1, receipt.block_number):
            try:
                await self._rpc.request("eth_call", [self._call(to, data, gas), hex(max(block, 0))])
            except ContractError as error:
                error.tx_hash = receipt.tx_hash
                return error
            except (RequestNotSent, OutcomeUnknown, RpcError):
                break
        return ContractError("", (), tx_hash=receipt.tx_hash)


def _outcome(error: BaseException) -> str:
    """The outcome of a transaction that raised ``error``, as counted in its statistics."""
    if isinstance(error, ContractError):
        return "reverted" if error.tx_hash else "refused"
    if isinstance(error, FeeModeUnsupported | GasLimitTooLow):
        return "refused"  # by our own settings, before anything was sent
    if isinstance(error, RequestNotSent):
        return "not_sent"
    if isinstance(error, OutcomeUnknown):
        return "unknown"
    if isinstance(error, RpcError):
        return "rpc_error"
    if isinstance(error, trio.Cancelled):
        return "cancelled"
    return "error"


class _Watch:
    """One transaction's attempts (hashes under one nonce) waiting for a receipt."""

    __slots__ = ("hashes", "nonce", "receipt", "woken")

    def __init__(self, hashes: tuple[str, ...], nonce: int) -> None:
        self.hashes = hashes
        self.nonce = nonce
        self.receipt: Receipt | None = None
        self.woken = trio.Event()

    def settle(self, receipt: Receipt) -> None:
        self.receipt = receipt
        self.woken.set()

    def wake(self) -> None:
        self.woken.set()


def _receipt(raw: Mapping[str, Any], nonce: int) -> Receipt:
    """A receipt from ``eth_getTransactionReceipt``'s answer; ChainValueError when a field is
    missing or not what the JSON-RPC says it is."""
    tx_hash = raw.get("transactionHash")
    if not isinstance(tx_hash, str) or not tx_hash.startswith("0x"):
        raise ChainValueError(f"a receipt's transactionHash: got {str(tx_hash)[:80]!r}")
    return Receipt(
        tx_hash=tx_hash,
        block_number=quantity(raw.get("blockNumber"), "a receipt's blockNumber"),
        status=quantity(raw.get("status", "0x1"), "a receipt's status") == 1,
        gas_used=quantity(raw.get("gasUsed"), "a receipt's gasUsed"),
        nonce=nonce,
        logs=tuple(log_list(raw.get("logs"), "a receipt's logs")),
    )
