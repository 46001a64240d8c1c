"""The built binary on the real testbed: it claims and finishes a job, and every operator command
works against it (tree, status, jobs, jobs show, drain, resume, /metrics, structured logs).

The supervisor here is ``dist/grid-supervisor run`` (the shipped one-file binary, not the
sources), started from the testbed's own configuration with a fresh state folder, Prometheus on a
free port and JSON logs; the commands are the binary's too. The harness (approval, job
submission, waiting for on-chain states) is the end-to-end tests' (``supervisor_harness.py``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from actors.grid import JobStatus
from testbed import market
from testbed.env import TestbedEnv
from testbed.grid import grid_addresses
from tests.integration.binary import built_binary
from tests.integration.supervisor_harness import (
    FINAL,
    TEST_ENVIRONMENT,
    submit,
    supervisor_config,
    wait_for,
    wait_status,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BinarySupervisor:
    """``dist/grid-supervisor run`` on the testbed, restartable, and its commands."""

    def __init__(self, binary: Path, work: Path, env: TestbedEnv) -> None:
        self.binary = binary
        self.work = work
        self.env = env
        self.metrics_port = free_port()
        config = supervisor_config(env, work / "state")
        config["metrics"] = {"listenAddress": f"127.0.0.1:{self.metrics_port}"}
        config["log"]["format"] = "json"
        self.config = work / "config.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self) -> None:
        log = self.work / f"supervisor-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [self.binary, "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **TEST_ENVIRONMENT, "TMPDIR": str(self.work)},
            )

    def stop(self) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.binary, *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def registration_state(self) -> str:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError("the supervisor exited:\n" + self.logs[-1].read_text()[-3000:])
        try:
            tree = self.json("tree")
        except (AssertionError, json.JSONDecodeError):
            return ""
        for child in tree.get("children", []):
            if child["name"] == "registration":
                return str(child.get("info", {}).get("state", ""))
        return ""

    def wait_registered(self, *, expect: str = "claiming") -> None:
        state = wait_for(
            "the supervisor to register",
            lambda: (
                (s := self.registration_state()).startswith(("claiming", "waiting", "drained"))
                and s
            ),
            timeout=90,
        )
        if state.startswith("waiting"):
            market.approve_provider(
                self.env.chain.rpc_url,
                grid_addresses(self.env),
                admin_key=self.env.admin.key,
                provider=self.env.provider.address,
            )
        wait_for(expect, lambda: self.registration_state().startswith(expect), timeout=60)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def supervisor(
    testbed_env: TestbedEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BinarySupervisor]:
    running = BinarySupervisor(built_binary(), tmp_path_factory.mktemp("binary"), testbed_env)
    running.start()
    try:
        running.wait_registered()
        yield running
    finally:
        code = running.stop()
        assert code in (0, None), running.logs[-1].read_text()[-3000:]


@pytest.fixture(scope="module")
def finished_job(
    supervisor: BinarySupervisor, testbed_env: TestbedEnv, tmp_path_factory: Any
) -> str:
    """One job, claimed, run and finished by the binary."""
    job_id = submit(
        testbed_env, tmp_path_factory.mktemp("job"), "#!/bin/bash\necho from-the-binary\n"
    )
    finished = wait_status(testbed_env, job_id, FINAL, 180)
    assert finished.status == JobStatus.FINISHED
    # The job actor settles right after the chain has the final status.
    wait_for(
        "the job to settle",
        lambda: any(
            row["job_id"] == job_id and row["phase"] == "DONE" for row in supervisor.json("jobs")
        ),
        timeout=30,
    )
    return job_id


def test_the_binary_claims_and_finishes_a_job(finished_job: str, testbed_env: TestbedEnv) -> None:
    job = market.get_job(testbed_env.chain.rpc_url, grid_addresses(testbed_env), finished_job)
    assert job.status == JobStatus.FINISHED
    assert job.provider_addr.lower() == testbed_env.provider.address.lower()


def test_jobs_and_jobs_show(supervisor: BinarySupervisor, finished_job: str) -> None:
    rows = supervisor.json("jobs")
    row = next(row for row in rows if row["job_id"] == finished_job)
    assert row["phase"] == "DONE" and row["chain_status"] == "FINISHED"
    assert isinstance(row["slurm_job_id"], int)
    table = supervisor.cli("jobs").stdout
    assert finished_job[:14] in table and "DONE" in table
    assert finished_job[:14] in supervisor.cli("jobs", "--phase", "DONE").stdout

    detail = supervisor.json("jobs", "show", finished_job[:20])  # a unique prefix will do
    assert detail["job_id"] == finished_job
    phases = [step["phase"] for step in detail["history"]]
    assert phases[0] == "CLAIMED" and phases[-1] == "DONE"
    assert {"FETCHING", "SUBMITTING", "SUBMITTED", "REPORTING"} <= set(phases)
    assert detail["on_chain"]["status"] == "FINISHED"
    assert detail["slurm_job_id"] == row["slurm_job_id"]
    assert detail["reports_waiting"] == []
    text = supervisor.cli("jobs", "show", finished_job).stdout
    assert "FINISHED" in text and "history" in text
    unknown = supervisor.cli("jobs", "show", "0x" + "f" * 64, check=False)
    assert unknown.returncode == 1 and "no job" in unknown.stderr


def test_status(supervisor: BinarySupervisor, finished_job: str) -> None:
    status = supervisor.json("status")
    assert status["tree"]["state"] == "running"
    assert status["registration"]["state"] == "claiming"
    assert status["registration"]["approval"] == "approved"
    assert status["chain"]["connection"].startswith("subscribed")
    assert status["chain"]["claiming"] is True
    assert isinstance(status["chain"]["saved_cursor_block"], int)
    assert status["slurm"]["healthy"] is True
    assert status["jobs"]["by_phase"]["DONE"] >= 1
    assert status["reports_waiting"]["count"] == 0
    assert status["drain"]["drained"] is False
    text = supervisor.cli("status").stdout
    assert "claiming  approval=approved" in text and "healthy (" in text


def test_tree_shows_every_actor(supervisor: BinarySupervisor) -> None:
    tree = supervisor.json("tree")
    states = {child["name"]: child["state"] for child in tree["children"]}
    for name in ("slurm", "chain", "callbacks", "jobs-supervisor", "registration"):
        assert states.get(name) == "running", states
    text = supervisor.cli("tree").stdout
    assert "registration" in text and "mailbox=" in text and "up " in text


def test_metrics(supervisor: BinarySupervisor, finished_job: str) -> None:
    samples = supervisor.metrics()
    assert value(samples, "grid_claims_total", queue="job", outcome="claimed") >= 1
    assert (
        value(samples, "grid_chain_transactions_total", function="claimNextJob", outcome="mined")
        >= 1
    )
    assert (
        value(
            samples,
            "grid_chain_transactions_total",
            function="providerSetJobStatus",
            outcome="mined",
        )
        >= 2  # RUNNING, then FINISHED
    )
    assert value(samples, "grid_chain_transaction_seconds_count", function="claimNextJob") >= 1
    assert value(samples, "grid_ssh_command_seconds_count", command="sbatch") >= 1
    assert value(samples, "grid_ssh_commands_total", command="sbatch", outcome="ok") >= 1
    assert value(samples, "grid_callback_reports_total", outcome="received") >= 2
    assert value(samples, "grid_jobs", phase="DONE") >= 1
    assert value(samples, "grid_reports_waiting") == 0
    assert value(samples, "grid_actor_up", actor="chain") == 1
    assert ("grid_actor_restarts_total", (("actor", "slurm"),)) in samples
    assert ("grid_actor_mailbox_depth", (("actor", "registration"),)) in samples
    assert value(samples, "grid_tree_healthy") == 1
    assert value(samples, "grid_drained") == 0
    assert value(samples, "grid_chain_claiming") == 1
    missing = httpx.get(f"http://127.0.0.1:{supervisor.metrics_port}/nope", timeout=10)
    assert missing.status_code == 404


def test_drain_survives_a_restart_and_resume_claims_again(
    supervisor: BinarySupervisor, testbed_env: TestbedEnv, tmp_path: Path, finished_job: str
) -> None:
    drained = supervisor.json("drain")
    assert drained["drained"] is True and drained["claiming"] == "off"
    job_id = submit(testbed_env, tmp_path, "#!/bin/bash\necho after-the-drain\n", customer=1)

    def unclaimed() -> bool:
        job = market.get_job(testbed_env.chain.rpc_url, grid_addresses(testbed_env), job_id)
        return job.status == JobStatus.META_SCHEDULED

    time.sleep(6)  # the claimer would have claimed it within a block or a poll (2 s)
    assert unclaimed(), "a drained supervisor claimed a job"
    assert supervisor.json("status")["registration"]["state"].startswith("drained")

    assert supervisor.stop() == 0
    supervisor.start()
    supervisor.wait_registered(expect="drained")  # read back from the store
    assert supervisor.json("status")["drain"]["drained"] is True
    time.sleep(4)
    assert unclaimed(), "the drain did not survive the restart"

    resumed = supervisor.json("resume")
    assert resumed["drained"] is False
    finished = wait_status(testbed_env, job_id, FINAL, 180)
    assert finished.status == JobStatus.FINISHED
    assert supervisor.json("status")["drain"]["drained"] is False


def test_logs_are_structured_with_actor_and_job_and_hold_no_secret(
    supervisor: BinarySupervisor, testbed_env: TestbedEnv, finished_job: str
) -> None:
    lines = [line for log in supervisor.logs for line in log.read_text().splitlines() if line]
    assert len(lines) > 20
    records = [json.loads(line) for line in lines]  # every line is one JSON document
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    from_actors = [r for r in records if r["logger"].startswith("actors.")]
    assert from_actors
    missing_actor = [r for r in from_actors if "actor" not in r]
    assert not missing_actor, missing_actor[:5]
    job_lines = [r for r in records if str(r.get("actor", "")).startswith("job:")]
    assert job_lines, "no line from a job actor"
    assert all(r.get("job") == r["actor"].removeprefix("job:") for r in job_lines)
    assert any(r.get("job") == finished_job for r in job_lines)

    text = "\n".join(lines).lower()
    wallet_key = testbed_env.provider.key.lower().removeprefix("0x")
    assert wallet_key not in text
    ssh_key = Path(testbed_env.ssh.supervisor_key).read_text().splitlines()
    body = [line for line in ssh_key if line and not line.startswith("-----")]
    assert body and not any(line.lower() in text for line in body)
