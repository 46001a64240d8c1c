"""The sbatch client: fetch a job's batch script from the grid's sbatch service.

The sbatch service keeps each job's script under a short ``batchLocationHash`` (the value the
customer put on chain) and hands it only to the provider the job was scheduled to. One fetch is
three steps over gRPC (``sbatchapi.v1alpha1``, wire-interfaces.md section 3):

1. ``AuthAPI.Challenge`` returns fresh challenge bytes (a login nonce);
2. the provider signs them as an EIP-191 personal message with its wallet key;
3. ``SBatchAPI.GetSBatch`` carries the hash, the challenge and its signature, the raw 20-byte
   provider and customer addresses and the ``0x`` job id; the service checks the signature and,
   on chain, that the job is this customer's and was scheduled to this provider.

Every attempt asks for a *fresh* challenge (a nonce may be single-use) on a new connection. Each
call has its own timeout. Attempts are retried with :class:`runtime.policy.Backoff` when the
request may not have reached the service (connection refused or lost, TLS handshake cut, timeout)
or when the service says ``UNAVAILABLE`` (or ``INTERNAL``: it could not read the chain). The
answers "no such script" and "not yours" are answers, not failures, and are never retried.

Errors (a flat hierarchy; no grpclib, h2 or ssl exception leaves this module):

- :class:`ScriptNotFound`: no script under that hash (never stored, or expired: 1 h TTL).
- :class:`ScriptAccessDenied`: the service refused our signature, or the job is not ours.
- :class:`SbatchRefused`: another definite refusal (e.g. a malformed request).
- :class:`SbatchUnavailable`: the service could not be reached, retries exhausted.

gRPC runs on asyncio (grpclib); the supervisor is a trio program with one asyncio loop opened by
``trio_asyncio.open_loop()``, so each fetch crosses over with ``trio_asyncio.aio_as_trio``.
"""

from __future__ import annotations

import enum
import random
import ssl
from pathlib import Path
from typing import Final

import h2.exceptions
import msgspec
import trio
import trio_asyncio
from eth_account import Account
from eth_account.messages import encode_defunct
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from actors.grid import address, job_id
from protos.sbatchapi.v1alpha1 import sbatch_grpc, sbatch_pb2
from runtime.policy import Backoff

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_BACKOFF",
    "DEFAULT_CALL_TIMEOUT",
    "Answer",
    "SbatchClient",
    "SbatchError",
    "SbatchRefused",
    "SbatchTls",
    "SbatchUnavailable",
    "ScriptAccessDenied",
    "ScriptNotFound",
    "classify",
    "sign_challenge",
    "split_endpoint",
]

DEFAULT_CALL_TIMEOUT: Final = 10.0
"""Seconds for each gRPC call (the Go supervisor gives a whole fetch 10 s)."""

DEFAULT_ATTEMPTS: Final = 5
"""Attempts per fetch before :class:`SbatchUnavailable`."""

DEFAULT_BACKOFF: Final = Backoff(initial=0.2, maximum=5.0, multiplier=2.0, jitter=0.2)
"""Pause between attempts: 0.2 s, 0.4 s, 0.8 s, ... capped at 5 s, up to 20 % shorter."""


# --- errors ------------------------------------------------------------------------------------


class SbatchError(Exception):
    """Base of the sbatch client's errors."""


class ScriptNotFound(SbatchError):
    """The service has no script under that location hash (never stored, or expired)."""


class ScriptAccessDenied(SbatchError):
    """The service refused us: bad signature, or the job is not this customer's / provider's."""


class SbatchRefused(SbatchError):
    """Another definite refusal from the service (e.g. ``INVALID_ARGUMENT``)."""


class SbatchUnavailable(SbatchError):
    """The service could not be reached (or kept saying UNAVAILABLE) after every attempt."""


# --- pure parts --------------------------------------------------------------------------------


class Answer(enum.Enum):
    """What a gRPC status means for a fetch."""

    RETRY = "retry"
    NOT_FOUND = "not found"
    DENIED = "denied"
    REFUSED = "refused"


_RETRIED_STATUSES: Final = frozenset(
    {
        Status.UNAVAILABLE,
        Status.DEADLINE_EXCEEDED,
        Status.INTERNAL,  # the service could not read the chain: it may next time
        Status.RESOURCE_EXHAUSTED,
        Status.ABORTED,
        Status.UNKNOWN,
    }
)


def classify(status: Status) -> Answer:
    """How a fetch treats a gRPC error status from the service."""
    if status in _RETRIED_STATUSES:
        return Answer.RETRY
    if status is Status.NOT_FOUND:
        return Answer.NOT_FOUND
    if status in (Status.UNAUTHENTICATED, Status.PERMISSION_DENIED):
        return Answer.DENIED
    return Answer.REFUSED


def sign_challenge(challenge: bytes, private_key: bytes) -> bytes:
    """The 65-byte EIP-191 personal-message signature ``r||s||v`` of ``challenge``.

    ``v`` is sent as 0/1, as the Go supervisor does (the service accepts 27/28 too).
    """
    signed = Account.sign_message(encode_defunct(primitive=challenge), private_key=private_key)
    signature = bytes(signed.signature)
    return signature[:64] + bytes([signature[64] - 27])


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as (host, port); ValueError when malformed."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"not host:port: {endpoint!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {endpoint!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


class SbatchTls(msgspec.Struct, frozen=True):
    """TLS towards the sbatch service (``cfg.sbatch.tls``): on by default, verified against
    ``ca_file`` (else the system's roots) unless ``insecure``."""

    enable: bool = True
    ca_file: Path | None = None
    insecure: bool = False

    def context(self) -> ssl.SSLContext | None:
        """The client SSL context (ALPN ``h2``), or None for cleartext h2c."""
        if not self.enable:
            return None
        try:
            context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise SbatchError(f"cannot load the sbatch CA file {self.ca_file}: {exc}") from None
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        return context


# --- the client --------------------------------------------------------------------------------

_TRANSPORT_ERRORS: Final = (
    OSError,  # refused, reset, unreachable, timed out (TimeoutError); ssl.SSLError too
    EOFError,
    ProtocolError,
    StreamTerminatedError,
    h2.exceptions.H2Error,
)


class _Retry(Exception):
    """One attempt failed in a way worth another attempt; the message says how."""


class SbatchClient:
    """Fetches batch scripts for one provider (the wallet whose key is given).

    ``endpoint`` is ``host:port``; ``private_key`` the 32-byte wallet key (never logged). Use
    from trio with an asyncio loop open (``trio_asyncio.open_loop()``)::

        client = SbatchClient("sbatch.deepsquare.run:443", SbatchTls(), key)
        script = await client.fetch(job_id, customer, batch_location_hash)
    """

    def __init__(
        self,
        endpoint: str,
        tls: SbatchTls,
        private_key: bytes,
        *,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: Backoff = DEFAULT_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, not {attempts}")
        self.endpoint = endpoint
        self._host, self._port = split_endpoint(endpoint)
        self._ssl = tls.context()
        self._key = private_key
        try:
            self.provider = address(Account.from_key(private_key).address)
        except (ValueError, TypeError):
            raise SbatchError("the provider private key is not a valid wallet key") from None
        self.call_timeout = call_timeout
        self.attempts = attempts
        self.backoff = backoff
        self._rng = rng if rng is not None else random.Random()
        self.fetches = 0
        self.retries = 0
        self._channel: Channel | None = None

    def __repr__(self) -> str:
        return f"SbatchClient({self.endpoint!r}, provider={self.provider})"

    async def fetch(self, job: str, customer: str, batch_location_hash: str) -> str:
        """The batch script of ``job`` (``0x`` id) requested by ``customer`` (``0x`` address).

        Raises :class:`ScriptNotFound`, :class:`ScriptAccessDenied`, :class:`SbatchRefused` or,
        once every attempt failed, :class:`SbatchUnavailable`.
        """
        request = sbatch_pb2.GetSBatchRequest(
            batch_location_hash=batch_location_hash,
            provider_address=bytes.fromhex(self.provider[2:]),
            customer_address=bytes.fromhex(address(customer)[2:]),
            job_id=job_id(job),
        )
        self.fetches += 1
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                script: str = await trio_asyncio.aio_as_trio(self._attempt)(request)
                return script
            except _Retry as exc:
                last = str(exc)
            if attempt < self.attempts:
                self.retries += 1
                await trio.sleep(self.backoff.delay(attempt, self._rng))
        raise SbatchUnavailable(
            f"sbatch service {self.endpoint} unreachable after {self.attempts} attempts "
            f"for job {request.job_id}: {last}"
        )

    def _connected(self) -> Channel:
        """The HTTP/2 connection to the service, kept across fetches (opened lazily)."""
        if self._channel is None:
            self._channel = Channel(self._host, self._port, ssl=self._ssl)
        return self._channel

    def _disconnect(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def close(self) -> None:
        """Close the connection (a later fetch opens a new one)."""
        self._disconnect()

    async def _attempt(self, request: sbatch_pb2.GetSBatchRequest) -> str:
        """One attempt (asyncio side), on the kept connection; a transport failure drops it so
        that the next attempt connects afresh."""
        channel = self._connected()
        try:
            auth = sbatch_grpc.AuthAPIStub(channel)
            challenge = await auth.Challenge(
                sbatch_pb2.ChallengeRequest(), timeout=self.call_timeout
            )
            signed = sbatch_pb2.GetSBatchRequest()
            signed.CopyFrom(request)
            signed.challenge = bytes(challenge.challenge)
            signed.signed_challenge = sign_challenge(bytes(challenge.challenge), self._key)
            reply = await sbatch_grpc.SBatchAPIStub(channel).GetSBatch(
                signed, timeout=self.call_timeout
            )
            return str(reply.sbatch)
        except GRPCError as exc:
            raise self._answer(exc, request) from None
        except ssl.SSLCertVerificationError as exc:
            self._disconnect()
            raise SbatchUnavailable(
                f"sbatch service {self.endpoint}: TLS certificate not trusted: {exc.verify_message}"
            ) from None
        except _TRANSPORT_ERRORS as exc:
            self._disconnect()
            raise _Retry(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None

    def _answer(self, error: GRPCError, request: sbatch_pb2.GetSBatchRequest) -> Exception:
        detail = f"{error.status.name}: {error.message or 'no message'}"
        what = f"job {request.job_id} (script {request.batch_location_hash!r})"
        match classify(error.status):
            case Answer.RETRY:
                return _Retry(detail)
            case Answer.NOT_FOUND:
                return ScriptNotFound(f"sbatch service has no script for {what}: {detail}")
            case Answer.DENIED:
                return ScriptAccessDenied(f"sbatch service refused {what} to us: {detail}")
            case Answer.REFUSED:
                return SbatchRefused(f"sbatch service refused {what}: {detail}")
