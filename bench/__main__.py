"""Run benchmarks: ``python -m bench`` runs them all, ``python -m bench NAME [ARGS]`` one.

Each benchmark is a module of this package with ``main(argv) -> int``; add a line to
``BENCHMARKS`` to register a new one.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

BENCHMARKS: dict[str, str] = {
    "actors": "bench.actors",  # 10,000 idle actors: memory per actor, start and stop times
    "lifecycle": "bench.lifecycle",  # claim-to-SLURM latency vs floor; burst throughput
    "binary": "bench.binary",  # the one-file binary: size, start time, time to READY
    "chaos": "bench.chaos",  # kill -9 the supervisor while jobs flow; every job checked
    "launch": "bench.launch",  # slurmctld stopped as a job launches: requeued, finished
}


def _load(name: str) -> Callable[[Sequence[str]], int]:
    module = importlib.import_module(BENCHMARKS[name])
    return cast(Callable[[Sequence[str]], int], module.main)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks: " + ", ".join(BENCHMARKS))
        return 0
    if not args:
        status = 0
        for name in BENCHMARKS:
            print(f"== {name}")
            status = max(status, _load(name)([]))
        return status
    name, rest = args[0], args[1:]
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    return _load(name)(rest)


if __name__ == "__main__":
    raise SystemExit(main())
