"""Reading a benchmark job's output: pure functions from text to numbers.

A job's output (see :mod:`actors.benchmark.plan`) is a series of sections, each opened by a line
``### grid-benchmark section <name>``; a section may say ``exit=<status>`` (its tool's exit
status) and ``skip=<reason>`` (it could not run). The tools' own formats:

- ``machine``: ``key=value`` lines (os, arch, cpu, flags, vendor, gpu) from the node itself;
- ``hpcc``: HPC Challenge's ``hpccoutf.txt``, whose summary section holds ``HPL_Tflops``,
  ``StarSTREAM_Triad`` (GB/s per process), ``AvgPingPongLatency_usec`` and
  ``AvgPingPongBandwidth_GBytes`` (the standard HPL result table is read when the summary is
  missing, e.g. from another HPL build);
- ``storage.<folder>``: one ``fio --output-format=json`` document per task, with a job
  ``write`` then a job ``read`` (bandwidths in KiB/s);
- ``internet``: Ookla ``speedtest -f json`` (bandwidths in bytes/s).

Every parser raises :class:`BenchmarkOutputError` (and nothing else) on output it cannot use:
missing values, zero, NaN or infinite rates.
"""

from __future__ import annotations

import json
import math
import re

import msgspec

from actors.benchmark.plan import SECTION

__all__ = [
    "BenchmarkOutputError",
    "FioResult",
    "HpccResult",
    "Machine",
    "SpeedtestResult",
    "arch_name",
    "microarch",
    "parse_fio",
    "parse_hpcc",
    "parse_machine",
    "parse_speedtest",
    "section_skip",
    "split_sections",
]


class BenchmarkOutputError(Exception):
    """A benchmark's output does not hold what it should."""


class Machine(msgspec.Struct, frozen=True):
    os: str
    arch: str
    cpu: str
    vendor: str
    flags: frozenset[str]
    gpu: str
    """The first GPU's model, or "none"."""


class HpccResult(msgspec.Struct, frozen=True):
    hpl_gflops: float
    stream_triad_gbs: float | None = None
    pingpong_latency_us: float | None = None
    pingpong_bandwidth_gbs: float | None = None


class FioResult(msgspec.Struct, frozen=True):
    """One task's sequential bandwidths (MiB/s) and operations per second."""

    write_mibps: float
    read_mibps: float
    write_iops: float
    read_iops: float


class SpeedtestResult(msgspec.Struct, frozen=True):
    download_mbps: float
    """MB/s, like the grid's other ``.bw.mbps`` labels (Ookla reports bytes/s)."""
    upload_mbps: float
    latency_ms: float | None = None


def split_sections(text: str) -> dict[str, str]:
    """Section name -> its text (what follows its opening line up to the next one). Text before
    the first section is dropped; a repeated name keeps the last."""
    sections: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(SECTION):
            if name is not None:
                sections[name] = "\n".join(lines)
            name, lines = line[len(SECTION) :].strip(), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        sections[name] = "\n".join(lines)
    return sections


def section_skip(body: str) -> str | None:
    """The ``skip=`` reason of a section, or None."""
    for line in body.splitlines():
        if line.startswith("skip="):
            return line[len("skip=") :].strip() or "skipped"
    return None


def _pairs(body: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in body.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            pairs[key.strip()] = value.strip()
    return pairs


def parse_machine(body: str) -> Machine:
    """The ``machine`` section."""
    pairs = _pairs(body)
    missing = [key for key in ("os", "arch", "cpu") if not pairs.get(key)]
    if missing:
        raise BenchmarkOutputError(f"the machine probe did not report {', '.join(missing)}")
    gpu = pairs.get("gpu", "").strip() or "none"
    return Machine(
        os=pairs["os"],
        arch=pairs["arch"],
        cpu=pairs["cpu"],
        vendor=pairs.get("vendor", ""),
        flags=frozenset(pairs.get("flags", "").split()),
        gpu=gpu,
    )


_X86_LEVELS = (
    ("x86-64-v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
    ("x86-64-v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"}),
    ("x86-64-v2", {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}),
)
_ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def microarch(machine: Machine) -> str:
    """The CPU's micro-architecture level: the x86-64 psABI level (``x86-64-v3``...) from the
    CPU flags, ``armv8`` (+ ``sve``) on 64-bit ARM, else the architecture itself."""
    arch = _ARCH_NAMES.get(machine.arch.lower(), machine.arch.lower())
    if arch == "amd64":
        for level, needed in _X86_LEVELS:
            if needed <= machine.flags:
                return level
        return "x86-64"
    if arch == "arm64":
        return "armv8-sve" if "sve" in machine.flags else "armv8"
    return arch


def arch_name(machine: Machine) -> str:
    """The architecture in Go's spelling, as the grid's labels use it (amd64, arm64)."""
    return _ARCH_NAMES.get(machine.arch.lower(), machine.arch.lower())


def _rate(value: str | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BenchmarkOutputError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise BenchmarkOutputError(f"{what} is {value}")
    return number


_HPL_ROW = re.compile(
    r"^W[RC]\S*\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([0-9.eE+-]+)\s+([0-9.eE+-]+|nan|inf)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_hpcc(body: str) -> HpccResult:
    """HPC Challenge's output (or a plain HPL result table: the best row's Gflops)."""
    pairs = _pairs(body)
    gflops: float | None
    if "HPL_Tflops" in pairs:
        tflops = _rate(pairs["HPL_Tflops"], "HPL_Tflops")
        gflops = tflops * 1000 if tflops is not None else None
    else:
        rows = [_rate(m.group(6), "HPL Gflops") for m in _HPL_ROW.finditer(body)]
        gflops = max((r for r in rows if r is not None), default=None)
    if gflops is None:
        tail = " | ".join(line.strip() for line in body.strip().splitlines()[-3:])
        raise BenchmarkOutputError(f"no HPL result in the output: {tail[:300]}")
    return HpccResult(
        hpl_gflops=gflops,
        stream_triad_gbs=_measured(pairs.get("StarSTREAM_Triad")),
        pingpong_latency_us=_measured(pairs.get("AvgPingPongLatency_usec")),
        pingpong_bandwidth_gbs=_measured(pairs.get("AvgPingPongBandwidth_GBytes")),
    )


def _measured(value: str | None) -> float | None:
    """A secondary hpcc figure, None when hpcc did not measure it (it prints -1 for PingPong
    with a single process) or printed something unusable."""
    try:
        return _rate(value, "")
    except BenchmarkOutputError:
        return None


def _json_documents(body: str) -> list[object]:
    decoder = json.JSONDecoder()
    documents: list[object] = []
    index = body.find("{")
    while index != -1:
        try:
            document, end = decoder.raw_decode(body, index)
        except json.JSONDecodeError:
            index = body.find("\n{", index + 1)
            index = index + 1 if index != -1 else -1
            continue
        documents.append(document)
        index = body.find("{", end)
    return documents


def parse_fio(body: str) -> list[FioResult]:
    """One :class:`FioResult` per task of a ``storage.<folder>`` section."""
    results = []
    for document in _json_documents(body):
        if not isinstance(document, dict) or not isinstance(document.get("jobs"), list):
            continue
        jobs = {job.get("jobname"): job for job in document["jobs"] if isinstance(job, dict)}
        try:
            write, read = jobs["write"], jobs["read"]
            if write.get("error") or read.get("error"):
                raise BenchmarkOutputError(f"fio reported error {write.get('error')}")
            write_kib = _rate(str(write["write"]["bw"]), "fio write bandwidth")
            read_kib = _rate(str(read["read"]["bw"]), "fio read bandwidth")
            write_iops = _rate(str(write["write"]["iops"]), "fio write IOPS")
            read_iops = _rate(str(read["read"]["iops"]), "fio read IOPS")
        except (KeyError, TypeError):
            raise BenchmarkOutputError("a fio document lacks its write or read job") from None
        assert None not in (write_kib, read_kib, write_iops, read_iops)
        results.append(
            FioResult(
                write_mibps=(write_kib or 0) / 1024,
                read_mibps=(read_kib or 0) / 1024,
                write_iops=write_iops or 0,
                read_iops=read_iops or 0,
            )
        )
    if not results:
        raise BenchmarkOutputError("no fio result in the output")
    return results


def parse_speedtest(body: str) -> SpeedtestResult:
    """Ookla ``speedtest -f json``: ``download.bandwidth`` and ``upload.bandwidth`` in bytes/s."""
    for document in _json_documents(body):
        if not isinstance(document, dict):
            continue
        try:
            down = _rate(str(document["download"]["bandwidth"]), "download bandwidth")
            up = _rate(str(document["upload"]["bandwidth"]), "upload bandwidth")
        except (KeyError, TypeError):
            continue
        ping = document.get("ping")
        latency = ping.get("latency") if isinstance(ping, dict) else None
        return SpeedtestResult(
            download_mbps=(down or 0) / 1e6,
            upload_mbps=(up or 0) / 1e6,
            latency_ms=float(latency) if isinstance(latency, int | float) else None,
        )
    raise BenchmarkOutputError("no speedtest result in the output")
