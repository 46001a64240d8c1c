"""``status`` and ``job`` are built from the actors' statistics records alone, and
``grid-supervisor status`` renders that answer (as it travels: JSON)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import trio

from actors.control import control_handlers, statistics_view
from actors.drain import DrainSwitch
from actors.job.actor import JobStatistics
from actors.job.machine import Phase, new_job
from actors.records import JobRecords
from cli.status import render_status
from runtime import Actor, ActorStatistics, ChildSpec, Registry, Supervisor
from runtime.store import open_store
from tests.job_ports_tree import claim
from tests.statistics_records import Reporting, chain_record, registration_record, slurm_record

JOB = "0x" + "2a" * 32


class Job(Actor[object, None]):
    """A job actor as the tree sees it: its own record, phase RUNNING in SLURM job 17."""

    def statistics(self) -> JobStatistics:
        return JobStatistics(
            **self.common_statistics(),
            job_id=JOB,
            job_phase=Phase.RUNNING,
            slurm_job_id=17,
            sending=None,
        )


def test_statistics_view_is_the_whole_record_with_the_actor_state() -> None:
    record = ActorStatistics(
        name="x",
        phase="running",
        restarts=2,
        mailbox_depth=0,
        handled=5,
        mailbox_size=64,
        last_error=None,
        background_tasks=0,
        in_flight=0,
    )
    view = statistics_view("restarting", record)
    assert view["actor"] == "restarting" and view["restarts"] == 2 and view["handled"] == 5
    assert statistics_view("absent", None) == {"actor": "absent"}


async def test_status_and_job_read_the_records_whatever_the_names(tmp_path: Path) -> None:
    registry = Registry()
    root = Supervisor(
        "root",
        [
            ChildSpec("slurm", lambda: Reporting("slurm", slurm_record)),
            ChildSpec("listener", lambda: Reporting("chain-listener", chain_record)),
            ChildSpec("signup", lambda: Reporting("signup", registration_record)),
            ChildSpec("job", lambda: Job(f"job:{JOB}")),
        ],
        registry=registry,
    )
    async with open_store(tmp_path) as store:
        job, _ = new_job(claim("h", job_id=JOB))
        await JobRecords(store).put(job)
        handlers = control_handlers(registry, store, DrainSwitch(store))
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            status = msgspec.json.decode(msgspec.json.encode(await handlers["status"]({})))
            detail = msgspec.json.decode(
                msgspec.json.encode(await handlers["job"]({"job_id": JOB}))
            )
            root.request_stop()
    chain = status["chain"]
    assert chain["actor"] == "running" and chain["name"] == "chain-listener"
    assert chain["head_block"] == 812 and chain["claiming"] is True
    assert chain["saved_cursor_block"] is None  # what the store holds: nothing saved there
    assert status["callbacks"] == {"actor": "absent"}  # no callback server in this tree
    assert status["slurm"]["healthy"] is True and status["slurm"]["latency_ms"] == 8.0
    assert detail["actor"]["state"] == "running" and detail["actor"]["job_phase"] == "RUNNING"
    text = render_status(status)
    assert "registration  claiming  approval=approved" in text
    assert "chain         subscribed to ws://node  head=812  cursor=811  claiming=on" in text
    assert "transactions: sent 2, resent 0, mined 1, reverted 0  in flight=3" in text
    assert "claims: sent 2, delivered 2, undelivered 0" in text
    assert "slurm         healthy (8.0 ms)  partition=grid  connections=root=connected(0)" in text
    assert "callbacks     absent" in text
    assert "jobs          1 live of 1: FETCHING=1" in text
