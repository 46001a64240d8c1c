"""The chain adapter: the meta-scheduler contracts over JSON-RPC, and the ChainActor.

Layers, each usable alone:

- :mod:`~actors.chain.abi` (pure): the committed ABIs, calldata, grid types from ABI tuples
  and logs.
- :mod:`~actors.chain.revert` (pure): revert data to a named :class:`ContractError`; the adapter's
  exception root :class:`ChainError`.
- :mod:`~actors.chain.rpc`: JSON-RPC over HTTP and WebSocket (subscriptions), pure trio.
- :mod:`~actors.chain.transactions`: nonce manager, fees, simulation, resend with a higher fee,
  receipts.
- :mod:`~actors.chain.client`: :class:`MetaSchedulerClient`, typed reads and transactions.
- :mod:`~actors.chain.actor`: :class:`ChainActor` (``"chain"``): subscriptions, event-driven claims,
  cursor backfill; :mod:`~actors.chain.messages` holds what it answers.
"""

from actors.chain.actor import ChainActor, ChainCursor, ChainSettings, ChainValueError
from actors.chain.client import Approval, MetaSchedulerClient
from actors.chain.messages import (
    Applied,
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
)
from actors.chain.revert import ChainError, ContractError
from actors.chain.rpc import OutcomeUnknown, RequestNotSent, RpcError, SubscriptionLost
from actors.chain.transactions import SenderSettings, TransactionTimeout

__all__ = [
    "Applied",
    "Approval",
    "ChainActor",
    "ChainCursor",
    "ChainError",
    "ChainSettings",
    "ChainValueError",
    "ClaimingState",
    "ContractError",
    "GetJob",
    "GetProvider",
    "MetaSchedulerClient",
    "OutcomeUnknown",
    "ProviderApproval",
    "RefuseJob",
    "Register",
    "Rejected",
    "RequestNotSent",
    "RpcError",
    "SenderSettings",
    "SetJobStatus",
    "StartClaiming",
    "StopClaiming",
    "SubscriptionLost",
    "TransactionTimeout",
]
