"""SlurmActor and SshPool against the testbed's real sshd (127.0.0.1:2222) and SLURM 22.05.

Every job gets a fresh random on-chain job id as its name, so tests never see each other's jobs
(nor those of other test sessions sharing the testbed). Jobs that would outlive a test are
cancelled by it.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import trio
import trio_asyncio

from actors.grid import ClaimedJob, JobDefinition
from actors.job.machine import RequeueInSlurm, new_job
from actors.job.ports import AdapterPorts
from actors.sbatch import SbatchClient, SbatchTls
from actors.slurm import commands as cmd
from actors.slurm.actor import SlurmActor
from actors.slurm.messages import (
    Cancel,
    CancelSent,
    CommandLost,
    Discover,
    ExtendTimeLimit,
    FindJobs,
    HealthCheck,
    JobInfo,
    JobSubmitted,
    Requeue,
    Requeued,
    SlurmJob,
    SshUnavailable,
    SubmissionRefused,
    SubmitJob,
    TimeLimitNotRaised,
    TimeLimitRaised,
    UnexpectedOutput,
)
from actors.slurm.ssh import SshPool, SshSettings
from config.load import load
from runtime.actor import ActorRef
from runtime.errors import AskTimeout
from runtime.supervisor import ChildSpec, Supervisor
from testbed.env import TestbedEnv

pytestmark = pytest.mark.testbed

PUBLIC_ADDRESS = "127.0.0.1:3999"


def new_job_id() -> str:
    return "0x" + secrets.token_hex(32)


def definition(*, ntasks: int = 1, cpus: int = 1, mem: int = 100, gpus: int = 0) -> JobDefinition:
    return JobDefinition(
        gpus=gpus, mem_per_cpu=mem, cpus_per_task=cpus, ntasks=ntasks, batch_location_hash="h"
    )


def make_actor(env: TestbedEnv, **extra: Any) -> SlurmActor:
    fields: dict[str, Any] = {
        "host": env.ssh.host,
        "port": env.ssh.port,
        "admin_user": env.ssh.admin_user,
        "private_key": Path(env.ssh.supervisor_key).read_bytes(),
        "known_hosts": env.ssh.known_hosts,
        "partition": env.slurm.partition,
        "public_address": PUBLIC_ADDRESS,
        "output_dir": env.slurm.job_output_dir,
    }
    fields.update(extra)
    return SlurmActor(**fields)


def make_pool(env: TestbedEnv, **settings: Any) -> SshPool:
    fields: dict[str, Any] = {
        "host": env.ssh.host,
        "port": env.ssh.port,
        "known_hosts": env.ssh.known_hosts,
        "connect_timeout": 5.0,
    }
    fields.update(settings)
    return SshPool(SshSettings(**fields), Path(env.ssh.supervisor_key).read_bytes())


@pytest.fixture
async def slurm(
    testbed_env: TestbedEnv, asyncio_loop: trio_asyncio.TrioEventLoop
) -> AsyncIterator[SlurmActor]:
    actor = make_actor(testbed_env)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        yield actor
        actor.request_stop()


@pytest.fixture
def customer(testbed_env: TestbedEnv) -> str:
    """A customer address whose UNIX user is its 42-character lowercase address."""
    chosen = testbed_env.customers[0]
    assert chosen.unix_user == chosen.address.lower()
    assert len(chosen.unix_user) == 42
    return chosen.address


async def submit(
    slurm: SlurmActor,
    customer: str,
    script: str,
    *,
    job_id: str | None = None,
    minutes: int = 5,
    job: JobDefinition | None = None,
) -> tuple[str, int]:
    name = job_id or new_job_id()
    reply = await slurm.ask(
        SubmitJob(name, customer, job or definition(), minutes, script), timeout=30
    )
    assert isinstance(reply, JobSubmitted), reply
    return name, reply.slurm_job_id


async def wait_for(
    slurm: SlurmActor, slurm_job_id: int, done: Callable[[SlurmJob], bool]
) -> SlurmJob:
    with trio.fail_after(40):
        while True:
            job = await slurm.ask(JobInfo(slurm_job_id), timeout=15)
            assert isinstance(job, SlurmJob)
            if done(job):
                return job
            await trio.sleep(0.2)


def ended(job: SlurmJob) -> bool:
    return job.has_ended


def running(job: SlurmJob) -> bool:
    return job.state == "RUNNING"


async def scontrol_record(slurm: SlurmActor, admin: str, slurm_job_id: int) -> dict[str, str]:
    argv = cmd.scontrol_job_argv(cmd.CommandPaths(), slurm_job_id)
    result = await slurm.pool.run(admin, cmd.command_line(argv), timeout=15)
    assert result.ok, result.stderr
    return cmd.parse_scontrol_record(result.stdout.splitlines()[0])


# --- submitting -------------------------------------------------------------------------------


async def test_submit_runs_as_the_customer_with_name_comment_partition_limit_and_resources(
    slurm: SlurmActor, customer: str, testbed_env: TestbedEnv
) -> None:
    name, slurm_job_id = await submit(
        slurm, customer, "sleep 1\n", minutes=7, job=definition(ntasks=2, cpus=2, mem=150)
    )
    record = await scontrol_record(slurm, testbed_env.ssh.admin_user, slurm_job_id)
    assert record["JobName"] == name
    assert record["UserId"].split("(")[0] == customer.lower()
    assert record["Comment"] == f"supervisor {PUBLIC_ADDRESS}"
    assert record["Comment"][11:] == PUBLIC_ADDRESS
    assert record["Partition"] == testbed_env.slurm.partition
    assert record["TimeLimit"] == "00:07:00"
    assert record["NumTasks"] == "2"
    assert record["CPUs/Task"] == "2"
    assert record["MinMemoryCPU"] == "150M"
    assert record["StdOut"] == f"{testbed_env.slurm.job_output_dir}/{name}-{slurm_job_id}.out"
    job = await wait_for(slurm, slurm_job_id, ended)
    assert job.state == "COMPLETED"
    assert job.user == customer.lower()


async def test_the_script_arrives_intact_through_stdin(
    slurm: SlurmActor, customer: str, testbed_env: TestbedEnv
) -> None:
    body = (
        "#SBATCH --partition=does-not-exist\n"  # dead text: directives end at our `true`
        "echo \"double 'single' $((6 * 7))\"\n"
        "echo 'literal $(date) `id` \"q\"'\n"
        "cat <<'EOF'\n"
        "heredoc $(touch /tmp/should-not-exist) `whoami` \\ 'a' \"b\"\n"
        "EOF\n"
        "whoami\n"
        "printf '%s\\n' \"$SLURM_JOB_PARTITION\"\n"
    )
    name, slurm_job_id = await submit(slurm, customer, body)
    job = await wait_for(slurm, slurm_job_id, ended)
    assert job.state == "COMPLETED", job
    output = await trio.Path(
        testbed_env.slurm.job_output_dir, f"{name}-{slurm_job_id}.out"
    ).read_text()
    assert output.splitlines() == [
        "double 'single' 42",
        'literal $(date) `id` "q"',
        "heredoc $(touch /tmp/should-not-exist) `whoami` \\ 'a' \"b\"",
        customer.lower(),
        testbed_env.slurm.partition,
    ]


async def test_hostile_names_are_refused_or_quoted_harmlessly(
    slurm: SlurmActor, customer: str, testbed_env: TestbedEnv, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = f"0x'; touch {marker}; echo '"
    reply = await slurm.ask(SubmitJob(hostile, customer, definition(), 5, "true"), timeout=30)
    assert isinstance(reply, SubmissionRefused)
    assert "not a job id" in reply.reason
    # Names reach squeue and scancel quoted: nothing runs, nothing matches.
    for name in (f"$(touch {marker})", f"`touch {marker}`", f"x;touch {marker}"):
        assert await slurm.ask(FindJobs(name), timeout=15) == []
        assert isinstance(await slurm.ask(Cancel(job_name=name), timeout=15), CancelSent)
    # The remote login shell gives each argument back exactly.
    values = [hostile, "$(id)", "`id`", 'a"b\\"c', "x\ny", "*", "~", "$HOME", "-n"]
    line = cmd.command_line(["printf", "%s\\0", *values])
    result = await slurm.pool.run(customer.lower(), line, timeout=15)
    assert result.stdout.split("\0")[:-1] == values
    assert not marker.exists()


async def test_a_zero_duration_job_is_refused_and_never_submitted(
    slurm: SlurmActor, customer: str
) -> None:
    name = new_job_id()
    reply = await slurm.ask(SubmitJob(name, customer, definition(), 0, "true"), timeout=30)
    assert isinstance(reply, SubmissionRefused)
    assert "no time" in reply.reason
    assert await slurm.ask(FindJobs(name), timeout=15) == []


async def test_sbatch_own_refusal_is_a_value(slurm: SlurmActor, customer: str) -> None:
    name = new_job_id()
    reply = await slurm.ask(SubmitJob(name, customer, definition(gpus=1), 5, "true"), timeout=30)
    assert isinstance(reply, SubmissionRefused), reply  # the testbed has no GPU GRES
    assert "gres" in reply.reason.lower()
    assert await slurm.ask(FindJobs(name), timeout=15) == []


async def test_exit_3_ends_failed_with_exit_code_3_and_find_jobs_finds_it(
    slurm: SlurmActor, customer: str
) -> None:
    name, slurm_job_id = await submit(slurm, customer, "echo bye\nexit 3\n")
    job = await wait_for(slurm, slurm_job_id, ended)
    assert (job.state, job.exit_status, job.exit_signal, job.exit_code_raw) == ("FAILED", 3, 0, 768)
    found = await slurm.ask(FindJobs(name), timeout=15)
    assert [j.slurm_job_id for j in found] == [slurm_job_id]
    assert found[0].exit_code_raw == 768
    assert found[0].name == name
    assert await slurm.ask(FindJobs(new_job_id()), timeout=15) == []


async def test_a_job_rewriting_its_comment_and_name_cannot_forge_its_state(
    slurm: SlurmActor, customer: str, testbed_env: TestbedEnv
) -> None:
    """The forgery of issue 11, on the real SLURM: a running job's owner may rewrite its comment
    and its name (``scontrol update``). A comment holding ``JobState=COMPLETED ... EndTime=``
    makes scontrol's line unreadable (a key twice) instead of shadowing the real fields, and a
    name holding a whole forged squeue line is only a name: the adapter still reads RUNNING."""
    forged_end = "2020-01-01T00:01:00"
    comment = (
        "x JobState=COMPLETED Reason=None ExitCode=0:0 "
        f"StartTime=2020-01-01T00:00:00 EndTime={forged_end}"
    )
    go_on = trio.Path(f"/tmp/grid-test-rename-{secrets.token_hex(8)}")  # the job's user reads it
    script = (
        f"scontrol update JobId=$SLURM_JOB_ID Comment={shlex.quote(comment)}\n"
        f"while [ ! -e {shlex.quote(str(go_on))} ]; do sleep 0.2; done\n"
        "forged=$(printf '%s|\\n%s|COMPLETED|0|%s|0:10|5:00|grid|2020-01-01T00:00:00|"
        f'{forged_end}|None|%s\' "$SLURM_JOB_NAME" "$SLURM_JOB_ID" "$USER" '
        '"$SLURM_JOB_NAME")\n'
        'scontrol update JobId=$SLURM_JOB_ID JobName="$forged"\n'
        "sleep 120\n"
    )
    name, slurm_job_id = await submit(slurm, customer, script)
    admin = testbed_env.ssh.admin_user
    try:
        argv = cmd.scontrol_job_argv(cmd.CommandPaths(), slurm_job_id)
        with trio.fail_after(40):
            while True:
                shown = await slurm.pool.run(admin, cmd.command_line(argv), timeout=15)
                if "JobState=COMPLETED" in shown.stdout:
                    break
                await trio.sleep(0.3)
        with pytest.raises(UnexpectedOutput, match="twice"):
            cmd.parse_scontrol_record(shown.stdout)
        job = await slurm.ask(JobInfo(slurm_job_id), timeout=15)
        assert isinstance(job, SlurmJob)
        assert (job.state, job.name) == ("RUNNING", name)
        assert job.end is None or job.end.year != 2020
        assert [j.state for j in await slurm.ask(FindJobs(name), timeout=15)] == ["RUNNING"]

        await go_on.touch()
        renamed = await wait_for(slurm, slurm_job_id, lambda j: j.name != name)
        assert renamed.state == "RUNNING"
        assert "\n" in renamed.name and "|COMPLETED|" in renamed.name
        assert renamed.end is None or renamed.end.year != 2020
        assert await slurm.ask(FindJobs(name), timeout=15) == []  # not its name any more
    finally:
        await slurm.ask(Cancel(slurm_job_id=slurm_job_id), timeout=15)
        await go_on.unlink(missing_ok=True)
    assert (await wait_for(slurm, slurm_job_id, ended)).state == "CANCELLED"


# --- cancel and time limits (as the admin) -----------------------------------------------------


async def test_cancel_by_id_and_by_name(slurm: SlurmActor, customer: str) -> None:
    _, first = await submit(slurm, customer, "sleep 120\n")
    name, second = await submit(slurm, customer, "sleep 120\n")
    await wait_for(slurm, first, running)
    assert await slurm.ask(Cancel(slurm_job_id=first), timeout=15) == CancelSent(str(first))
    assert await slurm.ask(Cancel(job_name=name), timeout=15) == CancelSent(f"--name={name}")
    assert (await wait_for(slurm, first, ended)).state == "CANCELLED"
    assert (await wait_for(slurm, second, ended)).state == "CANCELLED"
    # Cancelling again (an ended job) is not an error.
    assert isinstance(await slurm.ask(Cancel(slurm_job_id=first), timeout=15), CancelSent)


async def test_requeue_as_admin_puts_the_job_back_under_the_same_id(
    slurm: SlurmActor, customer: str, testbed_env: TestbedEnv
) -> None:
    _, slurm_job_id = await submit(slurm, customer, "sleep 120\n")
    try:
        await wait_for(slurm, slurm_job_id, running)
        assert await slurm.ask(Requeue(slurm_job_id), timeout=30) == Requeued(slurm_job_id, True)
        back = await wait_for(slurm, slurm_job_id, lambda job: job.state != "RUNNING")
        assert back.state in ("PENDING", "REQUEUED") and not back.has_ended
        record = await scontrol_record(slurm, testbed_env.ssh.admin_user, slurm_job_id)
        assert record["Restarts"] == "1"
    finally:
        await slurm.ask(Cancel(slurm_job_id=slurm_job_id), timeout=15)
    await wait_for(slurm, slurm_job_id, ended)
    unknown = await slurm.ask(Requeue(slurm_job_id + 100_000), timeout=30)
    assert not unknown.ok and "invalid job id" in unknown.detail.lower()


async def test_the_job_ports_requeue_only_a_job_still_waiting_for_its_launch(
    testbed_env: TestbedEnv, asyncio_loop: trio_asyncio.TrioEventLoop, customer: str
) -> None:
    """SLURM requeues a launched or ended job too (it would run twice): the job's port looks at
    the job first and leaves one that is not waiting for its launch alone."""
    supervisor = Supervisor("root", [ChildSpec("slurm", lambda: make_actor(testbed_env))])
    provider_key = bytes.fromhex(testbed_env.provider.key.removeprefix("0x"))
    sbatch = SbatchClient(testbed_env.sbatch.endpoint, SbatchTls(), provider_key)  # not used
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        ports = AdapterPorts(supervisor.registry, sbatch)
        slurm = ActorRef(supervisor.registry, "slurm").resolve_nowait()
        assert isinstance(slurm, SlurmActor)
        name, slurm_job_id = await submit(slurm, customer, "sleep 120\n")
        claim = ClaimedJob(name, "0x" + "11" * 20, testbed_env.provider.address, 5, definition())
        job, _ = new_job(claim)
        try:
            launched = await wait_for(
                slurm, slurm_job_id, lambda j: running(j) and not j.awaiting_launch
            )
            refused = await ports.requeue_in_slurm(job, RequeueInSlurm(slurm_job_id))
            assert refused == f"no longer waiting for its launch: RUNNING ({launched.reason})"
            record = await scontrol_record(slurm, testbed_env.ssh.admin_user, slurm_job_id)
            assert record["Restarts"] == "0" and record["JobState"] == "RUNNING"
        finally:
            await slurm.ask(Cancel(slurm_job_id=slurm_job_id), timeout=15)
        await wait_for(slurm, slurm_job_id, ended)
        refused = await ports.requeue_in_slurm(job, RequeueInSlurm(slurm_job_id))
        assert refused is not None and refused.startswith(
            "no longer waiting for its launch: CANCELLED"
        )
        ports.close()
        supervisor.request_stop()


async def test_raise_time_limit_as_admin_is_read_back(
    slurm: SlurmActor, customer: str, testbed_env: TestbedEnv
) -> None:
    _, slurm_job_id = await submit(slurm, customer, "sleep 120\n", minutes=5)
    try:
        await wait_for(slurm, slurm_job_id, running)
        # The job's owner may not raise its own limit: that is why the admin does it.
        owner = await slurm.pool.run(
            customer.lower(),
            cmd.command_line(cmd.scontrol_time_limit_argv(cmd.CommandPaths(), slurm_job_id, 60)),
            timeout=15,
        )
        assert not owner.ok
        reply = await slurm.ask(ExtendTimeLimit(slurm_job_id, 10), timeout=30)
        assert reply == TimeLimitRaised(slurm_job_id, old_minutes=5, new_minutes=15)
        job = await slurm.ask(JobInfo(slurm_job_id), timeout=15)
        assert isinstance(job, SlurmJob)
        assert job.time_limit_minutes == 15
        record = await scontrol_record(slurm, testbed_env.ssh.admin_user, slurm_job_id)
        assert record["TimeLimit"] == "00:15:00"
    finally:
        await slurm.ask(Cancel(slurm_job_id=slurm_job_id), timeout=15)
    await wait_for(slurm, slurm_job_id, ended)
    late = await slurm.ask(ExtendTimeLimit(slurm_job_id, 10), timeout=30)
    assert isinstance(late, TimeLimitNotRaised)
    assert "ended" in late.reason
    unknown = await slurm.ask(ExtendTimeLimit(999_999_999, 10), timeout=30)
    assert isinstance(unknown, TimeLimitNotRaised)
    assert await slurm.ask(JobInfo(999_999_999), timeout=15) is None


# --- discovery and health ---------------------------------------------------------------------


async def test_discover_returns_the_partition_nodes(
    slurm: SlurmActor, testbed_env: TestbedEnv
) -> None:
    nodes = await slurm.ask(Discover(), timeout=15)
    assert isinstance(nodes, list)
    assert sorted(node.name for node in nodes) == sorted(testbed_env.slurm.nodes)
    for node in nodes:
        assert node.cpus == testbed_env.slurm.cpus_per_node
        assert node.memory_mb == testbed_env.slurm.memory_per_node_mb
        assert node.gpus == 0
        assert node.responding
    hardware = cmd.hardware_of(nodes)
    assert hardware.nodes == len(testbed_env.slurm.nodes)


async def test_health_check(slurm: SlurmActor) -> None:
    health = await slurm.ask(HealthCheck(), timeout=15)
    assert health.ok, health
    assert "UP" in health.detail
    assert "root=connected" in slurm.statistics().facts()["connections"]


# --- SSH failures --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_ssh_unavailable_on_a_closed_port_with_backoff(
    testbed_env: TestbedEnv, asyncio_loop: trio_asyncio.TrioEventLoop
) -> None:
    pool = make_pool(testbed_env, port=free_port())
    with pytest.raises(SshUnavailable) as first:
        await pool.run("root", "true", timeout=5)
    assert first.value.reason == "connect"
    # The next attempt waits for the backoff; a caller who cannot wait is told at once.
    with pytest.raises(SshUnavailable) as second:
        await pool.run("root", "true", timeout=0.01)
    assert second.value.reason in ("backoff", "timeout")
    (status,) = pool.statistics()
    assert status.failures == 1


async def test_ssh_unavailable_on_an_unknown_host_key(
    testbed_env: TestbedEnv, asyncio_loop: trio_asyncio.TrioEventLoop, tmp_path: Path
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{testbed_env.ssh.host}]:{testbed_env.ssh.port} {other}")
    pool = make_pool(testbed_env, known_hosts=str(known_hosts))
    with pytest.raises(SshUnavailable) as error:
        await pool.run("root", "true", timeout=10)
    assert error.value.reason == "host-key"
    # Turning the check off (tests only) lets the same connection through.
    unchecked = make_pool(testbed_env, known_hosts=str(known_hosts), check_host_key=False)
    assert (await unchecked.run("root", "echo ok", timeout=10)).stdout == "ok\n"
    await unchecked.aclose()


async def test_ssh_unavailable_on_a_key_the_server_does_not_accept(
    testbed_env: TestbedEnv, asyncio_loop: trio_asyncio.TrioEventLoop
) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key()
    settings = SshSettings(
        host=testbed_env.ssh.host,
        port=testbed_env.ssh.port,
        known_hosts=testbed_env.ssh.known_hosts,
    )
    with pytest.raises(SshUnavailable) as error:
        await SshPool(settings, stranger).run("root", "true", timeout=10)
    assert error.value.reason == "auth"
    assert "PRIVATE KEY" not in str(error.value)


async def test_ssh_errors_reach_the_asker_and_the_actor_keeps_running(
    testbed_env: TestbedEnv, asyncio_loop: trio_asyncio.TrioEventLoop, customer: str
) -> None:
    actor = make_actor(testbed_env, port=free_port())
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        with pytest.raises(SshUnavailable):
            await actor.ask(FindJobs(new_job_id()), timeout=15)
        with pytest.raises(SshUnavailable):
            await actor.ask(SubmitJob(new_job_id(), customer, definition(), 5, "true"), timeout=15)
        health = await actor.ask(HealthCheck(), timeout=15)
        assert not health.ok
        assert "unavailable" in health.detail
        assert actor.statistics().phase == "running"
        assert "unavailable" in actor.statistics().slurm_error
        actor.request_stop()


async def test_command_lost_when_the_connection_dies_mid_command(
    testbed_env: TestbedEnv, asyncio_loop: trio_asyncio.TrioEventLoop, customer: str
) -> None:
    pool = make_pool(testbed_env)
    user = customer.lower()
    sshd_child = int((await pool.run(user, "echo $PPID", timeout=10)).stdout)
    lost: list[BaseException] = []

    async def long_command() -> None:
        try:
            await pool.run(user, "sleep 5; echo finished", timeout=20)
        except CommandLost as error:
            lost.append(error)

    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(long_command)
        await trio.sleep(0.5)
        os.kill(sshd_child, signal.SIGKILL)  # the sshd process serving our own connection
    assert len(lost) == 1
    assert time.monotonic() - started < 4
    # The pool reconnects for the next command.
    assert (await pool.run(user, "echo again", timeout=10)).stdout == "again\n"
    await pool.aclose()


async def test_command_lost_on_timeout_keeps_the_connection(
    testbed_env: TestbedEnv, asyncio_loop: trio_asyncio.TrioEventLoop
) -> None:
    pool = make_pool(testbed_env)
    assert (await pool.run("root", "true", timeout=10)).ok
    port = pool.local_port("root")
    with pytest.raises(CommandLost, match="timed out"):
        await pool.run("root", "sleep 5", timeout=0.5)
    assert (await pool.run("root", "echo ok", timeout=10)).stdout == "ok\n"
    assert pool.local_port("root") == port  # same connection
    await pool.aclose()


# --- many at once -------------------------------------------------------------------------------


async def test_sixty_parallel_submissions_share_the_pool_and_each_gets_its_own_job(
    slurm: SlurmActor, customer: str, testbed_env: TestbedEnv
) -> None:
    """More submissions at once than the pool has channels: every one gets its own SLURM job
    (their pace is measured by ``python -m bench lifecycle``). Jobs are `true` with a 1-minute
    limit, so they leave the cluster within seconds."""
    burst = 60
    ids: list[int] = []

    async def one() -> None:
        ids.append((await submit(slurm, customer, "true\n", minutes=1))[1])

    async with trio.open_nursery() as nursery:
        for _ in range(burst):
            nursery.start_soon(one)
    assert len(set(ids)) == burst
    assert slurm.statistics().in_flight == 0
    async with trio.open_nursery() as nursery:  # leave no queue behind for other tests
        for slurm_job_id in ids:
            nursery.start_soon(slurm.cancel, Cancel(slurm_job_id=slurm_job_id))


async def test_asks_through_an_actor_ref_run_concurrently_under_a_supervisor(
    testbed_env: TestbedEnv, asyncio_loop: trio_asyncio.TrioEventLoop, customer: str
) -> None:
    """The lead's path: the root builds SlurmActor, others reach it by name. Twenty asks at once
    are in flight together (the mailbox does not serialise SSH traffic); a timed-out ask leaves
    the actor running."""
    supervisor = Supervisor("root", [ChildSpec("slurm", lambda: make_actor(testbed_env))])
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        ref: ActorRef[Any, Any] = ActorRef(supervisor.registry, "slurm")
        name = new_job_id()
        reply = await ref.ask(SubmitJob(name, customer, definition(), 1, "true"), timeout=30)
        assert isinstance(reply, JobSubmitted)
        actor = ref.resolve_nowait()
        assert isinstance(actor, SlurmActor)
        most = 0
        async with trio.open_nursery() as asks:
            for _ in range(10):
                asks.start_soon(lambda: ref.ask(FindJobs(name), timeout=30))
                asks.start_soon(lambda: ref.ask(JobInfo(reply.slurm_job_id), timeout=30))
            while len(asks.child_tasks) > 0:
                most = max(most, actor.statistics().in_flight)
                await trio.lowlevel.checkpoint()
        assert most >= 10  # many commands in flight at once, not one at a time
        with pytest.raises(AskTimeout):
            await ref.ask(Discover(), timeout=0.0001)
        assert (await ref.ask(HealthCheck(), timeout=30)).ok
        assert actor.statistics().phase == "running"
        assert actor.statistics().last_error is None
        supervisor.request_stop()


async def test_built_from_the_testbed_supervisor_config(
    testbed_env: TestbedEnv, customer: str, asyncio_loop: trio_asyncio.TrioEventLoop
) -> None:
    config = load(file=Path(testbed_env.supervisor_config), env={}).config
    assert str(config.slurm.job_output_folder) == testbed_env.slurm.job_output_dir != "/tmp"
    actor = SlurmActor.from_config(config.slurm, public_address=config.grpc.public_address)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert (await actor.ask(HealthCheck(), timeout=15)).ok
        nodes = await actor.ask(Discover(), timeout=15)
        assert len(nodes) == len(testbed_env.slurm.nodes)
        name, slurm_job_id = await submit(actor, customer, "echo written\n")
        record = await scontrol_record(actor, testbed_env.ssh.admin_user, slurm_job_id)
        assert record["StdOut"] == f"{testbed_env.slurm.job_output_dir}/{name}-{slurm_job_id}.out"
        actor.request_stop()
