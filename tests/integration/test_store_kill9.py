"""The checkpoint store survives ``kill -9`` at any moment.

A real writer process (store_writer.py) writes records, inbox offers and atomic ack+record pairs,
printing each one only after its write call returned. We SIGKILL it at random moments, many times
over the same database, and after every round check that:

- SQLite's integrity check says ok and the file is still mode 0600;
- every printed record is present and decodes into its type with the expected content;
- every printed offer is in the inbox, and no printed ack is pending again;
- each ack and its companion record landed together or not at all.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from runtime.store import DEFAULT_FILENAME, open_store

sys.path.insert(0, str(Path(__file__).parent))
from store_writer import Entry

WRITER = Path(__file__).with_name("store_writer.py")
ROUNDS = 30


@dataclass
class Promises:
    """What the writers printed, i.e. what must be durable."""

    puts: set[str] = field(default_factory=set)
    offers: set[str] = field(default_factory=set)
    acks: set[str] = field(default_factory=set)

    def absorb(self, output: str) -> int:
        """Record the complete lines of one writer's output; how many writes it promised."""
        promised = 0
        for line in output.splitlines(keepends=True):
            if not line.endswith("\n") or line == "open\n":
                continue
            what, key = line.split()
            {"put": self.puts, "offer": self.offers, "ack": self.acks}[what].add(key)
            promised += 1
        return promised


def run_and_kill(folder: Path, round_: int, rng: random.Random) -> str:
    """Start a writer, SIGKILL it at a random moment, return what it printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(folder), str(round_)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(15, proc.kill)
    watchdog.start()
    try:
        head = ""
        if round_ % 3 == 0:
            # Anywhere: interpreter start-up, opening, recovery, migration or writing.
            time.sleep(rng.uniform(0.0, 0.35))
        else:
            assert proc.stdout is not None
            head = proc.stdout.readline()  # "open": the writers are starting
            time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        rest, errors = proc.communicate()
    finally:
        watchdog.cancel()
    assert proc.returncode == -signal.SIGKILL, f"writer ended by itself: {errors}"
    return head + rest


def check_file(file: Path) -> None:
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    with sqlite3.connect(file) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def check_store(folder: Path, promised: Promises) -> None:
    async with open_store(folder) as store:
        await store.integrity_check()
        entries = dict(await store.items("entries", Entry))
        missing = promised.puts - entries.keys()
        assert not missing, f"printed but lost: {sorted(missing)[:5]}"
        for key in promised.puts:
            round_, lane, n = (int(part) for part in key.split("-"))
            assert entries[key] == Entry(round_, lane, n, "x" * (n % 50))

        pending = {key for key, _ in await store.pending("box", Entry)}
        assert not promised.acks & pending, "an acked item is pending again"
        acked_records = dict(await store.items("acks", Entry))

        def acked_keys(conn: sqlite3.Connection) -> tuple[set[str], set[str]]:
            rows = conn.execute("SELECT key, acked FROM inbox WHERE box = 'box'").fetchall()
            return {k for k, a in rows}, {k for k, a in rows if a}

        offered, acked = await store._submit(False, acked_keys)
        assert promised.offers <= offered, "a printed offer is missing from the inbox"
        assert promised.acks <= acked
        assert acked == set(acked_records), "an ack and its companion record split"
        assert pending == offered - acked
        for key, entry in acked_records.items():
            assert entries[key] == entry


def test_store_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    folder = tmp_path / "state"
    promised = Promises()
    rounds_with_writes = 0
    for round_ in range(ROUNDS):
        output = run_and_kill(folder, round_, rng)
        if promised.absorb(output) > 0:
            rounds_with_writes += 1
        file = folder / DEFAULT_FILENAME
        if not file.exists():
            continue  # killed before the store was created
        try:
            check_file(file)
            trio.run(check_store, folder, promised)
        except AssertionError as exc:
            raise AssertionError(f"round {round_}, seed {seed}: {exc}") from exc
    # The test must actually have interrupted a busy writer, many times.
    assert rounds_with_writes >= ROUNDS // 2, (seed, rounds_with_writes)
    assert len(promised.puts) > 500 and len(promised.acks) > 20, (seed, len(promised.puts))
