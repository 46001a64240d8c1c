"""A script the sbatch service refuses fails the job on chain once (issue 11's crash loop).

The testbed's sbatch service (its own gRPC services and TLS, in this process on an ephemeral
port, without the rest of the testbed) with one rule added: a ``batchLocationHash`` that cannot
name a script is refused with ``INVALID_ARGUMENT`` before anything else is looked at, which the
client calls :class:`~actors.sbatch.SbatchRefused` (the testbed's own service answers NOT_FOUND
for it, after the chain check). Behind it, the real client and ports and a real JobActor in the
jobs subtree; the chain is a stand-in that applies what it is sent. Before the port tables,
``fetch_script`` let the refusal escape: the JobActor crashed and was restarted every 30 s, and
nothing reached the chain.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio_asyncio
from eth_account import Account
from grpclib.health.service import Health
from grpclib.server import Server

from actors.grid import JobStatus
from actors.sbatch import SbatchClient, SbatchTls
from protos.sbatchapi.v1alpha1 import sbatch_pb2
from runtime.policy import Backoff
from testbed.sbatch_service import (
    AuthAPI,
    ChainReader,
    InvalidRequest,
    NonceBook,
    SBatchAPI,
    ServiceConfig,
    server_ssl_context,
)
from testbed.scripts import is_valid_location_hash
from testbed.tls import TlsFiles, ensure_tls
from tests.job_ports_tree import JOB_ID, claim, job_tree

HOST = "127.0.0.1"
MALFORMED = "../../etc/passwd"


class StrictSBatchAPI(SBatchAPI):
    """The testbed's ``GetSBatch``, refusing a malformed location hash first; counts requests."""

    requests = 0

    async def fetch(self, request: sbatch_pb2.GetSBatchRequest) -> bytes:
        StrictSBatchAPI.requests += 1
        if not is_valid_location_hash(request.batch_location_hash):
            raise InvalidRequest("batch_location_hash cannot name a script")
        return await super().fetch(request)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def strict_service(
    tmp_path: Path, grid_logger_url: str = "", api: type[StrictSBatchAPI] = StrictSBatchAPI
) -> AsyncIterator[tuple[int, TlsFiles]]:
    """The service (``api``) on an ephemeral port (TLS with a fresh CA), naming
    ``grid_logger_url``; its chain is never reached."""
    tls = ensure_tls(tmp_path / "tls")
    port = free_port()
    config = ServiceConfig(
        host=HOST,
        port=port,
        cert=tls.server_cert,
        key=tls.server_key,
        scripts_dir=tmp_path,
        rpc_url=f"http://{HOST}:{free_port()}",
        meta_scheduler="0x" + "11" * 20,
        grid_logger_url=grid_logger_url,
    )
    async with httpx.AsyncClient() as http:
        nonces = NonceBook()
        chain = ChainReader(http, config.rpc_url, config.meta_scheduler)
        server = Server([AuthAPI(nonces), api(config, nonces, chain), Health()])
        context = server_ssl_context(tls.server_cert, tls.server_key)
        await trio_asyncio.aio_as_trio(server.start)(HOST, port, ssl=context)
        try:
            yield port, tls
        finally:
            server.close()
            await trio_asyncio.aio_as_trio(server.wait_closed)()


def client_for(port: int, tls: TlsFiles, attempts: int) -> SbatchClient:
    """The real sbatch client of the service on ``port``, trusting its CA, quick to retry."""
    return SbatchClient(
        f"{HOST}:{port}",
        SbatchTls(ca_file=tls.ca_cert),
        bytes(Account.create().key),
        call_timeout=5.0,
        attempts=attempts,
        backoff=Backoff(initial=0.05, maximum=0.2, jitter=0.0),
        rng=random.Random(1),
    )


async def test_a_refused_script_fails_the_job_once(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    StrictSBatchAPI.requests = 0
    async with strict_service(tmp_path) as (port, tls):
        client = client_for(port, tls, attempts=3)
        async with job_tree(tmp_path / "state", client) as tree:
            await tree.claimed(claim(MALFORMED))
            await tree.settled(JOB_ID)
    ((status, reason),) = tree.statuses(JOB_ID)
    assert status is JobStatus.FAILED
    assert reason.startswith("batch script unavailable: sbatch service refused job ")
    assert "INVALID_ARGUMENT" in reason and repr(MALFORMED) in reason
    assert StrictSBatchAPI.requests == 1  # a refusal is not retried, and the actor never restarted
    assert (client.fetches, client.retries) == (1, 0)
