"""The benchmark suite plan: HPL arithmetic, jobs per mode and option, generated script text.

Scripts are checked as text and, where it says something, run for real with bash (syntax of
every script, and the per-rank UCX device choice)."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from actors.benchmark.plan import (
    SuitePlan,
    hpcc_input,
    job_name,
    plan_suite,
    problem_size,
    process_grid,
)
from actors.benchmark.settings import BenchmarkSettings, settings_from_config
from actors.slurm import commands as cmd
from actors.slurm.messages import Node, SubmitBatch
from config.schema import Benchmark, Hpl, Storage, Ucx

ADDRESS = "127.0.0.1:3000"
PATH = "/usr/bin:/bin"


def nodes(count: int = 3, *, cpus: int = 8, memory: int = 4096, gpus: int = 0) -> list[Node]:
    return [
        Node(name=f"n{i}", cpus=cpus, memory_mb=memory, gpus=gpus, state="IDLE", responding=True)
        for i in range(1, count + 1)
    ]


def plan(count: int = 3, **settings: object) -> SuitePlan:
    return plan_suite(nodes(count), BenchmarkSettings(mode="native", **settings), ADDRESS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ranks", "grid"),
    [(0, (1, 1)), (-3, (1, 1)), (1, (1, 1)), (2, (2, 1)), (4, (2, 2)), (7, (7, 1)),
     (15, (5, 3)), (24, (6, 4))],
)  # fmt: skip
def test_process_grid_never_divides_by_zero(ranks: int, grid: tuple[int, int]) -> None:
    assert process_grid(ranks) == grid


def test_problem_size_matches_the_go_supervisor_and_is_never_zero() -> None:
    assert problem_size(128460, 2, 0.5, 512) == 89600
    assert problem_size(128460, 1, 0.5, 512) == 62976
    assert problem_size(0, 3, 0.5, 512) == 512
    assert problem_size(4096, 3, 0.03, 64) == 1152  # the testbed's


def test_default_suite_on_three_cpu_nodes() -> None:
    suite = plan(cpus_per_rank=8, memory_fraction=0.03, hpl_block_size=64)
    assert [job.kind for job in suite.jobs] == ["compute", "network", "storage", "internet"]
    assert suite.skipped == {}
    compute = suite.jobs[0]
    assert (compute.nodes, compute.ntasks_per_node, compute.cpus_per_task) == (3, 1, 8)
    assert compute.job_name == job_name("compute", ADDRESS)
    assert re.fullmatch(r"grid-benchmark-compute-[0-9a-f]{10}", compute.job_name)
    assert "1152         Ns" in compute.script and "3            Ps" in compute.script
    assert "mpirun --bind-to none" in compute.script
    network = suite.jobs[1]
    assert (network.nodes, network.ntasks_per_node) == (3, 1)


def test_cpu_ranks_come_from_the_cpu_count() -> None:
    compute = plan(2, cpus_per_rank=1).jobs[0]
    assert (compute.ntasks_per_node, compute.cpus_per_task) == (8, 1)
    assert "4            Ps" in compute.script and "4            Qs" in compute.script
    assert "192           NBs" in compute.script  # CPU default block size


def test_more_cpus_per_rank_than_cpus_still_gives_one_rank() -> None:
    compute = plan(1, cpus_per_rank=64).jobs[0]
    assert (compute.ntasks_per_node, compute.cpus_per_task) == (1, 8)


def test_gpu_ranks_come_from_the_gpu_count() -> None:
    suite = plan_suite(nodes(2, gpus=4), BenchmarkSettings(), ADDRESS)
    compute = suite.jobs[0]
    assert (compute.ntasks_per_node, compute.cpus_per_task, compute.gpus_per_node) == (4, 2, 4)
    assert "4            Ps" in compute.script and "2            Qs" in compute.script
    assert "512           NBs" in compute.script


def test_single_node_mode_skips_the_network_with_a_reason() -> None:
    suite = plan(hpl_single_node=True)
    assert [job.kind for job in suite.jobs] == ["compute", "storage", "internet"]
    assert suite.jobs[0].nodes == 1 and suite.jobs[1].nodes == 1
    assert "single-node" in suite.skipped["network"]


def test_one_node_cluster_skips_the_network_with_a_reason() -> None:
    suite = plan(1)
    assert "one node" in suite.skipped["network"]


def test_storage_single_node_mode() -> None:
    suite = plan(storage_single_node=True)
    storage = next(job for job in suite.jobs if job.kind == "storage")
    assert storage.nodes == 1
    assert next(job for job in suite.jobs if job.kind == "compute").nodes == 3


def test_including_unresponsive_nodes_gives_one_compute_job_per_node() -> None:
    suite = plan(include_unresponsive=True)
    computes = [job for job in suite.jobs if job.kind == "compute"]
    assert [(job.nodelist, job.nodes) for job in computes] == [("n1", 1), ("n2", 1), ("n3", 1)]


def test_container_mode_uses_the_container_plugin_and_the_configured_images() -> None:
    settings = BenchmarkSettings(hpl_image="reg#hpl:1", ior_image="reg#io:2")
    suite = plan_suite(nodes(), settings, ADDRESS)
    compute, _, storage, internet = suite.jobs
    assert "srun --mpi=pmix --cpu-bind=none --container-image='reg#hpl:1'" in compute.script
    assert '--container-mounts="$work:$work"' in compute.script
    assert "mpirun" not in compute.script
    assert "--container-image='reg#io:2'" in storage.script
    assert "--container-image='registry-1.docker.io#gists/speedtest-cli:1.2.0'" in internet.script


def test_ucx_env_is_in_the_script_and_each_rank_picks_its_node_devices() -> None:
    suite = plan(ucx=True, ucx_affinity="mlx5_0:1|mlx5_1:1", ucx_transport="rc,sm,self")
    script = suite.jobs[0].script
    assert "export OMPI_MCA_pml=ucx" in script
    assert "export UCX_TLS=rc,sm,self" in script
    assert "export GRID_UCX_AFFINITY='mlx5_0:1|mlx5_1:1'" in script
    wrapper = script.split("<<'RANK'\n", 1)[1].split("\nRANK\n", 1)[0]
    for node, expected in (("0", "mlx5_0:1"), ("1", "mlx5_1:1"), ("2", "")):
        done = subprocess.run(
            ["bash", "-c", wrapper, "rank.sh", "bash", "-c", 'echo "${UCX_NET_DEVICES:-}"'],
            env={
                "GRID_UCX_AFFINITY": "mlx5_0:1|mlx5_1:1",
                "SLURM_NODEID": node,
                "PATH": "/usr/bin:/bin",
            },
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip() == expected


def test_without_ucx_mpi_uses_tcp_and_shared_memory() -> None:
    script = plan().jobs[0].script
    assert "export OMPI_MCA_pml=ob1" in script and "UCX" not in script.split("RANK")[0]


def test_extra_env_is_exported_quoted() -> None:
    script = plan(env=(("MY_VAR", "a b'c"),)).jobs[0].script
    assert "export MY_VAR='a b'\"'\"'c'" in script


def test_every_generated_script_is_valid_bash() -> None:
    for settings in (BenchmarkSettings(mode="native"), BenchmarkSettings(ucx=True, trace=True)):
        for job in plan_suite(nodes(), settings, ADDRESS).jobs:
            subprocess.run(["bash", "-n"], input=job.script, text=True, check=True)


def test_hpcc_input_has_the_hpl_lines_where_hpcc_reads_them() -> None:
    lines = hpcc_input(1152, 64, 3, 1).splitlines()
    assert lines[5].split()[0] == "1152" and lines[7].split()[0] == "64"
    assert lines[10].split()[0] == "3" and lines[11].split()[0] == "1"
    assert len(lines) == 36


def test_settings_from_config_reads_options_and_sizing() -> None:
    benchmark = Benchmark(
        mode="native",
        run_as="bench",
        time_limit=timedelta(minutes=10),
        ucx=Ucx(enable=True, affinity="a|b", transport="rc"),
        hpl=Hpl(single_node=True, problem_size_percent=3, block_size=64, cpus_per_rank=8),
        storage=Storage(shared_scratch=Path("/scratch"), local_scratch=Path("/local"), size_mb=64),
        output_folder=Path("/shared/out"),
        env={"GRID_BENCHMARK_MEMORY_FRACTION": "0.9", "OTHER": "1"},
    )
    settings = settings_from_config(benchmark)
    assert settings.memory_fraction == 0.03
    assert (settings.hpl_block_size, settings.cpus_per_rank) == (64, 8)
    assert (settings.shared_scratch, settings.local_scratch) == ("/scratch", "/local")
    assert settings.storage_mb == 64 and settings.output_dir == "/shared/out"
    # Every benchmark.env entry is only exported in the jobs now: no name is reserved.
    assert settings.env == (("GRID_BENCHMARK_MEMORY_FRACTION", "0.9"), ("OTHER", "1"))
    assert settings.run_as == "bench" and settings.time_limit_minutes == 10
    assert settings.ucx and settings.ucx_affinity == "a|b" and settings.hpl_single_node


def test_settings_from_default_config_are_the_default_settings() -> None:
    default = settings_from_config(Benchmark())
    assert default == BenchmarkSettings()
    assert default.mode == "container" and default.time_limit_minutes == 1440
    assert default.output_dir == "" and default.memory_fraction == 0.5


def test_settings_refuse_a_nonsense_fraction() -> None:
    with pytest.raises(ValueError, match="fraction"):
        BenchmarkSettings(memory_fraction=0.0)


def test_benchmark_sbatch_line_takes_whole_nodes() -> None:
    request = SubmitBatch(
        user="root",
        job_name="grid-benchmark-compute-x",
        comment="benchmark 127.0.0.1:3000",
        time_limit_minutes=10,
        nodes=3,
        ntasks_per_node=1,
        cpus_per_task=8,
        gpus_per_node=2,
        nodelist="n2",
        output="grid-benchmark-compute-x-%j.out",
        script="#!/bin/bash\n",
    )
    argv = cmd.batch_sbatch_argv(cmd.CommandPaths(), request, "grid")
    assert argv[1:] == [
        "--parsable",
        "--job-name=grid-benchmark-compute-x",
        "--comment=benchmark 127.0.0.1:3000",
        "--partition=grid",
        "--time=10",
        "--nodes=3",
        "--ntasks-per-node=1",
        "--cpus-per-task=8",
        "--exclusive",
        "--mem=0",
        "--output=grid-benchmark-compute-x-%j.out",
        "--gpus-per-node=2",
        "--nodelist=n2",
    ]


def test_read_output_command_quotes_the_path(tmp_path: object) -> None:
    line = cmd.read_output_command("a b;$(x).out", 100)
    assert "'a b;$(x).out'" in line
    done = subprocess.run(["bash", "-c", line], capture_output=True, check=False)
    assert done.returncode == 3
