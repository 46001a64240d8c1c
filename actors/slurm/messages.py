"""What the SLURM adapter talks about: SLURM's records, the asks SlurmActor answers, its errors.

Records (what SLURM says, parsed by :mod:`actors.slurm.commands`):

- :class:`SlurmJob`: one SLURM job as ``squeue``, ``scontrol show job`` or ``sacct`` shows it.
- :class:`Node`: one compute node of the configured partition.

Asks (send with ``await ref("slurm").ask(message, timeout=...)``) and their replies:

=========================================  =====================================================
``SubmitJob(job_id, customer, ...)``       :class:`JobSubmitted` or :class:`SubmissionRefused`
``FindJobs(job_name)``                     ``list[SlurmJob]`` (every state, sorted by id)
``JobInfo(slurm_job_id)``                  :class:`SlurmJob` or ``None`` (SLURM forgot it)
``Cancel(slurm_job_id= | job_name=)``      :class:`CancelSent`
``Requeue(slurm_job_id)``                  :class:`Requeued`
``ExtendTimeLimit(slurm_job_id, extra)``   :class:`TimeLimitRaised` or :class:`TimeLimitNotRaised`
``Discover(include_unresponsive)``         ``list[Node]``
``HealthCheck()``                          :class:`Health`
``SubmitBatch(user, job_name, ...)``       :class:`JobSubmitted` or :class:`SubmissionRefused`
``ReadOutput(user, path)``                 :class:`OutputRead` (``found`` False when missing)
=========================================  =====================================================

The asks are commands to SLURM, named apart from the job machine's effects and events
(:mod:`actors.job.machine`): ``SubmitJob`` answers the machine's ``Submit`` effect with
``JobSubmitted`` / ``SubmissionRefused`` (the machine's ``Submitted`` / ``SubmitRefused``
events); ``ExtendTimeLimit`` adds minutes (relative), where the machine's ``RaiseTimeLimit`` names
the limit to reach (absolute) and the job port reads the job first to turn one into the other.

Expected refusals are replies (values). Transport trouble is raised, from one flat family rooted
at :class:`SlurmError`, split by what the caller may do next (each error's ``delivery``, a
:class:`runtime.errors.Delivery`):

- :class:`SlurmUnavailable` (and its SSH-level case :class:`SshUnavailable`), never sent: the
  command never took effect. Safe to retry, after a pause.
- :class:`CommandLost`, may have taken effect: the command started and then the connection
  dropped or it timed out. After a lost ``sbatch``, look the job up by name (``FindJobs``)
  before submitting again.
- :class:`CommandFailed`, answered: the command ran and said no in a way that is not the
  customer's fault (a misconfigured path, a permission problem).
- :class:`UnexpectedOutput`, may have taken effect: SLURM answered something the parsers do not
  understand (an ``sbatch`` whose answer cannot be read may have queued the job).
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import msgspec

from actors.grid import JobDefinition
from runtime.errors import Delivery

__all__ = [
    "ENDED_STATES",
    "Cancel",
    "CancelSent",
    "CommandFailed",
    "CommandLost",
    "Discover",
    "ExtendTimeLimit",
    "FindJobs",
    "Health",
    "HealthCheck",
    "JobInfo",
    "JobSubmitted",
    "Node",
    "OutputRead",
    "ReadOutput",
    "Requeue",
    "Requeued",
    "SlurmError",
    "SlurmJob",
    "SlurmRequest",
    "SlurmUnavailable",
    "SshUnavailable",
    "SubmissionRefused",
    "SubmitBatch",
    "SubmitJob",
    "TimeLimitNotRaised",
    "TimeLimitRaised",
    "UnexpectedOutput",
]

# --- records ---------------------------------------------------------------------------------

ENDED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)
"""SLURM job states after which nothing more happens to the job (COMPLETING is not one: the
job's processes are still being cleaned up and its final state is not known yet)."""


class SlurmJob(msgspec.Struct, frozen=True):
    """One SLURM job.

    ``exit_code_raw`` is the wait status SLURM keeps (``exit_status << 8 | exit_signal``), the
    number the completion reporter puts on chain; ``exit_status``/``exit_signal`` are its halves.
    ``time_limit_minutes`` is None for UNLIMITED. ``start``/``end`` are the controller's local
    time as SLURM prints it (no zone), None while unknown. ``name`` is the one field the job's
    owner can rewrite (``scontrol update JobName=``); the job's comment, work folder and output
    paths are not read at all (see :mod:`actors.slurm.commands`).
    """

    slurm_job_id: int
    name: str
    state: str
    exit_code_raw: int = 0
    exit_status: int = 0
    exit_signal: int = 0
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    elapsed_seconds: int = 0
    time_limit_minutes: int | None = None
    user: str = ""
    partition: str = ""
    reason: str = ""

    @property
    def has_ended(self) -> bool:
        """True once the job reached a final state (see :data:`ENDED_STATES`)."""
        return self.state in ENDED_STATES

    @property
    def awaiting_launch(self) -> bool:
        """SLURM counts the job as RUNNING but still waits for its prolog: not launched yet."""
        return self.state == "RUNNING" and self.reason == "Prolog"


class Node(msgspec.Struct, frozen=True):
    """One compute node: CPUs, memory in MB and GPUs as configured (``CfgTRES``)."""

    name: str
    cpus: int
    memory_mb: int
    gpus: int
    state: str
    responding: bool
    partitions: tuple[str, ...] = ()


# --- asks --------------------------------------------------------------------------------------


class SubmitJob(msgspec.Struct, frozen=True):
    """Submit ``script`` for on-chain job ``job_id`` as ``customer``'s UNIX user.

    Replies :class:`JobSubmitted` or :class:`SubmissionRefused`; raises :class:`CommandLost` when
    the ``sbatch`` may have gone through (look it up with :class:`FindJobs` before retrying).
    """

    job_id: str
    customer: str
    definition: JobDefinition
    time_limit_minutes: int
    script: str


class JobSubmitted(msgspec.Struct, frozen=True):
    """SLURM queued the job as ``slurm_job_id``, owned by ``user``."""

    slurm_job_id: int
    user: str


class SubmissionRefused(msgspec.Struct, frozen=True):
    """The job cannot run here, for ``reason``: an unusable definition (never sent) or sbatch's
    own refusal (e.g. "Requested node configuration is not available")."""

    reason: str


class FindJobs(msgspec.Struct, frozen=True):
    """Every SLURM job named ``job_name``, in any state (squeue, plus sacct when accounting is
    on). Replies ``list[SlurmJob]``."""

    job_name: str


class JobInfo(msgspec.Struct, frozen=True):
    """One job by SLURM id. Replies :class:`SlurmJob`, or None when SLURM no longer knows it."""

    slurm_job_id: int


class Cancel(msgspec.Struct, frozen=True):
    """``scancel`` as the admin, by SLURM id or by job name (exactly one). Replies
    :class:`CancelSent`; ``scancel`` succeeds for jobs that already ended or never existed."""

    slurm_job_id: int | None = None
    job_name: str | None = None


class CancelSent(msgspec.Struct, frozen=True):
    target: str


class Requeue(msgspec.Struct, frozen=True):
    """``scontrol requeue`` as the admin: the job goes back to the queue and is launched again
    under the same SLURM id (an ended job too: SLURM runs it again). Replies :class:`Requeued`."""

    slurm_job_id: int


class Requeued(msgspec.Struct, frozen=True):
    """``ok``: SLURM took the job back; else ``detail`` says why not."""

    slurm_job_id: int
    ok: bool
    detail: str = ""


class ExtendTimeLimit(msgspec.Struct, frozen=True):
    """Raise a job's time limit by ``extra_minutes`` (relative; as the admin: owners may only
    lower it), checked by reading it back."""

    slurm_job_id: int
    extra_minutes: int


class TimeLimitRaised(msgspec.Struct, frozen=True):
    """The limit went from ``old_minutes`` to ``new_minutes`` (None: UNLIMITED, left alone)."""

    slurm_job_id: int
    old_minutes: int | None
    new_minutes: int | None


class TimeLimitNotRaised(msgspec.Struct, frozen=True):
    """SLURM does not know the job, it has ended, or the read-back differs."""

    slurm_job_id: int
    reason: str


class Discover(msgspec.Struct, frozen=True):
    """The nodes of the configured partition. Replies ``list[Node]``."""

    include_unresponsive: bool = False


class HealthCheck(msgspec.Struct, frozen=True):
    """Is the controller reachable over SSH as the admin (``scontrol ping``)? Replies
    :class:`Health`; it never raises for SSH or SLURM trouble."""


class Health(msgspec.Struct, frozen=True):
    ok: bool
    detail: str
    latency_seconds: float


class SubmitBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Submit one of the supervisor's own batch jobs (benchmarks) as ``user``: ``nodes`` whole
    nodes (``--exclusive --mem=0``), ``ntasks_per_node`` tasks of ``cpus_per_task`` CPUs, on the
    configured partition. ``comment`` must not start with "supervisor" (the reporters would take
    the job for a grid job). ``output`` is relative to ``user``'s home unless absolute; ``%j``
    is the SLURM job id. Replies :class:`JobSubmitted` or :class:`SubmissionRefused`."""

    user: str
    job_name: str
    comment: str
    time_limit_minutes: int
    nodes: int
    ntasks_per_node: int
    cpus_per_task: int
    gpus_per_node: int = 0
    nodelist: str = ""
    output: str
    script: str


class ReadOutput(msgspec.Struct, frozen=True):
    """The text of the file at ``path`` on the login node (a job's output), read as ``user``
    (relative paths start at its home). At most ``max_bytes`` are returned (the tail)."""

    user: str
    path: str
    max_bytes: int = 4 * 1024 * 1024


class OutputRead(msgspec.Struct, frozen=True):
    path: str
    found: bool
    text: str = ""


SlurmRequest = (
    SubmitJob
    | FindJobs
    | JobInfo
    | Cancel
    | Requeue
    | ExtendTimeLimit
    | Discover
    | HealthCheck
    | SubmitBatch
    | ReadOutput
)

# --- errors ------------------------------------------------------------------------------------


class SlurmError(Exception):
    """Base class of every error the SLURM adapter raises."""


class SlurmUnavailable(SlurmError):
    """The command never took effect (SLURM or SSH could not be reached): safe to retry."""

    delivery: ClassVar[Delivery] = Delivery.NEVER_SENT


class SshUnavailable(SlurmUnavailable):
    """The command never started: the connection, authentication or host-key check failed, or
    no channel could be opened. ``reason`` is one of "connect", "auth", "host-key", "timeout",
    "channel", "backoff"."""

    def __init__(self, user: str, reason: str, detail: str) -> None:
        super().__init__(f"ssh as {user!r} unavailable ({reason}): {detail}")
        self.user = user
        self.reason = reason


class CommandLost(SlurmError):
    """The command started, then the connection dropped or the timeout expired: it may have
    taken effect."""

    delivery: ClassVar[Delivery] = Delivery.MAY_HAVE_TAKEN_EFFECT

    def __init__(self, user: str, detail: str) -> None:
        super().__init__(f"command as {user!r} lost: {detail}")
        self.user = user


class CommandFailed(SlurmError):
    """A SLURM command ran and failed in a way the adapter cannot turn into an answer."""

    delivery: ClassVar[Delivery] = Delivery.ANSWERED

    def __init__(self, command: str, exit_status: int, stderr: str) -> None:
        first = stderr.strip().splitlines()[0] if stderr.strip() else "(no message)"
        super().__init__(f"{command} exited with {exit_status}: {first}")
        self.exit_status = exit_status
        self.stderr = stderr


class UnexpectedOutput(SlurmError):
    """A SLURM command printed something the parsers do not understand."""

    delivery: ClassVar[Delivery] = Delivery.MAY_HAVE_TAKEN_EFFECT
