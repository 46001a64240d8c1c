"""Chaos: ``kill -9`` the supervisor at random moments while jobs of mixed fates flow through.

``python -m bench chaos [--jobs N] [--kills K] [--seed S] [--window SECONDS]`` (on the testbed,
under its lock: ``flock /work/notes/testbed.lock .venv/bin/python -m bench chaos``).

One ``grid-supervisor run`` process is started on a fresh state folder. ``--jobs`` jobs are
submitted by the testbed's customers at random moments of the first part of the window, each
with a fate drawn at random:

=========  ==========================================================  ================
fate       what happens                                                expected on chain
=========  ==========================================================  ================
finish     sleeps 3-20 s                                               FINISHED
fail       sleeps 2-10 s, exits 3                                      FAILED (768)
timeout    one credit (a 1-minute limit), sleeps 200 s                 OUT_OF_CREDITS
cancel     sleeps 300 s; the customer cancels it once it runs          CANCELLED
top-up     one credit, sleeps 75 s; the customer tops it up by two     FINISHED
           credits as soon as it runs (without the top-up: TIMEOUT)
=========  ==========================================================  ================

Meanwhile the supervisor is killed ``--kills`` times (SIGKILL, at random moments of the window)
and started again after a random pause of up to 4 s, each time on the same state folder. At the
end (every job cold on chain; the reporters' spool flushed as a timer would), each job is checked
against SLURM's own record of it (the completion hook's log line): the chain holds the status the
grid's completion plugin maps SLURM's end state to, and the fate's expected one; the exit code
is SLURM's raw wait status; the provider was paid for exactly the whole minutes SLURM says the
job ran; the job ran exactly once in SLURM; none was PANICKED.

It prints one line per event and a summary; exit status 1 when a job is wrong.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from actors.grid import JobStatus
from testbed import market
from testbed.env import TestbedEnv
from testbed.grid import grid_addresses, require_env
from tests.integration.supervisor_harness import (
    FINAL,
    Supervisor,
    chain_job,
    flush_spool,
    settlement_problems,
    submit,
    wait_for,
)

CREDIT = 10**18

FATES: dict[str, tuple[float, JobStatus]] = {
    "finish": (0.35, JobStatus.FINISHED),
    "fail": (0.2, JobStatus.FAILED),
    "timeout": (0.15, JobStatus.OUT_OF_CREDITS),
    "cancel": (0.15, JobStatus.CANCELLED),
    "top-up": (0.15, JobStatus.FINISHED),
}


class Planned(msgspec.Struct):
    fate: str
    at: float
    script: str
    credits: int
    customer: int
    job_id: str = ""
    acted: bool = False


class ChaosResult(msgspec.Struct, frozen=True):
    jobs: int
    kills: int
    restarts: int
    seconds: float
    fates: dict[str, int]
    problems: dict[str, str]


def plan(rng: random.Random, jobs: int, window: float) -> list[Planned]:
    names = list(FATES)
    weights = [FATES[name][0] for name in names]
    planned: list[Planned] = []
    for n in range(jobs):
        fate = rng.choices(names, weights)[0]
        at = rng.uniform(0, window * 0.6)
        customer = n % 4
        if fate == "finish":
            planned.append(Planned(fate, at, f"#!/bin/bash\nsleep {rng.randint(3, 20)}\n", 100,
                                   customer))  # fmt: skip
        elif fate == "fail":
            script = f"#!/bin/bash\nsleep {rng.randint(2, 10)}\nexit 3\n"
            planned.append(Planned(fate, at, script, 100, customer))
        elif fate == "timeout":
            planned.append(Planned(fate, at, "#!/bin/bash\nsleep 200\n", 1, customer))
        elif fate == "cancel":
            planned.append(Planned(fate, at, "#!/bin/bash\nsleep 300\n", 100, customer))
        else:
            planned.append(Planned(fate, at, "#!/bin/bash\nsleep 75\n", 1, customer))
    return sorted(planned, key=lambda p: p.at)


def run(
    env: TestbedEnv,
    work: Path,
    *,
    jobs: int = 20,
    kills: int = 4,
    seed: int = 1,
    window: float = 90.0,
    settle_timeout: float = 420.0,
    say: Callable[[str], None] = print,
) -> ChaosResult:
    """Run one chaos round (see the module docstring); the supervisor is stopped at the end."""
    rng = random.Random(seed)
    planned = plan(rng, jobs, window)
    kill_at = sorted(rng.uniform(3.0, window) for _ in range(kills))
    supervisor = Supervisor(env, work)
    began = time.monotonic()
    supervisor.start(timeout=90)
    t0 = time.monotonic()
    killed = restarts = 0
    restart_at: float | None = None
    grid = grid_addresses(env)
    try:
        while True:
            now = time.monotonic() - t0
            for job in planned:
                if not job.job_id and job.at <= now:
                    job.job_id = submit(
                        env, work / "scripts" / str(len(job.script)), job.script,
                        credits=job.credits, customer=job.customer,
                    )  # fmt: skip
                    say(f"{now:6.1f} s  submitted {job.fate:8} {job.job_id}")
            if kill_at and kill_at[0] <= now and supervisor.running:
                kill_at.pop(0)
                supervisor.kill()
                killed += 1
                restart_at = now + rng.uniform(0.0, 4.0)
                say(f"{now:6.1f} s  kill -9 #{killed}")
            if restart_at is not None and restart_at <= now:
                restart_at = None
                supervisor.start(timeout=90)
                restarts += 1
                say(f"{time.monotonic() - t0:6.1f} s  restarted")
            for job in planned:
                if job.job_id and not job.acted and job.fate in ("cancel", "top-up"):
                    status = chain_job(env, job.job_id).status
                    if status in FINAL:
                        job.acted = True
                    elif status == JobStatus.RUNNING:
                        key = env.customer(job.customer).key
                        if job.fate == "cancel":
                            market.cancel_job(
                                env.chain.rpc_url, grid, customer_key=key, job_id=job.job_id
                            )
                        else:
                            market.top_up_job(
                                env.chain.rpc_url, grid, customer_key=key, job_id=job.job_id,
                                amount=2 * CREDIT,
                            )  # fmt: skip
                        job.acted = True
                        say(f"{now:6.1f} s  customer: {job.fate} {job.job_id}")
            submitted = all(job.job_id for job in planned)
            if submitted and not kill_at and restart_at is None:
                break
            time.sleep(0.3)
        say(f"{time.monotonic() - t0:6.1f} s  no more kills: waiting for every job to end")
        pending_actions = [j for j in planned if j.fate in ("cancel", "top-up") and not j.acted]
        deadline = time.monotonic() + settle_timeout
        while pending_actions and time.monotonic() < deadline:
            for job in list(pending_actions):
                status = chain_job(env, job.job_id).status
                if status == JobStatus.RUNNING:
                    key = env.customer(job.customer).key
                    if job.fate == "cancel":
                        market.cancel_job(env.chain.rpc_url, grid, customer_key=key,
                                          job_id=job.job_id)  # fmt: skip
                    else:
                        market.top_up_job(env.chain.rpc_url, grid, customer_key=key,
                                          job_id=job.job_id, amount=2 * CREDIT)  # fmt: skip
                    pending_actions.remove(job)
                elif status in FINAL:
                    pending_actions.remove(job)
            time.sleep(0.5)
        wait_for(
            "every job to end on chain",
            lambda: all(chain_job(env, j.job_id).status in FINAL for j in planned),
            timeout=max(1.0, deadline - time.monotonic()),
            every=2.0,
        )
        flush_spool(env)  # as the reporters' timer would; duplicates change nothing
        time.sleep(2.0)
        problems = settlement_problems(env, {j.job_id: FATES[j.fate][1] for j in planned})
    finally:
        supervisor.stop()
    fates: dict[str, int] = {}
    for job in planned:
        fates[job.fate] = fates.get(job.fate, 0) + 1
    return ChaosResult(
        jobs=len(planned),
        kills=killed,
        restarts=restarts,
        seconds=time.monotonic() - began,
        fates=fates,
        problems=problems,
    )


def main(argv: Sequence[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench chaos", description=summary)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--window", type=float, default=240.0, help="seconds of kills")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(list(argv or []))
    env = require_env()
    total_jobs = total_kills = 0
    failed = False
    for round_number in range(args.rounds):
        seed = args.seed + round_number
        with tempfile.TemporaryDirectory(prefix="grid-chaos-") as folder:
            result = run(env, Path(folder), jobs=args.jobs, kills=args.kills, seed=seed,
                         window=args.window, settle_timeout=600.0)  # fmt: skip
        total_jobs += result.jobs
        total_kills += result.kills
        print(
            f"round {round_number + 1} (seed {seed}): {result.jobs} jobs {result.fates}, "
            f"{result.kills} kills survived, {result.restarts} restarts, "
            f"{result.seconds:.0f} s, {len(result.problems)} wrong"
        )
        for job_id, problem in result.problems.items():
            print(f"  WRONG {job_id}: {problem}")
        failed = failed or bool(result.problems)
    print(f"total: {total_jobs} jobs checked, {total_kills} kills survived, "
          f"{'FAILED' if failed else 'every job right'}")  # fmt: skip
    return 1 if failed else 0
