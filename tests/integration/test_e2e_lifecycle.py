"""End to end, through the real supervisor process on the real testbed.

A customer submits jobs with the testbed (what a customer and the market do); the supervisor,
started from a config file, registers (the test approves it as the grid's admin), claims the
jobs, fetches their scripts, submits them to SLURM as the customer's UNIX user, and the chain ends
up with each job's final status, duration and exit code, reported by the SLURM-side reporters.

The tests that depend on the reporters (a job that finishes, fails with its exit code, spans
three nodes, outlives its time limit) run once with each kind (``reporters``: this project's
hooks, then the operator's real C++ plugins); the others (nothing reaches SLURM, quoting) once.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from actors.grid import JobStatus
from testbed import market
from testbed.env import TestbedEnv
from testbed.grid import grid_addresses
from tests.integration.slurm_record import block_number, status_sends, status_transitions
from tests.integration.supervisor_harness import (
    FINAL,
    Supervisor,
    chain_job,
    scontrol,
    slurm_ids,
    submit,
    wait_status,
)


def test_job_runs_as_the_customer_and_finishes_on_chain(
    supervisor: Supervisor, testbed_env: TestbedEnv, reporters: str, tmp_path: Path
) -> None:
    customer = testbed_env.customer(0)
    job_id = submit(
        testbed_env,
        tmp_path,
        '#!/bin/bash\necho "hello from $(id -un)"\nsleep 62\n',
        cpus_per_task=2,
        mem_per_cpu=200,
        ntasks=1,
        credits=100,
        customer=0,
    )
    running = wait_status(testbed_env, job_id, {JobStatus.RUNNING, JobStatus.FINISHED}, 120)
    info = scontrol(job_id)
    assert info["UserId"].startswith(customer.unix_user + "(")
    assert info["JobName"] == job_id
    assert info["Partition"] == testbed_env.slurm.partition
    assert info["NumCPUs"] == "2"
    assert info["MinMemoryCPU"] == "200M"
    # The time limit comes from the locked credits and the provider's prices.
    on_chain = chain_job(testbed_env, job_id)
    prices = market.get_provider(
        testbed_env.chain.rpc_url, grid_addresses(testbed_env), testbed_env.provider.address
    ).prices
    minutes = on_chain.cost.max_cost // market.credits_per_minute(on_chain.definition, prices)
    assert info["TimeLimit"] == f"{minutes // 60:02d}:{minutes % 60:02d}:00"
    assert on_chain.provider_addr.lower() == testbed_env.provider.address.lower()
    assert running.status in (JobStatus.RUNNING, JobStatus.FINISHED)
    finished = wait_status(
        testbed_env, job_id, {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.PANICKED}, 240
    )
    assert finished.status == JobStatus.FINISHED
    assert finished.exit_code == 0
    # It slept 62 s: at least one whole minute is billed, and not wildly more.
    billed = (finished.time.end - finished.time.start) // 60 if finished.time.end else None
    assert billed is None or billed >= 1
    assert finished.cost.final_cost > 0


def test_failing_script_ends_failed_with_its_exit_code(
    supervisor: Supervisor, testbed_env: TestbedEnv, reporters: str, tmp_path: Path
) -> None:
    job_id = submit(testbed_env, tmp_path, "#!/bin/bash\necho failing\nexit 3\n", customer=1)
    failed = wait_status(
        testbed_env, job_id, {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.PANICKED}, 240
    )
    assert failed.status == JobStatus.FAILED
    assert failed.exit_code == 3 << 8  # the raw wait status, as the real plugins send it


def test_zero_duration_job_is_failed_on_chain_and_never_submitted(
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    # 1 credit cannot buy one minute of 20,000 MB: the claim carries maxDurationMinute 0.
    job_id = submit(testbed_env, tmp_path, "#!/bin/bash\ntrue\n", mem_per_cpu=20_000, credits=1)
    failed = wait_status(testbed_env, job_id, {JobStatus.FAILED, JobStatus.FINISHED}, 120)
    assert failed.status == JobStatus.FAILED
    assert "minute" in failed.last_error
    assert slurm_ids(job_id) == []


def test_hostile_job_name_and_script_cannot_break_out_of_quoting(
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    canary = Path("/tmp") / f"grid-e2e-canary-{os.getpid()}"
    canary.unlink(missing_ok=True)
    hostile = f"x'; touch {canary}; echo '"
    script = (
        "#!/bin/bash\n"
        f"echo {json.dumps(hostile)} > /dev/null\n"
        "cat <<'EOF'\n$(touch /nonexistent/$USER) `id` \"quoted\" 'single'\nEOF\n"
    )
    job_id = submit(
        testbed_env, tmp_path, script, job_name=f"$(touch {canary})`touch {canary}`", customer=2
    )
    done = wait_status(
        testbed_env, job_id, {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.PANICKED}, 240
    )
    assert done.status == JobStatus.FINISHED
    assert not canary.exists(), "a customer-controlled value reached a shell unquoted"


def test_job_outliving_its_time_limit_ends_out_of_credits(
    supervisor: Supervisor, testbed_env: TestbedEnv, reporters: str, tmp_path: Path
) -> None:
    # 1 credit buys one minute at the testbed's prices: SLURM's limit is 1 minute.
    job_id = submit(testbed_env, tmp_path, "#!/bin/bash\nsleep 600\n", credits=1, customer=3)
    wait_status(testbed_env, job_id, {JobStatus.RUNNING}, 120)
    assert scontrol(job_id)["TimeLimit"] == "00:01:00"
    ended = wait_status(
        testbed_env,
        job_id,
        {JobStatus.OUT_OF_CREDITS, JobStatus.FINISHED, JobStatus.FAILED, JobStatus.PANICKED},
        240,
    )
    assert ended.status == JobStatus.OUT_OF_CREDITS


def test_three_node_job_is_one_running_transition_on_chain(
    supervisor: Supervisor, testbed_env: TestbedEnv, reporters: str, tmp_path: Path
) -> None:
    # 3 tasks of 8 CPUs on nodes of 8 CPUs: SLURM must spread the job over the three nodes, and
    # runs its prolog on each (PrologFlags=Alloc): the real SPANK plugin reports RUNNING three
    # times, once per node.
    env = testbed_env
    first_block = block_number(env) + 1
    duplicates_before = _duplicate_reports(supervisor)
    job_id = submit(
        env, tmp_path, "#!/bin/bash\nsleep 20\n", cpus_per_task=8, ntasks=3, credits=100
    )
    wait_status(env, job_id, {JobStatus.RUNNING, *FINAL}, 120)
    info = scontrol(job_id)
    assert info["NumNodes"] == "3"
    finished = wait_status(env, job_id, FINAL, 240)
    assert finished.status == JobStatus.FINISHED and finished.exit_code == 0
    prolog_nodes = re.findall(
        rf"hook=prolog job={info['JobId']} user=\S+ node=(\S+)",
        Path(env.slurm.hook_log).read_text(),
    )
    assert sorted(prolog_nodes) == sorted(env.slurm.nodes)
    if reporters == "plugins":  # the two repeats reached the supervisor, stored once
        assert _duplicate_reports(supervisor) - duplicates_before >= 2
    statuses = [to for _, to in status_transitions(env, job_id)]
    assert statuses[statuses.index(JobStatus.SCHEDULED) + 1 :] == [
        JobStatus.RUNNING,
        JobStatus.FINISHED,
    ]
    # and the supervisor sent RUNNING once: no refused repeat either
    assert status_sends(env, job_id, first_block) == [
        (JobStatus.RUNNING, True),
        (JobStatus.FINISHED, True),
    ]


def _duplicate_reports(supervisor: Supervisor) -> int:
    """Reports the callback server received again (identical to one stored: not told again)."""
    node = supervisor.node("callbacks")
    assert node is not None
    return int(node.get("info", {}).get("duplicates", "0"))
