"""Every SLURM command line the supervisor runs, and a parser for every answer. Pure: no I/O.

Building. Each ``*_argv`` function returns the argument vector; :func:`command_line` joins it
with :func:`shlex.join`, so whatever a value holds (a customer's job name, ``$(...)``, quotes,
newlines) reaches the remote program as one argument: the remote login shell (assumed POSIX,
as bash is) undoes exactly that quoting. The batch script never appears on a command line:
``sbatch`` reads it from standard input when no file is named.

Refusing. :func:`refusal` says why a job definition must not be submitted (zero tasks, zero
duration, absurd sizes) before anything is sent; the job is then refused on chain with that
reason.

Parsing. ``squeue --Format`` with ``|`` separators, ``scontrol show ... --oneliner`` (``Key=value``
pairs, values may hold spaces), ``sacct --parsable2`` (text: ``sacct --json`` reports wrong exit
codes in SLURM 22.05). Parsers raise :class:`~actors.slurm.messages.UnexpectedOutput` and nothing
else.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import shlex
from collections.abc import Iterator, Sequence

import msgspec

from actors.grid import Hardware, JobDefinition
from actors.slurm.messages import Node, SlurmJob, SubmitBatch, UnexpectedOutput

__all__ = [
    "LIMITS",
    "CommandPaths",
    "Limits",
    "SbatchFailure",
    "SubmitSpec",
    "batch_sbatch_argv",
    "batch_script",
    "classify_sbatch_failure",
    "command_line",
    "hardware_of",
    "parse_duration",
    "parse_exit_code",
    "parse_memory_mb",
    "parse_nodes",
    "parse_sacct",
    "parse_sbatch",
    "parse_scontrol_jobs",
    "parse_scontrol_record",
    "parse_squeue",
    "parse_time_limit",
    "parse_timestamp",
    "read_output_command",
    "refusal",
    "sacct_argv",
    "sacct_disabled",
    "sbatch_argv",
    "scancel_argv",
    "scontrol_job_argv",
    "scontrol_nodes_argv",
    "scontrol_ping_argv",
    "scontrol_requeue_argv",
    "scontrol_time_limit_argv",
    "squeue_argv",
    "submit_spec",
]


class CommandPaths(msgspec.Struct, frozen=True):
    """Where the SLURM commands live on the login node (``cfg.slurm.commands``)."""

    sbatch: str = "/usr/bin/sbatch"
    scancel: str = "/usr/bin/scancel"
    squeue: str = "/usr/bin/squeue"
    scontrol: str = "/usr/bin/scontrol"
    sinfo: str = "/usr/bin/sinfo"
    sacct: str = "/usr/bin/sacct"


def command_line(argv: Sequence[str]) -> str:
    """The shell command line that runs ``argv`` exactly (every argument single-quoted as
    needed)."""
    return shlex.join(argv)


# --- refusing a job before it is sent ----------------------------------------------------------


class Limits(msgspec.Struct, frozen=True):
    """The largest values a job may ask for; anything bigger is refused as absurd."""

    max_ntasks: int = 100_000
    max_cpus_per_task: int = 4_096
    max_mem_per_cpu_mb: int = 16 * 1024 * 1024  # 16 TiB
    max_gpus: int = 100_000
    max_minutes: int = 10 * 366 * 24 * 60  # ten years; SLURM stores minutes in 32 bits
    max_script_bytes: int = 4 * 1024 * 1024  # sbatch's default max_script_size


LIMITS = Limits()


def refusal(
    definition: JobDefinition, time_limit_minutes: int, script: str, limits: Limits = LIMITS
) -> str | None:
    """Why this job must not be submitted, or None when it may be."""
    if time_limit_minutes <= 0:
        return "the job has no time to run (maxDurationMinute is 0)"
    if time_limit_minutes > limits.max_minutes:
        return f"time limit of {time_limit_minutes} minutes is absurd (> {limits.max_minutes})"
    checks = (
        ("ntasks", definition.ntasks, 1, limits.max_ntasks),
        ("cpusPerTask", definition.cpus_per_task, 1, limits.max_cpus_per_task),
        ("memPerCpu", definition.mem_per_cpu, 0, limits.max_mem_per_cpu_mb),
        ("gpus", definition.gpus, 0, limits.max_gpus),
    )
    for field, value, low, high in checks:
        if value < low:
            return f"{field} is {value}; it must be at least {low}"
        if value > high:
            return f"{field} of {value} is absurd (> {high})"
    if "\0" in script:
        return "the batch script contains a NUL byte"
    if len(script.encode()) > limits.max_script_bytes:
        return f"the batch script is larger than {limits.max_script_bytes} bytes"
    return None


# --- sbatch -----------------------------------------------------------------------------------

_PARTITION = re.compile(r"^[A-Za-z0-9_.-]+$")


class SubmitSpec(msgspec.Struct, frozen=True):
    """Everything on one ``sbatch`` command line (the script itself goes on stdin)."""

    job_name: str
    comment: str
    partition: str
    time_limit_minutes: int
    ntasks: int
    cpus_per_task: int
    mem_per_cpu_mb: int
    gpus: int
    output: str
    workdir: str | None = None


def submit_spec(
    job_name: str,
    definition: JobDefinition,
    time_limit_minutes: int,
    *,
    partition: str,
    public_address: str,
    output_dir: str = "/tmp",
    workdir: str | None = "/tmp",
) -> SubmitSpec:
    """The submission of one grid job: named after its job id, its comment naming this
    supervisor (the reporters read the address at ``comment[11:]``), output to
    ``<output_dir>/<job name>-<slurm id>.out`` (a path the customer's user can write, else the
    job fails with ExitCode 0:53)."""
    if not _PARTITION.match(partition):
        raise ValueError(f"not a partition name: {partition!r}")
    return SubmitSpec(
        job_name=job_name,
        comment=f"supervisor {public_address}",
        partition=partition,
        time_limit_minutes=time_limit_minutes,
        ntasks=definition.ntasks,
        cpus_per_task=definition.cpus_per_task,
        mem_per_cpu_mb=definition.mem_per_cpu,
        gpus=definition.gpus,
        output=f"{output_dir.rstrip('/') or ''}/{job_name}-%j.out",
        workdir=workdir,
    )


def sbatch_argv(paths: CommandPaths, spec: SubmitSpec) -> list[str]:
    """``sbatch --parsable ...`` for ``spec``; ``--mem-per-cpu`` and ``--gpus`` only when > 0
    (``--gpus=0`` is refused on clusters without GPU GRES)."""
    argv = [
        paths.sbatch,
        "--parsable",
        f"--job-name={spec.job_name}",
        f"--comment={spec.comment}",
        f"--partition={spec.partition}",
        f"--time={spec.time_limit_minutes}",
        f"--ntasks={spec.ntasks}",
        f"--cpus-per-task={spec.cpus_per_task}",
        f"--output={spec.output}",
    ]
    if spec.mem_per_cpu_mb > 0:
        argv.append(f"--mem-per-cpu={spec.mem_per_cpu_mb}")
    if spec.gpus > 0:
        argv.append(f"--gpus={spec.gpus}")
    if spec.workdir is not None:
        argv.append(f"--chdir={spec.workdir}")
    return argv


def batch_sbatch_argv(paths: CommandPaths, request: SubmitBatch, partition: str) -> list[str]:
    """``sbatch --parsable ...`` for one of the supervisor's own jobs (:class:`SubmitBatch`):
    whole nodes (``--exclusive --mem=0``), the script on stdin."""
    if not _PARTITION.match(partition):
        raise ValueError(f"not a partition name: {partition!r}")
    argv = [
        paths.sbatch,
        "--parsable",
        f"--job-name={request.job_name}",
        f"--comment={request.comment}",
        f"--partition={partition}",
        f"--time={request.time_limit_minutes}",
        f"--nodes={request.nodes}",
        f"--ntasks-per-node={request.ntasks_per_node}",
        f"--cpus-per-task={request.cpus_per_task}",
        "--exclusive",
        "--mem=0",
        f"--output={request.output}",
    ]
    if request.gpus_per_node > 0:
        argv.append(f"--gpus-per-node={request.gpus_per_node}")
    if request.nodelist:
        argv.append(f"--nodelist={request.nodelist}")
    return argv


def read_output_command(path: str, max_bytes: int) -> str:
    """A shell line printing the last ``max_bytes`` of ``path``, or exiting 3 when it is not a
    readable file (``path`` is quoted: it reaches ``tail`` as one argument)."""
    quoted = shlex.quote(path)
    return f"if [ -r {quoted} ]; then tail -c {int(max_bytes)} -- {quoted}; else exit 3; fi"


BATCH_PRELUDE = "#!/bin/bash -l\ntrue\n"
"""What precedes every customer script: a shell, then a command. sbatch reads ``#SBATCH``
directives only up to the first command, so the customer's own directives are dead text and
cannot override the resources, partition or time limit the chain paid for."""


def batch_script(body: str) -> str:
    """The script sent on sbatch's stdin: :data:`BATCH_PRELUDE`, then ``body`` verbatim."""
    return BATCH_PRELUDE + body + ("" if body.endswith("\n") else "\n")


def parse_sbatch(stdout: str) -> int:
    """The job id ``sbatch --parsable`` printed (``123`` or ``123;cluster``)."""
    text = stdout.strip().split(";", 1)[0]
    if not text.isdigit():
        raise UnexpectedOutput(f"sbatch --parsable printed {stdout.strip()[:200]!r}")
    return int(text)


class SbatchFailure(enum.Enum):
    """What a failed ``sbatch`` means for the job."""

    REFUSED = "refused"
    """SLURM said no to this job (bad resources, invalid GRES, bad script): refuse it."""
    UNAVAILABLE = "unavailable"
    """The controller was not reached: nothing was submitted, retry later."""
    AMBIGUOUS = "ambiguous"
    """The controller may have accepted it (a timeout on the reply): look it up by name."""
    BROKEN = "broken"
    """Not a SLURM answer at all (command not found, permission): an operator problem."""


_UNAVAILABLE = (
    "unable to contact slurm controller",
    "slurm temporarily unable to accept job",
    "connection refused",
    "slurm_persist_conn",
)
_AMBIGUOUS = ("socket timed out", "zero bytes were transmitted", "transport endpoint")


def classify_sbatch_failure(exit_status: int, stderr: str) -> SbatchFailure:
    """Sort a non-zero ``sbatch`` exit into :class:`SbatchFailure`."""
    text = stderr.lower()
    if exit_status in (126, 127) or "command not found" in text or "no such file" in text:
        return SbatchFailure.BROKEN
    if any(marker in text for marker in _AMBIGUOUS):
        return SbatchFailure.AMBIGUOUS
    if any(marker in text for marker in _UNAVAILABLE):
        return SbatchFailure.UNAVAILABLE
    if "error" in text:
        return SbatchFailure.REFUSED
    return SbatchFailure.BROKEN


# --- other commands -------------------------------------------------------------------------


def scancel_argv(
    paths: CommandPaths, *, slurm_job_id: int | None = None, job_name: str | None = None
) -> list[str]:
    """``scancel <id>`` or ``scancel --name=<name>`` (exactly one of the two)."""
    if (slurm_job_id is None) == (job_name is None):
        raise ValueError("scancel needs exactly one of slurm_job_id and job_name")
    if slurm_job_id is not None:
        return [paths.scancel, str(_job_id(slurm_job_id))]
    return [paths.scancel, f"--name={job_name}"]


_SQUEUE_FIELDS = (
    "JobID",
    "Name",
    "State",
    "exit_code",
    "UserName",
    "TimeUsed",
    "TimeLimit",
    "Partition",
    "StartTime",
    "EndTime",
    "Reason",
    "Comment",  # last: the only free text (split with a bounded count)
)


def squeue_argv(paths: CommandPaths, job_name: str) -> list[str]:
    """``squeue`` for every job named ``job_name`` in any state the controller still holds."""
    fields = ",".join(f"{field}:|" for field in _SQUEUE_FIELDS)
    return [paths.squeue, "--noheader", "--states=all", f"--name={job_name}", f"--Format={fields}"]


def scontrol_job_argv(paths: CommandPaths, slurm_job_id: int) -> list[str]:
    return [paths.scontrol, "show", "job", "--oneliner", str(_job_id(slurm_job_id))]


def scontrol_requeue_argv(paths: CommandPaths, slurm_job_id: int) -> list[str]:
    """Put a job back in the queue, to be launched again under the same SLURM id (the admin)."""
    return [paths.scontrol, "requeue", str(_job_id(slurm_job_id))]


def scontrol_time_limit_argv(paths: CommandPaths, slurm_job_id: int, minutes: int) -> list[str]:
    """Set an absolute time limit in minutes (raising one needs the admin)."""
    if minutes < 1:
        raise ValueError(f"a time limit is at least 1 minute, not {minutes}")
    return [paths.scontrol, "update", f"JobId={_job_id(slurm_job_id)}", f"TimeLimit={minutes}"]


def scontrol_nodes_argv(paths: CommandPaths) -> list[str]:
    return [paths.scontrol, "show", "nodes", "--oneliner"]


def scontrol_ping_argv(paths: CommandPaths) -> list[str]:
    return [paths.scontrol, "ping"]


_SACCT_FIELDS = (
    "JobIDRaw",
    "JobName",
    "State",
    "ExitCode",
    "Start",
    "End",
    "ElapsedRaw",
    "TimelimitRaw",
    "User",
    "Partition",
    "Reason",
    "Comment",  # last, as in squeue
)


def sacct_argv(
    paths: CommandPaths,
    *,
    job_name: str | None = None,
    slurm_job_id: int | None = None,
    since: str = "now-30days",
) -> list[str]:
    """``sacct`` (text, ``|``-separated, allocations only, all users) by name or by id."""
    if (slurm_job_id is None) == (job_name is None):
        raise ValueError("sacct needs exactly one of slurm_job_id and job_name")
    argv = [
        paths.sacct,
        "--parsable2",
        "--noheader",
        "--allocations",
        "--allusers",
        f"--format={','.join(_SACCT_FIELDS)}",
    ]
    if slurm_job_id is not None:
        argv.append(f"--jobs={_job_id(slurm_job_id)}")
    else:
        argv += [f"--starttime={since}", f"--name={job_name}"]
    return argv


def sacct_disabled(stderr: str, stdout: str = "") -> bool:
    """True when sacct says the cluster keeps no accounting (then only squeue/scontrol know)."""
    return "accounting storage is disabled" in (stderr + stdout).lower()


def _job_id(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"not a SLURM job id: {value!r}")
    return value


# --- scalar parsers -----------------------------------------------------------------------------

_UNLIMITED = frozenset({"UNLIMITED", "INFINITE", "PARTITION_LIMIT", "NONE", "N/A", ""})
_DURATION = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(?:(\d+):)?(\d+)$")


def parse_duration(text: str) -> int:
    """Seconds of a SLURM duration: ``SS``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``."""
    value = text.strip()
    match = _DURATION.match(value)
    if match is None:
        raise UnexpectedOutput(f"not a SLURM duration: {text!r}")
    days, first, second, last = match.groups()
    if days is not None:
        # D-HH, D-HH:MM, D-HH:MM:SS: the fields after the dash start at hours.
        parts = [int(p) for p in value.split("-", 1)[1].split(":")]
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    numbers = [int(p) for p in (first, second, last) if p is not None]
    seconds = 0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


def parse_time_limit(text: str) -> int | None:
    """Minutes of a time limit as squeue/scontrol print it (``5:00`` is five minutes), None for
    UNLIMITED. A bare number is minutes (as ``sacct TimelimitRaw`` and ``--time`` use it)."""
    value = text.strip()
    if value.upper() in _UNLIMITED:
        return None
    if value.isdigit():
        return int(value)
    return -(-parse_duration(value) // 60)  # round up: 90 s of limit is 2 minutes


def parse_exit_code(text: str) -> tuple[int, int, int]:
    """``(raw, status, signal)`` of ``"3:0"`` (scontrol/sacct) or of a raw wait status ``"768"``
    (squeue): raw is ``status << 8 | signal``."""
    value = text.strip()
    try:
        if ":" in value:
            status_text, signal_text = value.split(":", 1)
            status, signal = int(status_text), int(signal_text)
            return (status << 8) | signal, status, signal
        raw = int(value or "0")
    except ValueError:
        raise UnexpectedOutput(f"not an exit code: {text!r}") from None
    return raw, (raw >> 8) & 0xFF, raw & 0x7F


def parse_timestamp(text: str) -> dt.datetime | None:
    """A SLURM timestamp (``2026-11-24T16:50:38``), None for Unknown/None/N/A."""
    value = text.strip()
    if not value or not value[0].isdigit():
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise UnexpectedOutput(f"not a SLURM timestamp: {text!r}") from None


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)$")
_MB_PER_UNIT = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}


def parse_memory_mb(text: str) -> int:
    """MB of ``4096``, ``4096M``, ``4G``, ``1.5T``."""
    match = _MEMORY.match(text.strip().upper())
    if match is None:
        raise UnexpectedOutput(f"not a memory size: {text!r}")
    return int(float(match.group(1)) * _MB_PER_UNIT[match.group(2)])


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UnexpectedOutput(f"{what} is not a number: {text!r}") from None


def _state(text: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``; ``RUNNING`` stays."""
    words = text.strip().split()
    return words[0].upper() if words else ""


# --- record parsers -----------------------------------------------------------------------------


def _rows(stdout: str, count: int, what: str) -> Iterator[list[str]]:
    """The non-blank lines of ``|``-separated output, each split into ``count`` cells."""
    for line in stdout.splitlines():
        if not line.strip():
            continue
        cells = line.split("|", count - 1)
        if len(cells) != count:
            raise UnexpectedOutput(f"{what} line has {len(cells)} fields: {line[:200]!r}")
        yield cells


def parse_squeue(stdout: str) -> list[SlurmJob]:
    """Jobs from :func:`squeue_argv`'s output, one per line."""
    jobs = []
    for cells in _rows(stdout, len(_SQUEUE_FIELDS), "squeue"):
        job_id, name, state, exit_code, user, used, limit, partition, start, end, reason = (
            c.strip() for c in cells[:-1]
        )
        raw, status, signal = parse_exit_code(exit_code)
        jobs.append(
            SlurmJob(
                slurm_job_id=_int(job_id, "JobID"),
                name=name,
                state=_state(state),
                exit_code_raw=raw,
                exit_status=status,
                exit_signal=signal,
                start=parse_timestamp(start),
                end=parse_timestamp(end),
                elapsed_seconds=parse_duration(used) if used else 0,
                time_limit_minutes=parse_time_limit(limit),
                user=user,
                comment=cells[-1].removesuffix("|").strip(),
                partition=partition,
                reason=reason,
            )
        )
    return jobs


_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:]*)=")


def parse_scontrol_record(line: str) -> dict[str, str]:
    """The ``Key=value`` pairs of one ``scontrol show ... --oneliner`` line. A value runs up to
    the next `` Key=``, so values with spaces (``Comment=supervisor host:port``, ``OS=Linux
    ...``) stay whole."""
    matches = list(_KEY.finditer(line))
    record: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
        record[match.group(1)] = line[match.end() : end].strip()
    return record


def _user_name(text: str) -> str:
    """``alice(1001)`` -> ``alice``."""
    return text.split("(", 1)[0]


def parse_scontrol_jobs(stdout: str) -> list[SlurmJob]:
    """Jobs from ``scontrol show job --oneliner``, one per line."""
    jobs = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        record = parse_scontrol_record(line)
        if "JobId" not in record:
            raise UnexpectedOutput(f"scontrol line without JobId: {line[:200]!r}")
        raw, status, signal = parse_exit_code(record.get("ExitCode", "0:0"))
        jobs.append(
            SlurmJob(
                slurm_job_id=_int(record["JobId"], "JobId"),
                name=record.get("JobName", ""),
                state=_state(record.get("JobState", "")),
                exit_code_raw=raw,
                exit_status=status,
                exit_signal=signal,
                start=parse_timestamp(record.get("StartTime", "")),
                end=parse_timestamp(record.get("EndTime", "")),
                elapsed_seconds=parse_duration(record.get("RunTime", "0")),
                time_limit_minutes=parse_time_limit(record.get("TimeLimit", "")),
                user=_user_name(record.get("UserId", "")),
                comment=record.get("Comment", "") if record.get("Comment") != "(null)" else "",
                partition=record.get("Partition", ""),
                reason=record.get("Reason", ""),
            )
        )
    return jobs


def parse_sacct(stdout: str) -> list[SlurmJob]:
    """Jobs from :func:`sacct_argv`'s output (``--parsable2``: no trailing separator)."""
    jobs = []
    for cells in _rows(stdout, len(_SACCT_FIELDS), "sacct"):
        job_id, name, state, exit_code, start, end, elapsed, limit, user, partition, reason = (
            c.strip() for c in cells[:-1]
        )
        if not job_id.isdigit():  # array or heterogeneous parts ("12_3", "12+0"): not ours
            continue
        raw, status, signal = parse_exit_code(exit_code)
        jobs.append(
            SlurmJob(
                slurm_job_id=int(job_id),
                name=name,
                state=_state(state),
                exit_code_raw=raw,
                exit_status=status,
                exit_signal=signal,
                start=parse_timestamp(start),
                end=parse_timestamp(end),
                elapsed_seconds=_int(elapsed or "0", "ElapsedRaw"),
                time_limit_minutes=parse_time_limit(limit),
                user=user,
                comment=cells[-1].strip(),
                partition=partition,
                reason=reason,
            )
        )
    return jobs


_GPU_TRES = re.compile(r"(?:^|,)gres/gpu=(\d+)")
_GPU_GRES = re.compile(r"(?:^|,)gpu(?::[^:,()]+)?:(\d+)")


def _tres(cfg_tres: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in cfg_tres.split(",") if "=" in item)
    return {key: value for key, value in pairs}


def _node_gpus(record: dict[str, str]) -> int:
    match = _GPU_TRES.search(record.get("CfgTRES", ""))
    if match is None:
        match = _GPU_GRES.search(record.get("Gres", ""))
    return int(match.group(1)) if match else 0


def parse_nodes(stdout: str, partition: str) -> list[Node]:
    """The nodes of ``partition`` (exact name) from ``scontrol show nodes --oneliner``.

    CPUs come from ``CfgTRES`` ``cpu=`` (what SLURM schedules with; else ``CPUTot``), memory
    from ``RealMemory`` in MB (else ``CfgTRES`` ``mem=``, rounded to G), GPUs from ``CfgTRES``
    ``gres/gpu=`` or ``Gres=gpu[:type]:N``.
    A node does not respond when its state ends in ``*`` or carries ``NOT_RESPONDING``.
    """
    nodes = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        record = parse_scontrol_record(line)
        name = record.get("NodeName")
        if not name:
            raise UnexpectedOutput(f"scontrol line without NodeName: {line[:200]!r}")
        partitions = tuple(p for p in record.get("Partitions", "").split(",") if p)
        if partition not in partitions:
            continue
        tres = _tres(record.get("CfgTRES", ""))
        cpus = _int(tres.get("cpu") or record.get("CPUTot", ""), f"CPUs of node {name}")
        memory = record.get("RealMemory") or tres.get("mem", "")
        state = record.get("State", "").upper()
        responding = not state.endswith("*") and "NOT_RESPONDING" not in state
        nodes.append(
            Node(
                name=name,
                cpus=cpus,
                memory_mb=parse_memory_mb(memory),
                gpus=_node_gpus(record),
                state=state.rstrip("*"),
                responding=responding,
                partitions=partitions,
            )
        )
    return nodes


def hardware_of(nodes: Sequence[Node]) -> Hardware:
    """The hardware to register on chain: one entry per node, from a single listing (so the
    node count and the per-node arrays always agree)."""
    ordered = sorted(nodes, key=lambda node: node.name)
    return Hardware(
        nodes=len(ordered),
        gpus_per_node=tuple(node.gpus for node in ordered),
        cpus_per_node=tuple(node.cpus for node in ordered),
        mem_per_node=tuple(node.memory_mb for node in ordered),
    )
