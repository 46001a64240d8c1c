"""The grid market as the testbed drives it: customers, the admin, the meta-scheduler oracle and
(for tests without a supervisor) a provider acting by hand.

Every function takes the node's ``rpc_url`` and the deployed ``GridAddresses`` (see
``testbed.contracts``), opens a short-lived connection, and either returns what it read or waits
for its transaction's receipt. Keys are hex private keys; they only ever sign. Reverts surface as
``testbed.evm.ContractRevert(name, args)``.

The market speaks the grid's own vocabulary: :class:`~actors.grid.Label`,
:class:`~actors.grid.Affinity`, :class:`~actors.grid.JobDefinition` and
:class:`~actors.grid.Hardware` (the ABI's ``ProviderHardware``) are the supervisor's types, and
the definitions, hardware, labels and job ids go to and from their ABI tuples through
:mod:`actors.chain.abi`. Only the records the market reads whole keep a testbed shape of their
own, because the supervisor's types are deliberately smaller:

- :class:`Job` is the chain's whole ``Job`` (every cost and time field, the raw ``bytes32`` name),
  which contract tests assert on, where :class:`~actors.grid.OnChainJob` keeps what the
  supervisor reads;
- :class:`Provider` is ``getProvider``'s record as it is, the all-zero one of an unknown address
  included (:func:`actors.chain.abi.provider_from_abi` turns that into None);
- :class:`ClaimedJob` is one ``ClaimJobEvent`` of a receipt.

Their addresses are checksummed (as the testbed's wallets spell them), where the supervisor's
are lowercase.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec

from actors.chain.abi import (
    CONTRACTS,
    definition_from_abi,
    definition_to_abi,
    hardware_to_abi,
    job_id_bytes,
    labels_to_abi,
    load_abi,
)
from actors.grid import Affinity, Hardware, JobDefinition, JobStatus, Label
from testbed.contracts import GridAddresses
from testbed.evm import Chain, Contract, Wallet

__all__ = [
    "CREDIT",
    "DEFAULT_PRICES",
    "Affinity",
    "ClaimedJob",
    "GridContracts",
    "Hardware",
    "Job",
    "JobCost",
    "JobDefinition",
    "JobTime",
    "Label",
    "Provider",
    "ProviderHardware",
    "ProviderPrices",
    "approve_provider",
    "cancel_job",
    "claim_next_job",
    "connect",
    "credit_balance",
    "credits_per_minute",
    "definition_from_abi",
    "definition_to_abi",
    "get_job",
    "get_provider",
    "hardware_to_abi",
    "job_from_abi",
    "job_id_bytes",
    "job_name_bytes",
    "meta_schedule",
    "mint_credits",
    "panic_job",
    "prices_to_abi",
    "provider_from_abi",
    "provider_set_job_status",
    "refuse_job",
    "register_provider",
    "request_job",
    "set_enable_request_new_job",
    "top_up_job",
]

ProviderHardware = Hardware
"""The ABI's name (``struct ProviderHardware``) for :class:`actors.grid.Hardware`: one class."""

# ------------------------------------------------------------------------------------- records


class JobCost(msgspec.Struct, frozen=True):
    max_cost: int
    final_cost: int
    pending_top_up: int
    delegate_spending_authority: bool


class JobTime(msgspec.Struct, frozen=True):
    submit: int
    start: int
    end: int
    cancel_request_timestamp: int
    block_number_state_change: int
    panic_timestamp: int


class Job(msgspec.Struct, frozen=True):
    """The chain's whole ``Job`` record, in the ABI's field order."""

    job_id: str  # 0x + 64 hex
    status: JobStatus
    customer_addr: str
    provider_addr: str
    definition: JobDefinition
    cost: JobCost
    time: JobTime
    job_name: bytes  # the raw bytes32, NUL-padded
    has_cancel_request: bool
    last_error: str
    exit_code: int


class ProviderPrices(msgspec.Struct, frozen=True):
    """Wei of credit per GPU-minute, CPU-minute and MB-minute (:class:`actors.grid.Prices` under
    the ABI's field names)."""

    gpu_price_per_min: int
    cpu_price_per_min: int
    mem_price_per_min: int


DEFAULT_PRICES = ProviderPrices(
    gpu_price_per_min=8_500_000_000_000_000_000,
    cpu_price_per_min=950_000_000_000_000_000,
    mem_price_per_min=80_000_000_000_000,
)
CREDIT = 10**18  # wei per credit


class Provider(msgspec.Struct, frozen=True):
    """``getProvider``'s record as it is: addr 0x00..00 and zeros for an unknown address."""

    addr: str
    hardware: Hardware
    prices: ProviderPrices
    labels: tuple[Label, ...]
    is_banned: bool


class ClaimedJob(msgspec.Struct, frozen=True):
    """A ClaimJobEvent."""

    customer_addr: str
    provider_addr: str
    job_id: str
    max_duration_minute: int
    definition: JobDefinition


# ------------------------------------------------------------------------- ABI tuple conversions


def job_from_abi(raw: Sequence[Any]) -> Job:
    job_id, status, customer, provider, definition, cost, times, name, cancel, error, code = raw
    return Job(
        job_id="0x" + bytes(job_id).hex(),
        status=JobStatus(status),
        customer_addr=customer,
        provider_addr=provider,
        definition=definition_from_abi(definition),
        cost=JobCost(*cost),
        time=JobTime(*times),
        job_name=bytes(name),
        has_cancel_request=cancel,
        last_error=error,
        exit_code=code,
    )


def prices_to_abi(p: ProviderPrices) -> tuple[int, int, int]:
    return (p.gpu_price_per_min, p.cpu_price_per_min, p.mem_price_per_min)


def provider_from_abi(raw: Sequence[Any]) -> Provider:
    addr, (nodes, gpus, cpus, mem), prices, labels, banned = raw
    return Provider(
        addr=addr,
        hardware=Hardware(nodes, tuple(gpus), tuple(cpus), tuple(mem)),
        prices=ProviderPrices(*prices),
        labels=tuple(Label(key=k, value=v) for k, v in labels),
        is_banned=banned,
    )


def job_name_bytes(name: str) -> bytes:
    """The on-chain jobName: UTF-8, right-padded with zeros to 32 bytes (longer is cut)."""
    return name.encode()[:32].ljust(32, b"\0")


def credits_per_minute(d: JobDefinition, p: ProviderPrices) -> int:
    """The reference pricing formula (wire-interfaces.md section 1.8)."""
    per_task = p.cpu_price_per_min * d.cpus_per_task + (
        p.mem_price_per_min * d.mem_per_cpu * d.cpus_per_task
    )
    return d.ntasks * per_task + p.gpu_price_per_min * d.gpus


# ------------------------------------------------------------------------------------ contracts


@dataclass(frozen=True)
class GridContracts:
    """The deployed contracts, bound to one open connection."""

    chain: Chain
    meta_scheduler: Contract
    jobs: Contract
    queues: Contract
    provider_manager: Contract
    credit: Contract
    constants: Contract


@cache
def _abis() -> dict[str, list[dict[str, Any]]]:
    """The committed ABIs, as the supervisor reads them (package data of ``contracts``)."""
    return {name: load_abi(name) for name in CONTRACTS}


@contextmanager
def connect(rpc_url: str, grid: GridAddresses) -> Iterator[GridContracts]:
    """The grid's contracts on one connection, closed on exit."""
    abis = _abis()
    with Chain(rpc_url) as chain:
        yield GridContracts(
            chain=chain,
            meta_scheduler=chain.contract(grid.meta_scheduler, abis["MetaScheduler"]),
            jobs=chain.contract(grid.jobs, abis["JobRepository"]),
            queues=chain.contract(grid.provider_job_queues, abis["ProviderJobQueues"]),
            provider_manager=chain.contract(grid.provider_manager, abis["ProviderManager"]),
            credit=chain.contract(grid.credit, abis["Credit"]),
            constants=chain.contract(grid.constants, abis["Constants"]),
        )


# ----------------------------------------------------------------------------------- admin side


def mint_credits(
    rpc_url: str, grid: GridAddresses, *, admin_key: str, to: str, amount: int
) -> None:
    """Mint ``amount`` wei of credit to ``to`` (the admin owns the Credit token)."""
    with connect(rpc_url, grid) as g:
        g.credit.transact(Wallet(admin_key), "mint", to, amount)


def approve_provider(rpc_url: str, grid: GridAddresses, *, admin_key: str, provider: str) -> None:
    with connect(rpc_url, grid) as g:
        g.provider_manager.transact(Wallet(admin_key), "approve", provider)


def set_enable_request_new_job(
    rpc_url: str, grid: GridAddresses, *, admin_key: str, enable: bool
) -> None:
    with connect(rpc_url, grid) as g:
        g.meta_scheduler.transact(Wallet(admin_key), "setEnableRequestNewJob", enable)


# -------------------------------------------------------------------------------- customer side


def request_job(
    rpc_url: str,
    grid: GridAddresses,
    *,
    customer_key: str,
    definition: JobDefinition,
    locked_credits: int,
    job_name: str,
    delegate_spending_authority: bool = False,
    approve: bool = True,
) -> str:
    """Allow the MetaScheduler to take ``locked_credits`` (unless ``approve`` is False), request
    the job and return its id (``0x`` + 64 hex)."""
    customer = Wallet(customer_key)
    with connect(rpc_url, grid) as g:
        if approve:
            g.credit.transact(customer, "approve", grid.meta_scheduler, locked_credits)
        receipt = g.meta_scheduler.transact(
            customer,
            "requestNewJob",
            definition_to_abi(definition),
            locked_credits,
            job_name_bytes(job_name),
            delegate_spending_authority,
        )
        (event,) = g.meta_scheduler.events(receipt, "NewJobRequestEvent")
    return "0x" + bytes(event["_jobId"]).hex()


def cancel_job(rpc_url: str, grid: GridAddresses, *, customer_key: str, job_id: str) -> None:
    with connect(rpc_url, grid) as g:
        g.meta_scheduler.transact(Wallet(customer_key), "cancelJob", job_id_bytes(job_id))


def top_up_job(
    rpc_url: str, grid: GridAddresses, *, customer_key: str, job_id: str, amount: int
) -> None:
    """Allow the MetaScheduler to take ``amount`` more credits and top the job up with them."""
    customer = Wallet(customer_key)
    with connect(rpc_url, grid) as g:
        g.credit.transact(customer, "approve", grid.meta_scheduler, amount)
        g.meta_scheduler.transact(customer, "topUpJob", job_id_bytes(job_id), amount)


# -------------------------------------------------------------------------- meta-scheduler side


def meta_schedule(
    rpc_url: str,
    grid: GridAddresses,
    *,
    metascheduler_key: str,
    job_id: str,
    provider: str,
    sending: Callable[[], None] | None = None,
) -> int:
    """Returns the block that holds the ``metaSchedule``; ``sending`` is called right before the
    signed transaction leaves (benchmarks time it)."""
    with connect(rpc_url, grid) as g:
        receipt = g.meta_scheduler.transact(
            Wallet(metascheduler_key),
            "metaSchedule",
            job_id_bytes(job_id),
            provider,
            sending=sending,
        )
    return int(str(receipt["blockNumber"]), 16)


def panic_job(
    rpc_url: str, grid: GridAddresses, *, metascheduler_key: str, job_id: str, last_error: str
) -> None:
    with connect(rpc_url, grid) as g:
        g.meta_scheduler.transact(
            Wallet(metascheduler_key), "panicJob", job_id_bytes(job_id), last_error
        )


# -------------------------------------------------------------------------------- provider side


def register_provider(
    rpc_url: str,
    grid: GridAddresses,
    *,
    provider_key: str,
    hardware: ProviderHardware,
    prices: ProviderPrices,
    labels: Sequence[Label],
) -> None:
    with connect(rpc_url, grid) as g:
        g.provider_manager.transact(
            Wallet(provider_key),
            "register",
            hardware_to_abi(hardware),
            prices_to_abi(prices),
            labels_to_abi(labels),
        )


def claim_next_job(rpc_url: str, grid: GridAddresses, *, provider_key: str) -> ClaimedJob | None:
    """Claim the next job of the provider's queue; None if only stale entries were popped."""
    with connect(rpc_url, grid) as g:
        receipt = g.meta_scheduler.transact(Wallet(provider_key), "claimNextJob")
        events = g.meta_scheduler.events(receipt, "ClaimJobEvent")
    if not events:
        return None
    e = events[0]
    return ClaimedJob(
        customer_addr=e["customerAddr"],
        provider_addr=e["providerAddr"],
        job_id="0x" + bytes(e["jobId"]).hex(),
        max_duration_minute=e["maxDurationMinute"],
        definition=definition_from_abi(e["jobDefinition"]),
    )


def provider_set_job_status(
    rpc_url: str,
    grid: GridAddresses,
    *,
    provider_key: str,
    job_id: str,
    status: int,
    duration_minute: int = 0,
    last_error: str = "",
    exit_code: int = 0,
) -> None:
    with connect(rpc_url, grid) as g:
        g.meta_scheduler.transact(
            Wallet(provider_key),
            "providerSetJobStatus",
            job_id_bytes(job_id),
            status,
            duration_minute,
            last_error,
            exit_code,
        )


def refuse_job(rpc_url: str, grid: GridAddresses, *, provider_key: str, job_id: str) -> None:
    with connect(rpc_url, grid) as g:
        g.meta_scheduler.transact(Wallet(provider_key), "refuseJob", job_id_bytes(job_id))


# ----------------------------------------------------------------------------------------- reads


def get_job(rpc_url: str, grid: GridAddresses, job_id: str) -> Job:
    with connect(rpc_url, grid) as g:
        return job_from_abi(g.jobs.call("get", job_id_bytes(job_id)))


def get_provider(rpc_url: str, grid: GridAddresses, addr: str) -> Provider:
    """The approved record of ``addr`` (all zero, addr 0x00..00, if it never joined)."""
    with connect(rpc_url, grid) as g:
        return provider_from_abi(g.provider_manager.call("getProvider", addr))


def credit_balance(rpc_url: str, grid: GridAddresses, addr: str) -> int:
    with connect(rpc_url, grid) as g:
        balance: int = g.credit.call("balanceOf", addr)
    return balance
