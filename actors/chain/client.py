"""The meta-scheduler as this provider sees it: typed reads and transactions over JSON-RPC.

:class:`MetaSchedulerClient` is built from the MetaScheduler's address; the three sub-contracts
(``jobs()``, ``providerJobQueues()``, ``providerManager()``) are discovered on first use. Reads are
``eth_call`` at the latest block, several in one HTTP batch where they go together
(:meth:`MetaSchedulerClient.queues`). Transactions go through the shared
:class:`~actors.chain.transactions.TransactionSender` (simulation, nonce, fees, resend, receipt);
a claim returns the claims decoded from its own receipt, so the caller need not wait for a log.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import msgspec

from actors.chain.abi import (
    CLAIM_EVENTS,
    Claimed,
    decode_claim,
    grid_abi,
    hardware_to_abi,
    job_from_abi,
    job_id_bytes,
    labels_to_abi,
    log_list,
    prices_to_abi,
    provider_from_abi,
    quantity,
)
from actors.chain.revert import ContractError
from actors.chain.rpc import HttpRpc
from actors.chain.transactions import Receipt, TransactionSender
from actors.grid import Hardware, JobStatus, Label, OnChainJob, Prices, Provider, address

__all__ = [
    "Approval",
    "ClaimOutcome",
    "GridAddresses",
    "MetaSchedulerClient",
    "QueueState",
]


class Approval(enum.Enum):
    """Where this provider stands with the provider manager."""

    WAITING = "waiting"  # registered (or re-registered), an admin has not approved it yet
    APPROVED = "approved"  # valid for scheduling
    BANNED = "banned"
    UNKNOWN = "unknown"  # never registered, or removed


class GridAddresses(msgspec.Struct, frozen=True):
    """The MetaScheduler and the sub-contracts it names (lowercase addresses)."""

    meta_scheduler: str
    jobs: str
    provider_job_queues: str
    provider_manager: str


class QueueState(msgspec.Struct, frozen=True):
    """This provider's three queues (``claimable`` is the queue length, stale entries included)."""

    claimable: int
    cancelling: bool
    top_up: bool

    @property
    def any(self) -> bool:
        return self.claimable > 0 or self.cancelling or self.top_up


class ClaimOutcome(msgspec.Struct, frozen=True):
    """A mined claim and the claims its receipt holds (none if only stale entries were popped)."""

    receipt: Receipt
    claims: tuple[Claimed, ...]


CLAIM_FUNCTIONS = {
    "job": "claimNextJob",
    "cancelling": "claimNextCancellingJob",
    "top_up": "claimNextTopUpJob",
}


class MetaSchedulerClient:
    """Reads and transactions of one provider (the sender's wallet) on one meta-scheduler."""

    def __init__(self, rpc: HttpRpc, sender: TransactionSender, meta_scheduler: str) -> None:
        self.rpc = rpc
        self.sender = sender
        self.meta_scheduler = address(meta_scheduler)
        self.provider = sender.address
        self._addresses: GridAddresses | None = None
        self._abi = grid_abi()

    def __repr__(self) -> str:
        return f"MetaSchedulerClient({self.meta_scheduler}, provider={self.provider})"

    # --- plumbing ----------------------------------------------------------------------------

    def _encode(self, contract: str, fn: str, *args: Any) -> bytes:
        return self._abi.function(contract, fn).encode(*args)

    async def _call(self, contract: str, to: str, fn: str, *args: Any) -> tuple[Any, ...]:
        function = self._abi.function(contract, fn)
        call = {"to": to, "data": "0x" + function.encode(*args).hex()}
        result = await self.rpc.request("eth_call", [call, "latest"])
        return function.decode_result(result)

    async def _calls(self, calls: Sequence[tuple[str, str, str, tuple[Any, ...]]]) -> list[Any]:
        """Several ``eth_call`` in one batch; each entry the decoded outputs (raises the first
        error)."""
        functions = [self._abi.function(c, fn) for c, _, fn, _ in calls]
        requests = [
            ("eth_call", [{"to": to, "data": "0x" + f.encode(*args).hex()}, "latest"])
            for f, (_, to, _, args) in zip(functions, calls, strict=True)
        ]
        results = await self.rpc.batch(requests)
        decoded: list[Any] = []
        for function, result in zip(functions, results, strict=True):
            if isinstance(result, Exception):
                raise result
            decoded.append(function.decode_result(result))
        return decoded

    async def addresses(self) -> GridAddresses:
        """The sub-contract addresses (read once, then cached)."""
        if self._addresses is None:
            ms = self.meta_scheduler
            jobs, queues, manager = await self._calls(
                [
                    ("MetaScheduler", ms, "jobs", ()),
                    ("MetaScheduler", ms, "providerJobQueues", ()),
                    ("MetaScheduler", ms, "providerManager", ()),
                ]
            )
            self._addresses = GridAddresses(
                meta_scheduler=ms,
                jobs=address(str(jobs[0])),
                provider_job_queues=address(str(queues[0])),
                provider_manager=address(str(manager[0])),
            )
        return self._addresses

    # --- reads -------------------------------------------------------------------------------

    async def enable_request_new_job(self) -> bool:
        (enabled,) = await self._call("MetaScheduler", self.meta_scheduler, "enableRequestNewJob")
        return bool(enabled)

    async def queues(self) -> QueueState:
        """This provider's queues in one round trip: the claimable queue's length (the three
        ``has*`` checks' answer for claimable jobs, and how many claims may be pipelined), and
        ``hasCancellingJob`` / ``hasTopUpJob``."""
        q = (await self.addresses()).provider_job_queues
        me = self.provider
        size, cancelling, top_up = await self._calls(
            [
                ("ProviderJobQueues", q, "getClaimableJobQueueSize", (me,)),
                ("ProviderJobQueues", q, "hasCancellingJob", (me,)),
                ("ProviderJobQueues", q, "hasTopUpJob", (me,)),
            ]
        )
        return QueueState(
            claimable=int(size[0]), cancelling=bool(cancelling[0]), top_up=bool(top_up[0])
        )

    async def has_next_claimable_job(self) -> bool:
        q = (await self.addresses()).provider_job_queues
        return bool(
            (await self._call("ProviderJobQueues", q, "hasNextClaimableJob", self.provider))[0]
        )

    async def has_cancelling_job(self) -> bool:
        q = (await self.addresses()).provider_job_queues
        return bool(
            (await self._call("ProviderJobQueues", q, "hasCancellingJob", self.provider))[0]
        )

    async def has_top_up_job(self) -> bool:
        q = (await self.addresses()).provider_job_queues
        return bool((await self._call("ProviderJobQueues", q, "hasTopUpJob", self.provider))[0])

    async def get_job(self, job: str) -> OnChainJob | None:
        """``IJobRepository.get``; None for a job the repository does not know (``InvalidJob``)."""
        jobs = (await self.addresses()).jobs
        try:
            (raw,) = await self._call("JobRepository", jobs, "get", job_id_bytes(job))
        except ContractError as error:
            if error.name == "InvalidJob":
                return None
            raise
        return job_from_abi(raw)

    async def get_provider(self, provider: str | None = None) -> Provider | None:
        """The approved record of ``provider`` (default: this one); None when it has none."""
        manager = (await self.addresses()).provider_manager
        (raw,) = await self._call(
            "ProviderManager", manager, "getProvider", provider or self.provider
        )
        return provider_from_abi(raw)

    async def approval(self) -> Approval:
        """``isBanned``, ``isWaitingForApproval``, ``isValidForScheduling`` in one round trip."""
        manager = (await self.addresses()).provider_manager
        me = self.provider
        banned, waiting, valid = await self._calls(
            [
                ("ProviderManager", manager, "isBanned", (me,)),
                ("ProviderManager", manager, "isWaitingForApproval", (me,)),
                ("ProviderManager", manager, "isValidForScheduling", (me,)),
            ]
        )
        if banned[0]:
            return Approval.BANNED
        if waiting[0]:
            return Approval.WAITING
        if valid[0]:
            return Approval.APPROVED
        return Approval.UNKNOWN

    async def is_banned(self) -> bool:
        return await self.approval() is Approval.BANNED

    async def is_waiting_for_approval(self) -> bool:
        return await self.approval() is Approval.WAITING

    async def is_valid_for_scheduling(self) -> bool:
        return await self.approval() is Approval.APPROVED

    async def block_number(self) -> int:
        return quantity(await self.rpc.request("eth_blockNumber"), "eth_blockNumber")

    def claim_filter(self) -> dict[str, Any]:
        """The log filter of the three claim events on the MetaScheduler."""
        topics = [self._abi.event("MetaScheduler", name).topic_hex for name in CLAIM_EVENTS]
        return {"address": self.meta_scheduler, "topics": [topics]}

    async def claim_logs(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """``eth_getLogs`` of the claim events in ``[from_block, to_block]`` (all providers)."""
        query = dict(self.claim_filter(), fromBlock=hex(from_block), toBlock=hex(to_block))
        return log_list(await self.rpc.request("eth_getLogs", [query]), "eth_getLogs")

    def claims_in(self, logs: Sequence[dict[str, Any]]) -> list[Claimed]:
        """The claims for this provider among ``logs`` emitted by the MetaScheduler."""
        found: list[Claimed] = []
        for log in logs:
            if str(log.get("address", "")).lower() != self.meta_scheduler or log.get("removed"):
                continue
            claim = decode_claim(log, provider=self.provider)
            if claim is not None:
                found.append(claim)
        return found

    # --- transactions ------------------------------------------------------------------------

    async def _transact(self, contract: str, to: str, fn: str, *args: Any) -> Receipt:
        return await self.sender.transact(to, self._encode(contract, fn, *args), label=fn)

    async def claim(self, queue: str) -> ClaimOutcome:
        """Claim the next entry of ``queue`` (``"job"``, ``"cancelling"`` or ``"top_up"``)."""
        receipt = await self._transact("MetaScheduler", self.meta_scheduler, CLAIM_FUNCTIONS[queue])
        return ClaimOutcome(receipt=receipt, claims=tuple(self.claims_in(receipt.logs)))

    async def claim_next_job(self) -> ClaimOutcome:
        return await self.claim("job")

    async def claim_next_cancelling_job(self) -> ClaimOutcome:
        return await self.claim("cancelling")

    async def claim_next_top_up_job(self) -> ClaimOutcome:
        return await self.claim("top_up")

    async def set_job_status(
        self,
        job: str,
        status: JobStatus,
        duration_minutes: int = 0,
        last_error: str = "",
        exit_code: int = 0,
    ) -> Receipt:
        """``providerSetJobStatus(jobId, status, durationMinute, lastError, exitCode)``."""
        return await self._transact(
            "MetaScheduler",
            self.meta_scheduler,
            "providerSetJobStatus",
            job_id_bytes(job),
            int(status),
            duration_minutes,
            last_error,
            exit_code,
        )

    async def refuse_job(self, job: str) -> Receipt:
        return await self._transact(
            "MetaScheduler", self.meta_scheduler, "refuseJob", job_id_bytes(job)
        )

    async def register(
        self, hardware: Hardware, prices: Prices, labels: Sequence[Label]
    ) -> Receipt:
        """``IProviderManager.register(hardware, prices, labels)`` (labels as given: normalise
        them first with :func:`actors.grid.normalise_labels`)."""
        manager = (await self.addresses()).provider_manager
        return await self._transact(
            "ProviderManager",
            manager,
            "register",
            hardware_to_abi(hardware),
            prices_to_abi(prices),
            labels_to_abi(labels),
        )
