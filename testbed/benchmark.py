"""What the benchmarks need from the testbed: their tools, and a way to change a node's CPUs.

``testbed up`` stays fast: it installs nothing of this. :func:`ensure_benchmark_tools` installs
Debian's ``hpcc`` (HPL, STREAM, PingPong over Open MPI), ``fio``, Open MPI and the unversioned
``libpmix.so`` that SLURM's ``mpi/pmix`` plugin opens; slurmd loads that plugin when it starts,
so the fake nodes are restarted when anything was installed.

:func:`set_node_cpus` rewrites one node's ``CPUs=`` in slurm.conf and restarts slurmctld (a
changed node definition needs a restart); :func:`restore_slurm_conf` writes the generated
config back and restarts it again. Both stop every job SLURM holds (slurmctld runs without
saved state): run them under the shared testbed lock, with no job of anyone else running.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from testbed import layout as lay
from testbed import slurm
from testbed.grid import missing_packages
from testbed.layout import Layout
from testbed.processes import TestbedError, read_record, start, stop

__all__ = [
    "BENCHMARK_PACKAGES",
    "SCRATCH_SUBDIR",
    "ensure_benchmark_tools",
    "restart_slurm",
    "restore_slurm_conf",
    "set_node_cpus",
]

BENCHMARK_PACKAGES = ("hpcc", "fio", "openmpi-bin", "libpmix-dev")
SCRATCH_SUBDIR = "scratch"
"""``<testbed>/scratch``: the testbed's "shared scratch" folder (every fake node sees it)."""


def ensure_benchmark_tools(layout: Layout, log: Callable[[str], None] = lambda _: None) -> bool:
    """Install the benchmark packages that are missing and create the scratch folder; returns
    whether anything was installed (then the fake nodes were restarted)."""
    (layout.root / SCRATCH_SUBDIR).mkdir(parents=True, exist_ok=True)
    (layout.root / SCRATCH_SUBDIR).chmod(0o1777)
    missing = missing_packages(BENCHMARK_PACKAGES)
    if not missing:
        return False
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=600)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise TestbedError(f"apt-get install failed: {done.stderr.strip()[-1500:]}")
    if read_record(layout.pids, "slurmctld") is not None:
        restart_slurm(layout, daemons=[f"slurmd-{node}" for node in lay.NODES])
    return True


def set_node_cpus(layout: Layout, node: str, cpus: int) -> None:
    """Give ``node`` ``cpus`` CPUs in slurm.conf and restart slurmctld."""
    text = layout.slurm_conf.read_text()
    pattern = re.compile(rf"^(NodeName={re.escape(node)} .*?\bCPUs=)\d+", re.MULTILINE)
    changed, count = pattern.subn(rf"\g<1>{cpus}", text)
    if count != 1:
        raise TestbedError(f"node {node} is not in {layout.slurm_conf}")
    layout.slurm_conf.write_text(changed)
    restart_slurm(layout)


def restore_slurm_conf(layout: Layout) -> None:
    """Write the generated slurm.conf back and restart slurmctld."""
    layout.slurm_conf.write_text(slurm.slurm_conf(layout))
    restart_slurm(layout)


def restart_slurm(layout: Layout, daemons: list[str] | None = None) -> None:
    """Restart slurmctld (and the named other daemons), then wait for every node to be idle."""
    names = ["slurmctld", *(daemons or [])]
    records = []
    for name in names:
        record = read_record(layout.pids, name)
        if record is None:
            raise TestbedError(f"{name} is not running under the testbed")
        records.append(record)
    slurm.cancel_all_jobs()
    stop(layout.pids, records)
    for record in records:
        start(record.name, record.argv, pids_dir=layout.pids, log=Path(record.log))
    slurm.wait_ready(layout, [], timeout=60.0)
