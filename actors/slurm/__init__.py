"""The SLURM adapter: pure command builders and parsers, pooled SSH, and SlurmActor.

- :mod:`actors.slurm.messages`: records (SlurmJob, Node), the asks and replies, the errors.
- :mod:`actors.slurm.commands`: every command line and every parser (pure).
- :mod:`actors.slurm.ssh`: SshPool, one asyncssh connection per UNIX user, through trio-asyncio.
- :mod:`actors.slurm.actor`: SlurmActor, registered as "slurm".
"""

from actors.slurm.actor import SlurmActor, SlurmStatistics, default_customer_user
from actors.slurm.commands import CommandPaths, hardware_of
from actors.slurm.messages import (
    Cancel,
    CancelSent,
    CommandFailed,
    CommandLost,
    Discover,
    ExtendTimeLimit,
    FindJobs,
    Health,
    HealthCheck,
    JobInfo,
    JobSubmitted,
    Node,
    Requeue,
    Requeued,
    SlurmError,
    SlurmJob,
    SlurmRequest,
    SlurmUnavailable,
    SshUnavailable,
    SubmissionRefused,
    SubmitJob,
    TimeLimitNotRaised,
    TimeLimitRaised,
    UnexpectedOutput,
)
from actors.slurm.ssh import CommandResult, SshPool, SshSettings

__all__ = [
    "Cancel",
    "CancelSent",
    "CommandFailed",
    "CommandLost",
    "CommandPaths",
    "CommandResult",
    "Discover",
    "ExtendTimeLimit",
    "FindJobs",
    "Health",
    "HealthCheck",
    "JobInfo",
    "JobSubmitted",
    "Node",
    "Requeue",
    "Requeued",
    "SlurmActor",
    "SlurmError",
    "SlurmJob",
    "SlurmRequest",
    "SlurmStatistics",
    "SlurmUnavailable",
    "SshPool",
    "SshSettings",
    "SshUnavailable",
    "SubmissionRefused",
    "SubmitJob",
    "TimeLimitNotRaised",
    "TimeLimitRaised",
    "UnexpectedOutput",
    "default_customer_user",
    "hardware_of",
]
