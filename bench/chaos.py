"""Chaos: ``kill -9`` the supervisor at random moments while jobs of mixed fates flow through.

``python -m bench chaos [--jobs N] [--kills K] [--seed S] [--window SECONDS]
[--reporters scripts|plugins] [--outages N] [--outage-seconds S] [--freeze]`` (on the testbed,
under its
lock: ``flock /work/notes/testbed.lock .venv/bin/python -m bench chaos``).

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
and started again after a random pause of up to 4 s, each time on the same state folder; and
stopped ``--outages`` times (SIGTERM, as an operator's maintenance would) and kept down
``--outage-seconds`` (60) before it starts again; with ``--freeze`` each outage is a SIGSTOP
instead (a supervisor that hangs: its port still accepts connections, nothing answers), ended by
SIGCONT. At the end (every job cold on chain; our
reporters' spool flushed as a timer would), each job is checked against SLURM's own record of it:
the chain holds the status the grid's completion plugin maps SLURM's end state to, and the fate's
expected one; the exit code is SLURM's raw wait status; the provider was paid for exactly the
whole minutes SLURM says the job ran; the job ran exactly once in SLURM; none was PANICKED.

``--reporters`` picks the SLURM-side reporters (the testbed is switched to them for the run, and
back afterwards): this project's hooks (``scripts``: a report the supervisor misses is spooled
and sent again), whose completion line in the hook log is SLURM's record; or the operator's real
C++ plugins (``plugins``: one try per report, so every report sent while the supervisor is down
is lost, and the end must be recovered from SLURM by the reaper), where SLURM's record is read
from slurmctld as the run goes (``tests.integration.slurm_record.SlurmLedger``).

The figures: for every job, the delay from its end in SLURM to its final status on chain (the
block's timestamp); for the jobs whose end the reaper recovered from SLURM (the report lost, or
not believed without SLURM's word), the same delay; for the jobs that ended while the supervisor
was down, the delay from its start again (the new process started, or went on) to the chain;
the five slowest jobs; and how long slurmctld took to answer ``scontrol show job`` (polled
every 2 s) while the supervisor was down and otherwise (the real completion plugin runs inside
slurmctld: a supervisor that does not answer can hold it up).

It prints one line per event and a summary; exit status 1 when a job is wrong.
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import msgspec

from actors.grid import JobStatus
from testbed import grid as testbed_grid
from testbed import market, slurm
from testbed.env import TestbedEnv
from testbed.grid import grid_addresses, require_env
from testbed.layout import Layout
from tests.integration.slurm_record import SlurmLedger, slurm_ends
from tests.integration.supervisor_harness import (
    FINAL,
    Completion,
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
    acted_at: float = 0.0
    """When the customer cancelled or topped up (epoch seconds)."""


class Spread(msgspec.Struct, frozen=True):
    """Seconds: how many, median, 95th percentile, largest (all 0 when none)."""

    count: int = 0
    median: float = 0.0
    p95: float = 0.0
    max: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls()
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return cls(len(ordered), statistics.median(ordered), p95, ordered[-1])

    def __str__(self) -> str:
        return self.text()

    def text(self, digits: int = 0) -> str:
        if not self.count:
            return "none"
        f = f".{digits}f"
        return (
            f"{self.count}: median {self.median:{f}} s, p95 {self.p95:{f}} s, max {self.max:{f}} s"
        )


class Delays(msgspec.Struct, frozen=True):
    """How long the chain took to settle the jobs (see the module docstring)."""

    end_to_chain: Spread
    recovered_end_to_chain: Spread
    down_restart_to_chain: Spread
    recovered_after_up: Spread = Spread()
    """For the jobs the reaper recovered: from the later of their end in SLURM and the start of
    the supervisor process that settled them, to the chain."""


class ChaosResult(msgspec.Struct, frozen=True):
    jobs: int
    kills: int
    restarts: int
    seconds: float
    fates: dict[str, int]
    problems: dict[str, str]
    reporters: str = "scripts"
    outages: int = 0
    delays: Delays | None = None
    slurmctld_answer: dict[str, Spread] = {}
    """``scontrol show job`` times: ``"down"`` (the supervisor stopped, killed or frozen) and
    ``"up"``."""
    slurmctld_unanswered: dict[str, int] = {}
    """How many of those ``scontrol`` gave up on (slurmctld did not answer in time)."""


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


TOP_UP_LIMIT = 60.0
"""Seconds a top-up job may run before its first limit (one credit: one minute)."""
TOP_UP_TIME = 10.0
"""Seconds the supervisor must be claiming, between a top-up and the job's first limit, to be
expected to raise SLURM's limit in time (claim the top-up, then ``scontrol update``)."""


def expected_fates(
    planned: Sequence[Planned],
    slurm_starts: Mapping[str, int],
    unready: Sequence[tuple[float, float]],
) -> dict[str, JobStatus | None]:
    """Each job's expected status on chain: its fate's, except for a top-up job the customer
    never topped up (it waits for the chain to say RUNNING, which a job that ended while the
    supervisor was down never does) or whose top-up the supervisor could not act on in time:
    between the top-up and the end of the job's first minute in SLURM it was claiming (not
    between a stop and its claiming again, ``unready``) for less than :data:`TOP_UP_TIME`. Then
    SLURM timing the job out is right, and only SLURM's word counts (None)."""
    expected: dict[str, JobStatus | None] = {}
    for job in planned:
        fate: JobStatus | None = FATES[job.fate][1]
        started = slurm_starts.get(job.job_id)
        if job.fate == "top-up" and not job.acted_at:
            fate = None
        elif job.fate == "top-up" and started:
            limit = started + TOP_UP_LIMIT
            unready_for = sum(
                max(0.0, min(up, limit) - max(down, job.acted_at)) for down, up in unready
            )
            if limit - job.acted_at - unready_for < TOP_UP_TIME:
                fate = None
        expected[job.job_id] = fate
    return expected


def recovered_jobs(supervisor_log: str) -> set[str]:
    """The jobs whose final status the reaper recovered from SLURM (the job actor's
    ``<job>: recovered <report of a final status>`` lines)."""
    finals = "|".join(status.name for status in FINAL)
    report = rf"Report(?:ed)?\([^\n]*?\bstatus=<JobStatus\.({finals})\b"
    pattern = rf"(0x[0-9a-f]{{64}}): recovered {report}"
    return {match[0] for match in re.findall(pattern, supervisor_log)}


def delays(
    chain_ends: Mapping[str, int],
    slurm_ends_at: Mapping[str, int],
    recovered: set[str],
    downtimes: Sequence[tuple[float, float]],
    first_start: float = 0.0,
) -> Delays:
    """The figures of the module docstring, from each job's final status time on chain and its
    end in SLURM (epoch seconds), the jobs the reaper recovered, the supervisor's downtimes
    (epoch seconds from its stop to the start of the next process) and its first start."""
    all_delays: list[float] = []
    recovered_delays: list[float] = []
    after_restart: list[float] = []
    after_up: list[float] = []
    starts = sorted([first_start, *(up for _, up in downtimes)])
    for job_id, chain_end in chain_ends.items():
        ended = slurm_ends_at.get(job_id)
        if ended is None or chain_end <= 0:
            continue
        all_delays.append(chain_end - ended)
        if job_id in recovered:
            recovered_delays.append(chain_end - ended)
            settler = max((start for start in starts if start <= chain_end), default=0.0)
            after_up.append(chain_end - max(ended, settler))
        for down, up in downtimes:
            if down <= ended <= up:
                after_restart.append(chain_end - up)
    return Delays(
        end_to_chain=Spread.of(all_delays),
        recovered_end_to_chain=Spread.of(recovered_delays),
        down_restart_to_chain=Spread.of(after_restart),
        recovered_after_up=Spread.of(after_up),
    )


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
    reporters: str = "scripts",
    outages: int = 0,
    outage_seconds: float = 60.0,
    reaper: Mapping[str, str] | None = None,
    freeze: bool = False,
) -> ChaosResult:
    """Run one chaos round (see the module docstring) with the ``reporters`` live on the
    testbed (the caller switched them); the supervisor is stopped at the end. ``reaper``:
    settings of the reaper by environment variable (default: the tests' quick sweeps,
    ``tests.integration.supervisor_harness.TEST_ENVIRONMENT``)."""
    rng = random.Random(seed)
    planned = plan(rng, jobs, window)
    kill_at = sorted(rng.uniform(3.0, window) for _ in range(kills))
    outage_at = sorted(rng.uniform(3.0, window) for _ in range(outages))
    supervisor = Supervisor(env, work, environment=reaper)
    ledger = SlurmLedger()
    began = time.monotonic()
    first_start = time.time()
    supervisor.start(timeout=90)
    t0 = time.monotonic()
    t0_epoch = time.time()
    killed = restarts = stopped = 0
    restart_at: float | None = None
    down_since = 0.0
    downtimes: list[tuple[float, float]] = []
    unready: list[tuple[float, float]] = []
    grid = grid_addresses(env)
    polled = 0.0
    answer_times: dict[str, list[float]] = {"down": [], "up": []}
    unanswered: dict[str, int] = {"down": 0, "up": 0}
    frozen = False

    def look_at_slurm() -> None:
        """Keep slurmctld's records as they come (with the plugins nothing logs an end), and
        time its answers."""
        nonlocal polled
        if time.monotonic() - polled >= 2.0:
            asked = time.monotonic()
            answered = ledger.poll()
            polled = time.monotonic()
            state = "up" if supervisor.running and not frozen else "down"
            answer_times[state].append(polled - asked)
            unanswered[state] += not answered

    try:
        while True:
            now = time.monotonic() - t0
            look_at_slurm()
            for job in planned:
                if not job.job_id and job.at <= now:
                    job.job_id = submit(
                        env, work / "scripts" / str(len(job.script)), job.script,
                        credits=job.credits, customer=job.customer,
                    )  # fmt: skip
                    say(f"{now:6.1f} s  submitted {job.fate:8} {job.job_id}")
            if kill_at and kill_at[0] <= now and supervisor.running and not frozen:
                kill_at.pop(0)
                down_since = time.time()
                supervisor.kill()
                killed += 1
                now = time.monotonic() - t0  # submissions above may have taken a while
                restart_at = now + rng.uniform(0.0, 4.0)
                say(f"{now:6.1f} s  kill -9 #{killed}")
            if outage_at and outage_at[0] <= now and supervisor.running and not frozen:
                outage_at.pop(0)
                down_since = time.time()
                if freeze:
                    _signal(supervisor, signal.SIGSTOP)
                    frozen = True
                else:
                    supervisor.stop()
                stopped += 1
                now = time.monotonic() - t0  # the graceful stop takes a while
                restart_at = now + outage_seconds
                how = "frozen (SIGSTOP)" if freeze else "stopped"
                say(f"{now:6.1f} s  {how} #{stopped} for {outage_seconds:g} s")
            if restart_at is not None and restart_at <= now:
                restart_at = None
                # the next outage no sooner than 30 s after this one: outages, not one long one
                outage_at = [max(at, now + 30.0) for at in outage_at]
                downtimes.append((down_since, time.time()))  # the new process starts now
                if frozen:
                    _signal(supervisor, signal.SIGCONT)
                    frozen = False
                else:
                    supervisor.start(timeout=90)
                unready.append((down_since, time.time()))  # claiming again
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
                        job.acted, job.acted_at = True, time.time()
                        say(f"{time.monotonic() - t0:6.1f} s  customer: {job.fate} {job.job_id}")
            submitted = all(job.job_id for job in planned)
            if submitted and not kill_at and not outage_at and restart_at is None:
                break
            time.sleep(0.3)
        say(f"{time.monotonic() - t0:6.1f} s  no more kills: waiting for every job to end")
        pending_actions = [j for j in planned if j.fate in ("cancel", "top-up") and not j.acted]
        deadline = time.monotonic() + settle_timeout
        while pending_actions and time.monotonic() < deadline:
            look_at_slurm()
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
                    job.acted_at = time.time()
                    pending_actions.remove(job)
                elif status in FINAL:
                    pending_actions.remove(job)
            time.sleep(0.5)

        def all_ended() -> bool:
            look_at_slurm()
            return all(chain_job(env, j.job_id).status in FINAL for j in planned)

        wait_for(
            "every job to end on chain",
            all_ended,
            timeout=max(1.0, deadline - time.monotonic()),
            every=2.0,
        )
        if reporters == "scripts":
            flush_spool(env)  # as the reporters' timer would; duplicates change nothing
        time.sleep(2.0)
        ends = slurm_ends(env, reporters, ledger)
        fates = expected_fates(planned, {j: runs[-1].start for j, runs in ends.items()}, unready)
        late = [j.job_id for j in planned if fates[j.job_id] is None]
        if late:
            say(f"top-ups not made, or too late to act on (SLURM's word counts): {late}")
        problems = settlement_problems(env, fates, ends)
        chain_ends = {j.job_id: chain_job(env, j.job_id).time.end for j in planned}
        slurm_ends_at = _last_ends(ends)
        recovered = recovered_jobs(supervisor.log.read_text(errors="replace"))
        figures = delays(chain_ends, slurm_ends_at, recovered, downtimes, first_start)
        slowest = sorted(
            (j for j in planned if j.job_id in slurm_ends_at),
            key=lambda j: slurm_ends_at[j.job_id] - chain_ends[j.job_id],
        )[:5]
        for job in slowest:
            ended = slurm_ends_at[job.job_id]
            down = any(start <= ended <= up for start, up in downtimes)
            say(
                f"slow: {job.job_id[:10]} {job.fate:8} {chain_ends[job.job_id] - ended:4d} s "
                f"from SLURM's end ({ended - t0_epoch:.0f} s) to chain"
                f"{', recovered' if job.job_id in recovered else ''}"
                f"{', ended while down' if down else ''}"
            )
    finally:
        supervisor.stop()
    counts: dict[str, int] = {}
    for job in planned:
        counts[job.fate] = counts.get(job.fate, 0) + 1
    return ChaosResult(
        jobs=len(planned),
        kills=killed,
        restarts=restarts,
        seconds=time.monotonic() - began,
        fates=counts,
        problems=problems,
        reporters=reporters,
        outages=stopped,
        delays=figures,
        slurmctld_answer={state: Spread.of(times) for state, times in answer_times.items()},
        slurmctld_unanswered=unanswered,
    )


def _signal(supervisor: Supervisor, number: signal.Signals) -> None:
    """Freeze (SIGSTOP) or thaw (SIGCONT) the supervisor process."""
    if supervisor.process is not None:
        supervisor.process.send_signal(number)


def _last_ends(ends: Mapping[str, list[Completion]]) -> dict[str, int]:
    return {job_id: runs[-1].end for job_id, runs in ends.items() if runs}


def main(argv: Sequence[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench chaos", description=summary)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--window", type=float, default=240.0, help="seconds of kills")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--reporters",
        choices=slurm.REPORTERS,
        default=slurm.DEFAULT_REPORTERS,
        help="the SLURM-side reporters: our hooks (scripts) or the operator's real C++ plugins",
    )
    parser.add_argument("--outages", type=int, default=0, help="graceful stops kept down")
    parser.add_argument("--outage-seconds", type=float, default=60.0)
    parser.add_argument("--freeze", action="store_true", help="outages are SIGSTOP, not SIGTERM")
    parser.add_argument(
        "--work", type=Path, help="keep each round's supervisor log and state in DIR/round-N"
    )
    parser.add_argument(
        "--reaper-interval", help="the reaper's sweep interval (default 3s, as the tests)"
    )
    parser.add_argument(
        "--report-grace", help="the reaper's wait for a completion report (default 5s)"
    )
    args = parser.parse_args(list(argv or []))
    reaper = {}
    if args.reaper_interval:
        reaper["GRID_SUPERVISOR_REAPER_INTERVAL"] = args.reaper_interval
    if args.report_grace:
        reaper["GRID_SUPERVISOR_REAPER_REPORT_GRACE"] = args.report_grace
    layout = Layout.from_env()
    require_env(layout)
    before = slurm.live_reporters() or slurm.DEFAULT_REPORTERS
    env = testbed_grid.up(layout, reporters=args.reporters, log=print).env
    total_jobs = total_kills = total_outages = 0
    failed = False
    try:
        for round_number in range(args.rounds):
            seed = args.seed + round_number
            with tempfile.TemporaryDirectory(prefix="grid-chaos-") as scratch:
                folder = args.work / f"round-{round_number + 1}" if args.work else Path(scratch)
                result = run(env, folder, jobs=args.jobs, kills=args.kills, seed=seed,
                             window=args.window, settle_timeout=600.0, reporters=args.reporters,
                             outages=args.outages, outage_seconds=args.outage_seconds,
                             reaper=reaper, freeze=args.freeze)  # fmt: skip
            total_jobs += result.jobs
            total_kills += result.kills
            total_outages += result.outages
            print(
                f"round {round_number + 1} (seed {seed}, reporters {result.reporters}): "
                f"{result.jobs} jobs {result.fates}, {result.kills} kills and "
                f"{result.outages} outages survived, {result.restarts} restarts, "
                f"{result.seconds:.0f} s, {len(result.problems)} wrong"
            )
            if result.delays is not None:
                print(f"  SLURM end to chain, every job: {result.delays.end_to_chain}")
                print(f"  ... recovered by the reaper: {result.delays.recovered_end_to_chain}")
                print(
                    "  ... from the end or the settling process's start, whichever is later: "
                    f"{result.delays.recovered_after_up}"
                )
                print(
                    f"  ended while down, restart to chain: {result.delays.down_restart_to_chain}"
                )
            for state, spread in result.slurmctld_answer.items():
                missed = result.slurmctld_unanswered.get(state, 0)
                print(
                    f"  slurmctld answer time, supervisor {state}: {spread.text(2)}"
                    f"{f' ({missed} not answered)' if missed else ''}"
                )
            for job_id, problem in result.problems.items():
                print(f"  WRONG {job_id}: {problem}")
            failed = failed or bool(result.problems)
    finally:
        if before != args.reporters:
            testbed_grid.up(layout, reporters=before, log=print)
    print(f"total: {total_jobs} jobs checked, {total_kills} kills and {total_outages} outages "
          f"survived, {'FAILED' if failed else 'every job right'}")  # fmt: skip
    return 1 if failed else 0
