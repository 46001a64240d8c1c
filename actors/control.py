"""The supervisor's control-socket commands beyond ``tree``: status, jobs, job, drain, resume.

:func:`control_handlers` builds them from what the process already has (the tree's registry,
the checkpoint store, the drain switch); ``actors.root.run_supervisor`` hands them to
:func:`runtime.app.run_tree`, which serves them on ``<state>/control.sock`` for the command line
(``grid-supervisor status | jobs | drain | resume``).

=========  ======================  ==============================================================
command    args                    answer
=========  ======================  ==============================================================
status     -                       registration and approval, chain connection and cursor, SSH
                                   and SLURM health, jobs by phase, reports waiting for the
                                   chain, drain state, last errors per actor
jobs       ``phase`` (optional)    every job record in the store, one summary each
job        ``job_id`` (a prefix    one job: its record with the phase history, its actor, its
           is enough if unique)    state on chain (asked of the chain actor), its waiting reports
drain      -                       turns the drain switch on, stops claiming (waits for claims in
                                   flight), answers the drain state and the jobs still running
resume     -                       turns the drain switch off; the registration actor turns
                                   claiming back on once the provider is approved
=========  ======================  ==============================================================

Answers are plain JSON data. What the actors say of themselves comes from their frozen
``statistics()`` records (:meth:`runtime.registry.Registry.collect`; an actor is known by the
type of its record), sent whole under each part, so ``--json`` has every figure and the text
rendering picks the few an operator reads. Those reads are instant;
the asks (SLURM health, on-chain state, stop claiming) have their own short deadlines, and a
failing ask becomes an ``error`` field of the answer, not a failed command: an operator wants to
see the rest of the status precisely when one part is broken. Nothing here touches a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import msgspec
import trio

from actors.benchmark.actor import BenchmarkStatistics
from actors.callbacks import CallbackStatistics
from actors.chain.actor import CURSOR_KEY, CURSOR_NAMESPACE, ChainCursor, ChainStatistics
from actors.chain.messages import ClaimingState, GetJob, StopClaiming
from actors.chain.revert import ChainError
from actors.drain import DrainSwitch
from actors.grid import OnChainJob, Report
from actors.job.actor import job_actor_name
from actors.job.machine import Job, Phase
from actors.records import JobRecords, ReportInbox
from actors.registration import RegistrationStatistics
from actors.slurm.actor import SlurmStatistics
from actors.slurm.messages import Health, HealthCheck, SlurmError
from runtime.actor import ActorRef, ActorStatistics
from runtime.control import ControlCommandError
from runtime.errors import ActorSystemError, ErrorInfo
from runtime.logs import bind
from runtime.registry import Registry
from runtime.statistics import Statistics
from runtime.store import Store, StoreError

__all__ = [
    "ControlHandlers",
    "control_handlers",
    "job_detail",
    "job_summary",
    "on_chain_view",
    "report_view",
    "resolve_job_id",
    "statistics_view",
]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
ControlHandlers = dict[str, Handler]

#: Deadlines (seconds) of the asks behind the commands; the control server allows 30 s in all.
SLURM_HEALTH_TIMEOUT = 8.0
CHAIN_READ_TIMEOUT = 8.0
STOP_CLAIMING_TIMEOUT = 20.0
RESUME_WAIT = 3.0

#: At most this many waiting reports are listed in ``status`` (the count is always exact).
REPORTS_LISTED = 20


# --- pure views ----------------------------------------------------------------------------------


def job_summary(job: Job) -> dict[str, Any]:
    """One line's worth of a job record."""
    last_phase, last_note = job.history[-1] if job.history else (job.phase.value, "")
    return {
        "job_id": job.job_id,
        "phase": job.phase.value,
        "slurm_job_id": job.slurm_job_id,
        "chain_status": job.chain_status.name,
        "customer": job.claim.customer,
        "sending": job.sending.status.name if job.sending is not None else None,
        "queued": job.queued.status.name if job.queued is not None else None,
        "cancel_requested": job.cancel_requested,
        "reason": job.reason,
        "last": f"{last_phase}: {last_note}" if last_note else last_phase,
    }


def job_detail(job: Job) -> dict[str, Any]:
    """Everything the record holds, the script itself left out (only its size)."""
    detail = job_summary(job)
    detail.update(
        max_duration_minute=job.claim.max_duration_minute,
        claim_block=job.claim.block_number,
        definition=msgspec.to_builtins(job.claim.definition),
        script_bytes=len(job.script.encode()) if job.script is not None else None,
        history=[{"phase": phase, "note": note} for phase, note in job.history],
    )
    return detail


def report_view(report: Report) -> dict[str, Any]:
    """A report waiting in the inbox, for ``job``."""
    return {
        "slurm_job_id": report.slurm_job_id,
        "status": report.status.name,
        "duration_seconds": report.duration_seconds,
        "exit_code": report.exit_code,
        "authenticated": report.authenticated,
        "received_at": round(report.received_at) if report.received_at else None,
    }


def on_chain_view(job: OnChainJob) -> dict[str, Any]:
    """The chain's record of a job, with its status by name."""
    view: dict[str, Any] = msgspec.to_builtins(job)
    view["status"] = job.status.name
    return view


def resolve_job_id(wanted: str, known: Iterable[str]) -> str:
    """The one known job id that ``wanted`` names (whole, or a unique prefix, any case).

    Raises :class:`ControlCommandError` when none or several match."""
    text = wanted.strip().lower()
    if not text.startswith("0x") or len(text) < 3:
        raise ControlCommandError(f"not a job id: {wanted[:80]!r} (expected 0x + hex digits)")
    ids = sorted(known)
    if text in ids:
        return text
    matches = [job_id for job_id in ids if job_id.startswith(text)]
    if not matches:
        raise ControlCommandError(f"no job {text} in the store")
    if len(matches) > 1:
        raise ControlCommandError(f"{text} is ambiguous: {len(matches)} jobs start with it")
    return matches[0]


def _error_text(error: ErrorInfo | None) -> str | None:
    return None if error is None else f"{error.type}: {error.message}"


RecordT = TypeVar("RecordT", bound=Statistics)


def statistics_view(state: str, record: Statistics | None) -> dict[str, Any]:
    """One actor for an answer: ``actor`` (its state in the tree, ``absent`` when it is not in
    it) and every field of its statistics record."""
    view: dict[str, Any] = {"actor": state}
    if record is not None:
        view.update(msgspec.to_builtins(record))
    return view


def _first(records: Iterable[Statistics], kind: type[RecordT]) -> RecordT | None:
    return next((record for record in records if isinstance(record, kind)), None)


# --- the handlers --------------------------------------------------------------------------------


class _Commands:
    """The handlers, sharing the registry, the store and the drain switch."""

    def __init__(self, registry: Registry, store: Store, drain: DrainSwitch, root: str) -> None:
        self.registry = registry
        self.store = store
        self.records = JobRecords(store)
        self.reports = ReportInbox(store)
        self.drain = drain
        self.root = root

    # --- helpers -----------------------------------------------------------------------------

    def _view(self, records: Iterable[Statistics], kind: type[Statistics]) -> dict[str, Any]:
        """The first actor whose record is a ``kind``, as :func:`statistics_view`."""
        record = _first(records, kind)
        return statistics_view(self._state(record.name) if record else "absent", record)

    def _state(self, name: str) -> str:
        entry = self.registry.lookup(name)
        return entry.state.value if entry is not None else "absent"

    async def _jobs(self) -> list[Job]:
        try:
            return await self.records.all()
        except StoreError as exc:
            raise ControlCommandError(f"cannot read the job records: {exc}") from None

    def _last_errors(self, records: Iterable[Statistics]) -> list[dict[str, str]]:
        """Per actor: the error it last crashed with (kept by the registry across restarts),
        and the last one it answered (its record's)."""
        found: list[dict[str, str]] = []
        for record in records:
            entry = self.registry.lookup(record.name)
            crashed = _error_text(entry.last_error) if entry is not None else None
            if crashed:
                found.append({"actor": record.name, "kind": "crash", "error": crashed})
            if isinstance(record, ActorStatistics):
                answered = _error_text(record.last_error)
                if answered and answered != crashed:
                    found.append({"actor": record.name, "kind": "answered", "error": answered})
        return found

    async def _slurm_health(self, records: Iterable[Statistics]) -> dict[str, Any]:
        facts = self._view(records, SlurmStatistics)
        slurm: ActorRef[HealthCheck, Health] = ActorRef(self.registry, "slurm")
        try:
            health = await slurm.ask(HealthCheck(), timeout=SLURM_HEALTH_TIMEOUT)
        except (ActorSystemError, SlurmError) as exc:
            facts.update(healthy=False, detail=f"{type(exc).__name__}: {exc}")
            return facts
        facts.update(
            healthy=health.ok,
            detail=health.detail,
            latency_ms=round(health.latency_seconds * 1000, 1),
        )
        return facts

    async def _chain_facts(self, records: Iterable[Statistics]) -> dict[str, Any]:
        facts = self._view(records, ChainStatistics)
        try:
            saved = await self.store.get(CURSOR_NAMESPACE, CURSOR_KEY, ChainCursor)
        except StoreError as exc:
            facts["saved_cursor_error"] = str(exc)
        else:  # what the store holds (the chain's record says what it last saved there)
            facts["saved_cursor_block"] = saved.block if saved is not None else None
        return facts

    # --- commands ----------------------------------------------------------------------------

    async def status(self, _args: dict[str, Any]) -> dict[str, Any]:
        jobs = await self._jobs()
        by_phase = dict.fromkeys((phase.value for phase in Phase), 0)
        for job in jobs:
            by_phase[job.phase.value] += 1
        try:
            waiting = await self.reports.count()
            listed = await self.reports.pending(limit=REPORTS_LISTED)
        except StoreError as exc:
            raise ControlCommandError(f"cannot read the reports inbox: {exc}") from None
        root = self.registry.lookup(self.root)
        records = self.registry.collect()
        return {
            "tree": {
                "state": root.state.value if root is not None else "absent",
                "restarts": root.restarts if root is not None else 0,
            },
            "drain": {"drained": self.drain.drained, "since": self.drain.state.since},
            "registration": self._view(records, RegistrationStatistics),
            "benchmark": self._view(records, BenchmarkStatistics),
            "chain": await self._chain_facts(records),
            "slurm": await self._slurm_health(records),
            "callbacks": self._view(records, CallbackStatistics),
            "jobs": {
                "total": len(jobs),
                "live": len(jobs) - by_phase["DONE"],
                "by_phase": by_phase,
            },
            "reports_waiting": {
                "count": waiting,
                "first": [
                    {
                        "job_id": report.job_id,
                        "slurm_job_id": report.slurm_job_id,
                        "status": report.status.name,
                    }
                    for report in listed
                ],
            },
            "last_errors": self._last_errors(records),
        }

    async def jobs(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = str(args.get("phase") or "").upper()
        if wanted and wanted not in Phase.__members__:
            known = ", ".join(Phase.__members__)
            raise ControlCommandError(f"unknown phase {wanted[:40]!r} (known: {known})")
        rows = []
        for job in await self._jobs():
            if wanted and job.phase.value != wanted:
                continue
            row = job_summary(job)
            row["actor"] = self._state(job_actor_name(job.job_id))
            rows.append(row)
        # Live jobs first (in phase order), settled ones after.
        order = {phase.value: index for index, phase in enumerate(Phase)}
        rows.sort(key=lambda row: (row["phase"] == "DONE", order[row["phase"]], row["job_id"]))
        return rows

    async def job(self, args: dict[str, Any]) -> dict[str, Any]:
        records = {job.job_id: job for job in await self._jobs()}
        job_id = resolve_job_id(str(args.get("job_id") or ""), records)
        record = records[job_id]
        detail = job_detail(record)
        name = job_actor_name(job_id)
        instance = self.registry.whereis(name)
        record = msgspec.to_builtins(instance.statistics()) if instance is not None else {}
        detail["actor"] = {"state": self._state(name), **record}
        chain: ActorRef[GetJob, OnChainJob | None] = ActorRef(self.registry, "chain")
        try:
            on_chain = await chain.ask(GetJob(job_id), timeout=CHAIN_READ_TIMEOUT)
        except (ActorSystemError, ChainError) as exc:
            detail["on_chain"] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            detail["on_chain"] = on_chain_view(on_chain) if on_chain is not None else None
        try:
            pending = await self.reports.of_job(job_id)
        except StoreError as exc:
            detail["reports_error"] = str(exc)
        else:
            detail["reports_waiting"] = [report_view(report) for report in pending]
        return detail

    async def drain_on(self, _args: dict[str, Any]) -> dict[str, Any]:
        was = self.drain.drained
        state = await self.drain.set(True)
        if not was:
            log.warning("drained by the operator: no new claims; running jobs finish")
        answer: dict[str, Any] = {"drained": True, "since": state.since, "was_drained": was}
        chain: ActorRef[StopClaiming, ClaimingState] = ActorRef(self.registry, "chain")
        try:
            reply = await chain.ask(StopClaiming(), timeout=STOP_CLAIMING_TIMEOUT)
        except ActorSystemError as exc:
            # No chain actor running means nothing claims; a new one starts with claiming off
            # and the registration actor will not turn it on while drained.
            answer["claiming"] = f"off (chain actor: {exc})"
        else:
            answer["claiming"] = "on" if reply.claiming else "off"
        live = [job for job in await self._jobs() if job.phase is not Phase.DONE]
        answer["live_jobs"] = len(live)
        return answer

    async def resume(self, _args: dict[str, Any]) -> dict[str, Any]:
        was = self.drain.drained
        state = await self.drain.set(False)
        if was:
            log.warning("resumed by the operator: claiming once approved")
        # The registration actor wakes on the change and turns claiming on if approved.
        with trio.move_on_after(RESUME_WAIT):
            # The chain actor has no event for it: poll its record briefly.
            while not self._claiming():  # noqa: ASYNC110
                await trio.sleep(0.1)
        chain = _first(self.registry.collect(), ChainStatistics)
        registration = _first(self.registry.collect(), RegistrationStatistics)
        approval = registration.approval if registration is not None else None
        return {
            "drained": False,
            "since": state.since,
            "was_drained": was,
            "claiming": ("on" if chain.claiming else "off") if chain is not None else "unknown",
            "approval": approval.value if approval is not None else "unknown",
        }

    def _claiming(self) -> bool:
        chain = _first(self.registry.collect(), ChainStatistics)
        return chain is not None and chain.claiming


def control_handlers(
    registry: Registry, store: Store, drain: DrainSwitch, *, root: str = "root"
) -> ControlHandlers:
    """The commands of the module docstring, for ``run_tree(control_handlers=...)``."""
    commands = _Commands(registry, store, drain, root)
    handlers: dict[str, Handler] = {
        "status": commands.status,
        "jobs": commands.jobs,
        "job": commands.job,
        "drain": commands.drain_on,
        "resume": commands.resume,
    }
    return {name: _tagged(handler) for name, handler in handlers.items()}


def _tagged(handler: Handler) -> Handler:
    """Log lines written while answering name their source: ``actor=control``."""

    async def tagged(args: dict[str, Any]) -> Any:
        with bind(actor="control"):
            return await handler(args)

    return tagged
