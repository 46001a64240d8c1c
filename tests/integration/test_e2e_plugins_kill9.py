"""With the operator's real C++ plugins, a report sent while the supervisor is dead is gone for
good: the completion plugin runs inside slurmctld, tries once, logs the failure and carries on
(no spool, no retry). The supervisor must recover each such end from SLURM's own record.

Three jobs run (two finish, one fails with exit code 3); the supervisor is killed with
``kill -9`` while they run, and stays dead until SLURM has ended all three, so every completion
report is lost. Started again on the same state folder, it settles each job on chain with
SLURM's status, duration and exit code (the reaper's recovery), each exactly once.
See bench/chaos.py (``--reporters plugins``) for the large run and its delays.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.grid import JobStatus
from bench.chaos import recovered_jobs
from testbed.env import TestbedEnv
from tests.integration.slurm_record import SlurmLedger
from tests.integration.supervisor_harness import (
    FINAL,
    Supervisor,
    chain_job,
    settlement_problems,
    submit,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.parametrize("reporters", ["plugins"], indirect=True)


def test_ends_reported_to_a_killed_supervisor_are_recovered_from_slurm(
    reporters: str, testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    env = testbed_env
    supervisor = Supervisor(env, tmp_path / "supervisor")
    supervisor.start(timeout=90)
    ledger = SlurmLedger()
    try:
        expected = {
            submit(env, tmp_path / "a", "#!/bin/bash\nsleep 25\n", customer=0): JobStatus.FINISHED,
            submit(env, tmp_path / "b", "#!/bin/bash\nsleep 25\nexit 3\n", customer=1): (
                JobStatus.FAILED
            ),
            submit(env, tmp_path / "c", "#!/bin/bash\nsleep 30\n", customer=2): JobStatus.FINISHED,
        }
        for job_id in expected:
            wait_status(env, job_id, {JobStatus.RUNNING}, 120)
        supervisor.kill()
        wait_for(
            "SLURM to end the three jobs (their reports go to a dead supervisor)",
            lambda: set(ledger.ends()) >= set(expected),
            timeout=120,
            every=1.0,
        )
        # Nothing else can tell the chain: every job is still RUNNING there.
        assert {chain_job(env, job_id).status for job_id in expected} == {JobStatus.RUNNING}
        supervisor.start(timeout=90)
        for job_id in expected:
            wait_status(env, job_id, FINAL, 120)
        assert settlement_problems(env, expected, ledger.ends()) == {}
        assert chain_job(env, next(iter(expected))).exit_code == 0
        recovered = recovered_jobs(supervisor.log.read_text(errors="replace"))
        assert recovered >= set(expected), "every end came from SLURM's record"
    finally:
        supervisor.stop()
