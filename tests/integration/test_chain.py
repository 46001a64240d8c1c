"""The chain adapter and ChainActor on a real anvil with our deployed contracts.

One anvil per module (free port), contracts compiled once (cached under <testbed>/contracts), a
fresh grid per test. The market side (customer, oracle, admin) acts through ``testbed.market`` in a
worker thread, so the actor keeps running on the trio loop meanwhile. The WebSocket tests go
through a small TCP proxy the test can cut, black-hole and restore.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
import trio
import trio.testing
from eth_account import Account

from actors.chain import (
    Applied,
    Approval,
    ChainActor,
    ChainCursor,
    ChainSettings,
    ChainValueError,
    ContractError,
    GetJob,
    GetProvider,
    ProviderApproval,
    RefuseJob,
    Register,
    Rejected,
    SenderSettings,
    SetJobStatus,
    StartClaiming,
    StopClaiming,
)
from actors.chain.abi import grid_abi
from actors.chain.client import MetaSchedulerClient
from actors.chain.rpc import HttpRpc, RequestNotSent, open_ws_rpc
from actors.chain.transactions import (
    DynamicFees,
    MemoryPendingLog,
    PendingTransaction,
    Receipt,
    TransactionSender,
)
from actors.grid import (
    ClaimedCancel,
    ClaimedJob,
    Hardware,
    JobStatus,
    Prices,
    normalise_labels,
)
from runtime.actor import Actor
from runtime.policy import Backoff
from runtime.store import Store, open_store
from runtime.supervisor import ChildSpec, Supervisor
from testbed import market
from testbed.anvil import private_anvil
from testbed.contracts import GridAddresses, compile_contracts, deploy_grid
from testbed.evm import Wallet
from testbed.layout import Layout
from testbed.market import CREDIT, DEFAULT_PRICES, JobDefinition, ProviderHardware
from testbed.node import ensure_node_tools

T = TypeVar("T")

MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()
_ACCOUNTS = [Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(6)]
KEYS = ["0x" + a.key.hex().removeprefix("0x") for a in _ACCOUNTS]
ADDRS = [str(a.address) for a in _ACCOUNTS]
ADMIN, ORACLE, PROVIDER, CUSTOMER = 0, 1, 2, 3
PROVIDER_KEY = bytes.fromhex(KEYS[PROVIDER][2:])
PROVIDER_ADDR = ADDRS[PROVIDER].lower()

HARDWARE = Hardware(
    nodes=2, gpus_per_node=(0, 1), cpus_per_node=(8, 8), mem_per_node=(16000, 16000)
)
PRICES = Prices(
    gpu_per_min=DEFAULT_PRICES.gpu_price_per_min,
    cpu_per_min=DEFAULT_PRICES.cpu_price_per_min,
    mem_per_min=DEFAULT_PRICES.mem_price_per_min,
)
LABELS = normalise_labels({"OS": "Linux", "arch": "amd64"})
SMALL_JOB = JobDefinition(
    gpus=0, mem_per_cpu=1024, cpus_per_task=1, ntasks=1, batch_location_hash="loc1"
)
LOCKED = 100 * CREDIT
FAST = ChainSettings(
    poll_interval=60.0,
    head_timeout=60.0,
    enable_check_interval=60.0,
    cursor_save_interval=0.05,
    reconnect=Backoff(initial=0.05, maximum=0.3),
    request_timeout=2.0,
)


# -------------------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Node:
    rpc_url: str
    port: int


@pytest.fixture(scope="module")
def artifacts() -> Path:
    layout = Layout.from_env()
    return compile_contracts(ensure_node_tools(layout.node), layout.contracts)


@pytest.fixture(scope="module")
def node(artifacts: Path) -> Iterator[Node]:
    with private_anvil(ensure_node_tools(Layout.from_env().node).anvil) as anvil:
        yield Node(rpc_url=anvil.url, port=anvil.port)


@pytest.fixture
def grid(node: Node, artifacts: Path) -> GridAddresses:
    """A fresh grid; the customer holds credits."""
    addresses = deploy_grid(
        node.rpc_url, admin_key=KEYS[ADMIN], metascheduler_addr=ADDRS[ORACLE], artifacts=artifacts
    )
    market.mint_credits(
        node.rpc_url, addresses, admin_key=KEYS[ADMIN], to=ADDRS[CUSTOMER], amount=10**9 * CREDIT
    )
    return addresses


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(tmp_path / "state") as opened:
        yield opened


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rpc(node: Node, method: str, *params: Any) -> Any:
    reply = httpx.post(
        node.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    ).json()
    assert "error" not in reply, reply
    return reply["result"]


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def approve_provider(node: Node, grid: GridAddresses) -> None:
    market.register_provider(
        node.rpc_url,
        grid,
        provider_key=KEYS[PROVIDER],
        hardware=ProviderHardware(
            HARDWARE.nodes, HARDWARE.gpus_per_node, HARDWARE.cpus_per_node, HARDWARE.mem_per_node
        ),
        prices=DEFAULT_PRICES,
        labels=[market.Label(lb.key, lb.value) for lb in LABELS],
    )
    market.approve_provider(node.rpc_url, grid, admin_key=KEYS[ADMIN], provider=ADDRS[PROVIDER])


def queue_jobs(node: Node, grid: GridAddresses, count: int) -> list[str]:
    """Request ``count`` jobs and meta-schedule them to the provider, on one connection."""
    customer, oracle = Wallet(KEYS[CUSTOMER]), Wallet(KEYS[ORACLE])
    ids = []
    with market.connect(node.rpc_url, grid) as g:
        g.credit.transact(customer, "approve", grid.meta_scheduler, LOCKED * count)
        for i in range(count):
            receipt = g.meta_scheduler.transact(
                customer,
                "requestNewJob",
                market.definition_to_abi(SMALL_JOB),
                LOCKED,
                market.job_name_bytes(f"job {i}"),
                False,
            )
            (event,) = g.meta_scheduler.events(receipt, "NewJobRequestEvent")
            job = bytes(event["_jobId"])
            g.meta_scheduler.transact(oracle, "metaSchedule", job, ADDRS[PROVIDER])
            ids.append("0x" + job.hex())
    return ids


async def queue_jobs_fast(node: Node, grid: GridAddresses, count: int) -> list[str]:
    """:func:`queue_jobs` with our own senders: requests, then meta-schedules, pipelined."""
    abi = grid_abi()
    request = abi.function("MetaScheduler", "requestNewJob")
    schedule = abi.function("MetaScheduler", "metaSchedule")
    created = abi.event("MetaScheduler", "NewJobRequestEvent")
    rpc_ = HttpRpc(node.rpc_url)
    customer = TransactionSender(rpc_, bytes.fromhex(KEYS[CUSTOMER][2:]))
    oracle = TransactionSender(rpc_, bytes.fromhex(KEYS[ORACLE][2:]))
    approve = abi.function("Credit", "approve").encode(grid.meta_scheduler, LOCKED * count)
    await customer.transact(grid.credit, approve)
    ids: list[str] = []
    definition = market.definition_to_abi(SMALL_JOB)

    async def one(i: int) -> None:
        name = market.job_name_bytes(f"job {i}")
        receipt = await customer.transact(
            grid.meta_scheduler, request.encode(definition, LOCKED, name, False)
        )
        (log,) = [x for x in receipt.logs if x["topics"][0] == created.topic_hex]
        job = bytes(created.decode_data(bytes.fromhex(log["data"][2:]))["_jobId"])
        ids.append("0x" + job.hex())

    try:
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
        async with trio.open_nursery() as nursery:
            for job in ids:
                data = schedule.encode(bytes.fromhex(job[2:]), ADDRS[PROVIDER])
                nursery.start_soon(functools.partial(oracle.transact, grid.meta_scheduler, data))
    finally:
        await rpc_.aclose()
    return ids


class Jobs(Actor[Any, None]):
    """Stands in for JobsSupervisor: records what ChainActor tells "jobs"."""

    def __init__(self) -> None:
        super().__init__("jobs", mailbox_size=1024)
        self.received: list[Any] = []
        self.arrived_at: list[float] = []
        self.changed = trio.Event()

    async def handle(self, message: Any) -> None:
        self.received.append(message)
        self.arrived_at.append(trio.current_time())
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, count: int, within: float) -> list[Any]:
        with trio.fail_after(within):
            while len(self.received) < count:
                await self.changed.wait()
        return self.received


@dataclass
class Running:
    chain: ChainActor
    jobs: Jobs
    supervisor: Supervisor


@pytest.fixture
async def run_actor(
    node: Node, grid: GridAddresses, store: Store
) -> AsyncIterator[Callable[..., Any]]:
    """``await run_actor(ws_url=..., settings=...)``: "chain" and "jobs" under a supervisor."""
    async with trio.open_nursery() as nursery:
        started: list[Supervisor] = []

        async def start(*, ws_url: str | None, settings: ChainSettings = FAST) -> Running:
            chain = ChainActor(
                rpc_url=node.rpc_url,
                ws_url=ws_url,
                meta_scheduler=grid.meta_scheduler,
                private_key=PROVIDER_KEY,
                store=store,
                settings=settings,
            )
            jobs = Jobs()
            supervisor = Supervisor(
                "root", [ChildSpec("chain", lambda: chain), ChildSpec("jobs", lambda: jobs)]
            )
            await nursery.start(supervisor.run)
            started.append(supervisor)
            return Running(chain, jobs, supervisor)

        yield start
        for supervisor in started:
            supervisor.request_stop()


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``predicate`` (a record's facts; no event to wait on) until it holds."""
    with trio.fail_after(within):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.02)


def ws_url(node: Node) -> str:
    return f"ws://127.0.0.1:{node.port}"


# --------------------------------------------------------------------------------------- proxy


class Proxy:
    """A TCP proxy to anvil: ``cut()`` drops every connection and refuses new ones,
    ``blackhole()`` keeps connections but swallows what the node sends, ``restore()``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.mode = "open"
        self.connections = 0
        self._streams: list[trio.SocketStream] = []

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.mode == "cut":
            await client.aclose()
            return
        self.connections += 1
        upstream = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
        self._streams += [client, upstream]

        async def pump(source: trio.SocketStream, sink: trio.SocketStream, down: bool) -> None:
            try:
                while data := await source.receive_some(65536):
                    if down and self.mode == "blackhole":
                        continue
                    await sink.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                await sink.aclose()
                await source.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, upstream, False)
            nursery.start_soon(pump, upstream, client, True)

    async def cut(self) -> None:
        self.mode = "cut"
        for stream in self._streams:
            await stream.aclose()
        self._streams.clear()

    def blackhole(self) -> None:
        self.mode = "blackhole"

    def restore(self) -> None:
        self.mode = "open"


@pytest.fixture
async def proxy(node: Node) -> AsyncIterator[Proxy]:
    proxy = Proxy(node.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        yield proxy
        nursery.cancel_scope.cancel()


# ----------------------------------------------------------------------------------------- reads


async def test_reads_decode_and_registration_flow(node: Node, grid: GridAddresses) -> None:
    rpc_ = HttpRpc(node.rpc_url)
    client = MetaSchedulerClient(rpc_, TransactionSender(rpc_, PROVIDER_KEY), grid.meta_scheduler)
    try:
        found = await client.addresses()
        assert found.jobs == grid.jobs.lower()
        assert found.provider_job_queues == grid.provider_job_queues.lower()
        assert found.provider_manager == grid.provider_manager.lower()
        assert await client.enable_request_new_job() is True
        assert await client.get_provider() is None
        assert await client.approval() is Approval.UNKNOWN

        receipt = await client.register(HARDWARE, PRICES, LABELS)
        assert receipt.status
        assert await client.approval() is Approval.WAITING
        assert await client.get_provider() is None  # not approved yet
        await in_thread(
            market.approve_provider,
            node.rpc_url,
            grid,
            admin_key=KEYS[ADMIN],
            provider=ADDRS[PROVIDER],
        )
        assert await client.approval() is Approval.APPROVED
        assert await client.is_valid_for_scheduling()
        provider = await client.get_provider()
        assert provider is not None
        assert provider.address == PROVIDER_ADDR
        assert provider.hardware == HARDWARE
        assert provider.prices == PRICES
        assert provider.labels == LABELS
        assert provider.is_banned is False

        (job,) = await in_thread(queue_jobs, node, grid, 1)
        queues = await client.queues()
        assert (queues.claimable, queues.cancelling, queues.top_up) == (1, False, False)
        assert await client.has_next_claimable_job() is True
        assert await client.has_cancelling_job() is False
        assert await client.has_top_up_job() is False
        on_chain = await client.get_job(job)
        assert on_chain is not None
        assert on_chain.job_id == job
        assert on_chain.status is JobStatus.META_SCHEDULED
        assert on_chain.customer == ADDRS[CUSTOMER].lower()
        assert on_chain.provider == PROVIDER_ADDR
        assert on_chain.definition.mem_per_cpu == 1024
        assert on_chain.definition.batch_location_hash == "loc1"
        assert on_chain.max_cost == LOCKED
        assert on_chain.job_name == "job 0"
        assert await client.get_job("0x" + "00" * 32) is None

        outcome = await client.claim_next_job()
        (claimed,) = outcome.claims
        assert isinstance(claimed, ClaimedJob)
        assert claimed.job_id == job
        assert claimed.provider == PROVIDER_ADDR
        assert claimed.customer == ADDRS[CUSTOMER].lower()
        assert claimed.max_duration_minute == LOCKED // market.credits_per_minute(
            SMALL_JOB, DEFAULT_PRICES
        )
        assert claimed.definition.cpus_per_task == 1
        assert claimed.block_number == outcome.receipt.block_number
        assert (await client.get_job(job)).status is JobStatus.SCHEDULED  # type: ignore[union-attr]
    finally:
        await rpc_.aclose()


# ------------------------------------------------------------------------------- transactions


async def test_fifty_concurrent_transactions_get_distinct_nonces(
    node: Node, grid: GridAddresses
) -> None:
    rpc_ = HttpRpc(node.rpc_url)
    sender = TransactionSender(rpc_, PROVIDER_KEY)
    approve = grid_abi().function("Credit", "approve")
    first = int(rpc(node, "eth_getTransactionCount", PROVIDER_ADDR, "latest"), 16)
    receipts = []

    async def one(i: int) -> None:
        receipts.append(await sender.transact(grid.credit, approve.encode(ADDRS[CUSTOMER], i + 1)))

    began = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(one, i)
    elapsed = trio.current_time() - began
    await rpc_.aclose()

    assert len(receipts) == 50 and all(r.status for r in receipts)
    nonces = [int(rpc(node, "eth_getTransactionByHash", r.tx_hash)["nonce"], 16) for r in receipts]
    assert sorted(nonces) == list(range(first, first + 50))
    assert sorted(r.nonce for r in receipts) == sorted(nonces)
    assert int(rpc(node, "eth_getTransactionCount", PROVIDER_ADDR, "latest"), 16) == first + 50
    print(f"50 concurrent transactions mined in {elapsed:.2f} s ({50 / elapsed:.0f} tx/s)")


async def test_a_revert_raises_the_named_error_without_spending_a_nonce(
    node: Node, grid: GridAddresses
) -> None:
    rpc_ = HttpRpc(node.rpc_url)
    sender = TransactionSender(rpc_, PROVIDER_KEY)
    client = MetaSchedulerClient(rpc_, sender, grid.meta_scheduler)
    before = int(rpc(node, "eth_getTransactionCount", PROVIDER_ADDR, "pending"), 16)
    try:
        with pytest.raises(ContractError) as caught:
            await client.claim_next_job()
        assert caught.value.name == "ProviderNotJoined" and caught.value.tx_hash == ""
        with pytest.raises(ContractError) as caught:
            await client.refuse_job("0x" + "12" * 32)
        assert caught.value.name == "InvalidJob"
        bad = Hardware(nodes=2, gpus_per_node=(0,), cpus_per_node=(1, 1), mem_per_node=(1, 1))
        with pytest.raises(ContractError) as caught:
            await client.register(bad, PRICES, LABELS)
        assert caught.value.name == "ArrayLengthMismatch"
        after = int(rpc(node, "eth_getTransactionCount", PROVIDER_ADDR, "pending"), 16)
        assert after == before
        assert sender.statistics().sent == 0
        assert sender.statistics().simulated_reverts == 3
        # the next transaction takes the nonce the refused ones did not spend
        receipt = await client.register(HARDWARE, PRICES, LABELS)
        assert int(rpc(node, "eth_getTransactionByHash", receipt.tx_hash)["nonce"], 16) == before
    finally:
        await rpc_.aclose()


async def test_a_revert_at_mining_time_is_decoded_by_replaying_the_call(
    node: Node, grid: GridAddresses
) -> None:
    await in_thread(approve_provider, node, grid)
    (job,) = await in_thread(queue_jobs, node, grid, 1)
    rpc_ = HttpRpc(node.rpc_url)
    sender = TransactionSender(rpc_, PROVIDER_KEY)
    client = MetaSchedulerClient(rpc_, sender, grid.meta_scheduler)
    outcomes: list[Any] = []

    async def claim() -> None:
        try:
            outcomes.append(await client.claim_next_job())
        except ContractError as error:
            outcomes.append(error)

    rpc(node, "evm_setAutomine", False)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(claim)  # both simulations see one queued job...
            nursery.start_soon(claim)
            await wait_until(lambda: sender.statistics().sent == 2)
            rpc(node, "evm_mine")  # ...but only one of them can have it
    finally:
        rpc(node, "evm_setAutomine", True)
        await rpc_.aclose()
    (won,) = [o for o in outcomes if not isinstance(o, ContractError)]
    (lost,) = [o for o in outcomes if isinstance(o, ContractError)]
    assert [c.job_id for c in won.claims] == [job]
    assert lost.name == "NoJob" and lost.tx_hash.startswith("0x")
    assert int(rpc(node, "eth_getTransactionReceipt", lost.tx_hash)["status"], 16) == 0
    assert sender.statistics().reverted == 1


async def test_a_node_that_cannot_be_reached_means_the_request_never_left() -> None:
    rpc_ = HttpRpc(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    sender = TransactionSender(rpc_, PROVIDER_KEY)
    try:
        with pytest.raises(RequestNotSent):
            await rpc_.request("eth_blockNumber")
        with pytest.raises(RequestNotSent):
            await sender.transact("0x" + "11" * 20, b"")
        assert sender.statistics().sent == 0 and not sender.nonces.in_flight
        with pytest.raises(RequestNotSent):
            async with open_ws_rpc(f"ws://127.0.0.1:{free_port()}"):
                pass
    finally:
        await rpc_.aclose()


class RecordingLog(MemoryPendingLog):
    """Keeps every attempt, to see what was sent under which nonce."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts: list[PendingTransaction] = []

    async def record(self, tx: PendingTransaction) -> None:
        self.attempts.append(tx)
        await super().record(tx)


async def test_a_stuck_transaction_is_resent_with_a_higher_fee_under_the_same_nonce(
    node: Node, grid: GridAddresses
) -> None:
    rpc_ = HttpRpc(node.rpc_url)
    pending = RecordingLog()
    sender = TransactionSender(
        rpc_, PROVIDER_KEY, settings=SenderSettings(resend_after=0.2), pending_log=pending
    )
    approve = grid_abi().function("Credit", "approve")
    receipts = []
    rpc(node, "evm_setAutomine", False)
    try:
        async with trio.open_nursery() as nursery:

            async def send() -> None:
                receipts.append(
                    await sender.transact(grid.credit, approve.encode(ADDRS[CUSTOMER], 7))
                )

            nursery.start_soon(send)
            await wait_until(lambda: sender.statistics().resent >= 2)
            assert pending.pending  # shown as pending while unmined
            rpc(node, "evm_mine")
    finally:
        rpc(node, "evm_setAutomine", True)
        await rpc_.aclose()

    (receipt,) = receipts
    assert receipt.status
    assert len({a.nonce for a in pending.attempts}) == 1
    assert len({a.tx_hash for a in pending.attempts}) == len(pending.attempts) >= 3
    first, mined = (
        pending.attempts[0],
        next(a for a in pending.attempts if a.tx_hash == receipt.tx_hash),
    )
    assert mined is not first
    assert isinstance(first.fees, DynamicFees) and isinstance(mined.fees, DynamicFees)
    for earlier, later in zip(pending.attempts, pending.attempts[1:], strict=False):
        assert isinstance(earlier.fees, DynamicFees) and isinstance(later.fees, DynamicFees)
        assert later.fees.max_fee * 8 >= earlier.fees.max_fee * 9
        assert later.fees.max_priority_fee * 8 >= earlier.fees.max_priority_fee * 9
    on_chain = rpc(node, "eth_getTransactionByHash", receipt.tx_hash)
    assert int(on_chain["nonce"], 16) == first.nonce
    assert int(on_chain["maxFeePerGas"], 16) == mined.fees.max_fee
    assert rpc(node, "eth_getTransactionReceipt", first.tx_hash) is None
    assert not pending.pending  # settled


async def forget_and_send_again(
    node: Node, grid: GridAddresses, settings: SenderSettings
) -> tuple[TransactionSender, Receipt, Receipt]:
    """One approval mined, then forgotten by the chain (``evm_revert`` to a snapshot taken before
    it, as a reorganisation or a node restarted from an older state does), then a second one
    sent under the next nonce: it can only be mined once the forgotten nonce is used again."""
    rpc_ = HttpRpc(node.rpc_url)
    sender = TransactionSender(rpc_, PROVIDER_KEY, settings=settings)
    try:
        with trio.fail_after(20):
            snapshot = rpc(node, "evm_snapshot")
            first = await approve_credit(sender, grid, 11)
            assert rpc(node, "evm_revert", snapshot) is True
            assert rpc(node, "eth_getTransactionReceipt", first.tx_hash) is None  # forgotten
            second = await approve_credit(sender, grid, 12)
    finally:
        await rpc_.aclose()
    return sender, first, second


async def test_a_transaction_the_chain_forgot_is_sent_again_so_the_next_ones_are_mined(
    node: Node, grid: GridAddresses
) -> None:
    sender, first, second = await forget_and_send_again(
        node, grid, SenderSettings(resend_after=0.3)
    )
    assert second.status and second.nonce == first.nonce + 1
    again = rpc(node, "eth_getTransactionReceipt", first.tx_hash)  # the very same transaction
    assert again is not None and int(again["status"], 16) == 1
    allowance = grid_abi().function("Credit", "allowance")
    answer = rpc(
        node,
        "eth_call",
        {
            "to": grid.credit,
            "data": "0x" + allowance.encode(ADDRS[PROVIDER], ADDRS[CUSTOMER]).hex(),
        },
        "latest",
    )
    assert allowance.decode(bytes.fromhex(answer[2:])) == (12,)  # both took effect, in order
    stats = sender.statistics()
    assert (stats.replayed, stats.filled) == (1, 0)


async def test_a_forgotten_nonce_with_nothing_remembered_is_closed_by_an_empty_transfer(
    node: Node, grid: GridAddresses
) -> None:
    sender, first, second = await forget_and_send_again(
        node, grid, SenderSettings(resend_after=0.3, remember_sent=0)
    )
    assert second.status and second.nonce == first.nonce + 1
    assert rpc(node, "eth_getTransactionReceipt", first.tx_hash) is None
    blocks = [rpc(node, "eth_getBlockByNumber", hex(second.block_number - i), True) for i in (0, 1)]
    (filler,) = [
        tx
        for block in blocks
        for tx in block["transactions"]
        if tx["from"].lower() == ADDRS[PROVIDER].lower() and int(tx["nonce"], 16) == first.nonce
    ]
    assert filler["to"].lower() == filler["from"].lower() == ADDRS[PROVIDER].lower()
    assert int(filler["value"], 16) == 0 and filler["input"] in ("0x", "")
    stats = sender.statistics()
    assert (stats.replayed, stats.filled) == (0, 1)


@contextlib.asynccontextmanager
async def mining_by_hand(node: Node) -> AsyncIterator[tuple[TransactionSender, HttpRpc]]:
    """anvil's automine off, and a provider sender whose own receipt polls are 60 s apart: only
    an announced head (``new_head``) or the receipt watcher can see a receipt in time."""
    rpc_ = HttpRpc(node.rpc_url)
    slow_polls = SenderSettings(receipt_poll_min=60.0, receipt_poll_max=60.0)
    rpc(node, "evm_setAutomine", False)
    try:
        with trio.fail_after(10):
            yield TransactionSender(rpc_, PROVIDER_KEY, settings=slow_polls), rpc_
    finally:
        rpc(node, "evm_setAutomine", True)
        await rpc_.aclose()


async def approve_credit(sender: TransactionSender, grid: GridAddresses, amount: int) -> Receipt:
    approve = grid_abi().function("Credit", "approve")
    return await sender.transact(grid.credit, approve.encode(ADDRS[CUSTOMER], amount))


async def test_a_new_head_wakes_the_receipt_waiters_at_once(
    node: Node, grid: GridAddresses
) -> None:
    receipts = []
    async with mining_by_hand(node) as (sender, _), trio.open_nursery() as nursery:

        async def send() -> None:
            receipts.append(await approve_credit(sender, grid, 9))

        nursery.start_soon(send)
        await wait_until(lambda: sender.statistics().sent == 1)
        rpc(node, "evm_mine")
        sender.new_head()
    (receipt,) = receipts
    assert receipt.status and sender.statistics().mined == 1


async def test_the_receipt_watcher_asks_once_per_block_for_every_transaction_in_flight(
    node: Node, grid: GridAddresses
) -> None:
    """Ten transactions wait in the pool; the block that mines them costs one batched request."""
    receipts = []
    async with mining_by_hand(node) as (sender, rpc_), trio.open_nursery() as nursery:
        nursery.start_soon(sender.watch_receipts)

        async def send(amount: int) -> None:
            receipts.append(await approve_credit(sender, grid, amount))

        async with trio.open_nursery() as senders:
            for amount in range(10):
                senders.start_soon(send, amount)
            await wait_until(lambda: sender.statistics().sent == 10)
            await trio.testing.wait_all_tasks_blocked()  # the watcher's first round
            before = rpc_.requests
            rpc(node, "evm_mine")
            sender.new_head()
        assert rpc_.requests - before == 1
        nursery.cancel_scope.cancel()
    assert len(receipts) == 10 and all(r.status for r in receipts)
    assert len({r.block_number for r in receipts}) == 1


# -------------------------------------------------------------------------------------- actor


async def test_the_actor_claims_event_driven_and_tells_jobs(
    node: Node, grid: GridAddresses, store: Store, run_actor: Any
) -> None:
    await in_thread(approve_provider, node, grid)
    running: Running = await run_actor(ws_url=ws_url(node))  # poll every 60 s: heads drive it
    chain, jobs = running.chain, running.jobs
    await wait_until(lambda: chain.statistics().subscribed)
    assert await chain.ask(StartClaiming()) is not None
    assert chain.statistics().claiming
    assert await chain.ask(ProviderApproval()) is Approval.APPROVED

    began = trio.current_time()
    (job,) = await in_thread(queue_jobs, node, grid, 1)
    (claimed,) = await jobs.wait_for(1, within=5)
    latency = jobs.arrived_at[0] - began
    assert isinstance(claimed, ClaimedJob)
    assert claimed.job_id == job and claimed.provider == PROVIDER_ADDR and claimed.block_number > 0
    on_chain = await chain.ask(GetJob(job))
    assert on_chain is not None and on_chain.status is JobStatus.SCHEDULED  # type: ignore[union-attr]
    print(f"metaSchedule (+request) to ClaimedJob at 'jobs': {latency * 1000:.0f} ms")

    # status reports: applied, same status counts as applied, a bad transition is rejected
    running_reply = await chain.ask(SetJobStatus(job, JobStatus.RUNNING))
    assert isinstance(running_reply, Applied) and running_reply.tx_hash.startswith("0x")
    again = await chain.ask(SetJobStatus(job, JobStatus.RUNNING))
    assert again == Applied(tx_hash="", already=True)
    refused = await chain.ask(RefuseJob(job))
    assert refused == Rejected("MetaScheduledScheduledStatusOnly", (int(JobStatus.RUNNING),))
    done = await chain.ask(SetJobStatus(job, JobStatus.FINISHED, duration_minutes=3, exit_code=0))
    assert isinstance(done, Applied)
    late = await chain.ask(SetJobStatus(job, JobStatus.FAILED))
    assert late == Rejected("JobHotStatusOnly", (int(JobStatus.FINISHED),))
    provider = await chain.ask(GetProvider())
    assert provider is not None and provider.labels == LABELS  # type: ignore[union-attr]

    assert await chain.ask(StopClaiming()) is not None
    assert not chain.statistics().claiming
    await wait_until(lambda: chain.statistics().cursor_block is not None)
    await trio.sleep(0.2)  # one save interval
    saved = await store.get("chain", "cursor", ChainCursor)
    assert saved is not None and saved.block >= claimed.block_number - 1
    assert len(jobs.received) == 1  # the receipt and the log did not deliver it twice


async def test_register_and_approval_through_the_actor(
    node: Node, grid: GridAddresses, run_actor: Any
) -> None:
    chain = (await run_actor(ws_url=None)).chain
    assert await chain.ask(ProviderApproval()) is Approval.UNKNOWN
    assert await chain.ask(GetProvider()) is None
    reply = await chain.ask(Register(HARDWARE, PRICES, LABELS))
    assert isinstance(reply, Applied)
    assert await chain.ask(ProviderApproval()) is Approval.WAITING
    await in_thread(
        market.approve_provider, node.rpc_url, grid, admin_key=KEYS[ADMIN], provider=ADDRS[PROVIDER]
    )
    assert await chain.ask(ProviderApproval()) is Approval.APPROVED
    bad = Hardware(nodes=0, gpus_per_node=(), cpus_per_node=(), mem_per_node=())
    assert await chain.ask(Register(bad, PRICES, LABELS)) == Rejected("InvalidNodesCount")
    with pytest.raises(ChainValueError, match="not a job id") as malformed:
        await chain.ask(GetJob("0x1234"))  # our own error, the client's ValueError its cause
    assert isinstance(malformed.value.__cause__, ValueError)
    assert chain.statistics().phase == "running"  # bad input is an answer, not a crash
    await in_thread(
        market.set_enable_request_new_job, node.rpc_url, grid, admin_key=KEYS[ADMIN], enable=False
    )
    assert await chain.client.enable_request_new_job() is False


async def test_enable_request_new_job_false_is_shown_not_fatal(
    node: Node, grid: GridAddresses, run_actor: Any
) -> None:
    await in_thread(
        market.set_enable_request_new_job, node.rpc_url, grid, admin_key=KEYS[ADMIN], enable=False
    )
    running = await run_actor(ws_url=None, settings=FAST)
    await wait_until(lambda: running.chain.statistics().enable_request_new_job is False)
    assert running.chain.statistics().phase == "running"


async def test_the_fallback_poll_claims_without_a_subscription(
    node: Node, grid: GridAddresses, run_actor: Any
) -> None:
    await in_thread(approve_provider, node, grid)
    closed = f"ws://127.0.0.1:{free_port()}"
    settings = ChainSettings(
        poll_interval=0.2, reconnect=Backoff(initial=0.05, maximum=0.2), request_timeout=1.0
    )
    running = await run_actor(ws_url=closed, settings=settings)
    await running.chain.ask(StartClaiming())
    (job,) = await in_thread(queue_jobs, node, grid, 1)
    (claimed,) = await running.jobs.wait_for(1, within=5)
    assert isinstance(claimed, ClaimedJob) and claimed.job_id == job
    assert running.chain.statistics().connection.startswith(("down", "connecting"))


async def test_backfill_after_the_websocket_drops_catches_a_missed_claim(
    node: Node, grid: GridAddresses, store: Store, run_actor: Any, proxy: Proxy
) -> None:
    await in_thread(approve_provider, node, grid)
    (job,) = await in_thread(queue_jobs, node, grid, 1)
    running = await run_actor(ws_url=f"ws://127.0.0.1:{proxy.port}")  # not claiming itself
    chain = running.chain
    await wait_until(lambda: chain.statistics().subscribed)
    await proxy.cut()
    await wait_until(lambda: chain.statistics().connection.startswith("down"))
    # another process with the provider key claims while we are disconnected
    claimed = await in_thread(
        market.claim_next_job, node.rpc_url, grid, provider_key=KEYS[PROVIDER]
    )
    assert claimed is not None and claimed.job_id == job
    await trio.sleep(0.3)
    assert running.jobs.received == []  # nothing came through while cut
    proxy.restore()
    (delivered,) = await running.jobs.wait_for(1, within=10)
    assert isinstance(delivered, ClaimedJob) and delivered.job_id == job
    assert proxy.connections >= 2
    await trio.sleep(0.2)
    saved = await store.get("chain", "cursor", ChainCursor)
    assert saved is not None and saved.block >= delivered.block_number


async def test_after_a_reconnection_the_actor_sends_again_what_the_chain_forgot(
    node: Node, grid: GridAddresses, run_actor: Any, proxy: Proxy
) -> None:
    """The registration is mined, then the node goes back to a state before it while the socket
    is down (as an anvil restarted from an older dump does): once reconnected, the actor sends
    the very same transaction again and moves its cursor back to the chain's head."""
    chain = (await run_actor(ws_url=f"ws://127.0.0.1:{proxy.port}")).chain
    await wait_until(lambda: chain.statistics().subscribed)
    snapshot = rpc(node, "evm_snapshot")
    assert isinstance(await chain.ask(Register(HARDWARE, PRICES, LABELS)), Applied)
    assert await chain.ask(ProviderApproval()) is Approval.WAITING
    rpc(node, "evm_mine")  # a head past the registration: the cursor follows it
    await wait_until(
        lambda: (chain.statistics().cursor_block or 0) >= int(rpc(node, "eth_blockNumber"), 16) - 1
    )
    cursor_before = chain.statistics().cursor_block or 0
    await proxy.cut()
    await wait_until(lambda: chain.statistics().connection.startswith("down"))
    assert rpc(node, "evm_revert", snapshot) is True
    assert await chain.ask(ProviderApproval()) is Approval.UNKNOWN  # forgotten
    proxy.restore()
    await wait_until(lambda: chain.statistics().subscribed)
    await wait_until(lambda: chain.statistics().transactions.replayed == 1)
    with trio.fail_after(10):  # registered again, by the same transaction
        while await chain.ask(ProviderApproval()) is not Approval.WAITING:  # noqa: ASYNC110
            await trio.sleep(0.05)
    assert (chain.statistics().cursor_block or 0) < cursor_before


async def test_a_dead_subscription_is_detected_and_rebuilt(
    node: Node, grid: GridAddresses, run_actor: Any, proxy: Proxy
) -> None:
    await in_thread(approve_provider, node, grid)
    settings = ChainSettings(
        poll_interval=60.0,
        head_timeout=0.3,
        request_timeout=0.5,
        reconnect=Backoff(initial=0.05, maximum=0.2),
    )
    running = await run_actor(ws_url=f"ws://127.0.0.1:{proxy.port}", settings=settings)
    chain = running.chain
    await wait_until(lambda: chain.statistics().subscribed)
    await chain.ask(StartClaiming())
    proxy.blackhole()  # the socket stays open but nothing arrives any more
    rpc(node, "evm_mine")  # the chain moves on
    await wait_until(lambda: chain.statistics().connection.startswith("down"), within=5)
    proxy.restore()
    await wait_until(lambda: chain.statistics().subscribed, within=5)
    (job,) = await in_thread(queue_jobs, node, grid, 1)
    (claimed,) = await running.jobs.wait_for(1, within=5)
    assert claimed.job_id == job


@pytest.mark.slow
async def test_a_queued_burst_is_claimed_whole_and_once(
    node: Node, grid: GridAddresses, run_actor: Any
) -> None:
    count = 200
    await in_thread(approve_provider, node, grid)
    ids = await queue_jobs_fast(node, grid, count)
    running = await run_actor(ws_url=ws_url(node))
    await wait_until(lambda: running.chain.statistics().subscribed)
    await running.chain.ask(StartClaiming())
    received = await running.jobs.wait_for(count, within=60)
    assert sorted(c.job_id for c in received) == sorted(ids)  # every one, none twice
    # (its pace is a figure for bench/, not an assertion: python -m bench lifecycle)


# ------------------------------------------------------------------- a retired meta-scheduler

WATCHFUL = msgspec.structs.replace(FAST, poll_interval=0.1, enable_check_interval=0.1)


def request_retired_job(node: Node, grid: GridAddresses) -> str:
    """A job requested by the customer, not meta-scheduled yet (PENDING)."""
    return market.request_job(
        node.rpc_url,
        grid,
        customer_key=KEYS[CUSTOMER],
        definition=SMALL_JOB,
        locked_credits=LOCKED,
        job_name="retired",
    )


def schedule_job(node: Node, grid: GridAddresses, job_id: str) -> None:
    market.meta_schedule(
        node.rpc_url, grid, metascheduler_key=KEYS[ORACLE], job_id=job_id, provider=PROVIDER_ADDR
    )


def enable_new_jobs(node: Node, grid: GridAddresses, on: bool) -> None:
    market.set_enable_request_new_job(node.rpc_url, grid, admin_key=KEYS[ADMIN], enable=on)


async def test_a_retired_contract_gets_no_new_claims_but_the_running_jobs_are_served(
    node: Node, grid: GridAddresses, run_actor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await in_thread(approve_provider, node, grid)
    running = await run_actor(ws_url=None, settings=WATCHFUL)
    chain, jobs = running.chain, running.jobs
    await chain.ask(StartClaiming())
    # both requested while the contract takes requests; only the first is meta-scheduled now
    here = await in_thread(request_retired_job, node, grid)
    later = await in_thread(request_retired_job, node, grid)
    await in_thread(schedule_job, node, grid, here)
    (claimed,) = await jobs.wait_for(1, within=10)
    assert isinstance(claimed, ClaimedJob) and claimed.job_id == here

    with caplog.at_level(logging.ERROR, logger="actors.chain.actor"):
        await in_thread(enable_new_jobs, node, grid, False)
        await wait_until(lambda: chain.retired)
    (error,) = [r for r in caplog.records if "enableRequestNewJob() is false" in r.getMessage()]
    assert error.levelno == logging.ERROR
    assert "Set chain.metaschedulerAddress" in error.getMessage()
    assert grid.meta_scheduler.lower() in error.getMessage().lower()
    assert chain.statistics().enable_request_new_job is False
    assert chain.statistics().claiming is False  # asked to claim, but no new job is claimed

    # The later job is queued for us now, and the customer cancels the job already here: the
    # round that claims the cancellation sees the queued job too, and leaves it.
    await in_thread(schedule_job, node, grid, later)
    await in_thread(market.cancel_job, node.rpc_url, grid, customer_key=KEYS[CUSTOMER], job_id=here)
    received = await jobs.wait_for(2, within=10)
    assert isinstance(received[1], ClaimedCancel) and received[1].job_id == here
    queues = await chain.client.queues()
    assert queues.claimable == 1 and not queues.cancelling
    assert chain.statistics().phase == "running"  # loud, not fatal

    await in_thread(enable_new_jobs, node, grid, True)
    received = await jobs.wait_for(3, within=10)
    assert isinstance(received[2], ClaimedJob) and received[2].job_id == later
    assert not chain.retired and chain.statistics().claiming is True
    assert [type(m) for m in jobs.received] == [ClaimedJob, ClaimedCancel, ClaimedJob]
