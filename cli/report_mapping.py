"""The reporter's pure half: which SLURM jobs are the grid's, the report each hook sends, and
whether a report (made here or read back from the spool) is one the reporter may send.

Nothing here does I/O; ``cli.report`` runs it from the hooks and the spool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import msgspec

__all__ = [
    "CANCELLED",
    "FAILED",
    "FINISHED",
    "OUT_OF_CREDITS",
    "RUNNING",
    "STATUS_NAMES",
    "Report",
    "endpoint_allowed",
    "is_job_name",
    "job_fields",
    "jobcomp_report",
    "parse_endpoint",
    "parse_slurm_id",
    "prolog_report",
    "raw_exit_code",
    "report_problem",
    "shown",
    "squeue_comment",
    "supervisor_endpoint",
    "wire_status",
]

MAX_SLURM_JOB_ID: Final = 0xFFFF_FFFD
"""SLURM job ids are 32-bit; 0xfffffffe and 0xffffffff are its NO_VAL and INFINITE."""
MAX_DURATION: Final = 0xFFFF_FFFF
MAX_EXIT_CODE: Final = 0xFFFF

# supervisor.v1alpha1.JobStatus values (protos/supervisor/v1alpha1/job.proto).
RUNNING: Final = 4
CANCELLED: Final = 6
FINISHED: Final = 7
FAILED: Final = 8
OUT_OF_CREDITS: Final = 9
STATUS_NAMES: Final = {
    RUNNING: "RUNNING",
    CANCELLED: "CANCELLED",
    FINISHED: "FINISHED",
    FAILED: "FAILED",
    OUT_OF_CREDITS: "OUT_OF_CREDITS",
}
HOOKS: Final = ("", "prolog", "jobcomp")

_JOB_NAME = re.compile(r"0x[0-9a-fA-F]{64}")
_DIGITS = re.compile(r"[0-9]{1,12}", re.ASCII)
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ENDPOINT = re.compile(
    rf"(?:\[(?P<ipv6>[0-9A-Fa-f:.]{{2,45}})\]|(?P<host>{_HOST_LABEL}(?:\.{_HOST_LABEL})*))"
    r":(?P<port>[0-9]{1,5})",
    re.ASCII,
)

# --- pure mapping ------------------------------------------------------------------------------


class Report(msgspec.Struct, frozen=True):
    """One ``SetJobStatus`` to send, and where to (also the spool file's content)."""

    endpoint: str
    name: str
    slurm_job_id: int
    status: int
    duration_seconds: int = 0
    exit_code: int = 0
    hook: str = ""

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, str(self.status))


def is_job_name(name: str) -> bool:
    """Whether a SLURM job name is an on-chain job id (``0x`` + 64 hex digits)."""
    return _JOB_NAME.fullmatch(name) is not None


def parse_slurm_id(text: str) -> int | None:
    """A SLURM job id from a hook's environment (ASCII decimal, 1..MAX_SLURM_JOB_ID)."""
    if _DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_SLURM_JOB_ID else None


def parse_endpoint(text: str) -> tuple[str, int] | None:
    """(host, port) of a ``host:port`` address (a DNS name, IPv4, or ``[IPv6]``), else None."""
    match = _ENDPOINT.fullmatch(text)
    if match is None or len(text) > 260:
        return None
    port = int(match["port"])
    if not 1 <= port <= 65535:
        return None
    if match["ipv6"] is not None:
        import ipaddress

        try:
            return str(ipaddress.IPv6Address(match["ipv6"])), port
        except ValueError:
            return None
    host: str = match["host"]
    return (host, port) if len(host) <= 253 else None


def supervisor_endpoint(comment: str | None) -> str | None:
    """The supervisor's address in a job comment, as the plugins read it: the comment must start
    with ``supervisor`` and the address is what follows ``"supervisor "``; None otherwise."""
    if comment is None or not comment.startswith("supervisor"):
        return None
    endpoint = comment[11:].strip()
    return endpoint or None


def wire_status(job_state: str) -> int:
    """The ``JobStatus`` the plugins report for a SLURM end state (``JOBSTATE``)."""
    words = job_state.split()
    base = words[0].upper() if words else ""
    if base == "FAILED":
        return FAILED
    if base == "TIMEOUT":
        return OUT_OF_CREDITS
    if base == "CANCELLED":
        return CANCELLED
    return FINISHED


def raw_exit_code(text: str) -> int:
    """SLURM's raw wait status from ``EXITCODE`` (``"exit:signal"``): ``"3:0"`` -> 768,
    ``"0:9"`` -> 9. Anything unreadable is 0."""
    exit_text, _, signal_text = text.strip().partition(":")
    parts = (exit_text or "0", signal_text or "0")
    if not all(_DIGITS.fullmatch(part) for part in parts):
        return 0
    code, signal = (int(part) for part in parts)
    return ((code & 0xFF) << 8) | (signal & 0xFF)


def duration_seconds(start: str, end: str) -> int:
    """``END - START`` in seconds; 0 for a job that never started or unreadable times."""
    if _DIGITS.fullmatch(start) is None or _DIGITS.fullmatch(end) is None:
        return 0
    began, ended = int(start), int(end)
    if began <= 0 or ended < began or ended - began > MAX_DURATION:
        return 0
    return ended - began


def _grid_job(
    env: Mapping[str, str], comment: str | None, id_key: str, name_key: str
) -> tuple[str, str, int] | None:
    """(supervisor address, job name, SLURM id) of a hook's job, or None if it is not ours."""
    name = env.get(name_key, "")
    endpoint = supervisor_endpoint(comment)
    slurm_id = parse_slurm_id(env.get(id_key, ""))
    if not is_job_name(name) or endpoint is None or slurm_id is None:
        return None
    return endpoint, name.lower(), slurm_id


def jobcomp_report(env: Mapping[str, str], comment: str | None) -> Report | None:
    """The report for a jobcomp/script run, or None if the job is not ours."""
    job = _grid_job(env, comment, "JOBID", "JOBNAME")
    if job is None:
        return None
    return Report(
        *job,
        status=wire_status(env.get("JOBSTATE", "")),
        duration_seconds=duration_seconds(env.get("START", "0"), env.get("END", "0")),
        exit_code=raw_exit_code(env.get("EXITCODE", "0:0")),
        hook="jobcomp",
    )


def prolog_report(env: Mapping[str, str], comment: str | None) -> Report | None:
    """The RUNNING report for a PrologSlurmctld run, or None if the job is not ours."""
    job = _grid_job(env, comment, "SLURM_JOB_ID", "SLURM_JOB_NAME")
    return None if job is None else Report(*job, status=RUNNING, hook="prolog")


def report_problem(report: Report) -> str | None:
    """Why ``report`` cannot be sent (it never could be: it is set aside); None if it can."""
    if parse_endpoint(report.endpoint) is None:
        return f"the supervisor address {shown(report.endpoint)} is not host:port"
    if not is_job_name(report.name):
        return f"the job name {shown(report.name)} is not 0x + 64 hex digits"
    if not 1 <= report.slurm_job_id <= MAX_SLURM_JOB_ID:
        return f"slurm_job_id {shown(report.slurm_job_id)} is out of range 1..{MAX_SLURM_JOB_ID}"
    if report.status not in STATUS_NAMES:
        return f"status {shown(report.status)} is not one the reporter sends"
    if not 0 <= report.duration_seconds <= MAX_DURATION:
        return f"duration_seconds {shown(report.duration_seconds)} is out of range"
    if not 0 <= report.exit_code <= MAX_EXIT_CODE:
        return f"exit_code {shown(report.exit_code)} is out of range 0..{MAX_EXIT_CODE}"
    if report.hook not in HOOKS:
        return f"hook {shown(report.hook)} is not prolog or jobcomp"
    return None


def endpoint_allowed(endpoint: str, allowed: tuple[str, ...]) -> bool:
    """Whether a report may go to ``endpoint``: any when no list is configured."""
    return not allowed or endpoint.strip().lower() in allowed


def squeue_comment(output: bytes) -> str | None:
    """The comment in ``squeue --noheader --format=%k`` output for one job: its only line;
    None when absent, ``(null)``, or not exactly one line."""
    text = output.decode("utf-8", "replace")
    text = text[:-1] if text.endswith("\n") else text
    if not text or "\n" in text:
        return None
    value = text.strip()
    return None if value in ("", "(null)") else value


def job_fields(mode: str, env: Mapping[str, str]) -> tuple[str, str]:
    """(SLURM job id, job name) from a hook's environment."""
    if mode == "jobcomp":
        return env.get("JOBID", ""), env.get("JOBNAME", "")
    return env.get("SLURM_JOB_ID", ""), env.get("SLURM_JOB_NAME", "")


def shown(value: object) -> str:
    """A value for a message: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
