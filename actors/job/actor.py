"""JobActor: one per on-chain job; performs the effects its state machine asks for.

The actor is a thin shell around :mod:`actors.job.machine`: for every event it computes the next
record with :func:`~actors.job.machine.transition`, **writes the record to the checkpoint store
first** (write-ahead), then performs the effects in order and feeds each outcome back as the next
event. On start it reads its record and resumes through :func:`~actors.job.machine.recover`, so a
restart of the actor or of the whole process continues where the last one stopped.

Reports come from three places, trusted differently:

- the callback server: the :class:`~actors.grid.Report` record it stored in the reports inbox
  (:mod:`actors.records`), handed over as is. A report whose reporter did not prove the shared
  secret is cross-checked with SLURM (:mod:`actors.job.evidence`, looks shared and bounded by
  :mod:`actors.job.lookups`) before the machine sees it, when the machine would send its status
  (a final one; RUNNING while SUBMITTED) or learn a SLURM id from it: a forgery (another SLURM
  job, a job SLURM says still runs or has not started, a job SLURM does not know) is dropped
  with a log line and discarded from the inbox (no tombstone: the genuine report with the same
  fields may still come), and an accepted one is acted on with SLURM's own numbers;
- the inbox itself, replayed on start and when the reaper finds a report waiting
  (:class:`ReplayReports`);
- the reaper (:class:`Recovered`): events it read from SLURM and the chain itself.

A report is acknowledged in the transaction that writes the record it produced (also when the
machine ignores it), so the inbox holds only reports not applied yet.

The customer's cancellations and top-ups (claimed on chain: the chain's queue entry is gone once
claimed) are kept in the store's ``"job-requests"`` inbox by the dispatcher before it answers
the chain actor (:class:`Requested`). The actor applies one by writing the new record *and*
acknowledging the request in one transaction, so a crash at any moment neither loses one nor
applies it twice; requests still pending are replayed on start, after the reports.

The outside world is reached through :class:`JobPorts` (the SLURM actor, the chain actor and the
sbatch client behind it). What an adapter error means is each port's table in
:mod:`actors.job.ports` (an answer event, retry later, or crash): an answer becomes an event (a
script the sbatch service does not have or refuses fails the job on chain); otherwise the port
raises, the actor crashes, its supervisor restarts it with backoff, and recovery resumes from the
persisted phase. Expected refusals come back as values and become events.
"""

from __future__ import annotations

import logging
from typing import Protocol

import msgspec
import trio

from actors.grid import JobStatus, Report
from actors.job.evidence import Accept, Wait, check_report, needs_check
from actors.job.lookups import ReportLookups
from actors.job.machine import (
    CancelInSlurm,
    CancelRequested,
    Effect,
    Event,
    FetchScript,
    FindInSlurm,
    Job,
    Phase,
    RaiseTimeLimit,
    Refuse,
    RequeueInSlurm,
    SendStatus,
    Submit,
    TopUpRequested,
    WriteCustomerLog,
    recover,
    transition,
)
from actors.records import JobRecords, ReportInbox, RequestInbox, report_key
from actors.slurm.messages import SlurmError, SlurmJob
from runtime.actor import Actor, ActorStatistics
from runtime.errors import ActorSystemError
from runtime.logs import bind
from runtime.store import Store

__all__ = [
    "JobActor",
    "JobMessage",
    "JobPorts",
    "JobStatistics",
    "Recovered",
    "ReplayReports",
    "Requested",
    "Resume",
    "job_actor_name",
]

log = logging.getLogger(__name__)

#: How long a final report SLURM still shows COMPLETING is looked at again before it is left
#: to the reaper (seconds, and the pause between looks).
COMPLETING_WAIT = 6.0
COMPLETING_PAUSE = 0.5


class Resume(msgspec.Struct, frozen=True):
    """Sent by the actor to itself on start: perform the recovery row of its phase."""


class Recovered(msgspec.Struct, frozen=True):
    """An event the reaper established from SLURM or the chain itself (trusted as is)."""

    event: Event


class ReplayReports(msgspec.Struct, frozen=True):
    """Read the inbox again (the reaper found a report waiting that this actor did not apply:
    it was not told, or SLURM could not be asked then)."""


class Requested(msgspec.Struct, frozen=True):
    """A request the dispatcher stored under ``key``: apply it, then acknowledge it."""

    key: str
    event: CancelRequested | TopUpRequested


JobMessage = (
    Report | CancelRequested | TopUpRequested | Resume | ReplayReports | Recovered | Requested
)


def job_actor_name(job_id: str) -> str:
    return f"job:{job_id}"


class JobPorts(Protocol):
    """How a job reaches the world. Each method returns the machine event its outcome is."""

    async def fetch_script(self, job: Job) -> Event: ...
    async def submit(self, job: Job, effect: Submit) -> Event: ...
    async def find_in_slurm(self, job: Job) -> Event: ...
    async def send_status(self, job: Job, effect: SendStatus) -> Event: ...
    async def refuse(self, job: Job, effect: Refuse) -> Event: ...
    async def write_customer_log(self, job: Job, effect: WriteCustomerLog) -> Event | None: ...
    async def cancel_in_slurm(self, job: Job, effect: CancelInSlurm) -> Event | None: ...
    async def raise_time_limit(self, job: Job, effect: RaiseTimeLimit) -> Event: ...
    async def requeue_in_slurm(self, job: Job, effect: RequeueInSlurm) -> str | None: ...
    async def slurm_job(self, slurm_job_id: int) -> SlurmJob | None: ...
    def close(self) -> None:
        """Release kept connections (called when the jobs subtree stops)."""


class JobStatistics(ActorStatistics, frozen=True, kw_only=True):
    """One job's actor now: where its job is (``job_phase`` None while its record loads)."""

    job_id: str
    job_phase: Phase | None
    slurm_job_id: int | None
    sending: JobStatus | None
    """The status being written on chain, if one is."""

    def facts(self) -> dict[str, str]:
        if self.job_phase is None:
            return {"phase": "loading"}
        facts = {"phase": self.job_phase.value}
        if self.slurm_job_id is not None:
            facts["slurm"] = str(self.slurm_job_id)
        if self.sending is not None:
            facts["sending"] = self.sending.name
        return facts


class JobActor(Actor[JobMessage, None]):
    """The lifecycle of one job. Its record must be in the store before it starts."""

    __slots__ = (
        "_applied",
        "_job",
        "_job_id",
        "_lookups",
        "_ports",
        "_records",
        "_reports",
        "_requests",
    )

    def __init__(
        self,
        job_id: str,
        *,
        store: Store,
        ports: JobPorts,
        lookups: ReportLookups | None = None,
    ) -> None:
        super().__init__(job_actor_name(job_id), mailbox_size=16)
        self._job_id = job_id
        self._records = JobRecords(store)
        self._reports = ReportInbox(store)
        self._requests = RequestInbox(store)
        self._ports = ports
        self._lookups = lookups if lookups is not None else ReportLookups()
        self._job: Job | None = None
        self._applied: set[str] = set()  # inbox keys applied by this actor (told and replayed)

    @property
    def job(self) -> Job | None:
        return self._job

    def statistics(self) -> JobStatistics:
        job = self._job
        return JobStatistics(
            **self.common_statistics(),
            job_id=self._job_id,
            job_phase=job.phase if job is not None else None,
            slurm_job_id=job.slurm_job_id if job is not None else None,
            sending=job.sending.status if job is not None and job.sending is not None else None,
        )

    async def started(self) -> None:
        job = await self._records.get(self._job_id)
        if job is None:
            raise LookupError(f"no record for job {self._job_id} in the store")
        self._job = job
        # Resume through the mailbox, so that recovery and later messages are handled one at a
        # time, and a port failure is a crash of a running actor (restarted with backoff).
        self.tell_nowait(Resume())

    async def handle(self, message: JobMessage) -> None:
        with bind(actor=self.name, job=self._job_id):
            if isinstance(message, Resume):
                await self._resume()
            elif isinstance(message, ReplayReports):
                await self._replay()
            elif isinstance(message, Report):
                await self._on_report(message)
            elif isinstance(message, Recovered):
                log.info("%s: recovered %s", self._job_id, message.event)
                await self._feed(message.event)
            elif isinstance(message, Requested):
                await self._on_request(message.key, message.event)
            else:
                await self._feed(message)

    async def _resume(self) -> None:
        assert self._job is not None
        job, effects = recover(self._job)
        await self._apply(job, list(effects))
        await self._replay()

    async def _replay(self) -> None:
        """Apply what waits in the inboxes: reports received while this actor was not running
        (or that SLURM could not confirm then), then the customer's requests."""
        assert self._job is not None
        for report in await self._reports.of_job(self._job_id):
            if self._job.phase is not Phase.DONE:
                await self._on_report(report)
        for key, request in await self._requests.of_job(self._job_id):
            await self._on_request(key, request.event)

    async def _on_request(self, key: str, event: CancelRequested | TopUpRequested) -> None:
        """Apply a stored request exactly once: the new record and the acknowledgement are
        written together, before any effect."""
        assert self._job is not None
        if key in self._applied:
            return  # replayed from the inbox and told as well
        self._applied.add(key)
        job, effects = transition(self._job, event)
        await self._records.save(job, request_key=key)
        log.info("%s: %s applied", self._job_id, type(event).__name__)
        self._job = job
        await self._apply(job, effects)

    async def _on_report(self, report: Report) -> None:
        """Apply a reporter's report, cross-checked with SLURM first when it needs to be."""
        assert self._job is not None
        key = report_key(report)
        if key in self._applied:
            return  # told and replayed as well
        if report.authenticated or not needs_check(self._job, report):
            await self._apply_report(report, report)
            return
        checked = await self._cross_check(report)
        if isinstance(checked, Accept):
            await self._apply_report(report, checked.event)
        elif checked is not None:
            log.warning("%s: report %s refused: %s", self._job_id, _describe(report), checked)
            await self._reports.discard(report)

    async def _apply_report(self, report: Report, event: Report) -> None:
        """Feed ``event`` (the report, or what SLURM says instead), writing the new record and
        the acknowledgement of ``report`` together, before any effect."""
        assert self._job is not None
        self._applied.add(report_key(report))
        job, effects = transition(self._job, event)
        await self._records.save(job, report=report)
        if job.phase is not self._job.phase:
            log.info("%s -> %s", self._job_id, job.phase.value)
        self._job = job
        await self._apply(job, effects)

    async def _cross_check(self, report: Report) -> Accept | str | None:
        """SLURM's verdict on an unauthenticated report: Accept, a refusal reason, or None when
        SLURM cannot tell now (unreachable, still completing): the report stays in the inbox
        (looked at again when the reaper finds it waiting) and the reaper recovers the job's end
        from SLURM."""
        deadline = trio.current_time() + COMPLETING_WAIT
        since = report.received_at
        while True:
            try:
                found, since = await self._lookups.slurm_job(
                    self._ports.slurm_job, report.slurm_job_id, since=since
                )
            except (SlurmError, ActorSystemError) as exc:
                log.info("%s: cannot check a report with SLURM now: %s", self._job_id, exc)
                return None
            verdict = check_report(self._job_id, report, found)
            if isinstance(verdict, Accept):
                return verdict
            if not isinstance(verdict, Wait):
                return verdict.reason
            if trio.current_time() >= deadline:
                log.info("%s: report left to the reaper: %s", self._job_id, verdict.reason)
                return None
            await trio.sleep(COMPLETING_PAUSE)
            since += COMPLETING_PAUSE  # a newer look than the one that saw it completing

    async def _feed(self, event: Event) -> None:
        assert self._job is not None
        job, effects = transition(self._job, event)
        await self._apply(job, effects)

    async def _apply(self, job: Job, effects: list[Effect]) -> None:
        """Persist ``job``, then perform ``effects``, feeding outcomes back until none remain."""
        queue = list(effects)
        await self._save(job)
        while queue:
            effect = queue.pop(0)
            event = await self._perform(job, effect)
            if event is None:
                continue
            job, more = transition(job, event)
            await self._save(job)
            queue.extend(more)
        if job.phase is Phase.DONE:
            await self._finish(job)

    async def _save(self, job: Job) -> None:
        """Write ``job`` unless the store already holds it (``self._job`` is what it holds)."""
        if job != self._job:
            await self._records.put(job)
            if self._job is None or job.phase is not self._job.phase:
                log.info("%s -> %s", self._job_id, job.phase.value)
        self._job = job

    async def _perform(self, job: Job, effect: Effect) -> Event | None:
        ports = self._ports
        match effect:
            case FetchScript():
                return await ports.fetch_script(job)
            case Submit():
                return await ports.submit(job, effect)
            case FindInSlurm():
                return await ports.find_in_slurm(job)
            case SendStatus():
                return await ports.send_status(job, effect)
            case Refuse():
                return await ports.refuse(job, effect)
            case WriteCustomerLog():
                return await ports.write_customer_log(job, effect)
            case CancelInSlurm():
                return await ports.cancel_in_slurm(job, effect)
            case RaiseTimeLimit():
                event = await ports.raise_time_limit(job, effect)
                log.info("%s: time limit to %d min: %s", job.job_id, effect.target_minutes, event)
                return event
            case RequeueInSlurm(slurm_job_id=slurm_id):
                refused = await ports.requeue_in_slurm(job, effect)
                if refused is None:
                    log.warning("%s: SLURM never launched job %d: requeued", job.job_id, slurm_id)
                else:
                    log.error("%s: SLURM job %d not requeued: %s", job.job_id, slurm_id, refused)
        return None

    async def _finish(self, job: Job) -> None:
        """The job is settled: acknowledge what still waits for it and end this actor (normally)."""
        await self._records.finish(self._job_id)
        log.info("%s settled: %s", self._job_id, job.history[-1][1] if job.history else "")
        self.request_stop()


def _describe(report: Report) -> str:
    return (
        f"{report.status.name} SLURM job {report.slurm_job_id} "
        f"({report.duration_seconds} s, exit {report.exit_code})"
    )
