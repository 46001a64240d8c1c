"""The life of one job, as a pure state machine: ``transition(state, event) -> (state, effects)``.

A :class:`Job` record is the whole durable state of one on-chain job on this provider. The
JobActor persists the record returned by :func:`transition` *before* it performs the effects
(write-ahead), performs them in order, and feeds each outcome back as the next event. Nothing
here does I/O, so every path is tested exhaustively in ``tests/unit/test_job_machine.py``.

Phases::

    CLAIMED ──► FETCHING ──► SUBMITTING ──► SUBMITTED ──► RUNNING ──► REPORTING ──► DONE
       │            │             │             └──────────────────────┘  ▲
       │            │             └──► REFUSING ──────────────────────────┤
       └────────────┴──────────────► FAILING ─────────────────────────────┘

- CLAIMED: the claim event is in; the definition is checked (a job that cannot run is failed on
  chain with a reason, never submitted).
- FETCHING: the batch script is being fetched from the sbatch service.
- SUBMITTING: ``sbatch`` may be in flight. The script is kept in the record, since the sbatch
  service forgets it after an hour.
- SUBMITTED: SLURM accepted the job (its SLURM id is recorded); waiting for it to start.
- RUNNING: the chain says RUNNING.
- REPORTING: the final status from SLURM is recorded and is being sent to the chain.
- FAILING / REFUSING: the job is being failed (with a reason) or refused on chain.
- DONE: nothing more to do; the actor ends.

Reports (from the SLURM-side reporters) arrive at any time after submission, possibly out of
order and repeated: a final report is never lost, even while RUNNING is still being sent, and
duplicates change nothing. An ``InvalidTransition`` from SCHEDULED when sending a final status
means the RUNNING report was missed: RUNNING is sent first, then the final status again.

The recovery table (:data:`RECOVERY`, :func:`recover`) says what to do with a record found in the
store at start-up, by phase. Every row is idempotent or checked first: a submission that may have
been in flight is looked up in SLURM by its job name before anything is sent again, so one
on-chain job never becomes two SLURM jobs.

    ============  ======================================================================
    phase         action on restart
    ============  ======================================================================
    CLAIMED       check the definition again (then fetch, or fail on chain)
    FETCHING      fetch the script again
    SUBMITTING    find the job in SLURM by name; submit only if SLURM has none
    SUBMITTED     send the pending report if there is one, else wait for reports
    RUNNING       send the pending report if there is one, else wait for reports
    REPORTING     send the final status again (SameStatusError counts as done)
    FAILING       send FAILED again
    REFUSING      refuse again (a job no longer refusable counts as done)
    DONE          nothing
    ============  ======================================================================
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import msgspec

from actors.grid import ClaimedJob, JobStatus

__all__ = [
    "FINAL_STATUSES",
    "RECOVERY",
    "CancelInSlurm",
    "CancelRequested",
    "ChainApplied",
    "ChainRejected",
    "Effect",
    "Event",
    "FetchScript",
    "FindInSlurm",
    "FoundInSlurm",
    "Job",
    "Phase",
    "RaiseTimeLimit",
    "Refuse",
    "Refused",
    "Reported",
    "ScriptFetched",
    "ScriptUnavailable",
    "SendStatus",
    "Submit",
    "SubmitRefused",
    "Submitted",
    "TopUpRequested",
    "check_definition",
    "new_job",
    "recover",
    "transition",
]

#: The statuses a job ends in on chain when SLURM reports its end.
FINAL_STATUSES = frozenset(
    {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.OUT_OF_CREDITS}
)

#: A job asking for more than this many minutes is still submitted; SLURM enforces its own
#: partition limits. Below one minute there is nothing to run.
MIN_DURATION_MINUTES = 1


class Phase(enum.StrEnum):
    CLAIMED = "CLAIMED"
    FETCHING = "FETCHING"
    SUBMITTING = "SUBMITTING"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    REPORTING = "REPORTING"
    FAILING = "FAILING"
    REFUSING = "REFUSING"
    DONE = "DONE"


class PendingStatus(msgspec.Struct, frozen=True):
    """A status waiting to be written on chain."""

    status: JobStatus
    duration_minutes: int = 0
    exit_code: int = 0
    last_error: str = ""


class Job(msgspec.Struct, frozen=True):
    """Everything the supervisor knows about one claimed job; persisted before each effect."""

    claim: ClaimedJob
    phase: Phase
    script: str | None = None
    slurm_job_id: int | None = None
    #: The last status we know the chain holds for this job (SCHEDULED right after the claim).
    chain_status: JobStatus = JobStatus.SCHEDULED
    #: The status being sent now (REPORTING, FAILING, or RUNNING while SUBMITTED).
    sending: PendingStatus | None = None
    #: A final status reported while another status was being sent; sent next.
    queued: PendingStatus | None = None
    cancel_requested: bool = False
    reason: str = ""
    history: tuple[tuple[str, str], ...] = ()

    @property
    def job_id(self) -> str:
        return self.claim.job_id


# --- events (outcomes fed back to the machine) ----------------------------------------------


class ScriptFetched(msgspec.Struct, frozen=True, tag=True):
    script: str


class ScriptUnavailable(msgspec.Struct, frozen=True, tag=True):
    reason: str


class Submitted(msgspec.Struct, frozen=True, tag=True):
    slurm_job_id: int


class SubmitRefused(msgspec.Struct, frozen=True, tag=True):
    reason: str


class FoundInSlurm(msgspec.Struct, frozen=True, tag=True):
    """The answer to :class:`FindInSlurm`: the SLURM id of our job, or None if SLURM has none."""

    slurm_job_id: int | None


class Reported(msgspec.Struct, frozen=True, tag=True):
    """A status report from SLURM (prolog: RUNNING; completion: a final status)."""

    status: JobStatus
    slurm_job_id: int
    duration_minutes: int = 0
    exit_code: int = 0


class ChainApplied(msgspec.Struct, frozen=True, tag=True):
    """The chain holds the status we sent (or already held it: ``SameStatusError``)."""

    status: JobStatus


class ChainRejected(msgspec.Struct, frozen=True, tag=True):
    """The chain refused the status we sent, with its custom error's name and arguments."""

    status: JobStatus
    error: str
    args: tuple[int | str, ...] = ()


class Refused(msgspec.Struct, frozen=True, tag=True):
    """``refuseJob`` went through (or the job was no longer refusable)."""


class CancelRequested(msgspec.Struct, frozen=True, tag=True):
    """The customer asked to cancel (``ClaimNextCancellingJobEvent``)."""


class TopUpRequested(msgspec.Struct, frozen=True, tag=True):
    extra_minutes: int


Event = (
    ScriptFetched
    | ScriptUnavailable
    | Submitted
    | SubmitRefused
    | FoundInSlurm
    | Reported
    | ChainApplied
    | ChainRejected
    | Refused
    | CancelRequested
    | TopUpRequested
)


# --- effects (what the JobActor must do next) ------------------------------------------------


class FetchScript(msgspec.Struct, frozen=True, tag=True):
    pass


class FindInSlurm(msgspec.Struct, frozen=True, tag=True):
    """Look our job up in SLURM by its name (before submitting again after a crash)."""


class Submit(msgspec.Struct, frozen=True, tag=True):
    script: str
    time_limit_minutes: int


class SendStatus(msgspec.Struct, frozen=True, tag=True):
    status: JobStatus
    duration_minutes: int = 0
    exit_code: int = 0
    last_error: str = ""


class Refuse(msgspec.Struct, frozen=True, tag=True):
    reason: str


class CancelInSlurm(msgspec.Struct, frozen=True, tag=True):
    slurm_job_id: int


class RaiseTimeLimit(msgspec.Struct, frozen=True, tag=True):
    slurm_job_id: int
    extra_minutes: int


Effect = FetchScript | FindInSlurm | Submit | SendStatus | Refuse | CancelInSlurm | RaiseTimeLimit


# --- pure rules ----------------------------------------------------------------------------


def check_definition(claim: ClaimedJob) -> str | None:
    """Why this job cannot run here, or None when it can be submitted."""
    d = claim.definition
    if claim.max_duration_minute < MIN_DURATION_MINUTES:
        return "no time to run: the locked credits buy less than one minute"
    if d.ntasks < 1:
        return "invalid job definition: ntasks must be at least 1"
    if d.cpus_per_task < 1:
        return "invalid job definition: cpusPerTask must be at least 1"
    if d.mem_per_cpu < 1:
        return "invalid job definition: memPerCpu must be at least 1 MB"
    if not d.batch_location_hash:
        return "invalid job definition: no batch script location"
    return None


def new_job(claim: ClaimedJob) -> tuple[Job, list[Effect]]:
    """The record and first effects for a freshly claimed job."""
    return _checked(Job(claim=claim, phase=Phase.CLAIMED, history=((Phase.CLAIMED, "claimed"),)))


def _checked(job: Job) -> tuple[Job, list[Effect]]:
    reason = check_definition(job.claim)
    if reason is not None:
        return _fail(job, reason)
    return _enter(job, Phase.FETCHING, "definition ok"), [FetchScript()]


def _enter(job: Job, phase: Phase, note: str, **changes: object) -> Job:
    history = (*job.history, (phase.value, note))[-32:]
    return msgspec.structs.replace(job, phase=phase, history=history, **changes)


def _fail(job: Job, reason: str) -> tuple[Job, list[Effect]]:
    pending = PendingStatus(JobStatus.FAILED, last_error=reason)
    job = _enter(job, Phase.FAILING, reason, sending=pending, reason=reason)
    return job, [_send(pending)]


def _send(pending: PendingStatus) -> SendStatus:
    return SendStatus(
        pending.status, pending.duration_minutes, pending.exit_code, pending.last_error
    )


def transition(job: Job, event: Event) -> tuple[Job, list[Effect]]:
    """The next record and the effects to perform, for ``event`` happening to ``job``.

    Unexpected events (a late duplicate, an outcome for a step already left) leave the record
    unchanged and ask for nothing.
    """
    phase = job.phase
    if phase is Phase.DONE:
        return job, []
    match event:
        case ScriptFetched(script=script) if phase is Phase.FETCHING:
            job = _enter(job, Phase.SUBMITTING, "script fetched", script=script)
            return job, [Submit(script, job.claim.max_duration_minute)]
        case ScriptUnavailable(reason=reason) if phase is Phase.FETCHING:
            return _fail(job, f"batch script unavailable: {reason}")
        case Submitted(slurm_job_id=slurm_id) if phase is Phase.SUBMITTING:
            job = _enter(job, Phase.SUBMITTED, f"SLURM job {slurm_id}", slurm_job_id=slurm_id)
            if job.cancel_requested:
                return job, [CancelInSlurm(slurm_id)]
            return job, []
        case SubmitRefused(reason=reason) if phase is Phase.SUBMITTING:
            job = _enter(job, Phase.REFUSING, reason, reason=reason)
            return job, [Refuse(reason)]
        case FoundInSlurm(slurm_job_id=slurm_id) if phase is Phase.SUBMITTING:
            if slurm_id is not None:
                return transition(job, Submitted(slurm_id))
            assert job.script is not None, "SUBMITTING always has the script"
            return job, [Submit(job.script, job.claim.max_duration_minute)]
        case Reported() as report:
            return _on_report(job, report)
        case ChainApplied(status=status):
            return _on_applied(job, status)
        case ChainRejected() as rejection:
            return _on_rejected(job, rejection)
        case Refused() if phase is Phase.REFUSING:
            return _enter(job, Phase.DONE, "refused on chain"), []
        case CancelRequested():
            return _on_cancel(job)
        case TopUpRequested(extra_minutes=minutes):
            if job.slurm_job_id is not None and phase in (Phase.SUBMITTED, Phase.RUNNING):
                return job, [RaiseTimeLimit(job.slurm_job_id, minutes)]
            return job, []
    return job, []


def _on_report(job: Job, report: Reported) -> tuple[Job, list[Effect]]:
    if job.phase in (Phase.DONE, Phase.FAILING, Phase.REFUSING, Phase.REPORTING):
        return job, []  # late or duplicate: the final status is already decided
    if job.slurm_job_id is not None and report.slurm_job_id != job.slurm_job_id:
        return job, []  # not our SLURM job (a forgery or a stale duplicate)
    if job.phase in (Phase.CLAIMED, Phase.FETCHING):
        return job, []  # nothing submitted yet: cannot be ours
    if job.phase is Phase.SUBMITTING:
        # The report proves sbatch went through even if its answer was lost.
        job = _enter(
            job,
            Phase.SUBMITTED,
            f"SLURM job {report.slurm_job_id}",
            slurm_job_id=report.slurm_job_id,
        )
    if report.status is JobStatus.RUNNING:
        if job.phase is Phase.RUNNING or job.sending is not None:
            return job, []  # duplicate RUNNING (one per node of a multi-node job)
        pending = PendingStatus(JobStatus.RUNNING)
        return msgspec.structs.replace(job, sending=pending), [_send(pending)]
    if report.status in FINAL_STATUSES:
        final = PendingStatus(report.status, report.duration_minutes, report.exit_code)
        if job.sending is not None:  # RUNNING is on its way: send the final status after it
            return msgspec.structs.replace(job, queued=final), []
        job = _enter(job, Phase.REPORTING, report.status.name, sending=final)
        return job, [_send(final)]
    return job, []


def _on_applied(job: Job, status: JobStatus) -> tuple[Job, list[Effect]]:
    if job.sending is None or job.sending.status is not status:
        return job, []
    job = msgspec.structs.replace(job, chain_status=status, sending=None)
    if status is JobStatus.RUNNING and job.phase is Phase.SUBMITTED:
        job = _enter(job, Phase.RUNNING, "RUNNING on chain")
    if job.queued is not None:
        final, job = job.queued, msgspec.structs.replace(job, queued=None)
        job = _enter(job, Phase.REPORTING, final.status.name, sending=final)
        return job, [_send(final)]
    if status.is_cold:
        return _enter(job, Phase.DONE, f"{status.name} on chain"), []
    return job, []


def _on_rejected(job: Job, rejection: ChainRejected) -> tuple[Job, list[Effect]]:
    sending = job.sending
    if sending is None or sending.status is not rejection.status:
        return job, []
    missed_running = (
        rejection.error == "InvalidTransition"
        and rejection.args[:1] == (JobStatus.SCHEDULED,)
        and rejection.status is not JobStatus.RUNNING
    )
    if missed_running:
        # The RUNNING report was missed: the chain wants RUNNING before a final status.
        running = PendingStatus(JobStatus.RUNNING)
        job = msgspec.structs.replace(job, sending=running, queued=sending)
        return job, [_send(running)]
    # Any other refusal (the job is already cold on chain: JobHotStatusOnly; not ours:
    # JobProviderOnly; ...) ends our part: nothing we send can change it.
    note = f"chain refused {rejection.status.name}: {rejection.error}{rejection.args}"
    job = msgspec.structs.replace(job, sending=None, queued=None, reason=note)
    effects: list[Effect] = []
    if rejection.error == "JobHotStatusOnly" and job.slurm_job_id is not None:
        effects.append(CancelInSlurm(job.slurm_job_id))
    return _enter(job, Phase.DONE, note), effects


def _on_cancel(job: Job) -> tuple[Job, list[Effect]]:
    if job.phase in (Phase.SUBMITTED, Phase.RUNNING) and job.slurm_job_id is not None:
        # SLURM's completion report then carries CANCELLED with the real duration.
        return msgspec.structs.replace(job, cancel_requested=True), [
            CancelInSlurm(job.slurm_job_id)
        ]
    if job.phase in (Phase.CLAIMED, Phase.FETCHING):
        pending = PendingStatus(JobStatus.CANCELLED, last_error="cancelled before submission")
        job = _enter(job, Phase.FAILING, "cancelled before submission", sending=pending)
        return job, [_send(pending)]
    # SUBMITTING: cancel as soon as SLURM's id is known; later phases: already ending.
    return msgspec.structs.replace(job, cancel_requested=True), []


#: What a record found in the store at start-up needs, by phase (see the module docstring).
RECOVERY: dict[Phase, str] = {
    Phase.CLAIMED: "check the definition again",
    Phase.FETCHING: "fetch the script again",
    Phase.SUBMITTING: "find the job in SLURM by name; submit only if SLURM has none",
    Phase.SUBMITTED: "send the pending status if any, else wait for reports",
    Phase.RUNNING: "send the pending status if any, else wait for reports",
    Phase.REPORTING: "send the final status again",
    Phase.FAILING: "send FAILED again",
    Phase.REFUSING: "refuse again",
    Phase.DONE: "nothing",
}


def recover(job: Job) -> tuple[Job, Sequence[Effect]]:
    """The effects that resume ``job`` after a restart (one row of :data:`RECOVERY` each)."""
    match job.phase:
        case Phase.CLAIMED:
            return _checked(job)
        case Phase.FETCHING:
            return job, [FetchScript()]
        case Phase.SUBMITTING:
            return job, [FindInSlurm()]
        case Phase.SUBMITTED | Phase.RUNNING | Phase.REPORTING | Phase.FAILING:
            return job, [_send(job.sending)] if job.sending is not None else []
        case Phase.REFUSING:
            return job, [Refuse(job.reason)]
        case Phase.DONE:
            return job, []
