"""What the benchmark suite is told to do: one immutable value built from ``cfg.benchmark``.

The configuration schema (:class:`config.schema.Benchmark`) carries every option: disable, single
node, UCX, include unresponsive, run-as user, time limit, mode, images, extra environment, and
the sizing of the jobs (``hpl.problemSizePercent``, ``hpl.blockSize``, ``hpl.cpusPerRank``, the
``storage`` folders and size, ``outputFolder``). :func:`settings_from_config` turns it into the
plain values the planner and the actor read.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from config.schema import Benchmark

__all__ = ["BenchmarkSettings", "settings_from_config"]


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
    """HPL's N as a fraction of the largest N the memory holds (``hpl.problemSizePercent``)."""
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


def settings_from_config(benchmark: Benchmark) -> BenchmarkSettings:
    """Build from ``cfg.benchmark``; the loader has already checked every value."""
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
        env=tuple(sorted(benchmark.env.items())),
        hpl_image=benchmark.hpl.image,
        osu_image=benchmark.osu.image,
        ior_image=benchmark.ior.image,
        speedtest_image=benchmark.speedtest.image,
        memory_fraction=benchmark.hpl.problem_size_percent / 100,
        hpl_block_size=benchmark.hpl.block_size,
        cpus_per_rank=benchmark.hpl.cpus_per_rank,
        shared_scratch=str(benchmark.storage.shared_scratch),
        local_scratch=str(benchmark.storage.local_scratch),
        storage_mb=benchmark.storage.size_mb,
        output_dir=str(benchmark.output_folder or ""),
    )
