"""The pure parts of the SLURM-side reporter and of the callback server's report handling."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import callbacks, grid
from actors.grid import JobStatus
from actors.records import report_key
from cli import report
from cli.report import (
    CANCELLED,
    FAILED,
    FINISHED,
    OUT_OF_CREDITS,
    RUNNING,
    Report,
    jobcomp_report,
    prolog_report,
    raw_exit_code,
    squeue_comment,
    supervisor_endpoint,
    wire_status,
)
from cli.report_spool import Spool
from protos.supervisor.v1alpha1 import job_pb2

JOB = "0x" + "ab" * 32
COMMENT = "supervisor 127.0.0.1:3000"


def jobcomp_env(**overrides: str) -> dict[str, str]:
    env = {
        "JOBID": "42",
        "JOBNAME": JOB,
        "JOBSTATE": "COMPLETED",
        "EXITCODE": "0:0",
        "START": "1795536896",
        "END": "1795537016",
        "PATH": "/usr/bin:/bin",
    }
    env.update(overrides)
    return env


# --- states, exit codes, durations --------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("FAILED", FAILED),
        ("TIMEOUT", OUT_OF_CREDITS),
        ("CANCELLED", CANCELLED),
        ("CANCELLED by 0", CANCELLED),
        ("COMPLETED", FINISHED),
        ("NODE_FAIL", FINISHED),
        ("OUT_OF_MEMORY", FINISHED),
        ("PREEMPTED", FINISHED),
        ("", FINISHED),
    ],
)
def test_states_map_as_the_plugins_do(state: str, expected: int) -> None:
    assert wire_status(state) == expected


def test_wire_values_are_the_proto_enum() -> None:
    assert (RUNNING, CANCELLED, FINISHED, FAILED, OUT_OF_CREDITS) == (
        job_pb2.JOB_STATUS_RUNNING,
        job_pb2.JOB_STATUS_CANCELLED,
        job_pb2.JOB_STATUS_FINISHED,
        job_pb2.JOB_STATUS_FAILED,
        job_pb2.JOB_STATUS_OUT_OF_CREDITS,
    )


@pytest.mark.parametrize(
    ("text", "raw"),
    [("0:0", 0), ("3:0", 768), ("1:0", 256), ("0:9", 9), ("255:0", 65280), ("2:15", 527)],
)
def test_exit_code_is_the_raw_wait_status(text: str, raw: int) -> None:
    assert raw_exit_code(text) == raw


@pytest.mark.parametrize("text", ["", "x:y", ":", "garbage"])
def test_unreadable_exit_code_is_zero(text: str) -> None:
    assert raw_exit_code(text) == 0


@given(st.integers(0, 255), st.integers(0, 127))
def test_exit_code_round_trips(code: int, signal: int) -> None:
    raw = raw_exit_code(f"{code}:{signal}")
    assert (raw >> 8, raw & 0xFF) == (code, signal)


def test_duration_is_end_minus_start() -> None:
    assert jobcomp_report(jobcomp_env(), COMMENT) == Report(
        endpoint="127.0.0.1:3000",
        name=JOB,
        slurm_job_id=42,
        status=FINISHED,
        duration_seconds=120,
        exit_code=0,
        hook="jobcomp",
    )


@pytest.mark.parametrize(("start", "end"), [("0", "1795537016"), ("100", "50"), ("", "x")])
def test_job_that_never_started_lasts_zero(start: str, end: str) -> None:
    got = jobcomp_report(jobcomp_env(START=start, END=end, JOBSTATE="CANCELLED"), COMMENT)
    assert got is not None
    assert (got.status, got.duration_seconds) == (CANCELLED, 0)


def test_failed_job_carries_its_exit_code() -> None:
    got = jobcomp_report(jobcomp_env(JOBSTATE="FAILED", EXITCODE="3:0"), COMMENT)
    assert got is not None
    assert (got.status, got.exit_code) == (FAILED, 768)


def test_job_name_is_lowercased() -> None:
    got = jobcomp_report(jobcomp_env(JOBNAME=JOB.upper().replace("0X", "0x")), COMMENT)
    assert got is not None and got.name == JOB


# --- which jobs are ours ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comment", "endpoint"),
    [
        ("supervisor 127.0.0.1:3000", "127.0.0.1:3000"),
        ("supervisor supervisor.example.com:443", "supervisor.example.com:443"),
        ("supervisor", None),
        ("supervisor ", None),
        ("benchmark 127.0.0.1:3000", None),
        (" supervisor 127.0.0.1:3000", None),
        ("", None),
        (None, None),
    ],
)
def test_supervisor_address_comes_from_the_comment(
    comment: str | None, endpoint: str | None
) -> None:
    assert supervisor_endpoint(comment) == endpoint


@pytest.mark.parametrize(
    "env",
    [
        jobcomp_env(JOBNAME="wrap"),
        jobcomp_env(JOBNAME=JOB[:-1]),
        jobcomp_env(JOBNAME=JOB + "0"),
        jobcomp_env(JOBNAME="0x" + "zz" * 32),
        jobcomp_env(JOBID=""),
    ],
)
def test_foreign_jobs_are_not_reported(env: dict[str, str]) -> None:
    assert jobcomp_report(env, COMMENT) is None


def test_jobs_without_our_comment_are_not_reported() -> None:
    assert jobcomp_report(jobcomp_env(), "benchmark 127.0.0.1:3000") is None
    assert jobcomp_report(jobcomp_env(), None) is None


def test_prolog_reports_running_with_no_duration() -> None:
    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_NAME": JOB, "SLURM_JOB_USER": "alice"}
    assert prolog_report(env, COMMENT) == Report(
        endpoint="127.0.0.1:3000", name=JOB, slurm_job_id=7, status=RUNNING, hook="prolog"
    )
    assert prolog_report({**env, "SLURM_JOB_NAME": "wrap"}, COMMENT) is None


# --- the comment, from squeue ------------------------------------------------------------------


def test_comment_is_squeue_s_only_line() -> None:
    assert squeue_comment(b"supervisor 127.0.0.1:3000\n") == "supervisor 127.0.0.1:3000"
    assert squeue_comment(b"supervisor h:1") == "supervisor h:1"


@pytest.mark.parametrize(
    "output", [b"", b"\n", b"(null)\n", b"supervisor a:1\nsupervisor b:2\n", b"x\n\n"]
)
def test_no_comment_or_no_single_one(output: bytes) -> None:
    assert squeue_comment(output) is None


def test_spool_files_are_private_whole_and_ordered(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    first = Report("h:1", JOB, 1, RUNNING, hook="prolog")
    second = Report("h:1", JOB, 1, FINISHED, 60, 0, hook="jobcomp")
    paths = [report.spool(first, folder), report.spool(second, folder)]
    with Spool.make(folder) as spool:
        assert spool.names() == [p.name for p in paths]
        assert [report.decode_report(spool.read(p.name)[0]) for p in paths] == [first, second]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_flush_lock_is_exclusive(tmp_path: Path) -> None:
    with Spool.make(tmp_path / "spool") as spool, Spool.make(tmp_path / "spool") as other:
        with spool.lock() as first, other.lock() as second:
            assert (first, second) == (True, False)
        with other.lock() as again:
            assert again


def test_only_listed_supervisors_are_allowed() -> None:
    assert report.endpoint_allowed("evil:443", ())
    listed = ("127.0.0.1:3000", "supervisor.example.com:443")
    assert report.endpoint_allowed("127.0.0.1:3000", listed)
    assert report.endpoint_allowed("Supervisor.Example.com:443", listed)
    assert not report.endpoint_allowed("127.0.0.1:3001", listed)
    assert not report.endpoint_allowed("evil:443", listed)


def test_options_come_from_flags_then_environment() -> None:
    parser = argparse.ArgumentParser()
    report.register(parser.add_subparsers())
    env = {
        "GRID_REPORT_SPOOL_DIR": "/s",
        "GRID_REPORT_TLS": "0",
        "GRID_REPORT_CA_FILE": "/ca.pem",
        "GRID_REPORT_TIMEOUT": "2.5",
        "GRID_REPORT_SUPERVISORS": "127.0.0.1:3000, Sup.Example:443,",
    }
    options = report.options_from(parser.parse_args(["report", "jobcomp"]), env)
    assert options == report.ReporterOptions(
        spool_dir=Path("/s"),
        tls=False,
        ca_file=Path("/ca.pem"),
        timeout=2.5,
        supervisors=("127.0.0.1:3000", "sup.example:443"),
    )
    flagged = parser.parse_args(["report", "jobcomp", "--supervisor", "a:1", "--supervisor", "b:2"])
    assert report.options_from(flagged, env).supervisors == ("a:1", "b:2")
    flags = parser.parse_args(["report", "prolog", "--spool-dir", "/f", "--timeout", "1"])
    options = report.options_from(flags, {})
    assert (options.spool_dir, options.tls, options.timeout) == (Path("/f"), True, 1.0)
    assert report.options_from(flags, {"GRID_REPORT_TLS": "yes"}).tls


# --- the callback server's decisions -------------------------------------------------------------


def test_secret_metadata_key_is_shared() -> None:
    assert report.SECRET_METADATA_KEY == callbacks.SECRET_METADATA_KEY
    assert callbacks.SECRET_METADATA_KEY.endswith("-bin")


@pytest.mark.parametrize(
    ("wire", "chain"),
    [
        (job_pb2.JOB_STATUS_PENDING, JobStatus.PENDING),
        (job_pb2.JOB_STATUS_META_SCHEDULED, JobStatus.META_SCHEDULED),
        (job_pb2.JOB_STATUS_SCHEDULED, JobStatus.SCHEDULED),
        (job_pb2.JOB_STATUS_RUNNING, JobStatus.RUNNING),
        (job_pb2.JOB_STATUS_CANCELLING, None),
        (job_pb2.JOB_STATUS_CANCELLED, JobStatus.CANCELLED),
        (job_pb2.JOB_STATUS_FINISHED, JobStatus.FINISHED),
        (job_pb2.JOB_STATUS_FAILED, JobStatus.FAILED),
        (job_pb2.JOB_STATUS_OUT_OF_CREDITS, JobStatus.OUT_OF_CREDITS),
    ],
)
def test_wire_status_maps_to_the_chain(wire: int, chain: JobStatus | None) -> None:
    assert callbacks.chain_status(wire) == chain


@pytest.mark.parametrize(
    "wire", [job_pb2.JOB_STATUS_UNSPECIFIED, job_pb2.JOB_STATUS_PANICKED, 11, -1]
)
def test_unreportable_statuses_are_invalid(wire: int) -> None:
    with pytest.raises(callbacks.InvalidReport):
        callbacks.chain_status(wire)


@pytest.mark.parametrize(
    ("presented", "secret", "require", "authenticated"),
    [
        (b"s3cret", b"s3cret", False, True),
        (b"s3cret", b"s3cret", True, True),
        (None, b"s3cret", False, False),
        (None, None, False, False),
        (b"anything", None, False, False),
    ],
)
def test_reporter_authentication(
    presented: bytes | None, secret: bytes | None, require: bool, authenticated: bool
) -> None:
    assert callbacks.authenticate(presented, secret, require=require) is authenticated


@pytest.mark.parametrize(
    ("presented", "require"), [(b"wrong", False), (b"wrong", True), (None, True)]
)
def test_reporter_refused(presented: bytes | None, require: bool) -> None:
    with pytest.raises(callbacks.ReporterRefused):
        callbacks.authenticate(presented, b"s3cret", require=require)


def test_decode_report_validates_the_name() -> None:
    request = job_pb2.SetJobStatusRequest(
        name=JOB.upper().replace("0X", "0x"),
        id=5,
        duration=61,
        status=job_pb2.JOB_STATUS_FAILED,
        exit_code=768,
    )
    got = callbacks.decode_report(request, authenticated=True, received_at=1.5)
    assert got == grid.Report(JOB, 5, JobStatus.FAILED, 61, 768, True, 1.5)
    assert got is not None and got.duration_minutes == 1
    for bad in ("", JOB[2:], "0x" + "ab" * 31, JOB + "ab", "0x" + "g" * 64, f" {JOB}"):
        with pytest.raises(callbacks.InvalidReport):
            callbacks.decode_report(
                job_pb2.SetJobStatusRequest(name=bad, status=job_pb2.JOB_STATUS_RUNNING),
                authenticated=False,
                received_at=0.0,
            )


def test_report_keys_deduplicate_identical_reports_only() -> None:
    base = grid.Report(JOB, 5, JobStatus.FINISHED, 120, 0)
    same = grid.Report(JOB, 5, JobStatus.FINISHED, 120, 0, authenticated=True, received_at=9.0)
    assert report_key(base) == report_key(same)  # whoever sent it, whenever
    others = [
        grid.Report(JOB, 6, JobStatus.FINISHED, 120, 0),
        grid.Report(JOB, 5, JobStatus.FAILED, 120, 0),
        grid.Report(JOB, 5, JobStatus.FINISHED, 7200, 0),
        grid.Report(JOB, 5, JobStatus.FINISHED, 120, 256),
    ]
    keys = {report_key(r) for r in [base, *others]}
    assert len(keys) == 5


def test_a_report_stored_by_an_earlier_version_still_decodes() -> None:
    import msgspec

    earlier = (
        b'{"job_id":"%s","slurm_job_id":5,"status":3,"duration_seconds":0,"exit_code":0,'
        b'"authenticated":true}' % JOB.encode()
    )
    decoded = msgspec.json.decode(earlier, type=grid.Report)
    assert decoded == grid.Report(JOB, 5, JobStatus.RUNNING, authenticated=True, received_at=0.0)


def test_authorized_keys_line_is_the_public_key(tmp_path: Path) -> None:
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519", comment="secret-comment")
    line = callbacks.authorized_keys_line(key.export_private_key())
    algorithm, _blob = line.split()
    assert line.endswith("\n") and "secret-comment" not in line
    assert algorithm == "ssh-ed25519"
    assert asyncssh.import_public_key(line).public_data == key.public_data
    with pytest.raises(callbacks.CallbackSetupError) as caught:
        callbacks.authorized_keys_line(b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n")
    assert "not a key" not in str(caught.value)


def test_tls_needs_both_files(tmp_path: Path) -> None:
    assert callbacks.server_tls(None, None) is None
    with pytest.raises(callbacks.CallbackSetupError):
        callbacks.server_tls(tmp_path / "cert.pem", None)
    with pytest.raises(callbacks.CallbackSetupError):
        callbacks.server_tls(tmp_path / "missing.pem", tmp_path / "missing-key.pem")
    assert not os.path.exists(tmp_path / "missing.pem")
