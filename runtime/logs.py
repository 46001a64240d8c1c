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
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Literal, TextIO

import msgspec

__all__ = [
    "FIELDS",
    "KNOWN_HARMLESS_WARNINGS",
    "bind",
    "configure_logging",
    "current_fields",
    "quiet_known_warnings",
    "route_warnings_to_logging",
]

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


#: Third-party warnings known to be harmless here, silenced where they arise, as (message regex,
#: regex of the module the warning is attributed to). Anything else still becomes a log record.
KNOWN_HARMLESS_WARNINGS: tuple[tuple[str, str], ...] = (
    # cryptography 48+ deprecates DSA; asyncssh names its DSA key types at import time. We never
    # use DSA (the supervisor's key is ed25519), so the warning says nothing to an operator.
    (r"DSA is deprecated", r"asyncssh(\..*)?"),
)

#: The logger that Python warnings become records of (the name ``logging.captureWarnings`` uses).
WARNINGS_LOGGER = "py.warnings"


def quiet_known_warnings() -> None:
    """Silence :data:`KNOWN_HARMLESS_WARNINGS` at their source. Call it before the libraries that
    raise them are imported (a warning raised at import time is raised once)."""
    for message, module in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    text = " ".join(str(message).split())
    logging.getLogger(WARNINGS_LOGGER).warning(
        "%s: %s (%s:%d)", category.__name__, text, filename, lineno
    )


def route_warnings_to_logging() -> None:
    """Make every Python warning one log record of the ``py.warnings`` logger, on one line (JSON
    under ``log.format: json``), instead of raw multi-line text on stderr; the known harmless ones
    are silenced first (:func:`quiet_known_warnings`)."""
    quiet_known_warnings()
    warnings.showwarning = _log_warning


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
    route_warnings_to_logging()
    # Chatty libraries: their INFO lines are noise for an operator.
    for name in ("asyncssh", "grpclib", "httpx", "httpcore", "trio-websocket", "web3"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
