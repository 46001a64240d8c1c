"""The testbed's sbatch service as a real process, over TLS with the testbed CA, with a real
grpclib client (a fresh connection per call, like the supervisor).

The tests without a chain point the service at a closed port: a request that gets past
authentication then fails the chain read with INTERNAL, which is how they tell "the nonce was
accepted" from "the nonce was refused" (UNAUTHENTICATED).
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from grpclib import GRPCError, Status
from grpclib.client import Channel
from grpclib.health.v1 import health_grpc, health_pb2

from actors.grid import JobDefinition, Label
from protos.sbatchapi.v1alpha1 import sbatch_grpc, sbatch_pb2
from testbed import market
from testbed.anvil import private_anvil
from testbed.contracts import GridAddresses, compile_contracts, deploy_grid
from testbed.layout import Layout
from testbed.market import CREDIT, DEFAULT_PRICES, ProviderHardware
from testbed.node import ensure_node_tools
from testbed.scripts import put_script
from testbed.tls import TlsFiles, ensure_tls

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT = 15.0
SCRIPT = b"#!/bin/bash\n#SBATCH --job-name=test\nsrun hostname\n"
SOME_JOB_ID = "0x" + "ab" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Service:
    """A running ``python -m testbed.sbatch_service`` process and what a client needs."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, tls: TlsFiles, scripts: Path):
        self.process = process
        self.port = port
        self.tls = tls
        self.scripts = scripts

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        context.set_alpn_protocols(["h2"])
        return context


@contextmanager
def running_service(
    tmp_path: Path, *, rpc_url: str, meta_scheduler: str, extra: tuple[str, ...] = ()
) -> Iterator[Service]:
    tls = ensure_tls(tmp_path / "tls")
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "testbed.sbatch_service",
        "--listen",
        f"{HOST}:{port}",
        "--cert",
        str(tls.server_cert),
        "--key",
        str(tls.server_key),
        "--scripts-dir",
        str(scripts),
        "--rpc-url",
        rpc_url,
        "--meta-scheduler",
        meta_scheduler,
        *extra,
    ]
    stderr = (tmp_path / "sbatch_service.log").open("wb")
    process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr)
    try:
        _wait_ready(process, tmp_path / "sbatch_service.log")
        yield Service(process, port, tls, scripts)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
        stderr.close()


def _wait_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.1)
        if readable:
            line = process.stdout.readline()
            if line.strip() == b"ready":
                return
            if not line:
                break
    raise AssertionError(f"sbatch service not ready: {log.read_text(errors='replace')}")


def closed_port_url() -> str:
    return f"http://{HOST}:{free_port()}"


# --- client side: what the supervisor does -----------------------------------------------------


def sign(account: LocalAccount, challenge: bytes, *, go_style_v: bool = True) -> bytes:
    """EIP-191 signature; Go sends v in {0, 1}."""
    signature = bytes(account.sign_message(encode_defunct(primitive=challenge)).signature)
    return signature[:64] + bytes([signature[64] - 27]) if go_style_v else signature


def challenge(service: Service) -> bytes:
    async def call() -> bytes:
        async with Channel(HOST, service.port, ssl=service.client_context()) as channel:
            reply = await sbatch_grpc.AuthAPIStub(channel).Challenge(sbatch_pb2.ChallengeRequest())
            return bytes(reply.challenge)

    return asyncio.run(call())


def get_sbatch(
    service: Service, request: sbatch_pb2.GetSBatchRequest
) -> sbatch_pb2.GetSBatchResponse:
    async def call() -> sbatch_pb2.GetSBatchResponse:
        async with Channel(HOST, service.port, ssl=service.client_context()) as channel:
            reply: sbatch_pb2.GetSBatchResponse = await sbatch_grpc.SBatchAPIStub(
                channel
            ).GetSBatch(request, timeout=10)
            return reply

    return asyncio.run(call())


def status_of(service: Service, request: sbatch_pb2.GetSBatchRequest) -> Status:
    with pytest.raises(GRPCError) as refused:
        get_sbatch(service, request)
    return refused.value.status


def request_for(
    service: Service,
    *,
    signer: LocalAccount,
    provider: str,
    customer: str,
    job_id: str = SOME_JOB_ID,
    location_hash: str = "NoSuchScript",
    challenge_bytes: bytes | None = None,
) -> sbatch_pb2.GetSBatchRequest:
    issued = challenge(service) if challenge_bytes is None else challenge_bytes
    return sbatch_pb2.GetSBatchRequest(
        batch_location_hash=location_hash,
        signed_challenge=sign(signer, issued),
        challenge=issued,
        provider_address=bytes.fromhex(provider[2:]),
        customer_address=bytes.fromhex(customer[2:]),
        job_id=job_id,
    )


@pytest.fixture(scope="module")
def offline_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service with an unreachable chain (shared: every test uses fresh keys and nonces)."""
    tmp_path = tmp_path_factory.mktemp("offline")
    with running_service(
        tmp_path, rpc_url=closed_port_url(), meta_scheduler="0x" + "11" * 20
    ) as service:
        yield service


# --- without a chain ---------------------------------------------------------------------------


def test_challenge_over_tls(offline_service: Service) -> None:
    first, second = challenge(offline_service), challenge(offline_service)
    assert first.startswith(b'{"message":"login","nonce":"')
    assert first != second


def test_health_is_serving(offline_service: Service) -> None:
    async def call() -> int:
        ssl_context = offline_service.client_context()
        async with Channel(HOST, offline_service.port, ssl=ssl_context) as channel:
            reply = await health_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            return int(reply.status)

    assert asyncio.run(call()) == health_pb2.HealthCheckResponse.SERVING


def test_untrusted_ca_is_refused(offline_service: Service) -> None:
    async def call() -> None:
        async with Channel(HOST, offline_service.port, ssl=True) as channel:
            await sbatch_grpc.AuthAPIStub(channel).Challenge(sbatch_pb2.ChallengeRequest())

    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(call())


def test_signature_by_another_key_is_unauthenticated(offline_service: Service) -> None:
    provider, intruder, customer = Account.create(), Account.create(), Account.create()
    request = request_for(
        offline_service, signer=intruder, provider=provider.address, customer=customer.address
    )
    assert status_of(offline_service, request) is Status.UNAUTHENTICATED


def test_nonce_is_single_use(offline_service: Service) -> None:
    provider, customer = Account.create(), Account.create()
    request = request_for(
        offline_service, signer=provider, provider=provider.address, customer=customer.address
    )
    # accepted, then the chain read fails: INTERNAL
    assert status_of(offline_service, request) is Status.INTERNAL
    # the same signed challenge again: replay refused
    assert status_of(offline_service, request) is Status.UNAUTHENTICATED


def test_bad_signature_does_not_burn_the_nonce(offline_service: Service) -> None:
    provider, intruder, customer = Account.create(), Account.create(), Account.create()
    issued = challenge(offline_service)
    forged = request_for(
        offline_service,
        signer=intruder,
        provider=provider.address,
        customer=customer.address,
        challenge_bytes=issued,
    )
    assert status_of(offline_service, forged) is Status.UNAUTHENTICATED
    genuine = request_for(
        offline_service,
        signer=provider,
        provider=provider.address,
        customer=customer.address,
        challenge_bytes=issued,
    )
    assert status_of(offline_service, genuine) is Status.INTERNAL


def test_challenge_not_issued_by_the_service_is_unauthenticated(offline_service: Service) -> None:
    provider, customer = Account.create(), Account.create()
    made_up = b'{"message":"login","nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}'
    request = request_for(
        offline_service,
        signer=provider,
        provider=provider.address,
        customer=customer.address,
        challenge_bytes=made_up,
    )
    assert status_of(offline_service, request) is Status.UNAUTHENTICATED


def test_malformed_job_id_is_invalid_argument(offline_service: Service) -> None:
    provider, customer = Account.create(), Account.create()
    request = request_for(
        offline_service,
        signer=provider,
        provider=provider.address,
        customer=customer.address,
        job_id="0x1234",
    )
    assert status_of(offline_service, request) is Status.INVALID_ARGUMENT


def test_expired_challenge_is_unauthenticated(tmp_path: Path) -> None:
    provider, customer = Account.create(), Account.create()
    with running_service(
        tmp_path,
        rpc_url=closed_port_url(),
        meta_scheduler="0x" + "11" * 20,
        extra=("--nonce-ttl", "0.5"),
    ) as service:
        stale = request_for(
            service, signer=provider, provider=provider.address, customer=customer.address
        )
        time.sleep(0.7)
        assert status_of(service, stale) is Status.UNAUTHENTICATED
        fresh = request_for(
            service, signer=provider, provider=provider.address, customer=customer.address
        )
        assert status_of(service, fresh) is Status.INTERNAL


def test_sigterm_exits_cleanly(tmp_path: Path) -> None:
    with running_service(
        tmp_path, rpc_url=closed_port_url(), meta_scheduler="0x" + "11" * 20
    ) as service:
        challenge(service)
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=10) == 0


# --- with a chain: a real anvil and our meta-scheduler contracts ------------------------------

MNEMONIC = "test test test test test test test test test test test junk"
ADMIN, ORACLE, PROVIDER, CUSTOMER, OTHER_CUSTOMER, OTHER_PROVIDER = 0, 1, 2, 3, 4, 7
GRID_LOGGER_URL = "127.0.0.1:9999"
HARDWARE = ProviderHardware(nodes=1, gpus_per_node=(0,), cpus_per_node=(8,), mem_per_node=(16000,))


def mnemonic_account(index: int) -> LocalAccount:
    Account.enable_unaudited_hdwallet_features()
    derived: LocalAccount = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return derived


def hex_key(account: LocalAccount) -> str:
    return "0x" + account.key.hex().removeprefix("0x")


class Market:
    """A deployed grid with an approved provider and customers holding credits."""

    def __init__(self, rpc_url: str, grid: GridAddresses) -> None:
        self.rpc_url = rpc_url
        self.grid = grid

    def request(self, location_hash: str, customer: int = CUSTOMER) -> str:
        """A PENDING job whose script is stored under ``location_hash``."""
        definition = JobDefinition(
            gpus=0, mem_per_cpu=1024, cpus_per_task=1, ntasks=1, batch_location_hash=location_hash
        )
        return market.request_job(
            self.rpc_url,
            self.grid,
            customer_key=hex_key(mnemonic_account(customer)),
            definition=definition,
            locked_credits=10 * CREDIT,
            job_name="sbatch-test",
        )

    def scheduled(self, location_hash: str) -> str:
        """A job meta-scheduled on PROVIDER."""
        job_id = self.request(location_hash)
        market.meta_schedule(
            self.rpc_url,
            self.grid,
            metascheduler_key=hex_key(mnemonic_account(ORACLE)),
            job_id=job_id,
            provider=mnemonic_account(PROVIDER).address,
        )
        return job_id


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with private_anvil(ensure_node_tools(Layout.from_env().node).anvil) as anvil:
        yield anvil.url


@pytest.fixture(scope="module")
def grid_market(anvil_url: str) -> Market:
    layout = Layout.from_env()
    artifacts = compile_contracts(ensure_node_tools(layout.node), layout.contracts)
    admin_key = hex_key(mnemonic_account(ADMIN))
    grid = deploy_grid(
        anvil_url,
        admin_key=admin_key,
        metascheduler_addr=mnemonic_account(ORACLE).address,
        artifacts=artifacts,
    )
    provider = mnemonic_account(PROVIDER)
    market.register_provider(
        anvil_url,
        grid,
        provider_key=hex_key(provider),
        hardware=HARDWARE,
        prices=DEFAULT_PRICES,
        labels=[Label("os", "linux")],
    )
    market.approve_provider(anvil_url, grid, admin_key=admin_key, provider=provider.address)
    for customer in (CUSTOMER, OTHER_CUSTOMER):
        market.mint_credits(
            anvil_url,
            grid,
            admin_key=admin_key,
            to=mnemonic_account(customer).address,
            amount=1000 * CREDIT,
        )
    return Market(anvil_url, grid)


@pytest.fixture(scope="module")
def online_service(
    tmp_path_factory: pytest.TempPathFactory, grid_market: Market
) -> Iterator[Service]:
    with running_service(
        tmp_path_factory.mktemp("online"),
        rpc_url=grid_market.rpc_url,
        meta_scheduler=grid_market.grid.meta_scheduler,
        extra=("--grid-logger-url", GRID_LOGGER_URL),
    ) as service:
        yield service


def provider_request(
    service: Service,
    job_id: str,
    location_hash: str,
    *,
    signer: int = PROVIDER,
    provider: int = PROVIDER,
    customer: int = CUSTOMER,
) -> sbatch_pb2.GetSBatchRequest:
    return request_for(
        service,
        signer=mnemonic_account(signer),
        provider=mnemonic_account(provider).address,
        customer=mnemonic_account(customer).address,
        job_id=job_id,
        location_hash=location_hash,
    )


def test_the_scheduled_provider_gets_the_script(
    online_service: Service, grid_market: Market
) -> None:
    location_hash = put_script(online_service.scripts, SCRIPT)
    job_id = grid_market.scheduled(location_hash)
    reply = get_sbatch(online_service, provider_request(online_service, job_id, location_hash))
    assert reply.sbatch == SCRIPT.decode()
    assert reply.grid_logger_url == GRID_LOGGER_URL


def test_signature_with_v_27_28_is_accepted(online_service: Service, grid_market: Market) -> None:
    location_hash = put_script(online_service.scripts, b"echo v27\n")
    job_id = grid_market.scheduled(location_hash)
    issued = challenge(online_service)
    provider, customer = mnemonic_account(PROVIDER), mnemonic_account(CUSTOMER)
    request = sbatch_pb2.GetSBatchRequest(
        batch_location_hash=location_hash,
        signed_challenge=sign(provider, issued, go_style_v=False),
        challenge=issued,
        provider_address=bytes.fromhex(provider.address[2:]),
        customer_address=bytes.fromhex(customer.address[2:]),
        job_id=job_id,
    )
    assert get_sbatch(online_service, request).sbatch == "echo v27\n"


def test_another_provider_is_refused(online_service: Service, grid_market: Market) -> None:
    location_hash = put_script(online_service.scripts, SCRIPT)
    job_id = grid_market.scheduled(location_hash)
    request = provider_request(
        online_service, job_id, location_hash, signer=OTHER_PROVIDER, provider=OTHER_PROVIDER
    )
    assert status_of(online_service, request) is Status.UNAUTHENTICATED


def test_another_customer_is_refused(online_service: Service, grid_market: Market) -> None:
    location_hash = put_script(online_service.scripts, SCRIPT)
    job_id = grid_market.scheduled(location_hash)
    request = provider_request(online_service, job_id, location_hash, customer=OTHER_CUSTOMER)
    assert status_of(online_service, request) is Status.UNAUTHENTICATED


def test_job_not_yet_meta_scheduled_is_refused(
    online_service: Service, grid_market: Market
) -> None:
    location_hash = put_script(online_service.scripts, SCRIPT)
    job_id = grid_market.request(location_hash)  # PENDING: no provider yet
    request = provider_request(online_service, job_id, location_hash)
    assert status_of(online_service, request) is Status.UNAUTHENTICATED


def test_job_unknown_on_chain_is_refused(online_service: Service, grid_market: Market) -> None:
    location_hash = put_script(online_service.scripts, SCRIPT)
    request = provider_request(online_service, "0x" + "42" * 32, location_hash)
    assert status_of(online_service, request) is Status.UNAUTHENTICATED


def test_expired_script_is_not_found(online_service: Service, grid_market: Market) -> None:
    location_hash = put_script(online_service.scripts, SCRIPT)
    job_id = grid_market.scheduled(location_hash)
    two_hours_ago = time.time() - 2 * 3600
    os.utime(online_service.scripts / location_hash, (two_hours_ago, two_hours_ago))
    request = provider_request(online_service, job_id, location_hash)
    assert status_of(online_service, request) is Status.NOT_FOUND


def test_unknown_script_is_not_found(online_service: Service, grid_market: Market) -> None:
    job_id = grid_market.scheduled("NeverStored")
    request = provider_request(online_service, job_id, "NeverStored")
    assert status_of(online_service, request) is Status.NOT_FOUND
