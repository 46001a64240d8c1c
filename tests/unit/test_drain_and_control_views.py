"""The drain switch (durable, wakes waiters) and the pure views behind the control commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.control import job_detail, job_summary, on_chain_view, resolve_job_id
from actors.drain import DRAIN_KEY, DRAIN_NAMESPACE, DrainState, DrainSwitch
from actors.grid import ClaimedJob, JobDefinition, JobStatus, OnChainJob
from actors.job.machine import ScriptFetched, Submitted, new_job, transition
from runtime.control import ControlCommandError
from runtime.store import open_store

JOB = "0x" + "2a" * 32
CUSTOMER = "0x90f79bf6eb2c4f870365e785982e1f101e93b906"
PROVIDER = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
DEFINITION = JobDefinition(
    gpus=0, mem_per_cpu=200, cpus_per_task=2, ntasks=1, batch_location_hash="abc"
)


# --- the drain switch ------------------------------------------------------------------------


async def test_drain_is_written_before_it_flips_and_survives_a_reopen(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        switch = await DrainSwitch.load(store)
        assert not switch.drained and switch.generation == 0
        state = await switch.set(True)
        assert switch.drained and state.since > 0 and switch.generation == 1
        assert await store.get(DRAIN_NAMESPACE, DRAIN_KEY, DrainState) == state
        again = await switch.set(True)  # no change: no write, no wake-up
        assert again == state and switch.generation == 1
    async with open_store(tmp_path) as store:  # a restart of the process
        reloaded = await DrainSwitch.load(store)
        assert reloaded.drained and reloaded.state == state
        await reloaded.set(False)
    async with open_store(tmp_path) as store:
        assert not (await DrainSwitch.load(store)).drained


async def test_wait_changed_wakes_on_a_change_and_never_misses_one() -> None:
    switch = DrainSwitch()
    seen = switch.generation
    assert await switch.wait_changed(seen, timeout=0.05) is False  # nothing happened
    woken: list[bool] = []

    async def waiter() -> None:
        woken.append(await switch.wait_changed(seen, timeout=5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(0.01)
        await switch.set(True)
    assert woken == [True]
    # A change that happened before the wait began is seen at once.
    with trio.fail_after(1):
        assert await switch.wait_changed(seen, timeout=5) is True


# --- views -----------------------------------------------------------------------------------


def claimed() -> ClaimedJob:
    return ClaimedJob(
        job_id=JOB,
        customer=CUSTOMER,
        provider=PROVIDER,
        max_duration_minute=42,
        definition=DEFINITION,
        block_number=7,
    )


def test_job_views_show_phase_history_and_hide_the_script() -> None:
    job, _ = new_job(claimed())
    job, _ = transition(job, ScriptFetched("#!/bin/bash\necho secret-ish\n"))
    summary = job_summary(job)
    assert summary["phase"] == "SUBMITTING" and summary["chain_status"] == "SCHEDULED"
    assert summary["last"] == "SUBMITTING: script fetched"
    detail = job_detail(job)
    assert detail["script_bytes"] == len(b"#!/bin/bash\necho secret-ish\n")
    assert "echo secret-ish" not in repr(detail)
    job, _ = transition(job, Submitted(77))
    detail = job_detail(job)
    assert detail["slurm_job_id"] == 77
    assert [step["phase"] for step in detail["history"]] == [
        "CLAIMED",
        "FETCHING",
        "SUBMITTING",
        "SUBMITTED",
    ]
    assert detail["definition"]["cpus_per_task"] == 2 and detail["max_duration_minute"] == 42


def test_on_chain_view_names_the_status() -> None:
    job = OnChainJob(
        job_id=JOB,
        status=JobStatus.FINISHED,
        customer=CUSTOMER,
        provider=PROVIDER,
        definition=DEFINITION,
        max_cost=10,
        final_cost=3,
        start=1,
        end=2,
        job_name="x",
        has_cancel_request=False,
        last_error="",
        exit_code=0,
    )
    view = on_chain_view(job)
    assert view["status"] == "FINISHED" and view["final_cost"] == 3


@pytest.mark.parametrize(
    ("wanted", "found"),
    [(JOB, JOB), (JOB.upper().replace("0X", "0x"), JOB), (JOB[:10], JOB), ("  " + JOB[:6], JOB)],
)
def test_resolve_job_id_whole_or_unique_prefix(wanted: str, found: str) -> None:
    assert resolve_job_id(wanted, [JOB, "0x" + "3b" * 32]) == found


@pytest.mark.parametrize(
    ("wanted", "message"),
    [("0x2", "ambiguous"), ("0xff", "no job"), ("2a2a", "not a job id"), ("0x", "not a job id")],
)
def test_resolve_job_id_refuses(wanted: str, message: str) -> None:
    with pytest.raises(ControlCommandError, match=message):
        resolve_job_id(wanted, [JOB, "0x" + "2b" * 32])
