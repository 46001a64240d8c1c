"""Stopping and starting single parts of a running testbed, for fault tests.

:func:`stop_part` ends one daemon (SIGTERM, as an operator or a crash would; SIGKILL after a
deadline); :func:`start_part` starts it again in the state it left, and waits until it answers:

- ``anvil``: its state is dumped first (``anvil_dumpState``, a gzip of the JSON that ``--state``
  reads) to ``<testbed>/anvil-state.json`` and the new anvil loads it (``--state``: it also dumps
  again when it stops), so the chain, its blocks and the grid's contracts survive the restart;
- ``slurmctld``: started again *without* ``-c``, so it recovers its jobs from its saved state
  (running jobs keep running under their slurmstepd meanwhile). SLURM 22.05 loses a batch launch
  when slurmctld stops in the ~100 ms between allocating a job and sending its launch (seen here:
  the recovered job stays RUNNING with ``Reason=Prolog`` until its time limit, never started;
  node registrations do not clear it). So, as an operator's maintenance does, the partition is
  set DOWN before the stop (jobs are still accepted and queued, none is allocated), the stop waits
  until no job is between allocation and launch, and the partition is UP again once slurmctld
  answers;
- ``sshd`` and ``sbatch-service``: started again with their usual settings.

Run these under the testbed lock (``flock /work/notes/testbed.lock``): every user of the testbed
sees the part go away.
"""

from __future__ import annotations

import gzip
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from testbed import anvil, sshd
from testbed import layout as lay
from testbed.env import read_env
from testbed.layout import Layout
from testbed.processes import (
    ProcessRecord,
    TestbedError,
    is_running,
    read_record,
    start,
    stop,
    wait_until,
)

__all__ = ["PARTS", "restart_part", "set_partition_state", "start_part", "stop_part"]

PARTS: Final = ("anvil", "sshd", "slurmctld", "sbatch-service")
READY_TIMEOUT: Final = 30.0


def _record(layout: Layout, name: str) -> ProcessRecord:
    record = read_record(layout.pids, name)
    if record is None:
        raise TestbedError(f"no record of {name}: is the testbed up?")
    return record


def anvil_state_file(layout: Layout) -> Path:
    return layout.root / "anvil-state.json"


def stop_part(
    layout: Layout, name: str, *, deadline: float = 10.0, hold: bool = True
) -> ProcessRecord:
    """Stop ``name`` (one of :data:`PARTS`); returns its record, for :func:`start_part`.
    ``hold=False`` stops slurmctld without holding allocations first (it may cut a launch: what
    ``bench launch`` wants)."""
    if name not in PARTS:
        raise ValueError(f"not a part that can be restarted: {name!r} (one of {PARTS})")
    record = _record(layout, name)
    if name == "anvil" and is_running(record):
        dumped = str(anvil.rpc("anvil_dumpState", timeout=30.0))
        anvil_state_file(layout).write_bytes(gzip.decompress(bytes.fromhex(dumped[2:])))
    if name == "slurmctld" and hold and is_running(record):
        _hold_allocations()
    stop(layout.pids, [record], deadline=deadline)
    # forget() dropped the record: keep it for start_part (same argv, same log)
    return record


def start_part(layout: Layout, record: ProcessRecord) -> ProcessRecord:
    """Start the part ``record`` describes again, and wait until it answers."""
    name = record.name
    if name == "sshd":
        started = sshd.start_sshd(layout)
        sshd.wait_ready(layout, started, timeout=READY_TIMEOUT)
        return started
    argv = list(record.argv)
    if name == "anvil":
        state = str(anvil_state_file(layout))
        if "--state" not in argv:
            argv += ["--state", state]
    elif name == "slurmctld":
        argv = [arg for arg in argv if arg != "-c"]  # recover the saved jobs
    started = start(name, argv, pids_dir=layout.pids, log=Path(record.log), cwd=lay.REPO_ROOT)
    wait_until(
        _ready(layout, name),
        part=name,
        log=Path(record.log),
        timeout=READY_TIMEOUT,
        what="an answer",
        record=started,
    )
    if name == "slurmctld":
        set_partition_state("UP")
    return started


def restart_part(layout: Layout, name: str, *, down_seconds: float = 0.0) -> ProcessRecord:
    """Stop ``name``, wait ``down_seconds``, start it again."""
    record = stop_part(layout, name)
    time.sleep(down_seconds)
    return start_part(layout, record)


def _ready(layout: Layout, name: str) -> Callable[[], bool]:
    if name == "anvil":
        return anvil.answering
    if name == "slurmctld":
        return _slurmctld_answers
    if name == "sbatch-service":
        env = read_env(layout)
        if env is None:
            raise TestbedError("the testbed is not up (no env.json)")
        from testbed.grid import tls_handshake

        return lambda: tls_handshake(lay.SBATCH_PORT, Path(env.sbatch.ca_cert))
    raise ValueError(name)


def set_partition_state(state: str) -> None:
    """``scontrol update`` the testbed's partition to ``state`` (UP, DOWN, ...)."""
    subprocess.run(
        ["scontrol", "update", f"PartitionName={lay.PARTITION}", f"State={state}"],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _jobs_in_launch() -> list[str]:
    """Jobs allocated but not launched yet (configuring, or running while the prolog is due)."""
    listed = subprocess.run(
        ["squeue", "-h", "-t", "CONFIGURING,RUNNING", "-o", "%i %T %r"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [
        line.split()[0]
        for line in listed.splitlines()
        if line.split()[1:2] == ["CONFIGURING"] or line.split()[2:3] == ["Prolog"]
    ]


def _hold_allocations(*, timeout: float = 30.0) -> None:
    """Partition DOWN, then wait until no job is between allocation and launch."""
    set_partition_state("DOWN")
    deadline = time.monotonic() + timeout
    while launching := _jobs_in_launch():
        if time.monotonic() > deadline:
            raise TestbedError(f"jobs {', '.join(launching)} still launching after {timeout:g} s")
        time.sleep(0.1)


def _slurmctld_answers() -> bool:
    try:
        done = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "UP" in done.stdout
