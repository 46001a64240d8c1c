"""The JobActor's ports onto the real adapters: the SLURM actor, the chain actor, the sbatch client.

Each method turns an adapter's answer into the state machine's event. Refusals that are replies
(SLURM refusing a submission, the chain refusing a status) become events directly. What an
adapter *raises* is decided by the port's table in :data:`PORT_TABLES`: pure data, checked row by
row in ``tests/unit/test_job_ports.py``. A row names an adapter error (rows are tried in order,
the first that matches wins) and says what it means for the job:

- an event class, built from the error's message: the error is an **answer**, and the machine
  handles it (a script the sbatch service does not have, or will never give: the job is failed on
  chain, once, with that reason);
- :attr:`Verdict.RETRY`, **retry later**: the error is raised, the job actor crashes on purpose,
  its supervisor restarts it with backoff and recovery resumes from the persisted phase (a broken
  connection, an actor restarting). Where the step may have taken effect (a lost ``sbatch``, an
  ask that timed out) the recovery row looks first (``FindInSlurm`` before submitting again);
- :attr:`Verdict.CRASH`, **crash**: raised as well, but nothing a job can answer or a retry is
  expected to fix (SLURM printed what the parsers cannot read, a value the chain cannot encode):
  an operator or a fix is needed. An error that no row names is a crash too.

    =================================  ======================================================
    port (table)                       rows
    =================================  ======================================================
    fetch_script (:data:`SBATCH_FETCH`)  ScriptNotFound, ScriptAccessDenied, SbatchRefused:
                                       answer ScriptUnavailable; SbatchUnavailable: retry
    write_customer_log                 GridLoggerError: answer CustomerLogUnwritten (ignored:
    (:data:`LOGGER_WRITE`)             the customer's log never holds a job up)
    the SLURM ports (:data:`SLURM_ASK`)  CommandLost, SlurmUnavailable, ActorSystemError: retry;
                                       CommandFailed, UnexpectedOutput: crash
    send_status, refuse                ChainValueError: crash; ChainError, ActorSystemError:
    (:data:`CHAIN_ASK`)                retry
    =================================  ======================================================
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

from actors.chain.actor import ChainValueError
from actors.chain.messages import Applied, RefuseJob, Rejected, SetJobStatus
from actors.chain.revert import ChainError
from actors.grid_logger import GridLogger, GridLoggerError
from actors.job.machine import (
    CancelInSlurm,
    ChainApplied,
    ChainRejected,
    CustomerLogUnwritten,
    Event,
    FoundInSlurm,
    Job,
    LostInSlurm,
    RaiseTimeLimit,
    Refuse,
    Refused,
    RequeueInSlurm,
    ScriptFetched,
    ScriptUnavailable,
    SendStatus,
    Submit,
    SubmitRefused,
    Submitted,
    TimeLimitSet,
    WriteCustomerLog,
)
from actors.sbatch import (
    SbatchClient,
    SbatchRefused,
    SbatchUnavailable,
    ScriptAccessDenied,
    ScriptNotFound,
)
from actors.slurm import messages as slurm
from runtime.actor import ActorRef
from runtime.errors import ActorSystemError
from runtime.registry import Registry

__all__ = [
    "CHAIN_ASK",
    "LOGGER_WRITE",
    "PORT_TABLES",
    "SBATCH_FETCH",
    "SLURM_ASK",
    "AdapterPorts",
    "PortTable",
    "Verdict",
    "verdict",
]

log = logging.getLogger(__name__)

#: Seconds a SLURM submission or a chain transaction may take before the ask gives up (the
#: adapters have their own, shorter, timeouts per command and per request).
SUBMIT_TIMEOUT = 180.0
CHAIN_TIMEOUT = 300.0
SLURM_TIMEOUT = 60.0


# --- the tables: adapter errors to answer / retry later / crash -------------------------------


class Verdict(enum.Enum):
    """What a port does with an adapter error that is not an answer (see the module text)."""

    RETRY = "retry later"
    CRASH = "crash"


PortTable: TypeAlias = Mapping[type[Exception], Verdict | Callable[[str], Event]]
"""An adapter error class (first match wins) to a :class:`Verdict` or to the event it answers."""

SBATCH_FETCH: Final[PortTable] = {
    ScriptNotFound: ScriptUnavailable,  # never stored, or expired (1 h)
    ScriptAccessDenied: ScriptUnavailable,  # not ours, or the service refuses our signature
    SbatchRefused: ScriptUnavailable,  # a request it will always refuse (a customer's malformed
    #                                    batchLocationHash), or one we cannot even encode
    SbatchUnavailable: Verdict.RETRY,  # not reached after every attempt (an untrusted
    #                                    certificate too: the operator fixes the CA file)
}
"""Fetching the batch script."""

SLURM_ASK: Final[PortTable] = {
    slurm.CommandLost: Verdict.RETRY,  # may have taken effect: recovery looks before repeating
    slurm.SlurmUnavailable: Verdict.RETRY,  # never took effect (SSH or the controller down)
    slurm.CommandFailed: Verdict.CRASH,  # SLURM said no in a way no job answers (operator)
    slurm.UnexpectedOutput: Verdict.CRASH,  # SLURM printed what the parsers cannot read
    ActorSystemError: Verdict.RETRY,  # the SLURM actor is restarting, absent, or too slow
}
"""Every ask of the SLURM actor (submit, find, cancel, time limit, requeue, job info)."""

CHAIN_ASK: Final[PortTable] = {
    ChainValueError: Verdict.CRASH,  # the record holds a value the chain cannot take: a bug
    ChainError: Verdict.RETRY,  # not sent, no answer, or the node refused the transaction
    ActorSystemError: Verdict.RETRY,  # the chain actor is restarting, absent, or too slow
}
"""Every transaction through the chain actor (a status, a refusal). The contract's own refusal
is a reply (``Rejected``), not an error."""

LOGGER_WRITE: Final[PortTable] = {
    GridLoggerError: CustomerLogUnwritten,  # unreachable, refused, too slow: logged and counted
}
"""Writing the customer's log on the grid logger (best effort)."""

PORT_TABLES: Final[Mapping[str, PortTable]] = {
    "fetch_script": SBATCH_FETCH,
    "submit": SLURM_ASK,
    "find_in_slurm": SLURM_ASK,
    "cancel_in_slurm": SLURM_ASK,
    "raise_time_limit": SLURM_ASK,
    "requeue_in_slurm": SLURM_ASK,
    "slurm_job": SLURM_ASK,
    "send_status": CHAIN_ASK,
    "refuse": CHAIN_ASK,
    "write_customer_log": LOGGER_WRITE,
}
"""The table of each port of :class:`~actors.job.actor.JobPorts`, by method name."""


def verdict(table: PortTable, error: BaseException) -> Event | Verdict:
    """What ``table`` makes of ``error``: the event it answers, or a :class:`Verdict`
    (:attr:`Verdict.CRASH` when no row names it). Pure."""
    for adapter_error, row in table.items():
        if isinstance(error, adapter_error):
            return row if isinstance(row, Verdict) else row(str(error))
    return Verdict.CRASH


def _answer(table: PortTable, error: Exception) -> Event:
    """The event answering ``error``; raises ``error`` itself (retry later, or crash) when the
    table has none."""
    outcome = verdict(table, error)
    if isinstance(outcome, Verdict):
        raise error
    return outcome


# --- the ports -------------------------------------------------------------------------------


class AdapterPorts:
    """:class:`~actors.job.actor.JobPorts` over the actors named "slurm" and "chain"."""

    def __init__(
        self, registry: Registry, sbatch: SbatchClient, logger: GridLogger | None = None
    ) -> None:
        self._slurm: ActorRef[slurm.SlurmRequest, object] = ActorRef(registry, "slurm")
        self._chain: ActorRef[object, object] = ActorRef(registry, "chain")
        self._sbatch = sbatch
        self.logger = logger if logger is not None else GridLogger(sbatch.ssl_context)
        self.logs_skipped = 0
        """Customer logs not written because no grid logger was named yet."""

    async def fetch_script(self, job: Job) -> Event:
        claim = job.claim
        try:
            script = await self._sbatch.fetch(
                claim.job_id, claim.customer, claim.definition.batch_location_hash
            )
        except Exception as error:
            return _answer(SBATCH_FETCH, error)
        return ScriptFetched(script)

    async def write_customer_log(self, job: Job, effect: WriteCustomerLog) -> Event | None:
        """Write ``effect.lines`` to the job's log on the grid logger the sbatch service named
        (none named yet: skipped and counted); the logger's errors are answers
        (:data:`LOGGER_WRITE`)."""
        url = self._sbatch.grid_logger_url
        if not url:
            self.logs_skipped += 1
            log.warning(
                "%s: no grid logger named by the sbatch service: customer log skipped", job.job_id
            )
            return None
        try:
            await self.logger.write(url, job.job_id, job.claim.customer, effect.lines)
        except Exception as error:
            outcome = _answer(LOGGER_WRITE, error)
            log.warning("%s: customer log not written: %s", job.job_id, error)
            return outcome
        return None

    async def submit(self, job: Job, effect: Submit) -> Event:
        claim = job.claim
        request = slurm.SubmitJob(
            job_id=claim.job_id,
            customer=claim.customer,
            definition=claim.definition,
            time_limit_minutes=effect.time_limit_minutes,
            script=effect.script,
        )
        try:
            reply = await self._slurm.ask(request, timeout=SUBMIT_TIMEOUT)
        except Exception as error:
            return _answer(SLURM_ASK, error)
        if isinstance(reply, slurm.JobSubmitted):
            return Submitted(reply.slurm_job_id)
        assert isinstance(reply, slurm.SubmissionRefused), reply
        return SubmitRefused(reply.reason)

    async def find_in_slurm(self, job: Job) -> Event:
        try:
            reply = await self._slurm.ask(slurm.FindJobs(job.job_id), timeout=SLURM_TIMEOUT)
        except Exception as error:
            return _answer(SLURM_ASK, error)
        assert isinstance(reply, list)
        ids = [found.slurm_job_id for found in reply if isinstance(found, slurm.SlurmJob)]
        return FoundInSlurm(max(ids) if ids else None)

    async def send_status(self, job: Job, effect: SendStatus) -> Event:
        request = SetJobStatus(
            job_id=job.job_id,
            status=effect.status,
            duration_minutes=effect.duration_minutes,
            last_error=effect.last_error,
            exit_code=effect.exit_code,
        )
        try:
            reply = await self._chain.ask(request, timeout=CHAIN_TIMEOUT)
        except Exception as error:
            return _answer(CHAIN_ASK, error)
        if isinstance(reply, Applied):
            return ChainApplied(effect.status)
        assert isinstance(reply, Rejected), reply
        args = tuple(int(a) if isinstance(a, bool) else a for a in reply.args)
        return ChainRejected(effect.status, reply.error_name, args)

    async def refuse(self, job: Job, effect: Refuse) -> Event:
        try:
            reply = await self._chain.ask(RefuseJob(job.job_id), timeout=CHAIN_TIMEOUT)
        except Exception as error:
            return _answer(CHAIN_ASK, error)
        assert isinstance(reply, Applied | Rejected), reply
        return Refused()  # refused now, or no longer refusable: either way, not ours any more

    async def slurm_job(self, slurm_job_id: int) -> slurm.SlurmJob | None:
        """The job SLURM knows under ``slurm_job_id`` (None when it forgot it). Its table has
        no answers: every error is raised (the job actor's report check catches them)."""
        reply = await self._slurm.ask(slurm.JobInfo(slurm_job_id), timeout=SLURM_TIMEOUT)
        assert reply is None or isinstance(reply, slurm.SlurmJob), reply
        return reply

    async def cancel_in_slurm(self, job: Job, effect: CancelInSlurm) -> Event | None:
        """``scancel`` (by id, else by name), then read the job back: gone from SLURM is
        :class:`LostInSlurm` (settled by rule, no report can come); otherwise SLURM's completion
        report carries the end (and the reaper recovers it if that report is lost)."""
        try:
            if effect.slurm_job_id is None:
                request = slurm.Cancel(job_name=job.job_id)
                await self._slurm.ask(request, timeout=SLURM_TIMEOUT)
                return None
            cancel = slurm.Cancel(slurm_job_id=effect.slurm_job_id)
            await self._slurm.ask(cancel, timeout=SLURM_TIMEOUT)
            if await self.slurm_job(effect.slurm_job_id) is None:
                return LostInSlurm(f"SLURM no longer knows SLURM job {effect.slurm_job_id}")
        except Exception as error:
            return _answer(SLURM_ASK, error)
        return None

    async def raise_time_limit(self, job: Job, effect: RaiseTimeLimit) -> Event:
        """Bring SLURM's limit up to ``effect.target_minutes`` (absolute: read first, extend by
        the difference with :class:`~actors.slurm.messages.ExtendTimeLimit`, which reads back),
        so that repeating it after a crash raises nothing twice."""
        try:
            return await self._raise_time_limit(effect)
        except Exception as error:
            return _answer(SLURM_ASK, error)

    async def _raise_time_limit(self, effect: RaiseTimeLimit) -> Event:
        found = await self.slurm_job(effect.slurm_job_id)
        if found is None:
            return TimeLimitSet(ok=False, detail="SLURM does not know the job")
        if found.has_ended:
            return TimeLimitSet(ok=False, detail=f"the job has ended ({found.state})")
        current = found.time_limit_minutes
        if current is None or current >= effect.target_minutes:
            return TimeLimitSet(ok=True, detail=f"already {current or 'UNLIMITED'} min")
        extra = effect.target_minutes - current
        reply = await self._slurm.ask(
            slurm.ExtendTimeLimit(effect.slurm_job_id, extra), timeout=SLURM_TIMEOUT
        )
        if isinstance(reply, slurm.TimeLimitRaised):
            return TimeLimitSet(ok=True, detail=f"{reply.old_minutes} -> {reply.new_minutes} min")
        assert isinstance(reply, slurm.TimeLimitNotRaised), reply
        return TimeLimitSet(ok=False, detail=reply.reason)

    async def requeue_in_slurm(self, job: Job, effect: RequeueInSlurm) -> str | None:
        """``scontrol requeue``, if SLURM still has the job waiting for its launch (SLURM also
        requeues a job that has ended, which would run it twice): None when SLURM took the job
        back, else why not. Its table has no answers: every error is raised."""
        found = await self.slurm_job(effect.slurm_job_id)
        if found is None or not found.awaiting_launch:
            state = "unknown to SLURM" if found is None else f"{found.state} ({found.reason})"
            return f"no longer waiting for its launch: {state}"
        reply = await self._slurm.ask(slurm.Requeue(effect.slurm_job_id), timeout=SLURM_TIMEOUT)
        assert isinstance(reply, slurm.Requeued), reply
        return None if reply.ok else reply.detail

    def close(self) -> None:
        self._sbatch.close()
