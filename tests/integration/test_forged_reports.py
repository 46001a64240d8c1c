"""Forged and stray reports, from a real gRPC client to the real callback server, the real jobs
subtree (dispatcher and JobActor) and the real reaper, over a real store. Only SLURM and the
chain stand in: SLURM's record of each SLURM job is what the test says it is, and the chain
applies every status the job sends (remembered, to assert on).

The world (:class:`tests.job_stand_ins.Ports`) is both the jobs' ports and what the stand-in
SLURM actor answers the reaper. No report here carries the reporters' secret: it is what the
grid's C++ plugins send, and what anyone who reaches the callback port can send."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import msgspec
import trio
import trio_asyncio
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from actors.callbacks import CallbackServerActor, CallbackStatistics, GetCallbackStatistics
from actors.chain.messages import GetJob
from actors.grid import ClaimedJob, JobDefinition, JobStatus, Report
from actors.job.lookups import ReportLookups
from actors.job.machine import (
    LOST_REASON,
    ChainApplied,
    Job,
    Phase,
    ScriptFetched,
    SendStatus,
    Submitted,
    new_job,
    transition,
)
from actors.job.supervisor import jobs_supervisor
from actors.reaper import ReaperActor, ReaperSettings, SweepReport
from actors.records import JobRecords, ReportInbox
from actors.slurm.messages import FindJobs, SlurmJob
from protos.supervisor.v1alpha1 import job_grpc, job_pb2
from runtime.actor import Actor
from runtime.store import Store, open_store
from runtime.supervisor import ChildSpec, Supervisor
from tests.integration.test_callbacks import generated_ssh_key
from tests.job_stand_ins import SLURM_ID, Ports

HOST = "127.0.0.1"
JOB = "0x" + "f0" * 32
STRANGER = "0x" + "5a" * 32
PROVIDER = "0x" + "22" * 20
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def slurm_record(state: str, *, seconds: int = 130, slurm_id: int = SLURM_ID) -> SlurmJob:
    ended = state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
    return SlurmJob(
        slurm_job_id=slurm_id,
        name=JOB,
        state=state,
        start=None if state == "PENDING" else T0,
        end=T0 + dt.timedelta(seconds=seconds) if ended else None,
        elapsed_seconds=seconds if state != "PENDING" else 0,
    )


def submitted_job() -> Job:
    claim = ClaimedJob(JOB, "0x" + "11" * 20, PROVIDER, 10, JobDefinition(0, 100, 1, 1, "h"))
    job, _ = new_job(claim)
    job, _ = transition(job, ScriptFetched("#!/bin/sh\n"))
    return transition(job, Submitted(SLURM_ID))[0]


def running_job() -> Job:
    job, _ = transition(submitted_job(), Report(JOB, SLURM_ID, JobStatus.RUNNING))
    return transition(job, ChainApplied(JobStatus.RUNNING))[0]


class Slurm(Actor[FindJobs, list[SlurmJob]]):
    """Stands in for the SLURM actor (for the reaper): the jobs of the world by name."""

    def __init__(self, world: Ports) -> None:
        super().__init__("slurm")
        self.world = world

    async def handle(self, message: FindJobs) -> list[SlurmJob]:
        return [job for job in self.world.slurm.values() if job.name == message.job_name]


class Chain(Actor[GetJob, None]):
    """Stands in for the chain actor (for the reaper): it knows no job."""

    def __init__(self) -> None:
        super().__init__("chain")

    async def handle(self, message: GetJob) -> None:
        return None


class Tree(msgspec.Struct):
    root: Supervisor
    store: Store
    world: Ports
    port: int

    def callbacks(self) -> CallbackServerActor:
        server = self.root.registry.whereis("callbacks")
        assert isinstance(server, CallbackServerActor)
        return server

    async def statistics(self) -> CallbackStatistics:
        stats = await self.callbacks().ask(GetCallbackStatistics())
        assert isinstance(stats, CallbackStatistics)
        return stats

    async def sweep(self) -> SweepReport:
        reaper = self.root.registry.whereis("reaper")
        assert isinstance(reaper, ReaperActor)
        return await reaper.sweep()

    async def record(self) -> Job:
        job = await JobRecords(self.store).get(JOB)
        assert job is not None
        return job

    async def waiting(self) -> list[Report]:
        return await ReportInbox(self.store).pending()


@contextlib.asynccontextmanager
async def tree(
    tmp_path: Path, job: Job | None, *, lookups: ReportLookups | None = None
) -> AsyncIterator[Tree]:
    """The callback server, the jobs subtree and the reaper (sweeping only when asked), over a
    store holding ``job``."""
    world = Ports()
    key = generated_ssh_key(tmp_path)[0]
    async with open_store(tmp_path / "state") as store:
        if job is not None:
            await JobRecords(store).put(job)
        settings = ReaperSettings(interval=3600.0, first_sweep_after=3600.0, lost_grace=0.0)

        def callbacks() -> CallbackServerActor:
            return CallbackServerActor(
                listen_host=HOST, listen_port=0, ssh_private_key=key, store=store
            )

        root = Supervisor(
            "root",
            [
                ChildSpec("slurm", lambda: Slurm(world)),
                ChildSpec("chain", Chain),
                ChildSpec("callbacks", callbacks),
                ChildSpec(
                    "jobs-supervisor",
                    lambda: jobs_supervisor(store=store, ports=world, lookups=lookups),
                ),
                ChildSpec(
                    "reaper", lambda: ReaperActor(store=store, provider=PROVIDER, settings=settings)
                ),
            ],
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            server = root.registry.whereis("callbacks")
            assert isinstance(server, CallbackServerActor)
            try:
                yield Tree(root, store, world, server.port)
            finally:
                root.request_stop()


async def report(
    port: int,
    status: int,
    *,
    name: str = JOB,
    slurm_id: int = SLURM_ID,
    duration: int = 0,
    exit_code: int = 0,
) -> Status:
    """Send one ``SetJobStatus`` without the secret; the status of the answer."""

    async def call() -> Status:
        request = job_pb2.SetJobStatusRequest(
            name=name, id=slurm_id, duration=duration, status=cast(Any, status), exit_code=exit_code
        )
        async with Channel(HOST, port) as channel:
            try:
                await job_grpc.JobAPIStub(channel).SetJobStatus(request, timeout=10)
            except GRPCError as exc:
                return exc.status
        return Status.OK

    answer: Status = await trio_asyncio.aio_as_trio(call)()
    return answer


async def until(what: str, condition: Callable[[], Any], seconds: float = 15.0) -> None:
    """Wait until ``condition()`` (sync or async) holds; after ``seconds``, fail naming it."""
    with trio.move_on_after(seconds):
        while True:
            outcome = condition()
            if hasattr(outcome, "__await__"):
                outcome = await outcome
            if outcome:
                return
            await trio.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


async def nothing_waits(t: Tree) -> bool:
    return not await t.waiting()


# --- RUNNING is cross-checked too -------------------------------------------------------------


async def test_a_forged_running_for_a_job_slurm_lists_as_pending_is_not_sent(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with tree(tmp_path, submitted_job()) as t:
        t.world.slurm[SLURM_ID] = slurm_record("PENDING")
        assert await report(t.port, job_pb2.JOB_STATUS_RUNNING) is Status.OK
        await until("the forged RUNNING to be dropped", lambda: nothing_waits(t))
        await until("SLURM to be asked", lambda: t.world.slurm_asks >= 1)
        assert t.world.sent == []
        job = await t.record()
        assert (job.phase, job.sending) == (Phase.SUBMITTED, None)

        # The job starts for real: the genuine RUNNING, the same fields as the forgery's, counts.
        t.world.slurm[SLURM_ID] = slurm_record("RUNNING")
        assert await report(t.port, job_pb2.JOB_STATUS_RUNNING) is Status.OK
        await until("RUNNING on chain", lambda: t.world.sent == [SendStatus(JobStatus.RUNNING)])
        await until("the RUNNING report to be acknowledged", lambda: nothing_waits(t))
        assert (await t.record()).phase is Phase.RUNNING


# --- a refused forgery leaves no tombstone ------------------------------------------------------


async def test_a_refused_forgery_does_not_take_the_place_of_the_genuine_report(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with tree(tmp_path, running_job()) as t:
        t.world.slurm[SLURM_ID] = slurm_record("RUNNING")
        # A forger guesses the genuine completion report exactly: FINISHED, 130 s, exit 0.
        final = {"duration": 130, "exit_code": 0}
        assert await report(t.port, job_pb2.JOB_STATUS_FINISHED, **final) is Status.OK
        await until("the forgery to be refused", lambda: nothing_waits(t))
        assert t.world.sent == [] and (await t.record()).phase is Phase.RUNNING

        t.world.slurm[SLURM_ID] = slurm_record("COMPLETED", seconds=130)
        assert await report(t.port, job_pb2.JOB_STATUS_FINISHED, **final) is Status.OK
        await until("FINISHED on chain", lambda: len(t.world.sent) == 1)
        assert t.world.sent == [SendStatus(JobStatus.FINISHED, 2, 0)]
        stats = await t.statistics()
        assert (stats.received, stats.duplicates) == (2, 0)  # the genuine one was stored anew


# --- strays expire and block no rule --------------------------------------------------------------


async def test_a_forged_final_for_another_slurm_id_neither_stays_nor_hides_a_lost_job(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with tree(tmp_path, running_job()) as t:
        # SLURM has no job of that name in any state: the job is lost (lostGrace is 0 here).
        assert await report(t.port, job_pb2.JOB_STATUS_FAILED, slurm_id=999_999) is Status.OK
        await until("the stray to leave the inbox", lambda: nothing_waits(t))
        assert (await t.sweep()).missing == 1
        second = await t.sweep()
        assert second.lost == 1
        await until("the job to be declared lost", lambda: len(t.world.sent) == 1)
        assert t.world.sent == [SendStatus(JobStatus.PANICKED, last_error=LOST_REASON)]


async def test_a_stray_an_earlier_version_left_in_the_inbox_is_dropped_and_blocks_nothing(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with tree(tmp_path, None) as t:
        # As an earlier version left it: stored, never acknowledged, the actor long gone (just
        # received: it is dropped for naming another SLURM job, not for its age).
        stray = Report(JOB, 999_999, JobStatus.FAILED, 60, 256, received_at=time.time())
        assert await ReportInbox(t.store).offer(stray)
        await JobRecords(t.store).put(running_job())
        first = await t.sweep()
        assert (first.dropped_reports, first.missing) == (1, 1)
        assert await t.waiting() == []
        assert (await t.sweep()).lost == 1
        await until("the job to be declared lost", lambda: len(t.world.sent) == 1)
        assert t.world.sent[0].status is JobStatus.PANICKED


# --- reports for jobs we do not have; bounded SLURM looks ----------------------------------------


async def test_reports_for_jobs_we_do_not_have_are_refused_without_a_write(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with tree(tmp_path, running_job()) as t:
        writes = t.store.statistics().writes
        for n in range(50):
            stranger = f"0x{n:064x}"
            answer = await report(t.port, job_pb2.JOB_STATUS_FAILED, name=stranger, slurm_id=n)
            assert answer is Status.NOT_FOUND
        assert t.store.statistics().writes == writes
        assert await t.waiting() == []
        stats = await t.statistics()
        assert (stats.unknown_job, stats.received) == (50, 0)
        assert t.world.slurm_asks == 0


async def test_forged_finals_for_one_job_share_their_slurm_looks(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    lookups = ReportLookups(per_job_interval=2.0)
    async with tree(tmp_path, running_job(), lookups=lookups) as t:
        t.world.slurm[SLURM_ID] = slurm_record("RUNNING")
        forged = 30
        async with trio.open_nursery() as nursery:
            for n in range(forged):
                nursery.start_soon(
                    lambda n=n: report(t.port, job_pb2.JOB_STATUS_FINISHED, duration=6000 + n)
                )
        await until("every forgery to be refused", lambda: nothing_waits(t), seconds=30)
        assert (await t.statistics()).received == forged
        # One look, then one more that every report received after the first began shares.
        assert t.world.slurm_asks <= 2
        stats = lookups.statistics()
        assert stats.asked == t.world.slurm_asks
        assert stats.asked + stats.reused + stats.joined >= forged
        assert t.world.sent == []
