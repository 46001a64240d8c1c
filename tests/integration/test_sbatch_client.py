"""The sbatch client against the testbed's real sbatch service (TLS with the testbed CA, the
on-chain check against anvil): a job is requested, meta-scheduled and claimed by the provider,
then its script is fetched the way the supervisor does."""

from __future__ import annotations

import random
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest
import trio
import trio_asyncio

from actors.sbatch import (
    Answer,
    SbatchClient,
    SbatchRefused,
    SbatchTls,
    SbatchUnavailable,
    ScriptAccessDenied,
    ScriptNotFound,
    classify,
    sign_challenge,
    split_endpoint,
)
from runtime.policy import Backoff
from testbed import grid, market
from testbed.env import TestbedEnv
from testbed.layout import REPO_ROOT
from testbed.sbatch_service import challenge_bytes, new_nonce, recover_signer
from testbed.tls import tls_files

SCRIPT = "#!/bin/bash\n# fetched by the sbatch client test\nsrun hostname\n"
FAST = Backoff(initial=0.05, maximum=0.2, jitter=0.0)


class ClaimedJob(msgspec.Struct, frozen=True):
    job_id: str
    customer: str
    location_hash: str


def has_claimable_job(env: TestbedEnv) -> bool:
    with market.connect(env.chain.rpc_url, grid.grid_addresses(env)) as g:
        found: bool = g.queues.call("hasNextClaimableJob", env.provider.address)
    return found


@pytest.fixture(scope="module")
def claimed_job(testbed_env: TestbedEnv) -> ClaimedJob:
    """A job of customer #3 meta-scheduled to the provider and claimed by it (the queue is
    drained first, so the claim is this job's)."""
    addresses = grid.grid_addresses(testbed_env)
    rpc = testbed_env.chain.rpc_url
    provider = market.get_provider(rpc, addresses, testbed_env.provider.address)
    if int(provider.addr, 16) == 0:
        grid.approve_provider(testbed_env)
    while has_claimable_job(testbed_env):
        market.claim_next_job(rpc, addresses, provider_key=testbed_env.provider.key)
    job_id = grid.submit_job(
        testbed_env, SCRIPT.encode(), grid.JobRequest(customer=3, job_name="sbatch-client")
    )
    claimed = market.claim_next_job(rpc, addresses, provider_key=testbed_env.provider.key)
    assert claimed is not None and claimed.job_id == job_id
    job = market.get_job(rpc, addresses, job_id)
    return ClaimedJob(
        job_id=job_id,
        customer=testbed_env.customer(3).address,
        location_hash=job.definition.batch_location_hash,
    )


def key_bytes(hex_key: str) -> bytes:
    return bytes.fromhex(hex_key.removeprefix("0x"))


#: Clients made by the running test; the loop fixture closes their connections before the loop.
CREATED: list[SbatchClient] = []


@pytest.fixture
async def asyncio_loop() -> AsyncIterator[trio_asyncio.TrioEventLoop]:
    """The shared fixture, plus: close the clients' kept connections while the loop still runs."""
    async with trio_asyncio.open_loop() as loop:
        yield loop
        while CREATED:
            CREATED.pop().close()


def made(client: SbatchClient) -> SbatchClient:
    CREATED.append(client)
    return client


def client_for(
    env: TestbedEnv, *, key: str | None = None, endpoint: str | None = None, attempts: int = 3
) -> SbatchClient:
    return made(
        SbatchClient(
            endpoint or env.sbatch.endpoint,
            SbatchTls(ca_file=Path(env.sbatch.ca_cert)),
            key_bytes(key or env.provider.key),
            call_timeout=5.0,
            attempts=attempts,
            backoff=FAST,
            rng=random.Random(1),
        )
    )


# --- pure parts ----------------------------------------------------------------------------------


def test_signature_recovers_to_the_provider(testbed_env: TestbedEnv) -> None:
    challenge = challenge_bytes(new_nonce())
    signature = sign_challenge(challenge, key_bytes(testbed_env.provider.key))
    assert len(signature) == 65 and signature[64] in (0, 1)  # the Go supervisor's v
    assert recover_signer(challenge, signature) == testbed_env.provider.address.lower()


def test_statuses_are_answers_or_retries() -> None:
    from grpclib.const import Status

    assert classify(Status.UNAVAILABLE) is Answer.RETRY
    assert classify(Status.INTERNAL) is Answer.RETRY
    assert classify(Status.NOT_FOUND) is Answer.NOT_FOUND
    assert classify(Status.UNAUTHENTICATED) is Answer.DENIED
    assert classify(Status.INVALID_ARGUMENT) is Answer.REFUSED


def test_endpoints_split() -> None:
    assert split_endpoint("127.0.0.1:8444") == ("127.0.0.1", 8444)
    assert split_endpoint("[::1]:443") == ("::1", 443)
    for bad in ("host", "host:", ":1", "host:0", "host:x"):
        with pytest.raises(ValueError):
            split_endpoint(bad)


# --- against the testbed's sbatch service ---------------------------------------------------------


async def test_fetch_returns_the_script(
    asyncio_loop: trio_asyncio.TrioEventLoop, testbed_env: TestbedEnv, claimed_job: ClaimedJob
) -> None:
    client = client_for(testbed_env)
    script = await client.fetch(claimed_job.job_id, claimed_job.customer, claimed_job.location_hash)
    assert script == SCRIPT
    again = await client.fetch(claimed_job.job_id, claimed_job.customer, claimed_job.location_hash)
    assert again == SCRIPT  # a fresh challenge each time: nonces are single-use here
    assert (client.fetches, client.retries) == (2, 0)


async def test_another_wallet_is_denied(
    asyncio_loop: trio_asyncio.TrioEventLoop, testbed_env: TestbedEnv, claimed_job: ClaimedJob
) -> None:
    client = client_for(testbed_env, key=testbed_env.customer(4).key)
    with pytest.raises(ScriptAccessDenied) as caught:
        await client.fetch(claimed_job.job_id, claimed_job.customer, claimed_job.location_hash)
    assert client.retries == 0
    assert claimed_job.job_id in str(caught.value)
    assert testbed_env.customer(4).key.removeprefix("0x") not in str(caught.value)


async def test_wrong_customer_is_denied(
    asyncio_loop: trio_asyncio.TrioEventLoop, testbed_env: TestbedEnv, claimed_job: ClaimedJob
) -> None:
    client = client_for(testbed_env)
    with pytest.raises(ScriptAccessDenied):
        await client.fetch(
            claimed_job.job_id, testbed_env.customer(5).address, claimed_job.location_hash
        )


async def test_unknown_hash_is_not_found(
    asyncio_loop: trio_asyncio.TrioEventLoop, testbed_env: TestbedEnv, claimed_job: ClaimedJob
) -> None:
    client = client_for(testbed_env)
    with pytest.raises(ScriptNotFound):
        await client.fetch(claimed_job.job_id, claimed_job.customer, "NoSuchScriptHere")
    assert client.retries == 0


async def test_malformed_location_is_refused_or_not_found(
    asyncio_loop: trio_asyncio.TrioEventLoop, testbed_env: TestbedEnv, claimed_job: ClaimedJob
) -> None:
    client = client_for(testbed_env)
    with pytest.raises((ScriptNotFound, SbatchRefused)):
        await client.fetch(claimed_job.job_id, claimed_job.customer, "../../etc/passwd")


async def test_untrusted_certificate_fails_at_once(
    asyncio_loop: trio_asyncio.TrioEventLoop, testbed_env: TestbedEnv, claimed_job: ClaimedJob
) -> None:
    client = made(
        SbatchClient(testbed_env.sbatch.endpoint, SbatchTls(), key_bytes(testbed_env.provider.key))
    )  # the system's roots do not know the testbed CA
    with pytest.raises(SbatchUnavailable, match="not trusted"):
        await client.fetch(claimed_job.job_id, claimed_job.customer, claimed_job.location_hash)
    assert client.retries == 0


# --- a private sbatch service, stopped and started ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def private_service(env: TestbedEnv, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another instance of the testbed's sbatch service (same chain, scripts and TLS files)."""
    tls = tls_files(Path(env.sbatch.ca_cert).parent)
    argv = [
        *(sys.executable, "-m", "testbed.sbatch_service", "--listen", f"127.0.0.1:{port}"),
        *("--cert", str(tls.server_cert), "--key", str(tls.server_key)),
        *("--scripts-dir", env.scripts_dir, "--rpc-url", env.chain.rpc_url),
        *("--meta-scheduler", env.chain.contracts["meta_scheduler"]),
    ]
    with log.open("ab") as stderr:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if select.select([process.stdout], [], [], 0.1)[0]:
                line = process.stdout.readline()
                if line.strip() == b"ready" or not line:
                    break
        assert process.poll() is None, log.read_text(errors="replace")
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


async def test_stopped_service_is_retried_then_reported(
    asyncio_loop: trio_asyncio.TrioEventLoop,
    testbed_env: TestbedEnv,
    claimed_job: ClaimedJob,
    tmp_path: Path,
) -> None:
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    client = client_for(testbed_env, endpoint=endpoint, attempts=4)
    with private_service(testbed_env, port, tmp_path / "service.log"):
        script = await client.fetch(
            claimed_job.job_id, claimed_job.customer, claimed_job.location_hash
        )
        assert script == SCRIPT
    began = trio.current_time()
    with pytest.raises(SbatchUnavailable) as caught:
        await client.fetch(claimed_job.job_id, claimed_job.customer, claimed_job.location_hash)
    assert client.retries == 3
    assert trio.current_time() - began >= 0.05 + 0.1 + 0.2  # the backoff was waited
    message = str(caught.value)
    assert endpoint in message and "4 attempts" in message and claimed_job.job_id in message
    assert "ConnectionRefusedError" in message


async def test_service_back_during_retries_is_used(
    asyncio_loop: trio_asyncio.TrioEventLoop,
    testbed_env: TestbedEnv,
    claimed_job: ClaimedJob,
    tmp_path: Path,
) -> None:
    port = free_port()
    client = made(
        SbatchClient(
            f"127.0.0.1:{port}",
            SbatchTls(ca_file=Path(testbed_env.sbatch.ca_cert)),
            key_bytes(testbed_env.provider.key),
            attempts=30,
            backoff=Backoff(initial=0.2, maximum=0.5, jitter=0.0),
        )
    )
    script: list[str] = []
    fetched = trio.Event()

    async def fetch() -> None:
        script.append(
            await client.fetch(claimed_job.job_id, claimed_job.customer, claimed_job.location_hash)
        )
        fetched.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fetch)
        await trio.sleep(0.3)
        assert client.retries >= 1 and not script
        with private_service(testbed_env, port, tmp_path / "service.log"):
            with trio.fail_after(20):
                await fetched.wait()
    assert script == [SCRIPT]
