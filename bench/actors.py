"""Benchmark: 10,000 idle dynamic actors under one supervisor.

Prints the memory one idle actor costs (its task, mailbox, supervisor record and registry entry
included), measured two ways (tracemalloc difference / N, RSS difference / N), and the time to
start them all with ``start_child`` and to stop them, one ``stop_child`` at a time and all at
once by a supervisor shutdown (reverse order). Targets: under 5 KB per actor, under 1 s to start
10,000.

    python -m bench actors [--count N]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time
import tracemalloc
from collections.abc import Sequence

import trio
import trio.testing

from runtime import Actor, ChildSpec, Restart, Supervisor


class IdleActor(Actor[object, None]):
    """An actor that does nothing until told something."""

    __slots__ = ()

    async def handle(self, message: object) -> None:
        return None


def _rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _spec(index: int) -> ChildSpec:
    name = f"job-{index:08x}"
    return ChildSpec(name, lambda: IdleActor(name), restart=Restart.TRANSIENT)


async def _start_all(supervisor: Supervisor, count: int) -> float:
    began = time.perf_counter()
    for index in range(count):
        await supervisor.start_child(_spec(index))
    return time.perf_counter() - began


async def measure_times(count: int) -> dict[str, float]:
    """Wall-clock seconds to start ``count`` children, stop them one by one, and to shut down a
    supervisor that holds ``count`` children. Also the RSS growth per actor."""
    figures: dict[str, float] = {}
    supervisor = Supervisor("bench")
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        gc.collect()
        rss_before = _rss_bytes()
        figures["start_s"] = await _start_all(supervisor, count)
        gc.collect()
        figures["rss_per_actor_b"] = (_rss_bytes() - rss_before) / count
        assert supervisor.count_children().active == count
        began = time.perf_counter()
        snapshot = supervisor.registry.snapshot()
        figures["snapshot_s"] = time.perf_counter() - began
        assert len(snapshot[0].children) == count
        began = time.perf_counter()
        for index in range(count):
            await supervisor.stop_child(f"job-{index:08x}")
        figures["stop_each_s"] = time.perf_counter() - began
        assert supervisor.count_children().specs == 0
        await _start_all(supervisor, count)
        began = time.perf_counter()
        supervisor.request_stop()
    figures["shutdown_s"] = time.perf_counter() - began
    assert len(supervisor.registry) == 1  # only the root's own entry remains
    return figures


async def measure_memory(count: int) -> float:
    """tracemalloc bytes per idle child (everything allocated while starting them)."""
    supervisor = Supervisor("bench")
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await _start_all(supervisor, count)
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        supervisor.request_stop()
    return (after - before) / count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench actors", description=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="idle actors (10,000)")
    args = parser.parse_args(argv)
    count: int = args.count
    times = trio.run(measure_times, count)
    traced = trio.run(measure_memory, count)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"machine: {machine}, Python {platform.python_version()}, trio {trio.__version__}")
    print(f"idle actors: {count:,}")
    rss = times["rss_per_actor_b"]
    print(f"memory per idle actor: {traced:,.0f} B (tracemalloc), {rss:,.0f} B (RSS)")
    print(f"start {count:,} (start_child each): {times['start_s']:.3f} s")
    print(f"registry snapshot of {count:,}: {times['snapshot_s']:.3f} s")
    print(f"stop {count:,} (stop_child each): {times['stop_each_s']:.3f} s")
    print(f"supervisor shutdown with {count:,} children: {times['shutdown_s']:.3f} s")
    ok = traced < 5 * 1024 and times["start_s"] < 1.0
    print("targets (< 5 KB per actor, < 1 s to start): " + ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
