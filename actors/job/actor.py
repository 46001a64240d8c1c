"""JobActor: one per on-chain job; performs the effects its state machine asks for.

The actor is a thin shell around :mod:`actors.job.machine`: for every event it computes the next
record with :func:`~actors.job.machine.transition`, **writes the record to the checkpoint store
first** (write-ahead), then performs the effects in order and feeds each outcome back as the next
event. On start it reads its record and resumes through :func:`~actors.job.machine.recover`, so a
restart of the actor or of the whole process continues where the last one stopped.

Reports come from three places, trusted differently:

- the callback server (``ReportedStatus``), stored in the ``"reports"`` inbox first. A report
  whose reporter did not prove the shared secret is cross-checked with SLURM
  (:mod:`actors.job.evidence`) before the machine sees it, when it carries a final status or
  would tell the machine a SLURM id: a forgery (another SLURM job, a job SLURM says still runs,
  a job SLURM does not know) is dropped with a log line and acknowledged, and an accepted one
  is acted on with SLURM's own duration and exit code;
- the inbox itself, replayed on start (reports received while this actor was not running);
- the reaper (:class:`Recovered`): events it read from SLURM and the chain itself.

The customer's cancellations and top-ups (claimed on chain: the chain's queue entry is gone once
claimed) are kept in the store's ``"job-requests"`` inbox by the dispatcher before it answers
the chain actor (:class:`Requested`). The actor applies one by writing the new record *and*
acknowledging the request in one transaction, so a crash at any moment neither loses one nor
applies it twice; requests still pending are replayed on start, after the reports.

The outside world is reached through :class:`JobPorts` (the SLURM actor, the chain actor and the
sbatch client behind it). A port raises when a connection is broken: the actor crashes, its
supervisor restarts it with backoff, and recovery resumes from the persisted phase. Expected
refusals come back as values and become events.
"""

from __future__ import annotations

import logging
from typing import Protocol

import msgspec
import trio

from actors.callbacks import REPORTS_BOX, ReceivedReport, report_key
from actors.grid import JobStatus, ReportedStatus
from actors.job.evidence import Accept, Wait, check_report, needs_check
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
    Reported,
    RequeueInSlurm,
    SendStatus,
    Submit,
    TopUpRequested,
    recover,
    transition,
)
from actors.slurm.messages import SlurmError, SlurmJob
from runtime.actor import Actor, ActorStatistics
from runtime.errors import ActorSystemError
from runtime.logs import bind
from runtime.store import Store

__all__ = [
    "JOBS_NAMESPACE",
    "REQUESTS_BOX",
    "JobActor",
    "JobMessage",
    "JobPorts",
    "JobStatistics",
    "Recovered",
    "Requested",
    "Resume",
    "StoredRequest",
    "job_actor_name",
]

log = logging.getLogger(__name__)

#: Store namespace of the job records (key: the job id).
JOBS_NAMESPACE = "jobs"

#: Store inbox of the customer's claimed requests (cancel, top-up) not yet applied; keys start
#: with ``<job id>/``, as the reports' do.
REQUESTS_BOX = "job-requests"

#: How long a final report SLURM still shows COMPLETING is looked at again before it is left
#: to the reaper (seconds, and the pause between looks).
COMPLETING_WAIT = 6.0
COMPLETING_PAUSE = 0.5


class Resume(msgspec.Struct, frozen=True):
    """Sent by the actor to itself on start: perform the recovery row of its phase."""


class Recovered(msgspec.Struct, frozen=True):
    """An event the reaper established from SLURM or the chain itself (trusted as is)."""

    event: Event


class StoredRequest(msgspec.Struct, frozen=True):
    """A claimed cancellation or top-up, as kept in :data:`REQUESTS_BOX`."""

    job_id: str
    event: CancelRequested | TopUpRequested


class Requested(msgspec.Struct, frozen=True):
    """A request the dispatcher stored under ``key``: apply it, then acknowledge it."""

    key: str
    event: CancelRequested | TopUpRequested


JobMessage = ReportedStatus | CancelRequested | TopUpRequested | Resume | Recovered | Requested


def job_actor_name(job_id: str) -> str:
    return f"job:{job_id}"


class JobPorts(Protocol):
    """How a job reaches the world. Each method returns the machine event its outcome is."""

    async def fetch_script(self, job: Job) -> Event: ...
    async def submit(self, job: Job, effect: Submit) -> Event: ...
    async def find_in_slurm(self, job: Job) -> Event: ...
    async def send_status(self, job: Job, effect: SendStatus) -> Event: ...
    async def refuse(self, job: Job, effect: Refuse) -> Event: ...
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

    __slots__ = ("_applied", "_job", "_job_id", "_ports", "_store")

    def __init__(self, job_id: str, *, store: Store, ports: JobPorts) -> None:
        super().__init__(job_actor_name(job_id), mailbox_size=16)
        self._job_id = job_id
        self._store = store
        self._ports = ports
        self._job: Job | None = None
        self._applied: set[str] = set()

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
        job = await self._store.get(JOBS_NAMESPACE, self._job_id, Job)
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
            elif isinstance(message, ReportedStatus):
                await self._on_report(message, authenticated=None)
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
        # Reports received while this actor was not running wait in the store's inbox.
        for _key, report in await self._store.pending(
            REPORTS_BOX, ReceivedReport, prefix=self._prefix
        ):
            if report.job_id == self._job_id and self._job.phase is not Phase.DONE:
                await self._on_report(report.reported(), authenticated=report.authenticated)
        for key, request in await self._store.pending(
            REQUESTS_BOX, StoredRequest, prefix=self._prefix
        ):
            if request.job_id == self._job_id:
                await self._on_request(key, request.event)

    @property
    def _prefix(self) -> str:
        """What this job's inbox keys start with."""
        return f"{self._job_id}/"

    async def _on_request(self, key: str, event: CancelRequested | TopUpRequested) -> None:
        """Apply a stored request exactly once: the new record and the acknowledgement are
        written together, before any effect."""
        assert self._job is not None
        if key in self._applied:
            return  # replayed from the inbox and told as well
        self._applied.add(key)
        job, effects = transition(self._job, event)
        async with self._store.transaction() as tx:
            tx.put(JOBS_NAMESPACE, self._job_id, job)
            tx.ack(REQUESTS_BOX, key)
        log.info("%s: %s applied", self._job_id, type(event).__name__)
        self._job = job
        await self._apply(job, effects)

    async def _on_report(self, report: ReportedStatus, *, authenticated: bool | None) -> None:
        """Feed a reporter's report, cross-checked with SLURM first when it needs to be."""
        assert self._job is not None
        event = _as_event(report)
        if not needs_check(self._job, event):
            await self._feed(event)
            return
        if authenticated is None:
            authenticated = await self._authenticated(report)
        if authenticated:
            await self._feed(event)
            return
        checked = await self._cross_check(event)
        if isinstance(checked, Accept):
            await self._feed(checked.event)
        elif checked is not None:
            log.warning("%s: report %s refused: %s", self._job_id, _describe(report), checked)
            await self._store.ack(REPORTS_BOX, report_key(report))

    async def _authenticated(self, report: ReportedStatus) -> bool:
        key = report_key(report)
        for stored_key, stored in await self._store.pending(
            REPORTS_BOX, ReceivedReport, prefix=self._prefix
        ):
            if stored_key == key:
                return stored.authenticated
        return False

    async def _cross_check(self, event: Reported) -> Accept | str | None:
        """SLURM's verdict on an unauthenticated report: Accept, a refusal reason, or None when
        SLURM cannot tell now (unreachable, still completing): the report stays in the inbox
        and the reaper recovers the job's end from SLURM."""
        deadline = trio.current_time() + COMPLETING_WAIT
        while True:
            try:
                found = await self._ports.slurm_job(event.slurm_job_id)
            except (SlurmError, ActorSystemError) as exc:
                log.info("%s: cannot check a report with SLURM now: %s", self._job_id, exc)
                return None
            verdict = check_report(self._job_id, event, found)
            if isinstance(verdict, Accept):
                return verdict
            if not isinstance(verdict, Wait):
                return verdict.reason
            if trio.current_time() >= deadline:
                log.info("%s: report left to the reaper: %s", self._job_id, verdict.reason)
                return None
            await trio.sleep(COMPLETING_PAUSE)

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
            await self._store.put(JOBS_NAMESPACE, self._job_id, job)
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
        """The job is settled: acknowledge its reports and end this actor (normally)."""
        pending = await self._store.pending(REPORTS_BOX, ReceivedReport, prefix=self._prefix)
        mine = [key for key, report in pending if report.job_id == self._job_id]
        requests = await self._store.pending(REQUESTS_BOX, StoredRequest, prefix=self._prefix)
        asked = [key for key, request in requests if request.job_id == self._job_id]
        if mine or asked:
            async with self._store.transaction() as tx:
                for key in mine:
                    tx.ack(REPORTS_BOX, key)
                for key in asked:
                    tx.ack(REQUESTS_BOX, key)
        log.info("%s settled: %s", self._job_id, job.history[-1][1] if job.history else "")
        self.request_stop()


def _as_event(report: ReportedStatus) -> Reported:
    return Reported(
        status=report.status,
        slurm_job_id=report.slurm_job_id,
        duration_minutes=report.duration_minutes,
        exit_code=report.exit_code,
    )


def _describe(report: ReportedStatus) -> str:
    return (
        f"{report.status.name} SLURM job {report.slurm_job_id} "
        f"({report.duration_seconds} s, exit {report.exit_code})"
    )
