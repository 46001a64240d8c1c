"""The testbed's grid logger: ``logger.v1alpha1.LoggerAPI`` recording what it receives.

The real grid logger keeps each job's customer-visible log (wire-interfaces.md, "Grid logger").
This one keeps every ``WriteRequest`` it is sent, in order, so that tests can read what a
customer would see: in memory (:attr:`LoggerService.received`) and, when run as a process, one
JSON line per request in a record file::

    python -m testbed.logger_service --listen 127.0.0.1:PORT --cert C --key K --record FILE

``Read`` streams a log's lines back (the testbed does not check the customer's signature);
``WatchList`` is not implemented. TLS as the sbatch service's (ALPN ``h2``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.health.service import Health
from grpclib.server import Server, Stream

from protos.logger.v1alpha1 import logger_grpc, logger_pb2
from testbed.layout import Layout
from testbed.sbatch_service import server_parser, server_ssl_context

__all__ = [
    "LOGGER_PORT",
    "MAX_RECORDED",
    "LoggedLine",
    "LoggerService",
    "main",
    "read_record",
    "record_path",
]

LOGGER_PORT = 8446
"""The loopback port ``testbed up`` starts the grid logger on (beside the sbatch service's)."""

MAX_RECORDED = 100_000
"""Lines kept before the service answers RESOURCE_EXHAUSTED (a runaway writer)."""

log = logging.getLogger(__name__)


class LoggedLine(msgspec.Struct, frozen=True):
    """One ``WriteRequest`` as received (``data`` decoded as UTF-8, errors replaced)."""

    log_name: str
    user: str
    data: str
    timestamp: int


class LoggerService(logger_grpc.LoggerAPIBase):
    """Records every line written; ``record`` (optional) gets one JSON line per request."""

    def __init__(self, record: Path | None = None) -> None:
        self.received: list[LoggedLine] = []
        self.writes = 0
        self._record = record

    def lines(self, log_name: str) -> list[str]:
        """The lines of ``log_name``'s log, in order."""
        return [line.data for line in self.received if line.log_name == log_name]

    async def Write(
        self, stream: Stream[logger_pb2.WriteRequest, logger_pb2.WriteResponse]
    ) -> None:
        self.writes += 1
        async for request in stream:
            if len(self.received) >= MAX_RECORDED:
                raise GRPCError(Status.RESOURCE_EXHAUSTED, "the testbed logger is full")
            line = LoggedLine(
                log_name=request.log_name,
                user=request.user,
                data=bytes(request.data).decode("utf-8", errors="replace"),
                timestamp=request.timestamp,
            )
            self.received.append(line)
            if self._record is not None:
                with self._record.open("ab") as out:
                    out.write(msgspec.json.encode(line) + b"\n")
        await stream.send_message(logger_pb2.WriteResponse())

    async def Read(self, stream: Stream[logger_pb2.ReadRequest, logger_pb2.ReadResponse]) -> None:
        request = await stream.recv_message()
        assert request is not None
        for line in self.received:
            if line.log_name == request.log_name and line.user == request.address.lower():
                await stream.send_message(
                    logger_pb2.ReadResponse(data=line.data.encode(), timestamp=line.timestamp)
                )

    async def WatchList(
        self, stream: Stream[logger_pb2.WatchListRequest, logger_pb2.WatchListResponse]
    ) -> None:
        raise GRPCError(Status.UNIMPLEMENTED, "WatchList is not part of the testbed logger")


def record_path(layout: Layout) -> Path:
    """Where the grid logger ``testbed up`` started records what it receives."""
    return layout.log / "grid-logger.jsonl"


def read_record(path: Path) -> list[LoggedLine]:
    """The lines a logger process recorded in ``path`` (none when it has no file yet)."""
    if not path.exists():
        return []
    decoder = msgspec.json.Decoder(LoggedLine)
    return [decoder.decode(raw) for raw in path.read_bytes().splitlines() if raw.strip()]


async def _run(host: str, port: int, cert: Path, key: Path, record: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = Server([LoggerService(record), Health()])
    await server.start(host, port, ssl=server_ssl_context(cert, key))
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> int:
    parser = server_parser("python -m testbed.logger_service", "The testbed's grid logger.")
    parser.add_argument("--record", type=Path, required=True, help="JSON lines of what it got")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    host, port = args.listen
    try:
        asyncio.run(_run(host, port, args.cert, args.key, args.record))
    except OSError as exc:
        print(f"grid logger: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
