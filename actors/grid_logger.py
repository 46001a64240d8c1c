"""The grid logger client: write lines to a customer's job log (``logger.v1alpha1.LoggerAPI``).

The sbatch service names the grid logger in each ``GetSBatch`` answer (``grid_logger_url``,
``host:port``; :attr:`actors.sbatch.SbatchClient.grid_logger_url` keeps the last one named). The
supervisor writes there only when a job fails before it runs, so that the customer sees why
(wire-interfaces.md, "Grid logger"): one client-streaming ``Write`` per failure, one
``WriteRequest`` per line (``log_name`` the job's ``0x`` id, ``user`` the customer's lowercase
address, ``timestamp`` Unix nanoseconds). The lines come already sanitised and bounded
(:mod:`actors.customer_log`).

Never in the way of the job: each write is bounded in time (:data:`DEFAULT_TIMEOUT`, as the Go
supervisor's 5 s dial), opens its own connection and closes it, and every failure is one error,
:class:`GridLoggerUnavailable` (the table :data:`WRITE_ERRORS`, applied with
:func:`runtime.errors.map_exceptions`), which the job's port answers with an event the job
machine ignores. Writes, lines and failures are counted.

gRPC runs on asyncio (grpclib) inside the trio program, crossed with ``trio_asyncio``, as the
sbatch client does.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from typing import ClassVar, Final

import h2.exceptions
import trio
import trio_asyncio
from grpclib.client import Channel
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from actors.sbatch import split_endpoint
from protos.logger.v1alpha1 import logger_grpc, logger_pb2
from runtime.errors import Delivery, ErrorTable, map_exceptions

__all__ = [
    "DEFAULT_TIMEOUT",
    "WRITE_ERRORS",
    "GridLogger",
    "GridLoggerError",
    "GridLoggerUnavailable",
    "logger_endpoint",
]

DEFAULT_TIMEOUT: Final = 5.0
"""Seconds one write may take in all (connect, every line, the answer)."""

SCHEMES: Final = ("https://", "grpcs://", "dns:///")
"""Prefixes a ``grid_logger_url`` may carry before ``host:port`` (dropped)."""


class GridLoggerError(Exception):
    """Base of the grid logger client's errors."""


class GridLoggerUnavailable(GridLoggerError):
    """The log lines were not (all) taken: unreachable, refused, too slow, or a URL that names
    no endpoint. Some lines may have been written."""

    delivery: ClassVar[Delivery] = Delivery.MAY_HAVE_TAKEN_EFFECT


WRITE_ERRORS: Final[ErrorTable] = {
    GRPCError: GridLoggerUnavailable,  # the logger answered an error status
    OSError: GridLoggerUnavailable,  # refused, reset, unreachable, TLS (ssl.SSLError), timeout
    EOFError: GridLoggerUnavailable,
    ProtocolError: GridLoggerUnavailable,
    StreamTerminatedError: GridLoggerUnavailable,
    h2.exceptions.H2Error: GridLoggerUnavailable,
    ValueError: GridLoggerUnavailable,  # a URL that is not host:port
}
"""One write's failures, all the same to the job: the customer's log is best effort."""


def logger_endpoint(url: str) -> tuple[str, int]:
    """``(host, port)`` of a ``grid_logger_url``; ValueError when it names none."""
    for scheme in SCHEMES:
        if url.startswith(scheme):
            url = url[len(scheme) :]
    return split_endpoint(url.rstrip("/"))


class GridLogger:
    """Writes customer log lines; TLS with ``ssl_context`` (None: cleartext h2c)."""

    def __init__(
        self, ssl_context: ssl.SSLContext | None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._ssl = ssl_context
        self.timeout = timeout
        self.writes = 0
        self.lines = 0
        self.failures = 0

    async def write(self, url: str, log_name: str, user: str, lines: Sequence[str]) -> None:
        """Write ``lines`` to the log ``log_name`` of ``user`` at ``url``, within
        :attr:`timeout`; raises :class:`GridLoggerUnavailable` (counted) when not done."""
        self.writes += 1
        try:
            with map_exceptions(WRITE_ERRORS, f"grid logger {url[:200]!r}"):
                host, port = logger_endpoint(url)
                requests = [
                    logger_pb2.WriteRequest(
                        log_name=log_name,
                        user=user.lower(),
                        data=line.encode("utf-8"),
                        timestamp=time.time_ns(),
                    )
                    for line in lines
                ]
                with trio.move_on_after(self.timeout) as scope:
                    await trio_asyncio.aio_as_trio(self._write)(host, port, requests)
                if scope.cancelled_caught:
                    raise TimeoutError(f"no answer within {self.timeout} s")
        except GridLoggerError:
            self.failures += 1
            raise
        self.lines += len(requests)

    async def _write(self, host: str, port: int, requests: list[logger_pb2.WriteRequest]) -> None:
        channel = Channel(host, port, ssl=self._ssl)
        try:
            stub = logger_grpc.LoggerAPIStub(channel)
            async with stub.Write.open(timeout=self.timeout) as stream:
                for request in requests:
                    await stream.send_message(request)
                await stream.end()
                await stream.recv_message()
        finally:
            channel.close()
