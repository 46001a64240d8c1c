"""The operator commands' pure parts: rendering, finding the supervisor, authorized-keys settings;
and each command against a real control server speaking the supervisor's answers."""

from __future__ import annotations

import argparse
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from cli import authorized_keys as akc
from cli import drain as drain_cli
from cli import jobs as jobs_cli
from cli import locate
from cli import status as status_cli
from cli.main import build_parser
from runtime.control import ControlCommandError, ControlServer, control_socket_path

JOB = "0x" + "2a" * 32

STATUS: dict[str, Any] = {
    "tree": {"state": "running", "restarts": 0},
    "drain": {"drained": True, "since": 1_700_000_000.0},
    "registration": {"actor": "running", "state": "drained (approved)", "approval": "approved"},
    "chain": {
        "actor": "running",
        "connection": "subscribed to ws://127.0.0.1:8545",
        "subscribed": True,
        "head_block": 812,
        "cursor_block": 811,
        "saved_cursor_block": 810,
        "claiming": False,
        "transactions": {
            "sent": 3,
            "resent": 0,
            "mined": 3,
            "reverted": 0,
            "replayed": 0,
            "filled": 0,
            "in_flight": 0,
            "functions": [],
        },
        "claims_sent": 1,
        "claims_delivered": 1,
        "claims_undelivered": 0,
        "claims": [],
        "enable_request_new_job": False,
    },
    "slurm": {
        "actor": "running",
        "healthy": False,
        "detail": "SshUnavailable: refused\x1b[31m",
        "partition": "grid",
        "connections": [{"user": "root", "state": "connected", "channels_in_use": 0}],
        "slurm_error": "sbatch: Invalid account",
    },
    "callbacks": {
        "actor": "running",
        "host": "127.0.0.1",
        "port": 3000,
        "tls": True,
        "received": 2,
    },
    "jobs": {"total": 3, "live": 1, "by_phase": {"RUNNING": 1, "DONE": 2, "CLAIMED": 0}},
    "reports_waiting": {
        "count": 1,
        "first": [{"job_id": JOB, "slurm_job_id": 4, "status": "FINISHED"}],
    },
    "last_errors": [{"actor": "slurm", "kind": "answered", "error": "SshUnavailable: refused"}],
}


def test_render_status() -> None:
    text = status_cli.render_status(STATUS)
    lines = text.splitlines()
    assert lines[0].split() == ["tree", "running", "restarts=0"]
    assert "DRAINED since" in text
    assert "registration  drained (approved)  approval=approved" in text
    assert "head=812  cursor=811 (saved 810)  claiming=off" in text
    assert "transactions: sent 3, resent 0, mined 3, reverted 0  in flight=0" in text
    assert "claims: sent 1, delivered 1, undelivered 0" in text
    assert (
        "no new job is claimed: the grid retired this meta-scheduler (enableRequestNewJob false)"
        in text
    )
    assert "set chain.metaschedulerAddress to its current one" in text
    assert "UNHEALTHY: SshUnavailable: refused?[31m" in text  # escapes cleaned
    assert "partition=grid  connections=root=connected(0)" in text
    assert "last error: sbatch: Invalid account" in text
    assert "callbacks     127.0.0.1:3000  tls=on  received=2" in text
    assert "1 live of 3: RUNNING=1 DONE=2" in text
    assert f"{JOB} FINISHED (SLURM 4)" in text
    assert "slurm (answered): SshUnavailable: refused" in text
    assert "\x1b" not in text
    # An empty answer (an older supervisor) still renders.
    assert "last errors   none" in status_cli.render_status({})


def test_render_jobs_and_job() -> None:
    rows: list[dict[str, Any]] = [
        {"job_id": JOB, "phase": "RUNNING", "slurm_job_id": 42, "chain_status": "RUNNING",
         "actor": "running", "last": "RUNNING: RUNNING on chain"},
        {"job_id": "0x" + "77" * 32, "phase": "DONE", "slurm_job_id": None,
         "chain_status": "FAILED", "actor": "absent", "last": "DONE: FAILED on chain"},
    ]  # fmt: skip
    table = jobs_cli.render_jobs(rows).splitlines()
    assert table[0].split() == ["JOB", "PHASE", "SLURM", "CHAIN", "ACTOR", "LAST"]
    assert table[1].startswith(JOB[:14] + "  RUNNING")
    assert table[2].split()[2] == "-"
    assert JOB in jobs_cli.render_jobs(rows, wide=True)
    assert jobs_cli.render_jobs([]) == "(no jobs)"
    detail = {
        **rows[0],
        "customer": "0xabc",
        "max_duration_minute": 5,
        "definition": {"ntasks": 1, "cpus_per_task": 2, "mem_per_cpu": 100, "gpus": 0},
        "history": [{"phase": "CLAIMED", "note": "claimed"}, {"phase": "RUNNING", "note": "ok"}],
        "actor": {"state": "running", "phase": "RUNNING"},
        "on_chain": {"status": "RUNNING", "provider": "0xdef", "start": 1_700_000_000, "end": 0},
        "reports_waiting": [
            {"status": "FINISHED", "slurm_job_id": 42, "duration_seconds": 61, "exit_code": 0}
        ],
    }
    text = jobs_cli.render_job(detail)
    assert "phase             RUNNING (actor running)" in text
    assert "resources         ntasks=1 cpus_per_task=2 mem_per_cpu=100 gpus=0" in text
    assert "  CLAIMED     claimed" in text
    assert "FINISHED  SLURM 42  duration 61 s  exit 0" in text
    assert "could not ask: boom" in jobs_cli.render_job({**detail, "on_chain": {"error": "boom"}})
    assert "unknown to the job repository" in jobs_cli.render_job({**detail, "on_chain": None})


def test_render_drain_and_resume() -> None:
    drained = drain_cli.render_answer(
        "drain", {"drained": True, "since": 1.0, "claiming": "off", "live_jobs": 2}
    )
    assert drained.startswith("drained since") and "claiming is off; 2 job(s) still live" in drained
    resumed = drain_cli.render_answer(
        "resume", {"drained": False, "was_drained": True, "claiming": "on", "approval": "approved"}
    )
    assert resumed.startswith("resumed: claiming is on (approval: approved")


# --- finding the supervisor -------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_state_folder_comes_from_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("state:\n  folder: /srv/grid\nwallet: {privateKeyFile: /nope}\n")
    assert locate.socket_path_from(parse("status", "--config", str(config)), {}) == Path(
        "/srv/grid/control.sock"
    )
    env = {"GRID_SUPERVISOR_STATE_FOLDER": "/from/env"}  # the environment wins over the file
    assert locate.state_dir_from(parse("status", "--config", str(config)), env) == Path("/from/env")
    named = {"GRID_SUPERVISOR_CONFIG": str(config)}  # the file named by the environment
    assert locate.state_dir_from(parse("jobs"), named) == Path("/srv/grid")
    given = parse("drain", "--config", str(config), "--state-dir", "/x")
    assert locate.state_dir_from(given, env) == Path("/x")
    assert locate.socket_path_from(parse("tree", "--socket", "/s.sock"), env) == Path("/s.sock")
    monkeypatch.setattr(locate, "DEFAULT_CONFIG_FILE", tmp_path / "absent.yaml")
    assert locate.state_dir_from(parse("status"), {}) == Path("/var/lib/grid-supervisor")
    config.write_text("state: [not, a, section]\n")
    from config import ConfigError

    with pytest.raises(ConfigError):
        locate.state_dir_from(parse("status", "--config", str(config)), {})


# --- the commands against a real control server -----------------------------------------------


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Path]:
    async def status(args: dict[str, Any]) -> Any:
        return STATUS

    async def jobs(args: dict[str, Any]) -> Any:
        return [{"job_id": JOB, "phase": args.get("phase") or "RUNNING"}]

    async def job(args: dict[str, Any]) -> Any:
        if args.get("job_id") != "0x2a":
            raise ControlCommandError("no job 0xff in the store")
        return {"job_id": JOB, "phase": "RUNNING", "history": []}

    async def drain(args: dict[str, Any]) -> Any:
        return {"drained": True, "claiming": "off", "live_jobs": 0}

    server = ControlServer(control_socket_path(tmp_path))
    for name, handler in (("status", status), ("jobs", jobs), ("job", job), ("drain", drain)):
        server.register(name, handler)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        yield tmp_path
        nursery.cancel_scope.cancel()


async def run_cli(*argv: str) -> tuple[int, str, str]:
    args = parse(*argv)
    out, err = io.StringIO(), io.StringIO()
    code = await trio.to_thread.run_sync(lambda: args.handler(args, out, err))
    return code, out.getvalue(), err.getvalue()


async def test_each_command_talks_to_the_socket(supervisor: Path) -> None:
    where = ("--state-dir", str(supervisor))
    code, out, _ = await run_cli("status", *where)
    assert code == 0 and "registration  drained (approved)" in out
    code, out, _ = await run_cli("status", *where, "--json")
    assert code == 0 and '"saved_cursor_block": 810' in out
    code, out, _ = await run_cli("jobs", *where, "--phase", "DONE")
    assert code == 0 and "DONE" in out
    code, out, _ = await run_cli("jobs", *where, "show", "0x2a")
    assert code == 0 and out.startswith(f"job               {JOB}")
    code, _, err = await run_cli("jobs", *where, "show", "0xff")
    assert code == 1 and "refused: no job 0xff" in err
    code, _, err = await run_cli("jobs", *where, "show")
    assert code == 2 and "which job" in err
    code, out, _ = await run_cli("drain", *where)
    assert code == 0 and "claiming is off" in out
    code, _, err = await run_cli("resume", *where)  # this supervisor has no such command
    assert code == 1 and "unknown command 'resume'" in err


async def test_an_absent_supervisor_is_exit_1_naming_the_socket(tmp_path: Path) -> None:
    for command in ("status", "jobs", "drain", "resume"):
        code, _, err = await run_cli(command, "--state-dir", str(tmp_path))
        assert code == 1 and str(tmp_path / "control.sock") in err


# --- authorized-keys settings ----------------------------------------------------------------


def akc_args(*argv: str) -> argparse.Namespace:
    return parse("authorized-keys", *argv)


def test_authorized_keys_settings_flags_over_the_go_tools_environment() -> None:
    env = {
        "SUPERVISOR_ENDPOINT": "env.example:443",
        "SUPERVISOR_TLS_INSECURE": "true",
        "SUPERVISOR_CA": "/etc/ca.pem",
        "SUPERVISOR_SERVER_HOST_OVERRIDE": "supervisor.example.com",
    }
    options = akc.options_from(akc_args("alice", "SHA256:xyz", "ssh-ed25519"), env)
    assert (options.host, options.port, options.tls, options.insecure) == (
        "env.example",
        443,
        True,
        True,
    )
    assert options.ca_file == Path("/etc/ca.pem")
    assert options.server_host_override == "supervisor.example.com"
    assert (options.retries, options.retry_delay, options.timeout) == (3, 1.0, 5.0)
    flags = akc.options_from(
        akc_args("--supervisor.endpoint", "[::1]:3000", "--supervisor.tls=false", "--retries", "5"),
        env,
    )
    assert (flags.host, flags.port, flags.tls, flags.retries) == ("::1", 3000, False, 5)
    with pytest.raises(ValueError, match="required"):
        akc.options_from(akc_args(), {})
    with pytest.raises(ValueError, match="host:port"):
        akc.options_from(akc_args("--supervisor.endpoint", "nohost"), {})
    with pytest.raises(ValueError, match="true or false"):
        akc.options_from(akc_args("--supervisor.endpoint", "h:1", "--supervisor.tls=maybe"), {})


def test_only_plain_public_key_lines_reach_sshd() -> None:
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsMjO4yrIRT4BKyJjXPAmgGnsrmy73DAoNN9iClHRwT"
    assert akc.safe_key_lines(line + "\n") == [line]
    assert akc.safe_key_lines(f"\n{line} supervisor@host\n") == [f"{line} supervisor@host"]
    for bad in (
        "",
        f'command="rm -rf /" {line}',
        f"{line}\nfrom=* ssh-rsa AAAA",
        "not a key at all",
    ):
        with pytest.raises(akc.KeysUnavailable):
            akc.safe_key_lines(bad)


def test_bad_settings_exit_2_and_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code = akc.run(akc_args("--supervisor.endpoint", "h:1", "--retries", "x"))
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "numbers" in captured.err
