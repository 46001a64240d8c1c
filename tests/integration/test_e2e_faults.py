"""Nothing is lost when parts fail: the supervisor, or one of the daemons it depends on.

- The supervisor is killed (``kill -9``) while its jobs run, the jobs end while it is down (the
  SLURM-side reporters cannot reach it and spool their reports), and it is started again later:
  every job ends on chain with SLURM's own end state, exit code and duration, from the reaper's
  recovery and from the spool (``report --flush``, as an operator or a timer runs it).
- anvil, sshd, slurmctld and the sbatch service are each stopped for a few seconds and started
  again while jobs are being claimed, fetched, submitted and reported: the supervisor process
  stays up (same pid), reconnects, and every job still ends right, never PANICKED, never run
  twice.

These tests stop testbed daemons: run them under the testbed lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from actors.grid import JobStatus
from testbed import faults
from testbed.env import TestbedEnv
from testbed.layout import Layout
from tests.integration.supervisor_harness import (
    FINAL,
    Supervisor,
    chain_job,
    completions,
    flush_spool,
    settlement_problems,
    spooled_reports,
    submit,
    wait_for,
)

#: (script, expected status) of the jobs each test runs.
BATCH = (
    ("#!/bin/bash\nsleep 8\n", JobStatus.FINISHED),
    ("#!/bin/bash\nsleep 6\nexit 3\n", JobStatus.FAILED),
    ("#!/bin/bash\nsleep 12\n", JobStatus.FINISHED),
    ("#!/bin/bash\ntrue\n", JobStatus.FINISHED),
)


def submit_batch(env: TestbedEnv, folder: Path) -> dict[str, JobStatus | None]:
    return {
        submit(env, folder / str(n), script, customer=n % 4): fate
        for n, (script, fate) in enumerate(BATCH)
    }


def wait_settled(env: TestbedEnv, jobs: dict[str, JobStatus | None], timeout: float) -> None:
    wait_for(
        "every job to end on chain",
        lambda: all(chain_job(env, job_id).status in FINAL for job_id in jobs),
        timeout=timeout,
        every=1.0,
    )
    assert settlement_problems(env, jobs) == {}


def run_until_down(
    supervisor: Supervisor, env: TestbedEnv, folder: Path, stop: Callable[[], object]
) -> dict[str, JobStatus | None]:
    """Submit the batch, stop the supervisor once SLURM has every job, and wait until they all
    ended in SLURM (reported to nobody: the reporters spool)."""
    jobs = submit_batch(env, folder)
    wait_for(
        "every job to be submitted to SLURM",
        lambda: all(chain_job(env, j).status in {JobStatus.RUNNING, *FINAL} for j in jobs),
        timeout=120,
    )
    stop()
    wait_for(
        "every job to end in SLURM",
        lambda: all(job_id in completions(env) for job_id in jobs),
        timeout=120,
    )
    assert any(chain_job(env, j).status not in FINAL for j in jobs), "nothing ended while down"
    assert spooled_reports(env), "the reporters spooled nothing while the supervisor was down"
    time.sleep(3)  # down a little longer
    return jobs


def log_since_last_start(supervisor: Supervisor) -> str:
    return supervisor.log.read_text().rsplit("--- start ", 1)[-1]


def test_jobs_ending_while_the_supervisor_is_down_are_recovered_from_slurm(
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    """kill -9, and the reporters' spooled reports are lost too (moved away): restarted, the
    reaper recovers every end from SLURM alone. The reports then arrive late: deduplicated,
    they change nothing."""
    jobs = run_until_down(supervisor, testbed_env, tmp_path, supervisor.kill)
    lost = tmp_path / "lost-reports"
    lost.mkdir()
    for report in spooled_reports(testbed_env):
        report.rename(lost / report.name)
    supervisor.start(timeout=60)
    wait_settled(testbed_env, jobs, timeout=60)
    assert "recovered Report(" in log_since_last_start(supervisor)
    spool = Path(testbed_env.testbed_dir) / "report-spool"
    for report in lost.iterdir():
        report.rename(spool / report.name)
    flushed = flush_spool(testbed_env)
    assert flushed.returncode == 0, flushed.stderr
    assert spooled_reports(testbed_env) == []
    time.sleep(4)
    assert settlement_problems(testbed_env, jobs) == {}


def test_jobs_ending_while_the_supervisor_is_down_are_delivered_from_the_spool(
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    """SIGTERM; restarted with the reaper held back, ``report --flush`` delivers every end."""
    jobs = run_until_down(supervisor, testbed_env, tmp_path, supervisor.stop)
    supervisor.environment["GRID_SUPERVISOR_REAPER_FIRST_SWEEP_AFTER"] = "10m"
    try:
        supervisor.start(timeout=60)
        flushed = flush_spool(testbed_env)
        assert flushed.returncode == 0, flushed.stderr
        assert spooled_reports(testbed_env) == []
        wait_settled(testbed_env, jobs, timeout=60)
        assert "recovered" not in log_since_last_start(supervisor)
    finally:
        supervisor.stop()
        del supervisor.environment["GRID_SUPERVISOR_REAPER_FIRST_SWEEP_AFTER"]


@pytest.mark.parametrize("part", faults.PARTS)
def test_a_daemon_restarted_under_load_loses_nothing(
    part: str,
    supervisor: Supervisor,
    testbed_env: TestbedEnv,
    testbed_layout: Layout,
    tmp_path: Path,
) -> None:
    env = testbed_env
    if not supervisor.running:
        supervisor.start(timeout=60)
    assert supervisor.process is not None
    pid = supervisor.process.pid
    jobs = submit_batch(env, tmp_path)
    faults.restart_part(testbed_layout, part, down_seconds=5.0)
    wait_settled(env, jobs, timeout=180)
    assert supervisor.running and supervisor.process.pid == pid
    if spooled_reports(env):  # a report spooled while the supervisor was busy: deliver it
        assert flush_spool(env).returncode == 0
