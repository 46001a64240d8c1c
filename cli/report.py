"""``grid-supervisor report``: tell the supervisor a job's state, from the SLURM side.

SLURM runs this (through the hook scripts in ``slurm/``) as root, for every job:

``report prolog``
    From ``PrologSlurmctld`` when a job is about to start: reports RUNNING, duration 0. Reads
    ``SLURM_JOB_ID`` and ``SLURM_JOB_NAME``.
``report jobcomp``
    From ``JobCompType=jobcomp/script`` when a job has ended. Reads ``JOBID``, ``JOBNAME``,
    ``JOBSTATE``, ``EXITCODE``, ``START`` and ``END``, and reports, as the grid's C++ plugins do:
    FAILED -> FAILED, TIMEOUT -> OUT_OF_CREDITS, CANCELLED -> CANCELLED, anything else ->
    FINISHED; duration = END - START in seconds; the exit code as SLURM's raw wait status
    (``EXITCODE=3:0`` -> 3 << 8 | 0 = 768).
``report --flush``
    Deliver the reports spooled earlier (see below); exit 1 if some are still undelivered.

Which jobs: only those named like an on-chain job (``0x`` + 64 hex digits) whose comment starts
with ``supervisor``; the supervisor's address is the rest of the comment after ``"supervisor "``
(the supervisor submits every job with ``--comment="supervisor <public address>"``). The hooks'
environment carries no comment, so it is read from ``SLURM_JOB_COMMENT`` or ``COMMENT`` when set,
else from ``scontrol show job -o <id>`` (only for jobs whose name already matched).

Transport: ``supervisor.v1alpha1.JobAPI/SetJobStatus`` over TLS *without* verifying the server's
certificate, like the plugins, unless a CA file is given (then it is verified). With a shared
secret file, the secret goes along as the ``x-grid-reporter-secret-bin`` metadata entry.

Any SLURM user can name a job ``0x...`` and give it the comment ``supervisor attacker:443``, and
this command runs as root: so the supervisors it may talk to can be listed
(``GRID_REPORT_SUPERVISORS``). With a list, reports naming another address are dropped, never
sent; and the shared secret is only ever sent to a listed address (with a secret and no list, the
secret is withheld and a warning logged).

Never lost, never failing the hook: when the supervisor cannot be reached, the report is written
to the spool folder (one JSON file per report, mode 0600, written to a temporary name and renamed,
so a crash never leaves half a file) and the command still exits 0. Every later run sends its own
report first, then tries the spool again (in arrival order, within a time budget; one unreachable
supervisor is not retried within a run), and
``report --flush`` (an operator, or a timer) does the same explicitly. Delivered files are
removed; a report the supervisor refuses as invalid moves to ``<spool>/rejected/``, one left
undelivered for longer than the maximum age to ``<spool>/expired/`` (by then the supervisor has
recovered the job's end from SLURM itself). The
supervisor deduplicates, so a report delivered twice does no harm.

Settings (flags, else environment variables, which the hook scripts export from
``/etc/slurm/grid-hooks.env``):

==================  ============================  ===========================================
flag                environment                   default
==================  ============================  ===========================================
``--spool-dir``     ``GRID_REPORT_SPOOL_DIR``     ``/var/spool/grid-supervisor/reports``
``--ca-file``       ``GRID_REPORT_CA_FILE``       none: the server certificate is not checked
``--plaintext``     ``GRID_REPORT_TLS=0``         TLS on
``--secret-file``   ``GRID_REPORT_SECRET_FILE``   none
``--supervisor``    ``GRID_REPORT_SUPERVISORS``   any address (comma-separated list)
``--timeout``       ``GRID_REPORT_TIMEOUT``       10 seconds per call
``--scontrol``      ``GRID_REPORT_SCONTROL``      ``scontrol`` (from PATH)
``--max-age-days``  ``GRID_REPORT_MAX_AGE_DAYS``  7 (older spooled reports: ``expired/``)
==================  ============================  ===========================================

Start-up is kept short (it runs in every job's prolog): gRPC and protobuf are imported only when
there is something to send.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec

if TYPE_CHECKING:
    import ssl

    from grpclib.client import Channel

__all__ = [
    "DEFAULT_SPOOL_DIR",
    "SECRET_METADATA_KEY",
    "Delivery",
    "Report",
    "ReporterOptions",
    "jobcomp_report",
    "main",
    "parse_scontrol_comment",
    "prolog_report",
    "raw_exit_code",
    "register",
    "supervisor_endpoint",
    "wire_status",
]

DEFAULT_SPOOL_DIR: Final = Path("/var/spool/grid-supervisor/reports")
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_MAX_AGE_DAYS: Final = 7.0
HOOK_FLUSH_BUDGET: Final = 15.0
"""Seconds a hook run spends at most on the spool before its own report."""

SECRET_METADATA_KEY: Final = "x-grid-reporter-secret-bin"
"""Must equal ``actors.callbacks.SECRET_METADATA_KEY`` (kept apart to keep start-up light)."""

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

_JOB_NAME = re.compile(r"0x[0-9a-fA-F]{64}")
_NEXT_FIELD = re.compile(r"\s+[A-Za-z][A-Za-z0-9_:/]*=")


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
    try:
        code = int(exit_text or "0")
        signal = int(signal_text or "0")
    except ValueError:
        return 0
    return ((code & 0xFF) << 8) | (signal & 0xFF)


def duration_seconds(start: str, end: str) -> int:
    """``END - START`` in seconds; 0 for a job that never started or unreadable times."""
    try:
        began, ended = int(start), int(end)
    except ValueError:
        return 0
    if began <= 0 or ended < began:
        return 0
    return ended - began


def jobcomp_report(env: Mapping[str, str], comment: str | None) -> Report | None:
    """The report for a jobcomp/script run, or None if the job is not ours."""
    name = env.get("JOBNAME", "")
    endpoint = supervisor_endpoint(comment)
    slurm_id = env.get("JOBID", "")
    if not is_job_name(name) or endpoint is None or not slurm_id.isdigit():
        return None
    return Report(
        endpoint=endpoint,
        name=name.lower(),
        slurm_job_id=int(slurm_id),
        status=wire_status(env.get("JOBSTATE", "")),
        duration_seconds=duration_seconds(env.get("START", "0"), env.get("END", "0")),
        exit_code=raw_exit_code(env.get("EXITCODE", "0:0")),
        hook="jobcomp",
    )


def prolog_report(env: Mapping[str, str], comment: str | None) -> Report | None:
    """The RUNNING report for a PrologSlurmctld run, or None if the job is not ours."""
    name = env.get("SLURM_JOB_NAME", "")
    endpoint = supervisor_endpoint(comment)
    slurm_id = env.get("SLURM_JOB_ID", "")
    if not is_job_name(name) or endpoint is None or not slurm_id.isdigit():
        return None
    return Report(
        endpoint=endpoint, name=name.lower(), slurm_job_id=int(slurm_id), status=RUNNING,
        hook="prolog",
    )  # fmt: skip


def endpoint_allowed(endpoint: str, allowed: tuple[str, ...]) -> bool:
    """Whether a report may go to ``endpoint``: any when no list is configured."""
    return not allowed or endpoint.strip().lower() in allowed


def parse_scontrol_comment(text: str) -> str | None:
    """The ``Comment=`` value in ``scontrol show job -o`` output (it may contain spaces: it
    runs up to the next ``Key=``); None when absent or ``(null)``."""
    match = re.search(r"(?:^|\s)Comment=", text)
    if match is None:
        return None
    rest = text[match.end() :]
    following = _NEXT_FIELD.search(rest)
    value = (rest[: following.start()] if following else rest).strip()
    return None if value in ("", "(null)") else value


def job_fields(mode: str, env: Mapping[str, str]) -> tuple[str, str]:
    """(SLURM job id, job name) from a hook's environment."""
    if mode == "jobcomp":
        return env.get("JOBID", ""), env.get("JOBNAME", "")
    return env.get("SLURM_JOB_ID", ""), env.get("SLURM_JOB_NAME", "")


# --- settings ----------------------------------------------------------------------------------


class ReporterOptions(msgspec.Struct, frozen=True):
    spool_dir: Path = DEFAULT_SPOOL_DIR
    tls: bool = True
    ca_file: Path | None = None
    secret_file: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    scontrol: str = "scontrol"
    max_age_days: float = DEFAULT_MAX_AGE_DAYS
    supervisors: tuple[str, ...] = ()
    """The supervisor addresses reports may go to (lowercase host:port); empty: any."""


def options_from(args: argparse.Namespace, env: Mapping[str, str]) -> ReporterOptions:
    """Flags first, then the ``GRID_REPORT_*`` environment, then the defaults."""

    def path(flag: Path | None, name: str) -> Path | None:
        if flag is not None:
            return flag
        value = env.get(name, "")
        return Path(value) if value else None

    def number(flag: float | None, name: str, default: float) -> float:
        if flag is not None:
            return flag
        try:
            return float(env.get(name, default))
        except ValueError:
            return default

    tls_env = env.get("GRID_REPORT_TLS", "1").strip().lower()
    return ReporterOptions(
        spool_dir=path(args.spool_dir, "GRID_REPORT_SPOOL_DIR") or DEFAULT_SPOOL_DIR,
        tls=not args.plaintext and tls_env not in ("0", "false", "no", "off"),
        ca_file=path(args.ca_file, "GRID_REPORT_CA_FILE"),
        secret_file=path(args.secret_file, "GRID_REPORT_SECRET_FILE"),
        timeout=number(args.timeout, "GRID_REPORT_TIMEOUT", DEFAULT_TIMEOUT),
        scontrol=args.scontrol or env.get("GRID_REPORT_SCONTROL") or "scontrol",
        max_age_days=number(args.max_age_days, "GRID_REPORT_MAX_AGE_DAYS", DEFAULT_MAX_AGE_DAYS),
        supervisors=tuple(
            item.strip().lower()
            for item in (args.supervisor or env.get("GRID_REPORT_SUPERVISORS", "").split(","))
            if item.strip()
        ),
    )


def read_secret(options: ReporterOptions) -> bytes | None:
    """The shared secret (whitespace stripped), or None when no file is configured."""
    if options.secret_file is None:
        return None
    return options.secret_file.read_bytes().strip() or None


def lookup_comment(slurm_id: str, env: Mapping[str, str], options: ReporterOptions) -> str | None:
    """The job's comment: from the environment if SLURM put it there, else from scontrol."""
    for name in ("SLURM_JOB_COMMENT", "COMMENT"):
        if env.get(name):
            return env[name]
    import subprocess

    try:
        done = subprocess.run(
            [options.scontrol, "show", "job", "-o", slurm_id],
            capture_output=True,
            text=True,
            timeout=options.timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_scontrol_comment(done.stdout) if done.returncode == 0 else None


# --- the spool ---------------------------------------------------------------------------------

_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(Report)


def spool(report: Report, folder: Path) -> Path:
    """Write ``report`` to ``folder`` atomically (0600; the folder 0700); return the file."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{report.slurm_job_id}-{report.status_name.lower()}.json"
    final = folder / name
    temporary = folder / f".{name}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, _ENCODER.encode(report) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, final)
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return final


def spooled_files(folder: Path) -> list[Path]:
    """The spooled reports, oldest first."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".json" and p.is_file())
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def flush_lock(folder: Path) -> Iterator[bool]:
    """Hold the spool's flush lock if nobody else does (yields False when busy)."""
    import fcntl

    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(folder / ".flush.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


# --- delivery ----------------------------------------------------------------------------------


class Delivery(enum.Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    """The supervisor refused it as invalid: it never will take it."""
    FAILED = "failed"
    """Not delivered now (unreachable, refused for now): keep it."""


_SKIPPED: Final = "unreachable earlier in this run"


class _Sender:
    """Sends reports over one connection per supervisor address (asyncio side)."""

    def __init__(self, options: ReporterOptions, secret: bytes | None) -> None:
        self._options = options
        self._secret = secret
        self._channels: dict[str, Channel] = {}
        self._context: ssl.SSLContext | None = self._ssl_context() if options.tls else None
        self.unreachable: set[str] = set()

    def _ssl_context(self) -> ssl.SSLContext:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self._options.ca_file is not None:
            context.load_verify_locations(str(self._options.ca_file))
        else:  # as the grid's plugins: TLS, but the server's certificate is not verified
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        return context

    def _channel(self, endpoint: str) -> Channel:
        from grpclib.client import Channel

        channel = self._channels.get(endpoint)
        if channel is None:
            host, _, port = endpoint.rpartition(":")
            host = host.removeprefix("[").removesuffix("]")
            channel = Channel(host, int(port), ssl=self._context)
            self._channels[endpoint] = channel
        return channel

    async def send(self, report: Report) -> tuple[Delivery, str]:
        """Deliver one report; (outcome, detail)."""

        import h2.exceptions
        from grpclib.const import Status
        from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

        from protos.supervisor.v1alpha1 import job_grpc, job_pb2

        if report.endpoint in self.unreachable:
            return Delivery.FAILED, _SKIPPED
        allowed = self._options.supervisors
        if not endpoint_allowed(report.endpoint, allowed):
            return Delivery.REJECTED, "supervisor address not in GRID_REPORT_SUPERVISORS"
        metadata: dict[str, Any] = {}
        if self._secret is not None and allowed:  # never to an address a job comment made up
            metadata[SECRET_METADATA_KEY] = self._secret
        request = job_pb2.SetJobStatusRequest(
            name=report.name,
            id=report.slurm_job_id,
            duration=report.duration_seconds,
            status=cast(Any, report.status),
            exit_code=report.exit_code,
        )
        try:
            stub = job_grpc.JobAPIStub(self._channel(report.endpoint))
            await stub.SetJobStatus(request, timeout=self._options.timeout, metadata=metadata)
        except GRPCError as exc:
            detail = f"{exc.status.name}: {exc.message or ''}".rstrip(": ")
            if exc.status is Status.INVALID_ARGUMENT:
                return Delivery.REJECTED, detail
            return Delivery.FAILED, detail
        except (
            OSError,  # refused, reset, timed out (TimeoutError), TLS failures
            EOFError,
            ProtocolError,
            StreamTerminatedError,
            h2.exceptions.H2Error,
            ValueError,
        ) as exc:
            self.unreachable.add(report.endpoint)
            return Delivery.FAILED, f"{type(exc).__name__}: {exc}".rstrip(": ")
        return Delivery.DELIVERED, ""

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


def _log(line: str) -> None:
    print(f"{int(time.time())} {line}", file=sys.stderr, flush=True)


def _describe(report: Report) -> str:
    return (
        f"report={report.hook or 'spool'} job={report.slurm_job_id} name={report.name} "
        f"status={report.status_name} duration={report.duration_seconds} "
        f"exit_code={report.exit_code} supervisor={report.endpoint}"
    )


async def _flush(sender: _Sender, options: ReporterOptions, budget: float | None) -> int:
    """Try every spooled report once (within ``budget`` seconds); how many remain. Reports older
    than ``options.max_age_days`` move to ``expired/`` (the supervisor recovers from SLURM)."""
    import asyncio

    folder = options.spool_dir
    oldest = time.time() - options.max_age_days * 86_400
    loop = asyncio.get_running_loop()
    deadline = None if budget is None else loop.time() + budget
    remaining = 0
    with flush_lock(folder) as mine:
        if not mine:
            return len(spooled_files(folder))
        for file in spooled_files(folder):
            if deadline is not None and loop.time() >= deadline:
                remaining += 1
                continue
            try:
                spooled_at = file.stat().st_mtime
                report = _DECODER.decode(file.read_bytes())
            except FileNotFoundError:
                continue
            except (OSError, msgspec.DecodeError) as exc:
                _set_aside(file, folder, "rejected")
                _log(f"report=spool file={file.name} outcome=rejected reason=unreadable ({exc})")
                continue
            if spooled_at < oldest:
                _set_aside(file, folder, "expired")
                _log(f"{_describe(report)} outcome=expired spooled={int(spooled_at)}")
                continue
            outcome, detail = await sender.send(report)
            if outcome is Delivery.DELIVERED:
                file.unlink(missing_ok=True)
            elif outcome is Delivery.REJECTED:
                _set_aside(file, folder, "rejected")
            else:
                remaining += 1
            if detail != _SKIPPED:
                _log(f"{_describe(report)} outcome=spool-{outcome.value} {detail}".rstrip())
    return remaining


def _set_aside(file: Path, folder: Path, why: str) -> None:
    """Move a spooled report out of the way, into ``<spool>/<why>/``."""
    aside = folder / why
    with contextlib.suppress(OSError):
        aside.mkdir(mode=0o700, exist_ok=True)
        os.replace(file, aside / file.name)


async def _deliver_or_spool(
    options: ReporterOptions, report: Report | None, *, budget: float | None
) -> int:
    """Send ``report`` first (spooling it if it cannot go: a fresh report must never wait
    behind old ones for dead supervisors), then retry the spool within ``budget``; how many
    reports remain spooled."""
    try:
        secret = read_secret(options)
    except OSError as exc:
        _log(f"report=config outcome=warning reason=cannot read the secret file ({exc.strerror})")
        secret = None
    if secret is not None and not options.supervisors:
        _log("report=config outcome=warning reason=secret withheld: no GRID_REPORT_SUPERVISORS")
    sender = _Sender(options, secret)
    try:
        if report is not None:
            outcome, detail = await sender.send(report)
            if outcome is Delivery.FAILED:
                spool(report, options.spool_dir)
                _log(f"{_describe(report)} outcome=spooled {detail}".rstrip())
            else:
                _log(f"{_describe(report)} outcome={outcome.value} {detail}".rstrip())
        # The report just spooled is skipped here: its supervisor was unreachable this run.
        return await _flush(sender, options, budget)
    finally:
        sender.close()


# --- the command -------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="report a job's state to the supervisor (run by the SLURM hooks)",
        description="Send a job's state from a SLURM hook to the supervisor named in the job's "
        "comment; spool it when the supervisor cannot be reached. Always exits 0 in a hook.",
    )
    parser.add_argument(
        "mode",
        nargs="?",
        choices=("jobcomp", "prolog"),
        help="jobcomp: the job ended (jobcomp/script env); prolog: it starts (PrologSlurmctld)",
    )
    parser.add_argument(
        "--flush", action="store_true", help="deliver the spooled reports (exit 1 if some remain)"
    )
    parser.add_argument("--spool-dir", type=Path, help="folder of undelivered reports")
    parser.add_argument("--ca-file", type=Path, help="verify the supervisor against this CA")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (h2c)")
    parser.add_argument("--secret-file", type=Path, help="file holding the reporters' secret")
    parser.add_argument(
        "--supervisor",
        action="append",
        help="a supervisor address (host:port) reports may go to; repeat for more",
    )
    parser.add_argument("--timeout", type=float, help="seconds per call (default 10)")
    parser.add_argument("--scontrol", help="path of scontrol")
    parser.add_argument(
        "--max-age-days", type=float, help="give up on spooled reports older than this (7)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.mode is None and not args.flush:
        print("grid-supervisor report: give jobcomp, prolog or --flush", file=sys.stderr)
        return 2
    env = os.environ
    if args.mode is None:
        return _run_flush(options_from(args, env))
    try:
        return _run_hook(args.mode, options_from(args, env), env)
    except Exception as exc:  # a hook must never fail the job; say why and move on
        _log(f"report={args.mode} outcome=error reason={type(exc).__name__}: {exc}")
        return 0


def _run_flush(options: ReporterOptions) -> int:
    import asyncio

    remaining = asyncio.run(_deliver_or_spool(options, None, budget=None))
    if remaining:
        _log(f"report=flush outcome=pending remaining={remaining}")
    return 1 if remaining else 0


def _run_hook(mode: str, options: ReporterOptions, env: Mapping[str, str]) -> int:
    slurm_id, name = job_fields(mode, env)
    report = None
    if is_job_name(name) and slurm_id.isdigit():
        comment = lookup_comment(slurm_id, env, options)
        report = jobcomp_report(env, comment) if mode == "jobcomp" else prolog_report(env, comment)
    if report is None and not spooled_files(options.spool_dir):
        return 0  # not ours, nothing waiting: the common fast path
    import asyncio

    asyncio.run(_deliver_or_spool(options, report, budget=HOOK_FLUSH_BUDGET))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cli.report MODE``: the same command without the other subcommands."""
    parser = argparse.ArgumentParser(prog="grid-supervisor report")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
