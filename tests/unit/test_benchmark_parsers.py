"""The benchmark output parsers, on outputs recorded on the testbed (tests/unit/data/benchmark)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.benchmark.parsers import (
    BenchmarkOutputError,
    Machine,
    arch_name,
    microarch,
    parse_fio,
    parse_hpcc,
    parse_machine,
    parse_speedtest,
    section_skip,
    split_sections,
)

DATA = Path(__file__).parent / "data" / "benchmark"


def sections(name: str) -> dict[str, str]:
    return split_sections((DATA / name).read_text())


def test_compute_output_gives_the_machine_and_hpl_stream() -> None:
    parts = sections("native-compute.out")
    assert set(parts) == {"machine", "hpcc"}
    machine = parse_machine(parts["machine"])
    assert (machine.os, machine.arch, machine.cpu, machine.gpu) == (
        "Linux",
        "x86_64",
        "AMD EPYC",
        "none",
    )
    assert {"avx2", "avx512f"} <= machine.flags
    assert microarch(machine) == "x86-64-v4"
    result = parse_hpcc(parts["hpcc"])
    assert result.hpl_gflops == pytest.approx(6.5291)  # HPL_Tflops=0.0065291
    assert result.stream_triad_gbs == pytest.approx(50.2227)
    assert result.pingpong_latency_us == pytest.approx(9.01449)


def test_plain_hpl_table_is_read_when_the_summary_is_missing() -> None:
    body = sections("native-compute.out")["hpcc"]
    table_only = body.split("Begin of Summary section.")[0]
    result = parse_hpcc(table_only)
    assert result.hpl_gflops == pytest.approx(6.529)  # the WR11C2R4 row
    assert result.stream_triad_gbs is None


def test_network_output_gives_pingpong_between_nodes() -> None:
    result = parse_hpcc(sections("native-network.out")["hpcc"])
    assert result.pingpong_latency_us == pytest.approx(8.75847)
    assert result.pingpong_bandwidth_gbs == pytest.approx(7.86026)


def test_failed_launch_is_an_output_error_naming_the_cause() -> None:
    body = sections("native-compute-failed.out")["hpcc"]
    with pytest.raises(BenchmarkOutputError, match=r"no HPL result.*Socket timed out"):
        parse_hpcc(body)


def test_storage_output_gives_one_result_per_task_for_each_folder() -> None:
    parts = sections("native-storage.out")
    assert set(parts) == {"storage.shared", "storage.local"}
    shared = parse_fio(parts["storage.shared"])
    local = parse_fio(parts["storage.local"])
    assert len(shared) == len(local) == 3
    first = shared[0]
    assert first.write_mibps == pytest.approx(2849391 / 1024)
    assert first.read_mibps == pytest.approx(1927529 / 1024)
    assert first.write_iops == pytest.approx(2782.608696)
    assert all(r.read_mibps > 0 and r.write_mibps > 0 for r in local)


def test_internet_without_speedtest_is_a_skip_with_its_reason() -> None:
    body = sections("native-internet.out")["internet"]
    assert section_skip(body) == "no speedtest command on the node"
    with pytest.raises(BenchmarkOutputError):
        parse_speedtest(body)


def test_speedtest_json_bandwidths_are_bytes_per_second() -> None:
    result = parse_speedtest(sections("speedtest.json")["internet"])
    assert result.download_mbps == pytest.approx(117.265038)
    assert result.upload_mbps == pytest.approx(58.342617)
    assert result.latency_ms == pytest.approx(3.52)


@pytest.mark.parametrize("bad", ["HPL_Tflops=0", "HPL_Tflops=nan", "HPL_Tflops=inf", "x"])
def test_zero_nan_infinite_or_missing_hpl_is_refused(bad: str) -> None:
    with pytest.raises(BenchmarkOutputError):
        parse_hpcc(bad)


def test_unmeasured_pingpong_is_absent_not_an_error() -> None:
    result = parse_hpcc("HPL_Tflops=0.001\nAvgPingPongLatency_usec=-1\nStarSTREAM_Triad=nan")
    assert result.hpl_gflops == pytest.approx(1.0)
    assert result.pingpong_latency_us is None and result.stream_triad_gbs is None


def test_fio_document_without_read_job_is_refused() -> None:
    with pytest.raises(BenchmarkOutputError, match="lacks"):
        parse_fio('{"jobs": [{"jobname": "write", "write": {"bw": 1, "iops": 1}}]}')
    with pytest.raises(BenchmarkOutputError, match="no fio result"):
        parse_fio("exit=1\nfio: command not found")


def test_machine_probe_without_cpu_is_refused() -> None:
    with pytest.raises(BenchmarkOutputError, match="cpu"):
        parse_machine("os=Linux\narch=x86_64")


@pytest.mark.parametrize(
    ("arch", "flags", "level", "name"),
    [
        ("x86_64", "sse2", "x86-64", "amd64"),
        ("x86_64", "cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3", "x86-64-v2", "amd64"),
        (
            "x86_64",
            "cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3 avx avx2 bmi1 bmi2 f16c fma movbe xsave",
            "x86-64-v3",
            "amd64",
        ),
        ("aarch64", "fp asimd sve", "armv8-sve", "arm64"),
        ("riscv64", "", "riscv64", "riscv64"),
    ],
)
def test_microarch_levels(arch: str, flags: str, level: str, name: str) -> None:
    machine = Machine("Linux", arch, "cpu", "", frozenset(flags.split()), "none")
    assert microarch(machine) == level
    assert arch_name(machine) == name


def test_sections_before_the_first_marker_are_dropped() -> None:
    text = "noise\n### grid-benchmark section a\n1\n### grid-benchmark section b\n2\n3"
    assert split_sections(text) == {"a": "1", "b": "2\n3"}
