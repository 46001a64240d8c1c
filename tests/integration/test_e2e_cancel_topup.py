"""Cancellation, top-up and a job the chain settles without us, end to end through the real
supervisor process on the testbed.

The three jobs are submitted together by a module fixture (they run side by side in SLURM), and
each test follows one of them:

- the customer cancels a running job (``cancelJob``): the supervisor claims the cancellation,
  ``scancel``s the job, and the chain ends CANCELLED billed for the minutes it really ran (what
  SLURM's completion hook recorded);
- the customer tops up a job whose credits buy one minute (``topUpJob``): the supervisor raises
  the SLURM time limit as the admin (SLURM shows the new limit) and the job, which sleeps longer
  than its first limit, ends FINISHED instead of OUT_OF_CREDITS;
- the meta-scheduler oracle panics a running job (``panicJob``): the supervisor finds the job
  cold on chain and ``scancel``s what still runs in SLURM.

The jobs run once with each kind of SLURM-side reporter (``reporters``: this project's hooks,
then the operator's real C++ plugins); SLURM's own record of each end is the completion hook's
line or, with the plugins, slurmctld's (``tests.integration.slurm_record``).
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from actors.grid import JobStatus
from testbed import market
from testbed.env import TestbedEnv
from testbed.grid import grid_addresses
from tests.integration.slurm_record import slurm_ends
from tests.integration.supervisor_harness import (
    FINAL,
    Supervisor,
    billed_minutes,
    scontrol,
    submit,
    wait_for,
    wait_status,
)

CREDIT = 10**18


class Jobs(msgspec.Struct, frozen=True):
    reporters: str
    cancelled: str
    topped_up: str
    panicked: str


@pytest.fixture(scope="module")
def jobs(
    supervisor: Supervisor,
    testbed_env: TestbedEnv,
    reporters: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Jobs:
    folder = tmp_path_factory.mktemp("jobs")
    long = "#!/bin/bash\nsleep 600\n"
    return Jobs(
        reporters=reporters,
        cancelled=submit(testbed_env, folder / "c", long, credits=100, customer=0),
        # one credit buys one minute at the testbed's prices: SLURM's first limit is 1 minute
        topped_up=submit(testbed_env, folder / "t", "#!/bin/bash\nsleep 100\n", credits=1,
                         customer=1),
        panicked=submit(testbed_env, folder / "p", long, credits=100, customer=2),
    )  # fmt: skip


def test_cancelled_job_ends_cancelled_billed_for_the_time_it_ran(
    jobs: Jobs, testbed_env: TestbedEnv
) -> None:
    env = testbed_env
    wait_status(env, jobs.cancelled, {JobStatus.RUNNING}, 120)
    time.sleep(62)  # at least one whole minute to bill
    customer = env.customer(0)
    market.cancel_job(
        env.chain.rpc_url, grid_addresses(env), customer_key=customer.key, job_id=jobs.cancelled
    )
    ended = wait_status(env, jobs.cancelled, FINAL, 90)
    assert ended.status == JobStatus.CANCELLED
    (completion,) = slurm_ends(env, jobs.reporters)[jobs.cancelled]
    assert completion.state == "CANCELLED"
    assert completion.duration_seconds >= 60
    assert billed_minutes(env, ended) == completion.duration_seconds // 60


def test_topped_up_job_gets_a_longer_limit_and_finishes(
    jobs: Jobs, testbed_env: TestbedEnv
) -> None:
    env = testbed_env
    wait_status(env, jobs.topped_up, {JobStatus.RUNNING}, 120)
    assert scontrol(jobs.topped_up)["TimeLimit"] == "00:01:00"
    customer = env.customer(1)
    market.top_up_job(
        env.chain.rpc_url,
        grid_addresses(env),
        customer_key=customer.key,
        job_id=jobs.topped_up,
        amount=3 * CREDIT,
    )
    wait_for(
        "SLURM to show the raised time limit",
        lambda: scontrol(jobs.topped_up)["TimeLimit"] == "00:04:00",
        timeout=30,
    )
    ended = wait_status(env, jobs.topped_up, FINAL, 180)
    assert ended.status == JobStatus.FINISHED  # not OUT_OF_CREDITS: the top-up bought the time
    (completion,) = slurm_ends(env, jobs.reporters)[jobs.topped_up]
    assert completion.state == "COMPLETED" and completion.duration_seconds >= 100
    assert billed_minutes(env, ended) == completion.duration_seconds // 60


def test_a_job_panicked_by_the_oracle_is_cancelled_in_slurm(
    jobs: Jobs, testbed_env: TestbedEnv, supervisor: Supervisor
) -> None:
    env = testbed_env
    wait_status(env, jobs.panicked, {JobStatus.RUNNING}, 120)
    assert scontrol(jobs.panicked)["JobState"] == "RUNNING"
    market.panic_job(
        env.chain.rpc_url,
        grid_addresses(env),
        metascheduler_key=env.meta_scheduler.key,
        job_id=jobs.panicked,
        last_error="the oracle lost patience",
    )
    wait_for(
        "the supervisor to cancel the panicked job in SLURM",
        lambda: scontrol(jobs.panicked)["JobState"] == "CANCELLED",
        timeout=60,
    )
    after = wait_status(env, jobs.panicked, FINAL, 10)
    assert after.status == JobStatus.PANICKED and after.last_error == "the oracle lost patience"
    assert "settled on chain as PANICKED" in Path(supervisor.log).read_text()
