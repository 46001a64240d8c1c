"""ReaperActor (``"reaper"``): reconciles the store, SLURM and the chain for every live job.

Reporters can be down, reports can be lost, the supervisor can die between any two steps. The
reaper does not trust any one of them: at start (a few seconds after the tree is up) and then
every ``interval`` seconds it takes the **live jobs from the store** (records not DONE: never a
scan of the chain from block 0), asks SLURM (``FindJobs``: ``squeue -t all`` by job name, plus
``sacct`` when accounting is on) and the chain (``jobs.get``) about each, and settles every
difference by an explicit rule, :func:`reconcile` (pure; tested row by row in
``tests/unit/test_reaper.py``):

===================================================  =========================================
what the three say                                   action
===================================================  =========================================
chain: the job is assigned to another provider       tell ``ChainMovedOn``: DONE, scancel
chain: a cold status (panicked by the oracle, ...)   tell ``ChainMovedOn``: DONE (our own
                                                     status: the lost receipt; else scancel)
SLURM: our SLURM job has ended                       first remember since when; after
                                                     ``report_grace`` seconds (the completion
                                                     report had its chance): tell the final
                                                     report recovered from SLURM (state,
                                                     duration, exit code)
SLURM: started, store still SUBMITTED, nothing       tell RUNNING (the prolog report was lost)
being sent
SLURM: not ended, a cancel was asked                 tell ``CancelRequested`` (scancel again)
SLURM: RUNNING, still waiting for its prolog         tell ``LaunchLost``: requeue in SLURM
``launch_grace`` seconds after its start             (SLURM lost the launch; see below)
SLURM answered: no job of that name in any state     remember since when; after ``lost_grace``
                                                     seconds, with no fresh report of our
                                                     SLURM job waiting in the inbox: tell
                                                     ``LostInSlurm`` (PANICKED, or CANCELLED if
                                                     the customer asked)
SLURM could not be asked (SSH down, timeout)         nothing: unknown is not lost
chain could not be asked                             SLURM's rules only
anything else                                        nothing
===================================================  =========================================

A job SLURM allocated and whose launch a slurmctld restart cut (SLURM 22.05, reproduced on the
testbed by stopping slurmctld ~0.1 s after an allocation) stays RUNNING with ``Reason=Prolog``
and never starts, until its time limit: the customer pays for nothing. Node registrations do
not clear it; ``scontrol requeue`` does, so the job is launched again under the same id.

The chain rules come first; SLURM's rules apply to jobs in SUBMITTED or RUNNING (earlier phases
belong to the job's own recovery, later ones are already sending their final status). Each
action is a machine event told to the job's actor through the dispatcher (:class:`Reconcile`),
so the job's state machine, not the reaper, decides: a late or duplicate finding changes
nothing. A live job without a finding is still named to the dispatcher, which starts its actor
if it is not running (a live job whose actor is gone would make no progress).

Also on each sweep, the reports inbox (:mod:`actors.records`; a job's actor acknowledges each
report it applies, so what waits there has not been applied) is sorted by
:func:`sort_reports`: strays, which nobody can act on (for a job we do not have or that is
settled, naming another SLURM job than the job's, or waiting longer than ``report_expiry``), are
acknowledged with a log line; a live job with a report still waiting is named to the dispatcher
so that its actor reads its inbox again. A waiting report holds the "lost" rule back only while
it is younger than ``lost_grace``: no report, forged or not, blocks a rule for ever. And at
start, the transactions the previous process left pending are re-checked by hash and nonce
(:mod:`actors.chain.pending`), then again on each sweep until each is settled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

import msgspec
import trio

from actors.chain.messages import GetJob
from actors.chain.pending import StoredTransaction, StorePendingLog, recheck_pending
from actors.chain.revert import ChainError
from actors.chain.rpc import HttpRpc
from actors.grid import OnChainJob, Report
from actors.job.evidence import STARTED_STATES, ended_report, started_report
from actors.job.machine import (
    IN_SLURM,
    CancelRequested,
    ChainMovedOn,
    Event,
    Job,
    LaunchLost,
    LostInSlurm,
    Phase,
)
from actors.job.supervisor import Accepted, Reconcile
from actors.records import JobRecords, ReportInbox
from actors.slurm.messages import FindJobs, SlurmError, SlurmJob
from config.schema import Reaper
from runtime.actor import Actor, ActorStatistics
from runtime.errors import ActorSystemError
from runtime.store import Store

__all__ = [
    "ChainAnswer",
    "ChainUnknown",
    "Ended",
    "Missing",
    "ReaperActor",
    "ReaperSettings",
    "ReaperStatistics",
    "SlurmAnswer",
    "SlurmUnknown",
    "Stray",
    "Sweep",
    "SweepReport",
    "Tell",
    "launch_lost",
    "provider_address",
    "reconcile",
    "settings_from_config",
    "sort_reports",
]

log = logging.getLogger(__name__)

# --- what each side says ------------------------------------------------------------------------


class SlurmAnswer(msgspec.Struct, frozen=True):
    """SLURM answered: every SLURM job with our job's name, in any state (maybe none)."""

    jobs: tuple[SlurmJob, ...]


class SlurmUnknown(msgspec.Struct, frozen=True):
    """SLURM could not be asked (SSH down, a timeout, a command lost): nothing is known."""

    reason: str


class ChainAnswer(msgspec.Struct, frozen=True):
    """The chain's record of the job (None: the chain does not know it)."""

    job: OnChainJob | None


class ChainUnknown(msgspec.Struct, frozen=True):
    reason: str


SlurmView = SlurmAnswer | SlurmUnknown
ChainView = ChainAnswer | ChainUnknown

# --- what to do ---------------------------------------------------------------------------------


class Tell(msgspec.Struct, frozen=True):
    """Tell the job's actor ``event``."""

    event: Event


class Missing(msgspec.Struct, frozen=True):
    """SLURM knows no job of ours yet; remember since when (not lost yet)."""


class Ended(msgspec.Struct, frozen=True):
    """SLURM says our job ended; remember since when (its completion report may be on its
    way: it is the grid plugins' own account of the end, so it gets a moment to arrive)."""


Action = Tell | Missing | Ended


def reconcile(
    job: Job,
    slurm: SlurmView,
    chain: ChainView,
    *,
    provider: str,
    missing_for: float | None,
    lost_grace: float,
    report_waiting: bool,
    ended_for: float | None = None,
    report_grace: float = 0.0,
    launch_grace: float = 0.0,
) -> list[Action]:
    """The actions that settle the differences between ``job`` (the store's record), what SLURM
    and the chain say (see the module's table).

    ``missing_for``: seconds since SLURM was first seen knowing no job of ours (None: it knew
    one at the last look). ``report_waiting``: a report for the job waits in the inbox.
    ``ended_for``: seconds since SLURM was first seen saying the job ended (None: not before);
    its end is recovered once that is at least ``report_grace``. ``launch_grace``: seconds a
    RUNNING job may wait for its prolog before its launch counts as lost (0: never).
    """
    if job.phase is Phase.DONE:
        return []
    if isinstance(chain, ChainAnswer) and chain.job is not None:
        on_chain = chain.job
        if on_chain.provider.lower() != provider.lower():
            return [Tell(ChainMovedOn(on_chain.status, "assigned to another provider"))]
        if on_chain.status.is_cold:
            return [Tell(ChainMovedOn(on_chain.status, _cold_note(on_chain)))]
    if job.phase not in IN_SLURM or job.slurm_job_id is None or isinstance(slurm, SlurmUnknown):
        return []
    ours = [found for found in slurm.jobs if found.slurm_job_id == job.slurm_job_id]
    if not ours:
        if slurm.jobs:
            return []  # other SLURM jobs by that name, not ours: the reporters' business
        if report_waiting:
            return []  # the job's actor has a report to act on first
        if missing_for is not None and missing_for >= lost_grace:
            return [Tell(LostInSlurm(f"SLURM knows no job named {job.job_id} in any state"))]
        return [Missing()]
    found = ours[-1]
    if found.has_ended:
        if ended_for is None or ended_for < report_grace:
            return [Ended()]  # the completion report gets a moment to arrive first
        return [Tell(ended_report(found))]
    if job.cancel_requested:
        return [Tell(CancelRequested())]
    if launch_grace > 0 and launch_lost(found, launch_grace):
        waited = f"RUNNING for {found.elapsed_seconds} s and still waiting for its prolog"
        return [Tell(LaunchLost(found.slurm_job_id, f"SLURM never launched it ({waited})"))]
    if found.state in STARTED_STATES and job.phase is Phase.SUBMITTED and job.sending is None:
        return [Tell(started_report(found))]
    return []


class Stray(msgspec.Struct, frozen=True):
    """A waiting report nobody can act on, and why: acknowledge it."""

    report: Report
    reason: str


def sort_reports(
    reports: Iterable[Report], jobs: Mapping[str, Job], *, now: float, expiry: float
) -> tuple[list[Stray], dict[str, float]]:
    """The strays among the waiting ``reports`` (see the module docstring), and for each live
    job with a report its actor can still apply, the age of the youngest (seconds).

    ``jobs``: every record by job id; ``now``: the wall clock ``received_at`` is stamped with.
    """
    strays: list[Stray] = []
    waiting: dict[str, float] = {}
    for report in reports:
        job = jobs.get(report.job_id)
        age = now - report.received_at
        if job is None:
            reason = "a job we do not have"
        elif job.phase is Phase.DONE:
            reason = "a settled job"
        elif job.slurm_job_id is not None and report.slurm_job_id != job.slurm_job_id:
            reason = f"another SLURM job than the job's {job.slurm_job_id}"
        elif age >= expiry:
            reason = f"a job whose actor has not applied it in {age:.0f} s"
        else:
            waiting[report.job_id] = min(age, waiting.get(report.job_id, age))
            continue
        strays.append(Stray(report, reason))
    return strays, waiting


def launch_lost(found: SlurmJob, grace: float) -> bool:
    """SLURM says ``found`` runs, but it has waited for its prolog ``grace`` seconds or more."""
    return found.awaiting_launch and found.elapsed_seconds >= grace


def _cold_note(on_chain: OnChainJob) -> str:
    note = f"settled on chain as {on_chain.status.name}"
    return f"{note} ({on_chain.last_error})" if on_chain.last_error else note


# --- the actor ----------------------------------------------------------------------------------


class ReaperSettings(msgspec.Struct, frozen=True):
    """Timings of the reaper (seconds); the operator sets them in the ``reaper`` section of the
    configuration (:func:`settings_from_config`)."""

    interval: float = 60.0
    first_sweep_after: float = 2.0
    lost_grace: float = 600.0
    """How long SLURM must keep saying it knows no job of ours before the job is lost."""
    report_grace: float = 10.0
    """How long a job SLURM says ended is left to its completion report before the reaper
    recovers the end from SLURM."""
    launch_grace: float = 900.0
    """How long a RUNNING job may wait for its prolog before SLURM's launch counts as lost
    (0: never)."""
    report_expiry: float = 3600.0
    """How long a report may wait in the inbox unapplied before it is dropped as a stray (its
    job's end is then SLURM's word)."""
    ask_timeout: float = 60.0
    concurrency: int = 16


class Sweep(msgspec.Struct, frozen=True):
    """Ask the reaper to reconcile every live job now; replies :class:`SweepReport`."""


class SweepReport(msgspec.Struct, frozen=True):
    live: int = 0
    told: int = 0
    missing: int = 0
    lost: int = 0
    slurm_unknown: int = 0
    chain_unknown: int = 0
    dropped_reports: int = 0
    pending_transactions: int = 0
    seconds: float = 0.0


class ReaperStatistics(ActorStatistics, frozen=True, kw_only=True):
    """The reaper now: how many sweeps it made, how often, and what the last one found."""

    sweeps: int
    interval_seconds: float
    last: SweepReport | None

    def facts(self) -> dict[str, str]:
        facts = {"sweeps": str(self.sweeps), "interval": f"{self.interval_seconds:g} s"}
        last = self.last
        if last is not None:
            facts["last"] = (
                f"{last.live} live, told {last.told}, missing {last.missing}, lost {last.lost}, "
                f"unknown slurm {last.slurm_unknown} chain {last.chain_unknown}"
            )
        return facts


class ReaperActor(Actor[Sweep, SweepReport]):
    """See the module docstring. Talks to "slurm", "chain" and "jobs"; holds no durable state
    of its own (what it finds, the job actors persist)."""

    def __init__(
        self,
        *,
        store: Store,
        provider: str,
        rpc_url: str | None = None,
        settings: ReaperSettings | None = None,
        name: str = "reaper",
        slurm_name: str = "slurm",
        chain_name: str = "chain",
        jobs_name: str = "jobs",
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name)
        self.settings = settings or ReaperSettings()
        self._records = JobRecords(store)
        self._reports = ReportInbox(store)
        self._wall = wall
        self._provider = provider.lower()
        self._rpc_url = rpc_url
        self._slurm_name = slurm_name
        self._chain_name = chain_name
        self._jobs_name = jobs_name
        self._missing_since: dict[str, float] = {}
        self._ended_since: dict[str, float] = {}
        self._pending_log = StorePendingLog(store)
        self._pending_left: list[StoredTransaction] | None = None
        self._sweep_lock = trio.Lock()
        self._sweeps = 0
        self._last: SweepReport | None = None

    def statistics(self) -> ReaperStatistics:
        return ReaperStatistics(
            **self.common_statistics(),
            sweeps=self._sweeps,
            interval_seconds=self.settings.interval,
            last=self._last,
        )

    async def started(self) -> None:
        self.spawn(self._periodically)

    async def handle(self, message: Sweep) -> SweepReport:
        return await self.sweep()

    async def _periodically(self) -> None:
        await trio.sleep(self.settings.first_sweep_after)
        while True:
            try:
                await self.sweep()
            except Exception:  # a sweep that fails must not take the tree down: next sweep
                log.exception("reaper: sweep failed")
            await trio.sleep(self.settings.interval)

    async def sweep(self) -> SweepReport:
        """Reconcile every live job once (one sweep at a time)."""
        async with self._sweep_lock:
            began = trio.current_time()
            pending = await self._recheck_transactions()
            jobs = {job.job_id: job for job in await self._records.all()}
            live = [job for job in jobs.values() if job.phase is not Phase.DONE]
            dropped, waiting = await self._drop_strays(jobs)
            counts = dict.fromkeys(("told", "missing", "lost", "slurm_unknown", "chain_unknown"), 0)
            limit = trio.Semaphore(self.settings.concurrency)
            async with trio.open_nursery() as nursery:
                for job in live:
                    nursery.start_soon(self._one, job, waiting.get(job.job_id), counts, limit)
            live_ids = {job.job_id for job in live}
            for remembered in (self._missing_since, self._ended_since):
                for job_id in [j for j in remembered if j not in live_ids]:
                    del remembered[job_id]
            report = SweepReport(
                live=len(live),
                dropped_reports=dropped,
                pending_transactions=pending,
                seconds=trio.current_time() - began,
                **counts,
            )
            self._sweeps += 1
            self._last = report
            if report.told or report.lost or report.dropped_reports:
                log.info("reaper: %s", report)
            return report

    async def _one(
        self,
        job: Job,
        report_age: float | None,
        counts: dict[str, int],
        limit: trio.Semaphore,
    ) -> None:
        """Reconcile one live job; ``report_age``: how long its youngest waiting report has
        waited (None: none waits)."""
        report_waiting = report_age is not None and report_age < self.settings.lost_grace
        async with limit:
            slurm, chain = await self._views(job)
        counts["slurm_unknown"] += isinstance(slurm, SlurmUnknown)
        counts["chain_unknown"] += isinstance(chain, ChainUnknown)
        now = trio.current_time()
        since = self._missing_since.get(job.job_id)
        ended = self._ended_since.get(job.job_id)
        actions = reconcile(
            job,
            slurm,
            chain,
            provider=self._provider,
            missing_for=None if since is None else now - since,
            lost_grace=self.settings.lost_grace,
            report_waiting=report_waiting,
            ended_for=None if ended is None else now - ended,
            report_grace=self.settings.report_grace,
            launch_grace=self.settings.launch_grace,
        )
        if not any(isinstance(action, Tell) for action in actions):
            # A live job's actor must run (start it if not), and apply what waits for it.
            await self._tell(job.job_id, None, replay_reports=report_age is not None)
        missing = any(isinstance(action, Missing) for action in actions)
        if not missing and isinstance(slurm, SlurmAnswer):  # only SLURM's answer clears it
            self._missing_since.pop(job.job_id, None)
        for action in actions:
            if isinstance(action, Ended):
                self._ended_since.setdefault(job.job_id, now)
                continue
            if isinstance(action, Missing):
                self._missing_since.setdefault(job.job_id, now)
                counts["missing"] += 1
                log.warning("reaper: SLURM knows no job named %s (not lost yet)", job.job_id)
                continue
            counts["told"] += 1
            if isinstance(action.event, LostInSlurm):
                counts["lost"] += 1
                log.error("reaper: %s: %s", job.job_id, action.event.reason)
            await self._tell(job.job_id, action.event)

    async def _views(self, job: Job) -> tuple[SlurmView, ChainView]:
        slurm: SlurmView = SlurmUnknown("not asked")
        chain: ChainView = ChainUnknown("not asked")

        async def ask_slurm() -> None:
            nonlocal slurm
            if job.phase not in IN_SLURM:
                return
            try:
                found = await self.ref(self._slurm_name).ask(
                    FindJobs(job.job_id), timeout=self.settings.ask_timeout
                )
            except (SlurmError, ActorSystemError) as exc:
                slurm = SlurmUnknown(f"{type(exc).__name__}: {exc}")
                return
            slurm = SlurmAnswer(tuple(j for j in found if isinstance(j, SlurmJob)))

        async def ask_chain() -> None:
            nonlocal chain
            try:
                on_chain = await self.ref(self._chain_name).ask(
                    GetJob(job.job_id), timeout=self.settings.ask_timeout
                )
            except (ChainError, ActorSystemError) as exc:
                chain = ChainUnknown(f"{type(exc).__name__}: {exc}")
                return
            chain = ChainAnswer(on_chain if isinstance(on_chain, OnChainJob) else None)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_slurm)
            nursery.start_soon(ask_chain)
        return slurm, chain

    async def _tell(
        self, job_id: str, event: Event | None, *, replay_reports: bool = False
    ) -> None:
        try:
            answer = await self.ref(self._jobs_name).ask(
                Reconcile(job_id, event, replay_reports), timeout=self.settings.ask_timeout
            )
        except ActorSystemError as exc:
            log.info("reaper: cannot tell %s now (%s); next sweep", job_id, exc)
            return
        if isinstance(answer, Accepted) and not answer.accepted and event is not None:
            log.info("reaper: %s not taken: %s", job_id, answer.reason)

    async def _drop_strays(self, jobs: Mapping[str, Job]) -> tuple[int, dict[str, float]]:
        """Acknowledge the waiting reports nobody can act on (each logged); how many, and the
        age of the youngest report waiting for each live job (see :func:`sort_reports`)."""
        strays, waiting = sort_reports(
            await self._reports.pending(),
            jobs,
            now=self._wall(),
            expiry=self.settings.report_expiry,
        )
        for stray in strays:
            report = stray.report
            log.warning(
                "reaper: dropped a %s report for %s (job %s, SLURM job %d, authenticated %s)",
                report.status.name,
                stray.reason,
                report.job_id,
                report.slurm_job_id,
                report.authenticated,
            )
        if strays:
            await self._reports.ack(stray.report for stray in strays)
        return len(strays), waiting

    async def _recheck_transactions(self) -> int:
        """Re-check what the previous process left pending (then what is still waiting)."""
        if self._rpc_url is None:
            return 0
        if self._pending_left is None:  # first sweep: the previous process's transactions
            self._pending_left = await self._pending_log.pending()
        if not self._pending_left:
            return 0
        rpc = HttpRpc(self._rpc_url)
        try:
            outcome, self._pending_left = await recheck_pending(
                self._pending_log, rpc, self._provider, only=self._pending_left
            )
        finally:
            await rpc.aclose()
        log.info("reaper: pending transactions of an earlier run: %s", outcome)
        return len(self._pending_left)


def settings_from_config(reaper: Reaper) -> ReaperSettings:
    """:class:`ReaperSettings` from ``cfg.reaper`` (durations the loader checked positive)."""
    return ReaperSettings(
        interval=reaper.interval.total_seconds(),
        first_sweep_after=reaper.first_sweep_after.total_seconds(),
        lost_grace=reaper.lost_grace.total_seconds(),
        report_grace=reaper.report_grace.total_seconds(),
        launch_grace=reaper.launch_grace.total_seconds(),
    )


def provider_address(private_key: bytes) -> str:
    """The lowercase address of the wallet (the provider the chain's jobs must name)."""
    from eth_account import Account

    return str(Account.from_key(private_key).address).lower()
