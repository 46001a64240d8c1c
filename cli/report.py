"""``grid-supervisor report``: tell the supervisor a job's state, from the SLURM side.

SLURM runs this (through the hook scripts in ``slurm/``) as its ``SlurmUser`` (root, usually), for
every job:

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
    Deliver the reports spooled earlier (see below).

Which jobs: only those named like an on-chain job (``0x`` + 64 hex digits) with a SLURM job id
(decimal, 1 to 4294967293) whose comment starts with ``supervisor``; the supervisor's address is
the rest of the comment after ``"supervisor "`` (the supervisor submits every job with
``--comment="supervisor <public address>"``), and must be ``host:port`` (a DNS name, an IPv4
address or a bracketed IPv6 address; port 1-65535): a report to anything else is dropped with a
log line. The hooks' environment carries no comment, so it is read from ``SLURM_JOB_COMMENT`` or
``COMMENT`` when set, else from ``squeue --format=%k`` (only for jobs whose name already matched):
that prints the comment alone, so text a customer puts in another field (a working folder named
``x Comment=supervisor evil:1``, say) cannot pass for it, as it could in ``scontrol show job``.

Transport: ``supervisor.v1alpha1.JobAPI/SetJobStatus`` over TLS *without* verifying the server's
certificate, like the plugins, unless a CA file is given (then it is verified). With a shared
secret file, the secret goes along as the ``x-grid-reporter-secret-bin`` metadata entry.

Any SLURM user can name a job ``0x...`` and give it the comment ``supervisor attacker:443``, and
this command runs as root: so the supervisors it may talk to can be listed
(``GRID_REPORT_SUPERVISORS``). With a list, reports naming another address are dropped, never
sent; and the shared secret is only ever sent to a listed address (with a secret and no list, the
secret is withheld and a warning logged). A list entry that is not ``host:port`` is kept (it
matches nothing: a typo never opens the list) and warned about.

Never lost, never failing the hook: when the supervisor cannot be reached, the report is written
to the spool folder (one JSON file per report, mode 0600, written to a temporary name and renamed,
so a crash never leaves half a file). Every later run sends its own report first, then tries the
spool again (in arrival order, within a time budget; one unreachable supervisor is not retried
within a run), and ``report --flush`` (an operator, or a timer) does the same explicitly.
Delivered files are removed; a report the supervisor refuses as invalid or for a job it does not
have (INVALID_ARGUMENT, NOT_FOUND; any other refusal is retried), and any spooled file
that is not a well-formed report (bad JSON, a wrong type, an id out of range, an address that is
not ``host:port``), moves to ``<spool>/rejected/`` with ``<name>.reason`` beside it (and a log
line), and every other report is still delivered; one left undelivered for longer than the
maximum age moves to ``<spool>/expired/`` (by then the supervisor has recovered the job's end from
SLURM itself). The supervisor deduplicates, so a report delivered twice does no harm.

The spool is trusted only if nobody else can write to it (``cli.report_spool``): it must be a real
folder (not a symbolic link) owned by the user running the reporter, not writable by group or
others, under parents owned by root or that user. Otherwise nothing in it is read or written, and
the message names the folder and the fix; so ``report --flush`` must run as the user the hooks run
as. Entries are opened with ``O_NOFOLLOW`` and read only when they are regular files owned by
that user: anything else (a file planted by another user, a link, a FIFO) goes to ``rejected/``,
never to the supervisor.

Exit codes: ``report prolog|jobcomp``: 0 when the report was delivered, spooled, refused (by the
supervisor or the address list) or is not the grid's; 1 when it could be neither delivered nor
spooled (its log line then carries it whole); the hook scripts never fail a job for either.
``report --flush``: 0 when the spool is empty, 1 when reports remain in it (undelivered, or
another flush holds the spool), 2 when the spool or the CA file cannot be used (nothing in the
spool is touched). 2 also for a usage error.

Settings (flags, else environment variables, which the hook scripts export from
``/etc/slurm/grid-hooks.env``); a bad value is warned about and the default used:

==================  ============================  ===========================================
flag                environment                   default
==================  ============================  ===========================================
``--spool-dir``     ``GRID_REPORT_SPOOL_DIR``     ``/var/spool/grid-supervisor/reports``
``--ca-file``       ``GRID_REPORT_CA_FILE``       none: the server certificate is not checked
``--plaintext``     ``GRID_REPORT_TLS=0``         TLS on
``--secret-file``   ``GRID_REPORT_SECRET_FILE``   none
``--supervisor``    ``GRID_REPORT_SUPERVISORS``   any address (comma-separated list)
``--timeout``       ``GRID_REPORT_TIMEOUT``       10 seconds per call (at most 120)
``--squeue``        ``GRID_REPORT_SQUEUE``        ``squeue`` (from PATH)
``--max-age-days``  ``GRID_REPORT_MAX_AGE_DAYS``  7 (older spooled reports: ``expired/``)
==================  ============================  ===========================================

Start-up is kept short (it runs in every job's prolog): gRPC and protobuf are imported only when
there is something to send.
"""

from __future__ import annotations

import argparse
import enum
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec

from cli.report_mapping import (
    CANCELLED,
    FAILED,
    FINISHED,
    OUT_OF_CREDITS,
    RUNNING,
    STATUS_NAMES,
    Report,
    endpoint_allowed,
    is_job_name,
    job_fields,
    jobcomp_report,
    parse_endpoint,
    parse_slurm_id,
    prolog_report,
    raw_exit_code,
    report_problem,
    shown,
    squeue_comment,
    supervisor_endpoint,
    wire_status,
)
from cli.report_spool import MAX_ENTRY_BYTES, EntryRefused, Spool, SpoolRefused

if TYPE_CHECKING:
    import ssl

    from grpclib.client import Channel

__all__ = [
    "CANCELLED",
    "DEFAULT_SPOOL_DIR",
    "FAILED",
    "FINISHED",
    "OUT_OF_CREDITS",
    "RUNNING",
    "SECRET_METADATA_KEY",
    "STATUS_NAMES",
    "Delivery",
    "Report",
    "ReporterOptions",
    "SettingProblem",
    "decode_report",
    "endpoint_allowed",
    "execute",
    "is_job_name",
    "jobcomp_report",
    "main",
    "options_from",
    "parse_endpoint",
    "parse_slurm_id",
    "prolog_report",
    "raw_exit_code",
    "register",
    "report_problem",
    "spool",
    "squeue_comment",
    "supervisor_endpoint",
    "wire_status",
]

DEFAULT_SPOOL_DIR: Final = Path("/var/spool/grid-supervisor/reports")
DEFAULT_TIMEOUT: Final = 10.0
MAX_TIMEOUT: Final = 120.0
DEFAULT_MAX_AGE_DAYS: Final = 7.0
MAX_AGE_DAYS_LIMIT: Final = 3650.0
HOOK_FLUSH_BUDGET: Final = 15.0
"""Seconds a hook run spends at most on the spool after its own report."""
MAX_SECRET_BYTES: Final = 4096
MAX_CA_FILE_BYTES: Final = 1 << 20

EXIT_OK: Final = 0
EXIT_PENDING: Final = 1
"""Hook: the report could be neither delivered nor spooled. Flush: reports remain."""
EXIT_UNUSABLE: Final = 2
"""Flush: the spool or the CA file cannot be used; also a usage error."""

SECRET_METADATA_KEY: Final = "x-grid-reporter-secret-bin"
"""Must equal ``actors.callbacks.SECRET_METADATA_KEY`` (kept apart to keep start-up light)."""

# --- settings ----------------------------------------------------------------------------------


class SettingProblem(Exception):
    """A setting the reporter cannot work with; the message names it."""


class ReporterOptions(msgspec.Struct, frozen=True):
    spool_dir: Path = DEFAULT_SPOOL_DIR
    tls: bool = True
    ca_file: Path | None = None
    secret_file: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    squeue: str = "squeue"
    max_age_days: float = DEFAULT_MAX_AGE_DAYS
    supervisors: tuple[str, ...] = ()
    """The supervisor addresses reports may go to (lowercase host:port); empty: any."""
    problems: tuple[str, ...] = ()
    """What was wrong with the settings (each replaced by its default); logged when used."""


_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("0", "false", "no", "off")


def options_from(args: argparse.Namespace, env: Mapping[str, str]) -> ReporterOptions:
    """Flags first, then the ``GRID_REPORT_*`` environment, then the defaults; a bad value is
    replaced by its default and said in ``problems``."""
    problems: list[str] = []

    def path(flag: Path | None, name: str) -> Path | None:
        if flag is not None:
            return flag if str(flag) else None
        value = env.get(name, "")
        return Path(value) if value else None

    def number(flag: float | None, option: str, name: str, default: float, most: float) -> float:
        if flag is not None:
            where, text = option, str(flag)
        elif env.get(name, "").strip():
            where, text = name, env[name]
        else:
            return default
        try:
            value = float(text.strip()) if text.isascii() else math.nan
        except ValueError:
            value = math.nan
        if math.isfinite(value) and 0 < value <= most:
            return value
        problems.append(
            f"{where}={shown(text)} is not a number above 0 and at most {most:g}: using {default:g}"
        )
        return default

    if env.get("GRID_REPORT_SCONTROL") and not env.get("GRID_REPORT_SQUEUE"):
        problems.append(
            "GRID_REPORT_SCONTROL is no longer read: a job's comment comes from squeue "
            "(set GRID_REPORT_SQUEUE to its path if it is not on PATH)"
        )
    tls_env = env.get("GRID_REPORT_TLS", "1").strip().lower()
    if tls_env not in (*_TRUE, *_FALSE, ""):
        problems.append(f"GRID_REPORT_TLS={shown(tls_env)} is not 1 or 0: TLS stays on")
    listed = args.supervisor or env.get("GRID_REPORT_SUPERVISORS", "").split(",")
    supervisors = tuple(item.strip().lower() for item in listed if item.strip())
    for item in supervisors:
        if parse_endpoint(item) is None:
            problems.append(
                f"supervisor {shown(item)} (--supervisor, GRID_REPORT_SUPERVISORS) is not "
                "host:port: it matches no report"
            )
    timeout = number(args.timeout, "--timeout", "GRID_REPORT_TIMEOUT", DEFAULT_TIMEOUT, MAX_TIMEOUT)
    max_age_days = number(
        args.max_age_days,
        "--max-age-days",
        "GRID_REPORT_MAX_AGE_DAYS",
        DEFAULT_MAX_AGE_DAYS,
        MAX_AGE_DAYS_LIMIT,
    )
    return ReporterOptions(
        spool_dir=path(args.spool_dir, "GRID_REPORT_SPOOL_DIR") or DEFAULT_SPOOL_DIR,
        tls=not args.plaintext and tls_env not in _FALSE,
        ca_file=path(args.ca_file, "GRID_REPORT_CA_FILE"),
        secret_file=path(args.secret_file, "GRID_REPORT_SECRET_FILE"),
        timeout=timeout,
        squeue=args.squeue or env.get("GRID_REPORT_SQUEUE") or "squeue",
        max_age_days=max_age_days,
        supervisors=supervisors,
        problems=tuple(problems),
    )


def load_secret(path: Path | None) -> tuple[bytes | None, str | None]:
    """(the shared secret, whitespace stripped, or None; a warning or None). A secret file that
    is not a regular file, empty or larger than 4 KiB is not used."""
    if path is None:
        return None, None
    where = f"the secret file {path} (GRID_REPORT_SECRET_FILE)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:
        return None, f"{where} cannot be read ({_reason(exc)}): secret withheld"
    try:
        status = os.fstat(fd)
        if not _is_regular(status.st_mode) or status.st_size > MAX_SECRET_BYTES:
            return None, f"{where} is not a regular file of at most 4 KiB: secret withheld"
        secret = os.read(fd, MAX_SECRET_BYTES).strip()
    except OSError as exc:
        return None, f"{where} cannot be read ({_reason(exc)}): secret withheld"
    finally:
        os.close(fd)
    if not secret:
        return None, f"{where} is empty: secret withheld"
    if status.st_mode & 0o077:
        return secret, f"{where} is readable by group or others: chmod 600 {path}"
    return secret, None


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def client_tls(options: ReporterOptions) -> ssl.SSLContext | None:
    """The TLS context for the supervisor (None without TLS); raises :class:`SettingProblem`
    for a CA file that cannot be loaded."""
    if not options.tls:
        return None
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca_file = options.ca_file
    if ca_file is not None:
        where = f"the CA file {ca_file} (--ca-file, GRID_REPORT_CA_FILE)"
        try:
            status = os.stat(ca_file)
            if not _is_regular(status.st_mode) or status.st_size > MAX_CA_FILE_BYTES:
                raise SettingProblem(f"{where} is not a regular file of at most 1 MiB")
            context.load_verify_locations(cafile=os.fspath(ca_file))
        except SettingProblem:
            raise
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise SettingProblem(f"{where} cannot be loaded: {_reason(exc)}") from None
    else:  # as the grid's plugins: TLS, but the server's certificate is not verified
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    return context


def lookup_comment(slurm_id: str, env: Mapping[str, str], options: ReporterOptions) -> str | None:
    """The job's comment: from the environment if SLURM put it there, else from squeue."""
    for name in ("SLURM_JOB_COMMENT", "COMMENT"):
        if env.get(name):
            return env[name]
    import subprocess

    command = [options.squeue, "--noheader", "--states=all", f"--jobs={slurm_id}", "--format=%k"]
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=options.timeout, check=False, stdin=None
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return squeue_comment(done.stdout) if done.returncode == 0 else None


# --- the spool ---------------------------------------------------------------------------------

_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(Report)


def spool_name(report: Report) -> str:
    """A spool file's name: sorts by spooling time; unique per process."""
    return (
        f"{time.time_ns():020d}-{os.getpid()}-{report.slurm_job_id}-"
        f"{report.status_name.lower()}.json"
    )


def spool(report: Report, folder: Path) -> Path:
    """Write ``report`` to the spool ``folder`` (made if missing) whole; return the file.
    Raises :class:`SpoolRefused` when the folder cannot be trusted."""
    with Spool.make(folder) as trusted:
        return folder / write_report(trusted, report)


def write_report(trusted: Spool, report: Report) -> str:
    """Spool ``report`` in an open spool; its file's name."""
    name = spool_name(report)
    trusted.write(name, _ENCODER.encode(report) + b"\n")
    return name


def decode_report(content: bytes) -> Report | str:
    """A spooled report, or why the content is not one the reporter may send."""
    if len(content) > MAX_ENTRY_BYTES:
        return f"larger than {MAX_ENTRY_BYTES} bytes"
    try:
        report = _DECODER.decode(content)
    except msgspec.DecodeError as exc:
        return f"not a spooled report ({exc})"
    return report_problem(report) or report


# --- delivery ----------------------------------------------------------------------------------


class Delivery(enum.Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    """The supervisor (or the address list) refused it for good: invalid, or a job it has not."""
    FAILED = "failed"
    """Not delivered now (unreachable, refused for now): keep it."""


_SKIPPED: Final = "unreachable earlier in this run"


class _Sender:
    """Sends reports over one connection per supervisor address (asyncio side)."""

    def __init__(self, options: ReporterOptions, secret: bytes | None) -> None:
        self._options = options
        self._secret = secret
        self._channels: dict[str, Channel] = {}
        self._context = client_tls(options)
        self.unreachable: set[str] = set()

    def _channel(self, endpoint: str, host: str, port: int) -> Channel:
        from grpclib.client import Channel

        channel = self._channels.get(endpoint)
        if channel is None:
            channel = Channel(host, port, ssl=self._context)
            self._channels[endpoint] = channel
        return channel

    async def send(self, report: Report, budget: float | None = None) -> tuple[Delivery, str]:
        """Deliver one report within ``budget`` seconds (default: the timeout setting)."""
        import asyncio

        import h2.exceptions
        from grpclib.const import Status
        from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

        from protos.supervisor.v1alpha1 import job_grpc, job_pb2

        endpoint = report.endpoint.strip().lower()
        if endpoint in self.unreachable:
            return Delivery.FAILED, _SKIPPED
        allowed = self._options.supervisors
        if not endpoint_allowed(endpoint, allowed):
            return Delivery.REJECTED, "supervisor address not in GRID_REPORT_SUPERVISORS"
        problem = report_problem(report)
        address = parse_endpoint(report.endpoint)
        if problem is not None or address is None:
            return Delivery.REJECTED, problem or "bad address"
        seconds = self._options.timeout if budget is None else max(0.1, budget)
        metadata: dict[str, Any] = {}
        if self._secret is not None and allowed:  # never to an address a job comment made up
            metadata[SECRET_METADATA_KEY] = self._secret
        try:
            request = job_pb2.SetJobStatusRequest(
                name=report.name,
                id=report.slurm_job_id,
                duration=report.duration_seconds,
                status=cast(Any, report.status),
                exit_code=report.exit_code,
            )
            stub = job_grpc.JobAPIStub(self._channel(endpoint, *address))
            async with asyncio.timeout(seconds + 1):  # a name lookup that hangs, say
                await stub.SetJobStatus(request, timeout=seconds, metadata=metadata)
        except GRPCError as exc:
            detail = f"{exc.status.name}: {exc.message or ''}".rstrip(": ")[:300]
            if exc.status in (Status.INVALID_ARGUMENT, Status.NOT_FOUND):  # never will take it
                return Delivery.REJECTED, detail
            return Delivery.FAILED, detail
        except (
            OSError,  # refused, reset, timed out (TimeoutError), TLS failures
            EOFError,
            ProtocolError,
            StreamTerminatedError,
            h2.exceptions.H2Error,
            ValueError,
            OverflowError,
        ) as exc:
            self.unreachable.add(endpoint)
            return Delivery.FAILED, f"{type(exc).__name__}: {exc}".rstrip(": ")[:300]
        except Exception as exc:  # anything else: keep the report, say why
            return Delivery.FAILED, f"unexpected {type(exc).__name__}: {exc}".rstrip(": ")[:300]
        return Delivery.DELIVERED, ""

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


def _printable(text: str) -> str:
    """``text`` with every unprintable character escaped (a job comment or a server's message
    can hold a newline: it must not start a forged log line)."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


def _log(line: str) -> None:
    print(f"{int(time.time())} {_printable(line)}", file=sys.stderr, flush=True)


def _describe(report: Report) -> str:
    return (
        f"report={report.hook or 'spool'} job={report.slurm_job_id} name={report.name} "
        f"status={report.status_name} duration={report.duration_seconds} "
        f"exit_code={report.exit_code} supervisor={report.endpoint}"
    )


async def _flush(
    sender: _Sender, trusted: Spool, options: ReporterOptions, budget: float | None
) -> int:
    """Try every spooled report once (within ``budget`` seconds); how many remain in the spool.
    A file that is not a well-formed report the reporter wrote moves to ``rejected/``, one
    older than ``options.max_age_days`` to ``expired/``; neither stops the others."""
    import asyncio

    oldest = time.time() - options.max_age_days * 86_400
    loop = asyncio.get_running_loop()
    deadline = None if budget is None else loop.time() + budget
    with trusted.lock() as mine:
        if not mine:
            left = len(trusted.names())
            if left:
                _log(f"report=flush outcome=busy reason=another flush runs remaining={left}")
            return left
        trusted.sweep_temporaries()
        remaining = 0
        for name in trusted.names():
            timeout = options.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - loop.time())
                if timeout <= 0:
                    remaining += 1
                    continue
            remaining += await _flush_one(sender, trusted, name, oldest, timeout)
    return remaining


async def _flush_one(
    sender: _Sender, trusted: Spool, name: str, oldest: float, budget: float
) -> int:
    """Deliver, set aside or keep one spooled file; 1 if it stays in the spool."""
    try:
        content, spooled_at = trusted.read(name)
    except FileNotFoundError:
        return 0
    except EntryRefused as exc:
        return _set_aside(trusted, name, "rejected", str(exc))
    except (OSError, ValueError) as exc:
        _log(f"report=spool file={name} outcome=kept reason=cannot be read ({_reason(exc)})")
        return 1
    decoded = decode_report(content)
    if isinstance(decoded, str):
        return _set_aside(trusted, name, "rejected", decoded)
    report = decoded
    if spooled_at < oldest:
        return _set_aside(
            trusted, name, "expired", f"spooled at {int(spooled_at)}, undelivered", report
        )
    outcome, detail = await sender.send(report, budget)
    if outcome is Delivery.DELIVERED:
        trusted.remove(name)
    elif outcome is Delivery.REJECTED:
        return _set_aside(trusted, name, "rejected", f"refused: {detail}", report)
    if detail != _SKIPPED:
        _log(f"{_describe(report)} outcome=spool-{outcome.value} {detail}".rstrip())
    return 1 if outcome is Delivery.FAILED else 0


def _set_aside(
    trusted: Spool, name: str, why: str, reason: str, report: Report | None = None
) -> int:
    """Move a spooled file into ``<spool>/<why>/`` with its reason; 1 if it had to stay."""
    what = _describe(report) if report is not None else "report=spool"
    problem = trusted.set_aside(name, why, reason if why == "rejected" else None)
    if problem is None:
        _log(f"{what} file={name} outcome={why} reason={reason}")
        return 0
    _log(f"{what} file={name} outcome=kept reason={reason}; not set aside: {problem}")
    return 1


# --- the command -------------------------------------------------------------------------------

_EPILOG: Final = """\
exit codes:
  prolog, jobcomp  0: delivered, spooled, refused or not a grid job; 1: neither delivered nor
                   spooled (the log line carries the report); the hook scripts always exit 0
  --flush          0: the spool is empty; 1: reports remain; 2: the spool or the CA file
                   cannot be used (nothing touched)

The spool folder must be a real folder owned by the user running the reporter (the hooks' user:
run --flush as that user) and writable by nobody else; otherwise it is not used. Spooled files
that are not well-formed reports move to <spool>/rejected/ with a .reason file beside them.
Settings also come from GRID_REPORT_SPOOL_DIR, _CA_FILE, _TLS=0, _SECRET_FILE, _SUPERVISORS,
_TIMEOUT, _SQUEUE, _MAX_AGE_DAYS; a bad value is warned about and its default used.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="report a job's state to the supervisor (run by the SLURM hooks)",
        description="Send a job's state from a SLURM hook to the supervisor named in the job's\n"
        "comment; spool it when the supervisor cannot be reached.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "mode",
        nargs="?",
        choices=("jobcomp", "prolog"),
        help="jobcomp: the job ended (jobcomp/script env); prolog: it starts (PrologSlurmctld)",
    )
    parser.add_argument(
        "--flush", action="store_true", help="deliver the spooled reports (see the exit codes)"
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
    parser.add_argument(
        "--timeout", type=float, help=f"seconds per call (default 10, at most {MAX_TIMEOUT:g})"
    )
    parser.add_argument("--squeue", help="path of squeue (reads a job's comment)")
    parser.add_argument(
        "--max-age-days", type=float, help="give up on spooled reports older than this (7)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    if args.mode is None and not args.flush:
        print("grid-supervisor report: give jobcomp, prolog or --flush", file=sys.stderr)
        return EXIT_UNUSABLE
    environment = os.environ if env is None else env
    options = options_from(args, environment)
    if args.mode is None:
        try:
            return _run_flush(options)
        except Exception as exc:  # no traceback: say why; nothing was removed undelivered
            _log(f"report=flush outcome=error reason={type(exc).__name__}: {exc}")
            return EXIT_PENDING
    hook = _Hook(args.mode, options, environment)
    try:
        return hook.run()
    except Exception as exc:  # a hook must never fail the job; keep the report, say why
        return hook.rescue(exc)


def _run_flush(options: ReporterOptions) -> int:
    import asyncio

    for problem in options.problems:
        _log(f"report=flush outcome=warning reason={problem}")
    try:
        trusted = Spool.open(options.spool_dir)
    except SpoolRefused as exc:
        _log(f"report=flush outcome=error reason=spool not used: {exc}")
        return EXIT_UNUSABLE
    if trusted is None:
        return EXIT_OK  # never made: nothing was ever spooled there
    with trusted:
        secret = _secret(options, "flush")
        try:
            sender = _Sender(options, secret)
        except SettingProblem as exc:
            left = len(trusted.names())
            _log(f"report=flush outcome=error reason={exc} remaining={left}")
            return EXIT_UNUSABLE

        async def flush() -> int:
            try:
                return await _flush(sender, trusted, options, None)
            finally:
                sender.close()

        remaining = asyncio.run(flush())
    if remaining:
        _log(f"report=flush outcome=pending remaining={remaining}")
    return EXIT_PENDING if remaining else EXIT_OK


def _secret(options: ReporterOptions, mode: str) -> bytes | None:
    secret, warning = load_secret(options.secret_file)
    if warning is not None:
        _log(f"report={mode} outcome=warning reason={warning}")
    if secret is not None and not options.supervisors:
        _log(f"report={mode} outcome=warning reason=secret withheld: no GRID_REPORT_SUPERVISORS")
    return secret


class _Hook:
    """One hook run: its own report first (sent, else spooled), then the spool."""

    def __init__(self, mode: str, options: ReporterOptions, env: Mapping[str, str]) -> None:
        self.mode = mode
        self.options = options
        self.env = env
        self.report: Report | None = None
        self.settled = False
        """The report was delivered, refused or spooled: nothing more to do for it."""

    def run(self) -> int:
        slurm_id, name = job_fields(self.mode, self.env)
        if is_job_name(name) and parse_slurm_id(slurm_id) is not None:
            comment = lookup_comment(slurm_id, self.env, self.options)
            build = jobcomp_report if self.mode == "jobcomp" else prolog_report
            report = build(self.env, comment)
            problem = None if report is None else report_problem(report)
            if report is not None and problem is not None:
                _log(f"{_describe(report)} outcome=dropped reason={problem}")
                report = None
            self.report = report
        try:
            trusted = Spool.open(self.options.spool_dir)
            refused = None
        except SpoolRefused as exc:
            trusted, refused = None, str(exc)
        if self.report is None:
            if refused is not None:
                _log(f"report={self.mode} outcome=warning reason=spool not used: {refused}")
            if trusted is None or not trusted.names():
                if trusted is not None:
                    trusted.close()
                return EXIT_OK  # not ours, nothing waiting: the common fast path
        import asyncio

        try:
            return asyncio.run(self._deliver(trusted, refused))
        finally:
            if trusted is not None:
                trusted.close()

    async def _deliver(self, trusted: Spool | None, refused: str | None) -> int:
        for problem in self.options.problems:
            _log(f"report={self.mode} outcome=warning reason={problem}")
        if refused is not None and self.report is not None:
            _log(f"report={self.mode} outcome=warning reason=spool not used: {refused}")
        secret = _secret(self.options, self.mode)
        try:
            sender: _Sender | None = _Sender(self.options, secret)
        except SettingProblem as exc:
            _log(f"report={self.mode} outcome=warning reason={exc}")
            sender = None
        try:
            code = EXIT_OK
            if self.report is not None:
                if sender is None:
                    outcome, detail = Delivery.FAILED, "not sent: the TLS settings are unusable"
                else:
                    outcome, detail = await sender.send(self.report)
                if outcome is Delivery.FAILED:
                    code = self._spool(detail, trusted, refused)
                else:
                    self.settled = True
                    _log(f"{_describe(self.report)} outcome={outcome.value} {detail}".rstrip())
            if trusted is not None and sender is not None:
                # The report just spooled is skipped: its supervisor was unreachable this run.
                await _flush(sender, trusted, self.options, HOOK_FLUSH_BUDGET)
            return code
        finally:
            if sender is not None:
                sender.close()

    def _spool(self, detail: str, trusted: Spool | None, refused: str | None) -> int:
        """Spool the report (in ``trusted``, else in the spool folder, made if missing); the
        exit code (1 when it could not be)."""
        assert self.report is not None
        if refused is None:
            try:
                if trusted is not None:
                    write_report(trusted, self.report)
                else:
                    spool(self.report, self.options.spool_dir)
            except (SpoolRefused, OSError, ValueError) as exc:
                refused = str(exc) if isinstance(exc, SpoolRefused) else _reason(exc)
        described = _describe(self.report)
        if refused is None:
            self.settled = True
            _log(f"{described} outcome=spooled {detail}".rstrip())
            return EXIT_OK
        _log(f"{described} outcome=lost reason=not delivered ({detail}) and not spooled: {refused}")
        self.settled = True  # said whole in the log line; nothing more can be done for it
        return EXIT_PENDING

    def rescue(self, exc: Exception) -> int:
        """After an unexpected error: spool the report if it was not yet settled."""
        _log(f"report={self.mode} outcome=error reason={type(exc).__name__}: {exc}")
        if self.report is None or self.settled:
            return EXIT_OK
        try:
            return self._spool(type(exc).__name__, None, None)
        except Exception:
            return EXIT_PENDING


def execute(argv: list[str], env: Mapping[str, str]) -> int:
    """``grid-supervisor report ARGV`` with ``env`` as its environment (tests, fuzzing)."""
    parser = argparse.ArgumentParser(prog="grid-supervisor report")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *argv])
    code: int = args.handler(args, env)
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m cli.report MODE``: the same command without the other subcommands."""
    return execute(sys.argv[1:] if argv is None else argv, os.environ)


if __name__ == "__main__":
    sys.exit(main())
