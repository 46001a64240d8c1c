"""The built one-file binary (``just build``), built at most once per change of its sources.

Tests that run the shipped binary call :func:`built_binary`: it builds ``dist/grid-supervisor``
when it is missing or older than its sources (a digest of every file that goes into it, kept in
``dist/.grid-supervisor.sources``), under a file lock so that concurrent test sessions build it
once. A CI run therefore builds it once (about 40-60 s), and a second run on unchanged sources
not at all. The build's wall time is kept in ``dist/.grid-supervisor.build-seconds``.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
BINARY = DIST / "grid-supervisor"
STAMP = DIST / ".grid-supervisor.sources"
BUILD_SECONDS = DIST / ".grid-supervisor.build-seconds"
PACKAGES = ("cli", "actors", "runtime", "config", "protos", "contracts")
EXTRA = ("pyproject.toml", "justfile", "deploy/grid-supervisor.spec", "deploy/entry.py")


def source_digest() -> str:
    """A digest of everything the binary is built from."""
    digest = hashlib.sha256()
    files = [REPO / name for name in EXTRA]
    for package in PACKAGES:
        files += [
            path
            for path in (REPO / package).rglob("*")
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts
        ]
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


_COPY: Path | None = None


def built_binary() -> Path:
    """A private copy of ``dist/grid-supervisor``, built first if its sources changed.

    The copy matters: a one-file binary reads its own file for every lazy import while it runs,
    so a rebuild (another test session, a developer's ``just build``) that rewrote the file under
    a running supervisor would break it. Each test process runs its own copy (in a folder anyone
    may read, since sshd runs ``authorized-keys`` as nobody), removed at exit.
    """
    global _COPY
    if _COPY is not None and _COPY.exists():
        return _COPY
    DIST.mkdir(exist_ok=True)
    with (DIST / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build_if_stale()
        folder = Path(tempfile.mkdtemp(prefix="grid-supervisor-binary-"))
        folder.chmod(0o755)
        atexit.register(shutil.rmtree, folder, True)
        _COPY = folder / BINARY.name
        shutil.copy2(BINARY, _COPY)
    return _COPY


def _build_if_stale() -> None:
    wanted = source_digest()
    if BINARY.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    began = time.monotonic()
    done = subprocess.run(
        ["just", "build"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        raise AssertionError(f"just build failed:\n{output}")
    BUILD_SECONDS.write_text(f"{time.monotonic() - began:.1f}\n")
    STAMP.write_text(wanted)
