"""What SLURM's own records prove about a job, as machine events: pure functions, no I/O.

Two users:

- the JobActor, which cross-checks a report the reporter did not authenticate before acting on
  it (:func:`needs_check`, :func:`check_report`): an unauthenticated final report is believed
  only when SLURM says the same (the job under that SLURM id has our name, has ended, in the
  same state), and then **SLURM's** duration and exit code are used, not the report's; an
  unauthenticated RUNNING that the machine would send to the chain is checked as carefully
  (the job under that SLURM id has our name and has started: a job SLURM still lists as
  PENDING has not);
- the ReaperActor, which recovers the end of a job whose report was lost
  (:func:`report_from_slurm`).

The mapping of SLURM's end states is the one the grid's completion plugin uses: FAILED ->
FAILED, TIMEOUT -> OUT_OF_CREDITS, CANCELLED -> CANCELLED, every other end (COMPLETED,
NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, ...) -> FINISHED; the duration is end - start in seconds;
the exit code is SLURM's raw wait status.
"""

from __future__ import annotations

import msgspec

from actors.grid import JobStatus, Report
from actors.job.machine import FINAL_STATUSES, Job, Phase
from actors.slurm.messages import SlurmJob

__all__ = [
    "STARTED_STATES",
    "Accept",
    "Refuse",
    "Verdict",
    "Wait",
    "check_report",
    "duration_seconds",
    "ended_report",
    "needs_check",
    "report_from_slurm",
    "slurm_end_status",
    "started_report",
]

#: SLURM states of a job that has started and not ended (the prolog has run).
STARTED_STATES = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED"})


def slurm_end_status(state: str) -> JobStatus:
    """The chain status of a SLURM end state (as the completion plugin maps it)."""
    base = state.split()[0].upper() if state.split() else ""
    if base == "FAILED":
        return JobStatus.FAILED
    if base == "TIMEOUT":
        return JobStatus.OUT_OF_CREDITS
    if base == "CANCELLED":
        return JobStatus.CANCELLED
    return JobStatus.FINISHED


def duration_seconds(job: SlurmJob) -> int:
    """Seconds the job ran: end - start when SLURM knows both, else its elapsed time."""
    if job.start is not None and job.end is not None:
        return max(0, int((job.end - job.start).total_seconds()))
    return max(0, job.elapsed_seconds)


def ended_report(job: SlurmJob) -> Report:
    """The final report SLURM's record of an ended job amounts to."""
    return Report(
        job_id=job.name.lower(),
        slurm_job_id=job.slurm_job_id,
        status=slurm_end_status(job.state),
        duration_seconds=duration_seconds(job),
        exit_code=job.exit_code_raw,
    )


def started_report(job: SlurmJob) -> Report:
    """The RUNNING report SLURM's record of a started (or ended) job amounts to."""
    return Report(job.name.lower(), job.slurm_job_id, JobStatus.RUNNING)


def report_from_slurm(job: SlurmJob) -> Report | None:
    """The report SLURM's record proves: the end of an ended job, RUNNING for a started one,
    None for one still waiting to start."""
    if job.has_ended:
        return ended_report(job)
    if job.state in STARTED_STATES:
        return started_report(job)
    return None


class Accept(msgspec.Struct, frozen=True):
    """Act on ``event`` (built from SLURM's record, not from the report)."""

    event: Report


class Refuse(msgspec.Struct, frozen=True):
    """SLURM contradicts the report: drop it."""

    reason: str


class Wait(msgspec.Struct, frozen=True):
    """SLURM cannot confirm it yet (the job is still completing): look again shortly."""

    reason: str


Verdict = Accept | Refuse | Wait


def needs_check(job: Job, event: Report) -> bool:
    """Whether an unauthenticated report must be cross-checked with SLURM before the machine
    sees it: a status the machine would send (a final one; RUNNING while the job is SUBMITTED
    and nothing is being sent), or any report that would tell the machine a SLURM id it does
    not know yet (during submission)."""
    if job.slurm_job_id is not None and event.slurm_job_id != job.slurm_job_id:
        return False  # the machine ignores it anyway
    if job.phase is Phase.SUBMITTING:
        return True
    if job.phase not in (Phase.SUBMITTED, Phase.RUNNING):
        return False
    if event.status in FINAL_STATUSES:
        return True
    running = event.status is JobStatus.RUNNING
    return running and job.phase is Phase.SUBMITTED and job.sending is None


def check_report(job_id: str, event: Report, slurm: SlurmJob | None) -> Verdict:
    """Compare a report with what SLURM says of that SLURM id (``slurm``: ``JobInfo``'s answer,
    None when SLURM does not know the id)."""
    number = event.slurm_job_id
    if slurm is None:
        return Refuse(f"SLURM does not know SLURM job {number}")
    if slurm.slurm_job_id != number or slurm.name.lower() != job_id:
        return Refuse(f"SLURM job {number} is not job {job_id}")
    if event.status is JobStatus.RUNNING:
        if slurm.has_ended or slurm.state in STARTED_STATES:
            return Accept(started_report(slurm))
        return Refuse(f"SLURM says {slurm.state}, not started")
    if not slurm.has_ended:
        if slurm.state == "COMPLETING":
            return Wait("SLURM job is still completing")
        return Refuse(f"SLURM says {slurm.state}, not ended")
    status = slurm_end_status(slurm.state)
    if status is not event.status:
        return Refuse(f"SLURM says {slurm.state} ({status.name}), not {event.status.name}")
    return Accept(ended_report(slurm))
