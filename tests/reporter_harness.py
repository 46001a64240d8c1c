"""What the reporter's tests share: a real gRPC JobAPI server on an ephemeral loopback port that
records every ``SetJobStatus`` with the secret it carried (in a thread of its own, so the reporter
runs in the test's thread as SLURM would run it), a way to run ``grid-supervisor report`` in this
process with an environment of the test's choosing, and spool files written by hand."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from cli import report
from protos.supervisor.v1alpha1 import job_grpc, job_pb2

HOST = "127.0.0.1"
SECRET = b"s3cret-of-the-reporters"
NOBODY = 65534
"""A uid that is not the test's: files 'planted by another user' are chowned to it."""


def job(n: int) -> str:
    return f"0x{n:064x}"


class Received(msgspec.Struct, frozen=True):
    name: str
    slurm_job_id: int
    status: int
    duration: int
    exit_code: int
    secret: bytes | None


Answer = Callable[[job_pb2.SetJobStatusRequest], tuple[Status, str] | None]
"""How the server answers a request: None accepts it, (status, message) refuses it."""


class _JobAPI(job_grpc.JobAPIBase):
    def __init__(self, recorder: RecordingSupervisor) -> None:
        self._recorder = recorder

    async def SetJobStatus(self, stream: Stream[Any, Any]) -> None:
        request = await stream.recv_message()
        assert request is not None
        refusal = self._recorder.answer(request)
        if refusal is not None:
            raise GRPCError(*refusal)
        secret = (stream.metadata or {}).get(report.SECRET_METADATA_KEY)
        self._recorder.record(
            Received(
                request.name,
                request.id,
                request.status,
                request.duration,
                request.exit_code,
                secret,
            )
        )
        await stream.send_message(job_pb2.SetJobStatusResponse())


class RecordingSupervisor:
    """A plaintext JobAPI server on 127.0.0.1 (ephemeral port) in a thread of its own."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer: Answer = answer or (lambda _request: None)
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._socket = socket.socket()
        self._socket.bind((HOST, 0))
        self.port: int = self._socket.getsockname()[1]
        self._loop = asyncio.SelectorEventLoop()  # not the policy's: trio_asyncio may own it
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = Server([_JobAPI(self)])
        self._loop.run_until_complete(server.start(sock=self._socket))
        self._server = server
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def __enter__(self) -> RecordingSupervisor:
        self._thread.start()
        assert self._ready.wait(10), "the recording server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- running the reporter ---------------------------------------------------------------------


class Ran(msgspec.Struct, frozen=True):
    code: int | str | None
    log: str
    raised: str = ""
    """The traceback of an exception that escaped the command (there must be none)."""


def reporter(args: list[str], env: Mapping[str, str]) -> Ran:
    """``grid-supervisor report ARGS`` in this process, with exactly ``env`` as its
    environment; its exit code, what it logged, and any exception that escaped it."""
    log = io.StringIO()
    raised = ""
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())  # as in the real command
    try:
        with mock.patch.dict(os.environ, dict(env), clear=True), contextlib.redirect_stderr(log):
            try:
                code: int | str | None = report.main(args)
            except SystemExit as exc:
                code = exc.code
            except BaseException:
                code, raised = "raised", traceback.format_exc()
    finally:
        asyncio.set_event_loop_policy(policy)
    return Ran(code, log.getvalue(), raised)


def hook_env(
    mode: str, endpoint: str, spool: Path, slurm_id: int = 4242, **extra: str
) -> dict[str, str]:
    """The environment SLURM gives a hook for a grid job reporting to ``endpoint``."""
    env = {
        "PATH": "/usr/bin:/bin",
        "COMMENT": f"supervisor {endpoint}",
        "GRID_REPORT_SPOOL_DIR": str(spool),
        "GRID_REPORT_TLS": "0",
        "GRID_REPORT_TIMEOUT": "3",
    }
    if mode == "jobcomp":
        env.update(
            JOBID=str(slurm_id),
            JOBNAME=job(slurm_id),
            JOBSTATE="FAILED",
            EXITCODE="3:0",
            START="1795536896",
            END="1795537016",
        )
    else:
        env.update(SLURM_JOB_ID=str(slurm_id), SLURM_JOB_NAME=job(slurm_id))
    env.update(extra)
    return env


# --- spool files by hand ----------------------------------------------------------------------


def spooled_report(endpoint: str, slurm_id: int, **fields: Any) -> dict[str, Any]:
    """A spool file's content for a well-formed FINISHED report (fields override)."""
    content: dict[str, Any] = {
        "endpoint": endpoint,
        "name": job(slurm_id),
        "slurm_job_id": slurm_id,
        "status": report.FINISHED,
        "duration_seconds": 60,
        "exit_code": 0,
        "hook": "jobcomp",
    }
    content.update(fields)
    return content


def write_spooled(folder: Path, name: str, content: bytes | dict[str, Any]) -> Path:
    """A spool file as the reporter writes it (0600, in a 0700 folder made if missing)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    data = content if isinstance(content, bytes) else msgspec.json.encode(content)
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def spool_names(folder: Path) -> list[str]:
    """The reports still spooled (``*.json``, not hidden)."""
    with contextlib.suppress(FileNotFoundError):
        return sorted(
            p.name for p in folder.iterdir() if p.name.endswith(".json") and p.name[0] != "."
        )
    return []


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
