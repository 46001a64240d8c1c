"""Stand-ins for SLURM and the chain behind a JobActor (its :class:`~actors.job.actor.JobPorts`):
every status sent is applied and remembered, every submission becomes SLURM job 42, and SLURM's
record of a SLURM job is whatever the test puts in :attr:`Ports.slurm`."""

from __future__ import annotations

from actors.job.machine import (
    CancelInSlurm,
    ChainApplied,
    Event,
    FoundInSlurm,
    Job,
    RaiseTimeLimit,
    Refuse,
    Refused,
    RequeueInSlurm,
    ScriptFetched,
    SendStatus,
    Submit,
    Submitted,
    TimeLimitSet,
    WriteCustomerLog,
)
from actors.slurm.messages import SlurmJob

SLURM_ID = 42


class Ports:
    """What the job asked for (``sent``, ``requeued``, ``slurm_asks``); SLURM knows the jobs in
    ``slurm`` (by SLURM id; ``slurm`` given here is one of them)."""

    def __init__(self, slurm: SlurmJob | None = None) -> None:
        self.slurm: dict[int, SlurmJob] = {} if slurm is None else {slurm.slurm_job_id: slurm}
        self.sent: list[SendStatus] = []
        self.requeued: list[RequeueInSlurm] = []
        self.slurm_asks = 0
        self.customer_logs: list[tuple[str, ...]] = []

    async def fetch_script(self, job: Job) -> Event:
        return ScriptFetched("#!/bin/sh\n")

    async def submit(self, job: Job, effect: Submit) -> Event:
        return Submitted(SLURM_ID)

    async def find_in_slurm(self, job: Job) -> Event:
        return FoundInSlurm(SLURM_ID)

    async def send_status(self, job: Job, effect: SendStatus) -> Event:
        self.sent.append(effect)
        return ChainApplied(effect.status)

    async def refuse(self, job: Job, effect: Refuse) -> Event:
        return Refused()

    async def write_customer_log(self, job: Job, effect: WriteCustomerLog) -> Event | None:
        self.customer_logs.append(effect.lines)
        return None

    async def cancel_in_slurm(self, job: Job, effect: CancelInSlurm) -> Event | None:
        return None

    async def raise_time_limit(self, job: Job, effect: RaiseTimeLimit) -> Event:
        return TimeLimitSet(ok=True)

    async def requeue_in_slurm(self, job: Job, effect: RequeueInSlurm) -> str | None:
        self.requeued.append(effect)
        return None

    async def slurm_job(self, slurm_job_id: int) -> SlurmJob | None:
        self.slurm_asks += 1
        return self.slurm.get(slurm_job_id)

    def close(self) -> None:
        pass
