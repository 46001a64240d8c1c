"""The testbed's sbatch service: hands a provider the batch script of a job meta-scheduled to it.

It speaks ``sbatchapi.v1alpha1`` exactly like the grid's sbatch service (wire-interfaces.md §3):

1. ``AuthAPI.Challenge`` returns the compact JSON ``{"message":"login","nonce":"<base64>"}`` and
   remembers the nonce for ``nonce_ttl`` seconds (10 minutes by default).
2. ``SBatchAPI.GetSBatch`` carries that challenge signed by the provider (EIP-191 personal message,
   65 bytes ``r||s||v`` with ``v`` in {0, 1, 27, 28}). The service

   - recovers the signer and compares it, case-insensitively, with ``provider_address``;
   - redeems the nonce: it must be known and unexpired;
   - reads ``IJobRepository.get(job_id)`` on chain (the repository is ``MetaScheduler.jobs()``) and
     requires ``customerAddr == customer_address`` and ``providerAddr == provider_address``;
   - returns the script stored under ``batch_location_hash``.

   Status codes: ``UNAUTHENTICATED`` for any signature, nonce, customer or provider mismatch (and
   for a job the repository refuses to return, i.e. reverts on); ``INTERNAL`` when the chain cannot
   be read; ``NOT_FOUND`` for an unknown or expired script; ``INVALID_ARGUMENT`` for a malformed
   address or job id.

**Nonces are single-use**, unlike the reference, which lets a nonce be replayed for 10 minutes. A
nonce is consumed when a request carrying a valid signature of it by the claimed provider arrives,
whatever happens next (chain read, script lookup), so a captured request cannot be replayed. A
request with a bad signature does not consume the nonce, so a bystander who saw a challenge cannot
burn it. The real supervisor asks for a fresh challenge before every fetch, so it is unaffected.

Run it as a process (it prints ``ready`` once listening and exits cleanly on SIGTERM)::

    python -m testbed.sbatch_service --listen 127.0.0.1:8444 --cert server.pem --key key.pem \\
        --scripts-dir DIR --rpc-url http://127.0.0.1:8545 --meta-scheduler 0x... [--ttl 3600]

This is a testbed service on plain asyncio (grpclib), not part of the trio supervisor.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import re
import secrets
import signal
import ssl
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.abi import function_signature_to_4byte_selector
from grpclib import GRPCError, Status
from grpclib.health.service import Health
from grpclib.server import Server, Stream

from protos.sbatchapi.v1alpha1 import sbatch_grpc, sbatch_pb2
from testbed.scripts import DEFAULT_TTL_SECONDS, load_script

log = logging.getLogger("testbed.sbatch_service")

LOGIN_MESSAGE = "login"
NONCE_BYTES = 16
DEFAULT_NONCE_TTL_SECONDS = 600.0
ADDRESS_BYTES = 20
SIGNATURE_BYTES = 65
CHAIN_TIMEOUT_SECONDS = 10.0
_JOB_ID = re.compile(r"0x[0-9a-fA-F]{64}")

# Canonical ABI tuple of the on-chain Job struct (wire-interfaces.md §1.3).
JOB_DEFINITION_ABI = (
    "(uint64,uint64,uint64,uint64,string,uint8,(string,string)[],((string,string),bytes2)[])"
)
JOB_ABI = (
    f"(bytes32,uint8,address,address,{JOB_DEFINITION_ABI},(uint256,uint256,uint256,bool),"
    "(uint256,uint256,uint256,uint256,uint256,uint256),bytes32,bool,string,int64)"
)
JOBS_SELECTOR = function_signature_to_4byte_selector("jobs()")
GET_JOB_SELECTOR = function_signature_to_4byte_selector("get(bytes32)")


# --- errors: one per answer the service gives --------------------------------------------------


class SBatchServiceError(Exception):
    """A request the service refuses; ``status`` is the gRPC status it answers with."""

    status = Status.INTERNAL


class Unauthenticated(SBatchServiceError):
    """Bad signature, unknown/expired/used nonce, or the job is not this customer's/provider's."""

    status = Status.UNAUTHENTICATED


class InvalidRequest(SBatchServiceError):
    """A malformed address or job id."""

    status = Status.INVALID_ARGUMENT


class ChainReadError(SBatchServiceError):
    """The chain could not be read (transport, JSON-RPC or decoding failure)."""

    status = Status.INTERNAL


class ScriptNotFound(SBatchServiceError):
    """No script under that location hash, or it expired."""

    status = Status.NOT_FOUND


# --- the challenge -----------------------------------------------------------------------------


class LoginChallenge(msgspec.Struct):
    """The challenge document; field order gives the reference's compact JSON byte for byte."""

    message: str
    nonce: str


def new_nonce() -> str:
    """Base64 (standard alphabet, padded) of 16 random bytes."""
    return base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode("ascii")


def challenge_bytes(nonce: str) -> bytes:
    """``{"message":"login","nonce":"<nonce>"}`` with no spaces: what the provider signs."""
    return msgspec.json.encode(LoginChallenge(message=LOGIN_MESSAGE, nonce=nonce))


def challenge_nonce(challenge: bytes) -> str:
    """The nonce inside a challenge the service issued; ``Unauthenticated`` for anything else."""
    try:
        document = msgspec.json.decode(challenge, type=LoginChallenge)
    except msgspec.DecodeError as exc:
        raise Unauthenticated("challenge is not a login challenge") from exc
    if document.message != LOGIN_MESSAGE or not document.nonce:
        raise Unauthenticated("challenge is not a login challenge")
    return document.nonce


class NonceBook:
    """The nonces issued by ``Challenge`` and not yet redeemed, each valid for ``lifetime`` s.

    Pure bookkeeping: the caller passes the (monotonic) time. Nonces expire in issue order, so the
    book is an insertion-ordered dict purged from the front.
    """

    def __init__(self, lifetime: float = DEFAULT_NONCE_TTL_SECONDS) -> None:
        self.lifetime = lifetime
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def issue(self, now: float) -> str:
        """A fresh nonce, valid until ``now + lifetime``."""
        self.purge(now)
        nonce = new_nonce()
        self._expiry[nonce] = now + self.lifetime
        return nonce

    def redeem(self, nonce: str, now: float) -> bool:
        """True exactly once for a known, unexpired nonce; the nonce is then forgotten."""
        self.purge(now)
        return self._expiry.pop(nonce, None) is not None

    def purge(self, now: float) -> None:
        """Forget the nonces that expired at or before ``now``."""
        while self._expiry:
            nonce, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                break
            del self._expiry[nonce]


# --- signatures and addresses ------------------------------------------------------------------


def recover_signer(challenge: bytes, signature: bytes) -> str:
    """The address (lowercase hex) whose key signed ``challenge`` as an EIP-191 personal message.

    ``signature`` is ``r||s||v``; ``v`` may be 0/1 (what the Go supervisor sends) or 27/28.
    """
    if len(signature) != SIGNATURE_BYTES:
        raise Unauthenticated("signature must be 65 bytes")
    v = signature[64]
    if v in (0, 1):
        v += 27
    if v not in (27, 28):
        raise Unauthenticated("signature has an invalid recovery id")
    try:
        signer: str = Account.recover_message(
            encode_defunct(primitive=challenge), signature=signature[:64] + bytes([v])
        )
    except Exception as exc:  # eth_keys raises several types for an invalid signature
        raise Unauthenticated("invalid signature") from exc
    return signer.lower()


def address_hex(raw: bytes) -> str:
    """``0x`` + lowercase hex of a raw 20-byte address; ``InvalidRequest`` for another length."""
    if len(raw) != ADDRESS_BYTES:
        raise InvalidRequest("an address must be 20 bytes")
    return "0x" + raw.hex()


def same_address(address: str, raw: bytes) -> bool:
    """Whether a hex address (any case, with 0x) names the raw 20-byte ``raw`` address."""
    return len(raw) == ADDRESS_BYTES and address.lower() == "0x" + raw.hex()


def job_id_bytes(job_id: str) -> bytes:
    """The bytes32 of ``"0x" + 64 hex``; ``InvalidRequest`` otherwise."""
    if _JOB_ID.fullmatch(job_id) is None:
        raise InvalidRequest("job_id must be 0x followed by 64 hex digits")
    return bytes.fromhex(job_id[2:])


# --- the chain ---------------------------------------------------------------------------------


class JobParties(msgspec.Struct, frozen=True):
    """Who a job belongs to and who runs it (lowercase hex addresses)."""

    customer: str
    provider: str


def decode_address_result(result: bytes) -> str:
    """The address returned by a ``view`` function such as ``MetaScheduler.jobs()``."""
    (address,) = abi_decode(["address"], result)
    return str(address).lower()


def decode_job_parties(result: bytes) -> JobParties:
    """Customer and provider of the ``Job`` returned by ``IJobRepository.get``."""
    (job,) = abi_decode([JOB_ABI], result)
    return JobParties(customer=str(job[2]).lower(), provider=str(job[3]).lower())


def get_job_call_data(job_id: bytes) -> bytes:
    """Calldata of ``IJobRepository.get(bytes32)``."""
    return GET_JOB_SELECTOR + abi_encode(["bytes32"], [job_id])


class JobReverted(Exception):
    """The contract reverted the call (for ``get``: no such job)."""


class ChainReader:
    """Reads jobs through ``eth_call`` over HTTP JSON-RPC (the repository address is cached)."""

    def __init__(self, client: httpx.AsyncClient, rpc_url: str, meta_scheduler: str) -> None:
        self._client = client
        self._rpc_url = rpc_url
        self._meta_scheduler = meta_scheduler
        self._repository: str | None = None
        self._request_id = 0

    async def job_parties(self, job_id: bytes) -> JobParties | None:
        """The job's parties, or None if the repository reverts (unknown job).

        Raises ``ChainReadError`` when the chain cannot be read.
        """
        try:
            if self._repository is None:
                result = await self._eth_call(self._meta_scheduler, JOBS_SELECTOR)
                self._repository = decode_address_result(result)
            return decode_job_parties(
                await self._eth_call(self._repository, get_job_call_data(job_id))
            )
        except JobReverted:
            return None
        except ChainReadError:
            raise
        except Exception as exc:  # eth_abi decoding errors and the like: no foreign error escapes
            raise ChainReadError(f"cannot decode the chain's answer: {type(exc).__name__}") from exc

    async def _eth_call(self, to: str, data: bytes) -> bytes:
        self._request_id += 1
        payload = {
            "jsonrpc": "2.0",
            "id": self._request_id,
            "method": "eth_call",
            "params": [{"to": to, "data": "0x" + data.hex()}, "latest"],
        }
        try:
            response = await self._client.post(self._rpc_url, json=payload)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainReadError(f"eth_call failed: {type(exc).__name__}") from exc
        error = body.get("error")
        if error is not None:
            message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            if "revert" in message.lower():
                raise JobReverted(message)
            raise ChainReadError(f"eth_call error: {message}")
        result = body.get("result")
        if not isinstance(result, str) or not result.startswith("0x"):
            raise ChainReadError("eth_call returned no result")
        try:
            return bytes.fromhex(result[2:])
        except ValueError as exc:
            raise ChainReadError("eth_call returned malformed hex") from exc


# --- the gRPC services -------------------------------------------------------------------------


class ServiceConfig(msgspec.Struct, frozen=True):
    """Everything the service needs; see ``main`` for the matching command-line flags."""

    host: str
    port: int
    cert: Path
    key: Path
    scripts_dir: Path
    rpc_url: str
    meta_scheduler: str
    script_ttl: float = DEFAULT_TTL_SECONDS
    nonce_ttl: float = DEFAULT_NONCE_TTL_SECONDS
    grid_logger_url: str = ""


class AuthAPI(sbatch_grpc.AuthAPIBase):
    """``AuthAPI.Challenge``: issues login challenges."""

    def __init__(self, nonces: NonceBook) -> None:
        self._nonces = nonces

    async def Challenge(
        self, stream: Stream[sbatch_pb2.ChallengeRequest, sbatch_pb2.ChallengeResponse]
    ) -> None:
        await stream.recv_message()
        nonce = self._nonces.issue(time.monotonic())
        await stream.send_message(sbatch_pb2.ChallengeResponse(challenge=challenge_bytes(nonce)))


class SBatchAPI(sbatch_grpc.SBatchAPIBase):
    """``SBatchAPI.GetSBatch``: authenticates the provider, checks the job, returns the script."""

    def __init__(self, config: ServiceConfig, nonces: NonceBook, chain: ChainReader) -> None:
        self._config = config
        self._nonces = nonces
        self._chain = chain

    async def GetSBatch(
        self, stream: Stream[sbatch_pb2.GetSBatchRequest, sbatch_pb2.GetSBatchResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None  # unary call: grpclib always delivers the one message
        try:
            script = await self.fetch(request)
        except SBatchServiceError as exc:
            log.info("GetSBatch job=%s refused: %s (%s)", request.job_id, exc.status.name, exc)
            raise GRPCError(exc.status, str(exc)) from exc
        log.info("GetSBatch job=%s served %d bytes", request.job_id, len(script))
        await stream.send_message(
            sbatch_pb2.GetSBatchResponse(
                sbatch=script.decode("utf-8", errors="replace"),
                grid_logger_url=self._config.grid_logger_url,
            )
        )

    async def fetch(self, request: sbatch_pb2.GetSBatchRequest) -> bytes:
        """The script for an authenticated, authorised request (else an ``SBatchServiceError``)."""
        provider = address_hex(request.provider_address)
        customer = address_hex(request.customer_address)
        job_id = job_id_bytes(request.job_id)
        nonce = challenge_nonce(request.challenge)
        if recover_signer(request.challenge, request.signed_challenge) != provider:
            raise Unauthenticated("the challenge is not signed by the provider")
        if not self._nonces.redeem(nonce, time.monotonic()):
            raise Unauthenticated("unknown, expired or already used challenge")
        parties = await self._chain.job_parties(job_id)
        if parties is None:
            raise Unauthenticated("no such job on chain")
        if parties.customer != customer:
            raise Unauthenticated("the job belongs to another customer")
        if parties.provider != provider:
            raise Unauthenticated("the job is not scheduled on this provider")
        script = load_script(
            self._config.scripts_dir,
            request.batch_location_hash,
            now=time.time(),
            ttl=self._config.script_ttl,
        )
        if script is None:
            raise ScriptNotFound("no script under this location hash (unknown or expired)")
        return script


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context offering HTTP/2 (ALPN ``h2``), as gRPC requires."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    return context


async def serve(config: ServiceConfig, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; print ``ready`` once listening."""
    nonces = NonceBook(config.nonce_ttl)
    timeout = httpx.Timeout(CHAIN_TIMEOUT_SECONDS)
    async with httpx.AsyncClient(timeout=timeout) as client:
        chain = ChainReader(client, config.rpc_url, config.meta_scheduler)
        server = Server([AuthAPI(nonces), SBatchAPI(config, nonces, chain), Health()])
        await server.start(
            config.host, config.port, ssl=server_ssl_context(config.cert, config.key)
        )
        print("ready", flush=True)
        try:
            await stop.wait()
        finally:
            server.close()
            await server.wait_closed()


# --- the process -------------------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    return host, int(port)


def server_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A testbed gRPC service's command line: ``--listen``, ``--cert`` and ``--key``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--listen", type=parse_listen, required=True, help="HOST:PORT")
    parser.add_argument("--cert", type=Path, required=True, help="server certificate (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="server key (PEM)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> ServiceConfig:
    parser = server_parser("python -m testbed.sbatch_service", "The testbed's sbatch gRPC service.")
    parser.add_argument("--scripts-dir", type=Path, required=True, help="script store folder")
    parser.add_argument("--rpc-url", required=True, help="chain HTTP JSON-RPC URL")
    parser.add_argument("--meta-scheduler", required=True, help="MetaScheduler address")
    parser.add_argument(
        "--ttl", type=float, default=DEFAULT_TTL_SECONDS, help="script lifetime, seconds"
    )
    parser.add_argument(
        "--nonce-ttl",
        type=float,
        default=DEFAULT_NONCE_TTL_SECONDS,
        help="challenge lifetime, seconds",
    )
    parser.add_argument("--grid-logger-url", default="", help="returned as grid_logger_url")
    args = parser.parse_args(argv)
    host, port = args.listen
    return ServiceConfig(
        host=host,
        port=port,
        cert=args.cert,
        key=args.key,
        scripts_dir=args.scripts_dir,
        rpc_url=args.rpc_url,
        meta_scheduler=args.meta_scheduler,
        script_ttl=args.ttl,
        nonce_ttl=args.nonce_ttl,
        grid_logger_url=args.grid_logger_url,
    )


async def _run(config: ServiceConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(config, stop)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per eth_call is noise
    try:
        asyncio.run(_run(config))
    except OSError as exc:
        print(f"sbatch service: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
