"""Lost launches: stop slurmctld the moment SLURM allocates a job, and see the job finish anyway.

``python -m bench launch [--rounds N] [--grace SECONDS] [--delays S,S,...]`` (on the testbed,
under its lock: ``flock /work/notes/testbed.lock .venv/bin/python -m bench launch``).

SLURM 22.05 loses a batch launch when slurmctld stops between allocating a job and sending its
launch: the restarted controller shows the job RUNNING with ``Reason=Prolog`` and never starts
it (until its time limit). The testbed's fault helper normally holds allocations before such a
stop; this benchmark does not (``faults.stop_part(hold=False)``). Each round: a customer's job
(``sleep 5``) goes through the chain to the supervisor and waits in SLURM's queue (partition
DOWN); the partition goes UP, and once ``squeue`` shows the job left PENDING (plus one of
``--delays``) slurmctld is stopped (SIGTERM) and started again 2 s later; 12 s after that (past
``BatchStartTimeout``) the job is looked at: *cut* if it still waits for its prolog. Then the
job must reach FINISHED on chain: a cut one only through the reaper's rule (RUNNING, waiting for
its prolog ``--grace`` seconds after its start: ``scontrol requeue``), which shows as
``Restarts=1`` in SLURM.

One supervisor (``reaper.launchGrace`` = ``--grace``, sweeps every 3 s) serves every round. It
prints one line per round and a summary; exit status 1 when a job did not finish.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from actors.grid import JobStatus
from testbed import faults
from testbed.grid import require_env
from testbed.layout import Layout
from tests.integration.supervisor_harness import (
    FINAL,
    Supervisor,
    scontrol,
    slurm_state,
    submit,
    wait_for,
    wait_status,
)

SCRIPT = "#!/bin/bash\nsleep 5\n"


def one_round(
    supervisor: Supervisor, layout: Layout, folder: Path, customer: int, grace: float, delay: float
) -> tuple[bool, JobStatus, float, str]:
    """Whether the launch was cut, the chain's final status, seconds from the restart to it,
    and SLURM's restart count."""
    env = supervisor.env
    faults.set_partition_state("DOWN")  # the job waits in the queue until we let it go
    try:
        job_id = submit(env, folder, SCRIPT, customer=customer)
        wait_for("SLURM to queue the job", lambda: slurm_state(job_id) is not None, timeout=120)
    finally:
        faults.set_partition_state("UP")
    wait_for(
        "SLURM to allocate the job",
        lambda: (seen := slurm_state(job_id)) is not None and seen[0] != "PENDING",
        timeout=120,
        every=0.005,
    )
    time.sleep(delay)
    record = faults.stop_part(layout, "slurmctld", hold=False)
    time.sleep(2.0)
    faults.start_part(layout, record)
    restarted = time.monotonic()
    time.sleep(12.0)
    cut = slurm_state(job_id) == ("RUNNING", "Prolog")
    final = wait_status(env, job_id, FINAL, timeout=grace + 300)
    return cut, final.status, time.monotonic() - restarted, scontrol(job_id).get("Restarts", "?")


def main(argv: Sequence[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench launch", description=summary)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--grace", type=float, default=20.0, help="reaper.launchGrace, seconds")
    parser.add_argument(
        "--delays",
        default="0.03,0.06,0.09",
        help="seconds from seeing the allocation to the stop, one per round in turn (the launch "
        "is cut only when the stop lands as PrologSlurmctld ends, ~0.1 s after the allocation)",
    )
    args = parser.parse_args(list(argv or []))
    delays = [float(d) for d in args.delays.split(",")]
    env = require_env()
    layout = Layout.from_env()
    cut_seconds: list[float] = []
    wrong = 0
    with tempfile.TemporaryDirectory(prefix="grid-launch-") as folder:
        environment = {"GRID_SUPERVISOR_REAPER_LAUNCH_GRACE": f"{args.grace:g}s"}
        supervisor = Supervisor(env, Path(folder), environment=environment).start()
        try:
            for number in range(args.rounds):
                delay = delays[number % len(delays)]
                cut, status, seconds, restarts = one_round(
                    supervisor, layout, Path(folder) / str(number), number % 4, args.grace, delay
                )
                if cut:
                    cut_seconds.append(seconds)
                right = status is JobStatus.FINISHED and (restarts == "1") == cut
                wrong += not right
                print(
                    f"round {number + 1}: stop {delay * 1000:.0f} ms after the allocation was "
                    f"seen, launch {'CUT' if cut else 'not cut'}, chain "
                    f"{status.name} {seconds:.0f} s after the restart, SLURM Restarts={restarts}"
                    + ("" if right else "  WRONG")
                )
        finally:
            supervisor.stop()
    median = f"{statistics.median(cut_seconds):.0f} s" if cut_seconds else "-"
    print(
        f"total: {args.rounds} rounds, {len(cut_seconds)} launches cut, median {median} from the "
        f"restart to FINISHED on chain for those (grace {args.grace:g} s); "
        f"{'FAILED' if wrong else 'every job finished'}"
    )
    return 1 if wrong else 0
