"""Every SLURM command line the supervisor runs, and a parser for every answer. Pure: no I/O.

Building. Each ``*_argv`` function returns the argument vector; :func:`command_line` joins it
with :func:`shlex.join`, so whatever a value holds (a customer's job name, ``$(...)``, quotes,
newlines) reaches the remote program as one argument: the remote login shell (assumed POSIX,
as bash is) undoes exactly that quoting. The batch script never appears on a command line:
``sbatch`` reads it from standard input when no file is named.

Refusing. :func:`refusal` says why a job definition must not be submitted (zero tasks, zero
duration, absurd sizes) before anything is sent; the job is then refused on chain with that
reason.

Parsing. Jobs are read from ``squeue --Format`` and ``sacct --parsable2`` lines (``|``
separators) that carry no text a customer can write but the job's name, printed last; nodes from
``scontrol show nodes --oneliner`` (``Key=value`` pairs, values may hold spaces, a key seen twice
is refused). ``scontrol show job`` is not read: it prints ``Comment=`` raw, and a comment
``x JobState=COMPLETED EndTime=...`` would shadow the real fields. SLURM 22.05's ``--json``
is no way out: ``scontrol`` has none, ``squeue --json`` ignores ``--name``/``--jobs`` (every job
of the cluster, about 3 KB each, on every lookup) and ``sacct --json`` reports wrong exit codes.
Numbers are bounded ASCII digits. Parsers raise :class:`~actors.slurm.messages.UnexpectedOutput`
and nothing else.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import shlex
from collections.abc import Callable, Sequence

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
    "parse_sacct_job",
    "parse_sbatch",
    "parse_scontrol_record",
    "parse_squeue",
    "parse_squeue_job",
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

_PARTITION = re.compile(r"[A-Za-z0-9_.-]+")


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
    if not _PARTITION.fullmatch(partition):
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
    if not _PARTITION.fullmatch(partition):
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
    try:
        return _number(text, "the job id sbatch --parsable printed")
    except UnexpectedOutput:
        raise UnexpectedOutput(f"sbatch --parsable printed {stdout.strip()[:200]!r}") from None


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


_JOB_FIELDS = (
    "JobID",  # the job's own id (never the array form "12_3")
    "State",
    "exit_code",  # the raw wait status
    "UserName",
    "TimeUsed",
    "TimeLimit",
    "Partition",
    "StartTime",
    "EndTime",
    "Reason",  # SLURM's or an admin's text: may hold a |, never a customer's
)
"""What :func:`squeue_argv` asks for before the job's name, which comes last. None of these is
text a customer can write (unlike ``Comment``, ``WorkDir`` or ``StdOut``, left out on purpose)."""


def squeue_argv(
    paths: CommandPaths, job_name: str | None = None, *, slurm_job_id: int | None = None
) -> list[str]:
    """``squeue`` for every job named ``job_name`` (SLURM compares names ignoring case), or
    for the one job ``slurm_job_id``, in any state the controller still holds: each line the
    :data:`_JOB_FIELDS` then ``Name``, every field followed by ``|``."""
    if (slurm_job_id is None) == (job_name is None):
        raise ValueError("squeue needs exactly one of slurm_job_id and job_name")
    fields = ",".join(f"{field}:|" for field in (*_JOB_FIELDS, "Name"))
    target = f"--name={job_name}" if slurm_job_id is None else f"--jobs={_job_id(slurm_job_id)}"
    return [paths.squeue, "--noheader", "--states=all", target, f"--Format={fields}"]


def scontrol_job_argv(paths: CommandPaths, slurm_job_id: int) -> list[str]:
    """``scontrol show job`` (an operator's view: its ``Comment=`` and ``JobName=`` are printed
    raw, so the adapter reads jobs with :func:`squeue_argv` instead)."""
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
    "State",
    "ExitCode",
    "Start",
    "End",
    "ElapsedRaw",
    "TimelimitRaw",
    "User",
    "Partition",
    "Reason",
)
"""What :func:`sacct_argv` asks for before ``JobName``, which comes last (as in squeue)."""


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
        f"--format={','.join((*_SACCT_FIELDS, 'JobName'))}",
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
#
# Every number is ASCII digits of a bounded length (``int()`` alone takes "²", "٣", "1_000" and
# raises ValueError past 4,300 digits), every bound is checked, and the only exception raised is
# UnexpectedOutput.

_MAX_DIGITS = 18  # far below 2**63: no SLURM number has more


def _number(text: str, what: str, *, digits: int = _MAX_DIGITS) -> int:
    """The non-negative integer ``text`` spells in ASCII digits (at most ``digits`` of them)."""
    value = text.strip()
    if not (0 < len(value) <= digits and value.isascii() and value.isdigit()):
        raise UnexpectedOutput(f"{what} is not a number: {text[:80]!r}")
    return int(value)


def _show(text: str) -> str:
    return repr(text[:80]) + ("..." if len(text) > 80 else "")


_UNLIMITED = frozenset({"UNLIMITED", "INFINITE", "PARTITION_LIMIT", "NONE", "N/A", ""})
_DURATION = re.compile(r"(?:([0-9]{1,9})-)?([0-9]{1,9})(?::([0-9]{1,9}))?(?::([0-9]{1,9}))?")


def parse_duration(text: str) -> int:
    """Seconds of a SLURM duration: ``SS``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UnexpectedOutput(f"not a SLURM duration: {_show(text)}")
    days, first, second, third = match.groups()
    parts = [int(p) for p in (first, second, third) if p is not None]
    if days is not None:
        # D-HH, D-HH:MM, D-HH:MM:SS: the fields after the dash start at hours.
        hours, minutes, seconds = parts + [0] * (3 - len(parts))
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    total = 0
    for number in parts:
        total = total * 60 + number
    return total


MAX_TIME_LIMIT_MINUTES = 2**32 - 1
"""SLURM keeps minutes in 32 bits (INFINITE is printed as UNLIMITED)."""


def parse_time_limit(text: str) -> int | None:
    """Minutes of a time limit as squeue/scontrol print it (``5:00`` is five minutes), None for
    UNLIMITED. A bare number is minutes (as ``sacct TimelimitRaw`` and ``--time`` use it)."""
    value = text.strip()
    if value.upper() in _UNLIMITED:
        return None
    if value.isdigit():
        minutes = _number(value, "a time limit", digits=10)
    else:
        minutes = -(-parse_duration(value) // 60)  # round up: 90 s of limit is 2 minutes
    if minutes > MAX_TIME_LIMIT_MINUTES:
        raise UnexpectedOutput(f"a time limit of {minutes} minutes is beyond SLURM's")
    return minutes


_EXIT_PAIR = re.compile(r"([0-9]{1,3}):([0-9]{1,3})")
_EXIT_RAW = re.compile(r"-?[0-9]{1,10}")


def parse_exit_code(text: str) -> tuple[int, int, int]:
    """``(raw, status, signal)`` of ``"3:0"`` (scontrol/sacct) or of a raw wait status ``"768"``
    (squeue, ``-2`` while a job has none): raw is ``status << 8 | signal``."""
    value = text.strip()
    pair = _EXIT_PAIR.fullmatch(value)
    if pair is not None:
        status, signal = int(pair.group(1)), int(pair.group(2))
        if status > 255 or signal > 255:
            raise UnexpectedOutput(f"not an exit code: {_show(text)}")
        return (status << 8) | signal, status, signal
    if not _EXIT_RAW.fullmatch(value or "0"):
        raise UnexpectedOutput(f"not an exit code: {_show(text)}")
    raw = int(value or "0")
    if not -(2**31) <= raw < 2**32:
        raise UnexpectedOutput(f"not an exit code: {_show(text)}")
    return raw, (raw >> 8) & 0xFF, raw & 0x7F


_NO_TIME = frozenset({"", "UNKNOWN", "NONE", "N/A", "(NULL)"})
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})")


def parse_timestamp(text: str) -> dt.datetime | None:
    """A SLURM timestamp (``2026-11-24T16:50:38``, local time, no zone), None for
    Unknown/None/N/A."""
    value = text.strip()
    if value.upper() in _NO_TIME:
        return None
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise UnexpectedOutput(f"not a SLURM timestamp: {_show(text)}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        return dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise UnexpectedOutput(f"not a SLURM timestamp: {_show(text)}") from None


_MEMORY = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,6}))?([KMGTP]?)")
_KB_PER_UNIT = {"K": 1, "": 1024, "M": 1024, "G": 1024**2, "T": 1024**3, "P": 1024**4}
MAX_MEMORY_MB = 2**53
"""More than any node has (8 EiB): a larger figure is not a memory size."""


def parse_memory_mb(text: str) -> int:
    """MB of ``4096``, ``4096M``, ``4G``, ``1.5T`` (rounded down)."""
    match = _MEMORY.fullmatch(text.strip().upper())
    if match is None:
        raise UnexpectedOutput(f"not a memory size: {_show(text)}")
    whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
    kb: int = int(whole + fraction) * _KB_PER_UNIT[unit] // 10 ** len(fraction)
    mb = kb // 1024
    if mb > MAX_MEMORY_MB:
        raise UnexpectedOutput(f"a memory size of {mb} MB is absurd")
    return mb


_STATE = re.compile(r"[A-Z][A-Z_]{0,39}")


def _state(text: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``; ``RUNNING`` stays."""
    words = text.strip().split(maxsplit=1)
    state = words[0].upper() if words else ""
    if not _STATE.fullmatch(state):
        raise UnexpectedOutput(f"not a job state: {_show(text)}")
    return state


# --- record parsers -----------------------------------------------------------------------------
#
# squeue and sacct print each job as one line of |-separated fields. Only the last field, the job's
# name, is text a customer can set (``scontrol update JobName=`` while the job runs); every field
# before it is a number, a state, a time, a name only an administrator chooses, or SLURM's reason.
# Looked up by name, SLURM matched the name itself (ignoring case; sacct's database also trailing
# spaces), so it holds no | and no line break and each line splits in one way only. Looked up by
# id, the answer is one job: whatever follows the fixed fields is its name, however odd.


def _job(fields: Sequence[str], name: str) -> SlurmJob:
    """A job from the squeue fields of :data:`_JOB_FIELDS` and its name."""
    job_id, state, exit_code, user, used, limit, partition, start, end, reason = fields
    elapsed = parse_duration(used) if used.strip() else 0
    common = (state, exit_code, start, end, limit, user, partition, reason)
    return _record(_number(job_id, "JobID"), name, elapsed, *common)


def _accounted(fields: Sequence[str], name: str) -> SlurmJob:
    """A job from the sacct fields of :data:`_SACCT_FIELDS` and its name."""
    job_id, state, exit_code, start, end, elapsed, limit, user, partition, reason = fields
    seconds = _number(elapsed, "ElapsedRaw") if elapsed.strip() else 0
    common = (state, exit_code, start, end, limit, user, partition, reason)
    return _record(_number(job_id, "JobIDRaw"), name, seconds, *common)


def _record(
    slurm_job_id: int,
    name: str,
    elapsed_seconds: int,
    state: str,
    exit_code: str,
    start: str,
    end: str,
    limit: str,
    user: str,
    partition: str,
    reason: str,
) -> SlurmJob:
    raw, status, signal = parse_exit_code(exit_code)
    return SlurmJob(
        slurm_job_id=slurm_job_id,
        name=name,
        state=_state(state),
        exit_code_raw=raw,
        exit_status=status,
        exit_signal=signal,
        start=parse_timestamp(start),
        end=parse_timestamp(end),
        elapsed_seconds=elapsed_seconds,
        time_limit_minutes=parse_time_limit(limit),
        user=user.strip(),
        partition=partition.strip(),
        reason=reason.strip(),
    )


def _named(name: str, job_name: str, what: str) -> str:
    """``name`` as printed for a lookup of ``job_name``: SLURM matched it, so it is ``job_name``
    up to case (and, in sacct, trailing spaces); anything else is not an answer we understand."""
    if not name.isascii() or name.rstrip(" ").lower() != job_name.lower():
        raise UnexpectedOutput(f"{what} answered a job named {_show(name)} for {job_name!r}")
    return name


def _lines(stdout: str) -> list[str]:
    return [line for line in stdout.split("\n") if line.strip()]


def _unique(jobs: list[SlurmJob], what: str) -> list[SlurmJob]:
    ids = [job.slurm_job_id for job in jobs]
    if len(set(ids)) != len(ids):
        raise UnexpectedOutput(f"{what} listed a job id twice: {sorted(ids)}")
    return jobs


def _fields_and_name(cells: list[str], count: int, line: str, what: str) -> tuple[list[str], str]:
    """Split ``cells`` (a line split at every ``|``) into the ``count`` fixed fields (the last of
    them, Reason, may hold ``|``: only it can) and the name (the last cell)."""
    if len(cells) < count + 1:
        raise UnexpectedOutput(f"{what} line has {len(cells)} fields: {_show(line)}")
    fixed = [*cells[: count - 1], "|".join(cells[count - 1 : -1])]
    return fixed, cells[-1]


def parse_squeue(stdout: str, job_name: str) -> list[SlurmJob]:
    """The jobs of ``squeue_argv(paths, job_name)``, one per line."""
    jobs = []
    for line in _lines(stdout):
        if not line.endswith("|"):
            raise UnexpectedOutput(f"squeue line without its last separator: {_show(line)}")
        fixed, name = _fields_and_name(line[:-1].split("|"), len(_JOB_FIELDS), line, "squeue")
        jobs.append(_job(fixed, _named(name, job_name, "squeue")))
    return _unique(jobs, "squeue")


def _one_job(
    stdout: str,
    slurm_job_id: int,
    fields: int,
    trailer: str,
    what: str,
    build: Callable[[list[str], str], SlurmJob],
) -> SlurmJob | None:
    """The one job a lookup by id prints (None when it printed nothing), made by ``build`` from
    the ``fields`` fixed fields and the name: everything after them, ``|`` and line breaks
    included, up to the ``trailer`` and line break the command ends with."""
    if not stdout.strip():
        return None
    record = stdout.removesuffix("\n")
    if trailer and not record.endswith(trailer):
        raise UnexpectedOutput(f"{what} line without its last separator: {_show(record)}")
    cells = record[: len(record) - len(trailer)].split("|", fields)
    if len(cells) != fields + 1:
        raise UnexpectedOutput(f"{what} line has {len(cells)} fields: {_show(record)}")
    job = build(cells[:fields], cells[fields])
    if job.slurm_job_id != slurm_job_id:
        raise UnexpectedOutput(f"{what} answered job {job.slurm_job_id} for {slurm_job_id}")
    return job


def parse_squeue_job(stdout: str, slurm_job_id: int) -> SlurmJob | None:
    """The job of ``squeue_argv(paths, slurm_job_id=...)``; None when squeue printed none."""
    return _one_job(stdout, slurm_job_id, len(_JOB_FIELDS), "|", "squeue", _job)


_PART = re.compile(r"[0-9]+[_+.][0-9A-Za-z_+.\[\]-]*")
"""A JobIDRaw that is part of a job (array task, heterogeneous component, step): not ours."""


def parse_sacct(stdout: str, job_name: str) -> list[SlurmJob]:
    """The jobs of ``sacct_argv(paths, job_name=...)`` (``--parsable2``: no trailing
    separator)."""
    jobs = []
    for line in _lines(stdout):
        fixed, name = _fields_and_name(line.split("|"), len(_SACCT_FIELDS), line, "sacct")
        if _PART.fullmatch(fixed[0].strip()):
            continue
        jobs.append(_accounted(fixed, _named(name, job_name, "sacct")))
    return _unique(jobs, "sacct")


def parse_sacct_job(stdout: str, slurm_job_id: int) -> SlurmJob | None:
    """The job of ``sacct_argv(paths, slurm_job_id=...)``; None when sacct printed none."""
    return _one_job(stdout, slurm_job_id, len(_SACCT_FIELDS), "", "sacct", _accounted)


_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:]*)=")


def parse_scontrol_record(line: str) -> dict[str, str]:
    """The ``Key=value`` pairs of one ``scontrol show ... --oneliner`` line. A value runs up to
    the next `` Key=``, so values with spaces (``OS=Linux ...``) stay whole. scontrol prints
    values raw: a key seen twice means a value held text shaped like another field (a job
    comment ``x JobState=COMPLETED``), so the line cannot be read and UnexpectedOutput says so."""
    matches = list(_KEY.finditer(line))
    record: dict[str, str] = {}
    for index, match in enumerate(matches):
        key = match.group(1)
        if key in record:
            raise UnexpectedOutput(f"scontrol line names {key} twice: {_show(line)}")
        end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
        record[key] = line[match.end() : end].strip()
    return record


_GPU_TRES = re.compile(r"(?:^|,)gres/gpu=([^,]*)")
_GPU_GRES = re.compile(r"(?:^|,)gpu(?::[^:,()]+)?:([0-9]+)")


def _tres(cfg_tres: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in cfg_tres.split(",") if "=" in item)
    return {key: value for key, value in pairs}


def _node_gpus(record: dict[str, str], name: str) -> int:
    match = _GPU_TRES.search(record.get("CfgTRES", ""))
    if match is None:
        match = _GPU_GRES.search(record.get("Gres", ""))
    return _number(match.group(1), f"GPUs of node {name}", digits=9) if match else 0


def parse_nodes(stdout: str, partition: str) -> list[Node]:
    """The nodes of ``partition`` (exact name) from ``scontrol show nodes --oneliner``.

    CPUs come from ``CfgTRES`` ``cpu=`` (what SLURM schedules with; else ``CPUTot``), memory
    from ``RealMemory`` in MB (else ``CfgTRES`` ``mem=``, rounded to G), GPUs from ``CfgTRES``
    ``gres/gpu=`` or ``Gres=gpu[:type]:N``.
    A node does not respond when its state ends in ``*`` or carries ``NOT_RESPONDING``.
    """
    nodes = []
    for line in _lines(stdout):
        record = parse_scontrol_record(line)
        name = record.get("NodeName")
        if not name:
            raise UnexpectedOutput(f"scontrol line without NodeName: {_show(line)}")
        partitions = tuple(p for p in record.get("Partitions", "").split(",") if p)
        if partition not in partitions:
            continue
        tres = _tres(record.get("CfgTRES", ""))
        cpus_text = tres.get("cpu") or record.get("CPUTot", "")
        cpus = _number(cpus_text, f"CPUs of node {name}", digits=9)
        memory = record.get("RealMemory") or tres.get("mem", "")
        state = record.get("State", "").upper()
        responding = not state.endswith("*") and "NOT_RESPONDING" not in state
        nodes.append(
            Node(
                name=name,
                cpus=cpus,
                memory_mb=parse_memory_mb(memory),
                gpus=_node_gpus(record, name),
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
