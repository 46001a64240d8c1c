"""A real jobs subtree behind the real :class:`~actors.job.ports.AdapterPorts`, for tests of what
a port's error table does to a job: a root supervisor runs a stand-in chain actor ("chain", which
applies every status and remembers it) and the jobs subtree ("jobs"), over a real store; the
sbatch client is the caller's (a stub, or a real client of a real service)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import trio

from actors.chain.messages import Applied, RefuseJob, SetJobStatus
from actors.grid import ClaimedJob, JobDefinition, JobStatus
from actors.job.actor import job_actor_name
from actors.job.ports import AdapterPorts
from actors.job.supervisor import DISPATCHER_NAME, jobs_supervisor
from actors.sbatch import SbatchClient
from runtime.actor import Actor, ActorRef
from runtime.store import open_store
from runtime.supervisor import ChildSpec, Supervisor

JOB_ID = "0x" + "5a" * 32
CUSTOMER = "0x" + "c1" * 20
PROVIDER = "0x" + "d2" * 20


def claim(batch_location_hash: str, job_id: str = JOB_ID, customer: str = CUSTOMER) -> ClaimedJob:
    return ClaimedJob(
        job_id=job_id,
        customer=customer,
        provider=PROVIDER,
        max_duration_minute=10,
        definition=JobDefinition(0, 512, 1, 1, batch_location_hash),
        block_number=7,
    )


class Chain(Actor[object, object]):
    """Stands in for the chain actor: every status and refusal is applied, and remembered."""

    def __init__(self, sent: list[SetJobStatus], final: trio.Event, refused: list[str]) -> None:
        super().__init__("chain")
        self.sent = sent
        self.final = final
        self.refused = refused

    async def handle(self, message: object) -> object:
        if isinstance(message, SetJobStatus):
            self.sent.append(message)
            if message.status.is_cold:
                self.final.set()
            return Applied(tx_hash="0x" + "ee" * 32, block_number=len(self.sent))
        assert isinstance(message, RefuseJob), message
        self.refused.append(message.job_id)
        self.final.set()
        return Applied(tx_hash="0x" + "ff" * 32)


class JobTree:
    """The running tree: what the chain was sent, and a way to wait for the job's actor to end."""

    def __init__(
        self,
        root: Supervisor,
        jobs: Supervisor,
        sent: list[SetJobStatus],
        final: trio.Event,
        refused: list[str],
    ) -> None:
        self.root = root
        self.jobs = jobs
        self.sent = sent
        self.final = final
        self.refused = refused
        """The jobs refused on chain (``refuseJob``), in order."""

    async def claimed(self, claimed: ClaimedJob) -> None:
        """Hand ``claimed`` to "jobs", as the chain actor does."""
        await ActorRef[ClaimedJob, object](self.root.registry, DISPATCHER_NAME).ask(claimed)

    async def settled(self, job_id: str, seconds: float = 30.0) -> None:
        """Wait until a final status or a refusal was sent (the tree runs one job) and
        ``job_id``'s actor has ended: a guard against a hang, not a timing bound (a crash loop
        never gets here)."""
        with trio.fail_after(seconds):
            await self.final.wait()
            for _ in itertools.count():
                if self.jobs.find_child(job_actor_name(job_id)) is None:
                    return
                await trio.sleep(0.01)

    def statuses(self, job_id: str) -> list[tuple[JobStatus, str]]:
        return [(s.status, s.last_error) for s in self.sent if s.job_id == job_id]


@contextlib.asynccontextmanager
async def job_tree(
    state: Path, sbatch: SbatchClient, slurm: Callable[[], Actor[Any, Any]] | None = None
) -> AsyncIterator[JobTree]:
    """The tree, running over a store in ``state``, with ``slurm`` (a stand-in of the SLURM
    actor) when given; stopped on exit."""
    sent: list[SetJobStatus] = []
    refused: list[str] = []
    final = trio.Event()
    async with open_store(state) as store:
        root: Supervisor
        jobs: list[Supervisor] = []

        def subtree() -> Supervisor:
            jobs.append(jobs_supervisor(store=store, ports=AdapterPorts(root.registry, sbatch)))
            return jobs[-1]

        children = [ChildSpec("chain", lambda: Chain(sent, final, refused))]
        if slurm is not None:
            children.append(ChildSpec("slurm", slurm))
        root = Supervisor("root", [*children, ChildSpec("jobs-supervisor", subtree)])
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            yield JobTree(root, jobs[-1], sent, final, refused)
            root.request_stop()
