"""The testbed, proved from the outside: what a supervisor and a customer would see.

Every test talks to the real parts: sshd on 2222 with the supervisor key, SLURM's three fake nodes,
the hook scripts' log, anvil, the contracts, the sbatch service over TLS.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from testbed import faults, grid, market, processes
from testbed.env import TestbedEnv
from testbed.layout import REPO_ROOT, Layout

pytestmark = pytest.mark.testbed

JOB_TIMEOUT = 30.0


def ssh(env: TestbedEnv, user: str, command: str, *, timeout: float = 20.0) -> str:
    """Run ``command`` on the login node as ``user`` with the supervisor key (host key checked)."""
    done = subprocess.run(
        [
            "ssh",
            "-i",
            env.ssh.supervisor_key,
            "-p",
            str(env.ssh.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={env.ssh.known_hosts}",
            f"{user}@{env.ssh.host}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"ssh {user}: rc={done.returncode} {done.stderr}"
    return done.stdout


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
    )


def hook_lines(env: TestbedEnv, hook: str, job: str) -> list[str]:
    try:
        text = Path(env.slurm.hook_log).read_text()
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if f" hook={hook} job={job} " in f"{line} "]


def wait_completion(env: TestbedEnv, job: str) -> str:
    """The completion hook's line for ``job``, once SLURM ran it."""
    end = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < end:
        lines = hook_lines(env, "completion", job)
        if lines:
            return lines[0]
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not complete in {JOB_TIMEOUT} s")


def fields(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split()[1:] if "=" in item)


# --------------------------------------------------------------------------- env and lifecycle


def test_env_has_every_field(testbed_env: TestbedEnv) -> None:
    done = run_cli("env")
    assert done.returncode == 0, done.stderr
    env = msgspec.json.decode(done.stdout, type=TestbedEnv)
    assert env == testbed_env
    raw = msgspec.json.decode(done.stdout)
    empty = [path for path, value in _leaves(raw) if value in ("", None, [], {})]
    assert empty == []
    assert env.chain.rpc_url == "http://127.0.0.1:8545"
    assert env.chain.ws_url == "ws://127.0.0.1:8545"
    assert env.chain.chain_id == 31337
    assert set(env.chain.contracts) >= {
        "meta_scheduler",
        "jobs",
        "provider_job_queues",
        "provider_manager",
        "credit",
    }
    assert all(re.fullmatch(r"0x[0-9a-fA-F]{40}", a) for a in env.chain.contracts.values())
    assert len(env.customers) == 4
    assert all(len(c.unix_user) == 42 and c.unix_user == c.address.lower() for c in env.customers)
    assert env.ssh.customer_users == [c.unix_user for c in env.customers]
    assert env.sbatch.endpoint == "127.0.0.1:8444"
    assert env.slurm.nodes == ["n1", "n2", "n3"]
    for path in (
        env.sbatch.ca_cert,
        env.ssh.supervisor_key,
        env.ssh.known_hosts,
        env.supervisor_config,
        env.scripts_dir,
        env.slurm.job_output_dir,
    ):
        assert Path(path).exists(), path


def _leaves(value: object, path: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}")]
    if isinstance(value, list) and value:
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, value)]


def test_up_twice_is_a_no_op(testbed_env: TestbedEnv, testbed_layout: Layout) -> None:
    before = {r.name: r for r in processes.read_records(testbed_layout.pids)}
    began = time.monotonic()
    done = run_cli("up")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "already up"
    assert time.monotonic() - began < 10
    after = {r.name: r for r in processes.read_records(testbed_layout.pids)}
    assert after == before


def test_status_reports_every_part_up(testbed_env: TestbedEnv) -> None:
    done = run_cli("status")
    assert done.returncode == 0, done.stdout + done.stderr
    parts = dict(line.split() for line in done.stdout.splitlines())
    for part in (
        "munged",
        "slurmctld",
        "slurmd-n1",
        "slurmd-n2",
        "slurmd-n3",
        "sshd",
        "anvil",
        "sbatch-service",
        "env",
    ):
        assert parts[part] == "up", part


def test_supervisor_config_points_at_the_testbed(testbed_env: TestbedEnv) -> None:
    import yaml

    config = yaml.safe_load(Path(testbed_env.supervisor_config).read_text())
    assert config["slurm"]["ssh"]["address"] == testbed_env.ssh.address
    assert config["slurm"]["partition"] == testbed_env.slurm.partition
    assert config["chain"]["metaschedulerAddress"] == testbed_env.chain.contracts["meta_scheduler"]
    key = Path(config["wallet"]["privateKeyFile"]).read_text().strip()
    assert "0x" + key == testbed_env.provider.key


# --------------------------------------------------------------------------- SLURM over SSH


def test_admin_sees_three_idle_nodes_over_ssh(testbed_env: TestbedEnv) -> None:
    out = ssh(
        testbed_env,
        testbed_env.ssh.admin_user,
        f"sinfo -h -N -p {testbed_env.slurm.partition} -o '%N %c %m'",
    )
    assert sorted(out.split("\n")[:3]) == [f"{n} 8 4096" for n in ("n1", "n2", "n3")]


def test_customer_job_over_ssh_completes(testbed_env: TestbedEnv) -> None:
    customer = testbed_env.customers[1].unix_user
    job = ssh(
        testbed_env,
        customer,
        f"sbatch --parsable -p {testbed_env.slurm.partition} -n2 --mem-per-cpu=64 "
        "--wrap 'id -un; echo partition=$SLURM_JOB_PARTITION'",
    ).strip()
    assert job.isdigit()
    line = fields(wait_completion(testbed_env, job))
    assert line["state"] == "COMPLETED"
    assert line["exit"] == "0:0"
    assert line["user"] == customer
    out = ssh(testbed_env, customer, f"cat slurm-{job}.out")
    assert out.split() == [customer, f"partition={testbed_env.slurm.partition}"]


@pytest.fixture(scope="module")
def three_node_job(testbed_env: TestbedEnv) -> str:
    """A -N3 job run by customer #3 over SSH; its SLURM id once it has completed."""
    customer = testbed_env.customers[0].unix_user
    job = ssh(
        testbed_env,
        customer,
        f"sbatch --parsable -N3 -o {testbed_env.slurm.job_output_dir}/%j.out "
        "--wrap 'srun -l printenv SLURMD_NODENAME'",
    ).strip()
    wait_completion(testbed_env, job)
    return job


def test_three_node_job_spans_every_node(testbed_env: TestbedEnv, three_node_job: str) -> None:
    out = Path(testbed_env.slurm.job_output_dir, f"{three_node_job}.out").read_text()
    nodes = sorted(line.split(":")[1].strip() for line in out.splitlines())
    assert nodes == ["n1", "n2", "n3"]


def test_hooks_fire_for_each_job(testbed_env: TestbedEnv, three_node_job: str) -> None:
    customer = testbed_env.customers[0].unix_user
    (controller,) = hook_lines(testbed_env, "prolog-slurmctld", three_node_job)
    assert fields(controller)["user"] == customer
    assert fields(controller)["nodes"] == "n[1-3]"
    prologs = hook_lines(testbed_env, "prolog", three_node_job)
    assert sorted(fields(p)["node"] for p in prologs) == ["n1", "n2", "n3"]
    (completion,) = hook_lines(testbed_env, "completion", three_node_job)
    assert fields(completion)["state"] == "COMPLETED"
    assert fields(completion)["nodes"] == "n[1-3]"


def test_slurmctld_restarted_as_a_job_launches_still_runs_it(
    testbed_env: TestbedEnv, testbed_layout: Layout
) -> None:
    """The stop comes right after the job's allocation, where SLURM 22.05 would lose its launch
    (``faults`` holds allocations and lets the launch finish first); the partition is UP after."""
    customer = testbed_env.customers[2].unix_user
    partition = testbed_env.slurm.partition
    job = ssh(
        testbed_env, customer, f"sbatch --parsable -p {partition} -o /dev/null --wrap 'sleep 1'"
    ).strip()
    deadline = time.monotonic() + JOB_TIMEOUT
    while squeue_state(job) == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.01)
    faults.restart_part(testbed_layout, "slurmctld", down_seconds=1.0)
    assert fields(wait_completion(testbed_env, job))["state"] == "COMPLETED"
    available = subprocess.run(
        ["sinfo", "-h", "-p", partition, "-o", "%a"], capture_output=True, text=True, check=True
    )
    assert available.stdout.split() == ["up"]


def squeue_state(job: str) -> str:
    done = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


# --------------------------------------------------------------------------- process records


def test_a_dead_or_recycled_pid_is_never_taken_for_ours(tmp_path: Path) -> None:
    record = processes.start("sleeper", ["sleep", "30"], pids_dir=tmp_path, log=tmp_path / "l")
    assert processes.is_running(record)
    recycled = msgspec.structs.replace(record, start_ticks=record.start_ticks + 1)
    assert not processes.is_running(recycled)
    assert processes.stop(tmp_path, [record], deadline=2) == ["sleeper"]
    assert not processes.is_running(record)
    assert processes.read_records(tmp_path) == []
    with pytest.raises(ProcessLookupError):
        os.kill(record.pid, 0)


# --------------------------------------------------------------------------- the market


META_SCHEDULED = 1
ZERO_ADDRESS = "0x" + "0" * 40


def has_claimable_job(env: TestbedEnv) -> bool:
    with market.connect(env.chain.rpc_url, grid.grid_addresses(env)) as g:
        found: bool = g.queues.call("hasNextClaimableJob", env.provider.address)
    return found


@pytest.fixture(scope="module")
def provider_ready(testbed_env: TestbedEnv) -> market.Provider:
    """The provider registered and approved (as `testbed approve-provider` does), its claimable
    queue drained of jobs earlier tests or runs left there."""
    addresses = grid.grid_addresses(testbed_env)
    provider = market.get_provider(
        testbed_env.chain.rpc_url, addresses, testbed_env.provider.address
    )
    if int(provider.addr, 16) == 0:
        done = run_cli("approve-provider")
        assert done.returncode == 0, done.stderr
    while has_claimable_job(testbed_env):
        market.claim_next_job(
            testbed_env.chain.rpc_url, addresses, provider_key=testbed_env.provider.key
        )
    provider = market.get_provider(
        testbed_env.chain.rpc_url, addresses, testbed_env.provider.address
    )
    assert provider.addr == testbed_env.provider.address
    assert provider.hardware.cpus_per_node == (8, 8, 8)
    assert provider.hardware.mem_per_node == (4096, 4096, 4096)
    return provider


def test_submitted_job_reaches_the_provider_queue(
    testbed_env: TestbedEnv, provider_ready: market.Provider, tmp_path: Path
) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\necho queued\n")
    assert not has_claimable_job(testbed_env)
    done = run_cli("submit-job", "--script", str(script), "--cpus", "2", "--customer", "2")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert re.fullmatch(r"0x[0-9a-f]{64}", job_id)
    job = market.get_job(testbed_env.chain.rpc_url, grid.grid_addresses(testbed_env), job_id)
    assert job.status == META_SCHEDULED
    assert job.customer_addr == testbed_env.customers[2].address
    assert job.provider_addr == testbed_env.provider.address
    assert job.definition.cpus_per_task == 2
    assert has_claimable_job(testbed_env)


class Claim(msgspec.Struct, frozen=True):
    job_id: str
    script: bytes
    credits: int
    claimed: market.ClaimedJob | None


@pytest.fixture(scope="module")
def claim(testbed_env: TestbedEnv, provider_ready: market.Provider) -> Claim:
    """A job requested by customer #4, meta-scheduled, then claimed by the provider."""
    addresses = grid.grid_addresses(testbed_env)
    while has_claimable_job(testbed_env):
        market.claim_next_job(
            testbed_env.chain.rpc_url, addresses, provider_key=testbed_env.provider.key
        )
    script = b"#!/bin/bash\nsrun hostname\n"
    request = grid.JobRequest(cpus_per_task=2, mem_per_cpu=512, ntasks=3, credits=75, customer=4)
    job_id = grid.submit_job(testbed_env, script, request)
    claimed = market.claim_next_job(
        testbed_env.chain.rpc_url, addresses, provider_key=testbed_env.provider.key
    )
    return Claim(job_id=job_id, script=script, credits=request.credits, claimed=claimed)


def test_claim_emits_claim_job_event_with_max_duration(
    testbed_env: TestbedEnv, provider_ready: market.Provider, claim: Claim
) -> None:
    assert claim.claimed is not None
    assert claim.claimed.job_id == claim.job_id
    assert claim.claimed.provider_addr == testbed_env.provider.address
    assert claim.claimed.customer_addr == testbed_env.customer(4).address
    assert (claim.claimed.definition.cpus_per_task, claim.claimed.definition.ntasks) == (2, 3)
    per_minute = market.credits_per_minute(claim.claimed.definition, provider_ready.prices)
    assert claim.claimed.max_duration_minute == claim.credits * 10**18 // per_minute
    assert claim.claimed.max_duration_minute > 0


def test_sbatch_service_hands_the_provider_its_script(
    testbed_env: TestbedEnv, claim: Claim
) -> None:
    import asyncio
    import ssl

    from eth_account import Account
    from eth_account.messages import encode_defunct
    from grpclib.client import Channel

    from protos.sbatchapi.v1alpha1 import sbatch_grpc, sbatch_pb2

    claimed = claim.claimed
    assert claimed is not None
    host, port = testbed_env.sbatch.endpoint.rsplit(":", 1)

    async def fetch() -> str:
        context = ssl.create_default_context(cafile=testbed_env.sbatch.ca_cert)
        context.set_alpn_protocols(["h2"])
        channel = Channel(host, int(port), ssl=context)
        try:
            challenge = (
                await sbatch_grpc.AuthAPIStub(channel).Challenge(
                    sbatch_pb2.ChallengeRequest(), timeout=5
                )
            ).challenge
            signed = Account.sign_message(
                encode_defunct(primitive=challenge), private_key=testbed_env.provider.key
            ).signature
            reply = await sbatch_grpc.SBatchAPIStub(channel).GetSBatch(
                sbatch_pb2.GetSBatchRequest(
                    batch_location_hash=claimed.definition.batch_location_hash,
                    signed_challenge=bytes(signed),
                    challenge=challenge,
                    provider_address=bytes.fromhex(testbed_env.provider.address[2:]),
                    customer_address=bytes.fromhex(claimed.customer_addr[2:]),
                    job_id=claim.job_id,
                ),
                timeout=5,
            )
        finally:
            channel.close()
        return reply.sbatch

    assert asyncio.run(fetch()).encode() == claim.script


# --------------------------------------------------------------------------- recovery (last)


def test_up_after_a_crash_restarts_the_testbed(
    testbed_env: TestbedEnv, testbed_layout: Layout
) -> None:
    """Kill two parts with SIGKILL (their pid records go stale): ``status`` says so, ``up``
    stops the rest, starts afresh and gives an equivalent env (same deterministic addresses)."""
    import signal

    for name in ("anvil", "sshd"):
        record = processes.read_record(testbed_layout.pids, name)
        assert record is not None
        os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10  # a SIGKILLed process takes a moment to be gone
    parts = grid.status(testbed_layout)
    while time.monotonic() < deadline and (parts["anvil"] or parts["sshd"]):
        time.sleep(0.05)
        parts = grid.status(testbed_layout)
    assert (parts["anvil"], parts["sshd"], parts["slurmctld"]) == (False, False, True)
    done = run_cli("up")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("up in ")
    assert "stopped leftovers" in done.stderr
    assert grid.is_up(testbed_layout)
    assert grid.require_env(testbed_layout) == testbed_env
    assert ssh(testbed_env, testbed_env.ssh.admin_user, "echo ok").strip() == "ok"
