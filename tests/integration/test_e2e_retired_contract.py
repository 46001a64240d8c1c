"""A retired meta-scheduler, end to end through the real supervisor process on the testbed.

The grid retires a contract by setting ``enableRequestNewJob`` to false. The supervisor then
claims no new job, says so (an error in its log naming ``chain.metaschedulerAddress``, and
``status`` shows claiming off with the reason), and keeps serving the jobs it already has: a
running job's end is reported, a customer's cancellation of another is claimed and carried out.
A job meta-scheduled to it meanwhile stays in its queue, unclaimed, until the contract is
enabled again (the test always enables it again: the testbed's grid is shared).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from actors.grid import JobStatus
from testbed import market
from testbed.env import TestbedEnv
from testbed.grid import grid_addresses
from tests.integration.supervisor_harness import (
    REPO,
    Supervisor,
    chain_job,
    submit,
    wait_for,
    wait_status,
)

#: The chain actor reads enableRequestNewJob() every 30 s (ChainSettings.enable_check_interval).
NOTICE = 90.0


def status(supervisor: Supervisor, *extra: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "status", *extra, "--state-dir", str(supervisor.state)],
        capture_output=True,
        check=True,
        cwd=REPO,
        text=True,
    ).stdout


def chain_facts(supervisor: Supervisor) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads(status(supervisor, "--json"))["chain"]
    return facts


def enable(env: TestbedEnv, on: bool) -> None:
    market.set_enable_request_new_job(
        env.chain.rpc_url, grid_addresses(env), admin_key=env.admin.key, enable=on
    )


def test_a_retired_contract_stops_new_claims_and_keeps_serving_the_jobs_here(
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    env = testbed_env
    finishing = submit(env, tmp_path / "f", "#!/bin/bash\nsleep 40\n", customer=0)
    cancelled = submit(env, tmp_path / "c", "#!/bin/bash\nsleep 600\n", customer=1)
    later = submit(env, tmp_path / "l", "#!/bin/bash\nsleep 1\n", customer=2, schedule=False)
    wait_status(env, finishing, {JobStatus.RUNNING}, 120)
    wait_status(env, cancelled, {JobStatus.RUNNING}, 120)
    assert chain_job(env, later).status == JobStatus.PENDING
    try:
        enable(env, False)
        wait_for(
            "the supervisor to see the contract retired",
            lambda: chain_facts(supervisor).get("enable_request_new_job") is False,
            timeout=NOTICE,
        )
        log = supervisor.log.read_text(errors="replace")
        assert "enableRequestNewJob() is false: the grid has retired the meta-scheduler" in log
        assert "Set chain.metaschedulerAddress to the grid's current meta-scheduler" in log
        facts = chain_facts(supervisor)
        assert facts["claiming"] is False
        text = status(supervisor)
        assert "claiming=off" in text and "chain.metaschedulerAddress" in text

        # Queued for us now (the oracle may still meta-schedule), then the customer cancels a
        # running job: the cancellation is claimed and carried out, the queued job is left.
        market.meta_schedule(
            env.chain.rpc_url,
            grid_addresses(env),
            metascheduler_key=env.meta_scheduler.key,
            job_id=later,
            provider=env.provider.address,
        )
        market.cancel_job(
            env.chain.rpc_url,
            grid_addresses(env),
            customer_key=env.customer(1).key,
            job_id=cancelled,
        )
        wait_status(env, cancelled, {JobStatus.CANCELLED}, 120)
        wait_status(env, finishing, {JobStatus.FINISHED}, 120)  # its end is still reported
        assert chain_job(env, later).status == JobStatus.META_SCHEDULED  # not claimed
        assert supervisor.running
    finally:
        enable(env, True)
    wait_status(env, later, {JobStatus.FINISHED}, NOTICE + 120)  # claimed once enabled again
    assert chain_facts(supervisor)["claiming"] is True
    assert "enableRequestNewJob() is true again" in supervisor.log.read_text(errors="replace")
