"""The grid's standard labels, from discovery and benchmark results; the operator's merged in.

Pure. Names follow the grid's label style (dotted, lowercase, unit last):

==============================  =============================================================
``os``, ``arch``                ``linux``, ``amd64`` (Go's spelling, as the grid uses)
``cpu``, ``cpu.microarch``      the CPU model, its micro-architecture level
``gpu``                         the GPU model, or ``none`` (never the CPU model)
``nodes``                       how many nodes the partition offers
``compute.gflops``              HPL
``memory.bw.mbps``              STREAM Triad per process, MB/s
``network.p2p.latency.us``      MPI PingPong between nodes, microseconds
``network.p2p.bw.mbps``         MPI PingPong between nodes, MB/s
``storage.<folder>.<read|write>.bw.mibps`` and ``.iops``   fio, ``<folder>``: shared, local
``network.download.bw.mbps``    speedtest, MB/s (and ``network.upload.bw.mbps``)
==============================  =============================================================

Every value goes through :func:`actors.grid.normalise_labels` before registration (lowercase,
``[a-z0-9._-]``), so ``AMD EPYC 7302 16-Core Processor`` is registered as
``amd-epyc-7302-16-core-processor`` and ``12.34`` stays ``12.34``.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from actors.benchmark.parsers import (
    FioResult,
    HpccResult,
    Machine,
    SpeedtestResult,
    arch_name,
    microarch,
)
from actors.benchmark.settings import BenchmarkSettings
from actors.grid import Label
from actors.slurm.messages import Node

__all__ = [
    "SUITE_VERSION",
    "compute_labels",
    "discovery_labels",
    "fingerprint",
    "internet_labels",
    "is_benchmark_key",
    "merge_labels",
    "network_labels",
    "reusable_chain_labels",
    "storage_labels",
]

SUITE_VERSION = 1
"""Part of the fingerprint: bump it when the suite measures differently."""

_BENCHMARK_KEYS = frozenset(
    {"os", "arch", "cpu", "cpu.microarch", "gpu", "nodes", "compute.gflops", "memory.bw.mbps"}
)
_BENCHMARK_PREFIXES = ("network.", "storage.")


def is_benchmark_key(key: str) -> bool:
    """Whether ``key`` is one of the labels this module generates."""
    return key in _BENCHMARK_KEYS or key.startswith(_BENCHMARK_PREFIXES)


def _number(value: float) -> str:
    return f"{value:.2f}"


def discovery_labels(nodes: Sequence[Node]) -> dict[str, str]:
    """What SLURM's own listing tells: the node count."""
    return {"nodes": str(len(nodes))}


def compute_labels(machine: Machine, runs: Sequence[HpccResult]) -> dict[str, str]:
    """The machine and HPL/STREAM labels; several runs (one job per node) add up their Gflops."""
    labels = {
        "os": machine.os.lower(),
        "arch": arch_name(machine),
        "cpu": machine.cpu,
        "cpu.microarch": microarch(machine),
        "gpu": machine.gpu or "none",
    }
    if runs:
        labels["compute.gflops"] = _number(sum(run.hpl_gflops for run in runs))
        triads = [run.stream_triad_gbs for run in runs if run.stream_triad_gbs is not None]
        if triads:
            labels["memory.bw.mbps"] = _number(statistics.fmean(triads) * 1000)
    return labels


def network_labels(run: HpccResult) -> dict[str, str]:
    labels = {}
    if run.pingpong_latency_us is not None:
        labels["network.p2p.latency.us"] = _number(run.pingpong_latency_us)
    if run.pingpong_bandwidth_gbs is not None:
        labels["network.p2p.bw.mbps"] = _number(run.pingpong_bandwidth_gbs * 1000)
    return labels


def storage_labels(folder: str, tasks: Sequence[FioResult], *, shared: bool) -> dict[str, str]:
    """A shared folder's bandwidth is what all nodes get together (the sum over tasks); a local
    folder's is one node's (the mean)."""
    combine = sum if shared else statistics.fmean
    prefix = f"storage.{folder}"
    return {
        f"{prefix}.read.bw.mibps": _number(combine(t.read_mibps for t in tasks)),
        f"{prefix}.write.bw.mibps": _number(combine(t.write_mibps for t in tasks)),
        f"{prefix}.read.iops": _number(combine(t.read_iops for t in tasks)),
        f"{prefix}.write.iops": _number(combine(t.write_iops for t in tasks)),
    }


def internet_labels(run: SpeedtestResult) -> dict[str, str]:
    return {
        "network.download.bw.mbps": _number(run.download_mbps),
        "network.upload.bw.mbps": _number(run.upload_mbps),
    }


def merge_labels(
    generated: Mapping[str, str], operator: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Generated labels with the operator's on top: the operator wins a clash. Returns the
    merged labels and the keys that clashed with a different value (to warn about)."""
    clashes = sorted(
        key for key, value in operator.items() if key in generated and generated[key] != value
    )
    return {**generated, **operator}, clashes


def reusable_chain_labels(labels: Iterable[Label]) -> dict[str, str]:
    """The benchmark labels of an earlier registration (for the disabled mode)."""
    return {label.key: label.value for label in labels if is_benchmark_key(label.key)}


def fingerprint(nodes: Sequence[Node], settings: BenchmarkSettings) -> str:
    """A digest of what the results depend on: every node's CPUs, memory and GPUs (by name
    order, names left out), and the settings that change what is measured."""
    ordered = sorted(nodes, key=lambda node: node.name)
    facts = {
        "suite": SUITE_VERSION,
        "nodes": [[node.cpus, node.memory_mb, node.gpus] for node in ordered],
        "mode": settings.mode,
        "single": [settings.hpl_single_node, settings.storage_single_node],
        "unresponsive": settings.include_unresponsive,
        "ucx": [settings.ucx, settings.ucx_affinity, settings.ucx_transport],
        "sizes": [
            settings.memory_fraction,
            settings.hpl_block_size,
            settings.cpus_per_rank,
            settings.storage_mb,
            settings.shared_scratch,
            settings.local_scratch,
        ],
    }
    return hashlib.sha256(msgspec.json.encode(facts)).hexdigest()
