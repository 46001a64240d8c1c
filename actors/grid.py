"""The grid's own vocabulary: jobs, their definitions and statuses, providers, hardware, prices.

Plain data and pure conversions only, shared by every adapter (chain, SLURM, sbatch, callbacks)
and by the job state machine. Nothing here performs I/O.

Identifiers travel as canonical strings: a job id is ``0x`` + 64 lowercase hex digits (the SLURM
job name), an address is ``0x`` + 40 lowercase hex digits. The chain adapter converts to and from
raw bytes at its boundary.
"""

from __future__ import annotations

import enum
import re

import msgspec

from config.values import normalise_label

__all__ = [
    "COLD_STATUSES",
    "HOT_STATUSES",
    "Affinity",
    "ClaimedCancel",
    "ClaimedJob",
    "ClaimedTopUp",
    "Hardware",
    "JobDefinition",
    "JobStatus",
    "Label",
    "OnChainJob",
    "Prices",
    "Provider",
    "Report",
    "address",
    "job_id",
    "normalise_labels",
]

_JOB_ID = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")


def job_id(value: str | bytes) -> str:
    """The canonical job id (``0x`` + 64 lowercase hex) of a bytes32 or a hex string.

    Raises ValueError for anything that is not exactly 32 bytes.
    """
    if isinstance(value, bytes):
        if len(value) != 32:
            raise ValueError(f"a job id is 32 bytes, got {len(value)}")
        return "0x" + value.hex()
    text = value.lower()
    if not text.startswith("0x"):
        text = "0x" + text
    if not _JOB_ID.fullmatch(text):
        raise ValueError(f"not a job id (0x + 64 hex digits): {value!r}")
    return text


def address(value: str | bytes) -> str:
    """The canonical (lowercase) ``0x`` address of 20 raw bytes or a hex string."""
    if isinstance(value, bytes):
        if len(value) != 20:
            raise ValueError(f"an address is 20 bytes, got {len(value)}")
        return "0x" + value.hex()
    text = value.lower()
    if not _ADDRESS.fullmatch(text):
        raise ValueError(f"not an address (0x + 40 hex digits): {value!r}")
    return text


class JobStatus(enum.IntEnum):
    """On-chain job status (``uint8``). Hot statuses can still change; cold ones are final."""

    PENDING = 0
    META_SCHEDULED = 1
    SCHEDULED = 2
    RUNNING = 3
    CANCELLED = 4
    FINISHED = 5
    FAILED = 6
    OUT_OF_CREDITS = 7
    PANICKED = 8

    @property
    def is_hot(self) -> bool:
        return self in HOT_STATUSES

    @property
    def is_cold(self) -> bool:
        return not self.is_hot


HOT_STATUSES = frozenset(
    {JobStatus.PENDING, JobStatus.META_SCHEDULED, JobStatus.SCHEDULED, JobStatus.RUNNING}
)
COLD_STATUSES = frozenset(set(JobStatus) - HOT_STATUSES)


class Label(msgspec.Struct, frozen=True, order=True):
    key: str
    value: str


class Affinity(msgspec.Struct, frozen=True):
    """A constraint on provider labels: ``op`` is the ASCII operator (``"=="``, ``"in"``, ...)."""

    label: Label
    op: str


class JobDefinition(msgspec.Struct, frozen=True):
    """What a customer asked for. ``gpus`` is for the whole job; ``mem_per_cpu`` is in MB."""

    gpus: int
    mem_per_cpu: int
    cpus_per_task: int
    ntasks: int
    batch_location_hash: str
    storage_type: int = 0
    uses: tuple[Label, ...] = ()
    affinity: tuple[Affinity, ...] = ()


class Hardware(msgspec.Struct, frozen=True):
    """A provider's hardware as registered on chain (per-node arrays, memory in MB)."""

    nodes: int
    gpus_per_node: tuple[int, ...]
    cpus_per_node: tuple[int, ...]
    mem_per_node: tuple[int, ...]


class Prices(msgspec.Struct, frozen=True):
    """Prices in wei of credit per GPU-minute, CPU-minute and MB-minute."""

    gpu_per_min: int
    cpu_per_min: int
    mem_per_min: int


class Provider(msgspec.Struct, frozen=True):
    address: str
    hardware: Hardware
    prices: Prices
    labels: tuple[Label, ...]
    is_banned: bool


class OnChainJob(msgspec.Struct, frozen=True):
    """The fields of the chain's ``Job`` the supervisor reads (times in unix seconds)."""

    job_id: str
    status: JobStatus
    customer: str
    provider: str
    definition: JobDefinition
    max_cost: int
    final_cost: int
    start: int
    end: int
    job_name: str
    has_cancel_request: bool
    last_error: str
    exit_code: int


class ClaimedJob(msgspec.Struct, frozen=True):
    """A ``ClaimJobEvent`` for us: the market handed this job to this provider."""

    job_id: str
    customer: str
    provider: str
    max_duration_minute: int
    definition: JobDefinition
    block_number: int = 0


class ClaimedCancel(msgspec.Struct, frozen=True):
    """A ``ClaimNextCancellingJobEvent`` for us: the customer wants the job cancelled."""

    job_id: str
    customer: str
    provider: str
    block_number: int = 0


class ClaimedTopUp(msgspec.Struct, frozen=True):
    """A ``ClaimNextTopUpJobEvent`` for us: raise the job's time limit by ``extra_minutes``."""

    job_id: str
    provider: str
    extra_minutes: int
    block_number: int = 0


class Report(msgspec.Struct, frozen=True):
    """A job's status as the SLURM side reported it (prolog: RUNNING; completion: the end),
    already mapped to the chain's status: the one shape of a report once it is off the wire.

    The callback server decodes ``SetJobStatusRequest`` into this, stores it in the reports
    inbox and hands that same record to the job's actor, whose state machine takes it as its
    event; a report the supervisor established from SLURM's own records (the reaper, the
    cross-check) has this shape too.

    ``duration_seconds`` and ``exit_code`` are as SLURM gives them (the raw wait status); the
    chain receives whole minutes. ``authenticated``: the reporter proved it knows the shared
    secret (the C++ plugins cannot; such reports are cross-checked with SLURM before they are
    believed). ``received_at``: when the callback server took it (unix seconds; 0 when not
    received from a reporter), so that a report nobody can act on expires.
    """

    job_id: str
    slurm_job_id: int
    status: JobStatus
    duration_seconds: int = 0
    exit_code: int = 0
    authenticated: bool = False
    received_at: float = 0.0

    @property
    def duration_minutes(self) -> int:
        return self.duration_seconds // 60


def normalise_labels(labels: dict[str, str] | tuple[Label, ...]) -> tuple[Label, ...]:
    """Labels as the grid stores them: spelled by :func:`config.values.normalise_label`
    (lowercase, runs of other characters than ``[a-z0-9._-]`` become ``-``), sorted by key, the
    last value winning on a duplicate key."""
    pairs = labels.items() if isinstance(labels, dict) else ((lb.key, lb.value) for lb in labels)
    merged = {normalise_label(key): normalise_label(value) for key, value in pairs}
    return tuple(Label(k, v) for k, v in sorted(merged.items()))
