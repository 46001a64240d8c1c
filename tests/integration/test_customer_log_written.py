"""A job that fails before it runs tells its customer why, on the grid logger (issue 13, item 3).

The testbed's sbatch service (in this process, ephemeral port, TLS; as in
``test_sbatch_refusal``) names the testbed's grid logger (:mod:`testbed.logger_service`, also
in this process) as ``grid_logger_url``. It hands out one script ("ok", without the chain check)
and refuses a malformed location hash. The real sbatch client learns the logger from the first
answer; then a job whose script the service refuses goes through the real ports and JobActor:
the logger received the reason line by line under the job's name and the customer's address,
and the chain got FAILED with the same actionable ``lastError``. A logger that is down changes
nothing for the job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio_asyncio
from grpclib.server import Server

from actors.customer_log import ADVICE, Failure
from actors.grid import JobStatus
from actors.slurm.messages import SubmissionRefused, SubmitJob
from protos.sbatchapi.v1alpha1 import sbatch_pb2
from runtime.actor import Actor
from testbed.logger_service import LoggerService
from testbed.sbatch_service import server_ssl_context
from testbed.tls import TlsFiles, ensure_tls
from tests.integration.test_sbatch_refusal import (
    HOST,
    MALFORMED,
    StrictSBatchAPI,
    client_for,
    free_port,
    strict_service,
)
from tests.job_ports_tree import CUSTOMER, JOB_ID, claim, job_tree

SLURM_SAYS = (
    "sbatch: error: Batch job submission failed: Requested node configuration is not available\n"
    "sbatch: error: see /etc/slurm/slurm.conf on 10.0.0.2:6817"
)


class RefusingSlurm(Actor[object, object]):
    """Stands in for the SLURM actor: ``sbatch`` refuses every job, as SLURM words it."""

    def __init__(self) -> None:
        super().__init__("slurm")
        self.submitted: list[str] = []

    async def handle(self, message: object) -> object:
        assert isinstance(message, SubmitJob), message
        self.submitted.append(message.script)
        return SubmissionRefused(SLURM_SAYS)


SCRIPT = "#!/bin/sh\necho hello\n"


class OneScriptSBatchAPI(StrictSBatchAPI):
    """Serves :data:`SCRIPT` under "ok" without asking the chain; refuses malformed hashes."""

    async def fetch(self, request: sbatch_pb2.GetSBatchRequest) -> bytes:
        if request.batch_location_hash == "ok":
            return SCRIPT.encode()
        return await super().fetch(request)


@asynccontextmanager
async def grid_logger(tls: TlsFiles) -> AsyncIterator[tuple[str, LoggerService]]:
    """The testbed's logger on an ephemeral port: its URL and what it received."""
    port = free_port()
    service = LoggerService()
    server = Server([service])
    context = server_ssl_context(tls.server_cert, tls.server_key)
    await trio_asyncio.aio_as_trio(server.start)(HOST, port, ssl=context)
    try:
        yield f"{HOST}:{port}", service
    finally:
        server.close()
        await trio_asyncio.aio_as_trio(server.wait_closed)()


async def test_a_refused_script_is_told_to_the_customer_and_the_chain(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    tls = ensure_tls(tmp_path / "tls")
    async with (
        grid_logger(tls) as (url, logger),
        strict_service(tmp_path, url, OneScriptSBatchAPI) as (port, _),
    ):
        client = client_for(port, tls, attempts=2)
        assert client.grid_logger_url == ""
        assert await client.fetch(JOB_ID, CUSTOMER, "ok") == SCRIPT
        assert client.grid_logger_url == url  # named by the service's answer
        async with job_tree(tmp_path / "state", client) as tree:
            await tree.claimed(claim(MALFORMED))
            await tree.settled(JOB_ID)
    ((status, last_error),) = tree.statuses(JOB_ID)
    assert status is JobStatus.FAILED
    assert last_error.startswith("batch script unavailable: sbatch service refused job ")
    assert "INVALID_ARGUMENT" in last_error and last_error.endswith(ADVICE[Failure.SCRIPT])
    assert logger.writes == 1
    lines = logger.lines(JOB_ID)
    assert lines[0] == f"job {JOB_ID} did not start:"
    assert lines[1].startswith("batch script unavailable: sbatch service refused job ")
    assert lines[-1] == last_error  # the same actionable words as on chain
    assert {line.user for line in logger.received} == {CUSTOMER.lower()}
    assert all(line.timestamp > 0 for line in logger.received)
    assert f"{HOST}:{port}" not in "".join(lines)  # the operator's endpoint stays out


async def test_a_logger_that_is_down_changes_nothing_for_the_job(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"{HOST}:{free_port()}"  # nothing listens there
    async with strict_service(tmp_path, down, OneScriptSBatchAPI) as (port, tls):
        client = client_for(port, tls, attempts=2)
        await client.fetch(JOB_ID, CUSTOMER, "ok")
        assert client.grid_logger_url == down
        async with job_tree(tmp_path / "state", client) as tree:
            await tree.claimed(claim(MALFORMED))
            await tree.settled(JOB_ID)
    ((status, last_error),) = tree.statuses(JOB_ID)
    assert status is JobStatus.FAILED and last_error.endswith(ADVICE[Failure.SCRIPT])
    (warning,) = [r for r in caplog.records if "customer log not written" in r.getMessage()]
    assert JOB_ID in warning.getMessage() and down in warning.getMessage()


async def test_a_job_sbatch_refuses_is_told_to_the_customer_and_refused(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    tls = ensure_tls(tmp_path / "tls")
    slurm = RefusingSlurm()
    async with (
        grid_logger(tls) as (url, logger),
        strict_service(tmp_path, url, OneScriptSBatchAPI) as (port, _),
    ):
        client = client_for(port, tls, attempts=2)
        async with job_tree(tmp_path / "state", client, lambda: slurm) as tree:
            await tree.claimed(claim("ok"))
            await tree.settled(JOB_ID)
    assert slurm.submitted == [SCRIPT] and tree.refused == [JOB_ID] and tree.sent == []
    lines = logger.lines(JOB_ID)
    assert lines[:3] == [
        f"job {JOB_ID} did not start:",
        "sbatch: error: Batch job submission failed: Requested node configuration is not available",
        "sbatch: error: see <path> on <host>",  # the operator's path and address stay out
    ]
    assert lines[-1].startswith("SLURM refused the job: sbatch: error: Batch job submission")
    assert lines[-1].endswith(ADVICE[Failure.SUBMISSION])
    assert "/etc/slurm" not in "".join(lines) and "10.0.0.2" not in "".join(lines)
