"""End to end, through the real supervisor process on the real testbed.

A customer submits jobs with the testbed (what a customer and the market do); the supervisor,
started from a config file, registers (the test approves it as the grid's admin), claims the
jobs, fetches their scripts, submits them to SLURM as the customer's UNIX user, and the chain ends
up with each job's final status, duration and exit code, reported by the SLURM-side hooks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors.grid import JobStatus
from testbed import market
from testbed.env import TestbedEnv
from testbed.grid import JobRequest, grid_addresses, submit_job

REPO = Path(__file__).resolve().parents[2]


class Supervisor:
    """A running ``grid-supervisor run`` process and what the test needs to watch it."""

    def __init__(self, process: subprocess.Popen[bytes], state: Path, log: Path) -> None:
        self.process = process
        self.state = state
        self.log = log

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
    """The testbed's own supervisor config, with a fresh state folder for this module."""
    config: dict[str, Any] = yaml.safe_load(Path(env.supervisor_config).read_text())
    config["state"]["folder"] = str(state)
    config["log"]["level"] = "info"
    return config


@pytest.fixture(scope="module")
def supervisor(
    testbed_env: TestbedEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    work = tmp_path_factory.mktemp("supervisor")
    state = work / "state"
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump(supervisor_config(testbed_env, state)))
    log = work / "supervisor.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--config", str(config_file)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Supervisor(process, state, log)
    try:
        registration = wait_for(
            "the supervisor to register",
            lambda: _registration_state(running),
            timeout=60,
        )
        if registration != "claiming":
            market.approve_provider(
                testbed_env.chain.rpc_url,
                grid_addresses(testbed_env),
                admin_key=testbed_env.admin.key,
                provider=testbed_env.provider.address,
            )
        wait_for("claiming", lambda: _registration_state(running) == "claiming", timeout=60)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.returncode not in (0, -signal.SIGKILL):
            print(log.read_text()[-5000:])


def _registration_state(supervisor: Supervisor) -> str | None:
    if supervisor.process.poll() is not None:
        raise AssertionError(
            f"the supervisor exited with {supervisor.process.returncode}:\n"
            + supervisor.log.read_text()[-3000:]
        )
    node = supervisor.node("registration")
    if node is None:
        return None
    state = node.get("info", {}).get("state", "")
    return state if state == "claiming" or state.startswith("waiting") else None


def chain_job(env: TestbedEnv, job_id: str) -> market.Job:
    return market.get_job(env.chain.rpc_url, grid_addresses(env), job_id)


def submit(env: TestbedEnv, tmp_path: Path, script: str, **request: Any) -> str:
    path = tmp_path / "job.sh"
    path.write_text(script)
    return submit_job(env, path.read_bytes(), JobRequest(**request))


def wait_status(env: TestbedEnv, job_id: str, statuses: set[JobStatus], timeout: float) -> Any:
    return wait_for(
        f"job {job_id} to reach {sorted(s.name for s in statuses)}",
        lambda: (job := chain_job(env, job_id)).status in statuses and job,
        timeout=timeout,
    )


def scontrol(job_id: str) -> dict[str, str]:
    """The SLURM job named ``job_id`` (one-line scontrol form as a dict)."""
    ids = subprocess.run(
        ["squeue", "-h", "-t", "all", "-n", job_id, "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(ids) == 1, f"expected exactly one SLURM job named {job_id}, got {ids}"
    line = subprocess.run(
        ["scontrol", "show", "job", "-o", ids[0]], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", line))


def test_job_runs_as_the_customer_and_finishes_on_chain(
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
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
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
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
    listed = subprocess.run(
        ["squeue", "-h", "-t", "all", "-n", job_id, "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed == []


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
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
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
