"""CallbackServerActor: the gRPC server the SLURM side reports job states to.

It serves, on one listen address (TLS when a certificate and key are configured, ALPN ``h2``):

- ``supervisor.v1alpha1.JobAPI/SetJobStatus``: a job's new state from the SLURM side (RUNNING at
  prolog time; FINISHED, FAILED, CANCELLED or OUT_OF_CREDITS with the duration in seconds and
  the raw exit code when it ends). Wire-compatible with the grid's C++ SLURM plugins and with our
  own reporter (``grid-supervisor report``).
- ``supervisor.v1alpha1.SshAPI/FetchAuthorizedKeys``: the supervisor's SSH public key, one
  ``authorized_keys`` line, for the login node's ``AuthorizedKeysCommand``.
- ``grpc.health.v1.Health``: always SERVING while the server runs.

Who may call. With ``allowed_sources`` (the setting ``callbacks.allowedSources``: the CIDRs of
slurmctld, the login node and the compute nodes), a call from any other address is refused with
PERMISSION_DENIED before its handler runs, and counted (``source_refused``). The real C++ plugins
cannot present a secret, so this list is what keeps strangers' reports out. Behind a TLS proxy,
the peer is the proxy. Each address may then send at most ``peer_rate`` reports a second (bursts
of ``peer_burst``); beyond, RESOURCE_EXHAUSTED (the reporter keeps the report and retries).

A report is never lost once acknowledged. ``SetJobStatus``:

1. authenticates the reporter (see below) and decodes the wire message into the one shape a
   report has from then on, :class:`~actors.grid.Report` (:func:`decode_report`; the protobuf
   message goes no further than this module). CANCELLING is ignored: answered OK, nothing
   stored; UNSPECIFIED and PANICKED are refused with INVALID_ARGUMENT, as is a name that is not
   ``0x`` + 64 hex digits;
2. looks the job up (:class:`~actors.records.JobRecords`): a job this supervisor has no record
   of is refused with NOT_FOUND **without any write**; a settled job's report (a reporter's late
   repeat) is answered OK and dropped;
3. **writes the report to the store's reports inbox** (:class:`~actors.records.ReportInbox`;
   identical reports share a key, so a repeat is stored once);
4. answers OK (UNAVAILABLE if the store failed: the reporter then keeps it and retries);
5. only then tells the actor named ``"jobs"`` that same record (authenticated or not, stamped
   with when it arrived). A duplicate is not told again. If ``"jobs"`` is not there (not started
   yet, restarting too long), the report simply stays in the inbox: the job's actor reads it
   when it starts, and the reaper has it read again when it finds it waiting.

Reporter authentication (the seam for "refuse forgeries"): the C++ plugins send no credentials,
so by default reports are accepted and recorded with ``authenticated=False``; the job side
cross-checks those with SLURM before acting. Our own reporters send a shared secret as the binary
metadata entry :data:`SECRET_METADATA_KEY`; a report carrying the right secret is recorded with
``authenticated=True``; a wrong secret is always refused (UNAUTHENTICATED); with ``require_secret``
on, a report without it is refused too and nothing is stored.

gRPC runs on the process's single asyncio loop (grpclib through trio-asyncio); the handlers cross
back into trio with ``trio_asyncio.trio_as_aio`` for the store and the actor system.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeAlias

import msgspec
import trio
import trio_asyncio
from grpclib.const import Status
from grpclib.events import RecvRequest, listen
from grpclib.exceptions import GRPCError
from grpclib.health.service import Health
from grpclib.server import Server, Stream

from actors.grid import JobStatus, Report
from actors.job.machine import Phase
from actors.records import JobRecords, ReportInbox
from protos.supervisor.v1alpha1 import job_grpc, job_pb2, ssh_grpc, ssh_pb2
from runtime.actor import Actor, ActorStatistics
from runtime.errors import ActorSystemError
from runtime.rates import KeyedBuckets
from runtime.store import Store, StoreError

__all__ = [
    "ACTOR_NAME",
    "SECRET_METADATA_KEY",
    "AllowedSources",
    "CallbackServerActor",
    "CallbackSetupError",
    "CallbackStatistics",
    "GetCallbackStatistics",
    "InvalidReport",
    "ReporterRefused",
    "authenticate",
    "authorized_keys_line",
    "chain_status",
    "decode_report",
    "peer_host",
]

log = logging.getLogger(__name__)

ACTOR_NAME: Final = "callbacks"
JOBS_ACTOR: Final = "jobs"

SECRET_METADATA_KEY: Final = "x-grid-reporter-secret-bin"
"""gRPC metadata key (binary, base64 on the wire) of the reporters' shared secret."""

FORWARD_WAIT: Final = 10.0
"""Seconds a report waits for ``"jobs"`` to accept it before it is left to recovery."""

CLOSE_WAIT: Final = 2.0
"""Seconds in-flight handlers get to finish when the server closes."""

PEER_RATE: Final = 50.0
PEER_BURST: Final = 500.0
"""Reports per second one address may send (sustained, and in a burst): slurmctld reports every
job of the cluster from one address, so the burst is a whole cluster's worth of endings."""

LOGGED_REFUSED_SOURCES: Final = 256
"""Refused addresses named in the log (each once); later ones are only counted."""

_JOB_NAME = re.compile(r"0x[0-9a-fA-F]{64}")

# supervisor.v1alpha1.JobStatus on the wire -> the chain's status (wire-interfaces.md section 4).
_WIRE_TO_CHAIN: Final[dict[int, JobStatus]] = {
    job_pb2.JOB_STATUS_PENDING: JobStatus.PENDING,
    job_pb2.JOB_STATUS_META_SCHEDULED: JobStatus.META_SCHEDULED,
    job_pb2.JOB_STATUS_SCHEDULED: JobStatus.SCHEDULED,
    job_pb2.JOB_STATUS_RUNNING: JobStatus.RUNNING,
    job_pb2.JOB_STATUS_CANCELLED: JobStatus.CANCELLED,
    job_pb2.JOB_STATUS_FINISHED: JobStatus.FINISHED,
    job_pb2.JOB_STATUS_FAILED: JobStatus.FAILED,
    job_pb2.JOB_STATUS_OUT_OF_CREDITS: JobStatus.OUT_OF_CREDITS,
}


# --- errors ------------------------------------------------------------------------------------


class CallbackSetupError(Exception):
    """The server cannot be set up: unreadable TLS files or SSH key, a bad secret setting."""


class InvalidReport(Exception):
    """A report that can never be acted on (answered INVALID_ARGUMENT)."""


class ReporterRefused(Exception):
    """The reporter failed authentication (answered UNAUTHENTICATED)."""


# --- messages ------------------------------------------------------------------------------------


class GetCallbackStatistics(msgspec.Struct, frozen=True):
    """Ask the actor for :class:`CallbackStatistics`."""


class CallbackStatistics(ActorStatistics, frozen=True, kw_only=True):
    """The callback server now: where it listens, and its reports by outcome since it last
    started."""

    host: str
    port: int
    tls: bool
    sources: str
    """Who may call: the allowed source networks, or that any address may."""
    received: int
    """Reports stored (new ones)."""
    duplicates: int
    ignored: int
    """CANCELLING reports, answered OK and dropped."""
    refused: int
    """Reports refused as invalid, unauthenticated, or because the store failed."""
    forwarded: int
    left_for_recovery: int
    """Stored reports ``"jobs"`` did not take; they wait in the inbox."""
    unknown_job: int = 0
    """Reports for a job this supervisor has no record of (NOT_FOUND, nothing written)."""
    settled: int = 0
    """Reports for a job already settled (answered OK, nothing written)."""
    rate_limited: int = 0
    """Reports over their address's rate (RESOURCE_EXHAUSTED)."""
    source_refused: int = 0
    """Calls from an address outside ``allowed_sources`` (PERMISSION_DENIED), any service."""

    def facts(self) -> dict[str, str]:
        """Where it listens, then only the counts that are not zero."""
        facts = {"listen": f"{self.host}:{self.port}", "tls": "on" if self.tls else "off"}
        facts["sources"] = self.sources
        for name, text in super().facts().items():
            if name not in ("host", "port", "tls", "sources") and text != "0":
                facts[name] = text
        return facts


CallbackMessage: TypeAlias = GetCallbackStatistics
CallbackReply: TypeAlias = CallbackStatistics


# --- pure decisions ----------------------------------------------------------------------------


def chain_status(wire: int) -> JobStatus | None:
    """The chain status a wire ``JobStatus`` reports; None for CANCELLING (ignored).

    Raises :class:`InvalidReport` for UNSPECIFIED, PANICKED (no reporter sends them) and values
    outside the enum.
    """
    if wire == job_pb2.JOB_STATUS_CANCELLING:
        return None
    status = _WIRE_TO_CHAIN.get(wire)
    if status is None:
        raise InvalidReport(f"unknown job status {wire}")
    return status


def authenticate(presented: bytes | None, secret: bytes | None, *, require: bool) -> bool:
    """Whether a report is authenticated; :class:`ReporterRefused` if it must be refused.

    A wrong secret is always refused; a missing one only when ``require`` is on.
    """
    if presented is not None and secret is not None:
        if hmac.compare_digest(presented, secret):
            return True
        raise ReporterRefused("wrong reporter secret")
    if require:
        raise ReporterRefused("reporter secret required")
    return False


def decode_report(
    request: job_pb2.SetJobStatusRequest, *, authenticated: bool, received_at: float
) -> Report | None:
    """The :class:`~actors.grid.Report` a ``SetJobStatusRequest`` carries; None when it is to
    be ignored (CANCELLING).

    Raises :class:`InvalidReport` for a name that is not ``0x`` + 64 hex digits or a status
    that cannot be reported.
    """
    name = str(request.name)
    if not _JOB_NAME.fullmatch(name):
        raise InvalidReport(f"job name is not 0x + 64 hex digits: {name[:80]!r}")
    status = chain_status(int(request.status))
    if status is None:
        return None
    return Report(
        job_id=name.lower(),
        slurm_job_id=int(request.id),
        status=status,
        duration_seconds=int(request.duration),
        exit_code=int(request.exit_code),
        authenticated=authenticated,
        received_at=received_at,
    )


Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowedSources:
    """The addresses that may call the callback port: any (``cidrs`` None), or those inside one
    of ``cidrs`` (``10.0.0.0/24``, ``2001:db8::/64``, ``127.0.0.1``: a bare address is one host).
    An IPv4 peer seen as IPv6 (``::ffff:10.0.0.5``, on a dual-stack listener) counts as IPv4."""

    __slots__ = ("networks",)

    def __init__(self, cidrs: Sequence[str] | None) -> None:
        self.networks: tuple[Network, ...] | None = None
        if cidrs is None:
            return
        networks = []
        for text in cidrs:
            try:
                networks.append(ipaddress.ip_network(str(text).strip(), strict=False))
            except ValueError:
                raise CallbackSetupError(
                    f"allowed source {str(text)[:80]!r} is not an address or a CIDR"
                ) from None
        self.networks = tuple(networks)

    @property
    def restricted(self) -> bool:
        return self.networks is not None

    def allows(self, host: str | None) -> bool:
        """Whether a peer at ``host`` may call (an unknown or unreadable peer may not, once a
        list is set)."""
        if self.networks is None:
            return True
        if host is None:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def __str__(self) -> str:
        if self.networks is None:
            return "any"
        return ", ".join(str(network) for network in self.networks) or "none"


def peer_host(addr: object) -> str | None:
    """The host of a transport's ``peername`` (``(host, port)`` or, for IPv6,
    ``(host, port, flow, scope)``), without an IPv6 zone; None when there is none."""
    if isinstance(addr, tuple) and addr and isinstance(addr[0], str):
        return addr[0].split("%", 1)[0]
    return None


def authorized_keys_line(private_key: bytes) -> str:
    """The ``authorized_keys`` line (``ssh-ed25519 AAAA...``, no comment, newline-terminated)
    of the public half of an OpenSSH or PEM private key. Errors never show the key."""
    import asyncssh

    try:
        key = asyncssh.import_private_key(private_key)
    except (asyncssh.KeyImportError, ValueError, TypeError):
        raise CallbackSetupError("the SSH private key cannot be read") from None
    algorithm = bytes(key.algorithm).decode("ascii")
    return f"{algorithm} {base64.b64encode(bytes(key.public_data)).decode('ascii')}\n"


def server_tls(cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext | None:
    """The server SSL context (ALPN ``h2``) for a certificate chain and key, None for neither."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise CallbackSetupError("TLS needs both a certificate file and a key file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise CallbackSetupError(f"cannot load TLS certificate {cert_file}: {exc}") from None
    context.set_alpn_protocols(["h2"])
    return context


# --- gRPC services (asyncio side) --------------------------------------------------------------


class _Answer(msgspec.Struct, frozen=True):
    status: Status
    message: str | None = None
    forward: Report | None = None


class _JobAPI(job_grpc.JobAPIBase):
    def __init__(self, actor: CallbackServerActor) -> None:
        self._actor = actor

    async def SetJobStatus(
        self, stream: Stream[job_pb2.SetJobStatusRequest, job_pb2.SetJobStatusResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        if not self._actor._admit(peer_host(stream.peer.addr())):
            await stream.send_trailing_metadata(
                status=Status.RESOURCE_EXHAUSTED,
                status_message="too many reports from this address; retry later",
            )
            return
        metadata: Mapping[str, Any] = stream.metadata or {}
        presented = metadata.get(SECRET_METADATA_KEY)
        if presented is not None and not isinstance(presented, bytes):
            presented = str(presented).encode()
        answer: _Answer = await trio_asyncio.trio_as_aio(self._actor._receive)(request, presented)
        if answer.status is not Status.OK:
            await stream.send_trailing_metadata(status=answer.status, status_message=answer.message)
            return
        await stream.send_message(job_pb2.SetJobStatusResponse())
        await stream.send_trailing_metadata()
        if answer.forward is not None:
            await trio_asyncio.trio_as_aio(self._actor._forward_soon)(answer.forward)


class _SshAPI(ssh_grpc.SshAPIBase):
    def __init__(self, authorized_keys: str) -> None:
        self._reply = ssh_pb2.FetchAuthorizedKeysResponse(authorized_keys=authorized_keys)

    async def FetchAuthorizedKeys(
        self,
        stream: Stream[ssh_pb2.FetchAuthorizedKeysRequest, ssh_pb2.FetchAuthorizedKeysResponse],
    ) -> None:
        await stream.recv_message()
        await stream.send_message(self._reply)


# --- the actor ---------------------------------------------------------------------------------


class CallbackServerActor(Actor[CallbackMessage, CallbackReply]):
    """Runs the callback gRPC server for as long as the actor runs.

    ``listen_port`` 0 picks a free port (see :attr:`port` once started). ``ssh_private_key`` is
    the supervisor's SSH private key (OpenSSH or PEM bytes); only its public half is served.
    ``reporter_secret`` is the shared secret of our own reporters (None: none configured);
    ``require_secret`` refuses reports without it (needs a secret). ``allowed_sources``: the
    CIDRs that may call (None: any address); ``peer_rate``/``peer_burst``: reports per second
    one address may send.
    """

    __slots__ = (
        "_authorized_keys",
        "_counts",
        "_inbox",
        "_jobs_name",
        "_listen_host",
        "_logged_sources",
        "_peers",
        "_records",
        "_require_secret",
        "_secret",
        "_server",
        "_sources",
        "_ssl",
        "host",
        "port",
    )

    def __init__(
        self,
        *,
        listen_host: str,
        listen_port: int,
        ssh_private_key: bytes,
        store: Store,
        tls_cert_file: Path | None = None,
        tls_key_file: Path | None = None,
        reporter_secret: bytes | None = None,
        require_secret: bool = False,
        allowed_sources: Sequence[str] | None = None,
        peer_rate: float = PEER_RATE,
        peer_burst: float = PEER_BURST,
        name: str = ACTOR_NAME,
        jobs_name: str = JOBS_ACTOR,
    ) -> None:
        super().__init__(name)
        if require_secret and not reporter_secret:
            raise CallbackSetupError("requiring the reporter secret needs a secret configured")
        self._listen_host = listen_host
        self.host = listen_host
        self.port = listen_port
        self._ssl = server_tls(tls_cert_file, tls_key_file)
        self._authorized_keys = authorized_keys_line(ssh_private_key)
        self._records = JobRecords(store)
        self._inbox = ReportInbox(store)
        self._secret = reporter_secret or None
        self._require_secret = require_secret
        self._sources = AllowedSources(allowed_sources)
        self._peers = KeyedBuckets(peer_rate, peer_burst)
        self._logged_sources: set[str] = set()
        self._jobs_name = jobs_name
        self._server: Server | None = None
        self._counts = dict.fromkeys(
            (
                *("received", "duplicates", "ignored", "refused", "forwarded"),
                *("left_for_recovery", "unknown_job", "settled", "rate_limited"),
                "source_refused",
            ),
            0,
        )

    # --- life cycle ------------------------------------------------------------------------------

    async def started(self) -> None:
        """Listen before the actor reports itself started."""
        server = Server([_JobAPI(self), _SshAPI(self._authorized_keys), Health()])
        listen(server, RecvRequest, self._check_source)
        if not self._sources.restricted:
            log.warning(
                "callbacks.allowedSources is not set: any address that reaches the callback "
                "port may send reports (they are cross-checked with SLURM)"
            )
        host = self._listen_host or None  # "" (as in ":3000") means every interface
        try:
            await trio_asyncio.aio_as_trio(server.start)(host, self.port, ssl=self._ssl)
        except OSError as exc:
            raise CallbackSetupError(
                f"cannot listen on {self._listen_host or '*'}:{self.port}: {exc.strerror or exc}"
            ) from exc
        self._server = server
        sockets = getattr(getattr(server, "_server", None), "sockets", None) or ()
        if sockets:
            bound: Any = sockets[0].getsockname()
            self.host, self.port = str(bound[0]), int(bound[1])
        self.spawn(self._close_when_done, server)

    async def _close_when_done(self, server: Server) -> None:
        """Keep the server open while the actor runs; close it however the actor ends."""
        try:
            await trio.sleep_forever()
        finally:
            server.close()
            with trio.move_on_after(CLOSE_WAIT) as scope:
                scope.shield = True
                await trio_asyncio.aio_as_trio(server.wait_closed)()
            self._server = None

    async def handle(self, message: CallbackMessage) -> CallbackReply:
        return self.statistics()

    def statistics(self) -> CallbackStatistics:
        fields: dict[str, Any] = {**self.common_statistics(), **self._counts}
        return CallbackStatistics(
            **fields,
            host=self.host,
            port=self.port,
            tls=self._ssl is not None,
            sources=str(self._sources),
        )

    # --- who may call (asyncio side; no awaits, so plain counters are safe) --------------------

    async def _check_source(self, event: RecvRequest) -> None:
        """Before any handler: refuse a caller outside the allowed sources."""
        host = peer_host(event.peer.addr())
        if self._sources.allows(host):
            return
        self._counts["source_refused"] += 1
        shown = host or "an unknown address"
        if shown not in self._logged_sources and len(self._logged_sources) < LOGGED_REFUSED_SOURCES:
            self._logged_sources.add(shown)
            log.warning(
                "callbacks: refused %s from %s (not in callbacks.allowedSources: %s)",
                event.method_name,
                shown,
                self._sources,
            )
        raise GRPCError(Status.PERMISSION_DENIED, "this address may not call the supervisor")

    def _admit(self, host: str | None) -> bool:
        """Whether the caller at ``host`` is within its report rate (counted when not)."""
        if self._peers.try_take(host or "", time.monotonic()):
            return True
        self._counts["rate_limited"] += 1
        return False

    # --- reports (trio side) ----------------------------------------------------------------------

    async def _receive(
        self, request: job_pb2.SetJobStatusRequest, presented: bytes | None
    ) -> _Answer:
        """Check, store, and decide the answer of one report (before anything is answered)."""
        try:
            authenticated = authenticate(presented, self._secret, require=self._require_secret)
            report = decode_report(request, authenticated=authenticated, received_at=time.time())
        except ReporterRefused as exc:
            return self._refuse(Status.UNAUTHENTICATED, str(exc))
        except InvalidReport as exc:
            return self._refuse(Status.INVALID_ARGUMENT, str(exc))
        if report is None:
            self._counts["ignored"] += 1
            return _Answer(Status.OK)
        try:
            job = await self._records.get(report.job_id)
            if job is None:
                self._counts["unknown_job"] += 1
                return _Answer(Status.NOT_FOUND, f"this supervisor has no job {report.job_id}")
            if job.phase is Phase.DONE:
                self._counts["settled"] += 1
                return _Answer(Status.OK)
            fresh = await self._inbox.offer(report)
        except StoreError as exc:
            self.note_error(exc)
            return self._refuse(Status.UNAVAILABLE, "the supervisor cannot record reports now")
        if not fresh:
            self._counts["duplicates"] += 1
            return _Answer(Status.OK)
        self._counts["received"] += 1
        return _Answer(Status.OK, forward=report)

    def _refuse(self, status: Status, reason: str) -> _Answer:
        self._counts["refused"] += 1
        return _Answer(status, reason)

    async def _forward_soon(self, report: Report) -> None:
        """After the answer went out: hand the report to ``"jobs"`` in the background."""
        try:
            self.spawn(self._forward, report)
        except ActorSystemError:  # stopping: the report waits in the inbox for recovery
            self._counts["left_for_recovery"] += 1

    async def _forward(self, report: Report) -> None:
        with trio.move_on_after(FORWARD_WAIT):
            try:
                await self.ref(self._jobs_name).tell(report)
            except ActorSystemError:
                pass
            else:
                self._counts["forwarded"] += 1
                return
        self._counts["left_for_recovery"] += 1
