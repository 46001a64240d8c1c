"""ChainActor (``"chain"``): the supervisor's only door to the meta-scheduler.

What it does in the background, for as long as it runs:

- **Listens.** One WebSocket with two subscriptions: ``newHeads`` and the MetaScheduler's logs of
  the three claim events. Claim logs for this provider become
  :class:`~actors.grid.ClaimedJob` / :class:`~actors.grid.ClaimedCancel` /
  :class:`~actors.grid.ClaimedTopUp` told to ``"jobs"`` (deduplicated by transaction hash and log
  index, delivered in order, retried until ``"jobs"`` takes them).
- **Claims, event-driven.** Which log says "work is queued for you"? None that we can attribute
  cheaply: ``metaSchedule`` emits ``JobTransitionEvent`` (no provider in it) and a cancel or top-up
  request emits nothing at all. So the trigger is **every new head**: each one wakes the claimer,
  which reads the three queues in one batched round trip (``getClaimableJobQueueSize``,
  ``hasCancellingJob``, ``hasTopUpJob``) and claims what is there. Wakes coalesce, so a burst of
  blocks costs one read per claim round. The claimable queue's length lets the claimer pipeline up
  to ``max_claims_in_flight`` ``claimNextJob`` transactions at once (distinct nonces from the
  nonce manager); it keeps going while the queues are not empty. A claim's own receipt carries its
  event, so the job reaches ``"jobs"`` without waiting for the log.
- **Polls as a fallback.** Every ``poll_interval`` seconds the claimer is woken anyway; without a
  subscription the poller also reads missed claim logs with ``eth_getLogs`` over HTTP.
- **Keeps a cursor.** The last block whose claim logs are known to be handled is kept in the store
  (namespace ``"chain"``, key ``"cursor"``), never past a claim not yet delivered. After each
  (re)connection the logs from the cursor to the head are read back (``eth_getLogs``); a head
  behind the cursor (a reorganisation, a node restarted from an older state) moves it back.
- **Replays what the chain forgot.** After each (re)connection the wallet's nonces are checked
  against the node (:meth:`~actors.chain.transactions.TransactionSender.replay_forgotten`): a
  transaction the node no longer has is sent again, so the reports after it are not held back.
- **Watches the subscription.** No head for ``head_timeout`` seconds: the socket is probed with
  ``eth_blockNumber``; if the chain moved on (or the probe fails) the subscription is dead and is
  rebuilt. Reconnects back off (:class:`runtime.policy.Backoff`).
- **Checks** ``enableRequestNewJob()`` every ``enable_check_interval`` seconds: ``false`` is logged
  and shown in its :class:`ChainStatistics`, never a crash. ``false`` is how
  the grid retires a contract: new jobs are no longer claimed (an error names the setting to
  change, ``chain.metaschedulerAddress``), while the jobs already here are still reported,
  cancelled and topped up.

Asks (see :mod:`actors.chain.messages`): ``StartClaiming``/``StopClaiming`` are handled one at
a time in the mailbox loop (their order matters); the chain reads and transactions
(``SetJobStatus``, ``RefuseJob``, ``Register``, ``GetJob``, ``GetProvider``, ``ProviderApproval``)
are served **concurrently** by the runtime (:mod:`runtime.actor`; at most
``ChainSettings.max_asks_in_flight`` at once), each in its own task of the actor, so status
reports do not queue behind one another's receipts (several transactions are in flight at once,
each with its own nonce). They still wait
behind a ``StopClaiming`` in progress, which waits for the claim round in flight. Their errors
are raised to the asker as the adapter's own :class:`~actors.chain.revert.ChainError` (the actor's
``answered_errors``): the transport's (:mod:`actors.chain.rpc`), and :class:`ChainValueError` for
a value that cannot be encoded into the request or decoded from the answer (a malformed job id),
by the actor's one table :data:`ASK_ERRORS`; a bug crashes the actor as usual.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

import msgspec
import trio

from actors.chain.abi import Claimed, quantity
from actors.chain.client import MetaSchedulerClient
from actors.chain.errors import ChainError, ChainValueError
from actors.chain.messages import (
    Applied,
    ChainMessage,
    ChainReply,
    ClaimingState,
    GetJob,
    GetProvider,
    ProviderApproval,
    RefuseJob,
    Register,
    Rejected,
    SetJobStatus,
    StartClaiming,
    StopClaiming,
    TransactionOutcome,
)
from actors.chain.revert import ContractError
from actors.chain.rpc import HttpRpc, Subscription, SubscriptionLost, WsRpc, open_ws_rpc
from actors.chain.transactions import (
    PendingLog,
    Receipt,
    SenderSettings,
    SenderStatistics,
    TransactionSender,
)
from runtime.actor import Actor, ActorStatistics
from runtime.errors import ActorSystemError, ErrorTable, map_exceptions
from runtime.policy import Backoff
from runtime.statistics import Outcomes, OutcomeTally
from runtime.store import Store, StoreError

__all__ = [
    "ASK_ERRORS",
    "CURSOR_KEY",
    "CURSOR_NAMESPACE",
    "ChainActor",
    "ChainCursor",
    "ChainSettings",
    "ChainStatistics",
    "ChainValueError",
]

log = logging.getLogger(__name__)

CURSOR_NAMESPACE = "chain"
CURSOR_KEY = "cursor"
SEEN_LOGS = 50_000
RETIRED_REMINDER = 3600.0
"""Seconds between the error lines that say the contract is retired, for as long as it is."""


class ChainCursor(msgspec.Struct, frozen=True):
    """The last block whose claim logs have been handled (delivered to ``"jobs"``)."""

    block: int


class ChainSettings(msgspec.Struct, frozen=True):
    """Timings of the ChainActor (seconds) and its claim pipeline."""

    poll_interval: float = 2.0
    head_timeout: float = 30.0
    enable_check_interval: float = 30.0
    cursor_save_interval: float = 1.0
    max_claims_in_flight: int = 16
    max_asks_in_flight: int = 256
    """Chain reads and transactions served at once; beyond that the mailbox applies backpressure."""
    log_range: int = 2_000
    request_timeout: float = 10.0
    reconnect: Backoff = Backoff(initial=0.2, maximum=15.0)
    sender: SenderSettings = SenderSettings()


_CONCURRENT = (SetJobStatus, RefuseJob, Register, GetJob, GetProvider, ProviderApproval)


class ChainStatistics(ActorStatistics, frozen=True, kw_only=True):
    """The chain actor now: its subscription, cursor, claims and transactions."""

    provider: str
    """The wallet's lowercase address."""
    connection: str
    """The listener in words: ``subscribed to <url>``, ``connecting to <url>``,
    ``down (<reason>); polling``, ``polling (no WebSocket configured)``."""
    subscribed: bool
    """The WebSocket subscription to heads and claim logs is up."""
    head_block: int | None
    cursor_block: int | None
    """The last block whose claim logs are handled (None before the first catch-up)."""
    saved_cursor_block: int | None
    claiming: bool
    """New jobs are claimed now: claiming was asked for (``StartClaiming``) and the contract is
    not retired (``enableRequestNewJob()`` is not false)."""
    enable_request_new_job: bool | None
    """The meta-scheduler's ``enableRequestNewJob()`` when last read (None: not read yet)."""
    claims_sent: int
    claims_delivered: int
    """Claims ``"jobs"`` has taken (stored)."""
    claims_undelivered: int
    claims: tuple[Outcomes, ...]
    """Claim transactions by queue (``job``, ``cancelling``, ``top_up``) and outcome
    (``claimed``, ``empty``: the queue was empty, ``failed``)."""
    transactions: SenderStatistics

    def facts(self) -> dict[str, str]:
        sender = self.transactions
        enabled = self.enable_request_new_job
        return {
            "provider": self.provider,
            "connection": self.connection,
            "cursor_block": str(self.cursor_block) if self.cursor_block is not None else "-",
            "head_block": str(self.head_block) if self.head_block is not None else "-",
            "claiming": "on" if self.claiming else "off",
            "enableRequestNewJob": "unknown" if enabled is None else str(enabled).lower(),
            "pending_transactions": str(sender.in_flight),
            "transactions": f"sent {sender.sent}, resent {sender.resent}, mined {sender.mined}, "
            f"reverted {sender.reverted}, replayed {sender.replayed}, filled {sender.filled}",
            "claims": f"sent {self.claims_sent}, delivered {self.claims_delivered}, "
            f"undelivered {self.claims_undelivered}",
        }


ASK_ERRORS: Final[ErrorTable] = {ValueError: ChainValueError}
"""What an ask raises besides the adapter's own errors: the client's ``ValueError`` (the ABI
encoders' and :func:`actors.grid.job_id`'s) becomes ours, so askers catch ``ChainError`` alone."""


class ChainActor(Actor[ChainMessage, ChainReply]):
    """The chain adapter as an actor. Build it from explicit values; the caller reads config."""

    # a broken connection, a refused transaction, a malformed job id: all ChainError
    answered_errors: ClassVar[tuple[type[Exception], ...]] = (ChainError,)

    def __init__(
        self,
        *,
        rpc_url: str,
        ws_url: str | None,
        meta_scheduler: str,
        private_key: bytes,
        store: Store | None,
        settings: ChainSettings | None = None,
        pending_log: PendingLog | None = None,
        jobs_name: str = "jobs",
        name: str = "chain",
    ) -> None:
        self.settings = settings or ChainSettings()
        super().__init__(name, concurrency=self.settings.max_asks_in_flight)
        self._rpc = HttpRpc(rpc_url, timeout=self.settings.request_timeout)
        self._sender = TransactionSender(
            self._rpc, private_key, settings=self.settings.sender, pending_log=pending_log
        )
        self.client = MetaSchedulerClient(self._rpc, self._sender, meta_scheduler)
        self._ws_url = ws_url
        self._store = store
        self._jobs_name = jobs_name
        self._rng = random.Random()
        # state shown by statistics()
        self._connection = "starting"
        self._cursor: int | None = None
        self._saved_cursor: int | None = None
        self._head: int | None = None
        self._last_head_at = 0.0
        self._claiming = False
        self._enabled: bool | None = None
        self._retired_logged_at = -1.0
        self._claims_sent = 0
        self._delivered = 0
        self._claim_outcomes = OutcomeTally()
        # plumbing
        self._wake = trio.Event()
        self._claim_lock = trio.Lock()
        self._claim_budget = 0
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._outbox: deque[Claimed] = deque()
        self._outbox_changed = trio.Event()

    @property
    def provider(self) -> str:
        """This provider's (the wallet's) lowercase address."""
        return self._sender.address

    # --- the actor's life ----------------------------------------------------------------------

    async def started(self) -> None:
        if self._store is not None:
            saved = await self._store.get(CURSOR_NAMESPACE, CURSOR_KEY, ChainCursor)
            if saved is not None:
                self._cursor = self._saved_cursor = saved.block
        self.spawn(self._own_http)
        self.spawn(self._sender.watch_receipts)  # one batched receipt request per block
        self.spawn(self._deliver)
        self.spawn(self._claimer)
        self.spawn(self._poller)
        self.spawn(self._save_cursor_periodically)
        if self._ws_url:
            self.spawn(self._subscriber, self._ws_url)
        else:
            self._connection = "polling (no WebSocket configured)"

    async def stopping(self) -> None:
        self._claiming = False
        await self._save_cursor()

    def statistics(self) -> ChainStatistics:
        return ChainStatistics(
            **self.common_statistics(),
            provider=self.provider,
            connection=self._connection,
            subscribed=self._subscribed(),
            head_block=self._head,
            cursor_block=self._cursor,
            saved_cursor_block=self._saved_cursor,
            claiming=self._claiming and not self.retired,
            enable_request_new_job=self._enabled,
            claims_sent=self._claims_sent,
            claims_delivered=self._delivered,
            claims_undelivered=len(self._outbox),
            claims=self._claim_outcomes.snapshot(),
            transactions=self._sender.statistics(),
        )

    def _subscribed(self) -> bool:
        return self._connection.startswith("subscribed")

    # --- asks ----------------------------------------------------------------------------------

    def concurrent(self, message: ChainMessage) -> bool:
        """Chain reads and transactions are served concurrently (see the module docstring);
        ``StartClaiming``/``StopClaiming`` are handled in order, in the mailbox loop."""
        return isinstance(message, _CONCURRENT)

    async def handle(self, message: ChainMessage) -> ChainReply:
        if isinstance(message, StartClaiming):
            if not self._claiming:
                log.info("chain: claiming started for provider %s", self.provider)
            self._claiming = True
            self._wake.set()
            return ClaimingState(claiming=True)
        if isinstance(message, StopClaiming):
            self._claiming = False
            async with self._claim_lock:  # wait for the round in flight to end
                pass
            log.info("chain: claiming stopped")
            return ClaimingState(claiming=False)
        with map_exceptions(ASK_ERRORS, type(message).__name__):
            return await self._answer(message)

    async def _answer(self, message: ChainMessage) -> ChainReply:
        client = self.client
        if isinstance(message, SetJobStatus):
            return await self._outcome(
                client.set_job_status(
                    message.job_id,
                    message.status,
                    message.duration_minutes,
                    message.last_error,
                    message.exit_code,
                )
            )
        if isinstance(message, RefuseJob):
            return await self._outcome(client.refuse_job(message.job_id))
        if isinstance(message, Register):
            return await self._outcome(
                client.register(message.hardware, message.prices, message.labels)
            )
        if isinstance(message, GetJob):
            return await client.get_job(message.job_id)
        if isinstance(message, GetProvider):
            return await client.get_provider()
        if isinstance(message, ProviderApproval):
            return await client.approval()
        raise TypeError(f"ChainActor cannot handle {type(message).__name__}")

    async def _outcome(self, transaction: Awaitable[Receipt]) -> TransactionOutcome:
        try:
            receipt = await transaction
        except ContractError as error:
            if error.name == "SameStatusError":
                return Applied(tx_hash=error.tx_hash, already=True)
            return Rejected(error_name=error.name, args=error.error_args, tx_hash=error.tx_hash)
        return Applied(tx_hash=receipt.tx_hash, block_number=receipt.block_number)

    # --- background: HTTP client owner, delivery ---------------------------------------------

    async def _own_http(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await self._rpc.aclose()

    def _accept_logs(self, logs: Sequence[Mapping[str, Any]]) -> int:
        """Queue the unseen claims for us among ``logs``; how many were queued."""
        queued = 0
        for raw in logs:
            key = (str(raw.get("transactionHash")), str(raw.get("logIndex")))
            if key in self._seen or raw.get("removed"):
                continue
            self._seen[key] = None
            if len(self._seen) > SEEN_LOGS:
                self._seen.popitem(last=False)
            try:
                claims = self.client.claims_in([dict(raw)])
            except ChainValueError as exc:
                log.warning("chain: skipped a malformed claim log %s: %s", key, exc)
                continue
            for claim in claims:
                log.info(
                    "chain: %s %s (block %d)",
                    type(claim).__name__,
                    claim.job_id,
                    claim.block_number,
                )
                self._outbox.append(claim)
                queued += 1
        if queued:
            self._outbox_changed.set()
        return queued

    async def _deliver(self) -> None:
        """Tell each queued claim to ``"jobs"``, in order, until it takes it."""
        jobs = self.ref(self._jobs_name)
        attempt = 0
        while True:
            if not self._outbox:
                self._outbox_changed = trio.Event()
                await self._outbox_changed.wait()
                continue
            claim = self._outbox[0]
            try:
                # ask, not tell: "jobs" answers once the claim is in the checkpoint store, and
                # only then may the cursor move past its block.
                await jobs.ask(claim, timeout=self.settings.request_timeout)
            except ActorSystemError as exc:
                attempt += 1
                if attempt == 1 or attempt % 20 == 0:
                    log.warning(
                        "chain: cannot hand %s to %r yet: %s", claim.job_id, self._jobs_name, exc
                    )
                await trio.sleep(self.settings.reconnect.delay(attempt, self._rng))
                continue
            attempt = 0
            self._outbox.popleft()
            self._delivered += 1

    # --- background: cursor --------------------------------------------------------------------

    def _advance_cursor(self, block: int) -> None:
        if self._cursor is None or block > self._cursor:
            self._cursor = block

    def _safe_cursor(self) -> int | None:
        """The cursor, held back before the oldest claim not yet delivered."""
        if self._cursor is None:
            return None
        if self._outbox:
            return min(self._cursor, min(c.block_number for c in self._outbox) - 1)
        return self._cursor

    async def _save_cursor(self) -> None:
        block = self._safe_cursor()
        if self._store is None or block is None or block == self._saved_cursor:
            return
        try:
            await self._store.put(CURSOR_NAMESPACE, CURSOR_KEY, ChainCursor(block=block))
        except StoreError as exc:
            log.warning("chain: cannot save the cursor: %s", exc)
            return
        self._saved_cursor = block

    async def _save_cursor_periodically(self) -> None:
        while True:
            await trio.sleep(self.settings.cursor_save_interval)
            await self._save_cursor()

    async def _catch_up(self) -> None:
        """Read the claim logs from the cursor to the current head (``eth_getLogs`` over HTTP)."""
        latest = await self.client.block_number()
        if self._cursor is None:  # first start ever: nothing of ours can be older than now
            self._advance_cursor(latest)
            return
        if latest < self._cursor:  # the blocks after ``latest`` are gone: read on from there
            log.warning(
                "chain: the chain is back at block %d, behind the cursor %d (reorganisation or "
                "node restarted from an older state)",
                latest,
                self._cursor,
            )
            self._cursor = latest
        start = self._safe_cursor()
        start = (start if start is not None else latest) + 1
        while start <= latest:
            end = min(start + self.settings.log_range - 1, latest)
            queued = self._accept_logs(await self.client.claim_logs(start, end))
            if queued:
                log.info("chain: caught up %d claim(s) from blocks %d-%d", queued, start, end)
            self._advance_cursor(end)
            start = end + 1

    # --- background: subscription --------------------------------------------------------------

    async def _subscriber(self, url: str) -> None:
        attempt = 0
        while True:
            self._connection = f"connecting to {url}"
            try:
                await self._subscribe_once(url)
            except ChainError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                reason = "closed"
            attempt = 1 if self._subscribed() else attempt + 1
            self._connection = f"down ({reason}); polling"
            log.warning("chain: subscription lost (%s); reconnecting", reason)
            await trio.sleep(self.settings.reconnect.delay(attempt, self._rng))

    async def _subscribe_once(self, url: str) -> None:
        async with open_ws_rpc(url, connect_timeout=self.settings.request_timeout) as ws:
            ws.timeout = self.settings.request_timeout
            heads = await ws.subscribe("newHeads")
            logs = await ws.subscribe("logs", self.client.claim_filter())
            self._last_head_at = trio.current_time()
            await self._catch_up()
            await self._sender.replay_forgotten()  # a node back from an older state forgot some
            self._connection = f"subscribed to {url}"
            log.info("chain: subscribed to heads and claim logs at %s", url)
            lost: list[ChainError] = []
            async with trio.open_nursery() as nursery:

                async def guard(task: Callable[[], Awaitable[None]]) -> None:
                    try:
                        await task()
                    except ChainError as exc:
                        lost.append(exc)
                        nursery.cancel_scope.cancel()

                nursery.start_soon(guard, lambda: self._consume_heads(heads))
                nursery.start_soon(guard, lambda: self._consume_logs(logs))
                nursery.start_soon(guard, lambda: self._watch_heads(ws))
            if lost:
                raise lost[0]

    async def _consume_heads(self, heads: Subscription) -> None:
        async for head in heads:
            number = quantity(head.get("number", "0x0"), "a new head's number")
            self._head = number
            self._last_head_at = trio.current_time()
            self._sender.new_head()  # receipt waiters look now, not at their next poll
            # logs of a block arrive with it: a one-block margin keeps the cursor behind them
            self._advance_cursor(number - 1)
            self._wake.set()

    async def _consume_logs(self, logs: Subscription) -> None:
        async for raw in logs:
            if isinstance(raw, dict):
                self._accept_logs([raw])

    async def _watch_heads(self, ws: WsRpc) -> None:
        """A subscription that stopped delivering heads while the chain moves on is dead."""
        timeout = self.settings.head_timeout
        while True:
            await trio.sleep_until(self._last_head_at + timeout)
            if trio.current_time() < self._last_head_at + timeout:
                continue
            number = quantity(await ws.request("eth_blockNumber"), "eth_blockNumber")
            if self._head is not None and number > self._head:
                raise SubscriptionLost(f"no new head for {timeout:g} s while the chain moved on")
            if self._head is None:
                self._head = number
            self._last_head_at = trio.current_time()  # the chain is idle: all is well

    # --- background: claims --------------------------------------------------------------------

    async def _poller(self) -> None:
        next_enable_check = trio.current_time()
        while True:
            now = trio.current_time()
            if now >= next_enable_check:
                next_enable_check = now + self.settings.enable_check_interval
                await self._check_enabled()
            if not self._subscribed():
                try:
                    await self._catch_up()
                except ChainError as exc:
                    log.debug("chain: catch-up by polling failed: %s", exc)
            self._wake.set()
            await trio.sleep(self.settings.poll_interval)

    async def _check_enabled(self) -> None:
        """Read ``enableRequestNewJob()``; ``false`` (the grid retired this contract) stops the
        claims of new jobs and is logged as an error, again every ``RETIRED_REMINDER`` s."""
        try:
            enabled = await self.client.enable_request_new_job()
        except ChainError as exc:
            log.debug("chain: enableRequestNewJob() failed: %s", exc)
            return
        now = trio.current_time()
        if not enabled and (self._enabled is not False or now >= self._retired_logged_at):
            self._retired_logged_at = now + RETIRED_REMINDER
            log.error(
                "chain: enableRequestNewJob() is false: the grid has retired the meta-scheduler "
                "%s, so no new job is claimed (the jobs already here are still reported, "
                "cancelled and topped up). Set chain.metaschedulerAddress to the grid's current "
                "meta-scheduler contract and restart",
                self.client.meta_scheduler,
            )
        elif enabled and self._enabled is False:
            log.info("chain: enableRequestNewJob() is true again: claiming new jobs again")
        self._enabled = enabled

    @property
    def retired(self) -> bool:
        """The meta-scheduler says ``enableRequestNewJob() == false``: no new job is claimed."""
        return self._enabled is False

    async def _claimer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if not self._claiming:
                continue
            async with self._claim_lock:
                try:
                    await self._claim_round()
                except ChainError as exc:
                    self.note_error(exc)
                    log.warning("chain: claim round failed: %s", exc)

    async def _claim_round(self) -> None:
        """Claim while this provider's queues hold work.

        One batched read gives the claimable queue's length: that many ``claimNextJob`` are
        budgeted, shared by up to ``max_claims_in_flight`` workers that each claim one after
        another (so claims overlap without bursts of simultaneous estimates). Then read again.
        A retired contract (:attr:`retired`) gets no ``claimNextJob``: only the cancellations
        and top-ups of the jobs already here are claimed.
        """
        if self._enabled is None:  # not read yet: know it before the first claim
            await self._check_enabled()
        while self._claiming:
            queues = await self.client.queues()
            claimable = 0 if self.retired else queues.claimable
            if not (claimable or queues.cancelling or queues.top_up):
                return
            self._claim_budget = claimable
            async with trio.open_nursery() as nursery:
                if queues.cancelling:
                    nursery.start_soon(self._claim_one, "cancelling")
                if queues.top_up:
                    nursery.start_soon(self._claim_one, "top_up")
                for _ in range(min(claimable, self.settings.max_claims_in_flight)):
                    nursery.start_soon(self._claim_worker)

    async def _claim_worker(self) -> None:
        while self._claiming and self._claim_budget > 0 and not self.retired:
            self._claim_budget -= 1
            if not await self._claim_one("job"):
                return

    async def _claim_one(self, queue: str) -> bool:
        """One claim; False when it was refused or failed (the queue is empty, or trouble)."""
        try:
            outcome = await self.client.claim(queue)
        except ContractError as error:  # NoJob: someone (a pipelined claim) emptied the queue
            log.debug("chain: claim %s refused: %s", queue, error)
            self._claim_outcomes.add(queue, "empty")
            return False
        except ChainError as exc:  # transport trouble, or the node refused the transaction
            self.note_error(exc)
            log.warning("chain: claim %s failed: %s", queue, exc)
            self._claim_outcomes.add(queue, "failed")
            return False
        self._claims_sent += 1
        self._claim_outcomes.add(queue, "claimed")
        self._accept_logs(outcome.receipt.logs)
        return True
