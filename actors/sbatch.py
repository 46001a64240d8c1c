"""The sbatch client: fetch a job's batch script from the grid's sbatch service.

The sbatch service keeps each job's script under a short ``batchLocationHash`` (the value the
customer put on chain) and hands it only to the provider the job was scheduled to. One fetch is
three steps over gRPC (``sbatchapi.v1alpha1``, wire-interfaces.md section 3):

1. ``AuthAPI.Challenge`` returns fresh challenge bytes (a login nonce);
2. the provider signs them as an EIP-191 personal message with its wallet key;
3. ``SBatchAPI.GetSBatch`` carries the hash, the challenge and its signature, the raw 20-byte
   provider and customer addresses and the ``0x`` job id; the service checks the signature and,
   on chain, that the job is this customer's and was scheduled to this provider.

The client keeps one HTTP/2 connection to the service, opened on first use and shared by every
fetch; a transport failure drops it, so the next attempt connects afresh. Every attempt asks for
a *fresh* challenge (a nonce may be single-use). Each call has its own timeout. Attempts are
retried with :class:`runtime.policy.Backoff` when the request may not have reached the service
(connection refused or lost, TLS handshake cut, timeout) or when the service says
``UNAVAILABLE`` (or ``INTERNAL``: it could not read the chain). The answers "no such script",
"not yours" and "malformed" are answers, not failures, and are never retried.

Errors (a flat hierarchy; no grpclib, h2 or ssl exception leaves this module), each with its
:class:`~runtime.errors.Delivery`:

- :class:`ScriptNotFound` (answered): no script under that hash (never stored, or expired: 1 h
  TTL).
- :class:`ScriptAccessDenied` (answered): the service refused our signature, or the job is not
  ours.
- :class:`SbatchRefused` (answered): another definite refusal (``INVALID_ARGUMENT`` for a
  malformed request, e.g. a customer's malformed ``batchLocationHash``); its subclass
  :class:`SbatchRequestInvalid` (never sent) is a request the client cannot even encode.
- :class:`SbatchUnavailable`: the service could not be reached, retries exhausted; its subclass
  :class:`SbatchUntrusted` is a TLS certificate the client does not trust (not retried).

Where they come from, as declared tables: :data:`TRANSPORT_ERRORS` (grpclib, h2, ssl and the
OS's exceptions of one attempt, applied with :func:`runtime.errors.map_exceptions`, the cause
kept), :data:`STATUS_ANSWERS` (the service's gRPC status to an :class:`Answer`) and
:data:`ANSWER_ERRORS` (each answer to our error); :data:`REQUEST_ERRORS` for building the request.

gRPC runs on asyncio (grpclib); the supervisor is a trio program with one asyncio loop opened by
``trio_asyncio.open_loop()``, so each fetch crosses over with ``trio_asyncio.aio_as_trio``.
"""

from __future__ import annotations

import enum
import random
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar, Final

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
from runtime.errors import Delivery, ErrorTable, map_exceptions
from runtime.policy import Backoff

__all__ = [
    "ANSWER_ERRORS",
    "DEFAULT_ATTEMPTS",
    "DEFAULT_BACKOFF",
    "DEFAULT_CALL_TIMEOUT",
    "REQUEST_ERRORS",
    "STATUS_ANSWERS",
    "TRANSPORT_ERRORS",
    "Answer",
    "SbatchClient",
    "SbatchError",
    "SbatchRefused",
    "SbatchRequestInvalid",
    "SbatchTls",
    "SbatchUnavailable",
    "SbatchUntrusted",
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

SHOWN_HASH: Final = 64
"""Characters of a location hash an error message quotes (the customer chose it; the message may
go on chain as the job's ``lastError``)."""


# --- errors ------------------------------------------------------------------------------------


class SbatchError(Exception):
    """Base of the sbatch client's errors."""


class ScriptNotFound(SbatchError):
    """The service has no script under that location hash (never stored, or expired)."""

    delivery: ClassVar[Delivery] = Delivery.ANSWERED


class ScriptAccessDenied(SbatchError):
    """The service refused us: bad signature, or the job is not this customer's / provider's."""

    delivery: ClassVar[Delivery] = Delivery.ANSWERED


class SbatchRefused(SbatchError):
    """Another definite refusal from the service (e.g. ``INVALID_ARGUMENT``): asking again gets
    the same answer."""

    delivery: ClassVar[Delivery] = Delivery.ANSWERED


class SbatchRequestInvalid(SbatchRefused):
    """The request cannot be encoded (a job id, customer address or location hash that protobuf
    or the grid's formats refuse): nothing was sent, and it would be refused if it were."""

    delivery: ClassVar[Delivery] = Delivery.NEVER_SENT


class SbatchUnavailable(SbatchError):
    """The service could not be reached (or kept saying UNAVAILABLE) after every attempt. A fetch
    changes nothing on the service but a spent challenge: fetching again is harmless."""

    delivery: ClassVar[Delivery] = Delivery.MAY_HAVE_TAKEN_EFFECT


class SbatchUntrusted(SbatchUnavailable):
    """The service's TLS certificate is not trusted (by ``ca_file`` or the system's roots): not
    retried, since the certificate will not change between attempts."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"TLS certificate not trusted: {detail}")


# --- pure parts --------------------------------------------------------------------------------


class Answer(enum.Enum):
    """What a gRPC status means for a fetch."""

    RETRY = "retry"
    NOT_FOUND = "not found"
    DENIED = "denied"
    REFUSED = "refused"


STATUS_ANSWERS: Final[Mapping[Status, Answer]] = {
    Status.UNAVAILABLE: Answer.RETRY,
    Status.DEADLINE_EXCEEDED: Answer.RETRY,
    Status.INTERNAL: Answer.RETRY,  # the service could not read the chain: it may next time
    Status.RESOURCE_EXHAUSTED: Answer.RETRY,
    Status.ABORTED: Answer.RETRY,
    Status.UNKNOWN: Answer.RETRY,
    Status.NOT_FOUND: Answer.NOT_FOUND,
    Status.UNAUTHENTICATED: Answer.DENIED,
    Status.PERMISSION_DENIED: Answer.DENIED,
}
"""The service's gRPC error statuses; every other one (``INVALID_ARGUMENT``,
``FAILED_PRECONDITION``, ...) is :attr:`Answer.REFUSED`."""


def classify(status: Status) -> Answer:
    """How a fetch treats a gRPC error status from the service (:data:`STATUS_ANSWERS`)."""
    return STATUS_ANSWERS.get(status, Answer.REFUSED)


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
            raise SbatchError(f"cannot load the sbatch CA file {self.ca_file}: {exc}") from exc
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        return context


# --- the library's exceptions and the service's answers as ours ----------------------------


class _Retry(Exception):
    """One attempt failed in a way worth another attempt; the message says how."""


class _Unreached(_Retry):
    """One attempt failed on the way (the kept connection is dropped)."""


TRANSPORT_ERRORS: Final[ErrorTable] = {
    ssl.SSLCertVerificationError: SbatchUntrusted,  # before OSError: it is one, never retried
    OSError: _Unreached,  # refused, reset, unreachable, timed out (TimeoutError); ssl.SSLError
    EOFError: _Unreached,
    ProtocolError: _Unreached,
    StreamTerminatedError: _Unreached,
    h2.exceptions.H2Error: _Unreached,
}
"""One attempt's transport failures: retried (the request may not have reached the service), except
an untrusted certificate. gRPC statuses are answers: :data:`STATUS_ANSWERS`."""

ANSWER_ERRORS: Final[Mapping[Answer, tuple[Callable[[str], Exception], str]]] = {
    Answer.RETRY: (_Retry, "sbatch service answered {what}"),
    Answer.NOT_FOUND: (ScriptNotFound, "sbatch service has no script for {what}"),
    Answer.DENIED: (ScriptAccessDenied, "sbatch service refused {what} to us"),
    Answer.REFUSED: (SbatchRefused, "sbatch service refused {what}"),
}
"""Each answer's error, and how its message says what the service did (the message may go on
chain as the job's ``lastError``: it names the job and the script, not the endpoint)."""

REQUEST_ERRORS: Final[ErrorTable] = {ValueError: SbatchRequestInvalid}
"""Building the request: a value protobuf or :mod:`actors.grid` refuses (never sent)."""


def _shown(location_hash: str) -> str:
    """The location hash as an error message quotes it (bounded)."""
    if len(location_hash) <= SHOWN_HASH:
        return repr(location_hash)
    return f"{location_hash[:SHOWN_HASH]!r}... ({len(location_hash)} characters)"


# --- the client --------------------------------------------------------------------------------


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
        grid_logger_url: str = "",
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
            # from None on purpose: the parser's message may quote the key
            raise SbatchError("the provider private key is not a valid wallet key") from None
        self.call_timeout = call_timeout
        self.attempts = attempts
        self.backoff = backoff
        self._rng = rng if rng is not None else random.Random()
        self.fetches = 0
        self.retries = 0
        self._channel: Channel | None = None
        self.grid_logger_url = grid_logger_url
        """The grid logger the service named in its last ``GetSBatch`` answer (until one is
        named: the one given here, may be empty); :mod:`actors.grid_logger` writes there."""

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context towards the grid's services (None: cleartext)."""
        return self._ssl

    def __repr__(self) -> str:
        return f"SbatchClient({self.endpoint!r}, provider={self.provider})"

    async def fetch(self, job: str, customer: str, batch_location_hash: str) -> str:
        """The batch script of ``job`` (``0x`` id) requested by ``customer`` (``0x`` address).

        Raises :class:`ScriptNotFound`, :class:`ScriptAccessDenied`, :class:`SbatchRefused`
        (:class:`SbatchRequestInvalid` for a request that cannot be encoded),
        :class:`SbatchUntrusted` or, once every attempt failed, :class:`SbatchUnavailable` (from
        the last attempt's failure).
        """
        with map_exceptions(REQUEST_ERRORS, f"no sbatch request for job {job[:80]!r}"):
            request = sbatch_pb2.GetSBatchRequest(
                batch_location_hash=batch_location_hash,
                provider_address=bytes.fromhex(self.provider[2:]),
                customer_address=bytes.fromhex(address(customer)[2:]),
                job_id=job_id(job),
            )
        self.fetches += 1
        last: _Retry | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                script: str = await trio_asyncio.aio_as_trio(self._attempt)(request)
                return script
            except _Retry as exc:
                last = exc
            if attempt < self.attempts:
                self.retries += 1
                await trio.sleep(self.backoff.delay(attempt, self._rng))
        raise SbatchUnavailable(
            f"sbatch service {self.endpoint} unreachable after {self.attempts} attempts "
            f"for job {request.job_id}: {last}"
        ) from last

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
        that the next attempt connects afresh (:data:`TRANSPORT_ERRORS`), a gRPC status is the
        service's answer (:data:`STATUS_ANSWERS`)."""
        channel = self._connected()
        try:
            with map_exceptions(TRANSPORT_ERRORS, f"sbatch service {self.endpoint}"):
                try:
                    return await self._get_sbatch(channel, request)
                except GRPCError as exc:
                    raise self._answer(exc, request) from exc
        except (_Unreached, SbatchUntrusted):
            self._disconnect()
            raise

    async def _get_sbatch(self, channel: Channel, request: sbatch_pb2.GetSBatchRequest) -> str:
        auth = sbatch_grpc.AuthAPIStub(channel)
        challenge = await auth.Challenge(sbatch_pb2.ChallengeRequest(), timeout=self.call_timeout)
        signed = sbatch_pb2.GetSBatchRequest()
        signed.CopyFrom(request)
        signed.challenge = bytes(challenge.challenge)
        signed.signed_challenge = sign_challenge(bytes(challenge.challenge), self._key)
        reply = await sbatch_grpc.SBatchAPIStub(channel).GetSBatch(
            signed, timeout=self.call_timeout
        )
        if reply.grid_logger_url:
            self.grid_logger_url = str(reply.grid_logger_url)
        return str(reply.sbatch)

    def _answer(self, error: GRPCError, request: sbatch_pb2.GetSBatchRequest) -> Exception:
        """Our error for the service's answer ``error`` (:data:`ANSWER_ERRORS`)."""
        ours, says = ANSWER_ERRORS[classify(error.status)]
        detail = f"{error.status.name}: {(error.message or 'no message')[:200]}"
        what = f"job {request.job_id} (script {_shown(request.batch_location_hash)})"
        return ours(f"{says.format(what=what)}: {detail}")
