"""The JobActor and its dispatcher in the real actor runtime with a real SQLite store, and ports
that stand in for SLURM and the chain (recording what they are asked): resumption at start, and
the cross-check of unauthenticated reports with SLURM."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from actors.grid import ClaimedJob, ClaimedTopUp, JobDefinition, JobStatus, Report
from actors.job.machine import (
    CancelInSlurm,
    CancelRequested,
    ChainApplied,
    Event,
    Job,
    LaunchLost,
    Phase,
    RequeueInSlurm,
    ScriptFetched,
    SendStatus,
    Submitted,
    new_job,
    transition,
)
from actors.job.supervisor import DISPATCHER_NAME, Reconcile, jobs_supervisor
from actors.records import JobRecords, ReportInbox, RequestInbox, StoredRequest, cancel_key
from actors.slurm.messages import SlurmJob
from runtime.store import Store, open_store
from tests.job_stand_ins import Ports

JOB_ID = "0x" + "77" * 32
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def running_job() -> Job:
    claim = ClaimedJob(JOB_ID, "0x" + "11" * 20, "0x" + "22" * 20, 10,
                       JobDefinition(0, 100, 1, 1, "h"))  # fmt: skip
    job, _ = new_job(claim)
    for event in (ScriptFetched("s"), Submitted(42), Report(JOB_ID, 42, JobStatus.RUNNING)):
        job, _ = transition(job, event)
    return transition(job, ChainApplied(JobStatus.RUNNING))[0]


def slurm_says(state: str, seconds: int = 130) -> SlurmJob:
    return SlurmJob(42, JOB_ID, state, start=T0, end=T0 + dt.timedelta(seconds=seconds))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(tmp_path) as opened:
        yield opened


async def settled(store: Store, seconds: float) -> None:
    """Wait until the job record is DONE, for at most ``seconds``."""
    for _ in range(int(seconds / 0.02)):
        if (await record(store)).phase is Phase.DONE:
            return
        await trio.sleep(0.02)


async def run_tree(store: Store, ports: Ports, until: float = 3.0) -> None:
    """Run the jobs subtree until the job record is DONE (or ``until`` seconds)."""
    tree = jobs_supervisor(store=store, ports=ports)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run)
        await settled(store, until)
        tree.request_stop()


@contextlib.asynccontextmanager
async def running_dispatcher(store: Store, ports: Ports) -> AsyncIterator[Any]:
    """The jobs subtree running over ``store`` and ``ports``; yields its dispatcher, stops the
    subtree on exit."""
    tree = jobs_supervisor(store=store, ports=ports)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run)
        dispatcher = tree.find_child(DISPATCHER_NAME)
        assert dispatcher is not None
        yield dispatcher
        tree.request_stop()


async def record(store: Store) -> Job:
    job = await JobRecords(store).get(JOB_ID)
    assert job is not None
    return job


async def offer(store: Store, report: Report) -> None:
    assert await ReportInbox(store).offer(report)


async def test_an_unsettled_job_is_resumed_when_the_subtree_starts(store: Store) -> None:
    job, _ = transition(running_job(), Report(JOB_ID, 42, JobStatus.FAILED, 61, 768))
    assert job.phase is Phase.REPORTING
    await JobRecords(store).put(job)  # as a killed process left it
    ports = Ports()
    await run_tree(store, ports)
    assert ports.sent == [SendStatus(JobStatus.FAILED, 1, 768)]
    assert (await record(store)).phase is Phase.DONE


async def test_an_unauthenticated_final_report_slurm_contradicts_is_dropped(
    store: Store,
) -> None:
    await JobRecords(store).put(running_job())
    forged = Report(JOB_ID, 42, JobStatus.FINISHED, 6000, 0, authenticated=False)
    await offer(store, forged)
    ports = Ports(slurm=slurm_says("RUNNING"))
    await run_tree(store, ports, until=0.5)
    assert ports.sent == [] and ports.slurm_asks == 1
    assert (await record(store)).phase is Phase.RUNNING
    assert await ReportInbox(store).pending() == []  # dropped


async def test_an_unauthenticated_final_report_slurm_confirms_uses_slurms_numbers(
    store: Store,
) -> None:
    await JobRecords(store).put(running_job())
    claimed = Report(JOB_ID, 42, JobStatus.FINISHED, 6000, 0, authenticated=False)
    await offer(store, claimed)
    ports = Ports(slurm=slurm_says("COMPLETED", seconds=130))
    await run_tree(store, ports)
    assert ports.sent == [SendStatus(JobStatus.FINISHED, 2, 0)]  # 130 s, not 6000 s


async def test_an_authenticated_report_is_believed_without_asking_slurm(store: Store) -> None:
    await JobRecords(store).put(running_job())
    ours = Report(JOB_ID, 42, JobStatus.FAILED, 125, 768, authenticated=True)
    await offer(store, ours)
    ports = Ports(slurm=None)
    await run_tree(store, ports)
    assert ports.sent == [SendStatus(JobStatus.FAILED, 2, 768)] and ports.slurm_asks == 0


async def test_the_reaper_can_start_a_live_jobs_actor(store: Store) -> None:
    ports = Ports()
    tree = jobs_supervisor(store=store, ports=ports)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run)
        await trio.sleep(0.1)
        # a live job appears in the store without its actor (as if it had ended abnormally)
        job, _ = transition(running_job(), Report(JOB_ID, 42, JobStatus.FINISHED, 180, 0))
        await JobRecords(store).put(job)
        dispatcher = tree.find_child(DISPATCHER_NAME)
        assert dispatcher is not None
        answer = await dispatcher.ask(Reconcile(JOB_ID))  # type: ignore[attr-defined]
        assert msgspec.structs.asdict(answer)["accepted"]
        await settled(store, 3.0)
        tree.request_stop()
    assert ports.sent == [SendStatus(JobStatus.FINISHED, 3, 0)]


async def test_a_lost_launch_the_reaper_tells_is_requeued_and_the_job_stays_running(
    store: Store,
) -> None:
    await JobRecords(store).put(running_job())
    ports = Ports()
    async with running_dispatcher(store, ports) as dispatcher:
        lost = Reconcile(JOB_ID, LaunchLost(42, "SLURM never launched it"))
        for _ in range(100):  # the job's actor is resumed as the subtree starts
            if (await dispatcher.ask(lost)).accepted:
                break
            await trio.sleep(0.02)
        for _ in range(100):
            if ports.requeued:
                break
            await trio.sleep(0.02)
    assert ports.requeued == [RequeueInSlurm(42)] and ports.sent == []
    job = await record(store)
    assert job.phase is Phase.RUNNING and job.history[-1][1].startswith("requeue asked of SLURM")


async def test_a_claimed_top_up_is_stored_before_the_answer_and_applied_once(
    store: Store,
) -> None:
    await JobRecords(store).put(running_job())  # claimed for 10 minutes
    top_up = ClaimedTopUp(JOB_ID, "0x" + "22" * 20, extra_minutes=5, block_number=900)
    async with running_dispatcher(store, Ports()) as dispatcher:
        first = await dispatcher.ask(top_up)
        again = await dispatcher.ask(top_up)  # a replayed log
        assert (first.accepted, again.reason) == (True, "already requested")
        for _ in range(100):
            if not await RequestInbox(store).of_job(JOB_ID):
                break
            await trio.sleep(0.02)
    job = await record(store)
    assert job.top_up_minutes == 5 and job.time_limit_minutes == 15
    assert await RequestInbox(store).of_job(JOB_ID) == []


async def test_a_stored_request_is_applied_when_the_actor_starts(store: Store) -> None:
    await JobRecords(store).put(running_job())
    key = cancel_key(JOB_ID, 901)
    await RequestInbox(store).offer(key, StoredRequest(JOB_ID, CancelRequested()))
    cancels: list[CancelInSlurm] = []

    class Recording(Ports):
        async def cancel_in_slurm(self, job: Job, effect: CancelInSlurm) -> Event | None:
            cancels.append(effect)
            return None

    tree = jobs_supervisor(store=store, ports=Recording())
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run)
        for _ in range(100):
            if cancels:
                break
            await trio.sleep(0.02)
        tree.request_stop()
    assert cancels == [CancelInSlurm(42)]
    assert (await record(store)).cancel_requested
    assert await RequestInbox(store).of_job(JOB_ID) == []


async def test_a_replayed_claim_of_a_settled_job_does_not_run_it_again(store: Store) -> None:
    settled = msgspec.structs.replace(
        running_job(),
        phase=Phase.DONE,
        claim=msgspec.structs.replace(running_job().claim, block_number=44),
    )
    await JobRecords(store).put(settled)
    async with running_dispatcher(store, Ports()) as dispatcher:
        replayed = msgspec.structs.replace(settled.claim)  # the same log, read again
        answer = await dispatcher.ask(replayed)
        assert answer.reason == "already claimed and settled"
        assert await record(store) == settled  # not a new job: never submitted again
        later = msgspec.structs.replace(settled.claim, block_number=90)  # refused, claimed again
        answer = await dispatcher.ask(later)
        assert answer.accepted and answer.reason == ""
        new = await record(store)
    assert new.claim.block_number == 90 and new.phase is not Phase.DONE  # a new life


async def test_a_report_left_in_the_inbox_is_applied_when_the_reaper_finds_it(
    store: Store,
) -> None:
    await JobRecords(store).put(running_job())
    ports = Ports()
    async with running_dispatcher(store, ports) as dispatcher:
        for _ in range(100):  # the job's actor is resumed as the subtree starts
            if (await dispatcher.ask(Reconcile(JOB_ID))).reason == "running":
                break
            await trio.sleep(0.02)
        # Stored while nobody told the actor (the callback server gave up forwarding it).
        await offer(store, Report(JOB_ID, 42, JobStatus.FAILED, 125, 768, authenticated=True))
        answer = await dispatcher.ask(Reconcile(JOB_ID, replay_reports=True))
        assert answer.reason == "running; replays its inbox"
        await settled(store, 3.0)
    assert ports.sent == [SendStatus(JobStatus.FAILED, 2, 768)]
    assert await ReportInbox(store).pending() == []


async def test_a_report_is_acknowledged_with_the_record_it_produced(store: Store) -> None:
    await JobRecords(store).put(running_job())
    ports = Ports()
    ignored = Report(JOB_ID, 41, JobStatus.FINISHED, 60, 0)  # another SLURM job: ignored
    await offer(store, ignored)
    await run_tree(store, ports, until=0.5)
    assert await ReportInbox(store).pending() == []  # applied (as nothing) and acknowledged
    assert not await ReportInbox(store).offer(ignored)  # a repeat stays a duplicate
    assert ports.sent == [] and ports.slurm_asks == 0
    assert await record(store) == running_job()


def invalid_claim() -> ClaimedJob:
    return ClaimedJob(JOB_ID, "0x" + "11" * 20, "0x" + "22" * 20, 10,
                      JobDefinition(0, 100, 0, 1, "h"))  # fmt: skip


async def test_a_job_that_cannot_start_tells_its_customer_then_the_chain(store: Store) -> None:
    job = Job(claim=invalid_claim(), phase=Phase.CLAIMED)  # claimed, then the process died
    await JobRecords(store).put(job)
    ports = Ports()
    await run_tree(store, ports)
    ((sent),) = ports.sent
    assert sent.status is JobStatus.FAILED and "invalid job definition" in sent.last_error
    ((lines),) = ports.customer_logs
    assert lines[0] == f"job {JOB_ID} did not start:" and lines[-1] == sent.last_error
    assert (await record(store)).phase is Phase.DONE


async def test_a_failing_job_resumed_does_not_write_the_customer_log_again(store: Store) -> None:
    job, effects = new_job(invalid_claim())
    assert job.phase is Phase.FAILING and len(effects) == 2  # the log, then FAILED
    await JobRecords(store).put(job)  # as a process killed after the log left it
    ports = Ports()
    await run_tree(store, ports)
    assert [s.status for s in ports.sent] == [JobStatus.FAILED]
    assert ports.customer_logs == []
