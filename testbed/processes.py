"""Start, recognise, wait for and stop the testbed's long-running processes, by pid.

Every daemon is started in the foreground mode it offers (``slurmctld -D``, ``sshd -D``, ...) as
a direct child in its own session, so the pid we get is the pid that serves.  Each start writes a
record ``<pids>/<name>.json`` with the pid and the process start time (field 22 of
``/proc/<pid>/stat``): a record only counts as running when a live, non-zombie process with that
pid *and* that start time exists, so a pid recycled after a crash is never mistaken for ours and
never killed.

``stop`` sends SIGTERM to each recorded process group, waits up to a deadline, then SIGKILLs what
is left, and removes the records.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import msgspec


class TestbedError(Exception):
    """Anything that keeps the testbed from coming up or going down."""

    __test__ = False  # not a pytest test class, despite the name


class PartNotReady(TestbedError):
    """A part did not become ready in time; names the part and the log to read."""

    def __init__(self, part: str, log: Path, detail: str) -> None:
        super().__init__(f"{part} not ready: {detail} (see {log})")
        self.part = part
        self.log = log


class PortBusy(TestbedError):
    """A port the testbed needs is held by a process it did not start."""


class ProcessRecord(msgspec.Struct, frozen=True):
    """A process the testbed started."""

    name: str
    pid: int
    start_ticks: int
    argv: list[str]
    log: str


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_running(record: ProcessRecord) -> bool:
    """True when the recorded process still runs (same pid, same start time, not a zombie)."""
    _reap(record.pid)
    return _start_ticks(record.pid) == record.start_ticks


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _record_path(pids_dir: Path, name: str) -> Path:
    return pids_dir / f"{name}.json"


def read_record(pids_dir: Path, name: str) -> ProcessRecord | None:
    try:
        return msgspec.json.decode(_record_path(pids_dir, name).read_bytes(), type=ProcessRecord)
    except (OSError, msgspec.DecodeError):
        return None


def read_records(pids_dir: Path) -> list[ProcessRecord]:
    """Every record in ``pids_dir``, in start order."""
    if not pids_dir.is_dir():
        return []
    found = [read_record(pids_dir, p.stem) for p in pids_dir.glob("*.json")]
    records = [r for r in found if r is not None]
    return sorted(records, key=lambda r: r.start_ticks)


def start(
    name: str,
    argv: Sequence[str],
    *,
    pids_dir: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start ``argv`` detached (own session, stdin from /dev/null, output appended to ``log``)
    and record it as ``name``."""
    pids_dir.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start {name}\n".encode())
        out.flush()
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            user=user,
            cwd=cwd,
        )
    ticks = _start_ticks(child.pid)
    record = ProcessRecord(
        name=name, pid=child.pid, start_ticks=ticks or 0, argv=list(argv), log=str(log)
    )
    _record_path(pids_dir, name).write_bytes(msgspec.json.encode(record))
    # The Popen object is dropped on purpose: the process outlives us; is_running() reaps it.
    child.returncode = 0  # keep Popen.__del__ from warning that the child is still running
    return record


def forget(pids_dir: Path, name: str) -> None:
    _record_path(pids_dir, name).unlink(missing_ok=True)


def stop(pids_dir: Path, records: Iterable[ProcessRecord], *, deadline: float = 5.0) -> list[str]:
    """SIGTERM each running recorded process (its whole process group), SIGKILL whatever is
    still there after ``deadline`` seconds, and drop the records. Returns the names stopped."""
    records = list(records)
    running = [r for r in records if is_running(r)]
    for record in running:
        _signal(record.pid, signal.SIGTERM)
    end = time.monotonic() + deadline
    while time.monotonic() < end and any(is_running(r) for r in running):
        time.sleep(0.05)
    for record in running:
        if is_running(record):
            _signal(record.pid, signal.SIGKILL)
    end = time.monotonic() + 2.0
    while time.monotonic() < end and any(is_running(r) for r in running):
        time.sleep(0.05)
    for record in records:
        forget(pids_dir, record.name)
    return [r.name for r in running]


def _signal(pid: int, signum: signal.Signals) -> None:
    """Signal the process group we created for ``pid`` (children included), else the pid."""
    try:
        os.killpg(pid, signum)
    except OSError:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def wait_until(
    check: Callable[[], bool],
    *,
    part: str,
    log: Path,
    timeout: float,
    what: str,
    record: ProcessRecord | None = None,
) -> None:
    """Poll ``check`` until it is true; raise ``PartNotReady`` after ``timeout`` seconds, or at
    once when ``record``'s process has exited."""
    end = time.monotonic() + timeout
    delay = 0.02
    while True:
        if check():
            return
        if record is not None and not is_running(record):
            raise PartNotReady(part, log, f"process exited before {what}")
        if time.monotonic() > end:
            raise PartNotReady(part, log, f"no {what} after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_port_free(port: int, part: str) -> None:
    if port_open(port):
        raise PortBusy(
            f"port 127.0.0.1:{port} (for {part}) is held by a process the testbed did not start; "
            f"stop it first (e.g. `ss -ltnp 'sport = :{port}'`)"
        )


def run(argv: Sequence[str], *, timeout: float = 30.0, check: bool = True) -> str:
    """Run a short command and return its stdout; raise ``TestbedError`` with its stderr."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TestbedError(f"{argv[0]}: {exc}") from exc
    if check and done.returncode != 0:
        raise TestbedError(
            f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return done.stdout
