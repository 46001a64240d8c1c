"""The testbed's batch-script store: the sbatch service's stand-in for Redis.

A customer's rendered batch script is stored under a fresh *location hash*, a short uuid-like id
that goes on chain as ``JobDefinition.batchLocationHash``. The real service keeps scripts for one
hour; here a script is a file ``<scripts_dir>/<location hash>`` and it expires ``ttl`` seconds
after the file's mtime (so a test can age a script with ``os.utime`` instead of sleeping)::

    location_hash = put_script(scripts_dir, b"#!/bin/bash\\nsrun hostname\\n")
    script = load_script(scripts_dir, location_hash, now=time.time(), ttl=3600.0)

The decisions (is this a well-formed location hash, has this script expired) are pure functions.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from pathlib import Path

DEFAULT_TTL_SECONDS = 3600.0
"""Scripts live one hour, like the real sbatch service's Redis entries."""

# Base57, like the "short UUID"s of the real service: no 0/O, 1/I/l look-alikes.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
LOCATION_HASH_LENGTH = 22  # 57**22 > 2**128: as many ids as a UUID
_LOCATION_HASH = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ScriptStoreError(Exception):
    """A script could not be stored."""


def new_location_hash() -> str:
    """A fresh random location hash (22 base57 characters, 128 bits of randomness)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LOCATION_HASH_LENGTH))


def is_valid_location_hash(location_hash: str) -> bool:
    """Whether ``location_hash`` can name a script file (letters, digits, ``_``, ``-``; <= 64).

    Anything else (``..``, ``/``, empty) is refused before it gets near the file system.
    """
    return _LOCATION_HASH.fullmatch(location_hash) is not None


def is_expired(stored_at: float, now: float, ttl: float) -> bool:
    """A script stored at ``stored_at`` (unix seconds) is gone once ``ttl`` seconds have passed."""
    return now >= stored_at + ttl


def script_path(scripts_dir: Path, location_hash: str) -> Path:
    """The file of a script; ``ValueError`` for a malformed location hash."""
    if not is_valid_location_hash(location_hash):
        raise ValueError("malformed location hash")
    return scripts_dir / location_hash


def put_script(scripts_dir: Path, content: bytes) -> str:
    """Store ``content`` under a fresh location hash and return the hash.

    The file appears atomically (written aside, then renamed), so the service never reads half a
    script.
    """
    scripts_dir.mkdir(parents=True, exist_ok=True)
    location_hash = new_location_hash()
    target = script_path(scripts_dir, location_hash)
    fd, temporary = tempfile.mkstemp(prefix=".incoming-", dir=scripts_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ScriptStoreError(f"cannot store script in {scripts_dir}: {exc}") from exc
    return location_hash


def load_script(scripts_dir: Path, location_hash: str, *, now: float, ttl: float) -> bytes | None:
    """The script stored under ``location_hash``, or None if unknown, malformed or expired."""
    if not is_valid_location_hash(location_hash):
        return None
    path = script_path(scripts_dir, location_hash)
    try:
        with path.open("rb") as handle:
            stored_at = os.fstat(handle.fileno()).st_mtime
            if is_expired(stored_at, now, ttl):
                return None
            return handle.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
