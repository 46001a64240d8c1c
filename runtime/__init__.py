"""A small actor runtime on trio: actors with bounded mailboxes, OTP-style supervisors, a registry.

It knows nothing of SLURM, chains or jobs. Import the public names from here::

    from runtime import Actor, ActorRef, ChildSpec, Restart, Strategy, Supervisor
"""

from runtime.actor import (
    DEFAULT_ASK_TIMEOUT,
    DEFAULT_MAILBOX_SIZE,
    DEFAULT_RESTART_WAIT,
    Actor,
    ActorRef,
    ActorStatistics,
    sole_exception,
)
from runtime.errors import (
    ActorCrashed,
    ActorNotFound,
    ActorStopped,
    ActorSystemError,
    AskTimeout,
    Delivery,
    ErrorInfo,
    ErrorTable,
    MailboxFull,
    NameTaken,
    RestartIntensityExceeded,
    delivery_of,
    map_exceptions,
)
from runtime.policy import Backoff, Restart, RestartIntensity, Strategy
from runtime.registry import ActorEntry, ActorNode, Kind, Registry, State, Supervisable
from runtime.statistics import Outcomes, OutcomeTally, Statistics, Timings
from runtime.supervisor import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Supervisor,
    SupervisorStatistics,
)

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "DEFAULT_RESTART_WAIT",
    "Actor",
    "ActorCrashed",
    "ActorEntry",
    "ActorNode",
    "ActorNotFound",
    "ActorRef",
    "ActorStatistics",
    "ActorStopped",
    "ActorSystemError",
    "AskTimeout",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "Delivery",
    "ErrorInfo",
    "ErrorTable",
    "Kind",
    "MailboxFull",
    "NameTaken",
    "OutcomeTally",
    "Outcomes",
    "Registry",
    "Restart",
    "RestartIntensity",
    "RestartIntensityExceeded",
    "State",
    "Statistics",
    "Strategy",
    "Supervisable",
    "Supervisor",
    "SupervisorStatistics",
    "Timings",
    "delivery_of",
    "map_exceptions",
    "sole_exception",
]
