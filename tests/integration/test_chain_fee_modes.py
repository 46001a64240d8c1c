"""chain.fees and chain.gasLimit on real anvils: a London one (base fee, EIP-1559) and a Berlin one
(no base fee, type-2 transactions refused: the legacy-priced chains of the grid), and the
anvil block-time switch the lifecycle benchmark uses.

Each module-scoped anvil is private (free port) with the grid deployed once; contracts for the
Berlin chain are compiled for the Berlin EVM. Every test asserts what the node mined: the
transaction's type and price fields, its gas limit, and for a resend the fields of the
replacement that was mined.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from eth_account import Account

from actors.chain.abi import grid_abi
from actors.chain.client import MetaSchedulerClient
from actors.chain.fees import DynamicFees, FeeModeUnsupported, GasLimitTooLow, LegacyFees
from actors.chain.rpc import HttpRpc
from actors.chain.transactions import (
    MemoryPendingLog,
    Receipt,
    SenderSettings,
    TransactionSender,
)
from actors.grid import ClaimedJob, Hardware, Prices, normalise_labels
from testbed import anvil, market
from testbed.anvil import private_anvil
from testbed.contracts import GridAddresses, compile_contracts, deploy_grid
from testbed.layout import Layout
from testbed.market import CREDIT, DEFAULT_PRICES, JobDefinition
from testbed.node import ensure_node_tools
from testbed.processes import TestbedError
from tests.integration.test_chain import RecordingLog

MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()
_ACCOUNTS = [Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(4)]
KEYS = ["0x" + a.key.hex().removeprefix("0x") for a in _ACCOUNTS]
ADDRS = [str(a.address) for a in _ACCOUNTS]
ADMIN, ORACLE, PROVIDER, CUSTOMER = 0, 1, 2, 3
PROVIDER_KEY = bytes.fromhex(KEYS[PROVIDER][2:])
GO_GAS_LIMIT = 20_000_000  # what the Go supervisor sends every transaction with

HARDWARE = Hardware(nodes=1, gpus_per_node=(0,), cpus_per_node=(8,), mem_per_node=(16000,))
PRICES = Prices(
    gpu_per_min=DEFAULT_PRICES.gpu_price_per_min,
    cpu_per_min=DEFAULT_PRICES.cpu_price_per_min,
    mem_per_min=DEFAULT_PRICES.mem_price_per_min,
)
SMALL_JOB = JobDefinition(
    gpus=0, mem_per_cpu=1024, cpus_per_task=1, ntasks=1, batch_location_hash="loc1"
)


@dataclass(frozen=True)
class Chain:
    url: str
    grid: GridAddresses


@contextlib.contextmanager
def chain_with_grid(hardfork: str | None, artifacts: Path) -> Iterator[Chain]:
    with private_anvil(ensure_node_tools(Layout.from_env().node).anvil, hardfork=hardfork) as node:
        grid = deploy_grid(
            node.url, admin_key=KEYS[ADMIN], metascheduler_addr=ADDRS[ORACLE], artifacts=artifacts
        )
        market.mint_credits(
            node.url, grid, admin_key=KEYS[ADMIN], to=ADDRS[CUSTOMER], amount=10**6 * CREDIT
        )
        yield Chain(node.url, grid)


@pytest.fixture(scope="module")
def london() -> Iterator[Chain]:
    layout = Layout.from_env()
    artifacts = compile_contracts(ensure_node_tools(layout.node), layout.contracts)
    with chain_with_grid(None, artifacts) as chain:
        yield chain


@pytest.fixture(scope="module")
def berlin() -> Iterator[Chain]:
    layout = Layout.from_env()
    out = layout.contracts.with_name(layout.contracts.name + "-berlin")
    artifacts = compile_contracts(ensure_node_tools(layout.node), out, evm_version="berlin")
    with chain_with_grid("berlin", artifacts) as chain:
        yield chain


def rpc(chain: Chain, method: str, *params: Any) -> Any:
    return anvil.rpc(method, *params, url=chain.url)


def mined(chain: Chain, receipt: Receipt) -> dict[str, Any]:
    """The transaction as the node holds it, checked to be the receipt's."""
    tx: dict[str, Any] = rpc(chain, "eth_getTransactionByHash", receipt.tx_hash)
    assert int(tx["blockNumber"], 16) == receipt.block_number
    return tx


@contextlib.asynccontextmanager
async def sender_on(
    chain: Chain, settings: SenderSettings, pending_log: MemoryPendingLog | None = None
) -> AsyncIterator[TransactionSender]:
    """The provider's sender, configured with ``settings`` (``chain.fees``, ``chain.gasLimit``)."""
    async with client_on(chain, settings, pending_log) as client:
        yield client.sender


@contextlib.asynccontextmanager
async def client_on(
    chain: Chain, settings: SenderSettings, pending_log: MemoryPendingLog | None = None
) -> AsyncIterator[MetaSchedulerClient]:
    rpc_ = HttpRpc(chain.url)
    sender = TransactionSender(rpc_, PROVIDER_KEY, settings=settings, pending_log=pending_log)
    try:
        with trio.fail_after(30):
            yield MetaSchedulerClient(rpc_, sender, chain.grid.meta_scheduler)
    finally:
        await rpc_.aclose()


async def approve_credit(chain: Chain, sender: TransactionSender, amount: int) -> Receipt:
    approve = grid_abi().function("Credit", "approve")
    return await sender.transact(chain.grid.credit, approve.encode(ADDRS[CUSTOMER], amount))


# ------------------------------------------------------------------------ which type is sent


async def test_auto_sends_eip1559_on_a_london_chain_and_estimates_the_gas(london: Chain) -> None:
    assert rpc(london, "eth_getBlockByNumber", "latest", False).get("baseFeePerGas") is not None
    async with sender_on(london, SenderSettings()) as sender:
        receipt = await approve_credit(london, sender, 1)
    tx = mined(london, receipt)
    assert receipt.status and tx["type"] == "0x2"
    assert int(tx["maxPriorityFeePerGas"], 16) <= int(tx["maxFeePerGas"], 16)
    assert int(tx["gas"], 16) < 200_000  # the estimate with its margin, not a fixed ceiling
    assert receipt.gas_used < int(tx["gas"], 16)


async def test_legacy_on_a_london_chain_sends_gas_price_under_a_fixed_gas_limit(
    london: Chain,
) -> None:
    """The Go supervisor's habits: type 0 at eth_gasPrice, every transaction with 20 M gas."""
    settings = SenderSettings(fees="legacy", gas_limit=GO_GAS_LIMIT)
    async with sender_on(london, settings) as sender:
        receipt = await approve_credit(london, sender, 2)
        fees = await sender.current_fees()
    tx = mined(london, receipt)
    assert receipt.status and tx["type"] == "0x0"
    assert "maxFeePerGas" not in tx
    assert isinstance(fees, LegacyFees) and int(tx["gasPrice"], 16) == fees.gas_price
    assert int(tx["gas"], 16) == GO_GAS_LIMIT
    assert receipt.gas_used < 100_000  # the limit is a ceiling: what it burns is the same


async def test_auto_sends_legacy_on_a_chain_without_a_base_fee(berlin: Chain) -> None:
    assert "baseFeePerGas" not in rpc(berlin, "eth_getBlockByNumber", "latest", False)
    async with sender_on(berlin, SenderSettings()) as sender:
        receipt = await approve_credit(berlin, sender, 3)
    tx = mined(berlin, receipt)
    assert receipt.status and tx["type"] == "0x0"
    assert int(tx["gasPrice"], 16) == int(rpc(berlin, "eth_gasPrice"), 16)


async def test_eip1559_on_a_chain_without_a_base_fee_is_refused_before_anything_is_sent(
    berlin: Chain,
) -> None:
    before = rpc(berlin, "eth_getTransactionCount", ADDRS[PROVIDER], "pending")
    async with sender_on(berlin, SenderSettings(fees="eip1559")) as sender:
        with pytest.raises(FeeModeUnsupported, match=r"chain\.fees is eip1559.*legacy or auto"):
            await approve_credit(berlin, sender, 4)
        assert sender.statistics().sent == 0 and not sender.nonces.in_flight
    assert rpc(berlin, "eth_getTransactionCount", ADDRS[PROVIDER], "pending") == before


async def test_eip1559_on_a_london_chain_and_a_too_low_fixed_limit_is_refused(
    london: Chain,
) -> None:
    async with sender_on(london, SenderSettings(fees="eip1559")) as sender:
        receipt = await approve_credit(london, sender, 5)
    assert mined(london, receipt)["type"] == "0x2"
    before = rpc(london, "eth_getTransactionCount", ADDRS[PROVIDER], "pending")
    async with sender_on(london, SenderSettings(gas_limit=21_000)) as sender:
        with pytest.raises(GasLimitTooLow, match=r"more than the fixed chain\.gasLimit of 21000"):
            await approve_credit(london, sender, 6)
        assert sender.statistics().sent == 0
    assert rpc(london, "eth_getTransactionCount", ADDRS[PROVIDER], "pending") == before


async def test_a_claim_on_a_legacy_chain_the_go_way(berlin: Chain) -> None:
    """Register, get approved, and claim a job on the chain without a base fee, with a fixed
    20 M gas limit: the claim is a mined type-0 transaction that hands over the job."""
    settings = SenderSettings(gas_limit=GO_GAS_LIMIT)
    async with client_on(berlin, settings) as client:
        registered = await client.register(HARDWARE, PRICES, normalise_labels({"os": "linux"}))
        await trio.to_thread.run_sync(
            lambda: market.approve_provider(
                berlin.url, berlin.grid, admin_key=KEYS[ADMIN], provider=ADDRS[PROVIDER]
            )
        )
        job_id = await trio.to_thread.run_sync(queue_job, berlin)
        outcome = await client.claim_next_job()
    for receipt in (registered, outcome.receipt):
        tx = mined(berlin, receipt)
        assert tx["type"] == "0x0" and int(tx["gas"], 16) == GO_GAS_LIMIT
    (claimed,) = outcome.claims
    assert isinstance(claimed, ClaimedJob) and claimed.job_id == job_id


def queue_job(chain: Chain) -> str:
    job_id = market.request_job(
        chain.url,
        chain.grid,
        customer_key=KEYS[CUSTOMER],
        definition=SMALL_JOB,
        locked_credits=100 * CREDIT,
        job_name="legacy",
    )
    market.meta_schedule(
        chain.url,
        chain.grid,
        metascheduler_key=KEYS[ORACLE],
        job_id=job_id,
        provider=ADDRS[PROVIDER],
    )
    return job_id


# ------------------------------------------------------------------------- resend, each mode


async def resent_until_mined(
    chain: Chain, settings: SenderSettings
) -> tuple[RecordingLog, Receipt]:
    """One approval sent while the node mines nothing, resent at least twice, then mined."""
    log = RecordingLog()
    receipts: list[Receipt] = []
    rpc(chain, "evm_setAutomine", False)
    try:
        async with sender_on(chain, settings, log) as sender, trio.open_nursery() as nursery:

            async def send() -> None:
                receipts.append(await approve_credit(chain, sender, 7))

            nursery.start_soon(send)
            while sender.statistics().resent < 2:  # noqa: ASYNC110 (no event to wait on)
                await trio.sleep(0.02)
            rpc(chain, "evm_mine")
    finally:
        rpc(chain, "evm_setAutomine", True)
    (receipt,) = receipts
    assert receipt.status
    assert len({a.nonce for a in log.attempts}) == 1  # every attempt under the same nonce
    assert len({a.tx_hash for a in log.attempts}) == len(log.attempts) >= 3
    return log, receipt


async def test_a_legacy_resend_raises_the_gas_price_by_at_least_ten_percent(
    berlin: Chain,
) -> None:
    log, receipt = await resent_until_mined(berlin, SenderSettings(resend_after=0.2))
    prices = []
    for attempt in log.attempts:
        assert isinstance(attempt.fees, LegacyFees)
        prices.append(attempt.fees.gas_price)
    for earlier, later in itertools.pairwise(prices):
        assert later * 10 >= earlier * 11
    tx = mined(berlin, receipt)
    assert tx["type"] == "0x0" and tx["hash"] != log.attempts[0].tx_hash
    assert int(tx["gasPrice"], 16) in prices[1:]  # a replacement was mined, not the first
    assert rpc(berlin, "eth_getTransactionReceipt", log.attempts[0].tx_hash) is None


async def test_an_eip1559_resend_raises_both_the_tip_and_the_max_fee(london: Chain) -> None:
    settings = SenderSettings(resend_after=0.2, fees="eip1559")
    log, receipt = await resent_until_mined(london, settings)
    fees = []
    for attempt in log.attempts:
        assert isinstance(attempt.fees, DynamicFees)
        fees.append(attempt.fees)
    for earlier, later in itertools.pairwise(fees):
        assert later.max_priority_fee * 10 >= earlier.max_priority_fee * 11
        assert later.max_fee * 10 >= earlier.max_fee * 11
    tx = mined(london, receipt)
    assert tx["type"] == "0x2" and tx["hash"] != log.attempts[0].tx_hash
    sent = next(a.fees for a in log.attempts if a.tx_hash == receipt.tx_hash)
    assert isinstance(sent, DynamicFees)
    assert int(tx["maxFeePerGas"], 16) == sent.max_fee
    assert int(tx["maxPriorityFeePerGas"], 16) == sent.max_priority_fee


async def test_a_legacy_resend_on_a_london_chain_stays_legacy(london: Chain) -> None:
    log, receipt = await resent_until_mined(
        london, SenderSettings(resend_after=0.2, fees="legacy", gas_limit=GO_GAS_LIMIT)
    )
    assert all(isinstance(a.fees, LegacyFees) and a.gas == GO_GAS_LIMIT for a in log.attempts)
    tx = mined(london, receipt)
    assert tx["type"] == "0x0" and int(tx["gas"], 16) == GO_GAS_LIMIT


# ------------------------------------------------------------------------- a real block time


async def test_a_block_time_is_set_at_start_and_switched_on_a_running_anvil(london: Chain) -> None:
    binary = ensure_node_tools(Layout.from_env().node).anvil
    with private_anvil(binary, block_time=1) as node:
        assert anvil.block_time(node.url) == 1.0
    assert anvil.block_time(london.url) is None  # automine
    anvil.set_block_time(1, london.url)
    try:
        assert anvil.block_time(london.url) == 1.0
        before = int(rpc(london, "eth_blockNumber"), 16)
        async with sender_on(london, SenderSettings()) as sender:
            receipt = await approve_credit(london, sender, 8)
        assert receipt.status and receipt.block_number > before
        with pytest.raises(ValueError, match="whole seconds"):
            anvil.set_block_time(0.5, london.url)
    finally:
        anvil.set_block_time(None, london.url)
    assert anvil.block_time(london.url) is None


def test_the_testbed_block_time_comes_from_its_environment_variable() -> None:
    assert anvil.block_time_from_env({}) is None
    assert anvil.block_time_from_env({anvil.BLOCK_TIME_ENV: " "}) is None
    assert anvil.block_time_from_env({anvil.BLOCK_TIME_ENV: "2"}) == 2
    for bad in ("0", "1.5", "two", "-2"):
        with pytest.raises(TestbedError, match=r"GRID_TESTBED_BLOCK_TIME=.*whole number"):
            anvil.block_time_from_env({anvil.BLOCK_TIME_ENV: bad})
    argv = anvil.anvil_argv(Path("anvil"), block_time=2, hardfork="berlin")
    assert argv[argv.index("--block-time") + 1] == "2"
    assert argv[argv.index("--hardfork") + 1] == "berlin"
    assert "--block-time" not in anvil.anvil_argv(Path("anvil"))
