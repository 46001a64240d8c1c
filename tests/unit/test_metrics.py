"""Prometheus metrics: event counters from the actors' records, the scrape-time collector over a
real tree and store, and the /metrics endpoint on a real socket."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actors import metrics
from actors.drain import DrainSwitch
from actors.grid import ClaimedJob, JobDefinition, JobStatus, Report
from actors.job.machine import new_job
from actors.records import JobRecords, ReportInbox
from actors.slurm.ssh import command_name
from runtime import Actor, ChildSpec, Supervisor
from runtime.store import open_store
from tests.statistics_records import Reporting, chain_record, slurm_record

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


class Idle(Actor[object, None]):
    async def handle(self, message: object) -> None:
        await trio.sleep_forever()


def test_ssh_command_names_stay_few() -> None:
    assert command_name("/usr/bin/sbatch --parsable --job-name=x") == "sbatch"
    assert command_name("'/opt/slurm/bin/squeue' -h") == "squeue"
    assert command_name("") == "empty"


async def test_event_counters_and_histograms_come_from_the_actors_records() -> None:
    root = Supervisor(
        "root",
        [
            ChildSpec("listener", lambda: Reporting("chain-listener", chain_record)),
            ChildSpec("ssh", lambda: Reporting("login-node", slurm_record)),
        ],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        registry = CollectorRegistry()
        registry.register(metrics.SupervisorCollector(metrics.MetricsSource(root.registry)))
        samples = parse(generate_latest(registry).decode())
        root.request_stop()

    def value(name: str, **labels: str) -> float | None:
        return sample(samples, name, **labels)

    assert value("grid_chain_transactions_total", function="claimNextJob", outcome="mined") == 1
    assert value("grid_chain_transactions_total", function="claimNextJob", outcome="refused") == 1
    assert value("grid_chain_transaction_seconds_count", function="claimNextJob") == 2
    assert value("grid_chain_transaction_seconds_bucket", function="claimNextJob", le="0.1") == 1
    assert value("grid_claims_total", queue="job", outcome="claimed") == 2
    assert value("grid_claims_total", queue="top_up", outcome="empty") == 1
    assert value("grid_ssh_commands_total", command="sbatch", outcome="ok") == 1
    assert value("grid_ssh_commands_total", command="squeue", outcome="lost") == 1
    assert value("grid_ssh_command_seconds_bucket", command="sbatch", le="0.05") == 1
    assert value("grid_ssh_command_seconds_bucket", command="squeue", le="30") == 0
    assert value("grid_ssh_command_seconds_bucket", command="squeue", le="+Inf") == 1
    assert value("grid_chain_head_block") == 812
    assert value("grid_chain_cursor_block") == 811
    assert value("grid_chain_transactions_in_flight") == 3
    assert value("grid_chain_claiming") == 1 and value("grid_chain_subscribed") == 1
    assert value("grid_actor_up", actor="chain-listener") == 1


async def test_collector_reads_the_tree_the_store_and_the_switch(tmp_path: Path) -> None:
    job_id = "0x" + "ab" * 32
    claim = ClaimedJob(
        job_id=job_id,
        customer="0x" + "11" * 20,
        provider="0x" + "22" * 20,
        max_duration_minute=5,
        definition=JobDefinition(
            gpus=0, mem_per_cpu=1, cpus_per_task=1, ntasks=1, batch_location_hash="h"
        ),
    )
    async with open_store(tmp_path) as store:
        job, _ = new_job(claim)
        await JobRecords(store).put(job)
        await ReportInbox(store).offer(Report(job_id, 1, JobStatus.RUNNING))
        drain = DrainSwitch(store)
        await drain.set(True)
        name = f"job:{job_id}"
        root = Supervisor(
            "root", [ChildSpec("slurm", lambda: Idle("slurm")), ChildSpec(name, lambda: Idle(name))]
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            source = metrics.MetricsSource(root.registry, store, drain, healthy=root.healthy)
            await source.refresh()
            collected = metrics.SupervisorCollector(source)
            registry = CollectorRegistry()
            registry.register(collected)
            samples = parse(generate_latest(registry).decode())
            root.request_stop()
    assert sample(samples, "grid_jobs", phase="FETCHING") == 1
    assert sample(samples, "grid_jobs", phase="DONE") == 0
    assert sample(samples, "grid_reports_waiting") == 1
    assert sample(samples, "grid_drained") == 1
    assert sample(samples, "grid_tree_healthy") == 1
    assert sample(samples, "grid_actor_up", actor="slurm") == 1
    assert sample(samples, "grid_actor_up", actor="job") == 1  # job actors share one label
    assert sample(samples, "grid_job_actors") == 1
    assert sample(samples, "grid_actor_restarts_total", actor="root") == 0
    assert sample(samples, "grid_actor_mailbox_depth", actor="slurm") == 0


async def test_the_endpoint_serves_metrics_and_refuses_the_rest(tmp_path: Path) -> None:
    root = Supervisor("root", [ChildSpec("slurm", lambda: Idle("slurm"))])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        source = metrics.MetricsSource(root.registry)
        async with metrics.metrics_server(("127.0.0.1", 0), source) as port:
            assert port is not None
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                ok = await client.get("/metrics")
                head = await client.head("/metrics")
                missing = await client.get("/other")
                wrong = await client.post("/metrics", content=b"x")
        root.request_stop()
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/plain")
    samples = parse(ok.text)
    assert sample(samples, "grid_actor_up", actor="slurm") == 1
    assert "grid_chain_transactions" in ok.text  # the event counters are served too
    assert head.status_code == 200 and head.content == b""
    assert missing.status_code == 404 and wrong.status_code == 405


async def test_an_address_in_use_leaves_the_supervisor_running_without_metrics() -> None:
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        source = metrics.MetricsSource(Supervisor("root", []).registry)
        async with metrics.metrics_server(("127.0.0.1", port), source) as bound:
            assert bound is None
