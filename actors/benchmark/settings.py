"""What the benchmark suite is told to do: one immutable value built from ``cfg.benchmark``.

The configuration schema (:class:`config.schema.Benchmark`) carries the operator's options
(disable, single node, UCX, include unresponsive, run-as user, time limit, mode, images, extra
environment). The sizing knobs that have no schema field yet are read from reserved names in
``benchmark.env`` (they are exported in the jobs too, harmlessly):

=================================  ==========================================================
``GRID_BENCHMARK_MEMORY_FRACTION`` HPL problem size as a fraction of sqrt(memory) (0.5)
``GRID_BENCHMARK_HPL_BLOCK_SIZE``  HPL NB (0: 512 with GPUs, 192 without)
``GRID_BENCHMARK_CPUS_PER_RANK``   CPUs per MPI rank on a CPU-only cluster (1)
``GRID_BENCHMARK_SHARED_SCRATCH``  the shared scratch folder measured by fio (/opt/cache/shared)
``GRID_BENCHMARK_LOCAL_SCRATCH``   the node-local scratch folder measured by fio (/tmp)
``GRID_BENCHMARK_STORAGE_MB``      MB written then read per folder (1024)
``GRID_BENCHMARK_OUTPUT_DIR``      where job outputs go, read back over SSH ("": the home)
=================================  ==========================================================
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

__all__ = ["RESERVED_ENV", "BenchmarkSettings", "settings_from_config"]

RESERVED_ENV = frozenset(
    {
        "GRID_BENCHMARK_MEMORY_FRACTION",
        "GRID_BENCHMARK_HPL_BLOCK_SIZE",
        "GRID_BENCHMARK_CPUS_PER_RANK",
        "GRID_BENCHMARK_SHARED_SCRATCH",
        "GRID_BENCHMARK_LOCAL_SCRATCH",
        "GRID_BENCHMARK_STORAGE_MB",
        "GRID_BENCHMARK_OUTPUT_DIR",
    }
)


class BenchmarkSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the planner and the actor need; defaults are the production ones."""

    disable: bool = False
    mode: Literal["container", "native"] = "container"
    run_as: str = "root"
    time_limit_minutes: int = 24 * 60
    include_unresponsive: bool = False
    hpl_single_node: bool = False
    storage_single_node: bool = False
    ucx: bool = False
    ucx_affinity: str = ""
    """``UCX_NET_DEVICES`` per node, ``devices_of_node_1|devices_of_node_2|...``."""
    ucx_transport: str = ""
    trace: bool = False
    env: tuple[tuple[str, str], ...] = ()
    hpl_image: str = "registry-1.deepsquare.run#library/hpc-benchmarks:23.5"
    osu_image: str = "registry-1.deepsquare.run#library/osu-benchmarks:latest"
    ior_image: str = "registry-1.deepsquare.run#library/ior-benchmarks:latest"
    speedtest_image: str = "registry-1.docker.io#gists/speedtest-cli:1.2.0"
    memory_fraction: float = 0.5
    hpl_block_size: int = 0
    cpus_per_rank: int = 1
    shared_scratch: str = "/opt/cache/shared"
    local_scratch: str = "/tmp"
    storage_mb: int = 1024
    output_dir: str = ""

    def __post_init__(self) -> None:
        if not (0.0 < self.memory_fraction <= 1.0) or not math.isfinite(self.memory_fraction):
            raise ValueError(f"memory fraction must be in (0, 1], not {self.memory_fraction}")
        if self.hpl_block_size < 0 or self.cpus_per_rank < 1 or self.storage_mb < 1:
            raise ValueError("block size >= 0, CPUs per rank >= 1 and storage MB >= 1")
        if self.time_limit_minutes < 1:
            raise ValueError("the benchmark time limit is at least one minute")


def settings_from_config(benchmark: object) -> BenchmarkSettings:
    """Build from ``cfg.benchmark`` (:class:`config.schema.Benchmark`); raises ``ValueError`` for
    a reserved ``GRID_BENCHMARK_*`` value that does not parse."""
    from config.schema import Benchmark

    if not isinstance(benchmark, Benchmark):
        raise TypeError("settings_from_config expects cfg.benchmark")
    env = dict(benchmark.env)

    def number(name: str, default: float) -> float:
        text = env.get(name)
        if text is None:
            return default
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"benchmark.env {name}={text!r} is not a number") from None

    return BenchmarkSettings(
        disable=benchmark.disable,
        mode=benchmark.mode,
        run_as=benchmark.run_as,
        time_limit_minutes=max(1, int(benchmark.time_limit.total_seconds() // 60)),
        include_unresponsive=benchmark.include_unresponsive,
        hpl_single_node=benchmark.hpl.single_node,
        storage_single_node=benchmark.ior.single_node,
        ucx=benchmark.ucx.enable,
        ucx_affinity=benchmark.ucx.affinity,
        ucx_transport=benchmark.ucx.transport,
        trace=benchmark.trace,
        env=tuple(sorted((k, v) for k, v in env.items() if k not in RESERVED_ENV)),
        hpl_image=benchmark.hpl.image,
        osu_image=benchmark.osu.image,
        ior_image=benchmark.ior.image,
        speedtest_image=benchmark.speedtest.image,
        memory_fraction=number("GRID_BENCHMARK_MEMORY_FRACTION", 0.5),
        hpl_block_size=int(number("GRID_BENCHMARK_HPL_BLOCK_SIZE", 0)),
        cpus_per_rank=int(number("GRID_BENCHMARK_CPUS_PER_RANK", 1)),
        shared_scratch=env.get("GRID_BENCHMARK_SHARED_SCRATCH", "/opt/cache/shared"),
        local_scratch=env.get("GRID_BENCHMARK_LOCAL_SCRATCH", "/tmp"),
        storage_mb=int(number("GRID_BENCHMARK_STORAGE_MB", 1024)),
        output_dir=env.get("GRID_BENCHMARK_OUTPUT_DIR", ""),
    )
