"""Logging for the daemon: one line per record, human or JSON, tagged with the actor it came from.

Context travels in a :class:`contextvars.ContextVar` of fields: the actor runtime binds
``actor=<name>`` for every task an actor runs, and actors may add their own (a JobActor binds
``job=0x...``) with :func:`bind`. Every record carries them, so a line says who wrote it::

    2026-11-24T17:02:03Z INFO  [job:0xab..] actors.job: submitted to SLURM as 42  job=0xab..

Secrets never reach a log: configuration values holding keys are :class:`config.values.Secret`
objects that print as ``***``, and nothing here formats raw configuration.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Literal, TextIO

import msgspec

__all__ = ["FIELDS", "bind", "configure_logging", "current_fields"]

#: The context fields of the running task (``actor``, ``job``, ...).
FIELDS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "grid_log_fields", default=MappingProxyType({})
)


def current_fields() -> Mapping[str, str]:
    return FIELDS.get()


@contextmanager
def bind(**fields: str) -> Iterator[None]:
    """Add ``fields`` to every record logged in this context (and the tasks it starts)."""
    token = FIELDS.set({**FIELDS.get(), **fields})
    try:
        yield
    finally:
        FIELDS.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.grid_fields = FIELDS.get()
        return True


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: Mapping[str, str] = getattr(record, "grid_fields", {})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        where = f" [{fields['actor']}]" if "actor" in fields else ""
        extra = "".join(f"  {k}={v}" for k, v in fields.items() if k != "actor")
        line = f"{stamp} {record.levelname:<7}{where} {record.name}: {record.getMessage()}{extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: Mapping[str, str] = getattr(record, "grid_fields", {})
        document: dict[str, object] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields,
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(document).decode()


def configure_logging(
    level: str = "info",
    format: Literal["human", "json"] = "human",
    stream: TextIO | None = None,
) -> None:
    """Send every record at ``level`` and above to ``stream`` (stderr: journald collects it)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else HumanFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Chatty libraries: their INFO lines are noise for an operator.
    for name in ("asyncssh", "grpclib", "httpx", "httpcore", "trio-websocket", "web3"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
