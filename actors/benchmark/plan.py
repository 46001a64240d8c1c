"""The benchmark suite as plain data: which jobs to submit, with which resources and scripts.

Pure: from the discovered nodes and :class:`~actors.benchmark.settings.BenchmarkSettings` to a
list of :class:`JobPlan` (and the benchmarks skipped, each with its reason). No I/O.

The suite, one SLURM job per kind, run one after the other (each holds the nodes it measures):

``compute``
    A machine probe (os, arch, CPU model and flags, GPU model) on the first node, then HPC
    Challenge (``hpcc``: HPL, STREAM, DGEMM, ...) over MPI. Ranks: one per GPU, else one per
    ``cpus_per_rank`` CPUs; the process grid P x Q comes from that count (:func:`process_grid`,
    never a division by zero); the problem size from memory (:func:`problem_size`). On one node
    in single-node mode; with ``include_unresponsive``, one job per node of the partition.
``network``
    ``hpcc`` with one rank per node and a tiny problem, for its PingPong latency and bandwidth
    between nodes. Skipped on one node or in single-node mode.
``storage``
    ``fio``: sequential write then read of the shared and the node-local scratch folders, one
    task per node (one node in single-node mode).
``internet``
    Ookla ``speedtest`` where the node has it and reaches the internet; else its label is left
    out, with the reason.

Two ways to run each one: ``native`` (the cluster's own ``hpcc``, ``fio``, ``speedtest`` through
``srun --mpi=pmix``) or ``container`` (the same tools inside the configured images, through the
SLURM container plugin's ``--container-image``).
"""

from __future__ import annotations

import hashlib
import math
import shlex
from collections.abc import Sequence

import msgspec

from actors.benchmark.settings import BenchmarkSettings
from actors.slurm.messages import Node

__all__ = [
    "KINDS",
    "SECTION",
    "JobPlan",
    "SuitePlan",
    "hpcc_input",
    "job_name",
    "mpi_environment",
    "plan_suite",
    "problem_size",
    "process_grid",
]

KINDS = ("compute", "network", "storage", "internet")
SECTION = "### grid-benchmark section "
"""Every part of a job's output starts with a line ``SECTION + name``."""


class JobPlan(msgspec.Struct, frozen=True, kw_only=True):
    """One benchmark job: resources for ``sbatch`` and the script it runs."""

    kind: str
    job_name: str
    nodes: int
    ntasks_per_node: int
    cpus_per_task: int
    gpus_per_node: int
    script: str
    nodelist: str = ""


class SuitePlan(msgspec.Struct, frozen=True):
    jobs: tuple[JobPlan, ...]
    skipped: dict[str, str]
    """Benchmark kind -> why it does not run."""


# --- arithmetic --------------------------------------------------------------------------------


def process_grid(ranks: int) -> tuple[int, int]:
    """HPL's P x Q for ``ranks`` processes: Q the largest divisor not above sqrt(ranks), P the
    rest (P >= Q). Zero or fewer ranks count as one: ``(1, 1)``, never ``(0, 1)``."""
    ranks = max(1, ranks)
    q = next(i for i in range(math.isqrt(ranks), 0, -1) if ranks % i == 0)
    return ranks // q, q


def problem_size(memory_mb: int, nodes: int, fraction: float, block_size: int) -> int:
    """HPL's N: ``sqrt(memory in doubles) * fraction``, rounded down to a multiple of NB and at
    least NB. ``memory_mb`` is one node's memory (the smallest), ``nodes`` how many take part."""
    block = max(1, block_size)
    doubles = max(0, memory_mb) * max(1, nodes) * 1_000_000 / 8
    n = int(math.sqrt(doubles) * fraction) // block * block
    return max(block, n)


def job_name(kind: str, public_address: str) -> str:
    """``grid-benchmark-<kind>-<10 hex of sha256(public address)>``: one per supervisor."""
    tag = hashlib.sha256(public_address.encode()).hexdigest()[:10]
    return f"grid-benchmark-{kind}-{tag}"


# --- script parts ------------------------------------------------------------------------------


def hpcc_input(n: int, block_size: int, p: int, q: int) -> str:
    """``hpccinf.txt``: one HPL problem (N, NB, P x Q), the usual HPL defaults, no extra PTRANS."""
    rows = [
        "HPLinpack benchmark input file",
        "grid-supervisor",
        "HPL.out      output file name (if any)",
        "8            device out (6=stdout,7=stderr,file)",
        "1            # of problems sizes (N)",
        f"{n}         Ns",
        "1            # of NBs",
        f"{block_size}           NBs",
        "0            PMAP process mapping (0=Row-,1=Column-major)",
        "1            # of process grids (P x Q)",
        f"{p}            Ps",
        f"{q}            Qs",
        "16.0         threshold",
        "1            # of panel fact",
        "2            PFACTs (0=left, 1=Crout, 2=Right)",
        "1            # of recursive stopping criterium",
        "4            NBMINs (>= 1)",
        "1            # of panels in recursion",
        "2            NDIVs",
        "1            # of recursive panel fact.",
        "1            RFACTs (0=left, 1=Crout, 2=Right)",
        "1            # of broadcast",
        "1            BCASTs (0=1rg,1=1rM,2=2rg,3=2rM,4=Lng,5=LnM)",
        "1            # of lookahead depth",
        "1            DEPTHs (>=0)",
        "2            SWAP (0=bin-exch,1=long,2=mix)",
        "64           swapping threshold",
        "0            L1 in (0=transposed,1=no-transposed) form",
        "0            U  in (0=transposed,1=no-transposed) form",
        "1            Equilibration (0=no,1=yes)",
        "8            memory alignment in double (> 0)",
        "##### This line (no. 32) is ignored (it serves as a separator). ######",
        "0            Number of additional problem sizes for PTRANS",
        "1200         values of N",
        "0            number of additional blocking sizes for PTRANS",
        "40           values of NB",
    ]
    return "\n".join(rows) + "\n"


def mpi_environment(settings: BenchmarkSettings) -> list[str]:
    """``export`` lines for Open MPI: UCX (with its transport) or TCP/shared memory."""
    if settings.ucx:
        lines = [
            "export OMPI_MCA_pml=ucx",
            "export PMIX_MCA_pml=ucx",
            "export OMPI_MCA_btl='^vader,openib,tcp'",
            f"export GRID_UCX_AFFINITY={shlex.quote(settings.ucx_affinity)}",
        ]
        if settings.ucx_transport:
            lines.append(f"export UCX_TLS={shlex.quote(settings.ucx_transport)}")
        return lines
    return [
        "export OMPI_MCA_pml=ob1",
        "export OMPI_MCA_btl=self,vader,tcp",
        "export NCCL_IB_DISABLE=1",
    ]


_RANK_WRAPPER = """\
cat > "$work/rank.sh" <<'RANK'
#!/bin/bash
# Per rank: pick this node's UCX devices from GRID_UCX_AFFINITY (node index = SLURM_NODEID).
IFS='|' read -r -a devices <<< "${GRID_UCX_AFFINITY:-}"
node="${SLURM_NODEID:-0}"
if [ -n "${devices[$node]:-}" ]; then export UCX_NET_DEVICES="${devices[$node]}"; fi
exec "$@"
RANK
"""

_MACHINE_PROBE = """\
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
field() { sed -n -E "s/^($1)[[:space:]]*:[[:space:]]*/$2=/p" /proc/cpuinfo | head -n 1; }
field 'model name|cpu model|Model' cpu
field 'flags|Features' flags
field 'vendor_id|CPU implementer' vendor
if command -v nvidia-smi > /dev/null 2>&1; then
  echo "gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
else
  echo "gpu=none"
fi
"""


def _header(kind: str, settings: BenchmarkSettings, *, threads: int) -> list[str]:
    lines = [
        "#!/bin/bash",
        f"# grid-benchmark {kind}: written by grid-supervisor; its output is read back over SSH.",
        "set -u",
        f"export OMP_NUM_THREADS={threads}",
        "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
        *mpi_environment(settings),
    ]
    if settings.trace:
        lines.append("export NCCL_DEBUG=TRACE")
    lines += [f"export {name}={shlex.quote(value)}" for name, value in settings.env]
    lines += [
        'work=$(mktemp -d "$PWD/.grid-benchmark.XXXXXX") || exit 1',
        "export work",
        "trap 'rm -rf \"$work\"' EXIT",
    ]
    return lines


def _section(name: str) -> str:
    return f"echo {shlex.quote(SECTION + name)}"


def _launch(settings: BenchmarkSettings, image: str, command: str, *, mpi: bool) -> str:
    """The line running ``command`` in every task of the job, through ``rank.sh``.

    Native: MPI programs start with the cluster's ``mpirun`` (it reads the SLURM allocation),
    others with ``srun``. Container: ``srun`` (``--mpi=pmix`` for MPI) with the SLURM container
    plugin's ``--container-image``, the work folder mounted at the same path."""
    if settings.mode == "native":
        launcher = "mpirun --bind-to none" if mpi else "srun --cpu-bind=none"
    else:
        launcher = " ".join(
            [
                "srun",
                *(["--mpi=pmix"] if mpi else []),
                "--cpu-bind=none",
                f"--container-image={shlex.quote(image)}",
                '--container-mounts="$work:$work"',
                '--container-workdir="$work"',
            ]
        )
    return f'{launcher} bash "$work/rank.sh" {command}'


def _hpcc_job(
    kind: str, settings: BenchmarkSettings, *, n: int, nb: int, p: int, q: int, probe: bool
) -> list[str]:
    lines = [_RANK_WRAPPER.rstrip("\n")]
    if probe:
        lines += [_section("machine"), _MACHINE_PROBE.rstrip("\n")]
    lines += [
        'cd "$work"',
        "cat > hpccinf.txt <<'HPCCINF'",
        hpcc_input(n, nb, p, q).rstrip("\n"),
        "HPCCINF",
        _launch(settings, settings.hpl_image, "hpcc", mpi=True) + ' > "$work/hpcc.log" 2>&1',
        'echo "exit=$?"',
        _section("hpcc"),
        'cat hpccoutf.txt 2>/dev/null || tail -n 20 "$work/hpcc.log"',
    ]
    return lines


def _fio_command(folder: str, size_mb: int, label: str) -> str:
    """One task's fio: a file of its own, written (with a final fsync) then read back."""
    file = f"{folder.rstrip('/')}/.grid-benchmark-{label}-$SLURM_JOB_ID-$SLURM_PROCID.fio"
    args = [
        "fio",
        "--output-format=json",
        f"--output=$work/{label}-$SLURM_PROCID.json",
        f"--filename={file}",
        f"--size={size_mb}M",
        "--bs=1M",
        "--ioengine=psync",
        "--name=write",
        "--rw=write",
        "--end_fsync=1",
        "--name=read",
        "--stonewall",
        "--rw=read",
    ]
    inner = " ".join(args) + f'; rm -f "{file}"'
    return "bash -c " + shlex.quote(inner)


def _storage_job(settings: BenchmarkSettings) -> list[str]:
    lines = [_RANK_WRAPPER.rstrip("\n")]
    for label, folder in (("shared", settings.shared_scratch), ("local", settings.local_scratch)):
        quoted = shlex.quote(folder)
        command = _fio_command(folder, settings.storage_mb, label)
        lines += [
            _section(f"storage.{label}"),
            f"if [ -d {quoted} ] && [ -w {quoted} ]; then",
            "  " + _launch(settings, settings.ior_image, command, mpi=False),
            '  echo "exit=$?"',
            f'  for f in "$work"/{label}-*.json; do cat "$f"; echo; done',
            "else",
            f'  echo "skip={folder} is not a writable folder"',
            "fi",
        ]
    return lines


def _internet_job(settings: BenchmarkSettings) -> list[str]:
    speedtest = "speedtest --accept-license --accept-gdpr -f json"
    lines = [_RANK_WRAPPER.rstrip("\n"), _section("internet")]
    if settings.mode == "container":
        return [*lines, _launch(settings, settings.speedtest_image, speedtest, mpi=False)]
    return [
        *lines,
        "if ! command -v speedtest > /dev/null 2>&1; then",
        '  echo "skip=no speedtest command on the node"',
        f"elif ! out=$({speedtest} 2>&1); then",
        '  echo "skip=speedtest failed (no internet?): $(echo "$out" | tail -n 1)"',
        "else",
        '  echo "$out"',
        "fi",
    ]


# --- the suite -----------------------------------------------------------------------------------


def plan_suite(
    nodes: Sequence[Node], settings: BenchmarkSettings, public_address: str
) -> SuitePlan:
    """The jobs to run on ``nodes`` (at least one) and the benchmarks skipped, with reasons."""
    if not nodes:
        raise ValueError("no node to benchmark")
    ordered = sorted(nodes, key=lambda node: node.name)
    cpus = min(node.cpus for node in ordered)
    gpus = min(node.gpus for node in ordered)
    memory = min(node.memory_mb for node in ordered)
    count = len(ordered)
    block = settings.hpl_block_size or (512 if gpus > 0 else 192)
    ranks_per_node = gpus if gpus > 0 else max(1, cpus // settings.cpus_per_rank)
    threads = max(1, cpus // ranks_per_node)
    jobs: list[JobPlan] = []
    skipped: dict[str, str] = {}

    def compute(hpl_nodes: int, nodelist: str = "") -> JobPlan:
        p, q = process_grid(ranks_per_node * hpl_nodes)
        n = problem_size(memory, hpl_nodes, settings.memory_fraction, block)
        body = _hpcc_job("compute", settings, n=n, nb=block, p=p, q=q, probe=True)
        return JobPlan(
            kind="compute",
            job_name=job_name("compute", public_address),
            nodes=hpl_nodes,
            ntasks_per_node=ranks_per_node,
            cpus_per_task=threads,
            gpus_per_node=gpus,
            script=_script("compute", settings, threads, body),
            nodelist=nodelist,
        )

    if settings.include_unresponsive:
        jobs += [compute(1, node.name) for node in ordered]
    else:
        jobs.append(compute(1 if settings.hpl_single_node else count))

    if count < 2:
        skipped["network"] = "one node: no latency or bandwidth between nodes to measure"
    elif settings.hpl_single_node:
        skipped["network"] = "single-node mode: the network is not measured"
    else:
        nb = 64
        body = _hpcc_job("network", settings, n=4 * nb, nb=nb, p=count, q=1, probe=False)
        jobs.append(
            JobPlan(
                kind="network",
                job_name=job_name("network", public_address),
                nodes=count,
                ntasks_per_node=1,
                cpus_per_task=1,
                gpus_per_node=0,
                script=_script("network", settings, 1, body),
            )
        )

    storage_nodes = 1 if settings.storage_single_node or settings.hpl_single_node else count
    jobs.append(
        JobPlan(
            kind="storage",
            job_name=job_name("storage", public_address),
            nodes=storage_nodes,
            ntasks_per_node=1,
            cpus_per_task=1,
            gpus_per_node=0,
            script=_script("storage", settings, 1, _storage_job(settings)),
        )
    )
    jobs.append(
        JobPlan(
            kind="internet",
            job_name=job_name("internet", public_address),
            nodes=1,
            ntasks_per_node=1,
            cpus_per_task=1,
            gpus_per_node=0,
            script=_script("internet", settings, 1, _internet_job(settings)),
        )
    )
    return SuitePlan(jobs=tuple(jobs), skipped=skipped)


def _script(kind: str, settings: BenchmarkSettings, threads: int, body: list[str]) -> str:
    return "\n".join([*_header(kind, settings, threads=threads), *body]) + "\n"
