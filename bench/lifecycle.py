"""Claim-to-SLURM latency and burst throughput of the real supervisor on the testbed.

``python -m bench lifecycle [--latency-jobs 50] [--burst 500] [--floor-samples 20]
[--block-time SECONDS] [--fees auto|legacy|eip1559] [--gas-limit estimate|GAS]``

1. Floor, measured with no supervisor running, half before and half after the latency jobs
   (anvil slows down as its state grows): one ``claimNextJob`` transaction (sent, mined, receipt
   read) plus one ``sbatch`` over an already open SSH connection: the least any supervisor must
   do between a job reaching its queue and SLURM accepting it.
2. Latency: with ``grid-supervisor run`` claiming, jobs are meta-scheduled one at a time; each is
   timed from the moment its signed ``metaSchedule`` transaction leaves for anvil (which mines it
   on arrival: the job is claimable from then on) to the moment the supervisor's ``sbatch``
   returned (the JobActor's ``SUBMITTED`` log line, JSON log, millisecond stamps).
3. Burst: the supervisor is stopped, ``--burst`` jobs are queued for the provider, the supervisor
   is started again; throughput is jobs per second from its first claim to its last submission.

Prints the floor's and the latency's median and p95, their ratio, and the burst rate.

``--block-time 2``: a real chain's pace instead of anvil's automine (a block per transaction).
The testbed's anvil mines a block every 2 s for the latency jobs and the burst (switched on the
running anvil, and back to the mode it was in when the bench ends); the 500 jobs of the burst
are queued before that, in automine, so that queueing them does not take 2 s per transaction.
The floor is left out (a claim waits for the next block whatever the supervisor does): the
latency is printed in blocks too, from the block holding the ``metaSchedule`` to the block
holding the supervisor's claim, and the burst with the claims per block.
``--fees`` and ``--gas-limit`` set the supervisor's ``chain.fees`` and ``chain.gasLimit`` (the Go
supervisor's habits: ``--fees legacy --gas-limit 20000000``).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import trio
import trio_asyncio
import yaml

from actors.chain.client import MetaSchedulerClient
from actors.chain.rpc import HttpRpc, open_ws_rpc
from actors.chain.transactions import TransactionSender
from actors.grid import ClaimedJob, JobStatus
from actors.slurm import commands
from actors.slurm.ssh import SshPool, SshSettings
from testbed import anvil, market
from testbed.env import TestbedEnv
from testbed.grid import approve_provider, grid_addresses, up
from testbed.layout import Layout
from testbed.scripts import put_script

#: The jobs sleep, so that at most 24 run (the testbed's CPUs) and the SLURM-side reporters,
#: which share this machine's two cores, stay quiet while the supervisor's path is measured.
SCRIPT = b"#!/bin/bash\nsleep 900\n"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def definition(env: TestbedEnv) -> market.JobDefinition:
    location = put_script(Path(env.scripts_dir), SCRIPT)
    return market.JobDefinition(
        gpus=0, mem_per_cpu=100, cpus_per_task=1, ntasks=1, batch_location_hash=location
    )


def request(env: TestbedEnv, customer: int) -> str:
    """A job requested by a customer and not yet meta-scheduled (PENDING)."""
    return market.request_job(
        env.chain.rpc_url,
        grid_addresses(env),
        customer_key=env.customer(customer).key,
        definition=definition(env),
        locked_credits=10 * market.CREDIT,
        job_name="bench",
    )


class Scheduled(NamedTuple):
    sent: float
    """When (``time.time()``) the signed ``metaSchedule`` left for anvil."""
    block: int
    """The block that holds it: the job is claimable from that block on."""


def schedule(env: TestbedEnv, job_id: str) -> Scheduled:
    """Meta-schedule ``job_id`` to the provider (the testbed client's own simulation, signing and
    receipt polling are outside ``sent``)."""
    sent: list[float] = []
    block = market.meta_schedule(
        env.chain.rpc_url,
        grid_addresses(env),
        metascheduler_key=env.meta_scheduler.key,
        job_id=job_id,
        provider=env.provider.address,
        sending=lambda: sent.append(time.time()),
    )
    return Scheduled(sent[0], block)


class HeadClock:
    """When each new head was announced on anvil's WebSocket, as any supervisor would first hear
    of it (a thread with its own trio loop, listening for as long as the bench runs)."""

    def __init__(self, ws_url: str) -> None:
        self.heard: dict[int, float] = {}
        self._ready = threading.Event()
        threading.Thread(target=trio.run, args=(self._listen, ws_url), daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError(f"no newHeads subscription at {ws_url}")

    async def _listen(self, ws_url: str) -> None:
        async with open_ws_rpc(ws_url) as ws:
            heads = await ws.subscribe("newHeads")
            self._ready.set()
            async for head in heads:
                self.heard[int(str(head["number"]), 16)] = time.time()

    def at(self, block: int) -> float:
        deadline = time.monotonic() + 5
        while block not in self.heard:
            if time.monotonic() > deadline:
                raise RuntimeError(f"block {block} was never announced")
            time.sleep(0.001)
        return self.heard[block]


# --- 1. the floor ----------------------------------------------------------------------------


def measure_floor(env: TestbedEnv, samples: int) -> list[float]:
    """Claims with the supervisor's own chain client and sbatch over its own SSH pool."""
    key = Path(env.ssh.supervisor_key).read_bytes()
    meta_scheduler = env.chain.contracts["meta_scheduler"]

    async def run() -> list[float]:
        settings = SshSettings(
            host=env.ssh.host, port=env.ssh.port, known_hosts=env.ssh.known_hosts
        )
        pool = SshPool(settings, key)
        rpc = HttpRpc(env.chain.rpc_url)
        chain = MetaSchedulerClient(
            rpc, TransactionSender(rpc, bytes.fromhex(env.provider.key[2:])), meta_scheduler
        )
        customer = env.customer(0)
        paths = commands.CommandPaths()
        floor: list[float] = []
        try:
            await pool.run(customer.unix_user, "true", timeout=30)  # open the connection
            await chain.addresses()
            for _ in range(samples):
                job_id = await trio.to_thread.run_sync(request, env, 0)
                await trio.to_thread.run_sync(schedule, env, job_id)
                began = time.perf_counter()
                outcome = await chain.claim_next_job()
                (claimed,) = outcome.claims
                assert isinstance(claimed, ClaimedJob) and claimed.job_id == job_id
                spec = commands.submit_spec(
                    job_id,
                    claimed.definition,
                    max(1, claimed.max_duration_minute),
                    partition=env.slurm.partition,
                    public_address="127.0.0.1:1",  # nobody listens: the floor has no reports
                    output_dir=env.slurm.job_output_dir,
                )
                result = await pool.run(
                    customer.unix_user,
                    commands.command_line(commands.sbatch_argv(paths, spec)),
                    stdin=commands.batch_script(SCRIPT.decode()),
                    timeout=30,
                )
                floor.append(time.perf_counter() - began)
                assert result.exit_status == 0, result.stderr
                # Settle it on chain so the provider's books stay clean.
                await chain.set_job_status(job_id, JobStatus.FAILED, last_error="floor sample")
        finally:
            await pool.aclose()
            await rpc.aclose()
        return floor

    async def main() -> list[float]:
        async with trio_asyncio.open_loop():
            return await run()

    return trio.run(main)


# --- the supervisor process ------------------------------------------------------------------


class Supervisor:
    def __init__(self, env: TestbedEnv, work: Path, chain: dict[str, Any] | None = None) -> None:
        """``chain``: settings of the ``chain`` section to add to the testbed's configuration."""
        self.env = env
        config: dict[str, Any] = yaml.safe_load(Path(env.supervisor_config).read_text())
        config["state"]["folder"] = str(work / "state")
        config["log"] = {"level": "info", "format": "json"}
        config.setdefault("chain", {}).update(chain or {})
        self.config = work / "config.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = work / "supervisor.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._events: list[dict[str, Any]] = []
        self._submitted: dict[str, float] = {}

    def start(self) -> None:
        out = self.log.open("ab")
        since = len(self.events())  # this start's lines only
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--config", str(self.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        approved = False
        while not any("claiming started" in e.get("message", "") for e in self.events()[since:]):
            waiting = any("approval: waiting" in e.get("message", "") for e in self._events[since:])
            if waiting and not approved:  # it re-registered (other labels): approve it again
                market.approve_provider(
                    self.env.chain.rpc_url,
                    grid_addresses(self.env),
                    admin_key=self.env.admin.key,
                    provider=self.env.provider.address,
                )
                approved = True
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                tail = self.log.read_text(errors="replace").splitlines()[-80:]
                raise RuntimeError(
                    "the supervisor did not start claiming; its last log lines:\n" + "\n".join(tail)
                )
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (read incrementally: the log grows by thousands of lines)."""
        with self.log.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            if line.startswith(b"{"):
                event = json.loads(line)
                self._events.append(event)
                if "job" in event and event.get("message", "").endswith("SUBMITTED"):
                    self._submitted[event["job"]] = float(event["time"])
        return self._events

    def submitted_at(self) -> dict[str, float]:
        """Job id -> time of its SUBMITTED transition."""
        self.events()
        return self._submitted

    def claims_of(self, job_ids: set[str]) -> list[tuple[float, int]]:
        """When the claim of each of ``job_ids`` reached the supervisor (its ``ClaimedJob`` log
        line: ``chain: ClaimedJob 0x... (block N)``), and the block that holds it, in time order.
        Claims read back from older blocks at a restart are not among them."""
        found: dict[str, tuple[float, int]] = {}
        for e in self.events():
            words = e.get("message", "").split()
            if len(words) == 5 and words[1] == "ClaimedJob" and words[2] in job_ids:
                found.setdefault(words[2], (float(e["time"]), int(words[4].rstrip(")"))))
        return sorted(found.values())


def wait_submitted(supervisor: Supervisor, job_ids: set[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        seen = supervisor.submitted_at()
        if job_ids <= seen.keys():
            return {job: seen[job] for job in job_ids}
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(job_ids - seen.keys())} jobs were not submitted in time")
        time.sleep(0.05)


def queue_burst(env: TestbedEnv, count: int) -> set[str]:
    """``count`` jobs queued for the provider (requested and meta-scheduled), their ids."""
    jobs = set()
    began = time.monotonic()
    for i in range(count):
        job_id = request(env, i % 4)
        schedule(env, job_id)
        jobs.add(job_id)
    print(f"queued {len(jobs)} jobs in {time.monotonic() - began:.1f} s", file=sys.stderr)
    return jobs


def report_latency(
    from_send: list[float], from_head: list[float], floor: list[float], blocks: list[int]
) -> None:
    floor_median = statistics.median(floor) if floor else None
    for label, values in (("sent", from_send), ("announced (newHeads)", from_head)):
        median, p95 = statistics.median(values), percentile(values, 0.95)
        ratio = f" ({median / floor_median:.2f}x the floor's median)" if floor_median else ""
        print(
            f"latency metaSchedule {label} -> accepted by SLURM, {len(values)} jobs: "
            f"median {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms{ratio}"
        )
    counts = Counter(blocks)
    spread = ", ".join(f"{n} block(s): {counts[n]} jobs" for n in sorted(counts))
    print(
        f"latency in blocks, the metaSchedule's block -> the claim's: "
        f"median {statistics.median(blocks):g}, max {max(blocks)} ({spread})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench lifecycle", description=__doc__)
    parser.add_argument("--latency-jobs", type=int, default=50)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--floor-samples", type=int, default=20)
    parser.add_argument(
        "--block-time", type=int, default=None, metavar="SECONDS", help="mine every SECONDS"
    )
    parser.add_argument("--fees", choices=("auto", "legacy", "eip1559"), default=None)
    parser.add_argument("--gas-limit", default=None, metavar="estimate|GAS")
    args = parser.parse_args(argv)
    env = up(Layout.from_env(), log=lambda line: print(f"testbed: {line}", file=sys.stderr)).env
    approve_provider(env)
    chain = {"fees": args.fees, "gasLimit": args.gas_limit}
    chain = {key: value for key, value in chain.items() if value is not None}
    was = anvil.block_time(env.chain.rpc_url)
    paced = args.block_time is not None
    pace = f" at {args.block_time} s blocks" if paced else ""
    if chain:
        print("supervisor chain settings: " + ", ".join(f"{k}={v}" for k, v in chain.items()))
    try:
        # The floor is sampled before and after the latency jobs (anvil's blocks get slower as
        # its state grows, so both sides of the comparison see the same chain, on average).
        floor = [] if paced else measure_floor(env, args.floor_samples // 2)
        with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
            supervisor = Supervisor(env, Path(tmp), chain)
            heads = HeadClock(env.chain.ws_url)
            if paced:
                anvil.set_block_time(args.block_time, env.chain.rpc_url)
            supervisor.start()
            try:
                run_phases(env, args, supervisor, heads, floor, pace)
            finally:
                supervisor.stop()
                # The bench's jobs sleep: cancel them (every job of the testbed's customers).
                for customer in env.customers:
                    subprocess.run(["scancel", f"--user={customer.unix_user}"], check=False)
    finally:
        if anvil.block_time(env.chain.rpc_url) != was:
            anvil.set_block_time(was, env.chain.rpc_url)
    return 0


def run_phases(
    env: TestbedEnv,
    args: argparse.Namespace,
    supervisor: Supervisor,
    heads: HeadClock,
    floor: list[float],
    pace: str,
) -> None:
    """The latency jobs, then the burst (the supervisor is running; see the module docstring)."""
    paced = args.block_time is not None
    from_send, from_head, blocks = [], [], []
    for i in range(args.latency_jobs):
        job_id = request(env, i % 4)
        scheduled = schedule(env, job_id)
        done = wait_submitted(supervisor, {job_id}, 60)[job_id]
        from_send.append(done - scheduled.sent)
        from_head.append(done - heads.at(scheduled.block))
        ((_, claim_block),) = supervisor.claims_of({job_id})
        blocks.append(claim_block - scheduled.block)
    supervisor.stop()
    if not paced:
        before = statistics.median(floor)
        floor += measure_floor(env, args.floor_samples - args.floor_samples // 2)
        print(
            f"floor (claim tx + sbatch over an open SSH connection), {len(floor)} samples: "
            f"median {statistics.median(floor) * 1000:.1f} ms, "
            f"p95 {percentile(floor, 0.95) * 1000:.1f} ms "
            f"(median {before * 1000:.1f} ms before the latency jobs)"
        )
    report_latency(from_send, from_head, floor, blocks)

    if paced:  # queue at automine's pace, claim at the chain's
        anvil.set_block_time(None, env.chain.rpc_url)
    jobs = queue_burst(env, args.burst)
    if paced:
        anvil.set_block_time(args.block_time, env.chain.rpc_url)
    supervisor.start()
    submitted = wait_submitted(supervisor, jobs, max(600, 4.0 * args.burst))
    claims = supervisor.claims_of(jobs)
    first, last = claims[0][0], max(submitted.values())
    print(
        f"burst of {len(jobs)} queued jobs{pace}: first claim to last submission "
        f"{last - first:.2f} s = {len(jobs) / (last - first):.1f} jobs/s"
    )
    # Where the pace is set: the claims alone (and the blocks anvil mined for them: in automine
    # it mines a block per transaction batch, and gets slower as its state grows), and how far
    # the submissions trail the claims.
    times = sorted(submitted.values())
    lag = statistics.median(t - c for t, (c, _) in zip(times, claims, strict=False))
    spanned = claims[-1][1] - claims[0][1] + 1
    spent = claims[-1][0] - first
    per_block = Counter(block for _, block in claims)
    print(
        f"  claims: {len(claims)} in {spent:.2f} s, in {spanned} blocks "
        f"({spanned / spent:.1f} blocks/s from block {claims[0][1]}; "
        f"{len(claims) / len(per_block):.1f} claims per block holding any, "
        f"at most {max(per_block.values())}); "
        f"the n-th submission {lag * 1000:.0f} ms after the n-th claim (median)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
