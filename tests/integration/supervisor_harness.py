"""Running the real supervisor process on the testbed, and reading what the chain and SLURM say.

Shared by the end-to-end tests and the chaos benchmark. :class:`Supervisor` is one
``grid-supervisor run --config ...`` process started from the testbed's own config with a state
folder of the caller's; :meth:`Supervisor.start` waits until it claims (approving the provider as
the grid's admin the first time), :meth:`Supervisor.kill` and :meth:`Supervisor.stop` end it,
and a stopped one can be started again on the same state folder (a restart).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from actors.grid import JobStatus
from testbed import market
from testbed.env import TestbedEnv
from testbed.grid import JobRequest, grid_addresses, submit_job

REPO = Path(__file__).resolve().parents[2]

#: The reaper sweeps every few seconds in tests (the default is a minute) and leaves an end to
#: its completion report for 5 s (the default is 10 s) before recovering it from SLURM.
TEST_ENVIRONMENT = {
    "GRID_SUPERVISOR_REAPER_INTERVAL": "3s",
    "GRID_SUPERVISOR_REAPER_REPORT_GRACE": "5s",
}

FINAL = {
    JobStatus.FINISHED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.OUT_OF_CREDITS,
    JobStatus.PANICKED,
}


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (subprocess.CalledProcessError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def supervisor_config(env: TestbedEnv, state: Path) -> dict[str, Any]:
    """The testbed's own supervisor config, with the given state folder."""
    config: dict[str, Any] = yaml.safe_load(Path(env.supervisor_config).read_text())
    config["state"]["folder"] = str(state)
    config["log"]["level"] = "info"
    return config


class Supervisor:
    """A ``grid-supervisor run`` process (see the module docstring)."""

    def __init__(
        self,
        env: TestbedEnv,
        work: Path,
        *,
        environment: Mapping[str, str] | None = None,
        config: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.env = env
        self.work = work
        self.state = work / "state"
        self.config_file = work / "config.yaml"
        self.log = work / "supervisor.log"
        work.mkdir(parents=True, exist_ok=True)
        settings = supervisor_config(env, self.state)
        if config is not None:
            config(settings)
        self.config_file.write_text(yaml.safe_dump(settings))
        self.environment = {**os.environ, **TEST_ENVIRONMENT, **(environment or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # --- life --------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> Supervisor:
        """Start the process and wait until it claims jobs."""
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "run", "--config", str(self.config_file)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environment,
            )
        self.starts += 1
        state = wait_for("the supervisor to register", self.registration_state, timeout=timeout)
        if state != "claiming":
            market.approve_provider(
                self.env.chain.rpc_url,
                grid_addresses(self.env),
                admin_key=self.env.admin.key,
                provider=self.env.provider.address,
            )
        wait_for("claiming", lambda: self.registration_state() == "claiming", timeout=timeout)
        return self

    def kill(self) -> None:
        """``kill -9``: no chance to save anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=30)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    # --- what it says ---------------------------------------------------------------------------

    def tree(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", "tree", "--json", "--state-dir", str(self.state)],
            capture_output=True,
            check=True,
            cwd=REPO,
        ).stdout
        tree: dict[str, Any] = json.loads(out)
        return tree

    def node(self, name: str) -> dict[str, Any] | None:
        def find(node: dict[str, Any]) -> dict[str, Any] | None:
            if node["name"] == name:
                return node
            for child in node.get("children", []):
                found = find(child)
                if found is not None:
                    return found
            return None

        return find(self.tree())

    def registration_state(self) -> str | None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"the supervisor exited with {self.process.returncode}:\n{self.log_tail(3000)}"
            )
        node = self.node("registration")
        if node is None:
            return None
        state = str(node.get("info", {}).get("state", ""))
        return state if state == "claiming" or state.startswith("waiting") else None


# --- the market and SLURM, as the tests see them ---------------------------------------


def chain_job(env: TestbedEnv, job_id: str) -> market.Job:
    return market.get_job(env.chain.rpc_url, grid_addresses(env), job_id)


def submit(env: TestbedEnv, folder: Path, script: str, **request: Any) -> str:
    """Store ``script``, request the job as a customer and meta-schedule it to our provider."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.sh"
    path.write_text(script)
    return submit_job(env, path.read_bytes(), JobRequest(**request))


def wait_status(env: TestbedEnv, job_id: str, statuses: set[JobStatus], timeout: float) -> Any:
    return wait_for(
        f"job {job_id} to reach {sorted(s.name for s in statuses)}",
        lambda: (job := chain_job(env, job_id)).status in statuses and job,
        timeout=timeout,
    )


def _squeue_named(job_id: str, fields: str) -> list[str]:
    """``squeue`` of every SLURM job named ``job_id`` in any state, in the format ``fields``."""
    return subprocess.run(
        ["squeue", "-h", "-t", "all", "-n", job_id, "-o", fields],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def slurm_ids(job_id: str) -> list[str]:
    """Every SLURM job named ``job_id`` that slurmctld still knows (any state)."""
    return _squeue_named(job_id, "%i")


def slurm_state(job_id: str) -> tuple[str, str] | None:
    """(state, reason) of the SLURM job named ``job_id``, None while SLURM has none."""
    listed = _squeue_named(job_id, "%T %r")
    return (listed[0], listed[1]) if len(listed) >= 2 else None


def scontrol(job_id: str) -> dict[str, str]:
    """The SLURM job named ``job_id`` (one-line scontrol form as a dict)."""
    ids = slurm_ids(job_id)
    assert len(ids) == 1, f"expected exactly one SLURM job named {job_id}, got {ids}"
    line = subprocess.run(
        ["scontrol", "show", "job", "-o", ids[0]], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", line))


def billed_minutes(env: TestbedEnv, job: market.Job) -> int:
    """The whole minutes the provider was paid for (``finalCost`` / credits per minute)."""
    return job.cost.final_cost // _credits_per_minute(env, job)


def locked_minutes(env: TestbedEnv, job: market.Job) -> int:
    """The whole minutes the job's locked credits (with its top-ups) buy: the most it is billed."""
    return job.cost.max_cost // _credits_per_minute(env, job)


def _credits_per_minute(env: TestbedEnv, job: market.Job) -> int:
    prices = market.get_provider(
        env.chain.rpc_url, grid_addresses(env), env.provider.address
    ).prices
    return market.credits_per_minute(job.definition, prices)


class Completion:
    """One ``hook=completion`` line of the testbed's hooks log: SLURM's own record of a job's
    end (state, exit code, start and end), independent of the supervisor."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.slurm_job_id = int(fields["job"])
        self.name = fields["name"]
        self.state = fields["state"]
        self.exit = fields["exit"]
        self.start = int(fields.get("start") or 0)
        self.end = int(fields.get("end") or 0)

    @property
    def duration_seconds(self) -> int:
        if self.start <= 0 or self.end < self.start:
            return 0
        return self.end - self.start

    @property
    def exit_code_raw(self) -> int:
        code, _, sig = self.exit.partition(":")
        return (int(code or 0) & 0xFF) << 8 | (int(sig or 0) & 0xFF)


def completions(env: TestbedEnv) -> dict[str, list[Completion]]:
    """The completion hook's lines by job name (a job that ran twice has two)."""
    found: dict[str, list[Completion]] = {}
    hooks = Path(env.log_dir) / "hooks.log"
    if not hooks.exists():
        return found
    for line in hooks.read_text(errors="replace").splitlines():
        if "hook=completion" not in line:
            continue
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "job" in fields and "name" in fields:
            found.setdefault(fields["name"].lower(), []).append(Completion(fields))
    return found


def flush_spool(env: TestbedEnv) -> subprocess.CompletedProcess[str]:
    """``grid-supervisor report --flush`` as SLURM's hooks would run it (their settings)."""
    settings = Path("/etc/slurm/grid-hooks.env")
    environ = dict(os.environ)
    if settings.exists():
        for line in settings.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip():
                environ[key.strip()] = value.strip()
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "report", "--flush"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environ,
        timeout=120,
    )


# --- checking what the chain ended up with --------------------------------------------------------

SLURM_END_TO_CHAIN = {
    "FAILED": JobStatus.FAILED,
    "TIMEOUT": JobStatus.OUT_OF_CREDITS,
    "CANCELLED": JobStatus.CANCELLED,
}


def chain_status_of(slurm_state: str) -> JobStatus:
    """The chain status the grid's completion plugin reports for a SLURM end state."""
    return SLURM_END_TO_CHAIN.get(slurm_state.split()[0].upper(), JobStatus.FINISHED)


def settlement_problems(
    env: TestbedEnv,
    expected: Mapping[str, JobStatus | None],
    ends: Mapping[str, list[Completion]] | None = None,
) -> dict[str, str]:
    """Each job whose chain record disagrees with SLURM's own record of its end, and why.
    SLURM's record is ``ends`` when given (e.g. read from slurmctld when the operator's real
    plugins report: ``tests.integration.slurm_record``), else the completion hook's lines.

    For every job: it ran exactly once in SLURM (one completion line, at most one SLURM job of
    that name); the chain holds the status the completion plugin maps SLURM's end state to (and
    the ``expected`` one, when given), never PANICKED; the exit code is SLURM's raw wait status
    (see :func:`same_exit_code`);
    the provider was paid for exactly the whole minutes SLURM says the job ran, or for all the
    minutes the locked credits buy when SLURM ran it longer (the chain caps the bill: a
    controller held up ends a job past its limit)."""
    ends = completions(env) if ends is None else ends
    problems: dict[str, str] = {}
    for job_id, fate in expected.items():
        job = chain_job(env, job_id)
        runs = ends.get(job_id, [])
        if len(runs) != 1 or len(slurm_ids(job_id)) > 1:
            problems[job_id] = f"ran {len(runs)} times in SLURM ({slurm_ids(job_id)})"
            continue
        (end,) = runs
        status = JobStatus(job.status)
        want = chain_status_of(end.state)
        minutes = billed_minutes(env, job)
        if status != want or (fate is not None and status != fate):
            problems[job_id] = f"chain {status.name}, SLURM {end.state}, expected {fate}"
        elif not same_exit_code(status, job.exit_code, end.exit_code_raw):
            problems[job_id] = f"exit code {job.exit_code} on chain, {end.exit_code_raw} in SLURM"
        elif minutes != min(end.duration_seconds // 60, locked_minutes(env, job)):
            problems[job_id] = f"billed {minutes} min, SLURM ran {end.duration_seconds} s"
    return problems


def same_exit_code(status: JobStatus, on_chain: int, hook: int) -> bool:
    """Whether the chain's exit code is SLURM's. For a job SLURM ended with a signal (cancelled,
    timed out) SLURM records the signal (``0:15``) only after the completion hook ran (``0:0``):
    a code recovered from SLURM later may carry it, so only the exit status is compared."""
    if status in (JobStatus.CANCELLED, JobStatus.OUT_OF_CREDITS):
        return on_chain >> 8 == hook >> 8
    return on_chain == hook


def spooled_reports(env: TestbedEnv) -> list[Path]:
    """The reports the SLURM-side reporters could not deliver yet."""
    spool = Path(env.testbed_dir) / "report-spool"
    return sorted(spool.glob("*.json")) if spool.is_dir() else []
