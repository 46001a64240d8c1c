"""Forged reports change nothing on chain, end to end through the real supervisor process.

Anyone who can reach the callback port can send ``SetJobStatus`` (the grid's C++ plugins send no
credentials, so the port must stay open to reports without the secret). The testbed's own
reporters present the shared secret; reports without it are believed only when SLURM agrees.
While a real job runs, the test sends, without the secret:

- a final status naming another SLURM job id than ours: the job's state machine ignores it;
- FINISHED with our SLURM id and an absurd duration while SLURM says RUNNING: the cross-check
  with SLURM refuses it (logged, dropped);
- a final status for a job this provider does not have: refused at once (NOT_FOUND), nothing
  stored;
- a report with a wrong secret: refused at once (UNAUTHENTICATED).

Then, with the partition full, a job SLURM lists as PENDING gets a forged RUNNING: the chain keeps
it SCHEDULED until it really starts.

The job then ends for real and the chain shows its true end and duration. A second supervisor,
configured to *require* the secret, refuses a report without it while the testbed's reporters
(which present it) are still delivered.
"""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from actors.grid import JobStatus
from testbed.env import TestbedEnv
from tests.integration.supervisor_harness import (
    FINAL,
    Supervisor,
    billed_minutes,
    chain_job,
    completions,
    scontrol,
    slurm_state,
    submit,
    wait_for,
    wait_status,
)

SECRET_KEY = "x-grid-reporter-secret-bin"
WIRE_FINISHED = 7
WIRE_RUNNING = 4


def send_report(
    endpoint: str,
    name: str,
    slurm_id: int,
    *,
    status: int = WIRE_FINISHED,
    duration: int = 0,
    exit_code: int = 0,
    secret: bytes | None = None,
) -> str:
    """Send one ``SetJobStatus`` as an outsider would; the gRPC status name of the answer."""
    from grpclib.client import Channel
    from grpclib.exceptions import GRPCError

    from protos.supervisor.v1alpha1 import job_grpc, job_pb2

    async def send() -> str:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        host, _, port = endpoint.rpartition(":")
        channel = Channel(host, int(port), ssl=context)
        metadata: dict[str, Any] = {SECRET_KEY: secret} if secret is not None else {}
        request = job_pb2.SetJobStatusRequest(
            name=name,
            id=slurm_id,
            duration=duration,
            status=cast(Any, status),
            exit_code=exit_code,
        )
        try:
            await job_grpc.JobAPIStub(channel).SetJobStatus(request, timeout=10, metadata=metadata)
        except GRPCError as exc:
            return exc.status.name
        finally:
            channel.close()
        return "OK"

    return asyncio.run(send())


def started(
    env: TestbedEnv, work: Path, config: Any = None
) -> Iterator[Supervisor]:  # pragma: no cover - fixture body
    supervisor = Supervisor(env, work, config=config)
    try:
        yield supervisor.start(timeout=60)
    finally:
        code = supervisor.stop()
        if code not in (0, -signal.SIGKILL, None):
            print(supervisor.log_tail(5000))


@pytest.fixture(scope="module")
def supervisor(
    testbed_env: TestbedEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    yield from started(testbed_env, tmp_path_factory.mktemp("supervisor"))


@pytest.fixture(scope="module")
def victim(
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, int]:
    """A real job, running: its id and SLURM id."""
    job_id = submit(
        testbed_env, tmp_path_factory.mktemp("job"), "#!/bin/bash\nsleep 75\n", customer=3
    )
    wait_status(testbed_env, job_id, {JobStatus.RUNNING}, 120)
    return job_id, int(scontrol(job_id)["JobId"])


def stays_running(env: TestbedEnv, job_id: str, seconds: float = 8.0) -> None:
    """The chain keeps the job RUNNING for ``seconds`` (over two reaper sweeps)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert chain_job(env, job_id).status == JobStatus.RUNNING
        time.sleep(0.5)


def test_a_final_report_for_another_slurm_job_changes_nothing(
    victim: tuple[str, int], testbed_env: TestbedEnv
) -> None:
    job_id, slurm_id = victim
    answer = send_report(testbed_env.supervisor_callback, job_id, slurm_id + 1000, duration=6000)
    assert answer == "OK"  # stored, like any report: the plugins cannot be told apart
    stays_running(testbed_env, job_id)


def test_a_final_report_while_slurm_says_running_is_refused(
    victim: tuple[str, int], testbed_env: TestbedEnv, supervisor: Supervisor
) -> None:
    job_id, slurm_id = victim
    answer = send_report(testbed_env.supervisor_callback, job_id, slurm_id, duration=6000)
    assert answer == "OK"
    stays_running(testbed_env, job_id)
    assert re.search(rf"{job_id}: report FINISHED .* refused: SLURM says RUNNING", supervisor.log
                     .read_text())  # fmt: skip


def test_a_report_for_a_job_we_do_not_have_is_refused(
    victim: tuple[str, int], testbed_env: TestbedEnv, supervisor: Supervisor
) -> None:
    stranger = "0x" + "5a" * 32
    assert send_report(testbed_env.supervisor_callback, stranger, 4242, duration=60) == "NOT_FOUND"
    assert stranger not in supervisor.log.read_text()  # not stored, not forwarded


def test_a_wrong_secret_is_refused(victim: tuple[str, int], testbed_env: TestbedEnv) -> None:
    job_id, slurm_id = victim
    answer = send_report(
        testbed_env.supervisor_callback, job_id, slurm_id, duration=6000, secret=b"guessed"
    )
    assert answer == "UNAUTHENTICATED"
    stays_running(testbed_env, job_id, 2.0)


def test_the_job_still_ends_with_its_true_end_and_duration(
    victim: tuple[str, int], testbed_env: TestbedEnv
) -> None:
    job_id, _ = victim
    ended = wait_status(testbed_env, job_id, FINAL, 150)
    assert ended.status == JobStatus.FINISHED and ended.exit_code == 0
    (completion,) = completions(testbed_env)[job_id]
    assert billed_minutes(testbed_env, ended) == completion.duration_seconds // 60 == 1


def fill_the_partition(env: TestbedEnv) -> str:
    """A job of our own holding every node of the partition, running: its SLURM id."""
    command = ["sbatch", "--parsable", "--exclusive", "-N", str(len(env.slurm.nodes))]
    command += [f"--partition={env.slurm.partition}", "--output=/dev/null", "--job-name=blocker"]
    done = subprocess.run([*command, "--wrap", "sleep 300"], capture_output=True, text=True)
    blocker = done.stdout.split(";")[0].strip()
    assert done.returncode == 0 and blocker, done.stderr

    def state() -> str:
        shown = ["squeue", "-h", "-j", blocker, "-o", "%T"]
        return subprocess.run(shown, capture_output=True, text=True).stdout.strip()

    wait_for("the blocker to run", lambda: state() == "RUNNING", timeout=120)
    return blocker


def test_a_forged_running_for_a_pending_job_waits_for_slurm(
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    blocker = fill_the_partition(testbed_env)
    try:
        job_id = submit(testbed_env, tmp_path / "job", "#!/bin/bash\nsleep 5\n", customer=3)
        listed = wait_for("SLURM to list the job", lambda: slurm_state(job_id), timeout=120)
        assert listed[0] == "PENDING"
        slurm_id = int(scontrol(job_id)["JobId"])
        endpoint = testbed_env.supervisor_callback
        assert send_report(endpoint, job_id, slurm_id, status=WIRE_RUNNING) == "OK"
        refused = re.compile(rf"{job_id}: report RUNNING .* refused: SLURM says PENDING")
        wait_for(
            "the forged RUNNING to be refused",
            lambda: refused.search(supervisor.log.read_text()),
            timeout=30,
        )
        assert chain_job(testbed_env, job_id).status == JobStatus.SCHEDULED
    finally:
        subprocess.run(["scancel", blocker], check=False)
    ended = wait_status(testbed_env, job_id, FINAL, 150)
    assert ended.status == JobStatus.FINISHED  # it ran once SLURM started it


def test_a_supervisor_requiring_the_secret_refuses_reports_without_it(
    supervisor: Supervisor, testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    supervisor.stop()  # one supervisor at a time on the callback port

    def require(config: dict[str, Any]) -> None:
        config["grpc"]["reporterAuth"]["require"] = True

    for strict in started(testbed_env, tmp_path / "strict", require):
        job_id = submit(testbed_env, tmp_path / "job", "#!/bin/bash\nsleep 5\n", customer=3)
        wait_status(testbed_env, job_id, {JobStatus.RUNNING, *FINAL}, 120)
        slurm_id = int(scontrol(job_id)["JobId"])
        answer = send_report(testbed_env.supervisor_callback, job_id, slurm_id, duration=6000)
        assert answer == "UNAUTHENTICATED"
        ended = wait_status(testbed_env, job_id, FINAL, 90)
        assert ended.status == JobStatus.FINISHED and billed_minutes(testbed_env, ended) == 0
        hooks = (Path(testbed_env.log_dir) / "hooks.log").read_text()
        # the testbed's reporter presented the secret: delivered, not spooled
        assert re.search(rf"report=jobcomp job={slurm_id} .* outcome=delivered", hooks)
        assert strict.running
