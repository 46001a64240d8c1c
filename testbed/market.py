"""The grid market as the testbed drives it: customers, the admin, the meta-scheduler oracle and
(for tests without a supervisor) a provider acting by hand.

Every function takes the node's ``rpc_url`` and the deployed ``GridAddresses`` (see
``testbed.contracts``), opens a short-lived connection, and either returns what it read or waits
for its transaction's receipt. Keys are hex private keys; they only ever sign. Reverts surface as
``testbed.evm.ContractRevert(name, args)``.

Records (Job, Provider, ...) are msgspec Structs in the ABI's field order; ``status`` and
``storage_type`` are the uint8 values of the wire; addresses are checksummed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec

from testbed.contracts import GridAddresses, committed_abis
from testbed.evm import Chain, Contract, Wallet

# ------------------------------------------------------------------------------------- records


class Label(msgspec.Struct, frozen=True):
    key: str
    value: str


class Affinity(msgspec.Struct, frozen=True):
    label: Label
    op: bytes  # 2 bytes, ASCII operator NUL-padded, e.g. b">=" or b"=\x00"


class JobDefinition(msgspec.Struct, frozen=True):
    gpus: int
    mem_per_cpu: int  # MB
    cpus_per_task: int
    ntasks: int
    batch_location_hash: str
    storage_type: int = 0
    uses: tuple[Label, ...] = ()
    affinity: tuple[Affinity, ...] = ()


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
    job_id: str  # 0x + 64 hex
    status: int
    customer_addr: str
    provider_addr: str
    definition: JobDefinition
    cost: JobCost
    time: JobTime
    job_name: bytes
    has_cancel_request: bool
    last_error: str
    exit_code: int


class ProviderHardware(msgspec.Struct, frozen=True):
    nodes: int
    gpus_per_node: tuple[int, ...]
    cpus_per_node: tuple[int, ...]
    mem_per_node: tuple[int, ...]  # MB


class ProviderPrices(msgspec.Struct, frozen=True):
    """Wei of credit per GPU-minute, CPU-minute and MB-minute."""

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
    addr: str
    hardware: ProviderHardware
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


def _labels_to_abi(labels: Sequence[Label]) -> list[tuple[str, str]]:
    return [(label.key, label.value) for label in labels]


def _labels_from_abi(raw: Sequence[Any]) -> tuple[Label, ...]:
    return tuple(Label(key=k, value=v) for k, v in raw)


def definition_to_abi(d: JobDefinition) -> tuple[Any, ...]:
    affinity = [((a.label.key, a.label.value), a.op.ljust(2, b"\0")) for a in d.affinity]
    return (
        d.gpus,
        d.mem_per_cpu,
        d.cpus_per_task,
        d.ntasks,
        d.batch_location_hash,
        d.storage_type,
        _labels_to_abi(d.uses),
        affinity,
    )


def definition_from_abi(raw: Sequence[Any]) -> JobDefinition:
    gpus, mem, cpus, ntasks, location, storage, uses, affinity = raw
    return JobDefinition(
        gpus=gpus,
        mem_per_cpu=mem,
        cpus_per_task=cpus,
        ntasks=ntasks,
        batch_location_hash=location,
        storage_type=storage,
        uses=_labels_from_abi(uses),
        affinity=tuple(Affinity(label=Label(key=k, value=v), op=op) for (k, v), op in affinity),
    )


def job_from_abi(raw: Sequence[Any]) -> Job:
    job_id, status, customer, provider, definition, cost, times, name, cancel, error, code = raw
    return Job(
        job_id="0x" + bytes(job_id).hex(),
        status=status,
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


def hardware_to_abi(h: ProviderHardware) -> tuple[Any, ...]:
    return (h.nodes, list(h.gpus_per_node), list(h.cpus_per_node), list(h.mem_per_node))


def prices_to_abi(p: ProviderPrices) -> tuple[int, int, int]:
    return (p.gpu_price_per_min, p.cpu_price_per_min, p.mem_price_per_min)


def provider_from_abi(raw: Sequence[Any]) -> Provider:
    addr, (nodes, gpus, cpus, mem), prices, labels, banned = raw
    return Provider(
        addr=addr,
        hardware=ProviderHardware(nodes, tuple(gpus), tuple(cpus), tuple(mem)),
        prices=ProviderPrices(*prices),
        labels=_labels_from_abi(labels),
        is_banned=banned,
    )


def job_id_bytes(job_id: str) -> bytes:
    raw = bytes.fromhex(job_id.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"a job id is 32 bytes, got {len(raw)}")
    return raw


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


@lru_cache(maxsize=1)
def _abis() -> dict[str, list[dict[str, Any]]]:
    return committed_abis()


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
    rpc_url: str, grid: GridAddresses, *, metascheduler_key: str, job_id: str, provider: str
) -> None:
    with connect(rpc_url, grid) as g:
        g.meta_scheduler.transact(
            Wallet(metascheduler_key), "metaSchedule", job_id_bytes(job_id), provider
        )


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
            _labels_to_abi(labels),
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
