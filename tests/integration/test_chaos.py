"""The chaos benchmark in a bounded form: 20 jobs of mixed fates, the supervisor killed with
``kill -9`` four times at random moments and restarted each time; every job must end on chain
exactly as SLURM ran it (status, exit code, billed minutes), once, never PANICKED.
See bench/chaos.py; bench/README.md records larger runs."""

from __future__ import annotations

from pathlib import Path

from bench.chaos import run
from testbed.env import TestbedEnv


def test_every_job_survives_kill_9_of_the_supervisor(
    testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    result = run(testbed_env, tmp_path, jobs=20, kills=4, seed=20261124, window=75.0)
    assert result.kills == 4 and result.restarts == 4
    assert result.problems == {}
    assert result.jobs == 20
