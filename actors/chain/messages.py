"""What ChainActor (registered as ``"chain"``) answers, and its replies.

Asks and their replies:

=====================================================  =============================================
``StartClaiming()``                                    ``ClaimingState`` (claiming starts at once)
``StopClaiming()``                                     ``ClaimingState`` once in-flight claims ended
``SetJobStatus(job_id, status, duration_minutes,      ``Applied`` | ``Rejected``
last_error, exit_code)``
``RefuseJob(job_id)``                                  ``Applied`` | ``Rejected``
``Register(hardware, prices, labels)``                 ``Applied`` | ``Rejected``
``GetJob(job_id)``                                     ``OnChainJob`` | None (unknown job)
``GetProvider()``                                      ``Provider`` | None (no approved record)
``ProviderApproval()``                                 ``Approval``
=====================================================  =============================================

``Rejected`` is the contract's refusal, by name (``InvalidTransition``, ``JobHotStatusOnly``, ...):
the asker decides. ``SameStatusError`` counts as ``Applied(already=True)``. A broken connection is
not a reply: the ask raises :class:`~actors.chain.rpc.RequestNotSent` (never left, safe to retry),
:class:`~actors.chain.rpc.OutcomeUnknown` (may have taken effect: read the job before retrying) or
:class:`~actors.chain.rpc.RpcError` (the node refused the transaction; it did not take effect).

Claims found for this provider are *told* to the actor named ``"jobs"`` as
:class:`~actors.grid.ClaimedJob`, :class:`~actors.grid.ClaimedCancel` or
:class:`~actors.grid.ClaimedTopUp`.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from actors.chain.client import Approval
from actors.chain.revert import ErrorArg
from actors.grid import Hardware, JobStatus, Label, OnChainJob, Prices, Provider

__all__ = [
    "Applied",
    "Approval",
    "ChainMessage",
    "ChainReply",
    "ClaimingState",
    "GetJob",
    "GetProvider",
    "ProviderApproval",
    "RefuseJob",
    "Register",
    "Rejected",
    "SetJobStatus",
    "StartClaiming",
    "StopClaiming",
    "TransactionOutcome",
]


class StartClaiming(msgspec.Struct, frozen=True):
    """Start claiming this provider's queued work (sent once the provider is approved)."""


class StopClaiming(msgspec.Struct, frozen=True):
    """Stop claiming; the reply comes once the claims in flight have ended (drain)."""


class SetJobStatus(msgspec.Struct, frozen=True):
    """``providerSetJobStatus``: RUNNING, or a final status with whole minutes and exit code."""

    job_id: str
    status: JobStatus
    duration_minutes: int = 0
    last_error: str = ""
    exit_code: int = 0


class RefuseJob(msgspec.Struct, frozen=True):
    """``refuseJob``: give a META_SCHEDULED or SCHEDULED job back to the market."""

    job_id: str


class Register(msgspec.Struct, frozen=True):
    """``register(hardware, prices, labels)``; labels as they should be on chain (normalised)."""

    hardware: Hardware
    prices: Prices
    labels: tuple[Label, ...]


class GetJob(msgspec.Struct, frozen=True):
    job_id: str


class GetProvider(msgspec.Struct, frozen=True):
    """This provider's approved record."""


class ProviderApproval(msgspec.Struct, frozen=True):
    """Is this provider waiting for approval, approved, banned or unknown?"""


class Applied(msgspec.Struct, frozen=True):
    """The transaction was mined and succeeded (``already``: the chain had that status, the
    ``SameStatusError`` case; then nothing was sent and ``tx_hash`` is empty)."""

    tx_hash: str
    block_number: int = 0
    already: bool = False


class Rejected(msgspec.Struct, frozen=True):
    """The contract refused with custom error ``error_name(*args)`` (addresses lowercase, bytes
    as hex). ``tx_hash`` is set when the refusal happened at mining time (the nonce is spent)."""

    error_name: str
    args: tuple[ErrorArg, ...] = ()
    tx_hash: str = ""


class ClaimingState(msgspec.Struct, frozen=True):
    claiming: bool


TransactionOutcome: TypeAlias = Applied | Rejected

ChainMessage: TypeAlias = (
    StartClaiming
    | StopClaiming
    | SetJobStatus
    | RefuseJob
    | Register
    | GetJob
    | GetProvider
    | ProviderApproval
)
ChainReply: TypeAlias = Applied | Rejected | ClaimingState | OnChainJob | Provider | Approval | None
