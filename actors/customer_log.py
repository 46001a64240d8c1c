"""What a customer is told when their job fails before it runs: pure text rules.

The reason a job could not start (the sbatch service refused its script, SLURM refused the
submission, the definition is invalid) goes to two public places: the job's ``lastError`` on
chain, and the customer's job log on the grid logger (:mod:`actors.grid_logger`), one message per
line. Both are read by anyone who can see the job, so the text is first :func:`sanitise`\\ d: no
secret (a private key, a PEM block, a password or token, credentials in a URL) and no operator
path or address reaches them; control characters are escaped. Then it is bounded:
:func:`last_error` is one line of at most :data:`MAX_LAST_ERROR` bytes, :func:`log_lines` at
most :data:`MAX_LINES` lines of :data:`MAX_LINE` bytes each.

A customer should be able to act on it: :func:`last_error` ends with what to do
(:data:`ADVICE`, by the kind of failure).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "ADVICE",
    "MAX_LAST_ERROR",
    "MAX_LINE",
    "MAX_LINES",
    "Failure",
    "bounded",
    "last_error",
    "log_lines",
    "sanitise",
]

MAX_LAST_ERROR: Final = 480
"""Bytes (UTF-8) of a ``lastError`` (it is stored on chain: every byte costs gas)."""

MAX_LINE: Final = 1024
"""Bytes (UTF-8) of one line of the customer's log."""

MAX_LINES: Final = 40
"""Lines of one failure in the customer's log (the last says how many were left out)."""


class Failure(enum.Enum):
    """Why a job did not start, as far as the customer's next step goes."""

    SCRIPT = "script"  # the sbatch service would not hand the script over
    SUBMISSION = "submission"  # SLURM (or this provider's checks) refused the job
    DEFINITION = "definition"  # the job definition cannot run anywhere


ADVICE: Final[Mapping[Failure, str]] = {
    Failure.SCRIPT: "what to do: submit the job again (a script is kept 1 h by the sbatch "
    "service; check its batchLocationHash)",
    Failure.SUBMISSION: "what to do: change the resources or the script this cluster refused, "
    "or submit to another cluster",
    Failure.DEFINITION: "what to do: fix the job definition (or lock more credits) and submit "
    "it again",
}
"""The customer's next step, by :class:`Failure`."""

REDACTED: Final = "<redacted>"
HIDDEN_PATH: Final = "<path>"
HIDDEN_HOST: Final = "<host>"

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
_URL_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b((?:[a-z0-9_.-]*(?:password|passwd|secret|token|private[_-]?key|api[_-]?key)"
    r"[a-z0-9_.-]*)\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
)
_HEX_64 = re.compile(r"(?i)\b(?:0x)?[0-9a-f]{64}\b")
_BASE64_BLOB = re.compile(r"\b[A-Za-z0-9+/]{60,}={0,2}")
# An absolute path: a / not preceded by a word character, a dot, a slash or a colon (so neither
# the customer's own relative "../x/y" nor a URL's "//host" is taken), with at least one name.
_ABSOLUTE_PATH = re.compile(r"(?<![\w./:~])(?:~/?|/)(?:[\w.+@-]+/?)+")
_IPV4_ENDPOINT = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b")
_IPV6_ENDPOINT = re.compile(r"\[[0-9a-fA-F:]+\](?::\d{1,5})?")


def _escape_controls(text: str) -> str:
    """Every control character but the line break as ``\\xNN`` (tabs become spaces)."""
    out: list[str] = []
    for char in text.replace("\r\n", "\n").replace("\t", " "):
        if char == "\n" or char.isprintable():
            out.append(char)
        else:
            out.append(f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")
    return "".join(out)


def sanitise(text: str, keep: Iterable[str] = ()) -> str:
    """``text`` without secrets, operator paths or addresses, control characters escaped.

    ``keep`` lists values that are public and must survive (the job's own id, which is 64 hex
    digits like a private key). Line breaks are kept (:func:`log_lines` splits on them).
    """
    kept = {value.lower() for value in keep}
    text = _escape_controls(text)
    text = _PEM.sub(REDACTED, text)
    text = _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)
    text = _ASSIGNED_SECRET.sub(rf"\1{REDACTED}", text)

    def hidden(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0).lower() in kept else REDACTED

    text = _HEX_64.sub(hidden, text)
    text = _BASE64_BLOB.sub(hidden, text)
    text = _ABSOLUTE_PATH.sub(HIDDEN_PATH, text)
    text = _IPV6_ENDPOINT.sub(HIDDEN_HOST, text)
    return _IPV4_ENDPOINT.sub(HIDDEN_HOST, text)


def bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (never inside a character), marked with
    an ellipsis when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    mark = "..."
    return data[: max(limit - len(mark), 0)].decode("utf-8", errors="ignore") + mark


def last_error(reason: str, failure: Failure, keep: Iterable[str] = ()) -> str:
    """The ``lastError`` for a job that did not start: the sanitised reason on one line, then
    what to do (:data:`ADVICE`), at most :data:`MAX_LAST_ERROR` bytes in all (the advice is
    never cut)."""
    advice = ADVICE[failure]
    lines = [line.strip() for line in sanitise(reason, keep).split("\n")]
    text = " | ".join(line for line in lines if line) or "no reason given"
    room = MAX_LAST_ERROR - len(advice.encode("utf-8")) - 2
    return f"{bounded(text, room)}; {advice}"


def log_lines(message: str, keep: Iterable[str] = ()) -> tuple[str, ...]:
    """The lines of the customer's log for ``message`` (one per non-empty line, sanitised, each
    at most :data:`MAX_LINE` bytes; at most :data:`MAX_LINES` of them)."""
    lines = [bounded(line.rstrip(), MAX_LINE) for line in sanitise(message, keep).split("\n")]
    lines = [line for line in lines if line.strip()]
    if len(lines) > MAX_LINES:
        left_out = len(lines) - (MAX_LINES - 1)
        lines = [*lines[: MAX_LINES - 1], f"... {left_out} more lines left out"]
    return tuple(lines)
