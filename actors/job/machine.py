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
- FAILING / REFUSING: the job is being failed or cancelled (with a reason) or refused on chain.
  A job that did not start (definition invalid, script refused, ``sbatch`` refused) first asks
  for :class:`WriteCustomerLog` (the reason line by line on the grid logger, best effort, not
  repeated on recovery), and its ``lastError`` is sanitised, bounded and says what to do
  (:mod:`actors.customer_log`).
- DONE: nothing more to do; the actor ends.

Reports (:class:`~actors.grid.Report`, from the SLURM-side reporters or recovered from SLURM by
the reaper) arrive at any time after submission, possibly out of order and repeated: a final
report is never lost, even while RUNNING is still being sent, and duplicates change nothing. A
report naming another SLURM job than ours is ignored. An ``InvalidTransition`` from SCHEDULED
when sending a final status means the RUNNING report was missed: RUNNING is sent first, then
the final status again.

Cancellation and top-up (the customer's requests, claimed from the chain):

- A cancel before submission sends CANCELLED at once (the chain allows SCHEDULED -> CANCELLED);
  during submission it is remembered and ``scancel`` follows the SLURM id; after submission it is
  ``scancel`` (:class:`CancelInSlurm`), and SLURM's completion report then carries CANCELLED with
  the real duration. If SLURM no longer knows the job (:class:`LostInSlurm`), the job is settled
  CANCELLED with duration 0 (we cannot prove any use), instead of waiting for a report that
  cannot come.
- A top-up adds its minutes to the job's time limit (:attr:`Job.time_limit_minutes`). Before
  submission the limit simply goes into ``sbatch``; after it, :class:`RaiseTimeLimit` asks SLURM
  for the new *absolute* limit, so a repeat after a crash raises nothing twice. It stays pending
  (``limit_pending``) until SLURM's answer is in.
- When the chain settled the job without us (the oracle's ``panicJob``; a refusal or a cancel
  that reassigned it; seen as ``JobHotStatusOnly`` or by the reaper: :class:`ChainMovedOn`), the
  job is DONE and what still runs in SLURM is cancelled.
- A job SLURM has certainly lost (the reaper's :class:`LostInSlurm`: SLURM answered, and knows
  no job of that name in any state) is declared PANICKED ("provider lost the job"), or
  CANCELLED when the customer had asked to cancel it.
- A job SLURM allocated but never launched (the reaper's :class:`LaunchLost`: still waiting for
  its prolog long after its start, as SLURM 22.05 leaves a job whose launch a slurmctld restart
  cut) is requeued (:class:`RequeueInSlurm`): SLURM launches it again under the same id, and
  its reports then flow as usual. A job whose cancel was asked is left to the cancel.

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
    SUBMITTED     send the pending status if any; ``scancel`` again if a cancel was asked;
                  set the time limit again if a top-up is pending; else wait for reports
    RUNNING       as SUBMITTED
    REPORTING     send the final status again (SameStatusError counts as done)
    FAILING       send FAILED (or CANCELLED) again
    REFUSING      refuse again (a job no longer refusable counts as done)
    DONE          nothing
    ============  ======================================================================

Reports that arrived while the job's actor was not running wait in the store's inbox and are
replayed after the recovery row; the reaper backs all of this up from SLURM and the chain.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import msgspec

from actors.customer_log import Failure, last_error, log_lines
from actors.grid import ClaimedJob, JobStatus, Report

__all__ = [
    "FINAL_STATUSES",
    "IN_SLURM",
    "LOST_REASON",
    "RECOVERY",
    "CancelInSlurm",
    "CancelRequested",
    "ChainApplied",
    "ChainMovedOn",
    "ChainRejected",
    "CustomerLogUnwritten",
    "Effect",
    "Event",
    "FetchScript",
    "FindInSlurm",
    "FoundInSlurm",
    "Job",
    "LaunchLost",
    "LostInSlurm",
    "Phase",
    "RaiseTimeLimit",
    "Refuse",
    "Refused",
    "RequeueInSlurm",
    "ScriptFetched",
    "ScriptUnavailable",
    "SendStatus",
    "Submit",
    "SubmitRefused",
    "Submitted",
    "TimeLimitSet",
    "TopUpRequested",
    "WriteCustomerLog",
    "check_definition",
    "new_job",
    "recover",
    "transition",
]

#: The statuses a job ends in on chain when SLURM reports its end.
FINAL_STATUSES = frozenset(
    {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.OUT_OF_CREDITS}
)

#: ``lastError`` of a job SLURM has certainly lost (the words the grid already uses).
LOST_REASON = "provider lost the job"

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


#: Phases in which the job may be in SLURM under a known SLURM id, and not yet ending.
IN_SLURM = frozenset({Phase.SUBMITTED, Phase.RUNNING})


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
    #: Minutes bought by the customer's top-ups so far (added to the claim's duration).
    top_up_minutes: int = 0
    #: A raised time limit SLURM has not confirmed yet.
    limit_pending: bool = False
    reason: str = ""
    history: tuple[tuple[str, str], ...] = ()

    @property
    def job_id(self) -> str:
        return self.claim.job_id

    @property
    def time_limit_minutes(self) -> int:
        """The SLURM time limit this job is owed: the claim's minutes plus every top-up."""
        return self.claim.max_duration_minute + self.top_up_minutes


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


class ChainApplied(msgspec.Struct, frozen=True, tag=True):
    """The chain holds the status we sent (or already held it: ``SameStatusError``)."""

    status: JobStatus


class ChainRejected(msgspec.Struct, frozen=True, tag=True):
    """The chain refused the status we sent, with its custom error's name and arguments."""

    status: JobStatus
    error: str
    args: tuple[int | str, ...] = ()


class ChainMovedOn(msgspec.Struct, frozen=True, tag=True):
    """The chain holds ``status`` for the job and it is no longer ours to change: cold, or
    assigned to another provider (found by the reaper)."""

    status: JobStatus
    note: str = ""


class Refused(msgspec.Struct, frozen=True, tag=True):
    """``refuseJob`` went through (or the job was no longer refusable)."""


class CancelRequested(msgspec.Struct, frozen=True, tag=True):
    """The customer asked to cancel (``ClaimNextCancellingJobEvent``)."""


class TopUpRequested(msgspec.Struct, frozen=True, tag=True):
    extra_minutes: int


class TimeLimitSet(msgspec.Struct, frozen=True, tag=True):
    """SLURM's answer to :class:`RaiseTimeLimit`: raised (or already there), or why not."""

    ok: bool
    detail: str = ""


class LostInSlurm(msgspec.Struct, frozen=True, tag=True):
    """SLURM answered and knows no job of ours (not a connection problem: those are unknown)."""

    reason: str


class CustomerLogUnwritten(msgspec.Struct, frozen=True, tag=True):
    """The grid logger did not take the customer's log lines (the job goes on regardless)."""

    reason: str


class LaunchLost(msgspec.Struct, frozen=True, tag=True):
    """SLURM allocated our job ``slurm_job_id`` but never launched it (see the module docstring)."""

    slurm_job_id: int
    reason: str


Event = (
    ScriptFetched
    | ScriptUnavailable
    | Submitted
    | SubmitRefused
    | FoundInSlurm
    | Report
    | ChainApplied
    | ChainRejected
    | ChainMovedOn
    | Refused
    | CancelRequested
    | TopUpRequested
    | TimeLimitSet
    | LostInSlurm
    | LaunchLost
    | CustomerLogUnwritten
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
    """``scancel`` the job: by SLURM id, or by its name when the id is not known (None). Its
    outcome is :class:`LostInSlurm` when SLURM no longer knows the job, else nothing: SLURM's
    completion report then carries CANCELLED with the real duration."""

    slurm_job_id: int | None


class RaiseTimeLimit(msgspec.Struct, frozen=True, tag=True):
    """Make SLURM's time limit at least ``target_minutes`` (absolute, so repeating is
    harmless). Its outcome is :class:`TimeLimitSet`."""

    slurm_job_id: int
    target_minutes: int


class RequeueInSlurm(msgspec.Struct, frozen=True, tag=True):
    """``scontrol requeue`` the job, so that SLURM launches it again (no outcome event: if SLURM
    refuses, the reaper finds the job still stuck and tells :class:`LaunchLost` again)."""

    slurm_job_id: int


class WriteCustomerLog(msgspec.Struct, frozen=True, tag=True):
    """Write ``lines`` (sanitised, bounded: :mod:`actors.customer_log`) to the customer's job log
    on the grid logger. Best effort: its outcome (:class:`CustomerLogUnwritten` at worst) changes
    nothing, and it is asked for before the chain is told, once (recovery does not repeat it)."""

    lines: tuple[str, ...]


Effect = (
    FetchScript
    | FindInSlurm
    | Submit
    | SendStatus
    | Refuse
    | CancelInSlurm
    | RaiseTimeLimit
    | RequeueInSlurm
    | WriteCustomerLog
)


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
        return _did_not_start(job, reason, Failure.DEFINITION)
    return _enter(job, Phase.FETCHING, "definition ok"), [FetchScript()]


def _enter(job: Job, phase: Phase, note: str, **changes: object) -> Job:
    history = (*job.history, (phase.value, note))[-32:]
    return msgspec.structs.replace(job, phase=phase, history=history, **changes)


def _note(job: Job, note: str, **changes: object) -> Job:
    """A change that stays in the same phase, remembered in the history."""
    return _enter(job, job.phase, note, **changes)


def _fail(job: Job, reason: str, status: JobStatus = JobStatus.FAILED) -> tuple[Job, list[Effect]]:
    pending = PendingStatus(status, last_error=reason)
    job = _enter(job, Phase.FAILING, reason, sending=pending, queued=None, reason=reason)
    return job, [_send(pending)]


def _did_not_start(job: Job, reason: str, failure: Failure) -> tuple[Job, list[Effect]]:
    """FAILED with a ``lastError`` the customer can act on, told to the customer's log first."""
    error = last_error(reason, failure, keep=(job.job_id,))
    job, effects = _fail(job, error)
    return job, [_customer_log(job, reason, error), *effects]


def _customer_log(job: Job, reason: str, error: str) -> WriteCustomerLog:
    """The customer's log lines: the reason as it was given, line by line, then the
    ``lastError`` the chain gets (both sanitised and bounded)."""
    lines = log_lines(f"job {job.job_id} did not start:\n{reason}\n{error}", keep=(job.job_id,))
    return WriteCustomerLog(lines)


def _send(pending: PendingStatus) -> SendStatus:
    return SendStatus(
        pending.status, pending.duration_minutes, pending.exit_code, pending.last_error
    )


def _submit(job: Job) -> Submit:
    assert job.script is not None, "SUBMITTING always has the script"
    return Submit(job.script, job.time_limit_minutes)


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
            return job, [_submit(job)]
        case ScriptUnavailable(reason=reason) if phase is Phase.FETCHING:
            return _did_not_start(job, f"batch script unavailable: {reason}", Failure.SCRIPT)
        case Submitted(slurm_job_id=slurm_id) if phase is Phase.SUBMITTING:
            return _submitted(job, slurm_id)
        case SubmitRefused(reason=reason) if phase is Phase.SUBMITTING:
            refused = f"SLURM refused the job: {reason}"
            error = last_error(refused, Failure.SUBMISSION, keep=(job.job_id,))
            job = _enter(job, Phase.REFUSING, error, reason=error)
            return job, [_customer_log(job, reason, error), Refuse(error)]
        case FoundInSlurm(slurm_job_id=slurm_id) if phase is Phase.SUBMITTING:
            if slurm_id is not None:
                return _submitted(job, slurm_id)
            return job, [_submit(job)]
        case Report() as report:
            return _on_report(job, report)
        case ChainApplied(status=status):
            return _on_applied(job, status)
        case ChainRejected() as rejection:
            return _on_rejected(job, rejection)
        case ChainMovedOn() as moved:
            return _on_moved_on(job, moved)
        case Refused() if phase is Phase.REFUSING:
            return _enter(job, Phase.DONE, "refused on chain"), []
        case CancelRequested():
            return _on_cancel(job)
        case TopUpRequested(extra_minutes=minutes) if minutes > 0:
            return _on_top_up(job, minutes)
        case TimeLimitSet(ok=ok, detail=detail) if job.limit_pending:
            note = f"time limit {job.time_limit_minutes} min" if ok else f"limit: {detail}"
            return _note(job, note, limit_pending=False), []
        case LostInSlurm(reason=reason) if phase in IN_SLURM and job.queued is None:
            if job.cancel_requested:
                return _fail(job, f"cancelled; {reason}", JobStatus.CANCELLED)
            return _fail(job, LOST_REASON, JobStatus.PANICKED)
        case LaunchLost(slurm_job_id=slurm_id, reason=reason) if (
            phase in IN_SLURM and slurm_id == job.slurm_job_id and not job.cancel_requested
        ):
            return _note(job, f"requeue asked of SLURM: {reason}"), [RequeueInSlurm(slurm_id)]
    return job, []


def _submitted(job: Job, slurm_id: int) -> tuple[Job, list[Effect]]:
    job = _enter(job, Phase.SUBMITTED, f"SLURM job {slurm_id}", slurm_job_id=slurm_id)
    effects: list[Effect] = []
    if job.cancel_requested:
        effects.append(CancelInSlurm(slurm_id))
    elif job.limit_pending:  # a top-up arrived while sbatch was in flight
        effects.append(RaiseTimeLimit(slurm_id, job.time_limit_minutes))
    return job, effects


def _on_report(job: Job, report: Report) -> tuple[Job, list[Effect]]:
    if job.phase in (Phase.DONE, Phase.FAILING, Phase.REFUSING, Phase.REPORTING):
        return job, []  # late or duplicate: the final status is already decided
    if job.slurm_job_id is not None and report.slurm_job_id != job.slurm_job_id:
        return job, []  # not our SLURM job (a forgery or a stale duplicate)
    if job.phase in (Phase.CLAIMED, Phase.FETCHING):
        return job, []  # nothing submitted yet: cannot be ours
    effects: list[Effect] = []
    if job.phase is Phase.SUBMITTING:
        # The report proves sbatch went through even if its answer was lost.
        job, effects = _submitted(job, report.slurm_job_id)
    if report.status is JobStatus.RUNNING:
        if job.phase is Phase.RUNNING or job.sending is not None:
            return job, effects  # duplicate RUNNING (one per node of a multi-node job)
        pending = PendingStatus(JobStatus.RUNNING)
        return msgspec.structs.replace(job, sending=pending), [*effects, _send(pending)]
    if report.status in FINAL_STATUSES:
        final = PendingStatus(report.status, report.duration_minutes, report.exit_code)
        if job.sending is not None:  # RUNNING is on its way: send the final status after it
            return msgspec.structs.replace(job, queued=final), []
        job = _enter(job, Phase.REPORTING, report.status.name, sending=final, limit_pending=False)
        return job, [_send(final)]
    return job, effects


def _on_applied(job: Job, status: JobStatus) -> tuple[Job, list[Effect]]:
    if job.sending is None or job.sending.status is not status:
        return job, []
    job = msgspec.structs.replace(job, chain_status=status, sending=None)
    if status is JobStatus.RUNNING and job.phase is Phase.SUBMITTED:
        job = _enter(job, Phase.RUNNING, "RUNNING on chain")
    if job.queued is not None:
        final, job = job.queued, msgspec.structs.replace(job, queued=None)
        job = _enter(job, Phase.REPORTING, final.status.name, sending=final, limit_pending=False)
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
    effects: list[Effect] = []
    if rejection.error == "JobHotStatusOnly":
        effects = _cancel_what_runs(job)
    job = msgspec.structs.replace(job, sending=None, queued=None, reason=note)
    return _enter(job, Phase.DONE, note), effects


def _on_moved_on(job: Job, moved: ChainMovedOn) -> tuple[Job, list[Effect]]:
    if job.sending is not None and job.sending.status is moved.status:
        return _on_applied(job, moved.status)  # our own status made it: the receipt was lost
    note = f"chain holds {moved.status.name}" + (f": {moved.note}" if moved.note else "")
    effects = _cancel_what_runs(job)
    job = msgspec.structs.replace(
        job, sending=None, queued=None, chain_status=moved.status, reason=note
    )
    return _enter(job, Phase.DONE, note), effects


def _cancel_what_runs(job: Job) -> list[Effect]:
    """The ``scancel`` for a job that must not run any more (by name while sbatch may be in
    flight; nothing before submission)."""
    if job.slurm_job_id is not None:
        return [CancelInSlurm(job.slurm_job_id)]
    if job.phase is Phase.SUBMITTING:
        return [CancelInSlurm(None)]
    return []


def _on_cancel(job: Job) -> tuple[Job, list[Effect]]:
    if job.phase in IN_SLURM and job.slurm_job_id is not None:
        # SLURM's completion report then carries CANCELLED with the real duration.
        job = _note(job, "cancel requested", cancel_requested=True)
        return job, [CancelInSlurm(job.slurm_job_id)]
    if job.phase in (Phase.CLAIMED, Phase.FETCHING):
        return _fail(job, "cancelled before submission", JobStatus.CANCELLED)
    if job.phase is Phase.SUBMITTING:  # cancel as soon as SLURM's id is known
        return _note(job, "cancel requested", cancel_requested=True), []
    return job, []  # REPORTING, FAILING, REFUSING: already ending


def _on_top_up(job: Job, minutes: int) -> tuple[Job, list[Effect]]:
    if job.phase in (Phase.REPORTING, Phase.FAILING, Phase.REFUSING):
        return job, []  # ending: no more time is needed
    total = job.top_up_minutes + minutes
    slurm_id = job.slurm_job_id
    if job.phase in IN_SLURM and slurm_id is not None:
        job = _note(job, f"top-up +{minutes} min", top_up_minutes=total, limit_pending=True)
        return job, [RaiseTimeLimit(slurm_id, job.time_limit_minutes)]
    if job.phase is Phase.SUBMITTING:  # sbatch may carry the old limit: check once submitted
        return _note(job, f"top-up +{minutes} min", top_up_minutes=total, limit_pending=True), []
    # CLAIMED, FETCHING: sbatch will carry the new limit
    return _note(job, f"top-up +{minutes} min", top_up_minutes=total), []


#: What a record found in the store at start-up needs, by phase (see the module docstring).
RECOVERY: dict[Phase, str] = {
    Phase.CLAIMED: "check the definition again",
    Phase.FETCHING: "fetch the script again",
    Phase.SUBMITTING: "find the job in SLURM by name; submit only if SLURM has none",
    Phase.SUBMITTED: "send the pending status if any; scancel again if a cancel was asked; "
    "set the time limit again if a top-up is pending; else wait for reports",
    Phase.RUNNING: "as SUBMITTED",
    Phase.REPORTING: "send the final status again",
    Phase.FAILING: "send FAILED (or CANCELLED) again",
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
        case Phase.SUBMITTED | Phase.RUNNING:
            effects: list[Effect] = [_send(job.sending)] if job.sending is not None else []
            if job.slurm_job_id is not None and job.cancel_requested:
                effects.append(CancelInSlurm(job.slurm_job_id))
            elif job.slurm_job_id is not None and job.limit_pending:
                effects.append(RaiseTimeLimit(job.slurm_job_id, job.time_limit_minutes))
            return job, effects
        case Phase.REPORTING | Phase.FAILING:
            return job, [_send(job.sending)] if job.sending is not None else []
        case Phase.REFUSING:
            return job, [Refuse(job.reason)]
        case Phase.DONE:
            return job, []
