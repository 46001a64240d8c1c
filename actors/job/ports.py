"""The JobActor's ports onto the real adapters: the SLURM actor, the chain actor, the sbatch client.

Each method turns an adapter's answer into the state machine's event. Expected refusals become
events (a script the service does not have, a submission SLURM refuses, a status the chain
refuses); a broken connection is raised, so the job actor crashes, is restarted with backoff and
resumes from its persisted phase.
"""

from __future__ import annotations

from actors.chain.messages import Applied, RefuseJob, Rejected, SetJobStatus
from actors.job.machine import (
    CancelInSlurm,
    ChainApplied,
    ChainRejected,
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
)
from actors.sbatch import SbatchClient, ScriptAccessDenied, ScriptNotFound
from actors.slurm import messages as slurm
from runtime.actor import ActorRef
from runtime.registry import Registry

__all__ = ["AdapterPorts"]

#: Seconds a SLURM submission or a chain transaction may take before the ask gives up (the
#: adapters have their own, shorter, timeouts per command and per request).
SUBMIT_TIMEOUT = 180.0
CHAIN_TIMEOUT = 300.0
SLURM_TIMEOUT = 60.0


class AdapterPorts:
    """:class:`~actors.job.actor.JobPorts` over the actors named "slurm" and "chain"."""

    def __init__(self, registry: Registry, sbatch: SbatchClient) -> None:
        self._slurm: ActorRef[slurm.SlurmRequest, object] = ActorRef(registry, "slurm")
        self._chain: ActorRef[object, object] = ActorRef(registry, "chain")
        self._sbatch = sbatch

    async def fetch_script(self, job: Job) -> Event:
        claim = job.claim
        try:
            script = await self._sbatch.fetch(
                claim.job_id, claim.customer, claim.definition.batch_location_hash
            )
        except (ScriptNotFound, ScriptAccessDenied) as error:
            return ScriptUnavailable(str(error))
        return ScriptFetched(script)

    async def submit(self, job: Job, effect: Submit) -> Event:
        claim = job.claim
        request = slurm.Submit(
            job_id=claim.job_id,
            customer=claim.customer,
            definition=claim.definition,
            time_limit_minutes=effect.time_limit_minutes,
            script=effect.script,
        )
        reply = await self._slurm.ask(request, timeout=SUBMIT_TIMEOUT)
        if isinstance(reply, slurm.Submitted):
            return Submitted(reply.slurm_job_id)
        assert isinstance(reply, slurm.SubmitRefused), reply
        return SubmitRefused(reply.reason)

    async def find_in_slurm(self, job: Job) -> Event:
        reply = await self._slurm.ask(slurm.FindJobs(job.job_id), timeout=SLURM_TIMEOUT)
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
        reply = await self._chain.ask(request, timeout=CHAIN_TIMEOUT)
        if isinstance(reply, Applied):
            return ChainApplied(effect.status)
        assert isinstance(reply, Rejected), reply
        args = tuple(int(a) if isinstance(a, bool) else a for a in reply.args)
        return ChainRejected(effect.status, reply.error_name, args)

    async def refuse(self, job: Job, effect: Refuse) -> Event:
        reply = await self._chain.ask(RefuseJob(job.job_id), timeout=CHAIN_TIMEOUT)
        assert isinstance(reply, Applied | Rejected), reply
        return Refused()  # refused now, or no longer refusable: either way, not ours any more

    async def slurm_job(self, slurm_job_id: int) -> slurm.SlurmJob | None:
        reply = await self._slurm.ask(slurm.JobInfo(slurm_job_id), timeout=SLURM_TIMEOUT)
        assert reply is None or isinstance(reply, slurm.SlurmJob), reply
        return reply

    async def cancel_in_slurm(self, job: Job, effect: CancelInSlurm) -> Event | None:
        """``scancel`` (by id, else by name), then read the job back: gone from SLURM is
        :class:`LostInSlurm` (settled by rule, no report can come); otherwise SLURM's completion
        report carries the end (and the reaper recovers it if that report is lost)."""
        if effect.slurm_job_id is None:
            request = slurm.Cancel(job_name=job.job_id)
            await self._slurm.ask(request, timeout=SLURM_TIMEOUT)
            return None
        await self._slurm.ask(slurm.Cancel(slurm_job_id=effect.slurm_job_id), timeout=SLURM_TIMEOUT)
        if await self.slurm_job(effect.slurm_job_id) is None:
            return LostInSlurm(f"SLURM no longer knows SLURM job {effect.slurm_job_id}")
        return None

    async def raise_time_limit(self, job: Job, effect: RaiseTimeLimit) -> Event:
        """Bring SLURM's limit up to ``effect.target_minutes`` (absolute: read first, raise by
        the difference, read back), so that repeating it after a crash raises nothing twice."""
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
            slurm.RaiseTimeLimit(effect.slurm_job_id, extra), timeout=SLURM_TIMEOUT
        )
        if isinstance(reply, slurm.TimeLimitRaised):
            return TimeLimitSet(ok=True, detail=f"{reply.old_minutes} -> {reply.new_minutes} min")
        assert isinstance(reply, slurm.TimeLimitNotRaised), reply
        return TimeLimitSet(ok=False, detail=reply.reason)

    async def requeue_in_slurm(self, job: Job, effect: RequeueInSlurm) -> str | None:
        """``scontrol requeue``, if SLURM still has the job waiting for its launch (SLURM also
        requeues a job that has ended, which would run it twice): None when SLURM took the job
        back, else why not."""
        found = await self.slurm_job(effect.slurm_job_id)
        if found is None or not found.awaiting_launch:
            state = "unknown to SLURM" if found is None else f"{found.state} ({found.reason})"
            return f"no longer waiting for its launch: {state}"
        reply = await self._slurm.ask(slurm.Requeue(effect.slurm_job_id), timeout=SLURM_TIMEOUT)
        assert isinstance(reply, slurm.Requeued), reply
        return None if reply.ok else reply.detail

    def close(self) -> None:
        self._sbatch.close()
