"""Standard labels from discovery and benchmark results, the operator's merged in, and the
hardware fingerprint that decides whether stored results are re-used."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.benchmark.labels import (
    compute_labels,
    discovery_labels,
    fingerprint,
    internet_labels,
    is_benchmark_key,
    merge_labels,
    network_labels,
    reusable_chain_labels,
    storage_labels,
)
from actors.benchmark.parsers import (
    FioResult,
    HpccResult,
    SpeedtestResult,
    parse_fio,
    parse_hpcc,
    parse_machine,
    split_sections,
)
from actors.benchmark.settings import BenchmarkSettings
from actors.grid import Label, normalise_labels
from actors.slurm.messages import Node

DATA = Path(__file__).parent / "data" / "benchmark"


def node(name: str, cpus: int = 8, memory: int = 4096, gpus: int = 0) -> Node:
    return Node(name=name, cpus=cpus, memory_mb=memory, gpus=gpus, state="IDLE", responding=True)


CLUSTER = [node("n1"), node("n2"), node("n3")]


def test_labels_from_the_recorded_testbed_run_normalised_and_sorted() -> None:
    compute = split_sections((DATA / "native-compute.out").read_text())
    network = split_sections((DATA / "native-network.out").read_text())
    storage = split_sections((DATA / "native-storage.out").read_text())
    labels = {
        **discovery_labels(CLUSTER),
        **compute_labels(parse_machine(compute["machine"]), [parse_hpcc(compute["hpcc"])]),
        **network_labels(parse_hpcc(network["hpcc"])),
        **storage_labels("shared", parse_fio(storage["storage.shared"]), shared=True),
        **storage_labels("local", parse_fio(storage["storage.local"]), shared=False),
    }
    registered = dict((label.key, label.value) for label in normalise_labels(labels))
    assert registered["os"] == "linux"
    assert registered["arch"] == "amd64"
    assert registered["cpu"] == "amd-epyc"
    assert registered["cpu.microarch"] == "x86-64-v4"
    assert registered["gpu"] == "none"  # never the CPU model
    assert registered["nodes"] == "3"
    assert registered["compute.gflops"] == "6.53"
    assert registered["memory.bw.mbps"] == "50222.70"
    assert registered["network.p2p.latency.us"] == "8.76"
    assert registered["network.p2p.bw.mbps"] == "7860.26"
    shared_write = sum(t.write_mibps for t in parse_fio(storage["storage.shared"]))
    assert registered["storage.shared.write.bw.mibps"] == f"{shared_write:.2f}"
    assert "storage.local.read.iops" in registered
    assert list(registered) == sorted(registered)
    assert all(is_benchmark_key(key) for key in registered)


def test_several_compute_runs_add_up_their_gflops() -> None:
    machine = parse_machine(split_sections((DATA / "native-compute.out").read_text())["machine"])
    runs = [HpccResult(hpl_gflops=1.5, stream_triad_gbs=2.0), HpccResult(hpl_gflops=2.0)]
    labels = compute_labels(machine, runs)
    assert labels["compute.gflops"] == "3.50" and labels["memory.bw.mbps"] == "2000.00"


def test_local_storage_is_per_node_shared_storage_is_aggregate() -> None:
    tasks = [FioResult(100, 200, 100, 200), FioResult(300, 400, 300, 400)]
    assert storage_labels("shared", tasks, shared=True)["storage.shared.write.bw.mibps"] == (
        "400.00"
    )
    assert storage_labels("local", tasks, shared=False)["storage.local.read.bw.mibps"] == "300.00"


def test_internet_and_network_labels() -> None:
    assert internet_labels(SpeedtestResult(117.27, 58.3)) == {
        "network.download.bw.mbps": "117.27",
        "network.upload.bw.mbps": "58.30",
    }
    assert network_labels(HpccResult(hpl_gflops=1.0)) == {}


def test_operator_wins_a_clash_and_the_clash_is_reported() -> None:
    merged, clashes = merge_labels(
        {"gpu": "none", "os": "linux"}, {"gpu": "rtx-3090", "name": "x", "os": "linux"}
    )
    assert merged == {"gpu": "rtx-3090", "os": "linux", "name": "x"}
    assert clashes == ["gpu"]


def test_disabled_mode_reuses_only_benchmark_labels_from_the_chain() -> None:
    chain = (Label("compute.gflops", "1.00"), Label("name", "mine"), Label("storage.x", "2"))
    assert reusable_chain_labels(chain) == {"compute.gflops": "1.00", "storage.x": "2"}


SETTINGS = BenchmarkSettings(mode="native")


def test_fingerprint_is_stable_across_node_order_and_names() -> None:
    reordered = [node("n3"), node("n1"), node("n2")]
    renamed = [node("a"), node("b"), node("c")]
    assert fingerprint(CLUSTER, SETTINGS) == fingerprint(reordered, SETTINGS)
    assert fingerprint(CLUSTER, SETTINGS) == fingerprint(renamed, SETTINGS)


@pytest.mark.parametrize(
    "changed",
    [
        [node("n1"), node("n2")],  # node count
        [node("n1"), node("n2"), node("n3", cpus=4)],  # CPUs
        [node("n1"), node("n2"), node("n3", memory=2048)],  # memory
        [node("n1"), node("n2"), node("n3", gpus=1)],  # GPUs
    ],
)
def test_fingerprint_changes_with_the_hardware(changed: list[Node]) -> None:
    assert fingerprint(changed, SETTINGS) != fingerprint(CLUSTER, SETTINGS)


def test_fingerprint_changes_with_what_is_measured() -> None:
    single = BenchmarkSettings(mode="native", hpl_single_node=True)
    assert fingerprint(CLUSTER, single) != fingerprint(CLUSTER, SETTINGS)
    assert fingerprint(CLUSTER, BenchmarkSettings(run_as="x", mode="native")) == fingerprint(
        CLUSTER, SETTINGS
    )
