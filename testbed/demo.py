"""The demo: the supervisor's main job on the local testbed, narrated.

``./dev demo`` (``python -m testbed.demo``):

1. brings the testbed up (anvil with our contracts, SLURM n1..n3, sshd, the sbatch service);
2. registers and approves the provider, so the market can schedule to it, and has a customer
   submit a job: it waits in the provider's queue, since no supervisor runs yet;
3. starts ``grid-supervisor run`` with the testbed's config; it claims the waiting job, and more
   jobs follow (one that finishes, one that fails with exit code 3, one spread over 3 nodes);
4. prints every on-chain status change as it happens, then the supervisor's actor tree;
5. stops the supervisor (SIGTERM) and leaves the testbed up (``python -m testbed down`` stops it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from actors.grid import JobStatus
from testbed import market
from testbed.env import TestbedEnv
from testbed.evm import EvmError
from testbed.grid import (
    JobRequest,
    approve_if_waiting,
    approve_provider,
    grid_addresses,
    submit_job,
    up,
)
from testbed.layout import Layout
from testbed.processes import TestbedError

JOBS: list[tuple[str, str, JobRequest]] = [
    (
        "hello",
        '#!/bin/bash\necho "hello from $(id -un) on $(hostname)"\nsleep 5\n',
        JobRequest(customer=0, credits=50),
    ),
    ("fails", "#!/bin/bash\necho 'about to fail'\nexit 3\n", JobRequest(customer=1, credits=50)),
    (
        "3 tasks",
        "#!/bin/bash\nsrun -l hostname\nsleep 2\n",
        JobRequest(customer=2, ntasks=3, credits=100),
    ),
]


def describe_exit(code: int) -> str:
    """What a raw wait status (exit << 8 | signal, as SLURM's jobcomp plugin puts it on chain)
    means to a person."""
    if code & 0x7F:
        return f"killed by signal {code & 0x7F}"
    return f"exit {code >> 8}"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def supervisor_state_of(env: TestbedEnv, state: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "tree", "--json", "--state-dir", str(state)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return "starting"
    for child in json.loads(out.stdout).get("children", []):
        if child["name"] == "registration":
            return str(child.get("info", {}).get("state", "starting"))
    return "starting"


class Step:
    """The step the demo is at, and the log that tells more if it fails there."""

    def __init__(self, layout: Layout) -> None:
        self.what = "bringing the testbed up"
        self.log = layout.log

    def __call__(self, what: str, log: Path | str) -> None:
        self.what, self.log = what, Path(log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testbed.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after SECONDS")
    args = parser.parse_args(argv)
    layout = Layout.from_env()
    step = Step(layout)
    try:
        return run(layout, step, args.timeout)
    except (TestbedError, EvmError, OSError, subprocess.SubprocessError, ValueError) as exc:
        # A failure names the step and the log to read, never a traceback.
        say(f"the demo failed while {step.what}: {exc}")
        say(f"read {step.log} for more")
        return 1
    except KeyboardInterrupt:
        say(f"interrupted while {step.what}")
        return 130


def run(layout: Layout, step: Step, timeout: float) -> int:
    say("bringing the testbed up (installs what is missing on a fresh machine)...")
    env = up(layout, log=lambda line: say(f"  testbed: {line}")).env
    step("registering the provider and submitting the first job", Path(env.log_dir) / "anvil.log")
    rpc, grid = env.chain.rpc_url, grid_addresses(env)
    say(
        f"chain {env.chain.rpc_url} (id {env.chain.chain_id}), SLURM partition "
        f"{env.slurm.partition!r} on {', '.join(env.slurm.nodes)}, "
        f"sbatch service {env.sbatch.endpoint}"
    )

    approve_provider(env)
    say(f"provider {env.provider.address} registered and approved by the grid's admin")

    names: dict[str, str] = {}
    title, script, request = JOBS[0]
    job_id = submit_job(env, script.encode(), request)
    names[job_id] = title
    with market.connect(rpc, grid) as contracts:
        waiting = contracts.queues.call("hasNextClaimableJob", env.provider.address)
    say(
        f"customer {env.customer(0).address} submitted {job_id[:10]}.. ({title}); "
        f"in the provider's queue: hasNextClaimableJob = {waiting}"
    )

    state = Path(env.testbed_dir) / "supervisor"
    log_path = Path(env.log_dir) / "supervisor.log"
    step("running the supervisor", log_path)
    say(f"starting grid-supervisor run --config {env.supervisor_config} (log: {log_path})")
    with log_path.open("ab") as log_file:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--config", env.supervisor_config],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
    try:
        return watch(env, supervisor, state, names, timeout, log_path)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=40)
        except subprocess.TimeoutExpired:
            supervisor.kill()
        say(
            f"supervisor stopped (exit {supervisor.returncode}); the testbed stays up: "
            "`./dev testbed down` stops it"
        )


def watch(
    env: TestbedEnv,
    supervisor: subprocess.Popen[bytes],
    state: Path,
    names: dict[str, str],
    timeout: float,
    log_path: Path,
) -> int:
    rpc, grid = env.chain.rpc_url, grid_addresses(env)
    deadline = time.monotonic() + timeout
    shown = ""
    while (phase := supervisor_state_of(env, state)) != "claiming":
        if phase != shown:
            say(f"supervisor: {phase}")
            shown = phase
        if phase.startswith("waiting") and approve_if_waiting(env):
            say("the supervisor re-registered the cluster: approved again by the admin")
        if supervisor.poll() is not None or time.monotonic() > deadline:
            say(f"the supervisor did not come up; read {log_path}")
            return 1
        time.sleep(0.5)
    say("supervisor: approved and claiming")
    for title, script, request in JOBS[1:]:
        job_id = submit_job(env, script.encode(), request)
        names[job_id] = title
        say(
            f"customer {env.customer(request.customer).address[:10]}.. submitted "
            f"{job_id[:10]}.. ({title})"
        )
    last: dict[str, int] = {}
    while time.monotonic() < deadline:
        for job_id, title in names.items():
            job = market.get_job(rpc, grid, job_id)
            if last.get(job_id) != job.status:
                last[job_id] = job.status
                status = JobStatus(job.status)
                extra = ""
                if status.is_cold:
                    minutes = max(0, job.time.end - job.time.start) // 60 if job.time.end else 0
                    extra = (
                        f"  exit code {job.exit_code} ({describe_exit(job.exit_code)}),"
                        f" billed {job.cost.final_cost / 1e18:.2f}"
                        f" credits{', ' + job.last_error if job.last_error else ''}"
                        f" (~{minutes} min)"
                    )
                say(f"on chain: {job_id[:10]}.. ({title}) -> {status.name}{extra}")
        if all(JobStatus(s).is_cold for s in last.values()) and len(last) == len(names):
            break
        if supervisor.poll() is not None:
            say(f"the supervisor exited (code {supervisor.returncode}); read {log_path}")
            return 1
        time.sleep(0.5)
    else:
        say(f"timed out waiting for the jobs; read {log_path}")
        return 1
    print(
        subprocess.run(
            [sys.executable, "-m", "cli.main", "tree", "--state-dir", str(state)],
            capture_output=True,
            text=True,
        ).stdout,
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
