"""CallbackServerActor for real: under a runtime Supervisor, with a real store, a real grpclib
client, the real ``grid-supervisor report`` command and, last, a real SLURM job whose hooks
report to it. A test actor registered as "jobs" records what the server forwards; the jobs the
reports name have records in the store (the server refuses reports for any other job)."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
import trio
import trio_asyncio
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.health.v1 import health_grpc, health_pb2

from actors.callbacks import (
    SECRET_METADATA_KEY,
    CallbackServerActor,
    CallbackSetupError,
    CallbackStatistics,
    GetCallbackStatistics,
)
from actors.grid import ClaimedJob, JobDefinition, JobStatus, Report
from actors.job.machine import Job, Phase, ScriptFetched, Submitted, new_job, transition
from actors.records import JobRecords, ReportInbox
from cli import report as report_cli
from protos.supervisor.v1alpha1 import job_grpc, job_pb2, ssh_grpc, ssh_pb2
from runtime import Actor, ChildSpec, Supervisor
from runtime.store import Store, open_store
from testbed.env import TestbedEnv
from testbed.tls import TlsFiles, ensure_tls, tls_files

HOST = "127.0.0.1"
JOB = "0x" + "ab" * 32
SETTLE = 0.3
"""Seconds to wait for a forward that must *not* happen."""
REPO_ROOT = Path(__file__).resolve().parents[2]
REPORTER = [str(Path(sys.executable).parent / "grid-supervisor"), "report"]


def job(n: int) -> str:
    return f"0x{n:064x}"


def live_job(job_id: str, slurm_id: int = 7) -> Job:
    """The record of a job submitted to SLURM as ``slurm_id``."""
    claim = ClaimedJob(job_id, "0x" + "11" * 20, "0x" + "22" * 20, 10,
                       JobDefinition(0, 100, 1, 1, "h"))  # fmt: skip
    job, _ = new_job(claim)
    job, _ = transition(job, ScriptFetched("#!/bin/sh\n"))
    return transition(job, Submitted(slurm_id))[0]


#: The jobs the tests report about: each has a record, so the server takes their reports.
KNOWN_JOBS = (JOB, *(job(n) for n in range(10)))


def plain(report: Report) -> Report:
    """``report`` without who sent it and when (what the reporters' tests compare)."""
    return msgspec.structs.replace(report, authenticated=False, received_at=0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- the tree under test --------------------------------------------------------------------------


class Received:
    """What "jobs" was told, in order, with a way to wait for more."""

    def __init__(self) -> None:
        self.reports: list[Report] = []
        self._changed = trio.Event()

    def append(self, report: Report) -> None:
        self.reports.append(report)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int) -> None:
        while len(self.reports) < count:
            await self._changed.wait()


class Recorder(Actor[Report, None]):
    """Stands in for JobsSupervisor: remembers every report it is told."""

    def __init__(self, received: Received) -> None:
        super().__init__("jobs")
        self.received = received

    async def handle(self, message: Report) -> None:
        self.received.append(message)


class Harness(msgspec.Struct):
    server: CallbackServerActor
    store: Store
    received: Received

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def got(self) -> list[Report]:
        """The reports told to "jobs", without who sent them and when."""
        return [plain(report) for report in self.received.reports]

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Report]:
        with trio.fail_after(seconds):
            await self.received.wait_for(count)
        return self.got

    async def pending(self) -> list[Report]:
        return await ReportInbox(self.store).pending()


@asynccontextmanager
async def callback_tree(
    state: Path,
    *,
    port: int = 0,
    with_jobs: bool = True,
    tls: TlsFiles | None = None,
    secret: bytes | None = None,
    require: bool = False,
    ssh_key: bytes | None = None,
    known: tuple[str, ...] = KNOWN_JOBS,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """A root supervisor running "callbacks" (and "jobs", a Recorder, unless told not to); the
    jobs ``known`` have live records in the store; ``settings`` go to the server."""
    received = Received()
    key = ssh_key if ssh_key is not None else generated_ssh_key(state.parent)[0]
    async with open_store(state) as store:
        for job_id in known:
            await JobRecords(store).put(live_job(job_id))

        def server() -> CallbackServerActor:
            return CallbackServerActor(
                listen_host=HOST,
                listen_port=port,
                ssh_private_key=key,
                store=store,
                tls_cert_file=tls.server_cert if tls else None,
                tls_key_file=tls.server_key if tls else None,
                reporter_secret=secret,
                require_secret=require,
                **settings,
            )

        specs = [ChildSpec("callbacks", server)]
        if with_jobs:
            specs.append(ChildSpec("jobs", lambda: Recorder(received)))
        root = Supervisor("root", specs)
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            instance = root.registry.whereis("callbacks")
            assert isinstance(instance, CallbackServerActor)
            try:
                yield Harness(instance, store, received)
            finally:
                root.request_stop()


def generated_ssh_key(folder: Path) -> tuple[bytes, str]:
    """(private key, public line) made by the real ssh-keygen."""
    path = folder / "id_ed25519"
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-comment", "-f", str(path)],
            check=True,
        )
    return path.read_bytes(), Path(f"{path}.pub").read_text()


# --- a real gRPC client ---------------------------------------------------------------------------


def request(
    name: str = JOB,
    status: int = job_pb2.JOB_STATUS_RUNNING,
    *,
    slurm_id: int = 7,
    duration: int = 0,
    exit_code: int = 0,
) -> job_pb2.SetJobStatusRequest:
    return job_pb2.SetJobStatusRequest(
        name=name, id=slurm_id, duration=duration, status=cast(Any, status), exit_code=exit_code
    )


async def set_status(
    port: int,
    message: job_pb2.SetJobStatusRequest,
    *,
    context: ssl.SSLContext | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    async def call() -> None:
        async with Channel(HOST, port, ssl=context) as channel:
            await job_grpc.JobAPIStub(channel).SetJobStatus(
                message, timeout=5, metadata=dict(metadata or {})
            )

    await trio_asyncio.aio_as_trio(call)()


async def refused_with(port: int, message: job_pb2.SetJobStatusRequest, **kwargs: Any) -> Status:
    with pytest.raises(GRPCError) as caught:
        await set_status(port, message, **kwargs)
    return caught.value.status


# --- SetJobStatus ---------------------------------------------------------------------------------

WIRE_TO_CHAIN = [
    (job_pb2.JOB_STATUS_PENDING, JobStatus.PENDING),
    (job_pb2.JOB_STATUS_META_SCHEDULED, JobStatus.META_SCHEDULED),
    (job_pb2.JOB_STATUS_SCHEDULED, JobStatus.SCHEDULED),
    (job_pb2.JOB_STATUS_RUNNING, JobStatus.RUNNING),
    (job_pb2.JOB_STATUS_CANCELLED, JobStatus.CANCELLED),
    (job_pb2.JOB_STATUS_FINISHED, JobStatus.FINISHED),
    (job_pb2.JOB_STATUS_FAILED, JobStatus.FAILED),
    (job_pb2.JOB_STATUS_OUT_OF_CREDITS, JobStatus.OUT_OF_CREDITS),
]


async def test_every_status_is_mapped_stored_and_forwarded(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state") as h:
        for n, (wire, _) in enumerate(WIRE_TO_CHAIN):
            await set_status(h.port, request(job(n), wire, slurm_id=n, duration=60 * n))
        expected = [
            Report(job(n), n, chain, 60 * n, 0) for n, (_, chain) in enumerate(WIRE_TO_CHAIN)
        ]
        assert sorted(await h.wait_for(len(expected)), key=lambda r: r.slurm_job_id) == expected
        assert [plain(r) for r in await h.pending()] == expected
        assert all(not r.authenticated for r in await h.pending())  # no secret configured

        await set_status(h.port, request(job(99), job_pb2.JOB_STATUS_CANCELLING))  # ignored
        await trio.sleep(SETTLE)
        assert len(h.got) == len(expected)
        assert len(await h.pending()) == len(expected)
        stats = await h.server.ask(GetCallbackStatistics())
        assert isinstance(stats, CallbackStatistics)
        assert (stats.received, stats.ignored, stats.forwarded) == (len(expected), 1, len(expected))


async def test_report_is_stored_before_the_answer(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state", with_jobs=False) as h:
        await set_status(
            h.port, request(status=job_pb2.JOB_STATUS_FINISHED, duration=125, exit_code=256)
        )
        assert [plain(r) for r in await h.pending()] == [
            Report(JOB, 7, JobStatus.FINISHED, 125, 256)
        ]
        # "jobs" is not running: the report waits in the inbox for recovery, it is not lost
        stats = await h.server.ask(GetCallbackStatistics())
        assert (stats.forwarded, stats.left_for_recovery) == (0, 1)
    async with open_store(tmp_path / "state") as store:  # and it survives the process
        pending = await ReportInbox(store).pending()
        assert [plain(r) for r in pending] == [Report(JOB, 7, JobStatus.FINISHED, 125, 256)]


async def test_duplicates_are_answered_but_forwarded_once(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state") as h:
        final = request(status=job_pb2.JOB_STATUS_FINISHED, duration=300)
        for _ in range(3):
            await set_status(h.port, final)
        await set_status(h.port, request(status=job_pb2.JOB_STATUS_RUNNING))
        await set_status(h.port, request(status=job_pb2.JOB_STATUS_RUNNING))  # a second node
        await h.wait_for(2)
        await trio.sleep(SETTLE)
        assert h.got == [
            Report(JOB, 7, JobStatus.FINISHED, 300, 0),
            Report(JOB, 7, JobStatus.RUNNING, 0, 0),
        ]
        assert len(await h.pending()) == 2
        stats = await h.server.ask(GetCallbackStatistics())
        assert (stats.received, stats.duplicates) == (2, 3)


async def test_invalid_reports_are_refused_and_not_stored(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state") as h:
        for name in ("", "wrap", JOB[2:], JOB + "00", "0x" + "zz" * 32):
            assert await refused_with(h.port, request(name)) is Status.INVALID_ARGUMENT
        for wire in (job_pb2.JOB_STATUS_UNSPECIFIED, job_pb2.JOB_STATUS_PANICKED):
            assert await refused_with(h.port, request(status=wire)) is Status.INVALID_ARGUMENT
        await trio.sleep(SETTLE)
        assert (h.got, await h.pending()) == ([], [])


async def test_a_taken_port_fails_the_start_clearly(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with open_store(tmp_path / "state") as store, trio.open_nursery() as nursery:
            server = CallbackServerActor(
                listen_host=HOST,
                listen_port=port,
                ssh_private_key=generated_ssh_key(tmp_path)[0],
                store=store,
            )
            with pytest.raises(CallbackSetupError, match=f"cannot listen on {HOST}:{port}"):
                await nursery.start(server.run)


async def test_the_stored_record_itself_is_told_to_jobs(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state", secret=b"s3cret") as h:
        await set_status(h.port, request(), metadata={SECRET_METADATA_KEY: b"s3cret"})
        await set_status(h.port, request(job(1)))
        await h.wait_for(2)
        told = sorted(h.received.reports, key=lambda r: r.job_id)
        stored = sorted(await h.pending(), key=lambda r: r.job_id)
        assert told == stored  # who sent it and when included: nothing is read back
        assert [r.authenticated for r in told] == [False, True]  # job(1) < JOB
        assert all(r.received_at > 0 for r in told)


async def test_reports_for_jobs_we_do_not_have_or_have_settled_are_not_stored(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state") as h:
        settled = msgspec.structs.replace(live_job(job(9)), phase=Phase.DONE)
        await JobRecords(h.store).put(settled)
        writes = h.store.statistics().writes
        unknown = request("0x" + "99" * 32, job_pb2.JOB_STATUS_FINISHED)
        assert await refused_with(h.port, unknown) is Status.NOT_FOUND
        await set_status(h.port, request(job(9), job_pb2.JOB_STATUS_FINISHED))  # a late repeat
        await trio.sleep(SETTLE)
        assert h.store.statistics().writes == writes
        assert (h.got, await h.pending()) == ([], [])
        stats = await h.server.ask(GetCallbackStatistics())
        assert (stats.unknown_job, stats.settled, stats.received) == (1, 1, 0)


async def test_an_address_over_its_rate_is_told_to_come_back_later(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state", peer_rate=0.001, peer_burst=3) as h:
        for n in range(3):
            await set_status(h.port, request(job(n)))
        over = request(job(3))
        assert await refused_with(h.port, over) is Status.RESOURCE_EXHAUSTED
        await h.wait_for(3)
        await trio.sleep(SETTLE)
        assert sorted(r.job_id for r in await h.pending()) == [job(n) for n in range(3)]
        stats = await h.server.ask(GetCallbackStatistics())
        assert (stats.received, stats.rate_limited) == (3, 1)


async def test_callers_outside_the_allowed_sources_are_refused_and_counted(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    elsewhere = ["10.0.0.0/8", "2001:db8::/32"]
    async with callback_tree(tmp_path / "elsewhere", allowed_sources=elsewhere) as h:
        assert await refused_with(h.port, request()) is Status.PERMISSION_DENIED

        async def health() -> None:
            async with Channel(HOST, h.port) as channel:
                await health_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )

        with pytest.raises(GRPCError) as caught:
            await trio_asyncio.aio_as_trio(health)()
        assert caught.value.status is Status.PERMISSION_DENIED  # every service of the port
        await trio.sleep(SETTLE)
        assert (h.got, await h.pending()) == ([], [])
        stats = await h.server.ask(GetCallbackStatistics())
        assert (stats.source_refused, stats.received) == (2, 0)
        assert stats.sources == "10.0.0.0/8, 2001:db8::/32"
    async with callback_tree(tmp_path / "loopback", allowed_sources=["127.0.0.1", "::1"]) as h:
        await set_status(h.port, request())
        assert await h.wait_for(1) == [Report(JOB, 7, JobStatus.RUNNING)]
        stats = await h.server.ask(GetCallbackStatistics())
        assert (stats.source_refused, stats.received) == (0, 1)


# --- reporter authentication ----------------------------------------------------------------------


async def test_required_secret_refuses_reports_without_it(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state", secret=b"s3cret", require=True) as h:
        assert await refused_with(h.port, request()) is Status.UNAUTHENTICATED
        wrong = {SECRET_METADATA_KEY: b"guess"}
        assert await refused_with(h.port, request(), metadata=wrong) is Status.UNAUTHENTICATED
        await trio.sleep(SETTLE)
        assert (h.got, await h.pending()) == ([], [])

        await set_status(h.port, request(), metadata={SECRET_METADATA_KEY: b"s3cret"})
        assert await h.wait_for(1) == [Report(JOB, 7, JobStatus.RUNNING)]
        (stored,) = await h.pending()
        assert stored.authenticated


async def test_optional_secret_marks_unauthenticated_reports(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state", secret=b"s3cret") as h:
        await set_status(h.port, request(job(1)))  # a C++ plugin: no credentials
        await set_status(h.port, request(job(2)), metadata={SECRET_METADATA_KEY: b"s3cret"})
        wrong = {SECRET_METADATA_KEY: b"guess"}
        assert await refused_with(h.port, request(job(3)), metadata=wrong) is Status.UNAUTHENTICATED
        await h.wait_for(2)
        stored = {r.job_id: r.authenticated for r in await h.pending()}
        assert stored == {job(1): False, job(2): True}


# --- SshAPI, Health, TLS --------------------------------------------------------------------------


async def test_authorized_keys_is_the_openssh_public_key(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    private, public = generated_ssh_key(tmp_path)
    async with callback_tree(tmp_path / "state", ssh_key=private) as h:

        async def fetch() -> str:
            async with Channel(HOST, h.port) as channel:
                reply = await ssh_grpc.SshAPIStub(channel).FetchAuthorizedKeys(
                    ssh_pb2.FetchAuthorizedKeysRequest(), timeout=5
                )
                return str(reply.authorized_keys)

        line = await trio_asyncio.aio_as_trio(fetch)()
    algorithm, blob, _comment = public.split()
    assert line == f"{algorithm} {blob}\n"


async def test_health_says_serving(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state") as h:

        async def check() -> int:
            async with Channel(HOST, h.port) as channel:
                reply = await health_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                return int(reply.status)

        assert await trio_asyncio.aio_as_trio(check)() == health_pb2.HealthCheckResponse.SERVING


def tls_of(env: TestbedEnv) -> TlsFiles:
    return tls_files(Path(env.sbatch.ca_cert).parent)


async def test_tls_with_the_testbed_ca(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path, testbed_env: TestbedEnv
) -> None:
    files = tls_of(testbed_env)
    async with callback_tree(tmp_path / "state", tls=files) as h:
        verified = ssl.create_default_context(cafile=str(files.ca_cert))
        verified.set_alpn_protocols(["h2"])
        await set_status(h.port, request(), context=verified)
        assert await h.wait_for(1) == [Report(JOB, 7, JobStatus.RUNNING)]
        with pytest.raises((OSError, GRPCError, StreamTerminatedError)):
            await set_status(h.port, request(job(2)))  # cleartext to a TLS port
        await trio.sleep(SETTLE)
        assert len(await h.pending()) == 1


# --- the reporter command -------------------------------------------------------------------------


def jobcomp_env(port: int, spool: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "JOBID": "4242",
        "JOBNAME": JOB,
        "JOBSTATE": "FAILED",
        "EXITCODE": "3:0",
        "START": "1795536896",
        "END": "1795537016",
        "COMMENT": f"supervisor {HOST}:{port}",
        "GRID_REPORT_SPOOL_DIR": str(spool),
        "GRID_REPORT_TLS": "0",
        "GRID_REPORT_TIMEOUT": "3",
        **extra,
    }


async def run_reporter(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [*REPORTER, *args], env=env, capture_stdout=True, capture_stderr=True, check=False
    )


async def test_reporter_delivers_a_jobcomp_report(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    async with callback_tree(tmp_path / "state", secret=b"s3cret") as h:
        (tmp_path / "secret").write_bytes(b"s3cret\n")
        env = jobcomp_env(
            h.port,
            spool,
            GRID_REPORT_SECRET_FILE=str(tmp_path / "secret"),
            GRID_REPORT_SUPERVISORS=f"{HOST}:{h.port}",
        )
        done = await run_reporter(["jobcomp"], env)
        assert done.returncode == 0, done.stderr
        assert await h.wait_for(1) == [Report(JOB, 4242, JobStatus.FAILED, 120, 768)]
        (stored,) = await h.pending()
        assert stored.authenticated
        assert b"outcome=delivered" in done.stderr
        assert list(spool.glob("*.json")) == []


async def test_reporter_verifies_the_supervisor_with_a_ca_file(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path, testbed_env: TestbedEnv
) -> None:
    files = tls_of(testbed_env)
    async with callback_tree(tmp_path / "state", tls=files) as h:
        env = jobcomp_env(h.port, tmp_path / "spool", GRID_REPORT_TLS="1")
        verified = {**env, "GRID_REPORT_CA_FILE": str(files.ca_cert)}
        done = await run_reporter(["jobcomp"], verified)
        assert b"outcome=delivered" in done.stderr, done.stderr
        assert await h.wait_for(1) == [Report(JOB, 4242, JobStatus.FAILED, 120, 768)]
        # a CA that did not sign the server's certificate: not delivered, spooled
        other_ca = ensure_tls(tmp_path / "other-ca").ca_cert
        done = await run_reporter(
            ["jobcomp"], {**env, "JOBID": "4243", "GRID_REPORT_CA_FILE": str(other_ca)}
        )
        assert done.returncode == 0 and b"outcome=spooled" in done.stderr, done.stderr
        assert len(list((tmp_path / "spool").glob("*.json"))) == 1


async def test_old_spooled_reports_expire(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    async with callback_tree(tmp_path / "state") as h:
        env = jobcomp_env(h.port, spool)
        old = report_cli.spool(
            report_cli.Report(f"{HOST}:{h.port}", JOB, 1, report_cli.FINISHED), spool
        )
        week_ago = old.stat().st_mtime - 8 * 86_400
        os.utime(old, (week_ago, week_ago))
        fresh = report_cli.spool(
            report_cli.Report(f"{HOST}:{h.port}", JOB, 2, report_cli.FINISHED), spool
        )
        done = await run_reporter(["--flush"], env)
        assert done.returncode == 0, done.stderr
        assert [r.slurm_job_id for r in await h.wait_for(1)] == [2]
        assert not fresh.exists()
        assert [p.name for p in (spool / "expired").iterdir()] == [old.name]
        await trio.sleep(SETTLE)
        assert len(h.got) == 1


async def test_reporter_talks_only_to_listed_supervisors(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    """A job comment naming another address (any SLURM user can write one) gets nothing, and
    the secret never leaves without a list of supervisors."""
    spool = tmp_path / "spool"
    (tmp_path / "secret").write_bytes(b"s3cret")
    async with callback_tree(tmp_path / "state", secret=b"s3cret") as h:
        listed_elsewhere = jobcomp_env(h.port, spool, GRID_REPORT_SUPERVISORS="10.0.0.1:3000")
        done = await run_reporter(["jobcomp"], listed_elsewhere)
        assert done.returncode == 0 and b"outcome=rejected" in done.stderr, done.stderr
        await trio.sleep(SETTLE)
        assert (h.got, list(spool.glob("*.json"))) == ([], [])

        unlisted = jobcomp_env(h.port, spool, GRID_REPORT_SECRET_FILE=str(tmp_path / "secret"))
        done = await run_reporter(["jobcomp"], unlisted)
        assert b"secret withheld" in done.stderr and b"outcome=delivered" in done.stderr
        await h.wait_for(1)
        (stored,) = await h.pending()
        assert not stored.authenticated  # delivered, but without the secret


async def test_reporter_ignores_other_jobs(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    async with callback_tree(tmp_path / "state") as h:
        for extra in ({"JOBNAME": "wrap"}, {"COMMENT": f"benchmark {HOST}:{h.port}"}):
            done = await run_reporter(["jobcomp"], jobcomp_env(h.port, tmp_path / "s", **extra))
            assert (done.returncode, done.stderr) == (0, b"")
        await trio.sleep(SETTLE)
        assert (h.got, await h.pending()) == ([], [])


async def test_reporter_spools_when_down_and_flush_delivers(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    env = jobcomp_env(port, spool)
    prolog_env = {
        **env,
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": JOB,
    }
    done = await run_reporter(["prolog"], prolog_env)  # the supervisor is down
    assert done.returncode == 0 and b"outcome=spooled" in done.stderr, done.stderr
    done = await run_reporter(["jobcomp"], env)
    assert done.returncode == 0 and b"outcome=spooled" in done.stderr, done.stderr
    files = sorted(spool.glob("*.json"))
    assert len(files) == 2
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    flushed = await run_reporter(["--flush"], env)
    assert flushed.returncode == 1  # still down: both remain
    assert len(list(spool.glob("*.json"))) == 2

    async with callback_tree(tmp_path / "state", port=port) as h:
        flushed = await run_reporter(["--flush"], env)
        assert flushed.returncode == 0, flushed.stderr
        got = await h.wait_for(2)
        assert got == [  # delivered in the order they were spooled
            Report(JOB, 4242, JobStatus.RUNNING),
            Report(JOB, 4242, JobStatus.FAILED, 120, 768),
        ]
        assert list(spool.glob("*.json")) == []
        again = await run_reporter(["--flush"], env)
        assert again.returncode == 0
        await trio.sleep(SETTLE)
        assert len(h.got) == 2


async def test_next_hook_run_sends_its_report_then_retries_the_spool(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    """A fresh report never waits behind spooled ones (whose supervisors may be long gone)."""
    port = free_port()
    spool = tmp_path / "spool"
    done = await run_reporter(["jobcomp"], jobcomp_env(port, spool))
    assert len(list(spool.glob("*.json"))) == 1, done.stderr
    async with callback_tree(tmp_path / "state", port=port) as h:
        other = jobcomp_env(port, spool, JOBID="4243", JOBNAME=job(5), JOBSTATE="COMPLETED")
        done = await run_reporter(["jobcomp"], {**other, "EXITCODE": "0:0"})
        assert done.returncode == 0, done.stderr
        got = await h.wait_for(2)
        assert [(r.slurm_job_id, r.status) for r in got] == [
            (4243, JobStatus.FINISHED),
            (4242, JobStatus.FAILED),
        ]
        assert list(spool.glob("*.json")) == []


# --- a real SLURM job, reported by the real hooks -------------------------------------------------


async def test_slurm_hooks_report_a_real_job(
    asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path, testbed_env: TestbedEnv
) -> None:
    """The testbed's SLURM runs slurm/*.sh: the controller prolog reports RUNNING and jobcomp
    reports FAILED with the raw exit code, over TLS (unverified, as the plugins do)."""
    name = "0x" + os.urandom(32).hex()
    # The testbed's hooks report only to its supervisor address (GRID_REPORT_SUPERVISORS).
    port = int(testbed_env.supervisor_callback.rsplit(":", 1)[1])
    tree = callback_tree(tmp_path / "state", port=port, tls=tls_of(testbed_env), known=(name,))
    async with tree as h:
        submitted = await trio.run_process(
            [
                "sbatch",
                "--parsable",
                f"--job-name={name}",
                f"--comment=supervisor {HOST}:{h.port}",
                f"--partition={testbed_env.slurm.partition}",
                "--output=/dev/null",
                "--wrap",
                "sleep 1; exit 3",
            ],
            capture_stdout=True,
            capture_stderr=True,
        )
        slurm_id = int(submitted.stdout.decode().split(";")[0])
        got = await h.wait_for(2, seconds=90)
    running, final = got
    assert running == Report(name, slurm_id, JobStatus.RUNNING)
    assert (final.job_id, final.slurm_job_id, final.status) == (name, slurm_id, JobStatus.FAILED)
    assert final.exit_code == 768
    assert 1 <= final.duration_seconds <= 30
