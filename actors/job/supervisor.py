"""JobsSupervisor: one JobActor per on-chain job, and the dispatcher that routes to them.

The subtree::

    jobs-supervisor        one_for_one, dynamic children
    ├── jobs               JobsDispatcher: claims, cancellations, top-ups and reports come here
    ├── job:0x…            JobActor (transient: restarted after a crash, gone once settled)
    └── job:0x…

The dispatcher is the one address the rest of the tree knows ("jobs"). For a claim it writes the
job's first record (:mod:`actors.records`) **before** it answers (so a claim the chain cursor has
passed is never lost), then starts the job's actor. Reports (the very record the callback server
stored), cancellations and top-ups go to the job's actor, started again from its record when it
is not running; so do the reaper's findings (:class:`Reconcile`). At start it resumes every job
whose record is not settled: that is the process-level half of crash recovery (the per-job half
is the recovery table in :mod:`actors.job.machine`).

Every JobActor shares one :class:`~actors.job.lookups.ReportLookups`, so the SLURM looks behind
unauthenticated reports are coalesced and rate-limited across all jobs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import msgspec

from actors.grid import ClaimedCancel, ClaimedJob, ClaimedTopUp, Report
from actors.job.actor import (
    JobActor,
    JobMessage,
    JobPorts,
    Recovered,
    ReplayReports,
    Requested,
    job_actor_name,
)
from actors.job.lookups import ReportLookups
from actors.job.machine import CancelRequested, Event, Phase, TopUpRequested, new_job
from actors.records import JobRecords, RequestInbox, StoredRequest, cancel_key, top_up_key
from runtime.actor import Actor, ActorStatistics
from runtime.errors import ActorNotFound, ActorStopped, MailboxFull, NameTaken
from runtime.policy import Backoff, Restart, RestartIntensity, Strategy
from runtime.store import Store
from runtime.supervisor import ChildSpec, Supervisor

__all__ = [
    "DISPATCHER_NAME",
    "Accepted",
    "DispatcherStatistics",
    "JobsDispatcher",
    "Reconcile",
    "jobs_supervisor",
]

log = logging.getLogger(__name__)

DISPATCHER_NAME = "jobs"


class Reconcile(msgspec.Struct, frozen=True):
    """From the reaper: ``event``, established from SLURM or the chain, for job ``job_id``;
    without an event, only make sure the job's actor runs (a live job whose actor is not
    running makes no progress) and, with ``replay_reports``, that it reads its inbox again
    (a report waits that it has not applied)."""

    job_id: str
    event: Event | None = None
    replay_reports: bool = False


DispatchMessage = ClaimedJob | ClaimedCancel | ClaimedTopUp | Report | Reconcile


class Accepted(msgspec.Struct, frozen=True):
    """The dispatcher's answer: whether the message reached (or created) a live job."""

    accepted: bool
    reason: str = ""


class DispatcherStatistics(ActorStatistics, frozen=True, kw_only=True):
    """The dispatcher now: how many job actors run beside it."""

    jobs: int


class JobsDispatcher(Actor[DispatchMessage, Accepted]):
    """Routes grid events to job actors, starting them as needed (see the module docstring)."""

    __slots__ = ("_lookups", "_ports", "_records", "_requests", "_store", "_supervisor")

    def __init__(
        self,
        *,
        store: Store,
        ports: JobPorts,
        supervisor: Supervisor,
        lookups: ReportLookups | None = None,
    ) -> None:
        super().__init__(DISPATCHER_NAME, mailbox_size=256)
        self._store = store
        self._records = JobRecords(store)
        self._requests = RequestInbox(store)
        self._ports = ports
        self._supervisor = supervisor
        self._lookups = lookups if lookups is not None else ReportLookups()

    def statistics(self) -> DispatcherStatistics:
        jobs = max(0, self._supervisor.count_children().active - 1)
        return DispatcherStatistics(**self.common_statistics(), jobs=jobs)

    async def started(self) -> None:
        # The subtree only takes dynamic children once it runs, which is after this (its first
        # static child) has started: resume the unsettled jobs from a task of our own.
        self.spawn(self._resume_unsettled)

    async def _resume_unsettled(self) -> None:
        try:
            await self._supervisor.wait_running()
        except ActorStopped:
            return  # the subtree stops before it ran: nothing to resume into
        unsettled = [job.job_id for job in await self._records.live()]
        for job_id in unsettled:
            self._start_job(job_id)
        if unsettled:
            log.info("resuming %d unsettled jobs from the store", len(unsettled))

    async def stopping(self) -> None:
        # The jobs subtree stops before the process's asyncio loop closes: release the kept
        # connection to the sbatch service now (a restart reconnects lazily).
        self._ports.close()

    async def handle(self, message: DispatchMessage) -> Accepted:
        match message:
            case ClaimedJob():
                return await self._claimed(message)
            case ClaimedCancel(job_id=job_id, block_number=block):
                return await self._request(job_id, cancel_key(job_id, block), CancelRequested())
            case ClaimedTopUp(job_id=job_id, extra_minutes=minutes, block_number=block):
                key = top_up_key(job_id, block, minutes)
                return await self._request(job_id, key, TopUpRequested(minutes))
            case Report(job_id=job_id):
                return await self._forward(job_id, message)
            case Reconcile(job_id=job_id, event=event, replay_reports=replay):
                if event is None:
                    return await self._ensure_running(job_id, replay_reports=replay)
                return await self._forward(job_id, Recovered(event))

    async def _claimed(self, claim: ClaimedJob) -> Accepted:
        existing = await self._records.get(claim.job_id)
        if existing is not None and existing.phase is not Phase.DONE:
            return Accepted(True, "already claimed")  # a replayed claim event
        if existing is not None and claim.block_number <= existing.claim.block_number:
            # The same claim read again (the chain cursor replays logs after a restart) for a
            # job already settled: running it again would run it twice. A job refused and
            # claimed again later has a claim of a later block.
            return Accepted(True, "already claimed and settled")
        job, _effects = new_job(claim)  # the actor performs the effects once it runs
        await self._records.put(job)
        self._start_job(claim.job_id)
        return Accepted(True)

    async def _request(
        self, job_id: str, key: str, event: CancelRequested | TopUpRequested
    ) -> Accepted:
        """Store a claimed request before answering (the chain's queue entry is gone: the chain
        actor's cursor moves on once we answer), then hand it to the job's actor."""
        record = await self._records.get(job_id)
        if record is None:
            log.warning("%s for unknown job %s ignored", type(event).__name__, job_id)
            return Accepted(False, "unknown job")
        if record.phase is Phase.DONE:
            return Accepted(False, "job already settled")
        if not await self._requests.offer(key, StoredRequest(job_id, event)):
            return Accepted(True, "already requested")  # a replayed claim event
        return await self._forward(job_id, Requested(key, event))

    async def _forward(self, job_id: str, message: JobMessage) -> Accepted:
        name = job_actor_name(job_id)
        actor = self._supervisor.find_child(name)
        if not isinstance(actor, JobActor):
            record = await self._records.get(job_id)
            if record is None:
                log.warning("%s for unknown job %s ignored", type(message).__name__, job_id)
                return Accepted(False, "unknown job")
            if record.phase is Phase.DONE:
                return Accepted(False, "job already settled")
            # Not running (settling, restarting or never resumed): it reads its reports and
            # requests from the store's inboxes when it starts: nothing is lost by not telling.
            self._start_job(job_id)
            if isinstance(message, Report | Requested):
                return Accepted(True, "job actor starting; it replays the inbox")
            actor = self._supervisor.find_child(name)
            if not isinstance(actor, JobActor):
                return Accepted(False, "job actor not running")
        try:
            await actor.tell(message)
        except ActorStopped:
            return Accepted(False, "job actor stopping")
        return Accepted(True)

    async def _ensure_running(self, job_id: str, *, replay_reports: bool = False) -> Accepted:
        actor = self._supervisor.find_child(job_actor_name(job_id))
        if isinstance(actor, JobActor):
            if replay_reports:
                try:
                    actor.tell_nowait(ReplayReports())
                except (MailboxFull, ActorStopped):
                    return Accepted(True, "running (busy: replays its inbox later)")
                return Accepted(True, "running; replays its inbox")
            return Accepted(True, "running")
        record = await self._records.get(job_id)
        if record is None or record.phase is Phase.DONE:
            return Accepted(False, "no live job")
        log.info("%s: its actor was not running; starting it", job_id)
        self._start_job(job_id)
        return Accepted(True, "started")

    def _start_job(self, job_id: str) -> None:
        spec = ChildSpec(
            id=job_actor_name(job_id),
            start=_job_actor_factory(job_id, self._store, self._ports, self._lookups),
            restart=Restart.TRANSIENT,
            shutdown=10.0,
        )
        # Already there (or the subtree is stopping): nothing to start.
        with contextlib.suppress(NameTaken, ActorNotFound, ActorStopped):
            self._supervisor.start_child_nowait(spec)


def _job_actor_factory(
    job_id: str, store: Store, ports: JobPorts, lookups: ReportLookups
) -> Callable[[], JobActor]:
    return lambda: JobActor(job_id, store=store, ports=ports, lookups=lookups)


def jobs_supervisor(
    *, store: Store, ports: JobPorts, lookups: ReportLookups | None = None
) -> Supervisor:
    """The ``jobs-supervisor`` subtree, with its dispatcher as first (static) child; every job
    actor shares ``lookups`` (one made here if not given)."""
    supervisor: Supervisor
    shared = lookups if lookups is not None else ReportLookups()

    def dispatcher() -> JobsDispatcher:
        return JobsDispatcher(store=store, ports=ports, supervisor=supervisor, lookups=shared)

    supervisor = Supervisor(
        "jobs-supervisor",
        [ChildSpec(id=DISPATCHER_NAME, start=dispatcher, restart=Restart.PERMANENT)],
        strategy=Strategy.ONE_FOR_ONE,
        # Many independent jobs: one failing job must not take the others down with it.
        intensity=RestartIntensity(max_restarts=1000, period_seconds=60.0),
        backoff=Backoff(initial=0.5, maximum=30.0),
    )
    return supervisor
