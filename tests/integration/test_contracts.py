"""Our meta-scheduler contracts on a real anvil: lifecycle, transitions, billing, queues, guards.

One anvil per module (free port), contracts compiled once (cached under <testbed>/contracts) and
deployed once, with two approved providers and two customers holding credits; every test starts
from that state again (evm_snapshot / evm_revert).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account

from actors.grid import JobDefinition, Label
from testbed import market
from testbed.anvil import private_anvil
from testbed.contracts import (
    EXPORTED,
    GridAddresses,
    abi_json,
    committed_abis,
    compile_contracts,
    deploy_grid,
    load_artifact,
)
from testbed.evm import ContractRevert, Receipt, Wallet
from testbed.layout import Layout
from testbed.market import CREDIT, DEFAULT_PRICES, GridContracts, ProviderHardware, ProviderPrices
from testbed.node import ensure_node_tools

PENDING, META_SCHEDULED, SCHEDULED, RUNNING = 0, 1, 2, 3
CANCELLED, FINISHED, FAILED, OUT_OF_CREDITS, PANICKED = 4, 5, 6, 7, 8

MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()
_ACCOUNTS = [Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(9)]
KEYS = ["0x" + a.key.hex().removeprefix("0x") for a in _ACCOUNTS]
ADDRS = [str(a.address) for a in _ACCOUNTS]
ZERO_ADDRESS = "0x" + "00" * 20
ADMIN, ORACLE, PROVIDER, CUSTOMER, CUSTOMER2, OTHER_PROVIDER, STRANGER = 0, 1, 2, 3, 4, 7, 8

HARDWARE = ProviderHardware(
    nodes=2, gpus_per_node=(0, 1), cpus_per_node=(8, 8), mem_per_node=(16000, 16000)
)
LABELS = [Label("os", "linux"), Label("arch", "amd64")]
SMALL_JOB = JobDefinition(
    gpus=0, mem_per_cpu=1024, cpus_per_task=1, ntasks=1, batch_location_hash="loc1"
)
LOCKED = 100 * CREDIT
RATE = market.credits_per_minute(SMALL_JOB, DEFAULT_PRICES)  # 1.03192 credits per minute


# -------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def artifacts() -> Any:
    layout = Layout.from_env()
    return compile_contracts(ensure_node_tools(layout.node), layout.contracts)


@pytest.fixture(scope="module")
def rpc_url(artifacts: Any) -> Iterator[str]:
    with private_anvil(ensure_node_tools(Layout.from_env().node).anvil) as anvil:
        yield anvil.url


@dataclass
class World:
    url: str
    grid: GridAddresses
    c: GridContracts

    def tx(self, who: int, function: str, *args: Any) -> Receipt:
        return self.c.meta_scheduler.transact(Wallet(KEYS[who]), function, *args)

    def job(self, job_id: bytes) -> market.Job:
        return market.job_from_abi(self.c.jobs.call("get", job_id))

    def balance(self, who: int | str) -> int:
        address = ADDRS[who] if isinstance(who, int) else who
        value: int = self.c.credit.call("balanceOf", address)
        return value

    def request(
        self, locked: int = LOCKED, definition: JobDefinition = SMALL_JOB, who: int = CUSTOMER
    ) -> bytes:
        job_id = market.request_job(
            self.url,
            self.grid,
            customer_key=KEYS[who],
            definition=definition,
            locked_credits=locked,
            job_name="test",
        )
        return market.job_id_bytes(job_id)

    def job_at(self, status: int, provider: int = PROVIDER, locked: int = LOCKED) -> bytes:
        """A fresh job brought to a hot ``status`` through the regular path."""
        job_id = self.request(locked)
        if status >= META_SCHEDULED:
            self.tx(ORACLE, "metaSchedule", job_id, ADDRS[provider])
        if status >= SCHEDULED:
            self.tx(provider, "claimNextJob")
        if status >= RUNNING:
            self.tx(provider, "providerSetJobStatus", job_id, RUNNING, 0, "", 0)
        assert self.job(job_id).status == status
        return job_id

    def transitions(self, receipt: Receipt) -> list[tuple[int, int]]:
        return [(e["_from"], e["_to"]) for e in self.c.jobs.events(receipt, "JobTransitionEvent")]


@pytest.fixture(scope="module")
def deployed(rpc_url: str, artifacts: Any) -> GridAddresses:
    """The grid, deployed once per module: two approved providers, two customers with credits."""
    grid = deploy_grid(
        rpc_url, admin_key=KEYS[ADMIN], metascheduler_addr=ADDRS[ORACLE], artifacts=artifacts
    )
    for provider in (PROVIDER, OTHER_PROVIDER):
        market.register_provider(
            rpc_url,
            grid,
            provider_key=KEYS[provider],
            hardware=HARDWARE,
            prices=DEFAULT_PRICES,
            labels=LABELS,
        )
        market.approve_provider(rpc_url, grid, admin_key=KEYS[ADMIN], provider=ADDRS[provider])
    for customer in (CUSTOMER, CUSTOMER2):
        market.mint_credits(
            rpc_url, grid, admin_key=KEYS[ADMIN], to=ADDRS[customer], amount=1000 * CREDIT
        )
    return grid


@pytest.fixture
def world(rpc_url: str, deployed: GridAddresses) -> Iterator[World]:
    """The freshly deployed grid: each test's changes are undone with anvil's evm_revert."""
    with market.connect(rpc_url, deployed) as contracts:
        snapshot = contracts.chain.request("evm_snapshot")
        try:
            yield World(rpc_url, deployed, contracts)
        finally:
            assert contracts.chain.request("evm_revert", [snapshot]) is True


def reverts(name: str, *args: Any) -> Any:
    """Context manager: the block raises ContractRevert ``name`` (with ``args`` if given)."""

    class _Check:
        def __enter__(self) -> None:
            return None

        def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
            assert isinstance(exc, ContractRevert), f"expected {name}, got {exc!r}"
            assert exc.name == name, f"expected {name}, got {exc}"
            if args:
                assert exc.error_args == args, f"expected {name}{args}, got {exc}"
            return True

    return _Check()


# ----------------------------------------------------------------------------------- compilation


def test_compiled_abis_match_the_committed_ones(artifacts: Any) -> None:
    committed = committed_abis()
    for name in EXPORTED:
        assert abi_json(load_artifact(artifacts, name)["abi"]) == abi_json(committed[name]), (
            f"{name}: run python -m testbed.contracts --export-abi"
        )


def test_deployment_wires_the_roles_and_addresses(world: World) -> None:
    ms = world.c.meta_scheduler
    assert ms.call("jobs") == world.grid.jobs
    assert ms.call("providerJobQueues") == world.grid.provider_job_queues
    assert ms.call("providerManager") == world.grid.provider_manager
    assert ms.call("credit") == world.grid.credit
    assert ms.call("constants") == world.grid.constants
    assert ms.call("enableRequestNewJob") is True
    role = ms.call("METASCHEDULER_ROLE")
    assert ms.call("hasRole", role, ADDRS[ORACLE]) is True
    assert ms.call("hasRole", role, ADDRS[PROVIDER]) is False
    assert world.c.jobs.call("hasRole", role, world.grid.meta_scheduler) is True
    assert world.c.credit.call("decimals") == 18


# ------------------------------------------------------------------------------------- providers


@pytest.mark.parametrize(
    ("hardware", "error"),
    [
        (ProviderHardware(0, (), (), ()), "InvalidNodesCount"),
        (ProviderHardware(2, (0,), (8, 8), (16, 16)), "ArrayLengthMismatch"),
        (ProviderHardware(1, (0,), (8,), (0,)), "InvalidTotalMem"),
        (ProviderHardware(1, (0,), (0,), (16,)), "InvalidTotalCpus"),
    ],
)
def test_register_validation(world: World, hardware: ProviderHardware, error: str) -> None:
    with reverts(error):
        market.register_provider(
            world.url,
            world.grid,
            provider_key=KEYS[STRANGER],
            hardware=hardware,
            prices=DEFAULT_PRICES,
            labels=[],
        )


def test_provider_lifecycle_and_reregistration(world: World) -> None:
    pm, me = world.c.provider_manager, ADDRS[STRANGER]
    wallet = Wallet(KEYS[STRANGER])
    args = (
        market.hardware_to_abi(HARDWARE),
        market.prices_to_abi(DEFAULT_PRICES),
        [("os", "linux")],
    )
    receipt = pm.transact(wallet, "register", *args)
    assert [e["_providerAddr"] for e in pm.events(receipt, "ProviderWaitingForApproval")] == [me]
    assert pm.call("isWaitingForApproval", me) is True
    assert pm.call("isValidForScheduling", me) is False
    assert market.get_provider(world.url, world.grid, me).addr == ZERO_ADDRESS
    waiting = market.provider_from_abi(pm.call("getWaitingForApprovalProvider", me))
    assert waiting.hardware == HARDWARE and waiting.labels == (Label("os", "linux"),)

    receipt = pm.transact(Wallet(KEYS[ADMIN]), "approve", me)
    assert len(pm.events(receipt, "ProviderApproved")) == 1
    approved = market.get_provider(world.url, world.grid, me)
    assert approved.addr == me and approved.prices == DEFAULT_PRICES and not approved.is_banned
    assert pm.call("isValidForScheduling", me) is True

    # Same values again: nothing changes.
    receipt = pm.transact(wallet, "register", *args)
    assert pm.events(receipt, "ProviderWaitingForApproval") == []
    assert pm.call("isValidForScheduling", me) is True

    # Changed prices: back to waiting; the approved record stays until approval.
    cheaper = ProviderPrices(1, 2, 3)
    pm.transact(wallet, "register", args[0], market.prices_to_abi(cheaper), args[2])
    assert pm.call("isWaitingForApproval", me) is True
    assert pm.call("isValidForScheduling", me) is False
    assert market.get_provider(world.url, world.grid, me).prices == DEFAULT_PRICES
    with reverts("ProviderNotJoined"):
        world.tx(ORACLE, "metaSchedule", world.request(), me)
    pm.transact(Wallet(KEYS[ADMIN]), "approve", me)
    assert market.get_provider(world.url, world.grid, me).prices == cheaper
    with reverts("WaitingApprovalOnly"):
        pm.transact(Wallet(KEYS[ADMIN]), "approve", me)

    receipt = pm.transact(Wallet(KEYS[ADMIN]), "ban", me)
    assert [
        (e["_providerAddr"], e["_isBanned"]) for e in pm.events(receipt, "ProviderBanChanged")
    ] == [(me, True)]
    assert pm.call("isBanned", me) is True and pm.call("isValidForScheduling", me) is False
    with reverts("AlreadyDone"):
        pm.transact(Wallet(KEYS[ADMIN]), "ban", me)
    with reverts("Banned"):
        world.tx(STRANGER, "claimNextJob")
    pm.transact(Wallet(KEYS[ADMIN]), "unban", me)
    receipt = pm.transact(Wallet(KEYS[ADMIN]), "remove", me)
    assert len(pm.events(receipt, "ProviderRemoved")) == 1
    with reverts("NoProvider"):
        pm.transact(Wallet(KEYS[ADMIN]), "ban", me)


def test_admin_actions_need_the_admin_role(world: World) -> None:
    with reverts("AccessControlUnauthorizedAccount"):
        world.c.provider_manager.transact(Wallet(KEYS[STRANGER]), "approve", ADDRS[STRANGER])
    with reverts("AccessControlUnauthorizedAccount"):
        world.tx(CUSTOMER, "metaSchedule", world.request(), ADDRS[PROVIDER])


# -------------------------------------------------------------------------------------- requests


def test_request_new_job_locks_credits_and_emits(world: World) -> None:
    before = world.balance(CUSTOMER)
    customer = Wallet(KEYS[CUSTOMER])
    world.c.credit.transact(customer, "approve", world.grid.meta_scheduler, LOCKED)
    receipt = world.tx(
        CUSTOMER,
        "requestNewJob",
        market.definition_to_abi(SMALL_JOB),
        LOCKED,
        market.job_name_bytes("hi"),
        True,
    )
    (event,) = world.c.meta_scheduler.events(receipt, "NewJobRequestEvent")
    job_id = event["_jobId"]
    assert event["_customerAddr"] == ADDRS[CUSTOMER]
    assert [e["_jobId"] for e in world.c.jobs.events(receipt, "JobCreated")] == [job_id]
    job = world.job(job_id)
    assert job.status == PENDING and job.customer_addr == ADDRS[CUSTOMER]
    assert job.cost.max_cost == LOCKED and job.cost.delegate_spending_authority is True
    assert job.definition == SMALL_JOB and job.job_name.rstrip(b"\0") == b"hi"
    assert world.balance(CUSTOMER) == before - LOCKED
    assert world.balance(world.grid.meta_scheduler) == LOCKED
    assert world.c.jobs.call("getByCustomer", ADDRS[CUSTOMER]) == (job_id,)


def test_new_job_request_disabled(world: World) -> None:
    market.set_enable_request_new_job(world.url, world.grid, admin_key=KEYS[ADMIN], enable=False)
    assert world.c.meta_scheduler.call("enableRequestNewJob") is False
    with reverts("NewJobRequestDisabled"):
        world.request()


def test_insufficient_funds(world: World) -> None:
    with reverts("InsufficientFunds", 0, LOCKED):  # no allowance
        market.request_job(
            world.url,
            world.grid,
            customer_key=KEYS[CUSTOMER],
            definition=SMALL_JOB,
            locked_credits=LOCKED,
            job_name="x",
            approve=False,
        )
    with reverts("InsufficientFunds", 1000 * CREDIT, 2000 * CREDIT):  # allowance above balance
        world.request(locked=2000 * CREDIT)


def test_invalid_job_definition(world: World) -> None:
    with reverts("InvalidJobDefinition"):
        world.request(
            definition=JobDefinition(
                gpus=0, mem_per_cpu=1024, cpus_per_task=0, ntasks=1, batch_location_hash="x"
            )
        )
    with reverts("InvalidJobDefinition"):
        world.request(
            definition=JobDefinition(
                gpus=0, mem_per_cpu=1024, cpus_per_task=1, ntasks=1, batch_location_hash=""
            )
        )


# ---------------------------------------------------------------------------------------- claims


def test_claim_event_carries_max_duration_of_the_worked_example(world: World) -> None:
    job_id = world.job_at(META_SCHEDULED)
    assert world.c.queues.call("hasNextClaimableJob", ADDRS[PROVIDER]) is True
    receipt = world.tx(PROVIDER, "claimNextJob")
    (event,) = world.c.meta_scheduler.events(receipt, "ClaimJobEvent")
    assert event["maxDurationMinute"] == 96  # 100 credits / 1.03192 credits per minute
    assert event["jobId"] == job_id
    assert event["customerAddr"] == ADDRS[CUSTOMER]
    assert event["providerAddr"] == ADDRS[PROVIDER]
    assert market.definition_from_abi(event["jobDefinition"]) == SMALL_JOB
    assert world.transitions(receipt) == [(META_SCHEDULED, SCHEDULED)]
    assert world.job(job_id).status == SCHEDULED
    assert world.c.queues.call("hasNextClaimableJob", ADDRS[PROVIDER]) is False


def test_claim_max_duration_follows_the_formula(world: World) -> None:
    definition = JobDefinition(
        gpus=1, mem_per_cpu=2048, cpus_per_task=4, ntasks=2, batch_location_hash="big"
    )
    locked = 999 * CREDIT
    job_id = world.request(locked, definition)
    world.tx(ORACLE, "metaSchedule", job_id, ADDRS[PROVIDER])
    claimed = market.claim_next_job(world.url, world.grid, provider_key=KEYS[PROVIDER])
    assert claimed is not None
    rate = market.credits_per_minute(definition, DEFAULT_PRICES)
    assert rate == 2 * (4 * 950 * 10**15 + 80 * 10**12 * 2048 * 4) + 8_500 * 10**15
    assert claimed.max_duration_minute == locked // rate == 57


def test_claim_guards(world: World) -> None:
    with reverts("NoJob"):
        world.tx(PROVIDER, "claimNextJob")
    with reverts("ProviderNotJoined"):
        world.tx(STRANGER, "claimNextJob")
    with reverts("NoJob"):
        world.tx(PROVIDER, "claimNextCancellingJob")
    with reverts("NoJob"):
        world.tx(PROVIDER, "claimNextTopUpJob")


def test_claimable_queue_is_fifo(world: World) -> None:
    jobs = [world.job_at(META_SCHEDULED) for _ in range(3)]
    assert world.c.queues.call("getClaimableJobQueueSize", ADDRS[PROVIDER]) == 3
    claimed = [
        market.claim_next_job(world.url, world.grid, provider_key=KEYS[PROVIDER]) for _ in jobs
    ]
    assert [c.job_id if c else None for c in claimed] == ["0x" + j.hex() for j in jobs]
    assert world.c.queues.call("getClaimableJobQueueSize", ADDRS[PROVIDER]) == 0


def test_stale_claimable_entries_are_skipped(world: World) -> None:
    cancelled = world.job_at(META_SCHEDULED)
    live = world.job_at(META_SCHEDULED)
    world.tx(CUSTOMER, "cancelJob", cancelled)
    claimed = market.claim_next_job(world.url, world.grid, provider_key=KEYS[PROVIDER])
    assert claimed is not None and claimed.job_id == "0x" + live.hex()
    assert world.job(cancelled).status == CANCELLED


# ----------------------------------------------------------------------------------- transitions


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (META_SCHEDULED, CANCELLED),
        (META_SCHEDULED, PANICKED),
        (SCHEDULED, RUNNING),
        (SCHEDULED, CANCELLED),
        (SCHEDULED, FAILED),
        (SCHEDULED, PANICKED),
        (RUNNING, FINISHED),
        (RUNNING, FAILED),
        (RUNNING, CANCELLED),
        (RUNNING, OUT_OF_CREDITS),
        (RUNNING, PANICKED),
    ],
)
def test_allowed_provider_transitions(world: World, start: int, target: int) -> None:
    job_id = world.job_at(start)
    receipt = world.tx(PROVIDER, "providerSetJobStatus", job_id, target, 0, "", 0)
    assert world.transitions(receipt) == [(start, target)]
    assert world.job(job_id).status == target


def test_allowed_market_transitions(world: World) -> None:
    job_id = world.request()
    receipt = world.tx(ORACLE, "metaSchedule", job_id, ADDRS[PROVIDER])
    assert world.transitions(receipt) == [(PENDING, META_SCHEDULED)]
    receipt = world.tx(PROVIDER, "claimNextJob")
    assert world.transitions(receipt) == [(META_SCHEDULED, SCHEDULED)]
    pending = world.request()
    receipt = world.tx(CUSTOMER, "cancelJob", pending)
    assert world.transitions(receipt) == [(PENDING, CANCELLED)]


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (SCHEDULED, FINISHED),
        (SCHEDULED, OUT_OF_CREDITS),
        (SCHEDULED, PENDING),
        (RUNNING, SCHEDULED),
        (RUNNING, META_SCHEDULED),
        (META_SCHEDULED, RUNNING),
        (META_SCHEDULED, FINISHED),
    ],
)
def test_forbidden_transitions(world: World, start: int, target: int) -> None:
    job_id = world.job_at(start)
    with reverts("InvalidTransition", start, target):
        world.tx(PROVIDER, "providerSetJobStatus", job_id, target, 1, "", 0)
    assert world.job(job_id).status == start


def test_same_status_cold_job_and_wrong_provider(world: World) -> None:
    job_id = world.job_at(RUNNING)
    with reverts("SameStatusError"):
        world.tx(PROVIDER, "providerSetJobStatus", job_id, RUNNING, 0, "", 0)
    with reverts("JobProviderOnly", ADDRS[OTHER_PROVIDER], ADDRS[PROVIDER]):
        world.tx(OTHER_PROVIDER, "providerSetJobStatus", job_id, FINISHED, 1, "", 0)
    world.tx(PROVIDER, "providerSetJobStatus", job_id, FINISHED, 1, "", 0)
    with reverts("JobHotStatusOnly", FINISHED):
        world.tx(PROVIDER, "providerSetJobStatus", job_id, FAILED, 1, "", 0)
    with reverts("InvalidJob"):
        world.tx(PROVIDER, "providerSetJobStatus", b"\x01" * 32, RUNNING, 0, "", 0)


# --------------------------------------------------------------------------------------- billing


def test_finished_bills_the_duration_and_refunds_the_rest(world: World) -> None:
    job_id = world.job_at(RUNNING)
    provider_before, customer_before = world.balance(PROVIDER), world.balance(CUSTOMER)
    world.tx(PROVIDER, "providerSetJobStatus", job_id, FINISHED, 10, "", 256)
    cost = 10 * RATE
    assert world.balance(PROVIDER) == provider_before + cost
    assert world.balance(CUSTOMER) == customer_before + LOCKED - cost
    assert world.balance(world.grid.meta_scheduler) == 0
    job = world.job(job_id)
    assert job.cost.final_cost == cost and job.exit_code == 256 and job.time.end > 0


def test_billing_is_capped_at_the_locked_credits(world: World) -> None:
    job_id = world.job_at(RUNNING)
    provider_before, customer_before = world.balance(PROVIDER), world.balance(CUSTOMER)
    receipt = world.tx(PROVIDER, "providerSetJobStatus", job_id, OUT_OF_CREDITS, 500, "", 0)
    (event,) = world.c.meta_scheduler.events(receipt, "BilledTooMuchEvent")
    assert event["_billingAmount"] == 500 * RATE
    assert world.balance(PROVIDER) == provider_before + LOCKED
    assert world.balance(CUSTOMER) == customer_before


def test_panicked_pays_the_provider_nothing(world: World) -> None:
    job_id = world.job_at(RUNNING)
    provider_before, customer_before = world.balance(PROVIDER), world.balance(CUSTOMER)
    world.tx(PROVIDER, "providerSetJobStatus", job_id, PANICKED, 50, "provider lost the job", 0)
    assert world.balance(PROVIDER) == provider_before
    assert world.balance(CUSTOMER) == customer_before + LOCKED
    job = world.job(job_id)
    assert job.last_error == "provider lost the job" and job.cost.final_cost == 0
    assert job.time.panic_timestamp > 0


def test_panic_job_by_the_meta_scheduler(world: World) -> None:
    job_id = world.job_at(SCHEDULED)
    customer_before = world.balance(CUSTOMER)
    with reverts("AccessControlUnauthorizedAccount"):
        world.tx(CUSTOMER, "panicJob", job_id, "no")
    world.tx(ORACLE, "panicJob", job_id, "admin panic")
    assert world.job(job_id).status == PANICKED
    assert world.balance(CUSTOMER) == customer_before + LOCKED


# ---------------------------------------------------------------------------- cancel and top-up


def test_cancel_pending_job_refunds_at_once(world: World) -> None:
    job_id = world.request()
    before = world.balance(CUSTOMER)
    with reverts("CustomerMetaSchedulerProviderOnly"):
        world.tx(CUSTOMER2, "cancelJob", job_id)
    world.tx(CUSTOMER, "cancelJob", job_id)
    assert world.job(job_id).status == CANCELLED
    assert world.balance(CUSTOMER) == before + LOCKED
    with reverts("JobHotStatusOnly", CANCELLED):
        world.tx(CUSTOMER, "cancelJob", job_id)


def test_cancel_running_job_goes_through_the_cancelling_queue(world: World) -> None:
    job_id = world.job_at(RUNNING)
    world.tx(CUSTOMER, "cancelJob", job_id)
    job = world.job(job_id)
    assert (
        job.status == RUNNING and job.has_cancel_request and job.time.cancel_request_timestamp > 0
    )
    assert world.c.queues.call("hasCancellingJob", ADDRS[PROVIDER]) is True
    assert world.c.queues.call("getCancellingJobQueueSize", ADDRS[PROVIDER]) == 1
    receipt = world.tx(PROVIDER, "claimNextCancellingJob")
    (event,) = world.c.meta_scheduler.events(receipt, "ClaimNextCancellingJobEvent")
    assert (event["customerAddr"], event["providerAddr"], event["jobId"]) == (
        ADDRS[CUSTOMER],
        ADDRS[PROVIDER],
        job_id,
    )
    assert world.c.queues.call("hasCancellingJob", ADDRS[PROVIDER]) is False
    provider_before = world.balance(PROVIDER)
    world.tx(PROVIDER, "providerSetJobStatus", job_id, CANCELLED, 2, "", 0)
    assert world.balance(PROVIDER) == provider_before + 2 * RATE
    assert world.job(job_id).status == CANCELLED


def test_top_up_goes_through_the_top_up_queue(world: World) -> None:
    job_id = world.job_at(RUNNING)
    with reverts("CustomerOnly", ADDRS[CUSTOMER2], ADDRS[CUSTOMER]):
        world.tx(CUSTOMER2, "topUpJob", job_id, CREDIT)
    market.top_up_job(
        world.url,
        world.grid,
        customer_key=KEYS[CUSTOMER],
        job_id="0x" + job_id.hex(),
        amount=50 * CREDIT,
    )
    job = world.job(job_id)
    assert job.cost.max_cost == 150 * CREDIT and job.cost.pending_top_up == 50 * CREDIT
    assert world.c.queues.call("getTopUpJobQueueSize", ADDRS[PROVIDER]) == 1
    assert world.c.queues.call("hasTopUpJob", ADDRS[PROVIDER]) is True
    receipt = world.tx(PROVIDER, "claimNextTopUpJob")
    (event,) = world.c.meta_scheduler.events(receipt, "ClaimNextTopUpJobEvent")
    assert event["_jobId"] == job_id and event["_providerAddr"] == ADDRS[PROVIDER]
    assert event["maxDurationMinute"] == 50 * CREDIT // RATE == 48  # an increment, in minutes
    assert world.job(job_id).cost.pending_top_up == 0
    assert world.c.queues.call("hasTopUpJob", ADDRS[PROVIDER]) is False


def test_top_up_before_claim_extends_the_claimed_duration(world: World) -> None:
    job_id = world.job_at(META_SCHEDULED)
    market.top_up_job(
        world.url,
        world.grid,
        customer_key=KEYS[CUSTOMER],
        job_id="0x" + job_id.hex(),
        amount=LOCKED,
    )
    assert world.c.queues.call("hasTopUpJob", ADDRS[PROVIDER]) is False
    claimed = market.claim_next_job(world.url, world.grid, provider_key=KEYS[PROVIDER])
    assert claimed is not None and claimed.max_duration_minute == 2 * LOCKED // RATE


# ----------------------------------------------------------------------------------------- refuse


def test_refuse_returns_the_job_to_pending(world: World) -> None:
    job_id = world.job_at(SCHEDULED)
    with reverts("JobProviderOnly"):
        world.tx(OTHER_PROVIDER, "refuseJob", job_id)
    receipt = world.tx(PROVIDER, "refuseJob", job_id)
    (event,) = world.c.meta_scheduler.events(receipt, "JobRefusedEvent")
    assert (event["_jobId"], event["_providerAddr"], event["_customerAddr"]) == (
        job_id,
        ADDRS[PROVIDER],
        ADDRS[CUSTOMER],
    )
    assert world.transitions(receipt) == [(SCHEDULED, PENDING)]
    job = world.job(job_id)
    assert job.status == PENDING and job.provider_addr == ZERO_ADDRESS
    # The meta-scheduler can place it again, elsewhere.
    world.tx(ORACLE, "metaSchedule", job_id, ADDRS[OTHER_PROVIDER])
    claimed = market.claim_next_job(world.url, world.grid, provider_key=KEYS[OTHER_PROVIDER])
    assert claimed is not None and claimed.job_id == "0x" + job_id.hex()


def test_refuse_only_meta_scheduled_or_scheduled(world: World) -> None:
    job_id = world.job_at(RUNNING)
    with reverts("MetaScheduledScheduledStatusOnly", RUNNING):
        world.tx(PROVIDER, "refuseJob", job_id)


# ------------------------------------------------------------------------- delegate and timeout


def test_delegate_top_up_buys_one_slice_when_time_runs_low(world: World) -> None:
    without = world.job_at(RUNNING)
    with reverts("NoSpendingAuthority"):
        world.tx(STRANGER, "topUpJobDelegate", without)
    world.tx(CUSTOMER, "setDelegateSpendingAuthority", without, True)
    with reverts("RemainingTimeAboveLimit", 96, 60):  # 100 credits buy 96 minutes > 1 slice
        world.tx(STRANGER, "topUpJobDelegate", without)

    low = market.job_id_bytes(
        market.request_job(
            world.url,
            world.grid,
            customer_key=KEYS[CUSTOMER],
            definition=SMALL_JOB,
            locked_credits=50 * CREDIT,  # 48 minutes
            job_name="low",
            delegate_spending_authority=True,
        )
    )
    world.tx(ORACLE, "metaSchedule", low, ADDRS[PROVIDER])
    world.tx(PROVIDER, "claimNextJob")
    world.c.credit.transact(Wallet(KEYS[CUSTOMER]), "approve", world.grid.meta_scheduler, 10**30)
    world.tx(STRANGER, "topUpJobDelegate", low)
    assert world.job(low).cost.max_cost == 50 * CREDIT + 60 * RATE
    receipt = world.tx(PROVIDER, "claimNextTopUpJob")
    (event,) = world.c.meta_scheduler.events(receipt, "ClaimNextTopUpJobEvent")
    assert event["maxDurationMinute"] == 60


def test_timeout_returns_an_unclaimed_job_to_pending(world: World) -> None:
    job_id = world.job_at(META_SCHEDULED)
    with reverts("AccessControlUnauthorizedAccount"):
        world.tx(PROVIDER, "timeoutJob", job_id)
    receipt = world.tx(ORACLE, "timeoutJob", job_id)
    assert world.transitions(receipt) == [(META_SCHEDULED, PENDING)]
    assert world.job(job_id).provider_addr == ZERO_ADDRESS
    assert market.claim_next_job(world.url, world.grid, provider_key=KEYS[PROVIDER]) is None


def test_withdraw_admin(world: World) -> None:
    world.job_at(PENDING)
    with reverts("AccessControlUnauthorizedAccount"):
        world.tx(CUSTOMER, "withdrawAdmin", CREDIT)
    world.tx(ADMIN, "withdrawAdmin", CREDIT)
    assert world.balance(ADMIN) == CREDIT
    assert world.balance(world.grid.meta_scheduler) == LOCKED - CREDIT
