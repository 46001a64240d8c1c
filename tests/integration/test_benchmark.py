"""Benchmarks for real on the testbed: Debian's hpcc (HPL, STREAM, PingPong) over Open MPI and
fio, as SLURM jobs across the three fake nodes, read back over SSH.

- In-process, BenchmarkActor beside a real SlurmActor and a real store: single-node mode (one
  node, network skipped with its reason, results stored with the fingerprint); disabled mode
  (no job at all, the registered benchmark labels re-used); leftovers of an earlier run
  cancelled at start.
- The real supervisor process, three starts on one state folder: the first benchmarks and
  registers hardware, prices and the generated labels (read back with getProvider); the second
  runs no benchmark and registers nothing; after n3's CPU count changes in slurm.conf the third
  benchmarks again and registers the new hardware (slurm.conf is restored afterwards).

Run under the shared testbed lock: the benchmark jobs take whole nodes, and the CPU change
restarts slurmctld.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_asyncio
import yaml

from actors.benchmark.actor import BenchmarkActor, BenchmarkStatistics
from actors.benchmark.messages import STORE_KEY, STORE_NAMESPACE, BenchmarkRecord, Measure, Measured
from actors.benchmark.plan import job_name
from actors.benchmark.settings import BenchmarkSettings, settings_from_config
from actors.grid import Label
from actors.slurm.actor import SlurmActor
from actors.slurm.messages import Discover, FindJobs, JobSubmitted, Node, SubmitBatch
from config.load import load
from runtime.actor import ActorRef
from runtime.store import Store, open_store
from runtime.supervisor import ChildSpec, Supervisor
from testbed import market
from testbed.benchmark import ensure_benchmark_tools, restore_slurm_conf, set_node_cpus
from testbed.env import TestbedEnv
from testbed.grid import grid_addresses
from testbed.layout import Layout

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PUBLIC_ADDRESS = "127.0.0.1:3998"  # not the supervisor's: its own job names


@pytest.fixture(scope="module")
def tools(testbed_env: TestbedEnv, testbed_layout: Layout) -> TestbedEnv:
    ensure_benchmark_tools(testbed_layout, log=lambda m: print(f"testbed: {m}", file=sys.stderr))
    return testbed_env


def settings_for(env: TestbedEnv, **changes: Any) -> BenchmarkSettings:
    config = load(file=Path(env.supervisor_config), env={}).config
    settings = settings_from_config(config.benchmark)
    fields = {f: getattr(settings, f) for f in settings.__struct_fields__}
    fields.update({"disable": False, "time_limit_minutes": 5, **changes})
    return BenchmarkSettings(**fields)


@pytest.fixture
async def bench(
    tools: TestbedEnv, tmp_path: Path, asyncio_loop: trio_asyncio.TrioEventLoop
) -> AsyncIterator[Callable[[BenchmarkSettings], Any]]:
    """Start a tree of SlurmActor + BenchmarkActor with the given settings; yields a function
    returning (benchmark ref, slurm ref, store)."""
    config = load(file=Path(tools.supervisor_config), env={}).config
    async with open_store(tmp_path / "state") as store, trio.open_nursery() as nursery:
        roots: list[Supervisor] = []

        async def start(settings: BenchmarkSettings) -> tuple[Any, Any, Store]:
            root = Supervisor(
                "root",
                [
                    ChildSpec(
                        "slurm",
                        lambda: SlurmActor.from_config(config.slurm, public_address=PUBLIC_ADDRESS),
                    ),
                    ChildSpec(
                        "benchmark",
                        lambda: BenchmarkActor(
                            settings=settings, store=store, public_address=PUBLIC_ADDRESS
                        ),
                    ),
                ],
            )
            await nursery.start(root.run)
            roots.append(root)
            return ActorRef(root.registry, "benchmark"), ActorRef(root.registry, "slurm"), store

        yield start
        for root in roots:
            root.request_stop()


async def test_single_node_mode_measures_one_node_and_stores_the_results(
    bench: Callable[[BenchmarkSettings], Any], tools: TestbedEnv
) -> None:
    settings = settings_for(tools, hpl_single_node=True)
    benchmark, slurm, store = await bench(settings)
    nodes: list[Node] = await slurm.ask(Discover(), timeout=30)
    began = time.monotonic()
    measured: Measured = await benchmark.ask(Measure(tuple(nodes)), timeout=300)
    seconds = time.monotonic() - began
    print(f"single-node suite: {seconds:.1f} s, labels {measured.labels}")
    assert measured.ran and measured.source == "measured"
    assert measured.failed == {}
    assert "single-node" in measured.skipped["network"]
    assert "speedtest" in measured.skipped["internet"]
    assert float(measured.labels["compute.gflops"]) > 0
    assert float(measured.labels["memory.bw.mbps"]) > 0
    assert float(measured.labels["storage.shared.write.bw.mibps"]) > 0
    assert "network.p2p.latency.us" not in measured.labels
    assert measured.labels["nodes"] == "3" and measured.labels["gpu"] == "none"
    record = await store.get(STORE_NAMESPACE, STORE_KEY, BenchmarkRecord)
    assert record is not None and record.fingerprint == measured.fingerprint
    again: Measured = await benchmark.ask(Measure(tuple(nodes)), timeout=60)
    assert (again.ran, again.source, again.labels) == (False, "re-used", measured.labels)
    stats = benchmark.resolve_nowait().statistics()
    assert isinstance(stats, BenchmarkStatistics) and stats.state == "re-used"


async def test_disabled_mode_runs_nothing_and_reuses_registered_labels(
    bench: Callable[[BenchmarkSettings], Any], tools: TestbedEnv
) -> None:
    benchmark, slurm, _ = await bench(settings_for(tools, disable=True))
    nodes: list[Node] = await slurm.ask(Discover(), timeout=30)
    before = await slurm.ask(FindJobs(job_name("compute", PUBLIC_ADDRESS)), timeout=30)
    on_chain = (Label("compute.gflops", "12.50"), Label("name", "operator-only"))
    measured: Measured = await benchmark.ask(Measure(tuple(nodes), on_chain), timeout=60)
    assert (measured.ran, measured.source) == (False, "disabled")
    assert measured.labels == {"compute.gflops": "12.50", "nodes": "3"}
    after = await slurm.ask(FindJobs(job_name("compute", PUBLIC_ADDRESS)), timeout=30)
    assert after == before  # no job submitted


async def test_leftover_benchmark_jobs_are_cancelled_at_start(
    bench: Callable[[BenchmarkSettings], Any], tools: TestbedEnv
) -> None:
    benchmark, slurm, _ = await bench(settings_for(tools, disable=True))
    name = job_name("storage", PUBLIC_ADDRESS)
    left = await slurm.ask(
        SubmitBatch(
            user="root",
            job_name=name,
            comment=f"benchmark {PUBLIC_ADDRESS}",
            time_limit_minutes=5,
            nodes=1,
            ntasks_per_node=1,
            cpus_per_task=1,
            output="/dev/null",
            script="#!/bin/bash\nsleep 300\n",
        ),
        timeout=30,
    )
    assert isinstance(left, JobSubmitted)
    nodes: list[Node] = await slurm.ask(Discover(), timeout=30)
    await benchmark.ask(Measure(tuple(nodes)), timeout=60)
    with trio.fail_after(20):
        while True:
            jobs = await slurm.ask(FindJobs(name), timeout=30)
            job = next(j for j in jobs if j.slurm_job_id == left.slurm_job_id)
            if job.state in ("CANCELLED", "COMPLETING") or job.has_ended:
                break
            await trio.sleep(0.3)
    assert job.state.startswith(("CANCELLED", "COMPLETING"))
    assert job.name == name


# --- the real supervisor process -----------------------------------------------------------------


class Run:
    def __init__(self, process: subprocess.Popen[bytes], state: Path, log: Path) -> None:
        self.process, self.state, self.log = process, state, log

    def node(self, name: str) -> dict[str, Any] | None:
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", "tree", "--json", "--state-dir", str(self.state)],
            capture_output=True,
            cwd=REPO,
            check=False,
        ).stdout
        if not out:
            return None
        stack = [json.loads(out)]
        while stack:
            item = stack.pop()
            if item["name"] == name:
                found: dict[str, Any] = item
                return found
            stack += item.get("children", [])
        return None

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def supervisor_runs(tools: TestbedEnv, tmp_path: Path) -> Iterator[Callable[[str], Run]]:
    """Start ``grid-supervisor run`` on one state folder (benchmarks on), wait until it has
    registered (or found nothing to register), stop it; returns the run."""
    config: dict[str, Any] = yaml.safe_load(Path(tools.supervisor_config).read_text())
    config["state"]["folder"] = str(tmp_path / "state")
    config["log"]["level"] = "info"
    config["benchmark"]["disable"] = False
    config["labels"] = {"name": "grid-testbed", "gpu": "operator-choice"}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    running: list[subprocess.Popen[bytes]] = []

    def run(tag: str) -> Run:
        log = tmp_path / f"supervisor-{tag}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "run", "--config", str(config_file)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        running.append(process)
        current = Run(process, tmp_path / "state", log)
        seen: list[str] = []

        def registered() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"supervisor exited {process.returncode}:\n{current.text()}")
            node = current.node("benchmark")
            if node is not None and node.get("info", {}).get("state") == "benchmarking":
                seen.append(json.dumps(node["info"]))
            state = (current.node("registration") or {}).get("info", {}).get("state", "")
            return bool(state.startswith(("waiting", "claiming", "drained")))

        try:
            wait_for(f"start {tag} to register", registered, timeout=180)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        print(f"{tag}: progress seen in tree: {seen[:2]}")
        current.progress = seen  # type: ignore[attr-defined]
        return current

    yield run
    for process in running:
        if process.poll() is None:
            process.kill()
            process.wait()


def approved_provider(env: TestbedEnv) -> market.Provider:
    """Approve the pending registration as the grid's admin (getProvider shows the approved
    record), then read it."""
    grid = grid_addresses(env)
    market.approve_provider(
        env.chain.rpc_url, grid, admin_key=env.admin.key, provider=env.provider.address
    )
    return market.get_provider(env.chain.rpc_url, grid, env.provider.address)


def test_first_start_benchmarks_second_reuses_changed_cpus_rerun(
    supervisor_runs: Callable[[str], Run], tools: TestbedEnv, testbed_layout: Layout
) -> None:
    began = time.monotonic()
    first = supervisor_runs("first")
    first_seconds = time.monotonic() - began
    log = first.text()
    for kind in ("compute", "network", "storage", "internet"):
        assert f"benchmark {kind}: SLURM job" in log
    assert "internet speed not measured" in log
    assert "operator label gpu=operator-choice replaces the generated value none" in log
    assert log.index("benchmarks finished") < log.index("registering 3 nodes")
    assert first.progress  # type: ignore[attr-defined]
    on_chain = approved_provider(tools)
    labels = {label.key: label.value for label in on_chain.labels}
    print(f"first start {first_seconds:.1f} s; registered labels: {labels}")
    assert on_chain.hardware.cpus_per_node == (8, 8, 8)
    assert on_chain.hardware.mem_per_node == (4096, 4096, 4096)
    assert on_chain.prices.cpu_price_per_min > 0
    assert labels["nodes"] == "3" and labels["os"] == "linux" and labels["arch"] == "amd64"
    assert labels["gpu"] == "operator-choice" and labels["name"] == "grid-testbed"
    for key in (
        "compute.gflops",
        "memory.bw.mbps",
        "network.p2p.latency.us",
        "network.p2p.bw.mbps",
        "storage.shared.write.bw.mibps",
        "storage.local.read.bw.mibps",
    ):
        assert float(labels[key]) > 0, key
    assert "network.download.bw.mbps" not in labels
    assert [label.key for label in on_chain.labels] == sorted(labels)

    second = supervisor_runs("second")
    log = second.text()
    assert "re-using their results" in log
    assert "SLURM job" not in log
    assert "the chain already holds this registration" in log
    assert "registering 3 nodes" not in log
    assert (
        market.get_provider(
            tools.chain.rpc_url, grid_addresses(tools), tools.provider.address
        ).labels
        == on_chain.labels
    )

    set_node_cpus(testbed_layout, "n3", 4)
    try:
        third = supervisor_runs("third")
    finally:
        restore_slurm_conf(testbed_layout)
    log = third.text()
    assert "the hardware changed since the last benchmarks" in log
    assert "benchmark compute: SLURM job" in log
    assert "registering 3 nodes, 20 CPUs" in log
    assert approved_provider(tools).hardware.cpus_per_node == (8, 8, 4)
